// boing-agent's command line and its two modes: `--check` (what the kernel offers) and the
// capture loop (sensor -> tracker -> JSON lines on stdout with --stdout).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boing/agent/sensor.h"
#include "boing/agent/tracker.h"

namespace boing::agent {

struct AgentOptions {
  bool check = false;
  bool to_stdout = false;
  SensorOptions sensor;
  std::vector<std::string> cgroup_dirs;  // as given (resolved to ids in sensor.cgroup_ids)
  std::vector<std::string> trusted_proxies;
  size_t payload_excerpt = 1024;
  bool tls = true;
  int stats_interval_s = 0;  // >0: counters on stderr every N seconds
  int duration_s = 0;        // >0: exit after N seconds
};

// Parses argv. On error returns std::nullopt and sets *error (the usage text for --help).
std::optional<AgentOptions> ParseAgentOptions(int argc, char** argv, std::string* error);
std::string AgentUsage();

// Resolves a cgroup v2 directory (absolute, or relative to the v2 mount) to its id.
std::optional<uint64_t> CgroupIdOf(const std::string& path, std::string* resolved);

// Prints the kernel's capabilities and the TLS libraries found; returns the process exit code.
int RunCheck(const AgentOptions& options);
// Runs until SIGINT/SIGTERM (or --duration); returns the process exit code.
int RunAgent(const AgentOptions& options);

}  // namespace boing::agent
