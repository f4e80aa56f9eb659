// The detection pipeline: turns events into findings, independent of HTTP and storage.
//
// Stages run in order (rules, statistics, then ml); each detector has its own settings (enabled,
// severity, thresholds and windows in a JSON object) that can be replaced at any time from another
// thread with Configure()/SetLists(): the change applies from the next event processed.
// All state is keyed by API first (one API's state can live on one worker) and lives in bounded
// tables with LRU eviction. Time is the events' own timestamps, so offline analysis of old logs
// behaves like live traffic.
//
// Process() and ProcessValue() must be called from one thread at a time (the worker).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "boing/event.h"

namespace boing::detect {

enum class Severity { kInfo, kLow, kMedium, kHigh, kCritical };
const char* SeverityName(Severity s);
bool ParseSeverity(std::string_view s, Severity* out);

struct Finding {
  std::string detector;  // detector id
  Severity severity = Severity::kMedium;
  double score = 0;   // how far past the threshold (1 = at it); 1 for signature matches
  std::string actor;  // "ip:..", "id:.." or "api:<id>" (EVENTS.md)
  int64_t api_id = 0;
  int64_t event_id = 0;
  double timestamp = 0;
  std::string method;
  std::string endpoint_template;
  std::string client_ip;
  std::string identity;
  std::string message;
  nlohmann::json evidence = nlohmann::json::object();
};

struct DetectorSettings {
  std::string id;
  bool enabled = true;
  Severity severity = Severity::kMedium;
  nlohmann::json config = nlohmann::json::object();  // missing keys take the defaults
};

// A whitelist/blacklist entry (the store's list_entries). api_id 0 applies to every API.
struct ListRule {
  bool whitelist = false;
  std::string kind;  // "ip" | "cidr" | "identity"
  std::string value;
  int64_t api_id = 0;
  double expires_at = 0;  // Unix seconds, 0 = never
};

struct PipelineLimits {
  size_t max_apis = 1024;
  size_t max_actors_per_api = 100000;
  size_t max_templates_per_api = 5000;
  size_t max_enum_keys_per_api = 100000;
  size_t max_geo_identities_per_api = 100000;  // geo_new_country / impossible_travel state
  // Verdicts on recently scanned values (header, parameter and body values), reused when the
  // same text comes again: entries (rounded up to a power of two; 0 turns it off) and the longest
  // value stored.
  size_t scan_memo_entries = 4096;
  size_t max_scan_memo_value = 512;
};

struct PipelineCounters {
  uint64_t events = 0, findings = 0, whitelisted = 0, evictions = 0;
  uint64_t ml_windows = 0, ml_trainings = 0;  // actor windows scored, anomaly model trainings
  uint64_t ml_save_failures = 0;              // models trained but not written to MODEL_DIR
  size_t actors = 0, templates = 0;           // live entries over all APIs
  size_t geo_identities = 0;                  // identities with geographic state
  uint64_t geo_lookups = 0, geo_unknown = 0;  // database lookups; of them, addresses it lacks
  uint64_t scan_memo_hits = 0;                // values whose verdict was reused
};

// A payload the `llm` stage should look at, chosen by the pipeline from the last event processed
// (Pipeline::TakeReview). The review itself runs outside the pipeline (the server's LLM client):
// the pipeline only picks the values the earlier stages were unsure about (the `llm` detector's
// settings): a value whose classifier probability lies in the grey band
// [review_min_probability, review_max_probability) ("classifier_uncertain"), else a value a
// signature or tokenizer matched while the classifier (when it runs) stayed below its threshold
// ("signature_unconfirmed").
struct PayloadReview {
  Finding finding;          // detector "llm" with the event's actor, API, template...; no message
  std::string value;        // the normalised value, at most `max_payload_bytes` bytes
  std::string location;     // "query", "body", "path", "header:..."
  std::string reason;       // "classifier_uncertain" | "signature_unconfirmed"
  double probability = -1;  // the classifier's attack probability of the event (-1: none ran)
  std::string classifier_class;  // its most probable attack class
  std::string signature;         // attack class a signature/tokenizer matched, or empty
};

class PayloadClassifier;
class GeoIp;

// Ids of the detectors this pipeline implements, in stage order.
const std::vector<std::string>& ImplementedDetectors();

class Pipeline {
 public:
  explicit Pipeline(PipelineLimits limits = {});
  ~Pipeline();

  // Replaces the settings of the detectors named (others keep theirs). Unknown ids are ignored.
  // Detectors start with their built-in defaults and enabled.
  void Configure(const std::vector<DetectorSettings>& settings);
  void SetLists(std::vector<ListRule> rules);
  // The model of the `payload_classifier` detector (none: that detector does not run).
  void SetPayloadClassifier(std::shared_ptr<const PayloadClassifier> model);
  // The IP geolocation database of geo_new_country and impossible_travel (none: they do not run).
  void SetGeoIp(std::shared_ptr<const GeoIp> geo);
  // Where the ml stage saves each API's anomaly models after training (api-<id>.iforest,
  // .ocsvm, .ml.json) and reads them back when the API is first seen; applies from the next event.
  void SetModelDir(std::string dir);

  // Appends the findings of one event (at most one per detector).
  void Process(const Event& e, std::vector<Finding>& out);
  // A hint, no effect on findings: `e` will be processed soon (a batch's next event, called
  // before processing the current one). Starts loading its caller's state from memory, so that
  // the tables' cache misses overlap the current event's work.
  void Prefetch(const Event& e) const;
  // Runs the content detectors on one raw parameter value (analyze --values).
  void ProcessValue(std::string_view value, std::vector<Finding>& out);
  // The value of the last event given to Process() that the `llm` stage should review (moved
  // into *out); false when there is none or `llm` is disabled.
  bool TakeReview(PayloadReview* out);

  // Call from the processing thread (it walks the state tables).
  PipelineCounters Counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace boing::detect
