// Hand-written JSON text for hot paths (the event codec, events.headers_json): a string is
// escaped exactly as nlohmann::json::dump(-1, ' ', false) escapes it, so callers can fall back to
// nlohmann (error_handler_t::replace) for the rare text that is not valid UTF-8 and produce the
// same bytes either way.
#pragma once

#include <string>
#include <string_view>

namespace boing {

// Appends `s` as a quoted JSON string. Returns false (with `out` cut back to its size before the
// call) when `s` is not valid UTF-8 as Utf8SequenceLength defines it.
bool AppendJsonString(std::string_view s, std::string& out);

}  // namespace boing
