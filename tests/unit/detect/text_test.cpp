#include "boing/detect/text.h"

#include <gtest/gtest.h>

#include <unordered_map>

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

// Random Get/Find over more keys than fit, against a reference map: every key the table still
// holds keeps the value last written, sizes and evictions add up, and the index survives
// evictions (backward-shift deletion) and growth.
TEST(BoundedMap, MatchesReferenceUnderRandomChurn) {
  for (size_t cap : {1u, 2u, 7u, 64u, 1000u}) {
    BoundedMap<uint64_t, uint64_t> m(cap);
    std::unordered_map<uint64_t, uint64_t> ref;
    uint64_t rng = 88172645463325252ULL, created = 0;
    auto next = [&rng] {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    for (int step = 0; step < 50000; ++step) {
      uint64_t key = next() % (cap * 3 + 5);
      if (next() % 4 == 0) {
        uint64_t* v = m.Find(key);
        if (v) {
          ASSERT_EQ(*v, ref[key]) << "cap " << cap << " key " << key;
        }
        continue;
      }
      bool fresh = false;
      uint64_t& v = m.Get(key, &fresh);
      if (fresh) {
        ASSERT_EQ(v, 0u);
        ++created;
      } else {
        ASSERT_EQ(v, ref[key]) << "cap " << cap << " key " << key;
      }
      v = next();
      ref[key] = v;
      ASSERT_LE(m.size(), cap);
      ASSERT_EQ(m.size() + m.evictions(), created);
    }
    size_t present = 0;
    for (uint64_t k = 0; k < cap * 3 + 5; ++k) present += m.Find(k) != nullptr;
    EXPECT_EQ(present, m.size()) << "cap " << cap;
  }
}

TEST(BoundedMap, KeepsTheLatestEntryAndReturningKeysThroughAFlood) {
  // 20 returning callers, each back every 20 steps, among 2 one-off keys per step: an LRU of 100
  // keeps them (59 other keys between two visits), and so must this table.
  BoundedMap<uint64_t, int> m(100);
  for (uint64_t k = 0; k < 20; ++k) m.Get(k) = 1;
  for (uint64_t k = 1000; k < 100000; ++k) {
    int& a = m.Get(k);  // one-off keys, two held at once as the pipeline does (IP, identity)
    a = 7;
    int& b = m.Get(k + 1000000);
    b = 8;
    ASSERT_EQ(a, 7);  // the first reference survived the second Get's eviction
    ASSERT_NE(m.Find(k), nullptr);
    m.Get(k % 20);
  }
  for (uint64_t k = 0; k < 20; ++k) {
    ASSERT_NE(m.Find(k), nullptr) << k;
    EXPECT_EQ(*m.Find(k), 1);
  }
  EXPECT_EQ(m.size(), 100u);
  EXPECT_EQ(m.evictions(), 2 * 99000u + 20 - 100);
}

}  // namespace
}  // namespace boing::detect
