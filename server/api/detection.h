// Runs committed events through the detection pipeline off the request path and stores the
// findings.
//
// Invariants: Submit never blocks and never fails ingest — when the bounded queue is full the
// events skip detection and are counted as dropped. One worker thread owns the pipeline (all
// detection state); configuration and list changes reach it through Reload(), which applies from
// the next event processed. Findings are written in one transaction per batch. The optional `llm`
// stage (llm.h) reviews the values the pipeline picks without ever holding the worker up: its
// findings arrive later and are stored with the next batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "boing/detect/classifier.h"
#include "boing/detect/pipeline.h"
#include "boing/server_config.h"
#include "boing/store.h"
#include "llm.h"

namespace boing {

// The detectors of the pipeline with their first-start defaults (thresholds from the
// configuration); the database owns them afterwards.
std::vector<DetectorConfig> DefaultDetectors(const ServerConfig& cfg, int64_t now);
std::vector<detect::DetectorSettings> ToSettings(const std::vector<DetectorConfig>& configs);
std::vector<detect::ListRule> ToListRules(const std::vector<ListEntry>& white,
                                          const std::vector<ListEntry>& black);
// A finding as stored: text fields bounded to the column sizes, on UTF-8 boundaries.
FindingRecord ToRecord(const detect::Finding& f, double now);
nlohmann::json FindingJson(const detect::Finding& f);
nlohmann::json FindingRecordJson(const FindingRecord& f);

// Where the payload classifier's model is read from: PAYLOAD_MODEL_FILE when set; else
// DATA_DIR/payload_classifier.model when it exists (written by `boing-server train`); else
// payload_classifier.model next to the executable (trained at build time).
std::string PayloadModelPath(const ServerConfig& cfg);
// Loads that model; logs and returns null when it cannot (payload_classifier then does not run).
std::shared_ptr<const detect::PayloadClassifier> LoadPayloadModel(const ServerConfig& cfg);

// The .mmdb files GEOIP_DB names (comma-separated), or by default the DB-IP City Lite files
// installed by scripts/setup.sh (BOING_GEOIP_DIR); none for GEOIP_DB=off.
std::vector<std::string> GeoIpPaths(const ServerConfig& cfg);
// Opens them; null, with why in *unavailable, when it cannot or GEOIP_DB=off (the geographic
// detectors then do not run). LoadGeoIp also logs the outcome.
std::shared_ptr<const detect::GeoIp> OpenGeoIp(const ServerConfig& cfg, std::string* unavailable);
std::shared_ptr<const detect::GeoIp> LoadGeoIp(const ServerConfig& cfg, std::string* unavailable);
// Ids of the detectors that need the geolocation database.
const std::vector<std::string>& GeoDetectors();

class DetectionWorker {
 public:
  // Called on the worker thread with each batch of findings once stored (ids set).
  using OnFindings = std::function<void(const std::vector<FindingRecord>&)>;
  // Called on the worker thread with each batch of events after detection ran on it (the live
  // stream and per-second metrics are built here, off the ingest writer thread).
  using OnEvents = std::function<void(const std::vector<Event>&)>;
  DetectionWorker(Store& store, size_t queue_max, size_t batch_max,
                  OnFindings on_findings = nullptr, OnEvents on_events = nullptr);
  ~DetectionWorker();
  // Reads detector configs and both lists from the store and hands them to the pipeline.
  Status Reload();
  void SetPayloadClassifier(std::shared_ptr<const detect::PayloadClassifier> model) {
    pipeline_.SetPayloadClassifier(std::move(model));
  }
  void SetGeoIp(std::shared_ptr<const detect::GeoIp> geo) { pipeline_.SetGeoIp(std::move(geo)); }
  // Where the Isolation Forest / One-Class SVM models are saved and reloaded (DATA_DIR/models).
  void SetModelDir(std::string dir) { pipeline_.SetModelDir(std::move(dir)); }
  // Queues the events stored by a commit (outcome kInserted); may move from `events`.
  void Submit(std::vector<Event>& events, const std::vector<InsertOutcome>& outcomes);
  // Queues events from the bus (BUS_URL) without the queue bound (the caller bounds what it has in
  // flight) and calls `done` on the worker thread once all of them went through detection and
  // their findings were stored (the bus acknowledges them then). false when stopping.
  bool SubmitAcked(std::vector<Event> events, std::function<void()> done);
  void Stop();  // processes what is queued, then joins

  size_t QueueDepth() const { return depth_.load(); }
  const LlmStats& llm_stats() const { return llm_.stats(); }
  // Why the llm detector cannot review now (its endpoint keeps failing), or empty.
  std::string LlmUnavailable() const { return llm_.Unavailable(); }
  std::atomic<uint64_t> processed{0}, dropped{0}, findings{0}, store_failures{0};
  std::atomic<uint64_t> actors{0}, templates{0}, evictions{0}, model_save_failures{0};
  std::atomic<uint64_t> geo_identities{0}, geo_lookups{0}, geo_unknown{0};
  std::atomic<uint64_t> scan_memo_hits{0};  // content values whose earlier verdict was reused

 private:
  void Loop();
  Store& store_;
  size_t queue_max_, batch_max_;
  OnFindings on_findings_;
  OnEvents on_events_;
  detect::Pipeline pipeline_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> queue_;
  uint64_t enqueued_ = 0, dequeued_ = 0;  // events ever queued / taken, under mu_
  std::deque<std::pair<uint64_t, std::function<void()>>> acks_;  // (enqueued_ at submit, done)
  std::vector<detect::Finding> late_;  // from the llm stage, stored with the next batch; under mu_
  std::atomic<size_t> depth_{0};
  bool stopping_ = false;
  LlmReviewer llm_;  // before thread_: the worker uses it
  std::thread thread_;
};

}  // namespace boing
