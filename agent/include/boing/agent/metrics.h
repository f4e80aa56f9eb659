// The agent's self-metrics and the loopback Prometheus endpoint that serves them.
//
// Counters are atomics written by the capture loop and the uplink thread; the kernel's per-CPU
// counters and the spool gauges are snapshots the capture loop refreshes. MetricsServer answers
// GET /metrics (text format 0.0.4) on a loopback address only: the numbers describe the host's
// traffic, so they are not offered to the network.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace boing::agent {

struct AgentMetrics {
  std::atomic<uint64_t> captured{0};       // events built (kernel capture or replay)
  std::atomic<uint64_t> spooled{0};        // events appended to the spool
  std::atomic<uint64_t> spool_errors{0};   // appends that failed (event lost, counted)
  std::atomic<uint64_t> sent{0};           // events the server accepted
  std::atomic<uint64_t> duplicates{0};     // events the server already had (resends)
  std::atomic<uint64_t> rejected{0};       // events the server refused (not retried)
  std::atomic<uint64_t> batches{0};        // batches acknowledged
  std::atomic<uint64_t> uplink_errors{0};  // failed batch sends (retried)
  std::atomic<uint64_t> heartbeats{0};
  std::atomic<uint64_t> heartbeat_errors{0};
  std::atomic<uint64_t> replay_bad_lines{0};

  // Snapshots, refreshed by the capture loop.
  void SetKernelCounters(std::vector<std::pair<std::string, uint64_t>> counters);
  void SetTrackerCounters(std::vector<std::pair<std::string, uint64_t>> counters);
  void SetSpool(uint64_t bytes, uint64_t pending, uint64_t dropped, uint64_t disk_full,
                uint64_t cap_bytes);

  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, uint64_t>> kernel_;
  std::vector<std::pair<std::string, uint64_t>> tracker_;
  uint64_t spool_bytes_ = 0, spool_pending_ = 0, spool_dropped_ = 0, spool_disk_full_ = 0,
           spool_cap_bytes_ = 0;
};

// True when `listen` is an address MetricsServer::Start accepts (loopback HOST:PORT); does not
// bind it.
bool ValidMetricsListen(const std::string& listen, std::string* error);

class MetricsServer {
 public:
  // `listen` is "127.0.0.1:PORT" or "[::1]:PORT" (port 0 picks one). Fails for a non-loopback
  // address.
  static std::unique_ptr<MetricsServer> Start(const std::string& listen,
                                              const AgentMetrics* metrics, std::string* error);
  ~MetricsServer();
  uint16_t port() const { return port_; }

 private:
  MetricsServer() = default;
  void Run();

  const AgentMetrics* metrics_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace boing::agent
