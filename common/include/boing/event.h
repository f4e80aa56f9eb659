// The event contract (shared/spec/EVENTS.md): one HTTP request/response pair, as it arrives from
// the seed's instrumentation snippets, from boing-agent, and from `boing-server analyze`.
//
// Parsing validates every known field's type and bound and names the offending field on error;
// unknown fields are ignored. Parsing never throws: it returns a ParseError instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boing {

// Bounds applied to every event on every ingest path. All configurable (EVENT_* settings).
struct EventLimits {
  size_t max_event_bytes = 64 * 1024;  // serialized size of one event
  size_t max_depth = 8;                // JSON nesting depth
  size_t max_field_len = 1024;         // any short string field (method, ip, comm, ...)
  size_t max_endpoint_len = 8192;      // endpoint and query
  size_t max_headers = 100;            // number of header entries
  size_t max_header_name_len = 256;
  size_t max_header_value_len = 8192;
  size_t max_payload_len = 8192;  // payload excerpt kept (longer payloads are rejected)
};

struct Event {
  std::string api_key;   // ingest key (applications only); never stored
  double timestamp = 0;  // Unix seconds
  std::string method;
  std::string endpoint;
  std::string client_ip;
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  int status_code = 0;
  double latency_ms = 0;
  std::optional<int64_t> body_size;
  std::optional<int64_t> response_size;
  std::string query;
  std::string payload;
  std::string user_agent;
  std::string host;
  std::string identity;
  // Sensor facts.
  std::string server_ip;
  std::optional<int> server_port;
  std::optional<bool> tls;
  std::string protocol;
  std::string agent_id;
  std::optional<int64_t> seq;
  std::string host_name;
  std::optional<int64_t> pid;
  std::string comm;
  std::optional<uint64_t> cgroup_id;
  std::string container_id;
  std::string pod;
  std::string k8s_namespace;  // JSON field "namespace"

  // Assigned by the server, not part of the wire format from senders.
  int64_t api_id = 0;
  int64_t id = 0;  // storage row id (0 until stored)
};

struct ParseError {
  std::string field;    // offending field name ("" for the document as a whole)
  std::string message;  // human readable, names the limit when one was exceeded
};

// Parses one JSON object (text) into `out`. Returns std::nullopt on success.
std::optional<ParseError> ParseEvent(std::string_view json, const EventLimits& limits, Event& out);

// Parses a batch: a JSON array of event objects, or NDJSON (one object per line; blank lines
// skipped). Calls `on_item(index, event_or_error)` for each item in order. Returns an error only
// when the document as a whole cannot be split into items (e.g. an array that is not closed).
struct BatchItem {
  size_t index = 0;
  std::optional<ParseError> error;  // set when this item is rejected
  Event event;
};
std::optional<ParseError> ParseEventBatch(std::string_view body, const EventLimits& limits,
                                          std::vector<BatchItem>& out, size_t max_items);

// RFC 9110 `tchar`: the characters of a method token (the agent's parser and ingest agree on it).
bool IsHttpTokenChar(char c);

// Serializes to the wire format (the same field names). `api_key` is never written. Written by
// hand (the agent and the live feed call it per event); text that is not valid UTF-8 goes through
// EventToJsonNlohmann, which replaces it with U+FFFD. Both give the same bytes for valid text.
std::string EventToJson(const Event& e);
// The same, appended to `out` (a reused buffer).
void AppendEventJson(const Event& e, std::string& out);
// The reference encoder (nlohmann::ordered_json), kept for invalid UTF-8 and for tests.
std::string EventToJsonNlohmann(const Event& e);

// Secret headers never stored in clear (case-insensitive match). Configurable extras are added by
// the caller through `extra_secret_headers`.
bool IsSecretHeader(std::string_view name, const std::vector<std::string>& extra_secret_headers);

// Computes the caller identity (EVENTS.md): HMAC-SHA256(identity_key, credential) truncated to 16
// bytes, hex. For a JWT bearer token the credential is its `sub` claim when present.
std::string IdentityOf(std::string_view identity_key, std::string_view credential);

// Removes secret headers from `e.headers` and, when `e.identity` is empty, sets it from the first
// credential found (Authorization, then Proxy-Authorization, Cookie, configured extras).
void ScrubSecrets(Event& e, std::string_view identity_key,
                  const std::vector<std::string>& extra_secret_headers);
// The identity ScrubSecrets would set from these headers ("" when none carries a credential or
// the key is empty), without copying or changing them.
std::string IdentityFromHeaders(const std::vector<std::pair<std::string, std::string>>& headers,
                                std::string_view identity_key,
                                const std::vector<std::string>& extra_secret_headers);

}  // namespace boing
