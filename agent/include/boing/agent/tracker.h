// Turns the sensor's ring-buffer records (bpf/boing_abi.h) into events (spec/EVENTS.md).
//
// Keeps one HttpConnection per (tgid, fd, generation); a record for an unknown connection starts
// one (its OPEN record may have been dropped). Completed transactions become boing::Event values
// with the sensor facts filled in and secrets already scrubbed: raw credentials never leave the
// Tracker. Malformed records are counted, never trusted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "boing/agent/http_connection.h"
#include "boing/agent/kubernetes.h"
#include "boing/event.h"

namespace boing::agent {

// An IPv4 or IPv6 network, e.g. "10.0.0.0/8", "::1/128", "127.0.0.1".
struct Cidr {
  uint8_t addr[16] = {};  // IPv4 as ::ffff:a.b.c.d
  int prefix = 0;         // over the 128-bit form
  static bool Parse(std::string_view text, Cidr& out);
  bool Contains(std::string_view ip_text) const;
};

struct TrackerOptions {
  StreamLimits limits;
  // Request headers copied into events (lower-case names). Secret ones among them are replaced by
  // the identity hash by boing::ScrubSecrets.
  std::vector<std::string> header_allowlist = {
      "host",         "user-agent",    "content-type",    "content-length",      "accept",
      "referer",      "origin",        "x-forwarded-for", "x-real-ip",           "forwarded",
      "x-request-id", "authorization", "cookie",          "proxy-authorization", "x-api-key"};
  std::vector<std::string> extra_secret_headers = {"x-api-key"};
  std::string identity_key;
  std::vector<Cidr> trusted_proxies;
  std::string agent_id;
  std::string host_name;
  size_t max_connections = 65536;
  // Where processes run (container_id, pod, namespace): read from PROC_ROOT/TGID/cgroup and the
  // container runtime's state (kubernetes.h).
  std::string proc_root = "/proc";
  PodResolverOptions pods;
};

struct TrackerStats {
  uint64_t records = 0;
  uint64_t bad_records = 0;
  uint64_t connections_opened = 0;
  uint64_t connections_closed = 0;
  uint64_t connections_evicted = 0;
  uint64_t events = 0;
  uint64_t parse_errors = 0;
  uint64_t orphan_responses = 0;
  uint64_t unanswered_requests = 0;
  uint64_t lost_requests = 0;  // dropped around records the sensor lost (ring buffer full)
};

class Tracker {
 public:
  using EventSink = std::function<void(Event&&)>;
  // Called for BOING_EV_PROC_EXEC / BOING_EV_PROC_MMAP records.
  using ProcessSink = std::function<void(uint32_t type, uint32_t tgid)>;

  Tracker(TrackerOptions options, EventSink sink);
  ~Tracker();

  void set_process_sink(ProcessSink sink) { process_sink_ = std::move(sink); }
  // One ring-buffer record; false when it is malformed.
  bool OnRecord(std::span<const uint8_t> record);
  // Drops connections idle for longer than idle_ns (the kernel map is LRU: closes can be lost).
  void Sweep(uint64_t now_mono_ns, uint64_t idle_ns);
  TrackerStats stats() const;

 private:
  struct Conn;
  struct ConnKey {
    uint32_t tgid;
    int32_t fd;
    uint64_t generation;
    bool operator==(const ConnKey&) const = default;
  };
  struct ConnKeyHash {
    size_t operator()(const ConnKey& k) const;
  };

  Conn* Find(const ConnKey& key, bool create, const void* header);
  void Emit(Conn& c, std::vector<Transaction>& txs);
  void Retire(Conn& c);
  // container_id, pod (name, or UID when the runtime's state does not name it), namespace.
  struct Place {
    std::string container_id;
    std::string pod;
    std::string k8s_namespace;
  };
  const Place& PlaceOf(uint32_t tgid);

  TrackerOptions options_;
  EventSink sink_;
  ProcessSink process_sink_;
  std::unordered_map<ConnKey, std::unique_ptr<Conn>, ConnKeyHash> conns_;
  std::unordered_map<uint32_t, Place> places_;
  PodResolver pods_;
  int64_t realtime_offset_ns_ = 0;
  int64_t seq_ = 0;
  TrackerStats stats_;
};

// Request headers into an event: the identity hash from the full `request_headers` (kept when
// `e.identity` is already set), then only the allowlisted headers, secret ones removed.
void ApplyHeaderPolicy(Event& e, const HeaderList& request_headers, const TrackerOptions& options);

// Text form of an address from the ABI (family AF_INET/AF_INET6); IPv4-mapped IPv6 prints as IPv4.
std::string AddressToString(uint16_t family, const uint8_t addr[16]);

// The real client address: `peer` unless it is a trusted proxy, in which case the right-most
// untrusted address of X-Forwarded-For (or Forwarded: for=).
std::string RealClientIp(std::string_view peer, const HeaderList& headers,
                         const std::vector<Cidr>& trusted);

}  // namespace boing::agent
