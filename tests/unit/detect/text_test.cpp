#include "boing/detect/text.h"

#include <gtest/gtest.h>

#include "boing/detect/bounded_map.h"

namespace boing::detect {
namespace {

std::string T(std::string_view in, uint64_t* h = nullptr) {
  std::string out;
  TemplateOf(in, out, h);
  return out;
}

TEST(Templating, FoldsNumericUuidHexAndLongTokens) {
  EXPECT_EQ(T("/users/123/orders/9"), "/users/{id}/orders/{id}");
  EXPECT_EQ(T("/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "/items/{id}");
  EXPECT_EQ(T("/blobs/deadbeefcafe0123abcd"), "/blobs/{id}");
  EXPECT_EQ(T("/s/AbCdEfGhIjKlMnOpQr_s9-x"), "/s/{id}");
  EXPECT_EQ(T("/users/42?expand=orders#x"), "/users/{id}");
}

TEST(Templating, KeepsWordsVersionsAndShortHex) {
  EXPECT_EQ(T("/api/v1/users/me"), "/api/v1/users/me");
  EXPECT_EQ(T("/cafe/beef"), "/cafe/beef");  // hex letters without a digit are words
  EXPECT_EQ(T("/static/app.js"), "/static/app.js");
  EXPECT_EQ(T("/a-very-long-slug-without-digits-here"), "/a-very-long-slug-without-digits-here");
  EXPECT_EQ(T(""), "/");
  EXPECT_EQ(T("/"), "/");
}

TEST(Templating, IdsHashDiffersPerIdAndNotPerTemplate) {
  uint64_t a = 0, b = 0, c = 0;
  T("/users/1/orders/2", &a);
  T("/users/1/orders/3", &b);
  T("/users/1/orders/2?x=1", &c);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, c);
}

std::string N(std::string_view in, bool plus = false) {
  std::string out;
  Normalize(in, out, plus);
  return out;
}

TEST(Normalize, DecodesUrlEntitiesUnicodeAndLowercases) {
  EXPECT_EQ(N("%3CScRiPt%3E"), "<script>");
  EXPECT_EQ(N("%253Cscript%253E"), "<script>");  // double encoding
  EXPECT_EQ(N("&lt;img src=x&gt;"), "<img src=x>");
  EXPECT_EQ(N("&#60;&#x3C;&#X3c"), "<<<");
  EXPECT_EQ(N("%u003Cb%u003E"), "<b>");
  EXPECT_EQ(N("\\u003cb\\x3e"), "<b>");
  EXPECT_EQ(N("\xEF\xBC\x9C"
              "b"),
            "<b");                       // full-width less-than
  EXPECT_EQ(N("%c0%ae%c0%ae/"), "../");  // over-long UTF-8 dots
  EXPECT_EQ(N("a+b"), "a+b");
  EXPECT_EQ(N("a+b", true), "a b");
  EXPECT_EQ(N("UNION\tSELECT"), "union select");
}

TEST(Normalize, LeavesPlainTextAlone) {
  EXPECT_EQ(N("c/ caridad s/n"), "c/ caridad s/n");
  EXPECT_EQ(N("100%"), "100%");
  EXPECT_EQ(N("AT&T"), "at&t");
}

TEST(Utf8, RejectsOverlongSurrogatesAndTruncation) {
  EXPECT_TRUE(ValidUtf8("plain"));
  EXPECT_TRUE(ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(ValidUtf8("\xC0\xAF"));
  EXPECT_FALSE(ValidUtf8("\xED\xA0\x80"));
  EXPECT_FALSE(ValidUtf8("\xE2\x82"));
  EXPECT_FALSE(ValidUtf8("\xFF"));
}

TEST(BoundedMap, EvictsLeastRecentlyUsedAndCounts) {
  BoundedMap<int, int> m(2);
  m.Get(1) = 10;
  m.Get(2) = 20;
  m.Get(1);  // 2 is now the least recently used
  m.Get(3) = 30;
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.evictions(), 1u);
  EXPECT_EQ(m.Find(2), nullptr);
  ASSERT_NE(m.Find(1), nullptr);
  EXPECT_EQ(*m.Find(1), 10);
}

}  // namespace
}  // namespace boing::detect
