// Read side: request logs (keyset pagination), streamed CSV export and aggregated metrics.
#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include "app.h"
#include "boing/csv.h"

namespace boing {
namespace {

constexpr size_t kMetricsMaxRows = 2'000'000;

std::optional<double> NumberParam(const http::Request& req, const char* name, std::string& bad) {
  auto v = req.QueryParam(name);
  if (!v || v->empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end != '\0' || !std::isfinite(d)) {
    bad = name;
    return std::nullopt;
  }
  return d;
}

// Fills a LogFilter from the query string and the caller's visibility. Returns an error response
// naming the parameter, or a 404 when the caller names an API they cannot see.
std::optional<http::Response> BuildFilter(App& app, const http::Request& req, const Principal& p,
                                          LogFilter& f) {
  if (auto e = app.ScopeToApis(req, p, f.api_ids, f.restrict_to_apis)) return e;
  std::string bad;
  f.client_ip = req.QueryParam("client_ip").value_or("");
  f.endpoint = req.QueryParam("endpoint").value_or("");
  f.method = req.QueryParam("method").value_or("");
  for (char& c : f.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (auto v = NumberParam(req, "status_min", bad)) f.status_min = static_cast<int>(*v);
  if (auto v = NumberParam(req, "status_max", bad)) f.status_max = static_cast<int>(*v);
  if (auto v = NumberParam(req, "from", bad)) f.from_ts = *v;
  if (auto v = NumberParam(req, "to", bad)) f.to_ts = *v;
  if (auto v = NumberParam(req, "limit", bad)) {
    if (*v < 1 || *v > 1000) bad = "limit";
    f.limit = static_cast<int>(*v);
  }
  if (auto c = req.QueryParam("cursor"); c && !c->empty()) {
    size_t us = c->find('_');
    char* end = nullptr;
    double ts = us == std::string::npos ? 0 : std::strtod(c->substr(0, us).c_str(), &end);
    auto id = us == std::string::npos ? std::nullopt : ParseId(c->substr(us + 1));
    if (!id || ts <= 0) return http::Response::Error(400, "cursor is not valid", "cursor");
    f.before_ts = ts;
    f.before_id = *id;
  }
  if (!bad.empty()) return http::Response::Error(400, bad + " must be a number in range", bad);
  return std::nullopt;
}

std::string Cursor(const Event& e) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g_%lld", e.timestamp, static_cast<long long>(e.id));
  return buf;
}

struct Agg {
  int64_t requests = 0;
  int64_t errors = 0;
  std::vector<double> latencies;
  Json ToJson() {
    return {{"requests", requests},
            {"errors", errors},
            {"error_rate", requests ? static_cast<double>(errors) / requests : 0.0},
            {"p50", Percentile(latencies, 0.50)},
            {"p95", Percentile(latencies, 0.95)},
            {"p99", Percentile(latencies, 0.99)}};
  }
  void Add(const Event& e) {
    ++requests;
    if (e.status_code >= 400) ++errors;  // client and server errors both count
    latencies.push_back(e.latency_ms);
  }
};

}  // namespace

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  // Nearest-rank: the smallest value with at least q of the data at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  size_t k = rank == 0 ? 0 : rank - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

Json TopN(const std::unordered_map<std::string, int64_t>& counts, size_t n, const char* key) {
  std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Json out = Json::array();
  for (size_t i = 0; i < v.size() && i < n; ++i) {
    out.push_back({{key, v[i].first}, {"count", v[i].second}});
  }
  return out;
}

void App::RegisterQueries(http::Router& r) {
  r.Add("GET", "/api/logs",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          LogFilter f;
          if (auto e = BuildFilter(*this, req, p, f)) return *e;
          std::vector<Event> rows = store_->QueryLogs(f);
          Json logs = Json::array();
          for (const auto& e : rows) logs.push_back(EventJson(e));
          Json out = {{"logs", logs}, {"next_cursor", nullptr}};
          if (static_cast<int>(rows.size()) == f.limit) out["next_cursor"] = Cursor(rows.back());
          return http::Response::Json(200,
                                      out.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));

  r.Add("GET", "/api/export/logs",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          auto f = std::make_shared<LogFilter>();
          if (auto e = BuildFilter(*this, req, p, *f)) return *e;
          f->limit = 1000;
          // Pages are pulled newest first with the same keyset as /api/logs, one page per chunk,
          // so memory stays bounded whatever the export size.
          auto header_sent = std::make_shared<bool>(false);
          auto done = std::make_shared<bool>(false);
          http::Response resp;
          resp.content_type = "text/csv; charset=utf-8";
          resp.headers.emplace_back("Content-Disposition",
                                    "attachment; filename=\"boing-logs.csv\"");
          resp.chunk_source = [this, f, header_sent, done]() -> std::optional<std::string> {
            std::string out;
            if (!*header_sent) {
              *header_sent = true;
              csv::AppendRecord(
                  out, {"id", "api_id", "timestamp", "method", "endpoint", "query", "client_ip",
                        "status_code", "latency_ms", "body_size", "response_size", "user_agent",
                        "host", "identity", "agent_id", "seq"});
              return out;
            }
            if (*done) return std::nullopt;
            std::vector<Event> rows = store_->QueryLogs(*f);
            if (static_cast<int>(rows.size()) < f->limit) *done = true;
            if (rows.empty()) return std::nullopt;
            char ts[32], lat[32];
            for (const auto& e : rows) {
              std::snprintf(ts, sizeof ts, "%.6f", e.timestamp);
              std::snprintf(lat, sizeof lat, "%.3f", e.latency_ms);
              csv::AppendRecord(
                  out, {std::to_string(e.id), std::to_string(e.api_id), ts, e.method, e.endpoint,
                        e.query, e.client_ip, std::to_string(e.status_code), lat,
                        e.body_size ? std::to_string(*e.body_size) : "",
                        e.response_size ? std::to_string(*e.response_size) : "", e.user_agent,
                        e.host, e.identity, e.agent_id, e.seq ? std::to_string(*e.seq) : ""});
            }
            f->before_ts = rows.back().timestamp;
            f->before_id = rows.back().id;
            return out;
          };
          return resp;
        }));

  r.Add("GET", "/api/metrics",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          LogFilter f;
          if (auto e = BuildFilter(*this, req, p, f)) return *e;
          std::string bad;
          double bucket = NumberParam(req, "bucket", bad).value_or(60);
          double top = NumberParam(req, "top", bad).value_or(10);
          if (!bad.empty() || bucket < 1 || bucket > 86400 * 31 || top < 1 || top > 1000) {
            std::string field =
                bad.empty() ? (bucket < 1 || bucket > 86400 * 31 ? "bucket" : "top") : bad;
            return http::Response::Error(400, field + " is out of range", field);
          }
          const double now = static_cast<double>(NowSeconds());
          if (f.to_ts == 0) f.to_ts = now + 1;
          if (f.from_ts == 0) f.from_ts = f.to_ts - 3600;
          if ((f.to_ts - f.from_ts) / bucket > 10000) {
            return http::Response::Error(400, "too many buckets (at most 10000)", "bucket");
          }
          struct PerApi {
            Agg totals;
            std::map<int64_t, Agg> buckets;
            std::unordered_map<std::string, int64_t> ips, endpoints;
          };
          std::map<int64_t, PerApi> apis;
          size_t rows = 0;
          bool truncated = false;
          Status s = store_->ScanEvents(f, [&](const Event& e) {
            if (++rows > kMetricsMaxRows) {
              truncated = true;
              return false;
            }
            PerApi& pa = apis[e.api_id];
            pa.totals.Add(e);
            int64_t b = static_cast<int64_t>(std::floor((e.timestamp - f.from_ts) / bucket));
            pa.buckets[b].Add(e);
            pa.ips[e.client_ip]++;
            pa.endpoints[e.endpoint]++;
            return true;
          });
          if (!s.ok) return StoreError(s);
          std::map<int64_t, std::string> names;
          for (const auto& a : store_->ListApis(std::nullopt)) names[a.id] = a.name;
          Json out_apis = Json::array();
          for (auto& [api_id, pa] : apis) {
            Json buckets = Json::array();
            for (auto& [b, agg] : pa.buckets) {
              Json j = agg.ToJson();
              j["ts"] = f.from_ts + static_cast<double>(b) * bucket;
              buckets.push_back(std::move(j));
            }
            out_apis.push_back(
                {{"api_id", api_id},
                 {"name", names.count(api_id) ? names[api_id] : ""},
                 {"totals", pa.totals.ToJson()},
                 {"buckets", buckets},
                 {"top_ips", TopN(pa.ips, static_cast<size_t>(top), "ip")},
                 {"top_endpoints", TopN(pa.endpoints, static_cast<size_t>(top), "endpoint")}});
          }
          Json out = {{"from", f.from_ts},
                      {"to", f.to_ts},
                      {"bucket", bucket},
                      {"apis", out_apis},
                      {"truncated", truncated}};
          return http::Response::Json(200,
                                      out.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));
}

}  // namespace boing
