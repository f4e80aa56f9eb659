// Operations: liveness, readiness, Prometheus metrics, and the dashboard's static files.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app.h"

namespace boing {
namespace {

std::string_view MimeType(const std::filesystem::path& p) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"}};
  std::string ext = p.extension().string();
  for (auto [e, t] : kTypes) {
    if (ext == e) return t;
  }
  return "application/octet-stream";
}

std::optional<std::string> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

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
          metric("boing_findings_total", "counter", "Findings stored.");
          line("boing_findings_total", detection_->findings.load());
          metric("boing_findings_store_failures_total", "counter", "Failed writes of findings.");
          line("boing_findings_store_failures_total", detection_->store_failures.load());
          metric("boing_detection_state_entries", "gauge", "Live entries in detection state.");
          line("boing_detection_state_entries{table=\"actors\"}", detection_->actors.load());
          line("boing_detection_state_entries{table=\"templates\"}", detection_->templates.load());
          metric("boing_detection_state_evictions_total", "counter",
                 "Detection state entries evicted to stay within bounds.");
          line("boing_detection_state_evictions_total", detection_->evictions.load());
          metric("boing_alerts_created_total", "counter", "Alerts opened.");
          line("boing_alerts_created_total", alerts_->created_total());
          metric("boing_alerts_active", "gauge", "Open and acknowledged alerts.");
          line("boing_alerts_active", static_cast<double>(alerts_->ActiveCount()));
          metric("boing_notifications_total", "counter", "Notification attempts by outcome.");
          line("boing_notifications_total{outcome=\"sent\"}", notifier_->sent.load());
          line("boing_notifications_total{outcome=\"retried\"}", notifier_->retried.load());
          line("boing_notifications_total{outcome=\"failed\"}", notifier_->failed.load());
          line("boing_notifications_total{outcome=\"muted\"}", notifier_->muted.load());
          metric("boing_notification_queue", "gauge",
                 "Notifications waiting to be sent or retried.");
          line("boing_notification_queue", static_cast<double>(notifier_->QueueDepth()));
          metric("boing_ws_clients_total", "counter", "Live-stream WebSocket clients accepted.");
          line("boing_ws_clients_total", hub_->connected.load());
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

  if (cfg_.dashboard_dir.empty()) return;
  // SPA: a file that exists is served; any other GET path outside /api and /ws gets index.html.
  std::filesystem::path root = std::filesystem::weakly_canonical(cfg_.dashboard_dir);
  r.SetFallback(Sync([root](http::Request& req) -> http::Response {
    if (req.path.rfind("/api/", 0) == 0 || req.path.rfind("/ws/", 0) == 0) {
      return http::Response::Error(404, "not found");
    }
    std::error_code ec;
    auto p = std::filesystem::weakly_canonical(root / req.path.substr(1), ec);
    auto rel = p.lexically_relative(root);
    bool inside = !ec && !rel.empty() && *rel.begin() != "..";
    if (!inside || !std::filesystem::is_regular_file(p, ec)) p = root / "index.html";
    auto body = ReadFile(p);
    if (!body) return http::Response::Error(404, "dashboard not built");
    http::Response resp;
    resp.content_type = std::string(MimeType(p));
    resp.body = std::move(*body);
    if (p.filename() != "index.html") {
      resp.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    }
    return resp;
  }));
}

}  // namespace boing
