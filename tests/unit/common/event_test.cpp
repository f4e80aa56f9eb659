#include "boing/event.h"

#include <gtest/gtest.h>

#include <random>

#include "boing/crypto.h"

namespace boing {
namespace {

constexpr std::string_view kSeedPython = R"({
  "api_key": "k1", "timestamp": 1764050000.123456, "method": "get", "endpoint": "/users/42",
  "client_ip": "203.0.113.9",
  "headers": {"Host": "shop.example", "User-Agent": "curl/8", "Authorization": "Bearer abc.def"},
  "status_code": 200, "latency_ms": 12.5, "body_size": 0})";

TEST(EventParse, AcceptsSeedPythonEvent) {
  Event e;
  auto err = ParseEvent(kSeedPython, EventLimits{}, e);
  ASSERT_FALSE(err) << err->field << ": " << err->message;
  EXPECT_EQ(e.api_key, "k1");
  EXPECT_DOUBLE_EQ(e.timestamp, 1764050000.123456);
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.endpoint, "/users/42");
  EXPECT_EQ(e.status_code, 200);
  EXPECT_EQ(e.headers.size(), 3u);
  EXPECT_EQ(*e.body_size, 0);
}

TEST(EventParse, AcceptsNodeStyleArraysNullsAndIntegralFloats) {
  Event e;
  auto err = ParseEvent(
      R"({"timestamp":1764050000,"method":"POST","endpoint":"/x","client_ip":"::ffff:127.0.0.1",
          "headers":{"accept":["a","b"]},"status_code":201.0,"latency_ms":3,"body_size":null,
          "unknown_field":{"deep":[1,2,3]}})",
      EventLimits{}, e);
  ASSERT_FALSE(err) << err->field << ": " << err->message;
  EXPECT_EQ(e.headers[0].second, "a, b");
  EXPECT_EQ(e.status_code, 201);
  EXPECT_FALSE(e.body_size.has_value());
}

struct Bad {
  const char* json;
  const char* field;
};

class EventReject : public ::testing::TestWithParam<Bad> {};

TEST_P(EventReject, NamesTheField) {
  Event e;
  auto err = ParseEvent(GetParam().json, EventLimits{}, e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->field, GetParam().field) << err->message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EventReject,
    ::testing::Values(
        Bad{R"({"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})",
            "timestamp"},
        Bad{R"({"timestamp":"now","method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})",
            "timestamp"},
        Bad{R"({"timestamp":1764050000000,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})",
            "timestamp"},
        Bad{R"({"timestamp":1,"method":"G ET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})",
            "method"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3","status_code":200,"latency_ms":1})",
            "client_ip"},
        // Found by fuzz_net: text after an embedded NUL passed as part of a valid address.
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4\u0000<b>","status_code":200,"latency_ms":1})",
            "client_ip"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":700,"latency_ms":1})",
            "status_code"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200.5,"latency_ms":1})",
            "status_code"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":-1})",
            "latency_ms"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1,"headers":[]})",
            "headers"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1,"headers":{"a":{"b":1}}})",
            "headers"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1,"seq":5})",
            "agent_id"},
        Bad{R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1,"tls":"yes"})",
            "tls"},
        Bad{R"([1,2])", ""}, Bad{R"({"timestamp":)", ""}));

// Found by fuzz_tracker: the agent reads any RFC 9110 token as a method ("G%T"), and ingest
// rejected what it did not know, so requests with odd methods went unseen.
TEST(EventParse, MethodIsAnyHttpToken) {
  for (const char* m : {"G%T", "PROPFIND", "M-SEARCH", "x!#$&'*+.^_`|~"}) {
    Event e;
    std::string json =
        std::string(R"({"timestamp":1,"method":")") + m +
        R"(","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})";
    EXPECT_FALSE(ParseEvent(json, {}, e)) << m;
  }
  for (const char* m : {"G ET", "GE(T", "G,T", "G:T", "GET/", ""}) {
    Event e;
    std::string json =
        std::string(R"({"timestamp":1,"method":")") + m +
        R"(","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})";
    auto err = ParseEvent(json, {}, e);
    ASSERT_TRUE(err) << m;
    EXPECT_EQ(err->field, "method");
  }
}

TEST(EventParse, EnforcesLimits) {
  EventLimits lim;
  lim.max_endpoint_len = 10;
  lim.max_headers = 1;
  Event e;
  auto err = ParseEvent(
      R"({"timestamp":1,"method":"GET","endpoint":"/0123456789abc","client_ip":"1.2.3.4","status_code":200,"latency_ms":1})",
      lim, e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->field, "endpoint");
  EXPECT_NE(err->message.find("10"), std::string::npos);
  Event e2;
  err = ParseEvent(
      R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,"latency_ms":1,"headers":{"a":"1","b":"2"}})",
      lim, e2);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->field, "headers");
}

// fuzz_event_json finding: each repeated "headers" key appended its entries, so an event could
// carry any number of headers past max_headers (and re-serialized into one the parser refused).
TEST(EventParse, RepeatedHeadersKeyReplacesTheEarlierObject) {
  EventLimits lim;
  lim.max_headers = 2;
  Event e;
  auto err = ParseEvent(
      R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4","status_code":200,)"
      R"("latency_ms":1,"headers":{"a":"1","b":"2"},"headers":{"c":"3","d":"4"},)"
      R"("headers":{"e":"5"}})",
      lim, e);
  ASSERT_FALSE(err) << err->message;
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.headers[0].first, "e");
  Event back;
  EXPECT_FALSE(ParseEvent(EventToJson(e), lim, back));
  EXPECT_EQ(back.headers, e.headers);
}

TEST(EventParse, RejectsDeepNesting) {
  std::string deep = R"({"timestamp":1,"method":"GET","endpoint":"/","client_ip":"1.2.3.4",)"
                     R"("status_code":200,"latency_ms":1,"x":)";
  for (int i = 0; i < 50; ++i) deep += "[";
  for (int i = 0; i < 50; ++i) deep += "]";
  deep += "}";
  Event e;
  auto err = ParseEvent(deep, EventLimits{}, e);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("depth"), std::string::npos);
}

TEST(EventBatch, ArrayRejectsOnlyBadItems) {
  std::vector<BatchItem> items;
  auto err = ParseEventBatch(
      R"([{"timestamp":1,"method":"GET","endpoint":"/a","client_ip":"1.2.3.4","status_code":200,"latency_ms":1},
          {"timestamp":1,"method":"GET","endpoint":"/b","client_ip":"bad","status_code":200,"latency_ms":1},
          {"timestamp":1,"method":"GET","endpoint":"/c","client_ip":"::1","status_code":200,"latency_ms":1}])",
      EventLimits{}, items, 100);
  ASSERT_FALSE(err);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_FALSE(items[0].error);
  ASSERT_TRUE(items[1].error);
  EXPECT_EQ(items[1].error->field, "client_ip");
  EXPECT_FALSE(items[2].error);
  EXPECT_EQ(items[2].event.endpoint, "/c");
}

TEST(EventBatch, NdjsonWithGarbageLine) {
  std::vector<BatchItem> items;
  auto err = ParseEventBatch(
      "{\"timestamp\":1,\"method\":\"GET\",\"endpoint\":\"/a\",\"client_ip\":\"1.2.3.4\","
      "\"status_code\":200,\"latency_ms\":1}\n\n{not json}\r\n"
      "{\"timestamp\":2,\"method\":\"PUT\",\"endpoint\":\"/b\",\"client_ip\":\"1.2.3.4\","
      "\"status_code\":204,\"latency_ms\":1}",
      EventLimits{}, items, 100);
  ASSERT_FALSE(err);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_FALSE(items[0].error);
  EXPECT_TRUE(items[1].error);
  EXPECT_EQ(items[2].event.method, "PUT");
  EXPECT_EQ(items[2].index, 2u);
}

TEST(EventBatch, BoundsItemCount) {
  std::vector<BatchItem> items;
  auto err = ParseEventBatch("[{},{},{}]", EventLimits{}, items, 2);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("2"), std::string::npos);
}

TEST(EventJson, RoundTrips) {
  Event e;
  ASSERT_FALSE(ParseEvent(kSeedPython, EventLimits{}, e));
  e.agent_id = "ag";
  e.seq = 7;
  e.tls = true;
  std::string json = EventToJson(e);
  EXPECT_EQ(json.find("api_key"), std::string::npos);
  Event back;
  ASSERT_FALSE(ParseEvent(json, EventLimits{}, back));
  EXPECT_EQ(back.endpoint, e.endpoint);
  EXPECT_EQ(back.headers, e.headers);
  EXPECT_EQ(*back.seq, 7);
  EXPECT_TRUE(*back.tls);
}

// The hand-written encoder must give nlohmann's bytes for every event whose text is valid UTF-8
// (escapes, every optional field, repeated header names, numbers of every shape), and fall back to
// it (U+FFFD) for text that is not.
TEST(EventJson, HandWrittenEncoderMatchesNlohmann) {
  std::mt19937_64 rng(42);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> pieces = {"a",
                                           "/users/42",
                                           "\"",
                                           "\\",
                                           "\b",
                                           "\f",
                                           "\n",
                                           "\r",
                                           "\t",
                                           std::string(1, '\0'),
                                           "\x01",
                                           "\x1f",
                                           "\x7f",
                                           " ",
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80",
                                           "?q=1&x=2"};
  auto text = [&]() {
    std::string s;
    for (size_t i = pick(6); i > 0; --i) s += pieces[pick(pieces.size())];
    return s;
  };
  const std::vector<double> numbers = {0.0,  -0.0, 1.0,   12.5,   1764050000.123456,
                                       1e-7, 1e21, 0.1,   3e300,  123456789012345678.0,
                                       0.05, 2.5,  -1.25, 1.0 / 3};
  for (int round = 0; round < 3000; ++round) {
    Event e;
    e.timestamp = round % 7 == 0 ? numbers[pick(numbers.size())]
                                 : 1.7e9 + static_cast<double>(rng() % 1000000000) / 1e6;
    e.method = text();
    e.endpoint = text();
    e.client_ip = text();
    for (size_t i = pick(5); i > 0; --i) {
      std::string name = pick(3) == 0 ? "Host" : text();
      e.headers.emplace_back(name, text());
    }
    e.status_code = static_cast<int>(pick(600));
    e.latency_ms = round % 5 == 0 ? numbers[pick(numbers.size())]
                                  : static_cast<double>(rng() % 100000000) / 1e6;
    if (pick(2)) e.body_size = static_cast<int64_t>(rng() >> 1);
    if (pick(2)) e.response_size = static_cast<int64_t>(pick(100000));
    for (std::string* f :
         {&e.query, &e.payload, &e.user_agent, &e.host, &e.identity, &e.server_ip, &e.protocol,
          &e.agent_id, &e.host_name, &e.comm, &e.container_id, &e.pod, &e.k8s_namespace})
      if (pick(2)) *f = text();
    if (pick(2)) e.server_port = static_cast<int>(pick(65536));
    if (pick(2)) e.tls = pick(2) == 1;
    if (pick(2)) e.seq = static_cast<int64_t>(rng() >> 1);
    if (pick(2)) e.pid = static_cast<int64_t>(pick(1 << 22));
    if (pick(2)) e.cgroup_id = rng();
    ASSERT_EQ(EventToJson(e), EventToJsonNlohmann(e)) << "round " << round;
  }
  Event bad;
  bad.method = "GET";
  bad.endpoint = "/x\xff\xc3";
  bad.headers = {{"X-A", "ok"}, {"X-B", "\xed\xa0\x80"}};
  bad.payload = std::string("\x80\x81 bin", 6);
  EXPECT_EQ(EventToJson(bad), EventToJsonNlohmann(bad));
  EXPECT_NE(EventToJson(bad).find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
  std::string buf = "prefix";
  AppendEventJson(bad, buf);
  EXPECT_EQ(buf, "prefix" + EventToJsonNlohmann(bad));
}

TEST(Scrub, IdentityFromHeadersPicksTheStrongestCredentialWithoutChangingThem) {
  std::vector<std::pair<std::string, std::string>> h = {
      {"Cookie", "session=s1"}, {"X-Api-Key", "k-1"}, {"AUTHORIZATION", "Bearer tok"}};
  const auto copy = h;
  EXPECT_EQ(IdentityFromHeaders(h, "idkey", {"x-api-key"}), IdentityOf("idkey", "tok"));
  EXPECT_EQ(h, copy);
  h.pop_back();
  EXPECT_EQ(IdentityFromHeaders(h, "idkey", {"x-api-key"}), IdentityOf("idkey", "k-1"));
  EXPECT_EQ(IdentityFromHeaders(h, "idkey", {}), IdentityOf("idkey", "session=s1"));
  EXPECT_EQ(IdentityFromHeaders(h, "", {}), "") << "no key, no identity";
  EXPECT_EQ(IdentityFromHeaders({{"Authorization", "   "}, {"Set-Cookie", "a=b"}}, "idkey", {}), "")
      << "an empty credential or a response cookie is no identity";
}

TEST(Scrub, RemovesSecretsAndSetsIdentity) {
  Event e;
  ASSERT_FALSE(ParseEvent(kSeedPython, EventLimits{}, e));
  e.headers.emplace_back("cookie", "session=s3cr3t");
  e.headers.emplace_back("X-Api-Key", "k-123");
  ScrubSecrets(e, "idkey", {"x-api-key"});
  for (const auto& [k, v] : e.headers) {
    EXPECT_EQ(v.find("abc.def"), std::string::npos);
    EXPECT_EQ(v.find("s3cr3t"), std::string::npos);
    EXPECT_EQ(v.find("k-123"), std::string::npos);
  }
  EXPECT_EQ(e.headers.size(), 2u);
  EXPECT_EQ(e.identity, IdentityOf("idkey", "abc.def"));
  EXPECT_EQ(e.identity.size(), 32u);
  EXPECT_EQ(e.user_agent, "curl/8");
  EXPECT_EQ(e.host, "shop.example");
}

TEST(Scrub, JwtSubjectIsTheCredential) {
  crypto::JwtClaims c1, c2;
  c1.sub = c2.sub = "alice";
  c1.exp = 4102444800;
  c2.exp = 1;
  Event a, b;
  a.headers = {{"Authorization", "Bearer " + crypto::JwtSign(c1, "k")}};
  b.headers = {{"authorization", "bearer " + crypto::JwtSign(c2, "z")}};
  ScrubSecrets(a, "idkey", {});
  ScrubSecrets(b, "idkey", {});
  EXPECT_EQ(a.identity, b.identity);
  EXPECT_EQ(a.identity, IdentityOf("idkey", "sub:alice"));
}

TEST(Scrub, BasicAuthIdentityIsTheUser) {
  Event a, b;
  a.headers = {{"Authorization", "Basic " + crypto::Base64("bob:pw1")}};
  b.headers = {{"Authorization", "Basic " + crypto::Base64("bob:pw2")}};
  ScrubSecrets(a, "k", {});
  ScrubSecrets(b, "k", {});
  EXPECT_EQ(a.identity, b.identity);
  EXPECT_FALSE(a.identity.empty());
}

}  // namespace
}  // namespace boing
