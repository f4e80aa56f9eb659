// boing-sim's traffic model: benign API traffic and abusive scenarios as event streams
// (spec/EVENTS.md), merged in timestamp order. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "boing/event.h"

namespace boing::sim {

// What each abusive scenario is, and the detector expected to flag it.
struct ScenarioInfo {
  std::string name;
  std::string description;
  std::string expected_detector;  // "" when no implemented detector covers it yet
};
const std::vector<ScenarioInfo>& Scenarios();

struct SimOptions {
  std::vector<std::string> scenarios;  // abusive scenarios mixed into the benign background
  uint64_t benign_events = 10000;      // background events (0: attacks only)
  double rate = 20;                    // background events per simulated second
  double start = 0;                    // Unix time of the first event
  uint64_t seed = 1;
  size_t users = 2000;  // distinct benign callers
};

// Produces events in timestamp order, one at a time (the background is generated lazily, so a
// stream of millions of events needs little memory).
class Simulator {
 public:
  // Throws std::invalid_argument naming an unknown scenario.
  explicit Simulator(const SimOptions& options);
  ~Simulator();
  // The next event; *label (when given) is its scenario's name, or "benign".
  std::optional<Event> Next(std::string* label = nullptr);
  // Simulated seconds the background spans.
  double duration() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace boing::sim
