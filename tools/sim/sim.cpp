#include "sim.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <queue>
#include <stdexcept>

#include "boing/url.h"

namespace boing::sim {
namespace {

constexpr std::array<const char*, 5> kBrowserAgents = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "ShopApp/3.2.1 (Android 14; Pixel 8)"};

constexpr std::array<const char*, 24> kSearchTerms = {
    "red shoes",      "usb-c cable",  "O'Brien jacket",  "kids 3-5 years", "garden chair",
    "50% off",        "size 10.5",    "coffee & tea",    "select a size",  "phone case",
    "winter coat",    "desk lamp",    "running socks",   "gift card",      "rock'n'roll tee",
    "café au lait",   "4k monitor",   "a/b testing kit", "1/2 inch drill", "c++ book",
    "wireless mouse", "best sellers", "new arrivals",    "yoga mat"};

constexpr std::array<const char*, 8> kSqli = {"1' OR '1'='1",
                                              "1 UNION SELECT username, password FROM users--",
                                              "'; DROP TABLE orders; --",
                                              "1 AND SLEEP(5)",
                                              "admin'--",
                                              "1' AND extractvalue(1,concat(0x7e,version()))--",
                                              "-1 OR 1=1",
                                              "' OR 1=1 LIMIT 1 -- -"};
constexpr std::array<const char*, 6> kXss = {"<script>alert(1)</script>",
                                             "\"><img src=x onerror=alert(document.cookie)>",
                                             "<svg/onload=alert(1)>",
                                             "javascript:alert(1)",
                                             "<iframe src=\"javascript:alert(1)\">",
                                             "<body onload=alert('x')>"};
constexpr std::array<const char*, 5> kTraversal = {
    "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fshadow", "....//....//etc/passwd",
    "..\\..\\..\\windows\\win.ini", "/var/www/../../etc/hosts"};

// A stable pseudo-identity (what an application's hashed credential looks like).
std::string IdentityOfUser(uint64_t seed, size_t user) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (int i = 0; i < 2; ++i) {
    h ^= user + 0x9e3779b97f4a7c15ULL * (i + 1);
    h *= 1099511628211ULL;
    h ^= h >> 29;
  }
  char buf[33];
  uint64_t h2 = h * 0xff51afd7ed558ccdULL;
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h),
                static_cast<unsigned long long>(h2));
  return buf;
}

std::string Ip(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}

// Benign caller u's address: residential-looking addresses spread over many /16s.
std::string UserIp(size_t u) {
  return Ip(static_cast<int>(20 + u % 180), static_cast<int>((u * 37) % 250 + 1),
            static_cast<int>((u * 11) % 250 + 1), static_cast<int>(u % 250 + 2));
}

struct Labelled {
  Event event;
  std::string label;
};
struct Later {
  bool operator()(const Labelled& a, const Labelled& b) const {
    return a.event.timestamp > b.event.timestamp;
  }
};

}  // namespace

const std::vector<ScenarioInfo>& Scenarios() {
  static const std::vector<ScenarioInfo> all = {
      {"credential_stuffing", "failed logins on one auth endpoint from 60 addresses in a minute",
       "brute_force"},
      {"brute_force", "45 failed logins from one address in 90 seconds", "brute_force"},
      {"scraping", "500 product pages, mostly distinct, from one address with a script's agent",
       "scraping"},
      {"enumeration", "one caller walks 300 user ids, most of them 404", "enumeration"},
      {"rate_abuse", "one caller sends 400 requests in a minute", "rate_limit"},
      {"sqli", "SQL injection probes in query strings and JSON bodies", "sqli"},
      {"xss", "cross-site scripting probes in query strings and bodies", "xss"},
      {"path_traversal", "path traversal probes in file parameters", "path_traversal"},
      {"latency_spike", "an endpoint's latency jumps tenfold for two minutes", "zscore"},
      {"traffic_spike",
       "a flash crowd: 7,200 requests from 2,000 addresses over two minutes (4x the API's rate)",
       "traffic_spike"},
      {"new_country", "a caller known from 12 requests at home appears from Japan minutes later",
       "geo_new_country"},
  };
  return all;
}

struct Simulator::Impl {
  SimOptions o;
  std::mt19937_64 rng;
  uint64_t emitted_benign = 0;
  double clock;
  std::priority_queue<Labelled, std::vector<Labelled>, Later> attacks;
  std::string current;  // scenario being generated
  std::optional<Event> next_benign;
  std::vector<std::string> user_ids;
  std::vector<std::string> user_ips;

  explicit Impl(const SimOptions& opt) : o(opt), rng(opt.seed), clock(opt.start) {
    for (size_t u = 0; u < o.users; ++u) {
      user_ids.push_back(IdentityOfUser(o.seed, u));
      user_ips.push_back(UserIp(u));
    }
    double span = duration();
    size_t k = o.scenarios.size();
    for (size_t i = 0; i < k; ++i) {
      const std::string& name = o.scenarios[i];
      bool known = false;
      for (const auto& s : Scenarios()) known = known || s.name == name;
      if (!known) throw std::invalid_argument("unknown scenario: " + name);
      // Spread over the run, after a warm-up for the statistics.
      double at = o.start + span * (0.5 + 0.5 * (i + 1) / (k + 1));
      Generate(name, at, i);
    }
    if (o.benign_events) next_benign = Benign();
  }

  double duration() const { return o.rate > 0 ? o.benign_events / o.rate : 0; }

  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng); }
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); }
  double LogNormal(double median, double sigma) {
    return median * std::exp(sigma * std::normal_distribution<double>(0, 1)(rng));
  }

  Event Base(double ts, const std::string& method, const std::string& path, int status) {
    Event e;
    e.timestamp = ts;
    e.method = method;
    e.endpoint = path;
    e.status_code = status;
    e.latency_ms = std::round(LogNormal(35, 0.35) * 100) / 100;
    e.response_size = static_cast<int64_t>(LogNormal(1800, 0.4));
    e.host = "shop.example.com";
    e.protocol = "HTTP/1.1";
    return e;
  }

  // One background request: a caller browsing a shop API.
  Event Benign() {
    clock += std::exponential_distribution<double>(o.rate)(rng);
    size_t u = Pick(o.users);
    double r = Uniform();
    Event e;
    if (r < 0.30) {
      e = Base(clock, "GET", "/api/products", 200);
      e.query = "q=" + PercentEncode(kSearchTerms[Pick(kSearchTerms.size())]) +
                "&page=" + std::to_string(1 + Pick(5));
    } else if (r < 0.55) {
      e = Base(clock, "GET", "/api/products/" + std::to_string(1000 + Pick(5000)), 200);
    } else if (r < 0.67) {
      e = Base(clock, "GET", "/api/users/" + std::to_string(u + 1) + "/orders", 200);
    } else if (r < 0.75) {
      e = Base(clock, "GET", "/api/cart", 200);
    } else if (r < 0.82) {
      e = Base(clock, "POST", "/api/cart/items", 201);
      e.payload = "{\"product_id\":" + std::to_string(1000 + Pick(5000)) +
                  ",\"quantity\":" + std::to_string(1 + Pick(3)) + "}";
      e.body_size = static_cast<int64_t>(e.payload.size());
      e.headers.emplace_back("content-type", "application/json");
    } else if (r < 0.86) {
      e = Base(clock, "POST", "/api/orders", 201);
      e.payload = "{\"cart\":\"c-" + std::to_string(u) +
                  "\",\"note\":\"Please leave at the door, thanks!\",\"gift\":false}";
      e.body_size = static_cast<int64_t>(e.payload.size());
      e.headers.emplace_back("content-type", "application/json");
      e.latency_ms = std::round(LogNormal(120, 0.3) * 100) / 100;
    } else if (r < 0.90) {
      e = Base(clock, "POST", "/api/auth/login", Uniform() < 0.05 ? 401 : 200);
      e.payload = "{\"email\":\"user" + std::to_string(u) + "@example.com\",\"password\":\"x\"}";
      e.body_size = static_cast<int64_t>(e.payload.size());
      e.headers.emplace_back("content-type", "application/json");
    } else if (r < 0.95) {
      e = Base(clock, "GET", "/api/categories/" + std::to_string(1 + Pick(40)) + "/products", 200);
    } else if (r < 0.98) {
      e = Base(clock, "GET", "/static/app." + std::to_string(Pick(3)) + ".js", 200);
    } else {
      e = Base(clock, "GET", "/api/products/" + std::to_string(900000 + Pick(100)), 404);
    }
    e.client_ip = user_ips[u];
    e.identity = user_ids[u];
    e.user_agent = kBrowserAgents[u % kBrowserAgents.size()];
    ++emitted_benign;
    return e;
  }

  void Push(Event e) { attacks.push(Labelled{std::move(e), current}); }

  void Generate(const std::string& name, double at, size_t index) {
    current = name;
    std::string attacker = Ip(185, static_cast<int>(220 + index % 30),
                              static_cast<int>(index % 250), static_cast<int>(7 + index % 200));
    if (name == "credential_stuffing") {
      for (int i = 0; i < 120; ++i) {
        Event e = Base(at + i * 0.5, "POST", "/api/auth/login", 401);
        e.client_ip = Ip(45, 80 + i % 60, 10 + i % 7, 1 + i % 60);
        e.payload = "{\"email\":\"victim" + std::to_string(i) + "@example.org\",\"password\":\"" +
                    "Summer2024!" + "\"}";
        e.body_size = static_cast<int64_t>(e.payload.size());
        e.user_agent = "python-requests/2.31.0";
        Push(std::move(e));
      }
    } else if (name == "brute_force") {
      for (int i = 0; i < 45; ++i) {
        Event e = Base(at + i * 2.0, "POST", "/api/auth/login", 401);
        e.client_ip = attacker;
        e.payload =
            "{\"email\":\"admin@example.com\",\"password\":\"guess" + std::to_string(i) + "\"}";
        e.body_size = static_cast<int64_t>(e.payload.size());
        e.user_agent = kBrowserAgents[0];
        Push(std::move(e));
      }
    } else if (name == "scraping") {
      for (int i = 0; i < 500; ++i) {
        Event e = Base(at + i * 0.4, "GET", "/api/products/" + std::to_string(1000 + i * 7), 200);
        e.client_ip = attacker;
        e.user_agent = "Scrapy/2.11 (+https://scrapy.org)";
        Push(std::move(e));
      }
    } else if (name == "enumeration") {
      std::string who = IdentityOfUser(o.seed ^ 0xe1, index);
      for (int i = 0; i < 300; ++i) {
        int id = 100 + i;
        Event e = Base(at + i * 0.5, "GET", "/api/users/" + std::to_string(id) + "/profile",
                       i % 4 == 0 ? 200 : 404);
        e.client_ip = attacker;
        e.identity = who;
        e.user_agent = kBrowserAgents[2];
        Push(std::move(e));
      }
    } else if (name == "rate_abuse") {
      for (int i = 0; i < 400; ++i) {
        Event e = Base(at + i * 0.15, "GET", "/api/cart", 200);
        e.client_ip = attacker;
        e.user_agent = kBrowserAgents[1];
        Push(std::move(e));
      }
    } else if (name == "sqli" || name == "xss" || name == "path_traversal") {
      for (int i = 0; i < 24; ++i) {
        std::string v = name == "sqli"  ? kSqli[i % kSqli.size()]
                        : name == "xss" ? kXss[i % kXss.size()]
                                        : kTraversal[i % kTraversal.size()];
        Event e;
        if (name == "path_traversal") {
          e = Base(at + i * 3.0, "GET", "/api/files/download", 400);
          e.query = "file=" + PercentEncode(v);
        } else if (i % 3 == 2) {
          e = Base(at + i * 3.0, "POST", "/api/reviews", 400);
          // Keep the body valid JSON: escape quotes and backslashes of the probe.
          std::string esc;
          for (char c : v) {
            if (c == '"' || c == '\\') esc += '\\';
            esc += c;
          }
          e.payload = "{\"product_id\":1234,\"text\":\"" + esc + "\"}";
          e.body_size = static_cast<int64_t>(e.payload.size());
          e.headers.emplace_back("content-type", "application/json");
        } else {
          e = Base(at + i * 3.0, "GET", "/api/products", 200);
          e.query = "q=" + PercentEncode(v) + "&page=1";
        }
        e.client_ip = attacker;
        e.user_agent = "Mozilla/5.0 (compatible; probe)";
        Push(std::move(e));
      }
    } else if (name == "latency_spike") {
      for (int i = 0; i < 240; ++i) {
        size_t u = Pick(o.users);
        Event e =
            Base(at + i * 0.5, "GET", "/api/products/" + std::to_string(1000 + Pick(5000)), 200);
        e.latency_ms = std::round(LogNormal(900, 0.2) * 100) / 100;
        e.client_ip = user_ips[u];
        e.identity = user_ids[u];
        e.user_agent = kBrowserAgents[u % kBrowserAgents.size()];
        Push(std::move(e));
      }
    } else if (name == "traffic_spike") {
      // 60 requests a second for two minutes on six campaign endpoints the background does not
      // use (600 a minute each, under the per-endpoint rate limit), from many addresses.
      static constexpr const char* kCampaign[] = {"/api/deals",           "/api/deals/banner",
                                                  "/api/recommendations", "/api/search/trending",
                                                  "/api/newsletter",      "/api/promo/code"};
      for (int i = 0; i < 7200; ++i) {
        Event e = Base(at + i / 60.0, "GET", kCampaign[i % 6], 200);
        e.client_ip = Ip(80 + i % 40, 1 + (i / 40) % 50, 1 + i % 200, 2 + (i * 7) % 250);
        e.user_agent = kBrowserAgents[static_cast<size_t>(i) % kBrowserAgents.size()];
        Push(std::move(e));
      }
    } else if (name == "new_country") {
      // A caller of its own (so no background request of the same identity follows from home):
      // 12 requests over ten minutes from a residential address of the background (outside
      // Japan in the DB-IP data for the first scenario slots), then 5 from the University of
      // Tokyo's 133.11.0.0/16 (JP in every IP geolocation database).
      size_t u = index % std::max<size_t>(1, o.users);
      std::string who = IdentityOfUser(o.seed ^ 0x9e0, index);
      std::string home = UserIp(u);
      for (int i = 0; i < 17; ++i) {
        double ts = i < 12 ? at - 600 + i * 50.0 : at + (i - 12) * 5.0;
        Event e = Base(ts, "GET", "/api/users/" + std::to_string(u + 1) + "/orders", 200);
        e.client_ip = i < 12 ? home : Ip(133, 11, 0, 10 + (i - 12));
        e.identity = who;
        e.user_agent = kBrowserAgents[u % kBrowserAgents.size()];
        Push(std::move(e));
      }
    }
  }

  std::optional<Event> Next(std::string* label) {
    bool take_attack = !attacks.empty() &&
                       (!next_benign || attacks.top().event.timestamp <= next_benign->timestamp);
    if (take_attack) {
      Event e = attacks.top().event;
      if (label) *label = attacks.top().label;
      attacks.pop();
      return e;
    }
    if (!next_benign) return std::nullopt;
    if (label) *label = "benign";
    Event e = std::move(*next_benign);
    next_benign.reset();
    if (emitted_benign < o.benign_events) next_benign = Benign();
    return e;
  }
};

Simulator::Simulator(const SimOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Simulator::~Simulator() = default;
std::optional<Event> Simulator::Next(std::string* label) { return impl_->Next(label); }
double Simulator::duration() const { return impl_->duration(); }

}  // namespace boing::sim
