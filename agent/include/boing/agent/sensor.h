// The loaded kernel side: owns the libbpf skeleton of bpf/boing.bpf.c, its scope maps, the ring
// buffer and the OpenSSL uprobe links.
//
// Start() fails fast with a message naming what the kernel refused (load, a tracepoint, the ring
// buffer); after that nothing here throws. Scope (PIDs, cgroups, ports) is enforced in the
// kernel: records for processes out of scope are never produced.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace boing::agent {

// Cgroup hierarchy levels the kernel scope check looks at (BOING_MAX_CGROUP_LEVELS).
inline constexpr int kMaxCgroupLevels = 32;

struct SensorOptions {
  uint32_t max_payload = 4096;        // bytes copied per read/write (at most 8192)
  uint32_t ringbuf_bytes = 8u << 20;  // power of two, multiple of the page size
  std::vector<uint32_t> pids;         // include (or exclude) these processes
  bool exclude_pids = false;
  std::vector<uint64_t> cgroup_ids;  // cgroup v2 ids (inode numbers of the directories)
  uint32_t cgroup_levels = 0;        // bit L: one of them is at hierarchy level L (root 0)
  bool exclude_cgroups = false;
  std::vector<uint16_t> ports;  // local or remote TCP port
  bool exclude_ports = false;
  bool follow_children = true;  // children of included PIDs are included
  bool rate_counters = true;
  // Wake the agent once ringbuf_bytes / 8 are waiting (it polls every kPollBatchMs meanwhile)
  // instead of for every record: the wakeup is charged to the traced application.
  bool batch_wakeups = true;
};

// Poll interval of the agent's capture loop when wakeups are batched (the latest a record waits).
inline constexpr int kPollBatchMs = 10;

struct RateSample {
  std::string client_ip;
  uint64_t endpoint_hash = 0;  // 0 for the per-IP total
  uint64_t requests = 0;
  uint64_t last_ns = 0;
};

// Names of the per-CPU counters, in enum boing_counter order.
const std::vector<std::string>& CounterNames();

class Sensor {
 public:
  using RecordHandler = std::function<void(std::span<const uint8_t>)>;

  static std::unique_ptr<Sensor> Start(const SensorOptions& options, RecordHandler handler,
                                       std::string* error);
  ~Sensor();
  Sensor(const Sensor&) = delete;
  Sensor& operator=(const Sensor&) = delete;

  // Delivers ready records to the handler; returns how many, or a negative errno.
  int Poll(int timeout_ms);
  // Summed over CPUs, indexed by enum boing_counter.
  std::vector<uint64_t> Counters() const;
  // Attaches the OpenSSL probes to one binary (a libssl or an executable with OpenSSL linked in).
  // Returns how many of the SSL_read/SSL_write(_ex) functions were attached; 0 with *error set
  // when none could be.
  int AttachOpenSsl(const std::string& path, std::string* error);
  std::vector<RateSample> ReadRates(size_t max_entries) const;
  void AddScopePid(uint32_t pid);

 private:
  Sensor() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Mounts tracefs and bpffs when they are missing; returns a message per failure.
std::vector<std::string> EnsureKernelFilesystems();

}  // namespace boing::agent
