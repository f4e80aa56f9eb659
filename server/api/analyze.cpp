#include "analyze.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
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
  {
    std::string error;
    std::shared_ptr<const detect::PayloadClassifier> model =
        detect::PayloadClassifier::Load(PayloadModelPath(cfg), &error);
    if (!model) std::cerr << "boing-server analyze: payload_classifier off: " << error << '\n';
    pipeline.SetPayloadClassifier(std::move(model));
    std::string unavailable;
    auto geo = OpenGeoIp(cfg, &unavailable);
    if (!geo) {
      std::cerr << "boing-server analyze: geo_new_country and impossible_travel off: "
                << unavailable << '\n';
    }
    pipeline.SetGeoIp(std::move(geo));
  }
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

int RunTrain(const ServerConfig& cfg, const TrainCommand& t, std::ostream& out, std::ostream& err) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  if (t.data.empty()) {
    err << "boing-server train: --data FILE.csv is required\n";
    return 1;
  }
  detect::CsvOptions o;
  o.value_column = t.value_column;
  o.label_column = t.label_column;
  o.rows = t.rows;
  detect::LabelledValues data;
  std::string error;
  if (!detect::ReadLabelledCsv(t.data, o, &data, &error)) {
    err << "boing-server train: " << error << '\n';
    return 1;
  }
  auto model = detect::PayloadClassifier::Train(data, detect::TrainOptions{}, &error);
  if (!model) {
    err << "boing-server train: " << t.data << ": " << error << '\n';
    return 1;
  }
  std::string path = t.out.empty() ? cfg.data_dir + "/payload_classifier.model" : t.out;
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (!model->Save(path, &error)) {
    err << "boing-server train: " << error << '\n';
    return 1;
  }
  // Fit on the training rows (not a quality figure: measure that on rows training never saw).
  std::map<int, std::pair<size_t, size_t>> fit;  // label -> (rows, predicted as that label)
  for (size_t i = 0; i < data.values.size(); ++i) {
    auto p = model->PredictRaw(data.values[i]);
    auto& f = fit[data.labels[i]];
    ++f.first;
    if (p.cls == data.labels[i]) ++f.second;
  }
  nlohmann::json classes = nlohmann::json::object();
  for (const auto& [label, f] : fit) {
    classes[data.classes[static_cast<size_t>(label)]] = {
        {"rows", f.first}, {"training_accuracy", static_cast<double>(f.second) / f.first}};
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  out << nlohmann::json{{"model", path},
                        {"rows", data.values.size()},
                        {"benign_label",
                         model->classes()[static_cast<size_t>(model->benign_class())]},
                        {"features", model->FeatureCount()},
                        {"classes", classes},
                        {"seconds", secs}}
             .dump()
      << '\n';
  return 0;
}

}  // namespace boing
