#include "boing/event.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "boing/crypto.h"
#include "boing/json_text.h"
#include "boing/net.h"

namespace boing {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// Timestamps above this are almost certainly milliseconds (year 5138 in seconds).
constexpr double kMaxTimestamp = 1e11;

// ASCII case folding (what std::tolower does in the "C" locale, which no Boing program changes),
// without a libc call per character: header names are compared per captured event.
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLower(x) == AsciiLower(y);
         });
}

// One thread-local parser per thread: parsing allocates only when a document is larger than any
// seen before on that thread.
simdjson::dom::parser& Parser(size_t max_depth) {
  thread_local simdjson::dom::parser parser;
  thread_local size_t depth = 0;
  if (depth != max_depth) {
    // Capacity grows on demand in parse(); only the depth is fixed here. A failed allocation
    // leaves depth unset so parse() reports the error and the next call retries.
    if (parser.allocate(64 * 1024, max_depth) == simdjson::SUCCESS) depth = max_depth;
  }
  return parser;
}

class FieldReader {
 public:
  FieldReader(const EventLimits& limits, std::optional<ParseError>& err)
      : limits_(limits), err_(err) {}

  bool Fail(std::string_view field, std::string message) {
    if (!err_) err_ = ParseError{std::string(field), std::move(message)};
    return false;
  }

  bool String(element v, std::string_view field, size_t max_len, std::string& out) {
    if (v.type() == element_type::NULL_VALUE) return true;
    std::string_view s;
    if (v.get_string().get(s)) return Fail(field, std::string(field) + " must be a string");
    if (s.size() > max_len) {
      return Fail(field, std::string(field) + " exceeds " + std::to_string(max_len) + " bytes");
    }
    out.assign(s);
    return true;
  }

  bool Number(element v, std::string_view field, double& out) {
    switch (v.type()) {
      case element_type::INT64:
        out = static_cast<double>(int64_t(v));
        return true;
      case element_type::UINT64:
        out = static_cast<double>(uint64_t(v));
        return true;
      case element_type::DOUBLE:
        out = double(v);
        return true;
      default:
        return Fail(field, std::string(field) + " must be a number");
    }
  }

  // Integers may arrive as 12.0 from some senders; any fraction is refused.
  bool Integer(element v, std::string_view field, int64_t min, int64_t max, int64_t& out) {
    switch (v.type()) {
      case element_type::INT64:
        out = int64_t(v);
        break;
      case element_type::UINT64: {
        uint64_t u = uint64_t(v);
        if (u > static_cast<uint64_t>(INT64_MAX)) return OutOfRange(field, min, max);
        out = static_cast<int64_t>(u);
        break;
      }
      case element_type::DOUBLE: {
        double d = double(v);
        if (!std::isfinite(d) || d != std::floor(d) || d < -9.2e18 || d > 9.2e18) {
          return Fail(field, std::string(field) + " must be an integer");
        }
        out = static_cast<int64_t>(d);
        break;
      }
      default:
        return Fail(field, std::string(field) + " must be an integer");
    }
    if (out < min || out > max) return OutOfRange(field, min, max);
    return true;
  }

  bool OutOfRange(std::string_view field, int64_t min, int64_t max) {
    return Fail(field, std::string(field) + " must be between " + std::to_string(min) + " and " +
                           std::to_string(max));
  }

  bool OptInteger(element v, std::string_view field, int64_t min, int64_t max,
                  std::optional<int64_t>& out) {
    if (v.type() == element_type::NULL_VALUE) return true;
    int64_t x = 0;
    if (!Integer(v, field, min, max, x)) return false;
    out = x;
    return true;
  }

  bool Headers(element v, Event& e) {
    if (v.type() == element_type::NULL_VALUE) return true;
    object obj;
    if (v.get_object().get(obj)) return Fail("headers", "headers must be an object");
    if (obj.size() > limits_.max_headers) {
      return Fail("headers",
                  "headers has more than " + std::to_string(limits_.max_headers) + " entries");
    }
    // A repeated "headers" key replaces the earlier object, as a repeated key does for every
    // other field (appending let N copies carry N times max_headers entries).
    e.headers.clear();
    e.headers.reserve(obj.size());
    for (auto [key, value] : obj) {
      if (key.empty() || key.size() > limits_.max_header_name_len) {
        return Fail("headers", "header name must be 1 to " +
                                   std::to_string(limits_.max_header_name_len) + " bytes");
      }
      std::string joined;
      std::string_view s;
      if (!value.get_string().get(s)) {
        joined.assign(s);
      } else if (value.type() == element_type::ARRAY) {
        // Node.js reports repeated headers (e.g. set-cookie) as arrays of strings.
        for (element item : value.get_array()) {
          if (item.get_string().get(s)) {
            return Fail("headers", "header " + std::string(key) + " must be a string");
          }
          if (!joined.empty()) joined += ", ";
          joined.append(s);
        }
      } else if (value.type() == element_type::INT64 || value.type() == element_type::UINT64 ||
                 value.type() == element_type::DOUBLE) {
        joined = simdjson::to_string(value);
      } else {
        return Fail("headers", "header " + std::string(key) + " must be a string");
      }
      if (joined.size() > limits_.max_header_value_len) {
        return Fail("headers", "header " + std::string(key) + " exceeds " +
                                   std::to_string(limits_.max_header_value_len) + " bytes");
      }
      e.headers.emplace_back(std::string(key), std::move(joined));
    }
    return true;
  }

 private:
  const EventLimits& limits_;
  std::optional<ParseError>& err_;
};

// The method as the agent's parser reads it off the wire: an event the agent can produce must
// be one ingest accepts, or a request with an odd method would go unseen.
bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsHttpTokenChar);
}

std::optional<ParseError> FromElement(element doc, const EventLimits& lim, Event& e) {
  std::optional<ParseError> err;
  object obj;
  if (doc.get_object().get(obj)) return ParseError{"", "event must be a JSON object"};
  FieldReader r(lim, err);
  bool has_timestamp = false, has_method = false, has_endpoint = false, has_ip = false,
       has_status = false, has_latency = false;
  const size_t f = lim.max_field_len;
  for (auto [key, v] : obj) {
    bool ok = true;
    if (key == "api_key") {
      ok = r.String(v, key, f, e.api_key);
    } else if (key == "timestamp") {
      ok = r.Number(v, key, e.timestamp);
      if (ok && (!std::isfinite(e.timestamp) || e.timestamp <= 0)) {
        ok = r.Fail(key, "timestamp must be a positive Unix time in seconds");
      } else if (ok && e.timestamp > kMaxTimestamp) {
        ok = r.Fail(key, "timestamp must be Unix seconds, not milliseconds");
      }
      has_timestamp = true;
    } else if (key == "method") {
      ok = r.String(v, key, 32, e.method);
      if (ok && !IsToken(e.method)) ok = r.Fail(key, "method must be an HTTP method token");
      for (char& c : e.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      has_method = ok && !e.method.empty();
    } else if (key == "endpoint") {
      ok = r.String(v, key, lim.max_endpoint_len, e.endpoint);
      has_endpoint = !e.endpoint.empty();
    } else if (key == "client_ip") {
      ok = r.String(v, key, 64, e.client_ip);
      if (ok && !e.client_ip.empty() && !IsValidIp(e.client_ip)) {
        ok = r.Fail(key, "client_ip must be an IPv4 or IPv6 address");
      }
      has_ip = !e.client_ip.empty();
    } else if (key == "headers") {
      ok = r.Headers(v, e);
    } else if (key == "status_code") {
      int64_t s = 0;
      ok = r.Integer(v, key, 100, 599, s);
      e.status_code = static_cast<int>(s);
      has_status = ok;
    } else if (key == "latency_ms") {
      ok = r.Number(v, key, e.latency_ms);
      if (ok && (!std::isfinite(e.latency_ms) || e.latency_ms < 0 || e.latency_ms > 86400000)) {
        ok = r.Fail(key, "latency_ms must be between 0 and 86400000");
      }
      has_latency = ok;
    } else if (key == "body_size") {
      ok = r.OptInteger(v, key, 0, INT64_MAX, e.body_size);
    } else if (key == "response_size") {
      ok = r.OptInteger(v, key, 0, INT64_MAX, e.response_size);
    } else if (key == "query") {
      ok = r.String(v, key, lim.max_endpoint_len, e.query);
    } else if (key == "payload") {
      ok = r.String(v, key, lim.max_payload_len, e.payload);
    } else if (key == "user_agent") {
      ok = r.String(v, key, lim.max_header_value_len, e.user_agent);
    } else if (key == "host") {
      ok = r.String(v, key, f, e.host);
    } else if (key == "identity") {
      ok = r.String(v, key, 128, e.identity);
    } else if (key == "server_ip") {
      ok = r.String(v, key, 64, e.server_ip);
      if (ok && !e.server_ip.empty() && !IsValidIp(e.server_ip)) {
        ok = r.Fail(key, "server_ip must be an IPv4 or IPv6 address");
      }
    } else if (key == "server_port") {
      std::optional<int64_t> p;
      ok = r.OptInteger(v, key, 0, 65535, p);
      if (p) e.server_port = static_cast<int>(*p);
    } else if (key == "tls") {
      if (v.type() == element_type::BOOL) {
        e.tls = bool(v);
      } else if (v.type() != element_type::NULL_VALUE) {
        ok = r.Fail(key, "tls must be a boolean");
      }
    } else if (key == "protocol") {
      ok = r.String(v, key, 32, e.protocol);
    } else if (key == "agent_id") {
      ok = r.String(v, key, 128, e.agent_id);
    } else if (key == "seq") {
      ok = r.OptInteger(v, key, 0, INT64_MAX, e.seq);
    } else if (key == "host_name") {
      ok = r.String(v, key, 255, e.host_name);
    } else if (key == "pid") {
      ok = r.OptInteger(v, key, 0, INT32_MAX, e.pid);
    } else if (key == "comm") {
      ok = r.String(v, key, 64, e.comm);
    } else if (key == "cgroup_id") {
      if (v.type() == element_type::UINT64) {
        e.cgroup_id = uint64_t(v);
      } else {
        std::optional<int64_t> c;
        ok = r.OptInteger(v, key, 0, INT64_MAX, c);
        if (c) e.cgroup_id = static_cast<uint64_t>(*c);
      }
    } else if (key == "container_id") {
      ok = r.String(v, key, 128, e.container_id);
    } else if (key == "pod") {
      ok = r.String(v, key, 253, e.pod);
    } else if (key == "namespace") {
      ok = r.String(v, key, 253, e.k8s_namespace);
    }
    if (!ok) return err;
  }
  if (!has_timestamp) return ParseError{"timestamp", "timestamp is required"};
  if (!has_method) return ParseError{"method", "method is required"};
  if (!has_endpoint) return ParseError{"endpoint", "endpoint is required"};
  if (!has_ip) return ParseError{"client_ip", "client_ip is required"};
  if (!has_status) return ParseError{"status_code", "status_code is required"};
  if (!has_latency) return ParseError{"latency_ms", "latency_ms is required"};
  if (e.seq && e.agent_id.empty()) return ParseError{"agent_id", "seq requires agent_id"};
  return std::nullopt;
}

std::string_view ParserError(simdjson::error_code code) {
  switch (code) {
    case simdjson::DEPTH_ERROR:
      return "JSON nesting exceeds the depth limit";
    case simdjson::CAPACITY:
      return "JSON document too large";
    default:
      return "invalid JSON";
  }
}

}  // namespace

std::optional<ParseError> ParseEvent(std::string_view json, const EventLimits& limits, Event& out) {
  if (json.size() > limits.max_event_bytes) {
    return ParseError{"", "event exceeds " + std::to_string(limits.max_event_bytes) + " bytes"};
  }
  element doc;
  auto code = Parser(limits.max_depth).parse(json.data(), json.size(), true).get(doc);
  if (code) return ParseError{"", std::string(ParserError(code))};
  return FromElement(doc, limits, out);
}

std::optional<ParseError> ParseEventBatch(std::string_view body, const EventLimits& limits,
                                          std::vector<BatchItem>& out, size_t max_items) {
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return ParseError{"", "empty batch"};
  if (body[first] == '[') {
    element doc;
    auto code = Parser(limits.max_depth + 1).parse(body.data(), body.size(), true).get(doc);
    if (code) return ParseError{"", std::string(ParserError(code))};
    simdjson::dom::array arr;
    if (doc.get_array().get(arr)) return ParseError{"", "batch must be a JSON array or NDJSON"};
    if (arr.size() > max_items) {
      return ParseError{"", "batch has more than " + std::to_string(max_items) + " events"};
    }
    out.reserve(out.size() + arr.size());
    size_t index = 0;
    for (element item : arr) {
      BatchItem& b = out.emplace_back();
      b.index = index++;
      // Per-item size bound, measured on the item's minified form.
      if (simdjson::minify(item).size() > limits.max_event_bytes) {
        b.error =
            ParseError{"", "event exceeds " + std::to_string(limits.max_event_bytes) + " bytes"};
        continue;
      }
      b.error = FromElement(item, limits, b.event);
    }
    return std::nullopt;
  }
  size_t index = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string_view::npos) continue;
    if (index >= max_items) {
      return ParseError{"", "batch has more than " + std::to_string(max_items) + " events"};
    }
    BatchItem& b = out.emplace_back();
    b.index = index++;
    b.error = ParseEvent(line, limits, b.event);
  }
  if (index == 0) return ParseError{"", "empty batch"};
  return std::nullopt;
}

bool IsHttpTokenChar(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// The reference encoder: nlohmann, with invalid UTF-8 replaced by U+FFFD. AppendEventJson
// produces the same bytes by hand and hands text that is not valid UTF-8 to this.
std::string EventToJsonNlohmann(const Event& e) {
  nlohmann::ordered_json j;
  j["timestamp"] = e.timestamp;
  j["method"] = e.method;
  j["endpoint"] = e.endpoint;
  j["client_ip"] = e.client_ip;
  if (!e.headers.empty()) {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    for (const auto& [k, v] : e.headers) h[k] = v;
    j["headers"] = std::move(h);
  }
  j["status_code"] = e.status_code;
  j["latency_ms"] = e.latency_ms;
  if (e.body_size) j["body_size"] = *e.body_size;
  if (e.response_size) j["response_size"] = *e.response_size;
  auto opt = [&j](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  opt("query", e.query);
  opt("payload", e.payload);
  opt("user_agent", e.user_agent);
  opt("host", e.host);
  opt("identity", e.identity);
  opt("server_ip", e.server_ip);
  if (e.server_port) j["server_port"] = *e.server_port;
  if (e.tls) j["tls"] = *e.tls;
  opt("protocol", e.protocol);
  opt("agent_id", e.agent_id);
  if (e.seq) j["seq"] = *e.seq;
  opt("host_name", e.host_name);
  if (e.pid) j["pid"] = *e.pid;
  opt("comm", e.comm);
  if (e.cgroup_id) j["cgroup_id"] = *e.cgroup_id;
  opt("container_id", e.container_id);
  opt("pod", e.pod);
  opt("namespace", e.k8s_namespace);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

void AppendKey(std::string& out, std::string_view key) {
  out += ',';
  out += '"';
  out += key;
  out += "\":";
}

template <typename T>
void AppendInteger(std::string& out, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// nlohmann's own shortest round-trip formatting ("1.0", "1764571607.25"), so both encoders agree.
void AppendDouble(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  char* end = nlohmann::detail::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

// False when some text is not valid UTF-8 (`out` is then unspecified past its old size).
bool AppendEventFields(const Event& e, std::string& out) {
  out += "{\"timestamp\":";
  AppendDouble(out, e.timestamp);
  bool ok = true;
  auto str = [&](std::string_view key, const std::string& v) {
    AppendKey(out, key);
    ok = AppendJsonString(v, out) && ok;
  };
  auto opt = [&](std::string_view key, const std::string& v) {
    if (!v.empty()) str(key, v);
  };
  auto opt_int = [&](std::string_view key, const auto& v) {  // an optional integer field
    if (v) {
      AppendKey(out, key);
      AppendInteger(out, *v);
    }
  };
  str("method", e.method);
  str("endpoint", e.endpoint);
  str("client_ip", e.client_ip);
  if (!e.headers.empty()) {
    // An object keeps one entry per name: a repeated name keeps its first position and its last
    // value (what assigning into nlohmann::ordered_json does).
    out += ",\"headers\":{";
    bool first = true;
    for (size_t i = 0; i < e.headers.size(); ++i) {
      const std::string& name = e.headers[i].first;
      bool seen = false;
      for (size_t k = 0; k < i && !seen; ++k) seen = e.headers[k].first == name;
      if (seen) continue;
      const std::string* value = &e.headers[i].second;
      for (size_t k = i + 1; k < e.headers.size(); ++k)
        if (e.headers[k].first == name) value = &e.headers[k].second;
      if (!first) out += ',';
      first = false;
      ok = AppendJsonString(name, out) && ok;
      out += ':';
      ok = AppendJsonString(*value, out) && ok;
    }
    out += '}';
  }
  AppendKey(out, "status_code");
  AppendInteger(out, e.status_code);
  AppendKey(out, "latency_ms");
  AppendDouble(out, e.latency_ms);
  opt_int("body_size", e.body_size);
  opt_int("response_size", e.response_size);
  opt("query", e.query);
  opt("payload", e.payload);
  opt("user_agent", e.user_agent);
  opt("host", e.host);
  opt("identity", e.identity);
  opt("server_ip", e.server_ip);
  opt_int("server_port", e.server_port);
  if (e.tls) {
    AppendKey(out, "tls");
    out += *e.tls ? "true" : "false";
  }
  opt("protocol", e.protocol);
  opt("agent_id", e.agent_id);
  opt_int("seq", e.seq);
  opt("host_name", e.host_name);
  opt_int("pid", e.pid);
  opt("comm", e.comm);
  opt_int("cgroup_id", e.cgroup_id);
  opt("container_id", e.container_id);
  opt("pod", e.pod);
  opt("namespace", e.k8s_namespace);
  out += '}';
  return ok;
}

}  // namespace

void AppendEventJson(const Event& e, std::string& out) {
  const size_t start = out.size();
  if (AppendEventFields(e, out)) return;
  out.resize(start);
  out += EventToJsonNlohmann(e);
}

std::string EventToJson(const Event& e) {
  std::string out;
  out.reserve(512 + e.endpoint.size() + e.payload.size());
  AppendEventJson(e, out);
  return out;
}

bool IsSecretHeader(std::string_view name, const std::vector<std::string>& extra) {
  static constexpr std::string_view kSecret[] = {"authorization", "cookie", "set-cookie",
                                                 "proxy-authorization"};
  for (auto s : kSecret) {
    if (IEquals(name, s)) return true;
  }
  for (const auto& s : extra) {
    if (IEquals(name, s)) return true;
  }
  return false;
}

std::string IdentityOf(std::string_view identity_key, std::string_view credential) {
  return crypto::Hex(crypto::HmacSha256(identity_key, credential).substr(0, 16));
}

namespace {

// The credential a header value carries: a bearer token's JWT subject (or the token), a Basic
// header's user name (so one account hashes the same whatever password is tried), or the value.
std::string CredentialOf(std::string_view name, std::string_view value) {
  auto trim = [](std::string_view s) {
    size_t a = s.find_first_not_of(" \t");
    size_t b = s.find_last_not_of(" \t");
    return a == std::string_view::npos ? std::string_view() : s.substr(a, b - a + 1);
  };
  value = trim(value);
  if (IEquals(name, "authorization") || IEquals(name, "proxy-authorization")) {
    size_t sp = value.find(' ');
    if (sp != std::string_view::npos) {
      std::string_view scheme = value.substr(0, sp);
      std::string_view rest = trim(value.substr(sp + 1));
      if (IEquals(scheme, "bearer")) {
        if (auto sub = crypto::JwtUnverifiedSubject(rest)) return "sub:" + *sub;
        return std::string(rest);
      }
      if (IEquals(scheme, "basic")) {
        if (auto raw = crypto::Base64Decode(rest)) {
          return "basic:" + raw->substr(0, raw->find(':'));
        }
      }
      return std::string(rest);
    }
  }
  return std::string(value);
}

}  // namespace

std::string IdentityFromHeaders(const std::vector<std::pair<std::string, std::string>>& headers,
                                std::string_view identity_key,
                                const std::vector<std::string>& extra_secret_headers) {
  if (identity_key.empty()) return {};
  const std::pair<std::string, std::string>* best = nullptr;
  int rank = 100;
  auto rank_of = [&](std::string_view n) {
    if (IEquals(n, "authorization")) return 0;
    if (IEquals(n, "proxy-authorization")) return 1;
    for (size_t i = 0; i < extra_secret_headers.size(); ++i) {
      if (IEquals(n, extra_secret_headers[i])) return 2 + static_cast<int>(i);
    }
    if (IEquals(n, "cookie")) return 90;
    return 99;  // set-cookie: a response header, never a caller credential
  };
  for (const auto& h : headers) {
    if (h.second.empty() || !IsSecretHeader(h.first, extra_secret_headers)) continue;
    int r = rank_of(h.first);
    if (r < rank && r < 99) {
      rank = r;
      best = &h;
    }
  }
  if (!best) return {};
  std::string credential = CredentialOf(best->first, best->second);
  return credential.empty() ? std::string() : IdentityOf(identity_key, credential);
}

void ScrubSecrets(Event& e, std::string_view identity_key,
                  const std::vector<std::string>& extra_secret_headers) {
  if (e.identity.empty())
    e.identity = IdentityFromHeaders(e.headers, identity_key, extra_secret_headers);
  std::erase_if(e.headers,
                [&](const auto& h) { return IsSecretHeader(h.first, extra_secret_headers); });
  for (const auto& [k, v] : e.headers) {
    if (e.user_agent.empty() && IEquals(k, "user-agent")) e.user_agent = v;
    if (e.host.empty() && IEquals(k, "host")) e.host = v;
  }
}

}  // namespace boing
