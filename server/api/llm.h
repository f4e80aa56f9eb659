// The optional `llm` detector: a local model behind a llama.cpp server's native `POST /completion`
// reviews the payload values the pipeline picked (detect::PayloadReview: classifier probability in
// a grey band, or a signature the classifier did not confirm) and each attack verdict becomes a
// finding of detector "llm".
//
// Invariants: Review() never waits on the network. Reviews wait in a bounded queue (beyond it they
// are skipped), at most `max_concurrency` requests are in flight (one thread drives them with
// libcurl's multi interface), each limited to `timeout_ms` including the connection. Verdicts are
// cached by SHA-256 of the value in a bounded LRU, and a value already queued or in flight is not
// sent twice (the second review waits for the first answer). After `failure_threshold`
// consecutive failed requests no request is made for `retry_after_ms` (then one probe). Whenever a
// review ends without a verdict the classifier's verdict stands: the stage only adds findings, it
// never withdraws one of the earlier stages (a payload cannot talk its way out of a signature
// match by addressing the model), and it is counted as a fallback. Findings carry the model, the
// verdict and the latency; neither the prompt nor the whole value is stored.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "boing/detect/bounded_map.h"
#include "boing/detect/pipeline.h"

namespace boing {

struct LlmSettings {
  bool enabled = false;
  std::string endpoint = "http://localhost:8080/completion";
  std::string model = "tinyllama";
  int timeout_ms = 5000;
  int max_concurrency = 2;
  size_t queue_max = 1000;
  size_t cache_size = 10000;
  int n_predict = 8;           // tokens the model may answer with
  int failure_threshold = 3;   // consecutive failures that pause requests
  int retry_after_ms = 10000;  // how long they pause
};

// The settings from the `llm` detector's row (config keys as in DefaultDetectors; missing keys
// keep the defaults above).
LlmSettings LlmSettingsFrom(bool enabled, const nlohmann::json& config);
// Checks a merged `llm` config for PUT /api/detectors/llm; false with the field and why.
bool ValidateLlmConfig(const nlohmann::json& config, std::string* field, std::string* error);

// The labels the model may answer with (the request's grammar allows exactly these).
const std::vector<std::string>& LlmLabels();
// The request body sent to /completion for one value.
nlohmann::json LlmRequest(const LlmSettings& s, std::string_view value);
// The label of a /completion answer body (its `content`), or false with why.
bool ParseLlmAnswer(std::string_view body, std::string* label, std::string* error);

struct LlmStats {
  std::atomic<uint64_t> reviews{0};     // values offered by the pipeline
  std::atomic<uint64_t> requests{0};    // requests sent
  std::atomic<uint64_t> answered{0};    // requests answered with a verdict
  std::atomic<uint64_t> timeouts{0};    // requests past timeout_ms
  std::atomic<uint64_t> errors{0};      // unreachable, HTTP errors, unparseable answers
  std::atomic<uint64_t> cache_hits{0};  // reviews answered from the cache
  std::atomic<uint64_t> coalesced{0};   // reviews joined to a request already queued or in flight
  std::atomic<uint64_t> attack{0}, benign{0};  // verdicts (per review)
  // Reviews that ended without a verdict (the classifier's verdict stands), by reason.
  std::atomic<uint64_t> fallback_queue_full{0}, fallback_timeout{0}, fallback_error{0},
      fallback_unavailable{0};
  std::atomic<uint64_t> latency_ms_total{0};  // over answered requests
  std::atomic<uint64_t> in_flight{0}, queued{0}, cached{0};
};

// The boing_llm_* series of /metrics (Prometheus text format).
std::string LlmMetricsText(const LlmStats& l);

class LlmReviewer {
 public:
  // Receives the findings of verdicts that arrived after their event left the worker (called on
  // the reviewer's thread).
  using Deliver = std::function<void(std::vector<detect::Finding>)>;
  explicit LlmReviewer(Deliver deliver);
  ~LlmReviewer();
  LlmReviewer(const LlmReviewer&) = delete;
  LlmReviewer& operator=(const LlmReviewer&) = delete;

  // Applies from the next review. A new endpoint or model empties the cache; disabling drops the
  // queue (fallbacks).
  void Configure(const LlmSettings& s);
  // Offers one value. A cached attack verdict appends its finding to `out` at once; otherwise the
  // value is queued (or skipped, see above) and its finding, if any, comes through Deliver.
  void Review(detect::PayloadReview r, std::vector<detect::Finding>& out);
  // Aborts what is in flight (fallbacks) and joins the thread; Review() then only counts.
  void Stop();

  const LlmStats& stats() const { return stats_; }
  // Why requests are paused (the last error), or empty.
  std::string Unavailable() const;

 private:
  struct Verdict {
    std::string label;
    int64_t latency_ms = 0;
  };
  struct Job {
    std::string key;  // SHA-256 of the value
    std::string value;
    std::vector<detect::PayloadReview> waiters;  // the reviews answered by this request
  };
  struct Transfer;

  void Loop();
  // Counts the reviews of jobs that end without a verdict as fallbacks for `reason`.
  static void Fail(std::vector<std::shared_ptr<Job>>& jobs, std::atomic<uint64_t>& reason);
  static detect::Finding ToFinding(detect::PayloadReview& r, const std::string& model,
                                   const Verdict& v, bool cached);

  Deliver deliver_;
  LlmStats stats_;
  mutable std::mutex mu_;
  LlmSettings settings_;
  uint64_t generation_ = 0;  // bumped by Configure: answers of older settings are not cached
  detect::BoundedMap<std::string, Verdict> cache_{1};
  std::deque<std::shared_ptr<Job>> queue_;
  std::unordered_map<std::string, std::shared_ptr<Job>> pending_;  // queued or in flight, by key
  int consecutive_failures_ = 0;
  int64_t paused_until_ms_ = 0;
  std::string last_error_;
  bool stopping_ = false;
  void* multi_ = nullptr;  // CURLM*: driven by the thread, woken by the others
  std::thread thread_;
};

}  // namespace boing
