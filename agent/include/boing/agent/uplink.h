// The agent's link to boing-server (docs/api.md): enrolment, batched ingest and heartbeats.
//
// Enrolment happens once: the credentials (agent_id, agent_token, identity_key) are kept in
// `<state_dir>/agent.json` (mode 0600) and reused on every start. Events reach the server only
// through the Spool: the Uplink thread reads the oldest unacknowledged records, sends them as one
// gzip'ed JSON array to POST /api/ingest/batch with the agent token, and acknowledges them in the
// spool once the server answered 200 (each item accepted, duplicate or rejected: a rejected item
// would be rejected again, so it is counted and not retried). Network errors, 5xx, 429 and 401
// leave the records in the spool and back off exponentially with jitter. A 400/413 for a batch of
// several items halves the batch (the server's limits may be lower than ours); a single item the
// server cannot read is counted as rejected.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "boing/agent/metrics.h"
#include "boing/agent/sensor.h"
#include "boing/agent/spool.h"

namespace boing::agent {

struct HttpResult {
  long status = 0;  // 0: no HTTP answer (network error, timeout)
  std::string body;
  std::string error;  // libcurl's message when status == 0
};

struct HttpClientOptions {
  std::string ca_file;  // extra CA bundle for an https server with a private CA
  long timeout_ms = 10000;
  long connect_timeout_ms = 3000;
};

// A blocking libcurl easy handle (connections are reused between calls). One per thread.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult Post(const std::string& url, std::string_view body, const std::string& bearer,
                  bool gzipped);

 private:
  HttpClientOptions options_;
  void* curl_ = nullptr;
};

struct Credentials {
  std::string server;
  std::string agent_id;
  std::string agent_token;
  std::string identity_key;  // raw bytes (the server sends hex)
};

// Reads `<state_dir>/agent.json`. False when it does not exist; *error set when it is unreadable.
bool LoadCredentials(const std::string& state_dir, Credentials& out, std::string* error);
// Writes it atomically with mode 0600 (and the directory 0700).
bool SaveCredentials(const std::string& state_dir, const Credentials& c, std::string* error);
// POST /api/agents/enroll. *fatal is set when retrying cannot help (token refused).
bool Enroll(HttpClient& http, const std::string& server, const std::string& enroll_token,
            const std::string& hostname, Credentials& out, std::string* error, bool* fatal);

// Exponential backoff with "equal jitter": attempt n waits in [d/2, d] with
// d = min(max, initial * 2^n).
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed = 0);
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_, max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

// When to send: a full batch by count or bytes, or the oldest waiting event is `interval` old.
struct BatchPolicy {
  size_t max_events = 100;
  size_t max_bytes = 1 << 20;
  std::chrono::milliseconds interval{1000};

  bool ShouldSend(size_t pending_events, size_t pending_bytes,
                  std::chrono::milliseconds oldest_age) const {
    if (pending_events == 0) return false;
    return pending_events >= max_events || pending_bytes >= max_bytes || oldest_age >= interval;
  }
};

// Concatenates records (JSON objects) into one JSON array.
std::string BatchBody(std::span<const SpoolRecord> records);
// gzip (RFC 1952) with zlib; empty on failure.
std::string Gzip(std::string_view data, int level = 6);
// Batches are compressed at zlib level 1: on 1,000 captured events (480 KB of JSON) it takes
// 1.6 us per event against 3.6 us at level 6 for a body 14% larger (54 KB vs 48 KB), and the
// agent's CPU is taken from the host it watches.
inline constexpr int kBatchGzipLevel = 1;

// Outcome of one POST /api/ingest/batch answer, for a batch of `n` items.
struct BatchOutcome {
  enum class Kind { kAcked, kRetry, kSplit, kPoison } kind = Kind::kRetry;
  size_t accepted = 0, duplicates = 0, rejected = 0;
  std::string detail;  // first rejection's field/error, or what went wrong
};
BatchOutcome ClassifyBatchAnswer(const HttpResult& r, size_t n);

// Per-IP request rates from successive cumulative counters (the kernel's per-IP map, or the
// replay source's counts): rps over the time since the previous sample.
class RateWindow {
 public:
  struct Rate {
    std::string ip;
    double rps = 0;
    uint64_t requests = 0;  // cumulative
  };
  // `totals` are cumulative per-IP counters (endpoint_hash 0). Returns the IPs whose count grew,
  // highest rate first, at most max_ips.
  std::vector<Rate> Update(const std::vector<RateSample>& totals, double now_s,
                           size_t max_ips = 1000);

 private:
  std::vector<std::pair<std::string, uint64_t>> last_;  // sorted by ip
  double last_s_ = -1;
};

// JSON body of POST /api/agents/heartbeat.
std::string HeartbeatBody(const std::string& version,
                          const std::vector<std::pair<std::string, uint64_t>>& counters,
                          const std::vector<RateWindow::Rate>& rates);

struct UplinkOptions {
  std::string server;  // base URL, e.g. http://127.0.0.1:8080
  HttpClientOptions http;
  BatchPolicy batch;
  // Batches sent concurrently (one connection each). Acknowledgements reach the spool in seq
  // order: a batch is acked once every batch before it was.
  size_t max_in_flight = 4;
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
};

class Uplink {
 public:
  Uplink(UplinkOptions options, Credentials credentials, Spool* spool, AgentMetrics* metrics);
  ~Uplink();

  void Start();
  // Sends what the spool holds for up to `drain` (0: not at all), then stops the threads.
  void Stop(std::chrono::milliseconds drain);
  // Called after appending to the spool.
  void Notify();
  // The latest heartbeat body; sent from the uplink thread (a newer one replaces an unsent one).
  void QueueHeartbeat(std::string body);

 private:
  struct Job {
    std::vector<SpoolRecord> records;
    bool done = false;
  };
  void Run();     // dispatcher: heartbeats, reads batches, acks the completed prefix
  void Worker();  // sends batches, retrying each with backoff until it is through
  // Sends `n` records from `records`; splits on 400/413. False on a retryable failure.
  bool SendRecords(HttpClient& http, const SpoolRecord* records, size_t n);
  void SendHeartbeat(HttpClient& http);
  void AckCompleted();

  UplinkOptions options_;
  Credentials credentials_;
  Spool* spool_;
  AgentMetrics* metrics_;
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;       // dispatcher wake-ups
  std::condition_variable work_cv_;  // workers: a job, or abort
  bool stop_ = false;
  bool abort_ = false;  // past the drain deadline: workers give up
  bool notified_ = false;
  std::chrono::steady_clock::time_point drain_until_{};
  std::string heartbeat_;
  // Time the oldest undispatched event was appended (steady clock); min() for a backlog.
  std::chrono::steady_clock::time_point oldest_{};
  bool have_oldest_ = false;
  std::deque<std::shared_ptr<Job>> in_flight_;  // dispatch (= seq) order
  std::deque<std::shared_ptr<Job>> queue_;      // not yet taken by a worker
  uint64_t dispatched_ = 0;                     // highest seq handed out
  int failing_ = 0;                             // workers waiting to retry
  std::atomic<size_t> batch_limit_{0};          // max events per batch (halved on 400/413)
};

}  // namespace boing::agent
