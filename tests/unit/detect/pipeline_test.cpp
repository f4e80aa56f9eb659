#include "boing/detect/pipeline.h"

#include <gtest/gtest.h>

#include "detector_settings.h"

namespace boing::detect {
namespace {

using test_util::Cfg;

Event Ev(double t, std::string endpoint = "/users/42", std::string ip = "198.51.100.7",
         int status = 200) {
  Event e;
  e.api_id = 1;
  e.timestamp = t;
  e.method = "GET";
  e.endpoint = std::move(endpoint);
  e.client_ip = std::move(ip);
  e.status_code = status;
  e.latency_ms = 20;
  e.response_size = 500;
  e.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0";
  return e;
}

std::vector<Finding> Detect(Pipeline& p, const Event& e) {
  std::vector<Finding> out;
  p.Process(e, out);
  return out;
}

bool Has(const std::vector<Finding>& f, std::string_view detector) {
  for (const auto& x : f)
    if (x.detector == detector) return true;
  return false;
}

const Finding* Get(const std::vector<Finding>& f, std::string_view detector) {
  for (const auto& x : f)
    if (x.detector == detector) return &x;
  return nullptr;
}

TEST(Pipeline, BenignTrafficRaisesNothing) {
  Pipeline p;
  for (int i = 0; i < 2000; ++i) {
    Event e =
        Ev(1000 + i * 2.0, "/users/" + std::to_string(i % 7) + "?page=" + std::to_string(i % 3),
           "198.51.100." + std::to_string(i % 50));
    e.latency_ms = 20 + (i % 10);
    e.headers = {{"Accept", "application/json"}, {"Referer", "https://shop.example/cart?item=3"}};
    auto f = Detect(p, e);
    EXPECT_TRUE(f.empty()) << i << ": " << f[0].detector << " " << f[0].message;
    if (!f.empty()) break;
  }
}

TEST(Pipeline, SqliInQueryBodyHeaderAndPath) {
  Pipeline p;
  auto f = Detect(p, Ev(1, "/search?q=1%27%20or%20%271%27%3D%271"));
  ASSERT_TRUE(Has(f, "sqli"));
  const Finding* s = Get(f, "sqli");
  EXPECT_EQ(s->evidence["location"], "query");
  EXPECT_EQ(s->severity, Severity::kHigh);
  EXPECT_EQ(s->actor, "ip:198.51.100.7");
  EXPECT_EQ(s->endpoint_template, "/search");

  Event body = Ev(2, "/login");
  body.method = "POST";
  body.headers = {{"Content-Type", "application/json"}};
  body.payload = R"({"user":"admin' --","password":"x"})";
  f = Detect(p, body);
  ASSERT_TRUE(Has(f, "sqli"));
  EXPECT_EQ(Get(f, "sqli")->evidence["location"], "body");

  Event header = Ev(3, "/");
  header.headers = {{"X-Forwarded-Host", "x' union select password from users--"}};
  f = Detect(p, header);
  ASSERT_TRUE(Has(f, "sqli"));
  EXPECT_EQ(Get(f, "sqli")->evidence["location"], "header:x-forwarded-host");

  f = Detect(p, Ev(4, "/items/1%20union%20select%20null,null"));
  ASSERT_TRUE(Has(f, "sqli"));
  EXPECT_EQ(Get(f, "sqli")->evidence["location"], "path");
}

TEST(Pipeline, OtherInjectionClasses) {
  Pipeline p;
  EXPECT_TRUE(Has(Detect(p, Ev(1, "/p?name=%3Cscript%3Ealert(1)%3C/script%3E")), "xss"));
  EXPECT_TRUE(Has(Detect(p, Ev(2, "/files?path=..%2F..%2Fetc%2Fpasswd")), "path_traversal"));
  EXPECT_TRUE(Has(Detect(p, Ev(3, "/ping?host=127.0.0.1%3Bcat%20/etc/hosts")), "cmdi"));
  EXPECT_TRUE(Has(Detect(p, Ev(4, "/dir?user=*)(uid=*))(|(uid=*")), "ldapi"));
  EXPECT_TRUE(Has(Detect(p, Ev(5, "/login?user[$ne]=x&password[$ne]=y")), "nosqli"));
  Event json = Ev(6, "/login");
  json.method = "POST";
  json.headers = {{"Content-Type", "application/json"}};
  json.payload = R"({"user":"admin","password":{"$ne":null}})";
  EXPECT_TRUE(Has(Detect(p, json), "nosqli"));
  // Form bodies: each value alone, so "&id=" never reads as a command.
  Event form = Ev(7, "/orders");
  form.method = "POST";
  form.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  form.payload = "item=3&id=7&note=hello+world";
  EXPECT_TRUE(Detect(p, form).empty());
}

TEST(Pipeline, DisabledDetectorIsSilentFromTheNextEvent) {
  Pipeline p;
  ASSERT_TRUE(Has(Detect(p, Ev(1, "/s?q=1%20union%20select%201")), "sqli"));
  p.Configure({Cfg("sqli", nlohmann::json::object(), false)});
  EXPECT_FALSE(Has(Detect(p, Ev(2, "/s?q=1%20union%20select%201")), "sqli"));
  p.Configure({Cfg("sqli", nlohmann::json::object(), true, Severity::kCritical)});
  auto f = Detect(p, Ev(3, "/s?q=1%20union%20select%201"));
  ASSERT_TRUE(Has(f, "sqli"));
  EXPECT_EQ(Get(f, "sqli")->severity, Severity::kCritical);
}

TEST(Pipeline, WhitelistSuppressesBlacklistFires) {
  Pipeline p;
  p.SetLists({{false, "cidr", "203.0.113.0/24", 0, 0},
              {true, "ip", "198.51.100.9", 1, 0},
              {false, "identity", "abc123", 2, 0},
              {false, "ip", "192.0.2.1", 0, 500}});
  auto f = Detect(p, Ev(1, "/", "203.0.113.77"));
  ASSERT_TRUE(Has(f, "blacklist"));
  EXPECT_EQ(Get(f, "blacklist")->evidence["kind"], "cidr");
  EXPECT_FALSE(Has(Detect(p, Ev(2, "/", "198.51.100.8")), "blacklist"));
  // Whitelisted: even an injection raises nothing.
  EXPECT_TRUE(Detect(p, Ev(3, "/s?q=1%20union%20select%201", "198.51.100.9")).empty());
  // Identity entries apply to their API only.
  Event e = Ev(4, "/");
  e.identity = "abc123";
  EXPECT_FALSE(Has(Detect(p, e), "blacklist"));
  e.api_id = 2;
  EXPECT_TRUE(Has(Detect(p, e), "blacklist"));
  // Expired entries no longer match.
  EXPECT_TRUE(Has(Detect(p, Ev(100, "/", "192.0.2.1")), "blacklist"));
  EXPECT_FALSE(Has(Detect(p, Ev(600, "/", "192.0.2.1")), "blacklist"));
}

TEST(Pipeline, RateLimitPerActorAndPerEndpoint) {
  Pipeline p;
  p.Configure({Cfg("rate_limit", {{"per_minute", 10},
                                  {"per_hour", 1000},
                                  {"endpoint_per_minute", 25},
                                  {"endpoint_per_hour", 100000}})});
  int fired_at = -1;
  for (int i = 0; i < 11; ++i) {
    if (Has(Detect(p, Ev(6000 + i, "/a")), "rate_limit")) {
      fired_at = i;
      break;
    }
  }
  EXPECT_EQ(fired_at, 10);  // the 11th request in a minute
  // Spread over 10 IPs: no actor exceeds 10/min but the endpoint passes 25/min.
  Pipeline q;
  q.Configure({Cfg("rate_limit", {{"per_minute", 10}, {"endpoint_per_minute", 25}})});
  const Finding* ep = nullptr;
  std::vector<Finding> all;
  for (int i = 0; i < 30 && !ep; ++i) {
    all = Detect(q,
                 Ev(6000 + i * 0.5, "/b/" + std::to_string(i), "10.0.0." + std::to_string(i % 10)));
    ep = Get(all, "rate_limit");
  }
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->evidence["scope"], "endpoint");
  EXPECT_EQ(ep->endpoint_template, "/b/{id}");
  // Slow traffic under both limits stays quiet.
  Pipeline r;
  r.Configure({Cfg("rate_limit", {{"per_minute", 10}})});
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(Has(Detect(r, Ev(6000 + i * 7.0, "/a")), "rate_limit"));
}

TEST(Pipeline, MalformedPayloads) {
  Pipeline p;
  Event bad = Ev(1, "/api");
  bad.method = "POST";
  bad.headers = {{"Content-Type", "application/json"}};
  bad.payload = "{\"a\": 1,";
  auto f = Detect(p, bad);
  ASSERT_TRUE(Has(f, "malformed"));
  EXPECT_NE(Get(f, "malformed")->message.find("invalid JSON"), std::string::npos);
  bad.payload = "{\"a\": 1}";
  EXPECT_FALSE(Has(Detect(p, bad), "malformed"));
  // A truncated excerpt of a larger body is not judged.
  bad.payload = "{\"a\": 1,";
  bad.body_size = 5000;
  EXPECT_FALSE(Has(Detect(p, bad), "malformed"));

  EXPECT_TRUE(Has(Detect(p, Ev(2, "/x/\xC0\xAF")), "malformed"));
  Event big = Ev(3, "/");
  big.headers = {{"X-Filler", std::string(10000, 'a')}};
  EXPECT_TRUE(Has(Detect(p, big), "malformed"));
  Event m = Ev(4, "/");
  m.method = "PROPFIND";
  EXPECT_TRUE(Has(Detect(p, m), "malformed"));
}

TEST(Pipeline, BruteForceAndCredentialStuffing) {
  Pipeline p;
  p.Configure(
      {Cfg("brute_force", {{"failures", 5}, {"stuffing_failures", 20}, {"stuffing_ips", 10}})});
  int fired = -1;
  for (int i = 0; i < 10 && fired < 0; ++i) {
    Event e = Ev(100 + i, "/api/login", "198.51.100.1", 401);
    e.method = "POST";
    if (Has(Detect(p, e), "brute_force")) fired = i;
  }
  EXPECT_EQ(fired, 4);
  // Failures on a non-auth endpoint, and successful logins, are not brute force.
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(Has(Detect(p, Ev(200 + i, "/api/orders", "198.51.100.2", 403)), "brute_force"));
    EXPECT_FALSE(Has(Detect(p, Ev(200 + i, "/api/login", "198.51.100.3", 200)), "brute_force"));
  }
  // Stuffing: 2 failures each from many addresses.
  Pipeline q;
  q.Configure(
      {Cfg("brute_force", {{"failures", 5}, {"stuffing_failures", 20}, {"stuffing_ips", 10}})});
  const Finding* st = nullptr;
  std::vector<Finding> f;
  for (int i = 0; i < 40 && !st; ++i) {
    f = Detect(q, Ev(300 + i, "/api/login", "192.0.2." + std::to_string(i / 2), 401));
    st = Get(f, "brute_force");
  }
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->evidence["kind"], "credential_stuffing");
  EXPECT_EQ(st->actor, "api:1");
}

TEST(Pipeline, EnumerationOfIdsAndNotFoundRatio) {
  Pipeline p;
  p.Configure({Cfg("enumeration", {{"distinct_ids", 30}, {"min_requests", 20}})});
  int fired = -1;
  for (int i = 0; i < 60 && fired < 0; ++i) {
    auto f = Detect(p, Ev(10 + i, "/invoices/" + std::to_string(1000 + i)));
    if (Has(f, "enumeration")) fired = i;
  }
  EXPECT_GE(fired, 27);
  EXPECT_LE(fired, 32);
  // The same few ids again and again is not enumeration.
  Pipeline q;
  q.Configure({Cfg("enumeration", {{"distinct_ids", 30}, {"min_requests", 20}})});
  for (int i = 0; i < 200; ++i) {
    EXPECT_FALSE(Has(Detect(q, Ev(10 + i, "/invoices/" + std::to_string(i % 5))), "enumeration"));
  }
  // Probing unknown paths: mostly 404.
  const Finding* nf = nullptr;
  std::vector<Finding> f;
  for (int i = 0; i < 40 && !nf; ++i) {
    f = Detect(q, Ev(500 + i, "/probe" + std::string(1, static_cast<char>('a' + i % 26)),
                     "192.0.2.50", 404));
    nf = Get(f, "enumeration");
  }
  ASSERT_NE(nf, nullptr);
  EXPECT_EQ(nf->evidence["kind"], "not_found_ratio");
}

TEST(Pipeline, ScrapingByVolumeOfDistinctPagesAndByBot) {
  Pipeline p;
  p.Configure({Cfg("scraping", {{"min_requests", 100}, {"bot_min_requests", 40}})});
  bool fired = false;
  for (int i = 0; i < 120 && !fired; ++i) {
    fired = Has(Detect(p, Ev(10 + i, "/products/" + std::to_string(i) + "/reviews")), "scraping");
  }
  EXPECT_TRUE(fired);
  // A browser polling the same page is not scraping.
  Pipeline q;
  q.Configure({Cfg("scraping", {{"min_requests", 100}, {"bot_min_requests", 40}})});
  for (int i = 0; i < 250; ++i) EXPECT_FALSE(Has(Detect(q, Ev(10 + i, "/status")), "scraping"));
  // An automated client walking pages fires sooner.
  Pipeline r;
  r.Configure({Cfg("scraping", {{"min_requests", 100}, {"bot_min_requests", 40}})});
  int at = -1;
  for (int i = 0; i < 100 && at < 0; ++i) {
    Event e = Ev(10 + i, "/products/" + std::to_string(i));
    e.user_agent = "python-requests/2.31";
    if (Has(Detect(r, e), "scraping")) at = i;
  }
  EXPECT_GE(at, 39);
  EXPECT_LT(at, 60);
}

TEST(Pipeline, ZScoreOnLatencySizeAndRate) {
  Pipeline p;
  p.Configure({Cfg("zscore", {{"threshold", 4}, {"min_samples", 50}, {"cooldown_seconds", 0}})});
  for (int i = 0; i < 600; ++i) {
    Event e = Ev(1000 + i * 6.0, "/orders/" + std::to_string(i % 9));
    e.latency_ms = 50 + (i % 7);
    e.response_size = 1000 + (i % 13) * 10;
    ASSERT_FALSE(Has(Detect(p, e), "zscore")) << i;
  }
  Event slow = Ev(5000, "/orders/3");
  slow.latency_ms = 900;
  auto f = Detect(p, slow);
  ASSERT_TRUE(Has(f, "zscore"));
  EXPECT_EQ(Get(f, "zscore")->evidence["metric"], "latency_ms");
  Event big = Ev(5001, "/orders/4");
  big.response_size = 900000;
  f = Detect(p, big);
  ASSERT_TRUE(Has(f, "zscore"));
  EXPECT_EQ(Get(f, "zscore")->evidence["metric"], "size_bytes");
  // Rate: ~10/minute for an hour, then a burst of 200 in one minute.
  Pipeline q;
  q.Configure({Cfg("zscore", {{"threshold", 4}, {"min_samples", 50}})});
  for (int i = 0; i < 600; ++i) Detect(q, Ev(60000 + i * 6.0 + (i % 3), "/feed"));
  bool rate = false;
  for (int i = 0; i < 200 && !rate; ++i) {
    auto g = Detect(q, Ev(63700 + i * 0.2, "/feed"));
    if (const Finding* z = Get(g, "zscore")) rate = z->evidence["metric"] == "requests_per_minute";
  }
  EXPECT_TRUE(rate);
}

TEST(Pipeline, RollingPercentileOutlier) {
  Pipeline p;
  p.Configure({Cfg("percentile", {{"quantile", 0.99}, {"factor", 3}, {"min_samples", 100}}),
               Cfg("zscore", nlohmann::json::object(), false)});
  for (int i = 0; i < 500; ++i) {
    Event e = Ev(1000 + i, "/report");
    e.latency_ms = 100 + (i % 50);
    ASSERT_FALSE(Has(Detect(p, e), "percentile")) << i;
  }
  Event e = Ev(1600, "/report");
  e.latency_ms = 400;  // under 3 x p99 (~148)
  EXPECT_FALSE(Has(Detect(p, e), "percentile"));
  e.latency_ms = 2000;
  EXPECT_TRUE(Has(Detect(p, e), "percentile"));
}

TEST(Pipeline, StateStaysBoundedUnderRotatingIps) {
  PipelineLimits limits;
  limits.max_actors_per_api = 5000;
  limits.max_enum_keys_per_api = 5000;
  Pipeline p(limits);
  std::vector<Finding> out;
  for (uint32_t i = 0; i < 300000; ++i) {
    Event e = Ev(1000 + i * 0.001, "/users/" + std::to_string(i % 100),
                 std::to_string(10 + (i >> 16)) + "." + std::to_string((i >> 8) & 255) + "." +
                     std::to_string(i & 255) + ".1");
    out.clear();
    p.Process(e, out);
  }
  PipelineCounters c = p.Counters();
  EXPECT_EQ(c.events, 300000u);
  EXPECT_LE(c.actors, 5000u);
  EXPECT_GT(c.evictions, 290000u);
}

TEST(Pipeline, ProcessValueReportsClasses) {
  Pipeline p;
  std::vector<Finding> out;
  p.ProcessValue("-1' union all select 1,2,3--", out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].detector, "sqli");
  out.clear();
  p.ProcessValue("calle mayor 5", out);
  EXPECT_TRUE(out.empty());
}

// The llm stage's pick: off by default; with it on, a signature match the classifier does not
// confirm (here there is no classifier at all) is handed over once, bounded, with its context.
TEST(Pipeline, ReviewPicksUnconfirmedSignatureMatches) {
  Pipeline p;
  PayloadReview r;
  Event attack = Ev(1000, "/search?q=1%27%20union%20select%20password%20from%20users--");
  attack.id = 7;
  Detect(p, attack);
  EXPECT_FALSE(p.TakeReview(&r)) << "llm is off unless configured";

  p.Configure({Cfg("llm", {{"max_payload_bytes", 20}}, true, Severity::kHigh)});
  auto f = Detect(p, attack);
  EXPECT_TRUE(Has(f, "sqli"));
  EXPECT_FALSE(Has(f, "llm")) << "the pipeline only picks; the verdict comes from the LLM";
  ASSERT_TRUE(p.TakeReview(&r));
  EXPECT_EQ(r.reason, "signature_unconfirmed");
  EXPECT_EQ(r.signature, "sqli");
  EXPECT_EQ(r.location, "query");
  EXPECT_EQ(r.value, "1' union select pass");  // normalised, cut to max_payload_bytes
  EXPECT_LT(r.probability, 0) << "no classifier ran";
  EXPECT_EQ(r.finding.detector, "llm");
  EXPECT_EQ(r.finding.severity, Severity::kHigh);
  EXPECT_EQ(r.finding.event_id, 7);
  EXPECT_EQ(r.finding.actor, "ip:198.51.100.7");
  EXPECT_EQ(r.finding.endpoint_template, "/search");
  EXPECT_FALSE(p.TakeReview(&r)) << "taken once";

  Detect(p, Ev(1001, "/search?q=garden+chairs"));
  EXPECT_FALSE(p.TakeReview(&r)) << "nothing suspicious, nothing to review";

  p.Configure({Cfg("llm", {{"review_unconfirmed_signatures", false}})});
  Detect(p, attack);
  EXPECT_FALSE(p.TakeReview(&r));
}

}  // namespace
}  // namespace boing::detect
