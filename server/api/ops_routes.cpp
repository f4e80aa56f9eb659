// Operations: liveness, readiness, Prometheus metrics, and the dashboard's static files.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app.h"
#include "boing/log.h"

namespace boing {
namespace {

std::string_view MimeType(const std::filesystem::path& p) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".wasm", "application/wasm"},
      {".txt", "text/plain; charset=utf-8"}};
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto [e, t] : kTypes) {
    if (ext == e) return t;
  }
  return "application/octet-stream";
}

std::optional<std::string> ReadFile(const std::filesystem::path& p, size_t max_bytes) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::string out;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes) return std::nullopt;
  }
  return out;
}

// Under /api and /ws only the API answers: an unknown path there is a JSON 404, never the SPA.
bool IsApiPath(std::string_view path) {
  for (std::string_view prefix : {"/api", "/ws"}) {
    if (path.substr(0, prefix.size()) == prefix &&
        (path.size() == prefix.size() || path[prefix.size()] == '/')) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<StaticPath> ResolveStaticPath(std::string_view url_path) {
  StaticPath out;
  std::filesystem::path rel;
  size_t pos = 0;
  while (pos < url_path.size()) {
    size_t slash = url_path.find('/', pos);
    if (slash == std::string_view::npos) slash = url_path.size();
    std::string_view seg = url_path.substr(pos, slash - pos);
    pos = slash + 1;
    if (seg.empty() || seg == ".") continue;
    // No way up, no hidden files, nothing the file system would read differently.
    if (seg == ".." || seg[0] == '.' || seg.find('\\') != std::string_view::npos ||
        seg.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    rel /= std::string(seg);
    out.last_segment = std::string(seg);
  }
  out.relative = rel;
  out.hashed_asset = rel.begin() != rel.end() && *rel.begin() == "assets";
  out.looks_like_file = out.last_segment.find('.') != std::string::npos;
  return out;
}

http::Handler DashboardHandler(const std::string& dir, size_t max_file_bytes) {
  std::error_code ec;
  std::filesystem::path root = std::filesystem::weakly_canonical(dir, ec);
  if (ec) root = dir;
  if (!std::filesystem::is_regular_file(root / "index.html", ec)) {
    log::Warn(
        "DASHBOARD_DIR has no index.html: build the dashboard (cd dashboard && npm ci && "
        "npm run build)",
        {{"dir", root.string()}});
  }
  return Sync([root, max_file_bytes](http::Request& req) -> http::Response {
    if (IsApiPath(req.path)) return http::Response::Error(404, "not found");
    auto sp = ResolveStaticPath(req.path);
    if (!sp) return http::Response::Error(404, "not found");
    std::error_code ec;
    std::filesystem::path file;
    bool found = false;
    if (!sp->relative.empty()) {
      // Symlinks inside the directory may not lead out of it.
      file = std::filesystem::weakly_canonical(root / sp->relative, ec);
      auto inside = file.lexically_relative(root);
      found = !ec && !inside.empty() && *inside.begin() != ".." &&
              std::filesystem::is_regular_file(file, ec);
    }
    if (!found) {
      // A missing asset is a 404 (a stale page must not get HTML for its script); any other
      // path is a client-side route: the SPA's index.html answers it.
      if (sp->hashed_asset || sp->looks_like_file) {
        return http::Response::Error(404, "file not found");
      }
      file = root / "index.html";
    }
    const bool immutable = found && sp->hashed_asset;
    std::string etag;
    if (!immutable) {
      auto size = std::filesystem::file_size(file, ec);
      auto mtime = std::filesystem::last_write_time(file, ec);
      if (!ec) {
        char tag[48];
        std::snprintf(tag, sizeof tag, "W/\"%jx-%jx\"", static_cast<uintmax_t>(size),
                      static_cast<uintmax_t>(mtime.time_since_epoch().count()));
        etag = tag;
        if (req.Header("If-None-Match") == etag) {
          http::Response resp;
          resp.status = 304;
          resp.headers.emplace_back("ETag", etag);
          resp.headers.emplace_back("Cache-Control", "no-cache");
          return resp;
        }
      }
    }
    auto body = ReadFile(file, max_file_bytes);
    if (!body) {
      return found ? http::Response::Error(404, "file not readable or larger than allowed")
                   : http::Response::Error(404,
                                           "dashboard not built: DASHBOARD_DIR has no "
                                           "index.html");
    }
    http::Response resp;
    resp.content_type = std::string(MimeType(file));
    resp.body = std::move(*body);
    resp.headers.emplace_back("X-Content-Type-Options", "nosniff");
    // Vite names files under assets/ by their content hash: cache them for good. Everything else
    // (index.html above all) is revalidated, so a new build is picked up at once.
    resp.headers.emplace_back("Cache-Control",
                              immutable ? "public, max-age=31536000, immutable" : "no-cache");
    if (!etag.empty()) resp.headers.emplace_back("ETag", etag);
    if (file.filename() == "index.html") {
      resp.headers.emplace_back(
          "Content-Security-Policy",
          "default-src 'self'; script-src 'self'; style-src 'self' "
          "'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: "
          "wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'");
      resp.headers.emplace_back("Referrer-Policy", "same-origin");
    }
    return resp;
  });
}

void App::RegisterOps(http::Router& r) {
  r.Add("GET", "/healthz",
        Sync([](http::Request&) { return http::Response::Json(200, R"({"status":"ok"})"); }));

  r.Add("GET", "/readyz", Sync([this](http::Request&) {
          Status s = store_->Ping();
          if (!s.ok) {
            auto resp = http::Response::Error(503, "database unavailable");
            resp.headers.emplace_back("Retry-After", "5");
            return resp;
          }
          return http::Response::Json(
              200, R"({"status":"ready","database":")" + store_->Backend() + "\"}");
        }));

  r.Add("GET", "/metrics", Sync([this](http::Request& req) -> http::Response {
          if (!cfg_.metrics_token.empty()) {
            std::string_view h = req.Header("Authorization");
            if (h.size() < 8 || !crypto::ConstantTimeEquals(h.substr(7), cfg_.metrics_token)) {
              return http::Response::Error(401, "metrics token required");
            }
          }
          std::string out;
          auto metric = [&out](const char* name, const char* type, const char* help) {
            out += "# HELP ";
            out += name;
            out += ' ';
            out += help;
            out += "\n# TYPE ";
            out += name;
            out += ' ';
            out += type;
            out += '\n';
          };
          auto line = [&out](const std::string& series, double v) {
            char buf[64];
            std::snprintf(buf, sizeof buf, " %.17g\n", v);
            out += series;
            out += buf;
          };
          metric("boing_build_info", "gauge", "Build information.");
          line(std::string("boing_build_info{version=\"") + BOING_VERSION + "\",database=\"" +
                   store_->Backend() + "\"}",
               1);
          metric("boing_ingest_events_total", "counter", "Events by ingest outcome.");
          line("boing_ingest_events_total{result=\"accepted\"}", writer_->committed.load());
          line("boing_ingest_events_total{result=\"duplicate\"}", writer_->duplicates.load());
          line("boing_ingest_events_total{result=\"rejected\"}", ingest_rejected.load());
          metric("boing_ingest_requests_total", "counter", "Ingest requests and messages.");
          line("boing_ingest_requests_total", ingest_requests.load());
          metric("boing_ingest_queue_events", "gauge", "Events waiting for the group commit.");
          line("boing_ingest_queue_events", static_cast<double>(writer_->QueueDepth()));
          metric("boing_ingest_commits_total", "counter", "Group commits.");
          line("boing_ingest_commits_total", writer_->commits.load());
          metric("boing_ingest_commit_failures_total", "counter", "Failed group commits.");
          line("boing_ingest_commit_failures_total", writer_->failures.load());
          metric("boing_ingest_commit_seconds_total", "counter", "Time spent in group commits.");
          line("boing_ingest_commit_seconds_total", writer_->commit_micros.load() / 1e6);
          metric("boing_detection_events_total", "counter", "Events run through detection.");
          line("boing_detection_events_total", detection_->processed.load());
          metric("boing_detection_dropped_total", "counter",
                 "Committed events that skipped detection because its queue was full.");
          line("boing_detection_dropped_total", detection_->dropped.load());
          metric("boing_detection_queue_events", "gauge", "Events waiting for detection.");
          line("boing_detection_queue_events", static_cast<double>(detection_->QueueDepth()));
          if (bus_) out += bus_->MetricsText();
          metric("boing_findings_total", "counter", "Findings stored.");
          line("boing_findings_total", detection_->findings.load());
          metric("boing_findings_store_failures_total", "counter", "Failed writes of findings.");
          line("boing_findings_store_failures_total", detection_->store_failures.load());
          metric("boing_detection_state_entries", "gauge", "Live entries in detection state.");
          line("boing_detection_state_entries{table=\"actors\"}", detection_->actors.load());
          line("boing_detection_state_entries{table=\"templates\"}", detection_->templates.load());
          line("boing_detection_state_entries{table=\"geo_identities\"}",
               detection_->geo_identities.load());
          metric("boing_geoip_lookups_total", "counter",
                 "IP geolocation lookups; outcome unknown = the database lacks the address.");
          line("boing_geoip_lookups_total{outcome=\"found\"}",
               detection_->geo_lookups.load() - detection_->geo_unknown.load());
          line("boing_geoip_lookups_total{outcome=\"unknown\"}", detection_->geo_unknown.load());
          metric("boing_detection_scan_memo_hits_total", "counter",
                 "Content values (path, parameters, headers, body) whose verdict from an earlier "
                 "identical value was reused instead of scanning again.");
          line("boing_detection_scan_memo_hits_total", detection_->scan_memo_hits.load());
          metric("boing_detection_state_evictions_total", "counter",
                 "Detection state entries evicted to stay within bounds.");
          line("boing_detection_state_evictions_total", detection_->evictions.load());
          metric("boing_detection_model_save_failures_total", "counter",
                 "Anomaly models trained but not written to the model directory.");
          line("boing_detection_model_save_failures_total", detection_->model_save_failures.load());
          out += LlmMetricsText(detection_->llm_stats());
          metric("boing_alerts_created_total", "counter", "Alerts opened.");
          line("boing_alerts_created_total", alerts_->created_total());
          metric("boing_alerts_escalated_total", "counter",
                 "Alerts notified again because a finding raised their severity.");
          line("boing_alerts_escalated_total", alerts_->escalated_total());
          metric("boing_alerts_active", "gauge", "Open and acknowledged alerts.");
          line("boing_alerts_active", static_cast<double>(alerts_->ActiveCount()));
          metric("boing_notifications_total", "counter", "Notification attempts by outcome.");
          line("boing_notifications_total{outcome=\"sent\"}", notifier_->sent.load());
          line("boing_notifications_total{outcome=\"retried\"}", notifier_->retried.load());
          line("boing_notifications_total{outcome=\"failed\"}", notifier_->failed.load());
          line("boing_notifications_total{outcome=\"muted\"}", notifier_->muted.load());
          metric("boing_notification_queue", "gauge",
                 "Alerts waiting for their deliveries to be recorded, and deliveries waiting to be "
                 "sent or retried.");
          line("boing_notification_queue", static_cast<double>(notifier_->QueueDepth()));
          metric("boing_ws_clients_total", "counter", "Live-stream WebSocket clients accepted.");
          line("boing_ws_clients_total", hub_->connected.load());
          metric("boing_ws_clients", "gauge", "Live-stream WebSocket clients connected now.");
          for (auto [t, name] :
               {std::pair{Topic::kAlerts, "alerts"}, std::pair{Topic::kStream, "stream"},
                std::pair{Topic::kMetrics, "metrics"}}) {
            line(std::string("boing_ws_clients{topic=\"") + name + "\"}",
                 static_cast<double>(hub_->Subscribers(t)));
          }
          metric("boing_ws_dropped_total", "counter",
                 "Live-stream WebSocket clients dropped for not keeping up.");
          line("boing_ws_dropped_total", hub_->dropped.load());
          metric("boing_ws_messages_total", "counter", "Live-stream messages sent.");
          line("boing_ws_messages_total", hub_->sent.load());
          metric("boing_auth_failures_total", "counter", "Rejected authentications.");
          line("boing_auth_failures_total", auth_failures.load());
          metric("boing_http_responses_total", "counter", "HTTP responses by status class.");
          for (int c = 1; c <= 5; ++c) {
            line("boing_http_responses_total{code=\"" + std::to_string(c) + "xx\"}",
                 http_responses[c].load());
          }
          http::Response resp;
          resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
          resp.body = std::move(out);
          return resp;
        }));

  // The dashboard (SPA): files of DASHBOARD_DIR, and index.html for client-side routes.
  if (!cfg_.dashboard_dir.empty()) r.SetFallback(DashboardHandler(cfg_.dashboard_dir));
}

}  // namespace boing
