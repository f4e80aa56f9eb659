#include <cstdio>
#include <string>

#include "boing/agent/agent.h"

int main(int argc, char** argv) {
  std::string error;
  auto options = boing::agent::ParseAgentOptions(argc, argv, &error);
  if (!options) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return error == boing::agent::AgentUsage() ? 0 : 2;
  }
  if (options->version) {
    std::printf("boing-agent %s\n", BOING_VERSION);
    return 0;
  }
  return options->check ? boing::agent::RunCheck(*options) : boing::agent::RunAgent(*options);
}
