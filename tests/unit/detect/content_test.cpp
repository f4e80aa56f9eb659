#include "boing/detect/content.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "boing/detect/text.h"

namespace boing::detect {
namespace {

// Classes the signature set finds in `raw` after normalisation.
std::set<std::string> Classes(SignatureSet& s, std::string_view raw) {
  std::string norm;
  Normalize(raw, norm, false);
  std::vector<ContentMatch> m;
  s.Scan(norm, m);
  std::set<std::string> out;
  for (const auto& x : m) out.insert(AttackClassId(x.cls));
  return out;
}

class Signatures : public ::testing::Test {
 protected:
  SignatureSet set_;
};

TEST_F(Signatures, FireOnEachClass) {
  struct Case {
    const char* cls;
    const char* value;
  } cases[] = {
      {"sqli", "1' UNION ALL SELECT username,password FROM users--"},
      {"sqli", "1 union/**/select null,null"},
      {"sqli", "x' or '1'='1"},
      {"sqli", "admin'--"},
      {"sqli", "1; DROP TABLE users"},
      {"sqli", "1 AND SLEEP(5)"},
      {"sqli", "' and extractvalue(1,concat(0x7e,version()))"},
      {"sqli", "1%27%20OR%201%3D1"},
      {"xss", "<script>alert(1)</script>"},
      {"xss", "<img src=x onerror=alert(1)>"},
      {"xss", "&lt;svg onload=alert(1)&gt;"},
      {"xss", "javascript:alert(document.cookie)"},
      {"xss", "%3Ciframe%20src%3D%22data%3Atext%2Fhtml%2C..."},
      {"path_traversal", "../../../../etc/passwd"},
      {"path_traversal", "..%2f..%2f..%2fwindows%2fwin.ini"},
      {"path_traversal", "%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afetc"},
      {"path_traversal", "file:///etc/shadow"},
      {"cmdi", "127.0.0.1; cat /etc/hosts"},
      {"cmdi", "a | /bin/sleep 31 ;"},
      {"cmdi", "$(whoami)"},
      {"cmdi", "`id`"},
      {"cmdi", "x; netstat -an"},
      {"cmdi", "`false`"},
      {"cmdi", "<?php system('cat /etc/hosts'); ?>"},
      {"ldapi", "*)(uid=*))(|(uid=*"},
      {"ldapi", "admin)(|(password=*)"},
      {"nosqli", "user[$ne]=x"},
      {"nosqli", "{\"username\": {\"$gt\": \"\"}}"},
      {"nosqli", "'; return true; var x='"},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(Classes(set_, c.value).count(c.cls)) << c.cls << ": " << c.value;
  }
}

TEST_F(Signatures, QuietOnOrdinaryValues) {
  const char* benign[] = {
      "c/ caridad s/n",
      "O'Brien",
      "rock 'n' roll",
      "Select your country from the list",
      "1442431887503330",
      "john.doe@example.com",
      "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101",
      "text/html,application/xhtml+xml;q=0.9",
      "/api/v1/users/42/orders",
      "a=1&b=2",
      "price < 100 and > 10",
      "the 'best' offer",
      "C:\\Program Files\\App",
      "#ff00aa",
      "{\"color\":\"#fff\",\"size\":12}",
      "2024-01-01T10:00:00Z",
      "Barcelona, 08001",
      "order by date",
      "please confirm (required)",
      "apples, count (them) or if (needed)",
      "he said \"yes\" and 2 more",
      "the 'toys' and kids in the park",
      "you & me",
      "what's new?",
      "50% off -- today only",
      "the online store",
      "data:image/png;base64,iVBORw0KGgo",
      "it's a 5' board",
      "the system (our own) works",
      "exec summary; pwd reset",
      "is it true or false?",
  };
  for (const char* v : benign) {
    EXPECT_TRUE(Classes(set_, v).empty()) << v << " -> " << *Classes(set_, v).begin();
  }
}

TEST(SqliTokenizer, FiresOnQueryShapedValues) {
  for (const char* v :
       {"1' or '1'='1", "admin'--", "admin' #", "1 or 1=1", "-1 or 1=1", "1) or (1=1",
        "x' and sleep(3) and 'a'='a", "'; drop table users; --", "1 union select 1,2",
        "') union all select null--", "1 and exists(select 1)", "\" or \"\"=\"", "1)) order by 3#",
        "' having 1=1--", "1'/**/or/**/1=1", "1 or true"}) {
    std::string n;
    Normalize(v, n, false);
    EXPECT_NE(SqliTokenizer(n), nullptr) << v;
  }
}

TEST(SqliTokenizer, QuietOnProse) {
  for (const char* v : {"o'brien", "students' and teachers", "rock and roll", "12 and 13",
                        "1 or 2 items", "it's fine", "john's order", "\"quoted\" text", "42",
                        "select one", "a; b", "5' 11\"", "union station"}) {
    EXPECT_EQ(SqliTokenizer(v), nullptr) << v << " -> " << SqliTokenizer(v);
  }
}

TEST(XssTokenizer, FiresOnMarkupThatRunsScript) {
  for (const char* v :
       {"<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
        "<a href=\"javascript:alert(1)\">x</a>", "\" onmouseover=\"alert(1)",
        "' onfocus='alert(1)' autofocus='", "<svg/onload=alert(1)>", "<a href=\"jav\tascript:x\">",
        "<div style=\"width:expression(alert(1))\">", "javascript:alert(1)", "<iframe src=//evil>",
        "<body onload=x>", "x onerror=alert(1)"}) {
    EXPECT_NE(XssTokenizer(v), nullptr) << v;
  }
}

TEST(XssTokenizer, QuietOnTextAndHarmlessMarkup) {
  for (const char* v :
       {"a < b and c > d", "<b>bold</b>", "<a href=\"/home\">home</a>", "the \"online\" store",
        "1 < 2", "<p class=\"x\">hi</p>", "go online=yes", "email me at <john@example.com>"}) {
    EXPECT_EQ(XssTokenizer(v), nullptr) << v << " -> " << XssTokenizer(v);
  }
}

}  // namespace
}  // namespace boing::detect

namespace boing::detect {
namespace {

// Arbitrary bytes through every parser of untrusted input (run under ASan/UBSan in test.sh's
// sanitizer tier): no crash, no out-of-bounds read, and normalisation reaches a fixed point.
TEST(ContentRobustness, ArbitraryBytes) {
  std::mt19937_64 rng(11);
  const std::string alphabet =
      "%&#;\\xXuU0123456789abcdefABCDEF<>'\"`()=-/*+|!$.,: \t\n\xC0\xAE\xEF\xBC";
  SignatureSet set;
  std::vector<ContentMatch> m;
  std::string norm, again;
  for (int i = 0; i < 20000; ++i) {
    std::string v(rng() % 64, '\0');
    for (char& c : v) c = rng() % 4 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng());
    Normalize(v, norm, i % 2 == 0);
    m.clear();
    set.Scan(norm, m);
    SqliTokenizer(norm);
    XssTokenizer(norm);
    SqliTokenizer(v);
    XssTokenizer(v);
    ValidUtf8(v);
    std::string t;
    TemplateOf(v, t);
  }
  Normalize("%25252525252541", norm, false);
  EXPECT_EQ(norm, "%252541");  // bounded rounds: four of the six %25 layers are decoded
}

}  // namespace
}  // namespace boing::detect
