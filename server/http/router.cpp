// Request/Response helpers and the exact-segment Router. No Beast here: this translation unit stays
// cheap to compile.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "boing/http.h"
#include "internal.h"

namespace boing::http {
namespace {

constexpr char kMethodWs[] = "WS";

std::vector<std::string> SplitPattern(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    out.emplace_back(path.substr(pos, slash - pos));
    pos = slash;
  }
  return out;
}

bool IsParam(const std::string& segment) { return segment.size() > 1 && segment[0] == ':'; }

// Bit (63 - i) is set when segment i is literal: among patterns of the same length, a larger
// value is more specific (a literal beats a parameter at the first position where they differ).
uint64_t Specificity(const std::vector<std::string>& segments) {
  uint64_t v = 0;
  for (size_t i = 0; i < segments.size() && i < 64; ++i) {
    if (!IsParam(segments[i])) v |= uint64_t{1} << (63 - i);
  }
  return v;
}

// Walks `path` segment by segment (empty segments are ignored, like in patterns) against
// `segments`; captures parameters into `params` when it is not null.
bool MatchPath(const std::vector<std::string>& segments, std::string_view path,
               std::map<std::string, std::string>* params) {
  size_t pos = 0, i = 0;
  for (;;) {
    while (pos < path.size() && path[pos] == '/') ++pos;
    if (pos >= path.size()) break;
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(pos, end - pos);
    if (i >= segments.size()) return false;
    const std::string& s = segments[i];
    if (IsParam(s)) {
      if (params) (*params)[s.substr(1)] = std::string(seg);
    } else if (s != seg) {
      return false;
    }
    ++i;
    pos = end;
  }
  return i == segments.size();
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

namespace internal {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

void PercentDecodeInto(std::string_view s, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < s.size() && (hi = HexVal(s[i + 1])) >= 0 &&
        (lo = HexVal(s[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
}

}  // namespace internal

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  internal::PercentDecodeInto(s, plus_is_space, out);
  return out;
}

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (internal::IEquals(k, name)) return v;
  }
  return {};
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  std::string_view q = query;
  std::string key;
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view pair = q.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    internal::PercentDecodeInto(pair.substr(0, eq), true, key);
    if (!pair.empty() && key == name) {
      return eq == std::string_view::npos ? std::string()
                                          : PercentDecode(pair.substr(eq + 1), true);
    }
    pos = amp + 1;
  }
  return std::nullopt;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::Error(int status, std::string_view message, std::string_view field) {
  nlohmann::json j = {{"error", message}};
  if (!field.empty()) j["field"] = field;
  return Json(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Router::Add(std::string method, std::string pattern, Handler h) {
  auto segments = SplitPattern(pattern);
  uint64_t spec = Specificity(segments);
  routes_.push_back({method, std::move(pattern)});
  entries_.push_back(
      {std::move(method), std::move(segments), std::move(h), nullptr, nullptr, spec});
}

void Router::AddWebSocket(std::string pattern, WsAuthorizer authorize, WsHandler h) {
  auto segments = SplitPattern(pattern);
  uint64_t spec = Specificity(segments);
  routes_.push_back({kMethodWs, std::move(pattern)});
  entries_.push_back(
      {kMethodWs, std::move(segments), nullptr, std::move(authorize), std::move(h), spec});
}

void Router::SetFallback(Handler h) { fallback_ = std::move(h); }

Router::Match Router::Find(std::string_view method, std::string_view path, bool websocket,
                           std::map<std::string, std::string>& params) const {
  Match m;
  const Entry* best = nullptr;
  int best_rank = 0;  // 2 = exact method, 1 = HEAD served by GET
  for (const auto& e : entries_) {
    if (!MatchPath(e.segments, path, nullptr)) continue;
    m.path_known = true;
    const bool is_ws = e.method == kMethodWs;
    if (is_ws) m.ws_route = true;
    int rank = 0;
    if (websocket) {
      rank = is_ws ? 2 : 0;
    } else if (!is_ws) {
      rank = e.method == method ? 2 : (method == "HEAD" && e.method == "GET") ? 1 : 0;
    }
    if (rank == 0) continue;
    if (!best || e.specificity > best->specificity ||
        (e.specificity == best->specificity && rank > best_rank)) {
      best = &e;
      best_rank = rank;
    }
  }
  if (best) {
    MatchPath(best->segments, path, &params);
    if (websocket) {
      m.ws_authorize = &best->ws_authorize;
      m.ws_handler = &best->ws_handler;
    } else {
      m.handler = &best->handler;
    }
  }
  return m;
}

std::string Router::AllowedMethods(std::string_view path) const {
  std::vector<std::string_view> methods;
  for (const auto& e : entries_) {
    if (e.method == kMethodWs || !MatchPath(e.segments, path, nullptr)) continue;
    if (std::find(methods.begin(), methods.end(), e.method) == methods.end()) {
      methods.push_back(e.method);
    }
  }
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end() &&
      std::find(methods.begin(), methods.end(), "HEAD") == methods.end()) {
    methods.push_back("HEAD");
  }
  std::string allow;
  for (auto m : methods) {
    if (!allow.empty()) allow += ", ";
    allow += m;
  }
  return allow;
}

}  // namespace boing::http
