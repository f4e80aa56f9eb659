#include "analyze.h"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>

#include "detection.h"

namespace boing {
namespace {

// A double-quoted field. Only \" and \\ are unescaped; other escapes (nginx writes \x22) are
// kept for the content detectors' decoding.
bool Quoted(std::string_view& s, std::string& out) {
  out.clear();
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty() || s.front() != '"') return false;
  size_t i = 1;
  for (; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
    out += s[i];
  }
  if (i >= s.size()) return false;
  s.remove_prefix(i + 1);
  return true;
}

std::string_view Word(std::string_view& s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  size_t n = s.find(' ');
  std::string_view w = s.substr(0, n);
  s.remove_prefix(n == std::string_view::npos ? s.size() : n);
  return w;
}

}  // namespace

std::string ParseCombinedLine(std::string_view s, Event& e) {
  e.client_ip = std::string(Word(s));
  Word(s);  // ident
  Word(s);  // user
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty() || s.front() != '[') return "expected [time]";
  size_t close = s.find(']');
  if (close == std::string_view::npos) return "expected [time]";
  std::string when(s.substr(1, close - 1));
  s.remove_prefix(close + 1);
  std::tm tm{};
  const char* rest = strptime(when.c_str(), "%d/%b/%Y:%H:%M:%S", &tm);
  if (!rest) return "time is not dd/Mon/yyyy:HH:MM:SS +zzzz";
  int offset = 0;
  if (rest[0] == ' ' && (rest[1] == '+' || rest[1] == '-') && std::strlen(rest) >= 6) {
    int hh = (rest[2] - '0') * 10 + (rest[3] - '0');
    int mm = (rest[4] - '0') * 10 + (rest[5] - '0');
    offset = (rest[1] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
  }
  e.timestamp = static_cast<double>(timegm(&tm) - offset);
  std::string request;
  if (!Quoted(s, request)) return "expected \"request\"";
  std::string_view r = request;
  e.method = std::string(Word(r));
  e.endpoint = std::string(Word(r));
  e.protocol = std::string(Word(r));
  if (e.method.empty() || e.endpoint.empty()) return "request line is not METHOD TARGET PROTOCOL";
  std::string_view status = Word(s);
  e.status_code = std::atoi(std::string(status).c_str());
  if (e.status_code < 100 || e.status_code > 599) return "status is not 100-599";
  std::string_view bytes = Word(s);
  if (bytes != "-") e.response_size = std::atoll(std::string(bytes).c_str());
  std::string referer, agent;
  if (Quoted(s, referer) && referer != "-") e.headers.emplace_back("Referer", referer);
  if (Quoted(s, agent) && agent != "-") e.user_agent = agent;
  return "";
}

int RunAnalyze(const ServerConfig& cfg, const AnalyzeOptions& o, std::istream& in,
               std::ostream& out) {
  using Json = nlohmann::json;
  detect::Pipeline pipeline;
  pipeline.Configure(ToSettings(DefaultDetectors(cfg, static_cast<int64_t>(std::time(nullptr)))));
  std::vector<detect::Finding> found;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    found.clear();
    Json result = Json::object();
    if (o.values) {
      pipeline.ProcessValue(line, found);
    } else if (o.combined) {
      Event e;
      std::string err = ParseCombinedLine(line, e);
      if (!err.empty()) {
        result["error"] = err;
      } else {
        pipeline.Process(e, found);
      }
    } else {
      Event e;
      if (auto err = ParseEvent(line, cfg.event_limits, e)) {
        result["error"] = err->message;
        if (!err->field.empty()) result["field"] = err->field;
      } else {
        pipeline.Process(e, found);
      }
    }
    Json list = Json::array();
    for (const auto& f : found) list.push_back(FindingJson(f));
    result["findings"] = std::move(list);
    out << result.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
  }
  out.flush();
  return in.bad() ? 1 : 0;
}

}  // namespace boing
