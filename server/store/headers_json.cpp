// events.headers_json: [["Name","value"],...]. Encoding is on the ingest hot path, so it is written
// by hand (boing/json_text.h) into a reused buffer; nlohmann::json takes over for anything that is
// not valid UTF-8 (replaced by U+FFFD) and decodes.
#include <nlohmann/json.hpp>

#include "boing/json_text.h"
#include "store_internal.h"

namespace boing::store_internal {

void AppendHeadersJson(const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string& out) {
  const size_t start = out.size();
  out += '[';
  bool ok = true;
  for (size_t i = 0; ok && i < headers.size(); ++i) {
    if (i) out += ',';
    out += '[';
    ok = AppendJsonString(headers[i].first, out);
    out += ',';
    ok = ok && AppendJsonString(headers[i].second, out);
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
