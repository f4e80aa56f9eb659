// boing-agent's two modes: `--check` (what the kernel offers) and the capture loop: sensor (or
// the test-only replay file) -> tracker -> JSON lines on stdout (--stdout), or spool -> uplink.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boing/agent/options.h"

namespace boing::agent {

// Prints the kernel's capabilities and the TLS libraries found; returns the process exit code.
int RunCheck(const AgentOptions& options);
// Runs until SIGINT/SIGTERM (or --duration); returns the process exit code.
int RunAgent(const AgentOptions& options);

}  // namespace boing::agent
