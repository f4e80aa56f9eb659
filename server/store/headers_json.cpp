// events.headers_json: [["Name","value"],...]. Encoding is on the ingest hot path, so it is written
// by hand into a reused buffer; nlohmann::json takes over for anything that is not valid UTF-8
// (replaced by U+FFFD) and decodes.
#include <nlohmann/json.hpp>

#include "boing/utf8.h"
#include "store_internal.h"

namespace boing::store_internal {
namespace {

bool AppendString(std::string_view v, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* s = reinterpret_cast<const unsigned char*>(v.data());
  const size_t n = v.size();
  out += '"';
  size_t run = 0;  // start of the pending run of bytes copied as they are
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(v, i);
      if (len == 0) return false;
      i += len;
      continue;
    }
    out.append(v.data() + run, i - run);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
    run = ++i;
  }
  out.append(v.data() + run, n - run);
  out += '"';
  return true;
}

}  // namespace

void AppendHeadersJson(const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string& out) {
  const size_t start = out.size();
  out += '[';
  bool ok = true;
  for (size_t i = 0; ok && i < headers.size(); ++i) {
    if (i) out += ',';
    out += '[';
    ok = AppendString(headers[i].first, out);
    out += ',';
    ok = ok && AppendString(headers[i].second, out);
    out += ']';
  }
  out += ']';
  if (ok) return;
  out.resize(start);
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [k, v] : headers) a.push_back({k, v});
  out += a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool ParseHeadersJson(std::string_view json,
                      std::vector<std::pair<std::string, std::string>>& headers) {
  headers.clear();
  if (json.empty() || json == "[]") return true;
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_array()) return false;
  headers.reserve(j.size());
  for (auto& p : j) {
    if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string()) return false;
    headers.emplace_back(std::move(p[0].get_ref<std::string&>()),
                         std::move(p[1].get_ref<std::string&>()));
  }
  return true;
}

}  // namespace boing::store_internal
