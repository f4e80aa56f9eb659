// boing-agent's settings: the YAML configuration file (`--config`, every field documented in
// agent/agent.example.yaml) and the command line, whose flags override the file's values (a list
// flag such as --port replaces the file's list of the same kind).
//
// Errors are returned, never thrown, and name where the problem is: for the file
// "FILE:LINE: FIELD: message" (FIELD is the dotted path, e.g. uplink.batch_size), for flags the
// flag.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boing/agent/kubernetes.h"
#include "boing/agent/sensor.h"
#include "boing/agent/spool.h"

namespace boing::agent {

struct AgentOptions {
  bool check = false;
  bool version = false;  // --version: print "boing-agent VERSION" and exit
  bool to_stdout = false;
  SensorOptions sensor;
  std::vector<std::string> cgroup_dirs;  // as given (resolved to ids in sensor.cgroup_ids)
  std::vector<std::string> trusted_proxies;
  std::vector<std::string> header_allowlist;  // empty: the tracker's default list
  size_t payload_excerpt = 1024;
  bool tls = true;
  int stats_interval_s = 0;  // >0: counters on stderr every N seconds
  int duration_s = 0;        // >0: exit after N seconds

  // Uplink.
  std::string config_file;
  std::string server;  // base URL of boing-server
  std::string enroll_token;
  std::string ca_file;
  std::string state_dir = "/var/lib/boing-agent";
  size_t batch_size = 100;
  size_t batch_bytes = 1 << 20;
  int batch_interval_ms = 1000;
  size_t max_in_flight = 4;
  int heartbeat_interval_s = 30;
  int http_timeout_ms = 10000;
  int backoff_initial_ms = 500;
  int backoff_max_ms = 30000;
  SpoolOptions spool;          // dir "" means <state_dir>/spool
  std::string metrics_listen;  // "" disables the endpoint
  // host_name in events (default: gethostname; in a Kubernetes pod that is the pod's name, so the
  // DaemonSet passes the node's).
  std::string host_name;
  // Container runtime state directories read for pod names and namespaces (kubernetes.h).
  std::vector<std::string> runtime_dirs = PodResolverOptions{}.runtime_dirs;

  // Test-only input (not in --help): events as NDJSON instead of the kernel, through the same
  // identity/allowlist/spool/uplink path. With replay_follow the file is tailed until stopped.
  std::string replay_file;
  bool replay_follow = false;
};

// Parses argv (loading --config first when given). On error returns std::nullopt and sets *error
// (the usage text for --help).
std::optional<AgentOptions> ParseAgentOptions(int argc, char** argv, std::string* error);
std::string AgentUsage();

// Applies a YAML configuration file on top of `o`. False with *error "FILE:LINE: FIELD: ...".
bool LoadAgentConfig(const std::string& path, AgentOptions& o, std::string* error);

// Resolves a cgroup v2 directory (absolute, or relative to the v2 mount) to its id; *level is its
// depth below the v2 root (root 0), the level the kernel's ancestor lookup uses.
std::optional<uint64_t> CgroupIdOf(const std::string& path, std::string* resolved,
                                   int* level = nullptr);
std::string CgroupV2Mount();

// "123", "64KiB", "256MiB", "1GiB" (also K/M/G and KB/MB/GB as powers of 1024).
bool ParseByteSize(const std::string& text, uint64_t& out);

}  // namespace boing::agent
