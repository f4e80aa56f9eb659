// The ingest codec (common/ event.h) as /api/ingest, /api/ingest/batch (JSON array and NDJSON)
// and /ws/ingest messages use it: parse, scrub secrets, re-serialize, answer errors as JSON.
// Properties: whatever is accepted re-serializes to a document the parser accepts again with the
// same content, and the batch parser never returns more items than allowed.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boing/event.h"
#include "boing/http.h"
#include "fuzz_util.h"

namespace {

void RoundTrip(const boing::Event& e, const boing::EventLimits& limits) {
  std::string json = boing::EventToJson(e);
  boing::EventLimits relaxed = limits;
  relaxed.max_event_bytes = limits.max_event_bytes * 8;  // escaping may lengthen the text
  boing::Event back;
  auto err = boing::ParseEvent(json, relaxed, back);
  if (err)
    std::fprintf(stderr, "%s: %s\n%s\n", err->field.c_str(), err->message.c_str(), json.c_str());
  BOING_FUZZ_CHECK(!err);
  BOING_FUZZ_CHECK(boing::EventToJson(back) == json);
}

void Accepted(boing::Event& e, const boing::EventLimits& limits) {
  RoundTrip(e, limits);
  boing::ScrubSecrets(e, "identity-key", {"x-api-key"});
  for (const auto& [name, value] : e.headers) {
    BOING_FUZZ_CHECK(!boing::IsSecretHeader(name, {"x-api-key"}));
  }
  RoundTrip(e, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  boing::EventLimits limits;
  limits.max_event_bytes = 16 * 1024;
  limits.max_field_len = 256;
  limits.max_endpoint_len = 1024;
  limits.max_headers = 16;
  limits.max_payload_len = 1024;

  boing::Event e;
  if (auto err = boing::ParseEvent(text, limits, e)) {
    auto r = boing::http::Response::Error(400, err->message, err->field);
    BOING_FUZZ_CHECK(!r.body.empty());
  } else {
    Accepted(e, limits);
  }

  std::vector<boing::BatchItem> items;
  const size_t max_items = 8;
  if (!boing::ParseEventBatch(text, limits, items, max_items)) {
    BOING_FUZZ_CHECK(items.size() <= max_items);
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].error) Accepted(items[i].event, limits);
    }
  }
  return 0;
}
