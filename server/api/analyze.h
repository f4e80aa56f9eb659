// `boing-server analyze`: the detection pipeline offline. Reads events as NDJSON (the ingest
// format), nginx/Apache access-log lines in the combined format, or, with values mode, one raw
// parameter value per line, and writes one JSON line per input line: {"findings":[...]} (empty when
// clean), plus "error"/"field" for a line that is not a valid event. Detector settings are the
// first-start defaults from the configuration.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

#include "boing/event.h"
#include "boing/server_config.h"

namespace boing {

struct AnalyzeOptions {
  bool values = false;    // one raw value per line instead of events
  bool combined = false;  // access-log lines (combined format) instead of NDJSON events
};

// One combined-format line: host ident user [time] "request" status bytes "referer" "agent".
// Returns an error message, or "" when `e` was filled.
std::string ParseCombinedLine(std::string_view line, Event& e);

// Returns the process exit status (0; 1 when reading stdin failed).
int RunAnalyze(const ServerConfig& cfg, const AnalyzeOptions& o, std::istream& in,
               std::ostream& out);

// `boing-server train`: trains the payload classifier on a labelled CSV and writes the model.
struct TrainCommand {
  std::string data;  // CSV file (header row with the value and label columns)
  std::string out;   // model file; empty = DATA_DIR/payload_classifier.model
  std::string value_column = "payload", label_column = "label";
  std::string rows = "all";  // all | even | odd (data rows by position)
};
// Returns the exit status: 0, or 1 with a message on `err` naming the file and line.
int RunTrain(const ServerConfig& cfg, const TrainCommand& t, std::ostream& out, std::ostream& err);

}  // namespace boing
