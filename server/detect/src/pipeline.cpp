#include "boing/detect/pipeline.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "boing/detect/anomaly.h"
#include "boing/detect/bounded_map.h"
#include "boing/detect/classifier.h"
#include "boing/detect/content.h"
#include "boing/detect/geoip.h"
#include "boing/detect/stats.h"
#include "boing/detect/text.h"
#include "boing/net.h"
#include "boing/utf8.h"
#include "model_io.h"

namespace boing::detect {

using Json = nlohmann::json;

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kLow:
      return "low";
    case Severity::kMedium:
      return "medium";
    case Severity::kHigh:
      return "high";
    case Severity::kCritical:
      return "critical";
  }
  return "medium";
}

bool ParseSeverity(std::string_view s, Severity* out) {
  static constexpr std::pair<std::string_view, Severity> kNames[] = {
      {"info", Severity::kInfo},
      {"low", Severity::kLow},
      {"medium", Severity::kMedium},
      {"high", Severity::kHigh},
      {"critical", Severity::kCritical}};
  for (auto [n, v] : kNames) {
    if (n == s) {
      *out = v;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& ImplementedDetectors() {
  static const std::vector<std::string> kIds = {"blacklist",
                                                "rate_limit",
                                                "sqli",
                                                "xss",
                                                "path_traversal",
                                                "cmdi",
                                                "ldapi",
                                                "nosqli",
                                                "malformed",
                                                "brute_force",
                                                "enumeration",
                                                "scraping",
                                                "zscore",
                                                "percentile",
                                                "traffic_spike",
                                                "geo_new_country",
                                                "impossible_travel",
                                                "isolation_forest",
                                                "one_class_svm",
                                                "payload_classifier",
                                                "llm"};
  return kIds;
}

namespace {

// --- settings ----------------------------------------------------------------------------------

double Num(const Json& c, const char* key, double def, double min = 0) {
  auto it = c.find(key);
  if (it == c.end() || !it->is_number()) return def;
  double v = it->get<double>();
  return std::isfinite(v) && v >= min ? v : def;
}

struct Base {
  bool enabled = true;
  Severity severity = Severity::kMedium;
};

struct RateCfg : Base {
  double per_minute = 100, per_hour = 3000, endpoint_per_minute = 1000, endpoint_per_hour = 30000;
  double cooldown = 60;
};
struct ContentCfg : Base {
  bool headers = true;
};
struct MalformedCfg : Base {
  double max_headers = 64, max_header_value = 4096, max_header_bytes = 8192;
};
struct BruteCfg : Base {
  double window = 60, failures = 10, stuffing_failures = 30, stuffing_ips = 10, cooldown = 60;
  std::vector<std::string> auth_paths = {"login", "signin",  "sign-in",  "logon", "auth",
                                         "token", "session", "password", "oauth"};
};
struct EnumCfg : Base {
  double window = 300, distinct_ids = 50, not_found_ratio = 0.5, min_requests = 20, cooldown = 300;
};
struct ScrapeCfg : Base {
  double window = 300, min_requests = 300, distinct_ratio = 0.8, bot_min_requests = 60,
         cooldown = 300;
};
struct ZCfg : Base {
  double threshold = 3, min_samples = 100, alpha = 0.01, min_rate = 10, cooldown = 60;
};
struct PctCfg : Base {
  double window = 3600, quantile = 0.99, factor = 3, min_samples = 200, cooldown = 60;
};

// traffic_spike: an API's requests in the current minute against its baseline for that hour of
// the week (or, until that hour has min_slot_minutes, for all hours).
struct SpikeCfg : Base {
  double factor = 3, min_requests = 60, min_minutes = 10, min_slot_minutes = 30, alpha = 0.05;
  double cooldown = 600;
};

// geo_new_country: countries an identity used within the learning window, after a history.
struct GeoCountryCfg : Base {
  double window = 30 * 86400, min_history = 10;
};
// impossible_travel: consecutive locations of an identity too far apart for the time between.
struct TravelCfg : Base {
  double max_speed = 1000, min_distance = 500, cooldown = 3600;
};

struct ClassifierCfg : Base {
  double threshold = 0.5;
  bool headers = false;
};

// llm: which values the LLM stage reviews (PayloadReview); off unless configured.
struct LlmCfg : Base {
  double review_min = 0.2, review_max = 0.8, max_payload = 2048;
  bool review_unconfirmed = true;
};

// The anomaly models of the ml stage (isolation_forest, one_class_svm).
struct MlCfg : Base {
  double contamination = 0.1, retrain_interval = 3600, window = 60, min_requests = 5;
  double min_training_windows = 256, max_training_windows = 4096, cooldown = 300;
};

struct Settings {
  Base blacklist{true, Severity::kHigh};
  RateCfg rate;
  std::array<ContentCfg, kAttackClasses> content;
  MalformedCfg malformed;
  BruteCfg brute;
  EnumCfg enumeration;
  ScrapeCfg scraping;
  ZCfg zscore;
  PctCfg percentile;
  SpikeCfg spike;
  GeoCountryCfg geo_country;
  TravelCfg travel;
  ClassifierCfg classifier;
  MlCfg forest, svm;
  LlmCfg llm;
  Settings() {
    llm.enabled = false;
    forest.severity = svm.severity = Severity::kLow;
    for (auto& c : content) c.severity = Severity::kHigh;
    classifier.severity = Severity::kHigh;
    malformed.severity = zscore.severity = percentile.severity = spike.severity = Severity::kLow;
    brute.severity = Severity::kHigh;
    travel.severity = Severity::kHigh;
  }
};

void Apply(Settings& s, const DetectorSettings& d) {
  const Json& c = d.config.is_object() ? d.config : Json::object();
  auto base = [&](Base& b) {
    b.enabled = d.enabled;
    b.severity = d.severity;
  };
  const std::string& id = d.id;
  if (id == "blacklist") {
    base(s.blacklist);
  } else if (id == "rate_limit") {
    base(s.rate);
    s.rate.per_minute = Num(c, "per_minute", 100, 1);
    s.rate.per_hour = Num(c, "per_hour", s.rate.per_minute * 30, 1);
    s.rate.endpoint_per_minute = Num(c, "endpoint_per_minute", s.rate.per_minute * 10, 1);
    s.rate.endpoint_per_hour = Num(c, "endpoint_per_hour", s.rate.endpoint_per_minute * 30, 1);
    s.rate.cooldown = Num(c, "cooldown_seconds", 60);
  } else if (id == "malformed") {
    base(s.malformed);
    s.malformed.max_headers = Num(c, "max_headers", 64, 1);
    s.malformed.max_header_value = Num(c, "max_header_value_bytes", 4096, 1);
    s.malformed.max_header_bytes = Num(c, "max_header_bytes", 8192, 1);
  } else if (id == "brute_force") {
    base(s.brute);
    s.brute.window = Num(c, "window_seconds", 60, 1);
    s.brute.failures = Num(c, "failures", 10, 1);
    s.brute.stuffing_failures = Num(c, "stuffing_failures", 30, 1);
    s.brute.stuffing_ips = Num(c, "stuffing_ips", 10, 1);
    s.brute.cooldown = Num(c, "cooldown_seconds", 60);
    if (auto it = c.find("auth_paths"); it != c.end() && it->is_array()) {
      s.brute.auth_paths.clear();
      for (const auto& p : *it) {
        if (p.is_string() && !p.get<std::string>().empty()) {
          std::string v = p.get<std::string>();
          std::transform(v.begin(), v.end(), v.begin(),
                         [](unsigned char ch) { return std::tolower(ch); });
          s.brute.auth_paths.push_back(v);
        }
      }
    }
  } else if (id == "enumeration") {
    base(s.enumeration);
    s.enumeration.window = Num(c, "window_seconds", 300, 1);
    s.enumeration.distinct_ids = Num(c, "distinct_ids", 50, 2);
    s.enumeration.not_found_ratio = Num(c, "not_found_ratio", 0.5);
    s.enumeration.min_requests = Num(c, "min_requests", 20, 1);
    s.enumeration.cooldown = Num(c, "cooldown_seconds", 300);
  } else if (id == "scraping") {
    base(s.scraping);
    s.scraping.window = Num(c, "window_seconds", 300, 1);
    s.scraping.min_requests = Num(c, "min_requests", 300, 1);
    s.scraping.distinct_ratio = Num(c, "distinct_ratio", 0.8);
    s.scraping.bot_min_requests = Num(c, "bot_min_requests", 60, 1);
    s.scraping.cooldown = Num(c, "cooldown_seconds", 300);
  } else if (id == "zscore") {
    base(s.zscore);
    s.zscore.threshold = Num(c, "threshold", 3, 0.1);
    s.zscore.min_samples = Num(c, "min_samples", 100, 2);
    s.zscore.alpha = std::min(1.0, Num(c, "alpha", 0.01, 1e-6));
    s.zscore.min_rate = Num(c, "min_rate", 10);
    s.zscore.cooldown = Num(c, "cooldown_seconds", 60);
  } else if (id == "percentile") {
    base(s.percentile);
    s.percentile.window = Num(c, "window_seconds", 3600, 60);
    s.percentile.quantile = std::min(1.0, Num(c, "quantile", 0.99));
    s.percentile.factor = Num(c, "factor", 3, 1);
    s.percentile.min_samples = Num(c, "min_samples", 200, 1);
    s.percentile.cooldown = Num(c, "cooldown_seconds", 60);
  } else if (id == "traffic_spike") {
    base(s.spike);
    s.spike.factor = Num(c, "factor", 3, 1.01);
    s.spike.min_requests = Num(c, "min_requests_per_minute", 60, 1);
    s.spike.min_minutes = Num(c, "min_baseline_minutes", 10, 1);
    s.spike.min_slot_minutes = Num(c, "min_hour_of_week_minutes", 30, 1);
    s.spike.alpha = std::min(1.0, Num(c, "alpha", 0.05, 1e-4));
    s.spike.cooldown = Num(c, "cooldown_seconds", 600);
  } else if (id == "geo_new_country") {
    base(s.geo_country);
    s.geo_country.window = Num(c, "learning_window_seconds", 30 * 86400, 60);
    s.geo_country.min_history = Num(c, "min_history_events", 10, 1);
  } else if (id == "impossible_travel") {
    base(s.travel);
    s.travel.max_speed = Num(c, "max_speed_kmh", 1000, 1);
    s.travel.min_distance = Num(c, "min_distance_km", 500);
    s.travel.cooldown = Num(c, "cooldown_seconds", 3600);
  } else if (id == "isolation_forest" || id == "one_class_svm") {
    MlCfg& m = id == "isolation_forest" ? s.forest : s.svm;
    base(m);
    m.contamination = std::clamp(Num(c, "contamination", 0.1, 1e-4), 1e-4, 0.5);
    m.retrain_interval = Num(c, "retrain_interval_seconds", 3600, 10);
    m.window = Num(c, "window_seconds", 60, 1);
    m.min_requests = Num(c, "min_requests", 5, 1);
    m.min_training_windows = Num(c, "min_training_windows", 256, 16);
    m.max_training_windows =
        std::max(m.min_training_windows, Num(c, "max_training_windows", 4096, 16));
    m.cooldown = Num(c, "cooldown_seconds", 300);
  } else if (id == "payload_classifier") {
    base(s.classifier);
    s.classifier.threshold = std::min(1.0, Num(c, "threshold", 0.5, 0.01));
    s.classifier.headers = false;
    if (auto it = c.find("scan_headers"); it != c.end() && it->is_boolean()) {
      s.classifier.headers = it->get<bool>();
    }
  } else if (id == "llm") {
    base(s.llm);
    s.llm.review_min = std::min(1.0, Num(c, "review_min_probability", 0.2));
    s.llm.review_max = std::min(1.0, Num(c, "review_max_probability", 0.8));
    s.llm.max_payload = std::clamp(Num(c, "max_payload_bytes", 2048, 16), 16.0, 65536.0);
    s.llm.review_unconfirmed = true;
    if (auto it = c.find("review_unconfirmed_signatures"); it != c.end() && it->is_boolean()) {
      s.llm.review_unconfirmed = it->get<bool>();
    }
  } else {
    for (int k = 0; k < kAttackClasses; ++k) {
      if (id == AttackClassId(static_cast<AttackClass>(k))) {
        base(s.content[static_cast<size_t>(k)]);
        if (auto it = c.find("scan_headers"); it != c.end() && it->is_boolean()) {
          s.content[static_cast<size_t>(k)].headers = it->get<bool>();
        }
      }
    }
  }
}

// --- state -------------------------------------------------------------------------------------

// Sliding window of two fixed windows: the previous window's count weighted by how much of it
// still overlaps the sliding window.
struct Sliding {
  int64_t start = INT64_MIN;
  uint32_t cur = 0, prev = 0;
  double Add(double t, double window) {
    int64_t w = static_cast<int64_t>(std::floor(t / window));
    if (w > start) {
      prev = w == start + 1 ? cur : 0;
      cur = 0;
      start = w;
    }
    ++cur;
    double frac = std::clamp(t / window - static_cast<double>(start), 0.0, 1.0);
    return prev * (1 - frac) + cur;
  }
};

// Tumbling window of counters.
struct Tumbling {
  double start = -1;
  uint32_t count = 0, hits = 0;
  bool Roll(double t, double window) {  // true when a new window began
    if (start < 0 || t - start >= window || t < start - window) {
      start = t;
      count = hits = 0;
      return true;
    }
    return false;
  }
};

// Distinct counting in 2048 bits (linear counting): accurate to a few percent up to ~2000 values,
// 256 bytes, allocated only when a key gets busy.
struct Distinct {
  std::unique_ptr<std::array<uint64_t, 32>> bits;
  void Clear() {
    if (bits) bits->fill(0);
  }
  void Add(uint64_t h) {
    if (!bits) bits = std::make_unique<std::array<uint64_t, 32>>();
    h = (h ^ (h >> 29)) & 2047;
    (*bits)[h >> 6] |= uint64_t{1} << (h & 63);
  }
  double Estimate() const {
    if (!bits) return 0;
    int zeros = 0;
    for (uint64_t w : *bits) zeros += 64 - __builtin_popcountll(w);
    if (zeros == 0) return 2048 * std::log(2048.0);
    return -2048.0 * std::log(static_cast<double>(zeros) / 2048.0);
  }
};

// The ml stage's per-actor window: the features of one actor's requests in one tumbling window.
constexpr size_t kMlFeatures = 9;
constexpr const char* kMlFeatureNames[kMlFeatures] = {
    "requests",           "distinct_templates", "not_found_ratio",
    "auth_failure_ratio", "server_error_ratio", "size_zscore",
    "latency_zscore",     "interarrival_cv",    "write_ratio"};

struct MlWindow {
  double start = -1, last = -1;
  uint32_t n = 0, not_found = 0, auth = 0, server_errors = 0, writes = 0, gaps = 0;
  uint64_t templates = 0;  // 64-bit linear-counting bitmap of template hashes
  float size_z = 0, latency_z = 0;
  double gap_sum = 0, gap_sq = 0;
  bool flagged = false;  // another detector raised a finding for the actor in this window

  std::array<double, kMlFeatures> Features() const {
    double nd = std::max<double>(n, 1);
    int zeros = 64 - __builtin_popcountll(templates);
    double distinct = zeros == 0 ? 64 * std::log(64.0) : -64.0 * std::log(zeros / 64.0);
    double cv = 0;
    if (gaps >= 2) {
      double mean = gap_sum / gaps;
      double var = std::max(0.0, gap_sq / gaps - mean * mean);
      cv = mean > 1e-9 ? std::sqrt(var) / mean : 0;
    }
    return {std::log1p(static_cast<double>(n)),
            std::log1p(distinct),
            not_found / nd,
            auth / nd,
            server_errors / nd,
            size_z / nd,
            latency_z / nd,
            std::min(cv, 100.0),
            writes / nd};
  }
};

struct ActorState {
  MlWindow ml;
  Sliding minute, hour;
  Tumbling auth;       // auth failures
  Tumbling not_found;  // count = requests, hits = 404s
  Tumbling scrape;     // count = GETs
  Distinct scrape_paths;
};

struct TemplateState {
  Sliding minute, hour;
  Tumbling auth;  // count = failures
  Distinct auth_ips;
  Ewma latency, size, rate;
  int64_t rate_bucket = INT64_MIN;
  uint32_t rate_count = 0;
  bool rate_fired = false;
  std::unique_ptr<RollingQuantiles> latency_q;
  double pct_threshold = 0;
  uint32_t pct_since = 1u << 30;
};

// An API's request rate per minute: the current minute's count, and exponentially weighted
// baselines of whole minutes over all hours and per hour of the week (UTC, Monday 00h = 0).
struct SpikeState {
  int64_t minute = INT64_MIN;
  uint32_t count = 0;
  bool fired = false;
  Ewma all;
  std::unique_ptr<std::array<Ewma, 168>> week;  // allocated with the first whole minute
};

int HourOfWeek(int64_t minute) {
  int64_t day = minute >= 0 ? minute / 1440 : (minute - 1439) / 1440;
  int64_t dow = ((day + 3) % 7 + 7) % 7;  // 1970-01-01 was a Thursday
  int64_t hour = ((minute % 1440 + 1440) % 1440) / 60;
  return static_cast<int>(dow * 24 + hour);
}

// Where one identity has been: the countries of its recent history and its last location.
constexpr size_t kGeoCountries = 8;
struct GeoState {
  struct Country {
    std::array<char, 2> code{};
    double last_seen = 0;
  };
  std::array<Country, kGeoCountries> countries{};
  uint8_t n = 0;         // countries in use
  uint32_t history = 0;  // located events since learning (re)started
  double last_t = -1;    // the last located event: when, from where (also a one-entry lookup cache)
  std::string last_ip;
  GeoLocation last;
  uint64_t unknown_ip = 0;  // hash of the last address the database did not know
};

struct EnumState {
  Tumbling window;
  Distinct ids;
};

// One API's anomaly models and the recent clean windows they are trained on.
struct MlState {
  std::vector<double> clean;  // ring of clean windows (kMlFeatures values each)
  size_t next = 0, count = 0;
  double trained_at = -1;  // event time of the last training
  bool loaded = false;     // saved models were looked for
  std::unique_ptr<IsolationForest> forest;
  std::unique_ptr<OneClassSvm> svm;
  double forest_threshold = 1, svm_threshold = 0;
  std::array<double, kMlFeatures> mean{}, sd{};  // of the training windows, for evidence
  void Add(const std::array<double, kMlFeatures>& f, size_t capacity) {
    clean.resize(capacity * kMlFeatures);
    if (next >= capacity) next = 0;
    std::copy(f.begin(), f.end(), clean.begin() + static_cast<std::ptrdiff_t>(next * kMlFeatures));
    next = (next + 1) % capacity;
    count = std::min(count + 1, capacity);
  }
};

struct ApiState {
  MlState ml;
  SpikeState spike;
  BoundedMap<uint64_t, ActorState> actors;
  BoundedMap<uint64_t, TemplateState> templates;
  BoundedMap<uint64_t, EnumState> enum_keys;
  BoundedMap<uint64_t, double> fired;  // cool-downs: key -> last finding time
  BoundedMap<uint64_t, GeoState> geo;  // by identity
  explicit ApiState(const PipelineLimits& l)
      : actors(l.max_actors_per_api),
        templates(l.max_templates_per_api),
        enum_keys(l.max_enum_keys_per_api),
        fired(l.max_actors_per_api),
        geo(l.max_geo_identities_per_api) {}
};

bool IsJsonType(std::string_view ct) { return ct.find("json") != std::string_view::npos; }

bool IsTextType(std::string_view ct) {
  return ct.empty() || ct.find("text") != std::string_view::npos || IsJsonType(ct) ||
         ct.find("xml") != std::string_view::npos ||
         ct.find("x-www-form-urlencoded") != std::string_view::npos;
}

// ASCII only, without the locale lookups of std::tolower (the hot path calls these per event).
char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

// Lower(s) into `out`, reusing its storage.
void AssignLower(std::string& out, std::string_view s) {
  out.assign(s);
  for (char& c : out) c = LowerAscii(c);
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

// Headers whose values are structural (negotiation, caching) and not worth scanning.
bool SkipHeader(std::string_view name) {
  for (std::string_view s : {"accept",
                             "accept-encoding",
                             "accept-language",
                             "content-type",
                             "content-length",
                             "connection",
                             "host",
                             "if-none-match",
                             "if-modified-since",
                             "cache-control",
                             "pragma",
                             "te",
                             "upgrade",
                             "sec-fetch-site",
                             "sec-fetch-mode",
                             "sec-fetch-dest",
                             "sec-ch-ua",
                             "sec-ch-ua-platform",
                             "sec-ch-ua-mobile",
                             "x-request-id",
                             "traceparent"}) {
    if (EqualsNoCase(name, s)) return true;
  }
  return false;
}

bool LooksAutomated(std::string_view ua_lower) {
  if (ua_lower.empty()) return true;
  for (std::string_view s :
       {"curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "scrapy", "go-http-client",
        "java/", "okhttp", "libwww-perl", "httpclient", "headlesschrome", "phantomjs", "selenium",
        "bot", "crawler", "spider", "node-fetch", "axios/"}) {
    if (ua_lower.find(s) != std::string_view::npos) return true;
  }
  return false;
}

constexpr std::string_view kStandardMethods[] = {"GET",   "HEAD",    "POST",  "PUT",    "DELETE",
                                                 "PATCH", "OPTIONS", "TRACE", "CONNECT"};

}  // namespace

// --- the pipeline ------------------------------------------------------------------------------

// Hash seeds of the state tables' keys.
constexpr uint64_t kIpSeed = 1, kIdentitySeed = 3, kGeoSeed = 30;

struct Pipeline::Impl {
  explicit Impl(PipelineLimits l) : limits(l), apis(l.max_apis) {
    size_t n = 1;
    while (n < limits.scan_memo_entries) n *= 2;
    if (limits.scan_memo_entries > 0) memo.resize(n);
  }

  PipelineLimits limits;
  Settings settings;
  std::vector<ListRule> lists;
  SignatureSet signatures;
  BoundedMap<int64_t, std::unique_ptr<ApiState>> apis;
  PipelineCounters counters;

  // Pending changes from other threads.
  std::mutex pending_mu;
  std::atomic<bool> dirty{false};
  std::vector<DetectorSettings> pending_settings;
  std::vector<ListRule> pending_lists;
  bool pending_lists_set = false;
  std::shared_ptr<const PayloadClassifier> classifier, pending_classifier;
  bool pending_classifier_set = false;
  std::shared_ptr<const GeoIp> geoip, pending_geoip;
  bool pending_geoip_set = false;
  std::string model_dir;  // where the anomaly models are saved; empty = not saved
  std::optional<std::string> pending_model_dir;

  // Per-event scratch, reused.
  std::string tmpl, norm, scratch, content_type, ua, location;
  // LooksAutomated() of recent user agents (a handful of them make most of the traffic).
  std::array<std::pair<std::string, bool>, 64> automated_memo;
  bool Automated(std::string_view user_agent) {
    auto& [seen, automated] = automated_memo[std::hash<std::string_view>{}(user_agent)&63];
    if (seen.size() != user_agent.size() + 1 || std::string_view(seen).substr(1) != user_agent) {
      seen.assign("=").append(user_agent);  // the prefix tells an empty agent from a free slot
      AssignLower(ua, user_agent);
      automated = LooksAutomated(ua);
    }
    return automated;
  }
  std::string ip_actor, primary_actor, api_actor;  // of the event being processed
  int64_t api_actor_of = 0;
  std::vector<ContentMatch> matches;
  struct ClassHit {
    const char* rule = nullptr;
    const char* engine = nullptr;
    std::string location;
    std::string snippet;
    std::string text;  // the whole value (bounded), kept only for the llm stage
    int count = 0;
  };
  std::array<ClassHit, kAttackClasses> hits;
  struct ClassifierHit {
    double probability = -1;
    int cls = -1;
    double cls_probability = 0;
    std::string location, snippet;
    std::string text;  // the whole value (bounded), kept only for the llm stage
    int values = 0;    // values classified as attacks
  } chit;
  bool has_review = false;
  PayloadReview review;
  simdjson::dom::parser json_parser;

  void ApplyPending() {
    if (!dirty.load(std::memory_order_acquire)) return;
    std::lock_guard lock(pending_mu);
    for (const auto& d : pending_settings) Apply(settings, d);
    pending_settings.clear();
    if (pending_lists_set) {
      lists = std::move(pending_lists);
      pending_lists.clear();
      pending_lists_set = false;
    }
    if (pending_model_dir) {
      model_dir = std::move(*pending_model_dir);
      pending_model_dir.reset();
    }
    if (pending_classifier_set) {
      classifier = std::move(pending_classifier);
      pending_classifier_set = false;
    }
    if (pending_geoip_set) {
      geoip = std::move(pending_geoip);
      pending_geoip_set = false;
    }
    dirty.store(false, std::memory_order_release);
  }

  ApiState& StateOf(int64_t id) {
    bool created = false;
    auto& p = apis.Get(id, &created);
    if (!p) p = std::make_unique<ApiState>(limits);
    return *p;
  }

  // True (and records the time) when no finding for `key` was made within `cooldown` seconds.
  static bool CoolDown(ApiState& api, uint64_t key, double t, double cooldown) {
    bool created = false;
    double& last = api.fired.Get(key, &created);
    if (!created && t - last < cooldown && t >= last) return false;
    last = t;
    return true;
  }

  // --- content ---
  void ClearHits() {
    for (auto& h : hits) {
      h.rule = nullptr;
      h.count = 0;
    }
    chit.probability = -1;
    chit.values = 0;
  }
  // The ml stage on one normalised value: keeps the most probable attack of the event.
  void Classify(std::string_view text, std::string_view location) {
    const auto& c = settings.classifier;
    if (!c.enabled || !classifier || text.empty()) return;
    if (!c.headers && location.rfind("header:", 0) == 0) return;
    Consider(classifier->Predict(text), text, location);
  }
  // Keeps `p` when it is the event's most probable attack so far.
  void Consider(const PayloadPrediction& p, std::string_view text, std::string_view location) {
    const auto& c = settings.classifier;
    if (p.attack_probability >= c.threshold) ++chit.values;
    if (p.attack_probability <= chit.probability) return;
    chit.probability = p.attack_probability;
    chit.cls = p.attack_cls;
    chit.cls_probability = p.attack_cls_probability;
    chit.location.assign(location);
    chit.snippet.assign(text.substr(0, 64));
    if (settings.llm.enabled)
      chit.text.assign(Utf8Prefix(text, static_cast<size_t>(settings.llm.max_payload)));
  }
  void Record(AttackClass c, const char* rule, const char* engine, std::string_view location,
              std::string_view text, size_t end) {
    auto& h = hits[static_cast<size_t>(c)];
    ++h.count;
    if (h.rule) return;
    h.rule = rule;
    h.engine = engine;
    h.location.assign(location);
    size_t from = end > 64 ? end - 64 : 0;
    h.snippet.assign(text.substr(from, std::min(end, text.size()) - from));
    if (settings.llm.enabled)
      h.text.assign(Utf8Prefix(text, static_cast<size_t>(settings.llm.max_payload)));
  }
  // The llm stage's pick among the event's values (see PayloadReview).
  void SelectReview(const Event& e) {
    const auto& L = settings.llm;
    if (!L.enabled) return;
    const bool classified = settings.classifier.enabled && classifier && chit.probability >= 0;
    int sig = -1;
    for (int k = 0; k < kAttackClasses && sig < 0; ++k) {
      if (hits[static_cast<size_t>(k)].rule && settings.content[static_cast<size_t>(k)].enabled)
        sig = k;
    }
    const std::string* text = nullptr;
    const std::string* where = nullptr;
    if (classified && chit.probability >= L.review_min && chit.probability < L.review_max &&
        !chit.text.empty()) {
      review.reason = "classifier_uncertain";
      text = &chit.text;
      where = &chit.location;
    } else if (sig >= 0 && L.review_unconfirmed &&
               (!classified || chit.probability < settings.classifier.threshold)) {
      review.reason = "signature_unconfirmed";
      text = &hits[static_cast<size_t>(sig)].text;
      where = &hits[static_cast<size_t>(sig)].location;
    }
    if (!text || text->empty()) return;
    review.value = *text;
    review.location = *where;
    review.probability = classified ? chit.probability : -1;
    review.classifier_class =
        classified && chit.cls >= 0 ? classifier->classes()[static_cast<size_t>(chit.cls)] : "";
    review.signature = sig >= 0 ? AttackClassId(static_cast<AttackClass>(sig)) : "";
    review.finding =
        Make(e, "llm", L, e.identity.empty() ? "ip:" + e.client_ip : "id:" + e.identity, "",
             Json::object(), 1.0);
    has_review = true;
  }
  bool AnyContentEnabled() const {
    for (const auto& c : settings.content)
      if (c.enabled) return true;
    return false;
  }
  // Scans one normalised value: signatures, and the tokenizers when `tokenize`.
  void ScanValue(std::string_view text, std::string_view location, bool tokenize) {
    matches.clear();
    signatures.Scan(text, matches);
    for (const auto& m : matches) Record(m.cls, m.rule, "signature", location, text, m.end);
    if (!tokenize) return;
    if (settings.content[0].enabled && !hits[0].rule) {
      if (const char* r = SqliTokenizer(text))
        Record(AttackClass::kSqli, r, "tokenizer", location, text, text.size());
    }
    if (settings.content[1].enabled && !hits[1].rule) {
      if (const char* r = XssTokenizer(text))
        Record(AttackClass::kXss, r, "tokenizer", location, text, text.size());
    }
    Classify(text, location);
  }

  // Verdicts on recently scanned raw values. Real traffic repeats most header and parameter
  // values (user agents, locales, content types, common parameters) from request to request; a
  // repeated value gets the stored normalisation, signature matches, tokenizer rules and
  // classifier prediction instead of being scanned again. The stored verdict is the scan's result
  // for that exact text (compared in full, not by hash), so findings are the same either way.
  struct ScanMemo {
    std::string raw, norm;
    uint8_t kind = 0;  // kMemo*: where the value came from, which decides its normalisation
    bool used = false;
    std::vector<ContentMatch> matches;
    const char* sqli = nullptr;  // tokenizer rules (values only; computed whatever the settings)
    const char* xss = nullptr;
    const PayloadClassifier* predicted_by = nullptr;  // the model `prediction` came from
    PayloadPrediction prediction;
  };
  // Signatures only (paths, JSON keys; parameters with '+' as a space), or values for the
  // tokenizers and the classifier as well (with '+' as a space in form and query values).
  static constexpr uint8_t kMemoPlain = 1, kMemoPlainPlus = 2, kMemoValue = 3, kMemoFormValue = 4;
  std::vector<ScanMemo> memo;

  // The memo entry for `raw` scanned as `kind`, scanned now unless the entry already holds it;
  // nullptr when the memo is off or the value too long for it.
  ScanMemo* Memo(std::string_view raw, uint8_t kind) {
    if (memo.empty() || raw.size() > limits.max_scan_memo_value) return nullptr;
    ScanMemo& m = memo[(std::hash<std::string_view>{}(raw) ^ kind) & (memo.size() - 1)];
    if (m.used && m.kind == kind && m.raw == raw) {
      ++counters.scan_memo_hits;
      return &m;
    }
    m.used = true;
    m.raw.assign(raw);
    m.kind = kind;
    Normalize(raw, m.norm, kind == kMemoPlainPlus || kind == kMemoFormValue);
    m.matches.clear();
    signatures.Scan(m.norm, m.matches);
    const bool value = kind == kMemoValue || kind == kMemoFormValue;
    m.sqli = value ? SqliTokenizer(m.norm) : nullptr;
    m.xss = value ? XssTokenizer(m.norm) : nullptr;
    m.predicted_by = nullptr;
    return &m;
  }

  void ScanRawTokenized(std::string_view raw, std::string_view location, bool plus_is_space) {
    ScanMemo* m = Memo(raw, plus_is_space ? kMemoFormValue : kMemoValue);
    if (!m) {
      Normalize(raw, norm, plus_is_space);
      ScanValue(norm, location, true);
      return;
    }
    const std::string_view text = m->norm;
    for (const auto& c : m->matches) Record(c.cls, c.rule, "signature", location, text, c.end);
    if (m->sqli && settings.content[0].enabled && !hits[0].rule)
      Record(AttackClass::kSqli, m->sqli, "tokenizer", location, text, text.size());
    if (m->xss && settings.content[1].enabled && !hits[1].rule)
      Record(AttackClass::kXss, m->xss, "tokenizer", location, text, text.size());
    const auto& c = settings.classifier;
    if (!c.enabled || !classifier || text.empty()) return;
    if (!c.headers && location.rfind("header:", 0) == 0) return;
    if (m->predicted_by != classifier.get()) {
      m->prediction = classifier->Predict(text);
      m->predicted_by = classifier.get();
    }
    Consider(m->prediction, text, location);
  }
  void ScanRaw(std::string_view raw, std::string_view location, bool plus_is_space, bool tokenize) {
    if (raw.empty()) return;
    if (tokenize) {
      ScanRawTokenized(raw, location, plus_is_space);
      return;
    }
    Normalize(raw, norm, plus_is_space);
    ScanValue(norm, location, false);
  }
  // NoSQL operators in parameter names and JSON keys ("user[$ne]=1", {"$where": ...}): `text` is
  // the whole parameter or the quoted key with its colon.
  void ScanNames(std::string_view text, bool plus_is_space, std::string_view location) {
    std::string_view normalized;
    const std::vector<ContentMatch>* found = &matches;
    if (const ScanMemo* m = Memo(text, plus_is_space ? kMemoPlainPlus : kMemoPlain)) {
      normalized = m->norm;
      found = &m->matches;
    } else {
      Normalize(text, norm, plus_is_space);
      matches.clear();
      signatures.Scan(norm, matches);
      normalized = norm;
    }
    for (const auto& m : *found) {
      if (m.cls == AttackClass::kNosqli)
        Record(m.cls, m.rule, "signature", location, normalized, m.end);
    }
  }
  // name=value&name=value: each parameter separately, so separators never join two values.
  void ScanParams(std::string_view q, std::string_view location) {
    size_t i = 0;
    while (i <= q.size()) {
      size_t amp = q.find('&', i);
      if (amp == std::string_view::npos) amp = q.size();
      std::string_view param = q.substr(i, amp - i);
      if (!param.empty()) {
        size_t eq = param.find('=');
        std::string_view value = eq == std::string_view::npos ? param : param.substr(eq + 1);
        // The whole parameter for signatures on names ("user[$ne]=1"); the value for the rest.
        ScanNames(param, true, location);
        ScanRaw(value, location, true, true);
      }
      i = amp + 1;
    }
  }
  void WalkJson(simdjson::dom::element el, int depth) {
    if (depth > 32) return;
    simdjson::dom::object obj;
    simdjson::dom::array arr;
    std::string_view str;
    if (el.get(obj) == simdjson::SUCCESS) {
      for (simdjson::dom::key_value_pair field : obj) {
        scratch.assign("\"");
        scratch.append(field.key);
        scratch.append("\":");
        ScanNames(scratch, false, "body");
        WalkJson(field.value, depth + 1);
      }
    } else if (el.get(arr) == simdjson::SUCCESS) {
      for (simdjson::dom::element v : arr) WalkJson(v, depth + 1);
    } else if (el.get(str) == simdjson::SUCCESS) {
      ScanRaw(str, "body", false, true);
    }
  }
  void ScanBody(const Event& e) {
    if (e.payload.empty()) return;
    bool json = IsJsonType(content_type);
    if (json) {
      simdjson::dom::element root;
      if (json_parser.parse(e.payload.data(), e.payload.size(), true).get(root) ==
          simdjson::SUCCESS) {
        WalkJson(root, 0);
      } else {
        ScanRaw(e.payload, "body", false, true);
      }
      return;
    }
    bool form = content_type.find("x-www-form-urlencoded") != std::string::npos ||
                (content_type.empty() && e.payload.find('=') != std::string::npos &&
                 e.payload.find_first_of(" \n") == std::string::npos);
    if (form) {
      ScanParams(e.payload, "body");
    } else {
      ScanRaw(e.payload, "body", false, true);
    }
  }

  Finding Make(const Event& e, const char* detector, const Base& cfg, std::string actor,
               std::string message, Json evidence, double score) {
    Finding f;
    f.detector = detector;
    f.severity = cfg.severity;
    f.score = score;
    f.actor = std::move(actor);
    f.api_id = e.api_id;
    f.event_id = e.id;
    f.timestamp = e.timestamp;
    f.method = e.method;
    f.endpoint_template = tmpl;
    f.client_ip = e.client_ip;
    f.identity = e.identity;
    f.message = std::move(message);
    f.evidence = std::move(evidence);
    return f;
  }

  void EmitContent(const Event* e, std::vector<Finding>& out) {
    EmitContentRules(e, out);
    const auto& c = settings.classifier;
    if (!c.enabled || chit.probability < c.threshold || chit.cls < 0) return;
    const std::string& cls = classifier->classes()[static_cast<size_t>(chit.cls)];
    Json ev = {{"location", chit.location},
               {"probability", chit.probability},
               {"class", cls},
               {"class_probability", chit.cls_probability},
               {"threshold", c.threshold},
               {"values", chit.values},
               {"match", chit.snippet}};
    std::string msg = "payload classified as " + cls +
                      " (p=" + std::to_string(chit.probability).substr(0, 5) + ") in " +
                      chit.location;
    double score = chit.probability / c.threshold;
    if (e) {
      out.push_back(Make(*e, "payload_classifier", c,
                         e->identity.empty() ? "ip:" + e->client_ip : "id:" + e->identity,
                         std::move(msg), std::move(ev), score));
    } else {
      Finding f;
      f.detector = "payload_classifier";
      f.severity = c.severity;
      f.score = score;
      f.message = std::move(msg);
      f.evidence = std::move(ev);
      out.push_back(std::move(f));
    }
  }

  void EmitContentRules(const Event* e, std::vector<Finding>& out) {
    for (int k = 0; k < kAttackClasses; ++k) {
      const auto& h = hits[static_cast<size_t>(k)];
      const auto& cfg = settings.content[static_cast<size_t>(k)];
      if (!h.rule || !cfg.enabled) continue;
      const char* id = AttackClassId(static_cast<AttackClass>(k));
      Json ev = {{"rule", h.rule},
                 {"engine", h.engine},
                 {"location", h.location},
                 {"match", h.snippet},
                 {"matches", h.count}};
      std::string msg = std::string(id) + " pattern in " + h.location;
      if (e) {
        out.push_back(Make(*e, id, cfg,
                           e->identity.empty() ? "ip:" + e->client_ip : "id:" + e->identity,
                           std::move(msg), std::move(ev), 1.0));
      } else {
        Finding f;
        f.detector = id;
        f.severity = cfg.severity;
        f.score = 1.0;
        f.message = std::move(msg);
        f.evidence = std::move(ev);
        out.push_back(std::move(f));
      }
    }
  }

  void Process(const Event& e, std::vector<Finding>& out);

  // --- traffic spikes (per API) ---
  // Adds a whole minute's count to the baselines; a minute far above an established baseline
  // counts as `factor` x that baseline, so a spike does not teach the baseline that it is normal.
  static void SpikeLearn(SpikeState& sp, int64_t minute, double count, const SpikeCfg& c) {
    if (!sp.week) sp.week = std::make_unique<std::array<Ewma, 168>>();
    Ewma& slot = (*sp.week)[static_cast<size_t>(HourOfWeek(minute))];
    auto clipped = [&](const Ewma& e, double min_n) {
      return static_cast<double>(e.n) >= min_n ? std::min(count, c.factor * std::max(e.mean, 1.0))
                                               : count;
    };
    double to_slot = clipped(slot, c.min_slot_minutes), to_all = clipped(sp.all, c.min_minutes);
    slot.Add(to_slot, c.alpha);
    sp.all.Add(to_all, c.alpha / 10);
  }
  void SpikeStage(const Event& e, ApiState& api, const std::string& api_actor,
                  std::vector<Finding>& out) {
    const auto& c = settings.spike;
    SpikeState& sp = api.spike;
    const double t = e.timestamp;
    const int64_t minute = static_cast<int64_t>(std::floor(t / 60));
    if (minute > sp.minute) {
      if (sp.minute != INT64_MIN) {
        SpikeLearn(sp, sp.minute, sp.count, c);
        // Quiet minutes between are zeros (a week at most: every hour-of-week slot once).
        int64_t idle = std::min<int64_t>(minute - sp.minute - 1, 7 * 1440);
        for (int64_t k = 1; k <= idle; ++k) SpikeLearn(sp, minute - idle - 1 + k, 0, c);
      }
      sp.minute = minute;
      sp.count = 0;
      sp.fired = false;
    }
    ++sp.count;  // an event older than the current minute counts in it
    if (!c.enabled || sp.fired || sp.count < c.min_requests || !sp.week) return;
    const int how = HourOfWeek(sp.minute);
    const Ewma& slot = (*sp.week)[static_cast<size_t>(how)];
    const bool seasonal = static_cast<double>(slot.n) >= c.min_slot_minutes;
    const Ewma& base = seasonal ? slot : sp.all;
    if (!seasonal && static_cast<double>(sp.all.n) < c.min_minutes) return;
    const double expected = std::max(base.mean, 1.0);
    if (sp.count <= c.factor * expected) return;
    sp.fired = true;
    if (!CoolDown(api, Hash64("traffic_spike", 40), t, c.cooldown)) return;
    static constexpr const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    std::string slot_name = std::string(kDays[how / 24]) + " " + (how % 24 < 10 ? "0" : "") +
                            std::to_string(how % 24) + "h UTC";
    out.push_back(Make(e, "traffic_spike", c, api_actor,
                       std::to_string(sp.count) + " requests this minute, " +
                           std::to_string(sp.count / expected).substr(0, 4) + " x the baseline (" +
                           (seasonal ? slot_name : std::string("all hours")) + ")",
                       {{"requests_this_minute", sp.count},
                        {"baseline_per_minute", base.mean},
                        {"baseline", seasonal ? "hour_of_week" : "all_hours"},
                        {"hour_of_week", how},
                        {"hour_of_week_name", slot_name},
                        {"baseline_minutes", base.n},
                        {"factor", c.factor},
                        {"min_requests_per_minute", c.min_requests}},
                       sp.count / (c.factor * expected)));
  }

  // --- geographic stage (identities only: an address's own location does not move) ---
  static Json PlaceJson(const std::string& ip, const GeoLocation& l, double t) {
    Json j = {{"ip", ip}, {"country", l.country}, {"city", l.city}, {"timestamp", t}};
    if (l.has_coordinates) {
      j["latitude"] = l.latitude;
      j["longitude"] = l.longitude;
    }
    return j;
  }
  void GeoStage(const Event& e, ApiState& api, const std::string& actor, uint64_t id_key,
                std::vector<Finding>& out) {
    const auto& nc = settings.geo_country;
    const auto& tc = settings.travel;
    if ((!nc.enabled && !tc.enabled) || !geoip || e.identity.empty()) return;
    const double t = e.timestamp;
    GeoState& g = api.geo.Get(id_key);
    GeoLocation fresh;
    const bool same_ip = g.last_t >= 0 && g.last_ip == e.client_ip;
    if (!same_ip) {  // (a private address is never the last one)
      if (IsPrivateAddress(e.client_ip)) return;
      const uint64_t ip_hash = Hash64(e.client_ip, 31) | 1;
      if (g.unknown_ip == ip_hash) return;
      ++counters.geo_lookups;
      auto loc = geoip->Lookup(e.client_ip);
      if (!loc) {
        ++counters.geo_unknown;
        g.unknown_ip = ip_hash;
        return;
      }
      fresh = std::move(*loc);
    }
    const GeoLocation& here = same_ip ? g.last : fresh;

    // New country: forget countries unused for the learning window; with none left, the identity
    // is learnt afresh (its first sight is never a finding).
    for (size_t i = 0; i < g.n;) {
      if (t - g.countries[i].last_seen > nc.window) {
        g.countries[i] = g.countries[--g.n];
      } else {
        ++i;
      }
    }
    if (g.n == 0) g.history = 0;
    const std::array<char, 2> code = {here.country[0], here.country[1]};
    GeoState::Country* known = nullptr;
    for (size_t i = 0; i < g.n; ++i) {
      if (g.countries[i].code == code) known = &g.countries[i];
    }
    if (!known && nc.enabled && g.history >= nc.min_history) {
      Json countries = Json::array();
      for (size_t i = 0; i < g.n; ++i) {
        countries.push_back(std::string(g.countries[i].code.data(), 2));
      }
      Json ev = {{"country", here.country},
                 {"city", here.city},
                 {"known_countries", countries},
                 {"history_events", g.history},
                 {"learning_window_seconds", nc.window}};
      if (g.last_t >= 0) ev["previous"] = PlaceJson(g.last_ip, g.last, g.last_t);
      std::string where = here.city.empty() ? here.country : here.city + ", " + here.country;
      out.push_back(Make(e, "geo_new_country", nc, actor,
                         actor + " seen from a new country: " + where, std::move(ev), 1.0));
    }
    if (known) {
      known->last_seen = std::max(known->last_seen, t);
    } else {
      size_t slot = g.n;
      if (g.n == kGeoCountries) {  // full: replace the least recently used country
        slot = 0;
        for (size_t i = 1; i < g.n; ++i) {
          if (g.countries[i].last_seen < g.countries[slot].last_seen) slot = i;
        }
      } else {
        ++g.n;
      }
      g.countries[slot] = {code, t};
    }
    if (g.history < UINT32_MAX) ++g.history;

    // Impossible travel: from the identity's previous location to this one.
    if (tc.enabled && !same_ip && g.last_t >= 0 && here.has_coordinates && g.last.has_coordinates) {
      double km = GreatCircleKm(g.last.latitude, g.last.longitude, here.latitude, here.longitude);
      double seconds = std::abs(t - g.last_t);
      double speed = km / (std::max(seconds, 1.0) / 3600);
      if (km >= tc.min_distance && km > 0 && speed > tc.max_speed &&
          CoolDown(api, id_key ^ Hash64("travel", 32), t, tc.cooldown)) {
        out.push_back(Make(e, "impossible_travel", tc, actor,
                           actor + " moved " + std::to_string(std::lround(km)) + " km (" +
                               g.last.country + " to " + here.country + ") in " +
                               std::to_string(std::lround(seconds)) + " s",
                           {{"from", PlaceJson(g.last_ip, g.last, g.last_t)},
                            {"to", PlaceJson(e.client_ip, here, t)},
                            {"distance_km", km},
                            {"seconds", seconds},
                            {"speed_kmh", speed},
                            {"max_speed_kmh", tc.max_speed},
                            {"min_distance_km", tc.min_distance}},
                           speed / tc.max_speed));
      }
    }
    if (!same_ip && t >= g.last_t) {  // an older event out of order does not move the identity
      g.last_t = t;
      g.last_ip = e.client_ip;
      g.last = std::move(fresh);
    } else if (same_ip) {
      g.last_t = std::max(g.last_t, t);
    }
  }

  // --- ml stage ---
  std::string ModelPath(int64_t api_id, const char* kind) const {
    return model_dir + "/api-" + std::to_string(api_id) + "." + kind;
  }
  static bool ReadAll(const std::string& path, std::string* bytes) {
    std::string error;
    return model_io::ReadFile(path, bytes, &error);  // absent: not trained yet
  }
  void WriteAll(const std::string& path, const std::string& bytes) {
    std::string error;
    if (!model_io::WriteFileAtomic(path, bytes, &error)) ++counters.ml_save_failures;
  }
  // Saved models of an API, read once when its state is first needed.
  void LoadModels(int64_t api_id, MlState& ml) {
    ml.loaded = true;
    if (model_dir.empty()) return;
    std::string bytes, error;
    if (!ReadAll(ModelPath(api_id, "ml.json"), &bytes)) return;
    Json meta = Json::parse(bytes, nullptr, false);
    if (!meta.is_object() || !meta.contains("mean") || !meta["mean"].is_array() ||
        meta["mean"].size() != kMlFeatures || !meta["sd"].is_array() ||
        meta["sd"].size() != kMlFeatures) {
      return;
    }
    for (size_t j = 0; j < kMlFeatures; ++j) {
      ml.mean[j] = meta["mean"][j].is_number() ? meta["mean"][j].get<double>() : 0;
      ml.sd[j] = meta["sd"][j].is_number() ? meta["sd"][j].get<double>() : 1;
    }
    ml.trained_at = meta.value("trained_at", -1.0);
    if (ReadAll(ModelPath(api_id, "iforest"), &bytes)) {
      ml.forest = IsolationForest::Parse(bytes, &error);
      if (ml.forest && ml.forest->dims() != kMlFeatures) ml.forest.reset();
      ml.forest_threshold = meta.value("forest_threshold", 1.0);
    }
    if (ReadAll(ModelPath(api_id, "ocsvm"), &bytes)) {
      ml.svm = OneClassSvm::Parse(bytes, &error);
      if (ml.svm && ml.svm->dims() != kMlFeatures) ml.svm.reset();
      ml.svm_threshold = meta.value("svm_threshold", 0.0);
    }
  }
  void Train(int64_t api_id, MlState& ml, double t) {
    const auto& fc = settings.forest;
    std::vector<double> x(ml.clean.begin(),
                          ml.clean.begin() + static_cast<std::ptrdiff_t>(ml.count * kMlFeatures));
    const double n = static_cast<double>(ml.count);
    for (size_t j = 0; j < kMlFeatures; ++j) {
      double sum = 0, sq = 0;
      for (size_t i = 0; i < ml.count; ++i) sum += x[i * kMlFeatures + j];
      ml.mean[j] = sum / n;
      for (size_t i = 0; i < ml.count; ++i) {
        double d = x[i * kMlFeatures + j] - ml.mean[j];
        sq += d * d;
      }
      ml.sd[j] = std::sqrt(sq / n);
    }
    // The threshold is the (1 - contamination) quantile of the training windows' scores.
    auto quantile = [&](auto&& score, double contamination) {
      std::vector<double> s(ml.count);
      for (size_t i = 0; i < ml.count; ++i) s[i] = score(&x[i * kMlFeatures]);
      size_t k = static_cast<size_t>(std::floor((1 - contamination) * (n - 1)));
      std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
      return s[k];
    };
    ml.trained_at = t;
    if (fc.enabled) {
      IsolationForestOptions o;
      o.seed = static_cast<uint64_t>(api_id) * 7919 + static_cast<uint64_t>(t);
      ml.forest = IsolationForest::Fit(x, kMlFeatures, o);
      if (ml.forest) {
        ml.forest_threshold =
            quantile([&](const double* v) { return ml.forest->Score(v); }, fc.contamination);
      }
    }
    if (settings.svm.enabled) {
      OneClassSvmOptions o;
      o.nu = settings.svm.contamination;
      o.max_rows = 1000;
      std::string error;
      ml.svm = OneClassSvm::Fit(x, kMlFeatures, o, &error);
      if (ml.svm) ml.svm_threshold = 0;
    }
    ++counters.ml_trainings;
    if (model_dir.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(model_dir, ec);
    if (ml.forest) WriteAll(ModelPath(api_id, "iforest"), ml.forest->Serialize());
    if (ml.svm) WriteAll(ModelPath(api_id, "ocsvm"), ml.svm->Serialize());
    Json meta = {{"features", Json(std::vector<std::string>(std::begin(kMlFeatureNames),
                                                            std::end(kMlFeatureNames)))},
                 {"mean", ml.mean},
                 {"sd", ml.sd},
                 {"windows", ml.count},
                 {"trained_at", t},
                 {"forest_threshold", ml.forest_threshold},
                 {"svm_threshold", ml.svm_threshold}};
    WriteAll(ModelPath(api_id, "ml.json"), meta.dump());
  }
  Json FeatureJson(const std::array<double, kMlFeatures>& f) const {
    Json j = Json::object();
    for (size_t i = 0; i < kMlFeatures; ++i) j[kMlFeatureNames[i]] = f[i];
    return j;
  }
  // The three features with the largest weight, with their values and training baselines.
  Json Drivers(const std::array<double, kMlFeatures>& f, const std::vector<double>& weight,
               const MlState& ml, const char* weight_name) const {
    std::array<size_t, kMlFeatures> idx;
    std::iota(idx.begin(), idx.end(), size_t{0});
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return weight[a] > weight[b]; });
    Json out = Json::array();
    for (size_t r = 0; r < 3; ++r) {
      size_t i = idx[r];
      out.push_back({{"feature", kMlFeatureNames[i]},
                     {"value", f[i]},
                     {"baseline_mean", ml.mean[i]},
                     {"baseline_sd", ml.sd[i]},
                     {weight_name, weight[i]}});
    }
    return out;
  }
  // Closes the actor's window when `t` is past it: trains on it when it was clean, scores it
  // with the API's models, and starts a new window.
  void MlStage(const Event& e, ApiState& api, ActorState& actor, const std::string& actor_name,
               uint64_t tmpl_key, const TemplateState& ts, bool other_findings,
               std::vector<Finding>& out) {
    const auto& fc = settings.forest;
    const auto& sc = settings.svm;
    if (!fc.enabled && !sc.enabled) return;
    const double t = e.timestamp;
    MlState& ml = api.ml;
    if (!ml.loaded) LoadModels(e.api_id, ml);
    MlWindow& w = actor.ml;
    const double window = fc.enabled ? fc.window : sc.window;
    if (w.start >= 0 && (t >= w.start + window || t < w.start - window)) {
      if (w.n >= (fc.enabled ? fc.min_requests : sc.min_requests)) {
        auto f = w.Features();
        ++counters.ml_windows;
        const auto& tc = fc.enabled ? fc : sc;
        const size_t cap = static_cast<size_t>(tc.max_training_windows);
        if (!w.flagged) ml.Add(f, cap);
        if (ml.count >= static_cast<size_t>(tc.min_training_windows) &&
            (ml.trained_at < 0 || t - ml.trained_at >= tc.retrain_interval ||
             t < ml.trained_at - tc.retrain_interval || (fc.enabled && !ml.forest) ||
             (sc.enabled && !ml.svm))) {
          Train(e.api_id, ml, t);
        }
        Json window_ev = {
            {"window_start", w.start}, {"window_seconds", window}, {"features", FeatureJson(f)}};
        if (fc.enabled && ml.forest) {
          double score = ml.forest->Score(f.data());
          if (score > ml.forest_threshold &&
              CoolDown(api, Hash64(actor_name, 21), t, fc.cooldown)) {
            Json ev = window_ev;
            ev["score"] = score;
            ev["threshold"] = ml.forest_threshold;
            ev["contamination"] = fc.contamination;
            ev["drivers"] = Drivers(f, ml.forest->Explain(f.data()), ml, "share");
            std::string msg = "unusual activity of " + actor_name + ": Isolation Forest score " +
                              std::to_string(score).substr(0, 5) + " (driven by " +
                              ev["drivers"][0]["feature"].get<std::string>() + ")";
            out.push_back(Make(e, "isolation_forest", fc, actor_name, std::move(msg), std::move(ev),
                               score / ml.forest_threshold));
          }
        }
        if (sc.enabled && ml.svm) {
          double score = ml.svm->Score(f.data());
          if (score > ml.svm_threshold && CoolDown(api, Hash64(actor_name, 22), t, sc.cooldown)) {
            Json ev = window_ev;
            ev["score"] = score;
            ev["threshold"] = ml.svm_threshold;
            ev["nu"] = sc.contamination;
            ev["drivers"] = Drivers(f, ml.svm->Deviations(f.data()), ml, "deviation_sd");
            std::string msg = "unusual activity of " + actor_name +
                              ": outside the One-Class SVM boundary (driven by " +
                              ev["drivers"][0]["feature"].get<std::string>() + ")";
            out.push_back(
                Make(e, "one_class_svm", sc, actor_name, std::move(msg), std::move(ev), 1 + score));
          }
        }
      }
      w = MlWindow{};
    }
    if (w.start < 0) w.start = t;
    if (w.n > 0 && t >= w.last) {
      double gap = t - w.last;
      w.gap_sum += gap;
      w.gap_sq += gap * gap;
      ++w.gaps;
    }
    w.last = std::max(w.last, t);
    ++w.n;
    w.templates |= uint64_t{1} << ((tmpl_key ^ (tmpl_key >> 32)) & 63);
    if (e.status_code == 404) ++w.not_found;
    if (e.status_code == 401 || e.status_code == 403) ++w.auth;
    if (e.status_code >= 500) ++w.server_errors;
    if (e.method != "GET" && e.method != "HEAD" && e.method != "OPTIONS") ++w.writes;
    double size = static_cast<double>(e.response_size.value_or(e.body_size.value_or(-1)));
    if (size >= 0 && ts.size.n >= 10) {
      w.size_z += static_cast<float>(
          std::clamp(ts.size.Z(size, std::max(0.01 * std::abs(ts.size.mean), 0.1)), -20.0, 20.0));
    }
    if (ts.latency.n >= 10) {
      w.latency_z += static_cast<float>(
          std::clamp(ts.latency.Z(e.latency_ms, std::max(0.01 * std::abs(ts.latency.mean), 0.1)),
                     -20.0, 20.0));
    }
    if (other_findings) w.flagged = true;
  }
};

void Pipeline::Impl::Process(const Event& e, std::vector<Finding>& out) {
  ApplyPending();
  has_review = false;
  ++counters.events;
  const size_t first = out.size();
  uint64_t ids_hash = 0;
  int folded = TemplateOf(e.endpoint, tmpl, &ids_hash);
  const double t = e.timestamp;
  // The actors' names, built in storage kept from event to event.
  ip_actor.assign("ip:").append(e.client_ip);
  const std::string& primary_actor_text = e.identity.empty() ? e.client_ip : e.identity;
  if (e.identity.empty()) {
    primary_actor.assign(ip_actor);
  } else {
    primary_actor.assign("id:").append(e.identity);
  }
  if (api_actor_of != e.api_id || api_actor.empty()) {
    api_actor = "api:" + std::to_string(e.api_id);
    api_actor_of = e.api_id;
  }

  // Lists: a whitelisted caller raises nothing and leaves no state.
  bool blacklisted = false;
  const ListRule* black_rule = nullptr;
  for (const auto& r : lists) {
    if (r.api_id != 0 && r.api_id != e.api_id) continue;
    if (r.expires_at != 0 && r.expires_at <= t) continue;
    bool match = r.kind == "identity" ? (!e.identity.empty() && r.value == e.identity)
                                      : IpInCidr(e.client_ip, r.value);
    if (!match) continue;
    if (r.whitelist) {
      ++counters.whitelisted;
      return;
    }
    if (!blacklisted) black_rule = &r;
    blacklisted = true;
  }

  ApiState& api = StateOf(e.api_id);
  const uint64_t ip_key = Hash64(e.client_ip, kIpSeed);
  const uint64_t tmpl_key = Hash64(tmpl, 2);
  const uint64_t id_key = e.identity.empty() ? 0 : Hash64(e.identity, kIdentitySeed);
  api.actors.Prefetch(ip_key);  // overlaps the cache misses of the lookups below
  if (!e.identity.empty()) api.actors.Prefetch(id_key);
  api.templates.Prefetch(tmpl_key);
  // The enumeration and geographic tables' keys, computed once here and prefetched as well.
  const uint64_t enum_key = folded > 0 ? Hash64(primary_actor_text, tmpl_key) : 0;
  if (folded > 0 && settings.enumeration.enabled) api.enum_keys.Prefetch(enum_key);
  const uint64_t geo_key = e.identity.empty() ? 0 : Hash64(e.identity, kGeoSeed);
  if (geoip && !e.identity.empty()) api.geo.Prefetch(geo_key);
  // With a Prefetch() hint the slots are in cache already: the entries load during the scan.
  api.actors.PrefetchEntry(ip_key);
  if (!e.identity.empty()) api.actors.PrefetchEntry(id_key);
  if (geoip && !e.identity.empty()) api.geo.PrefetchEntry(geo_key);
  content_type.clear();
  std::string_view user_agent = e.user_agent;
  for (const auto& [k, v] : e.headers) {
    if (EqualsNoCase(k, "content-type")) AssignLower(content_type, v);
    if (user_agent.empty() && EqualsNoCase(k, "user-agent")) user_agent = v;
  }

  // Content is scanned first, while the state tables' entries prefetched above arrive; its
  // findings are emitted after the rate limits', in the stages' order.
  const bool scan_content = AnyContentEnabled() || (settings.classifier.enabled && classifier);
  if (scan_content) {
    ClearHits();
    std::string_view ep = e.endpoint;
    size_t qpos = ep.find('?');
    std::string_view path = ep.substr(0, qpos);
    std::string_view normalized_path;
    if (const ScanMemo* m = Memo(path, kMemoPlain)) {
      normalized_path = m->norm;
      for (const auto& c : m->matches)
        Record(c.cls, c.rule, "signature", "path", normalized_path, c.end);
    } else {
      Normalize(path, norm, false);
      ScanValue(norm, "path", false);
      normalized_path = norm;
    }
    // Path segments that carry SQL or markup characters are values too ("/items/1' or '1'='1").
    {
      size_t i = 0;
      while (i < normalized_path.size()) {
        size_t s = normalized_path.find('/', i);
        if (s == std::string::npos) s = normalized_path.size();
        std::string_view seg = normalized_path.substr(i, s - i);
        if (seg.find_first_of("'\"<>();=` ") != std::string_view::npos) {
          if (settings.content[0].enabled && !hits[0].rule) {
            if (const char* r = SqliTokenizer(seg))
              Record(AttackClass::kSqli, r, "tokenizer", "path", seg, seg.size());
          }
          if (settings.content[1].enabled && !hits[1].rule) {
            if (const char* r = XssTokenizer(seg))
              Record(AttackClass::kXss, r, "tokenizer", "path", seg, seg.size());
          }
        }
        i = s + 1;
      }
    }
    if (qpos != std::string_view::npos) ScanParams(ep.substr(qpos + 1), "query");
    if (!e.query.empty()) ScanParams(e.query, "query");
    bool any_headers = false;
    for (const auto& c : settings.content) any_headers |= c.enabled && c.headers;
    if (any_headers) {
      for (const auto& [k, v] : e.headers) {
        if (SkipHeader(k)) continue;
        location.assign("header:");
        for (char ch : k) location += LowerAscii(ch);
        ScanRaw(v, location, false, true);
      }
      if (!e.user_agent.empty()) ScanRaw(e.user_agent, "header:user-agent", false, true);
    }
    ScanBody(e);
    for (int k = 0; k < kAttackClasses; ++k) {
      auto& h = hits[static_cast<size_t>(k)];
      if (h.rule && h.location.rfind("header:", 0) == 0 &&
          !settings.content[static_cast<size_t>(k)].headers) {
        h.rule = nullptr;
      }
    }
  }
  if (folded > 0 && settings.enumeration.enabled) api.enum_keys.PrefetchEntry(enum_key);

  // --- rules ---
  if (blacklisted && settings.blacklist.enabled) {
    out.push_back(Make(e, "blacklist", settings.blacklist,
                       black_rule->kind == "identity" ? "id:" + e.identity : ip_actor,
                       "request from a blacklisted " + black_rule->kind,
                       {{"kind", black_rule->kind},
                        {"value", black_rule->value},
                        {"list_api_id", black_rule->api_id}},
                       1.0));
  }

  ActorState& ip_state = api.actors.Get(ip_key);
  TemplateState& ts = api.templates.Get(tmpl_key);
  ActorState* id_state = e.identity.empty() ? nullptr : &api.actors.Get(id_key);
  ActorState& primary = id_state ? *id_state : ip_state;

  {
    const auto& c = settings.rate;
    double ip_m = ip_state.minute.Add(t, 60), ip_h = ip_state.hour.Add(t, 3600);
    double id_m = id_state ? id_state->minute.Add(t, 60) : 0;
    double id_h = id_state ? id_state->hour.Add(t, 3600) : 0;
    double ep_m = ts.minute.Add(t, 60), ep_h = ts.hour.Add(t, 3600);
    if (c.enabled) {
      struct Check {
        double value, limit;
        const char* scope;
        const char* window;
        const std::string* actor;
        uint64_t key;
      } checks[] = {{ip_m, c.per_minute, "actor", "minute", &ip_actor, ip_key},
                    {ip_h, c.per_hour, "actor", "hour", &ip_actor, ip_key},
                    {id_m, c.per_minute, "actor", "minute", &primary_actor, id_key},
                    {id_h, c.per_hour, "actor", "hour", &primary_actor, id_key},
                    {ep_m, c.endpoint_per_minute, "endpoint", "minute", &api_actor, tmpl_key},
                    {ep_h, c.endpoint_per_hour, "endpoint", "hour", &api_actor, tmpl_key}};
      for (const auto& ch : checks) {
        if (ch.value <= ch.limit) continue;
        if (!CoolDown(api, ch.key ^ Hash64(ch.window, 11) ^ Hash64(ch.scope, 12), t, c.cooldown)) {
          continue;
        }
        out.push_back(Make(e, "rate_limit", c, *ch.actor,
                           std::string(ch.scope) + " exceeded " +
                               std::to_string(static_cast<int64_t>(ch.limit)) + " requests per " +
                               ch.window,
                           {{"scope", ch.scope},
                            {"window", ch.window},
                            {"count", std::round(ch.value)},
                            {"limit", ch.limit}},
                           ch.value / ch.limit));
        break;
      }
    }
  }

  if (scan_content) {
    EmitContent(&e, out);
    SelectReview(e);
  }

  if (settings.malformed.enabled) {
    const auto& c = settings.malformed;
    Json reasons = Json::array();
    if (!e.payload.empty() && IsJsonType(content_type) &&
        (!e.body_size || *e.body_size == static_cast<int64_t>(e.payload.size()))) {
      if (json_parser.parse(e.payload.data(), e.payload.size(), true).error()) {
        reasons.push_back("invalid JSON body for content type " + content_type);
      }
    }
    if (!ValidUtf8(e.endpoint) || !ValidUtf8(e.query))
      reasons.push_back("invalid UTF-8 in the request target");
    if (!e.payload.empty() && IsTextType(content_type) && !ValidUtf8(e.payload)) {
      reasons.push_back("invalid UTF-8 in the body");
    }
    size_t header_bytes = 0, longest = 0;
    for (const auto& [k, v] : e.headers) {
      header_bytes += k.size() + v.size() + 4;
      longest = std::max(longest, v.size());
      if (!ValidUtf8(v)) reasons.push_back("invalid UTF-8 in header " + Lower(k));
      if (EqualsNoCase(k, "content-length") && e.body_size) {
        char* end = nullptr;
        long long n = std::strtoll(v.c_str(), &end, 10);
        if (end && *end == '\0' && n != *e.body_size)
          reasons.push_back("Content-Length differs from the body size");
      }
    }
    if (static_cast<double>(e.headers.size()) > c.max_headers) {
      reasons.push_back("too many headers (" + std::to_string(e.headers.size()) + ")");
    }
    if (static_cast<double>(longest) > c.max_header_value) {
      reasons.push_back("oversized header value (" + std::to_string(longest) + " bytes)");
    }
    if (static_cast<double>(header_bytes) > c.max_header_bytes) {
      reasons.push_back("oversized headers (" + std::to_string(header_bytes) + " bytes)");
    }
    if (std::find(std::begin(kStandardMethods), std::end(kStandardMethods), e.method) ==
        std::end(kStandardMethods)) {
      reasons.push_back("non-standard method " + e.method);
    } else if (e.method == "TRACE" || e.method == "CONNECT") {
      reasons.push_back("method " + e.method + " on an API");
    }
    if (!reasons.empty()) {
      std::string msg = reasons[0].get<std::string>();
      out.push_back(Make(e, "malformed", c, primary_actor, std::move(msg), {{"reasons", reasons}},
                         static_cast<double>(reasons.size())));
    }
  }

  const bool auth_failure = (e.status_code == 401 || e.status_code == 403);
  if (settings.brute.enabled && auth_failure) {
    const auto& c = settings.brute;
    std::string lower_tmpl = Lower(tmpl);
    bool auth_path = false;
    for (const auto& p : c.auth_paths) auth_path |= lower_tmpl.find(p) != std::string::npos;
    if (auth_path) {
      ip_state.auth.Roll(t, c.window);
      ++ip_state.auth.count;
      if (ts.auth.Roll(t, c.window)) ts.auth_ips.Clear();
      ++ts.auth.count;
      ts.auth_ips.Add(ip_key);
      double ips = ts.auth_ips.Estimate();
      if (ip_state.auth.count >= c.failures &&
          CoolDown(api, ip_key ^ Hash64("brute", 13), t, c.cooldown)) {
        out.push_back(
            Make(e, "brute_force", c, ip_actor,
                 std::to_string(ip_state.auth.count) + " authentication failures on " + tmpl,
                 {{"kind", "brute_force"},
                  {"failures", ip_state.auth.count},
                  {"window_seconds", c.window},
                  {"status", e.status_code}},
                 ip_state.auth.count / c.failures));
      } else if (ts.auth.count >= c.stuffing_failures && ips >= c.stuffing_ips &&
                 CoolDown(api, tmpl_key ^ Hash64("stuffing", 14), t, c.cooldown)) {
        out.push_back(Make(e, "brute_force", c, api_actor,
                           "credential stuffing: " + std::to_string(ts.auth.count) +
                               " failures from about " + std::to_string(std::lround(ips)) +
                               " addresses on " + tmpl,
                           {{"kind", "credential_stuffing"},
                            {"failures", ts.auth.count},
                            {"distinct_ips", std::lround(ips)},
                            {"window_seconds", c.window}},
                           ts.auth.count / c.stuffing_failures));
      }
    }
  }

  {
    const auto& c = settings.enumeration;
    primary.not_found.Roll(t, c.window);
    ++primary.not_found.count;
    if (e.status_code == 404) ++primary.not_found.hits;
    if (c.enabled) {
      bool fired = false;
      if (folded > 0) {
        const uint64_t key = enum_key;
        EnumState& st = api.enum_keys.Get(key);
        if (st.window.Roll(t, c.window)) st.ids.Clear();
        st.ids.Add(ids_hash);
        double distinct = st.ids.Estimate();
        if (distinct >= c.distinct_ids && CoolDown(api, key ^ Hash64("enum", 15), t, c.cooldown)) {
          out.push_back(Make(e, "enumeration", c, primary_actor,
                             "about " + std::to_string(std::lround(distinct)) +
                                 " distinct ids of " + tmpl + " requested",
                             {{"kind", "distinct_ids"},
                              {"distinct_ids", std::lround(distinct)},
                              {"window_seconds", c.window}},
                             distinct / c.distinct_ids));
          fired = true;
        }
      }
      const auto& nf = primary.not_found;
      if (!fired && e.status_code == 404 && nf.count >= c.min_requests &&
          nf.hits >= c.not_found_ratio * nf.count &&
          CoolDown(api, Hash64(primary_actor_text, 16), t, c.cooldown)) {
        double ratio = static_cast<double>(nf.hits) / nf.count;
        out.push_back(Make(
            e, "enumeration", c, primary_actor,
            std::to_string(nf.hits) + " of " + std::to_string(nf.count) + " requests answered 404",
            {{"kind", "not_found_ratio"},
             {"not_found", nf.hits},
             {"requests", nf.count},
             {"ratio", ratio}},
            ratio / std::max(c.not_found_ratio, 1e-9)));
      }
    }
  }

  if (settings.scraping.enabled && (e.method == "GET" || e.method == "HEAD")) {
    const auto& c = settings.scraping;
    if (primary.scrape.Roll(t, c.window)) primary.scrape_paths.Clear();
    ++primary.scrape.count;
    if (primary.scrape.count >= std::min(c.min_requests, c.bot_min_requests) / 2) {
      primary.scrape_paths.Add(Hash64(e.endpoint, 17));
    }
    const uint32_t n = primary.scrape.count;
    bool bot = Automated(user_agent);
    bool volume = n >= c.min_requests;
    bool bot_volume = bot && n >= c.bot_min_requests;
    if (volume || bot_volume) {
      // Distinct paths seen since tracking began (half of the smaller threshold).
      double tracked = n - std::floor(std::min(c.min_requests, c.bot_min_requests) / 2) + 1;
      double ratio = primary.scrape_paths.Estimate() / std::max(1.0, tracked);
      if ((ratio >= c.distinct_ratio || (bot_volume && ratio >= c.distinct_ratio / 2)) &&
          CoolDown(api, Hash64(primary_actor_text, 18), t, c.cooldown)) {
        out.push_back(Make(e, "scraping", c, primary_actor,
                           std::to_string(n) + " GET requests over mostly distinct URLs" +
                               (bot ? " from an automated client" : ""),
                           {{"requests", n},
                            {"distinct_ratio", std::min(1.0, ratio)},
                            {"automated_user_agent", bot},
                            {"window_seconds", c.window}},
                           n / c.min_requests));
      }
    }
  }

  // --- statistics ---
  {
    const auto& c = settings.zscore;
    int64_t bucket = static_cast<int64_t>(std::floor(t / 60));
    if (bucket > ts.rate_bucket) {
      if (ts.rate_bucket != INT64_MIN) {
        ts.rate.Add(ts.rate_count, c.alpha);
        int64_t idle = std::min<int64_t>(bucket - ts.rate_bucket - 1, 60);
        for (int64_t k = 0; k < idle; ++k) ts.rate.Add(0, c.alpha);
      }
      ts.rate_bucket = bucket;
      ts.rate_count = 0;
      ts.rate_fired = false;
    }
    ++ts.rate_count;
    double size = static_cast<double>(e.response_size.value_or(e.body_size.value_or(-1)));
    if (c.enabled) {
      struct M {
        const char* metric;
        double value;
        const Ewma& stats;
        double min_n;
      } metrics[] = {{"latency_ms", e.latency_ms, ts.latency, c.min_samples},
                     {"size_bytes", size, ts.size, c.min_samples},
                     {"requests_per_minute", static_cast<double>(ts.rate_count), ts.rate,
                      std::max(5.0, c.min_samples / 10)}};
      for (const auto& m : metrics) {
        if (m.value < 0 || static_cast<double>(m.stats.n) < m.min_n) continue;
        // Floors: a Poisson deviation for counts, 1% of the mean for latency and size.
        const bool is_rate = m.metric == std::string_view("requests_per_minute");
        double min_sd = is_rate ? std::max(1.0, std::sqrt(std::max(m.stats.mean, 0.0)))
                                : std::max(0.01 * std::abs(m.stats.mean), 0.1);
        double z = m.stats.Z(m.value, min_sd);
        if (z <= c.threshold) continue;
        if (is_rate) {
          if (ts.rate_fired || m.value < c.min_rate) continue;
          ts.rate_fired = true;
        }
        if (!CoolDown(api, tmpl_key ^ Hash64(m.metric, 19), t, c.cooldown)) continue;
        out.push_back(Make(
            e, "zscore", c, api_actor,
            std::string(m.metric) + " z-score " + std::to_string(z).substr(0, 5) + " on " + tmpl,
            {{"metric", m.metric},
             {"value", m.value},
             {"mean", m.stats.mean},
             {"stddev", std::sqrt(m.stats.var)},
             {"z", z},
             {"threshold", c.threshold}},
            z / c.threshold));
        break;
      }
    }
    ts.latency.Add(e.latency_ms, c.alpha);
    if (size >= 0) ts.size.Add(size, c.alpha);
  }

  if (settings.percentile.enabled) {
    const auto& c = settings.percentile;
    if (!ts.latency_q) ts.latency_q = std::make_unique<RollingQuantiles>(c.window, 6, 0.009);
    if (++ts.pct_since >= 32) {
      ts.pct_threshold = ts.latency_q->Count(t) >= c.min_samples
                             ? ts.latency_q->Quantile(t, c.quantile) * c.factor
                             : 0;
      ts.pct_since = 0;
    }
    if (ts.pct_threshold > 0 && e.latency_ms > ts.pct_threshold &&
        CoolDown(api, tmpl_key ^ Hash64("pct", 20), t, c.cooldown)) {
      out.push_back(Make(e, "percentile", c, api_actor,
                         "latency " + std::to_string(std::lround(e.latency_ms)) + " ms above " +
                             std::to_string(c.factor).substr(0, 4) + " x rolling p" +
                             std::to_string(std::lround(c.quantile * 100)) + " on " + tmpl,
                         {{"metric", "latency_ms"},
                          {"value", e.latency_ms},
                          {"quantile", c.quantile},
                          {"rolling_value", ts.pct_threshold / c.factor},
                          {"factor", c.factor}},
                         e.latency_ms / ts.pct_threshold));
    }
    ts.latency_q->Add(t, e.latency_ms);
  }

  SpikeStage(e, api, api_actor, out);
  GeoStage(e, api, primary_actor, geo_key, out);

  MlStage(e, api, primary, primary_actor, tmpl_key, ts, out.size() > first, out);

  counters.findings += out.size() - first;
}

Pipeline::Pipeline(PipelineLimits limits) : impl_(std::make_unique<Impl>(limits)) {}
Pipeline::~Pipeline() = default;

void Pipeline::Configure(const std::vector<DetectorSettings>& settings) {
  std::lock_guard lock(impl_->pending_mu);
  for (const auto& s : settings) impl_->pending_settings.push_back(s);
  impl_->dirty.store(true, std::memory_order_release);
}

void Pipeline::SetLists(std::vector<ListRule> rules) {
  std::lock_guard lock(impl_->pending_mu);
  impl_->pending_lists = std::move(rules);
  impl_->pending_lists_set = true;
  impl_->dirty.store(true, std::memory_order_release);
}

void Pipeline::SetPayloadClassifier(std::shared_ptr<const PayloadClassifier> model) {
  std::lock_guard lock(impl_->pending_mu);
  impl_->pending_classifier = std::move(model);
  impl_->pending_classifier_set = true;
  impl_->dirty.store(true, std::memory_order_release);
}

void Pipeline::SetGeoIp(std::shared_ptr<const GeoIp> geo) {
  std::lock_guard lock(impl_->pending_mu);
  impl_->pending_geoip = std::move(geo);
  impl_->pending_geoip_set = true;
  impl_->dirty.store(true, std::memory_order_release);
}

void Pipeline::SetModelDir(std::string dir) {
  std::lock_guard lock(impl_->pending_mu);
  impl_->pending_model_dir = std::move(dir);
  impl_->dirty.store(true, std::memory_order_release);
}

void Pipeline::Process(const Event& e, std::vector<Finding>& out) { impl_->Process(e, out); }

void Pipeline::Prefetch(const Event& e) const {
  const Impl& m = *impl_;
  const std::unique_ptr<ApiState>* api = m.apis.Peek(e.api_id);
  if (!api || !*api) return;
  (*api)->actors.Prefetch(Hash64(e.client_ip, kIpSeed));
  if (e.identity.empty()) return;
  (*api)->actors.Prefetch(Hash64(e.identity, kIdentitySeed));
  if (m.geoip) (*api)->geo.Prefetch(Hash64(e.identity, kGeoSeed));
}

void Pipeline::ProcessValue(std::string_view value, std::vector<Finding>& out) {
  Impl& m = *impl_;
  m.ApplyPending();
  ++m.counters.events;
  m.ClearHits();
  m.ScanRaw(value, "value", false, true);
  if (value.find('+') != std::string_view::npos) m.ScanRaw(value, "value", true, true);
  size_t before = out.size();
  m.EmitContent(nullptr, out);
  m.counters.findings += out.size() - before;
}

bool Pipeline::TakeReview(PayloadReview* out) {
  if (!impl_->has_review) return false;
  impl_->has_review = false;
  *out = std::move(impl_->review);
  return true;
}

PipelineCounters Pipeline::Counters() const {
  PipelineCounters c = impl_->counters;
  c.evictions = impl_->apis.evictions();
  impl_->apis.ForEach([&c](const int64_t&, const std::unique_ptr<ApiState>& a) {
    c.actors += a->actors.size();
    c.templates += a->templates.size();
    c.geo_identities += a->geo.size();
    c.evictions += a->actors.evictions() + a->templates.evictions() + a->enum_keys.evictions() +
                   a->geo.evictions();
  });
  return c;
}

}  // namespace boing::detect
