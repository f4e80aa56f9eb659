#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "boing/http.h"

namespace boing::http {
namespace {

std::vector<std::string> Split(std::string_view path) {
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

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string_view pair(query.data() + pos, amp - pos);
    size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq), true) == name) {
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
  routes_.push_back({method, pattern});
  entries_.push_back({std::move(method), Split(pattern), std::move(h), nullptr, nullptr});
}

void Router::AddWebSocket(std::string pattern, WsAuthorizer authorize, WsHandler h) {
  routes_.push_back({"WS", pattern});
  entries_.push_back({"WS", Split(pattern), nullptr, std::move(authorize), std::move(h)});
}

void Router::SetFallback(Handler h) { fallback_ = std::move(h); }

Router::Match Router::Find(std::string_view method, std::string_view path, bool websocket,
                           std::map<std::string, std::string>& params) const {
  Match m;
  auto segs = Split(path);
  for (const auto& e : entries_) {
    if (e.segments.size() != segs.size()) continue;
    std::map<std::string, std::string> p;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      if (!e.segments[i].empty() && e.segments[i][0] == ':') {
        p[e.segments[i].substr(1)] = segs[i];
      } else {
        ok = e.segments[i] == segs[i];
      }
    }
    if (!ok) continue;
    m.path_known = true;
    bool is_ws = e.method == "WS";
    if (websocket && is_ws) {
      m.ws_authorize = &e.ws_authorize;
      m.ws_handler = &e.ws_handler;
      params = std::move(p);
      return m;
    }
    if (!websocket && !is_ws && (e.method == method || (method == "HEAD" && e.method == "GET"))) {
      m.handler = &e.handler;
      params = std::move(p);
      return m;
    }
  }
  return m;
}

std::string Router::AllowedMethods(std::string_view path) const {
  auto segs = Split(path);
  std::string allow;
  for (const auto& e : entries_) {
    if (e.segments.size() != segs.size() || e.method == "WS") continue;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      ok = (!e.segments[i].empty() && e.segments[i][0] == ':') || e.segments[i] == segs[i];
    }
    if (ok && allow.find(e.method) == std::string::npos) {
      allow += allow.empty() ? e.method : ", " + e.method;
    }
  }
  return allow;
}

}  // namespace boing::http
