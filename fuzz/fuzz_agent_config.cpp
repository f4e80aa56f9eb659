// boing-agent's YAML configuration (agent/ options.h, on yaml-cpp) and its byte-size syntax.
// Property: a rejected file's error names the file (FILE:LINE: FIELD: message).
#include <cstdint>
#include <string>
#include <string_view>

#include "boing/agent/options.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string path = boing::fuzz::WriteScratch("agent.yaml", text);
  boing::agent::AgentOptions o;
  std::string error;
  if (!boing::agent::LoadAgentConfig(path, o, &error)) {
    BOING_FUZZ_CHECK(error.rfind(path, 0) == 0);
  }
  uint64_t n = 0;
  boing::agent::ParseByteSize(std::string(text.substr(0, 64)), n);
  return 0;
}
