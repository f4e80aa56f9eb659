// Test helper shared by the detect unit tests: a detector's settings in one call.
#pragma once

#include <string>
#include <utility>

#include "boing/detect/pipeline.h"

namespace boing::detect::test_util {

inline DetectorSettings Cfg(std::string id, nlohmann::json config, bool enabled = true,
                            Severity sev = Severity::kMedium) {
  DetectorSettings d;
  d.id = std::move(id);
  d.enabled = enabled;
  d.severity = sev;
  d.config = std::move(config);
  return d;
}

}  // namespace boing::detect::test_util
