// Alerts, matcher mutes and the live WebSocket streams (/ws/alerts, /ws/stream, /ws/metrics).
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "app.h"
#include "boing/detect/text.h"
#include "boing/log.h"

namespace boing {

namespace {

std::string AlertCursor(const AlertRecord& a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g_%lld", a.last_seen, static_cast<long long>(a.id));
  return buf;
}

// Optional string field of a body; false (with `err`) when present but not a string or too long.
bool OptString(const Json& body, const char* name, size_t max, std::string* out,
               std::optional<http::Response>* err) {
  if (!body.contains(name) || body[name].is_null()) return true;
  if (!body[name].is_string() || body[name].get_ref<const std::string&>().size() > max) {
    *err = http::Response::Error(
        400, std::string(name) + " must be a string of at most " + std::to_string(max) + " bytes",
        name);
    return false;
  }
  *out = body[name].get<std::string>();
  return true;
}

// "duration_seconds" or "until" of a mute body as an absolute expiry (0 = unmute when allowed).
std::optional<http::Response> MuteExpiry(const Json& body, int64_t now, bool allow_zero,
                                         int64_t* until) {
  if (body.contains("duration_seconds")) {
    const Json& d = body["duration_seconds"];
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > 86400LL * 3650 ||
        (!allow_zero && d.get<int64_t>() == 0)) {
      return http::Response::Error(400, "duration_seconds must be a positive whole number",
                                   "duration_seconds");
    }
    int64_t v = d.get<int64_t>();
    *until = v == 0 ? 0 : now + v;
    return std::nullopt;
  }
  if (body.contains("until")) {
    const Json& u = body["until"];
    if (!u.is_number() || !std::isfinite(u.get<double>()) || u.get<double>() <= now ||
        u.get<double>() > 1e11) {
      return http::Response::Error(400, "until must be a future Unix time in seconds", "until");
    }
    *until = static_cast<int64_t>(u.get<double>());
    return std::nullopt;
  }
  return http::Response::Error(400, "duration_seconds or until is required", "duration_seconds");
}

}  // namespace

std::string App::ApiName(int64_t api_id) {
  if (api_id == 0) return "";
  {
    std::shared_lock lock(cache_mu_);
    if (auto it = api_names_.find(api_id); it != api_names_.end()) return it->second;
  }
  auto api = store_->GetApi(api_id);
  std::string name = api ? api->name : "";
  std::unique_lock lock(cache_mu_);
  if (api_names_.size() > 100000) api_names_.clear();
  api_names_[api_id] = name;
  return name;
}

Json App::AlertOut(const AlertRecord& a) { return AlertJson(a, ApiName(a.api_id), NowSeconds()); }

// The alert when the caller may see it; otherwise a 404 response.
std::variant<AlertRecord, http::Response> App::VisibleAlert(const Principal& p,
                                                            const std::string& id_text) {
  auto id = ParseId(id_text);
  std::optional<AlertRecord> a = id ? store_->GetAlert(*id) : std::nullopt;
  if (!a) return http::Response::Error(404, "alert not found");
  if (!p.IsAdmin()) {
    auto api = store_->GetApi(a->api_id);
    if (!api || !CanAccessApi(p, *api)) return http::Response::Error(404, "alert not found");
  }
  return *a;
}

Json App::OpenBySeverity(const std::optional<std::vector<int64_t>>& apis) {
  AlertFilter f;
  if (apis) {
    f.api_ids = *apis;
    f.restrict_to_apis = true;
  }
  Json by = {{"info", 0}, {"low", 0}, {"medium", 0}, {"high", 0}, {"critical", 0}};
  int64_t open = 0, acked = 0;
  for (const auto& c : store_->CountActiveAlerts(f)) {
    if (c.status == "open") {
      open += c.count;
      if (by.contains(c.severity)) by[c.severity] = by[c.severity].get<int64_t>() + c.count;
    } else {
      acked += c.count;
    }
  }
  return {{"open_by_severity", by}, {"open", open}, {"acknowledged", acked}};
}

void App::RegisterAlerts(http::Router& r) {
  r.Add("GET", "/api/alerts",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          AlertFilter f;
          double limit = 100;
          if (auto e = ScopeToApis(req, p, f.api_ids, f.restrict_to_apis)) return *e;
          f.status = req.QueryParam("status").value_or("");
          if (!f.status.empty() && f.status != "open" && f.status != "acknowledged" &&
              f.status != "resolved") {
            return http::Response::Error(400, "status must be open, acknowledged or resolved",
                                         "status");
          }
          if (auto sev = req.QueryParam("severity"); sev && !sev->empty()) {
            detect::Severity s;
            if (!detect::ParseSeverity(*sev, &s)) {
              return http::Response::Error(
                  400, "severity must be one of info, low, medium, high, critical", "severity");
            }
            f.min_severity_rank = static_cast<int>(s);
          }
          f.detector = req.QueryParam("detector").value_or("");
          f.actor = req.QueryParam("actor").value_or("");
          if (!QueryNumber(req, "from", &f.from_ts))
            return http::Response::Error(400, "from must be a number", "from");
          if (!QueryNumber(req, "to", &f.to_ts))
            return http::Response::Error(400, "to must be a number", "to");
          if (!QueryNumber(req, "limit", &limit) || limit < 1 || limit > 1000) {
            return http::Response::Error(400, "limit must be 1 to 1000", "limit");
          }
          f.limit = static_cast<int>(limit);
          if (auto c = req.QueryParam("cursor"); c && !c->empty()) {
            size_t us = c->find('_');
            char* end = nullptr;
            double ts = std::strtod(c->c_str(), &end);
            auto id = us == std::string::npos ? std::nullopt : ParseId(c->substr(us + 1));
            if (!id || end != c->c_str() + us || !std::isfinite(ts)) {
              return http::Response::Error(400, "cursor is not valid", "cursor");
            }
            f.before_ts = ts;
            f.before_id = *id;
          }
          auto rows = store_->QueryAlerts(f);
          Json list = Json::array();
          for (const auto& a : rows) list.push_back(AlertOut(a));
          Json out = {{"alerts", list}, {"next_cursor", nullptr}};
          if (static_cast<int>(rows.size()) == f.limit)
            out["next_cursor"] = AlertCursor(rows.back());
          return http::Response::Json(200,
                                      out.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));

  r.Add("GET", "/api/alerts/summary",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          std::vector<int64_t> ids;
          bool restrict_to_apis = false;
          if (auto e = ScopeToApis(req, p, ids, restrict_to_apis)) return *e;
          std::optional<std::vector<int64_t>> apis;
          if (restrict_to_apis) apis = std::move(ids);
          return http::Response::Json(200, OpenBySeverity(apis).dump());
        }));

  r.Add("GET", "/api/alerts/:id",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          auto v = VisibleAlert(p, req.params["id"]);
          if (auto* e = std::get_if<http::Response>(&v)) return *e;
          const auto& a = std::get<AlertRecord>(v);
          Json out = AlertOut(a);
          FindingFilter f;
          f.api_ids = {a.api_id};
          f.restrict_to_apis = true;
          f.detector = a.detector;
          f.actor = a.actor;
          f.from_ts = a.first_seen;
          f.to_ts = std::nextafter(a.last_seen, 1e300);
          f.limit = 1000;
          Json findings = Json::array();
          std::vector<int64_t> event_ids;
          for (const auto& fr : store_->QueryFindings(f)) {
            if (fr.endpoint_template != a.endpoint_template) continue;
            if (findings.size() >= 100) break;
            findings.push_back(FindingRecordJson(fr));
            if (fr.event_id > 0 &&
                std::find(event_ids.begin(), event_ids.end(), fr.event_id) == event_ids.end()) {
              event_ids.push_back(fr.event_id);
            }
          }
          Json events = Json::array();
          for (int64_t id : event_ids) {
            if (auto e = store_->GetEvent(id)) events.push_back(EventJson(*e));
          }
          out["findings"] = std::move(findings);
          out["events"] = std::move(events);
          return http::Response::Json(200,
                                      out.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));

  auto change = [this](const char* what) {
    std::string action = what;
    return AuthedJson(
        Access::kUser,
        [this, action](http::Request& req, const Principal& p, const Json& body) -> http::Response {
          auto v = VisibleAlert(p, req.params["id"]);
          if (auto* e = std::get_if<http::Response>(&v)) return *e;
          const auto& a = std::get<AlertRecord>(v);
          std::optional<http::Response> err;
          std::string comment;
          Json details = Json::object();
          Status st;
          std::optional<AlertRecord> out;
          if (action == "mute") {
            int64_t until = 0;
            if (auto bad = MuteExpiry(body, NowSeconds(), true, &until)) return *bad;
            out = alerts_->Mute(a.id, until, &st);
            details["muted_until"] = until;
          } else {
            if (!OptString(body, "comment", 1000, &comment, &err)) return *err;
            out = action == "ack" ? alerts_->Acknowledge(a.id, p.user.username, comment, &st)
                                  : alerts_->Resolve(a.id, p.user.username, comment, &st);
            if (!comment.empty()) details["comment"] = comment;
          }
          if (!out) {
            if (st.conflict) return http::Response::Error(409, st.message);
            if (!st.ok) return StoreError(st);
            return http::Response::Error(404, "alert not found");
          }
          Audit(p, req, "alert." + action, "alert:" + std::to_string(a.id), details);
          return http::Response::Json(
              200, AlertOut(*out).dump(-1, ' ', false, Json::error_handler_t::replace));
        });
  };
  r.Add("POST", "/api/alerts/:id/ack", change("ack"));
  r.Add("POST", "/api/alerts/:id/resolve", change("resolve"));
  r.Add("PUT", "/api/alerts/:id/mute", change("mute"));

  r.Add("GET", "/api/alerts/:id/deliveries",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          auto v = VisibleAlert(p, req.params["id"]);
          if (auto* e = std::get_if<http::Response>(&v)) return *e;
          Json list = Json::array();
          for (const auto& d : store_->ListDeliveries(std::get<AlertRecord>(v).id)) {
            list.push_back({{"id", d.id},
                            {"channel_id", d.channel_id},
                            {"channel_name", d.channel_name},
                            {"kind", d.kind},
                            {"status", d.status},
                            {"attempts", d.attempts},
                            {"last_error", d.last_error},
                            {"created_at", d.created_at},
                            {"updated_at", d.updated_at}});
          }
          return http::Response::Json(
              200, Json{{"deliveries", list}}.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));

  // --- matcher mutes ---
  r.Add("POST", "/api/mutes",
        AuthedJson(
            Access::kUser,
            [this](http::Request& req, const Principal& p, const Json& body) -> http::Response {
              MuteRecord m;
              std::optional<http::Response> err;
              if (!OptString(body, "detector", 64, &m.detector, &err) ||
                  !OptString(body, "actor", 300, &m.actor, &err) ||
                  !OptString(body, "comment", 1000, &m.comment, &err)) {
                return *err;
              }
              if (body.contains("api_id") && !body["api_id"].is_null()) {
                if (!body["api_id"].is_number_integer() || body["api_id"].get<int64_t>() <= 0) {
                  return http::Response::Error(400, "api_id must be a positive integer", "api_id");
                }
                m.api_id = body["api_id"].get<int64_t>();
                auto api = store_->GetApi(m.api_id);
                if (!api || !CanAccessApi(p, *api)) {
                  return http::Response::Error(404, "API not found", "api_id");
                }
              } else if (!p.IsAdmin()) {
                // A user's mute must name one of their APIs: it cannot silence other owners'
                // alerts.
                return http::Response::Error(400, "api_id is required (one of your APIs)",
                                             "api_id");
              }
              if (m.detector.empty() && m.actor.empty() && m.api_id == 0) {
                return http::Response::Error(
                    400, "at least one of detector, actor, api_id is required", "detector");
              }
              const int64_t now = NowSeconds();
              if (auto bad = MuteExpiry(body, now, false, &m.expires_at)) return *bad;
              m.created_by = p.user.id;
              m.created_at = now;
              Status st = alerts_->AddMute(m);
              if (!st.ok) return StoreError(st);
              AnnounceSettingsChange();
              Audit(p, req, "mute.add", "mute:" + std::to_string(m.id), MuteJson(m));
              return http::Response::Json(
                  201, MuteJson(m).dump(-1, ' ', false, Json::error_handler_t::replace));
            }));
  r.Add("GET", "/api/mutes",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          const bool expired = req.QueryParam("include_expired").value_or("") == "true" ||
                               req.QueryParam("include_expired").value_or("") == "1";
          auto visible = VisibleApis(p);
          const int64_t now = NowSeconds();
          Json list = Json::array();
          for (const auto& m : store_->ListMutes()) {
            if (!expired && m.expires_at <= now) continue;
            if (visible && m.api_id != 0 &&
                std::find(visible->begin(), visible->end(), m.api_id) == visible->end()) {
              continue;
            }
            list.push_back(MuteJson(m));
          }
          return http::Response::Json(
              200, Json{{"mutes", list}}.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));
  r.Add("DELETE", "/api/mutes/:id",
        Authed(Access::kUser, [this](http::Request& req, const Principal& p) -> http::Response {
          auto id = ParseId(req.params["id"]);
          auto m = id ? store_->GetMute(*id) : std::nullopt;
          if (!m) return http::Response::Error(404, "mute not found");
          if (!p.IsAdmin() && m->created_by != p.user.id) {
            return http::Response::Error(403, "only the creator or an admin can delete a mute");
          }
          Status st = alerts_->DeleteMute(m->id);
          if (!st.ok) return StoreError(st);
          AnnounceSettingsChange();
          Audit(p, req, "mute.delete", "mute:" + std::to_string(m->id), MuteJson(*m));
          return http::Response::Json(204, "");
        }));

  // --- WebSocket streams ---
  auto authorize = [this](http::Request& req) -> std::optional<http::Response> {
    auto au = AuthenticateWs(req);
    if (auto* e = std::get_if<http::Response>(&au)) return *e;
    const Principal& p = std::get<Principal>(au);
    std::string api = req.QueryParam("api_id").value_or("");
    if (!api.empty()) {
      auto id = ParseId(api);
      if (!id) return http::Response::Error(400, "api_id must be a positive integer", "api_id");
      auto a = store_->GetApi(*id);
      if (!a || !CanAccessApi(p, *a)) return http::Response::Error(404, "API not found", "api_id");
    }
    if (auto kinds = req.QueryParam("kinds")) {
      std::string_view rest = *kinds;
      for (;;) {
        size_t comma = rest.find(',');
        std::string_view part = rest.substr(0, comma);
        if (part != "events" && part != "findings") {
          return http::Response::Error(400, "kinds must list events and/or findings", "kinds");
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    return std::nullopt;
  };
  auto serve = [this](Topic topic) {
    return [this, topic](http::Request& req, http::WsConnection& ws) -> asio::awaitable<void> {
      auto au = AuthenticateWs(req);
      if (!std::holds_alternative<Principal>(au)) co_return;
      const Principal& p = std::get<Principal>(au);
      auto c = std::make_shared<LiveHub::Client>();
      c->topic = topic;
      c->apis = VisibleApis(p);
      if (auto api = req.QueryParam("api_id"); api && !api->empty()) {
        c->apis = std::vector<int64_t>{ParseId(*api).value_or(0)};
      }
      if (auto kinds = req.QueryParam("kinds")) {
        c->events = kinds->find("events") != std::string::npos;
        c->findings = kinds->find("findings") != std::string::npos;
      }
      co_await hub_->Serve(std::move(c), ws);
    };
  };
  r.AddWebSocket("/ws/alerts", authorize, serve(Topic::kAlerts));
  r.AddWebSocket("/ws/stream", authorize, serve(Topic::kStream));
  r.AddWebSocket("/ws/metrics", authorize, serve(Topic::kMetrics));
}

App::AuthResult App::AuthenticateWs(const http::Request& req) {
  if (!req.Header("Authorization").empty()) return Authenticate(req, Access::kUser);
  auto token = req.QueryParam("token");
  if (!token || token->empty()) {
    ++auth_failures;
    return http::Response::Error(401, "missing token (?token= or Authorization: Bearer)");
  }
  http::Request copy;
  copy.client_ip = req.client_ip;
  copy.headers.emplace_back("Authorization", "Bearer " + *token);
  return Authenticate(copy, Access::kUser);
}

}  // namespace boing

namespace boing {

void App::PublishLive(Topic topic, int64_t api_id, char kind, const Json& msg, bool local,
                      bool remote) {
  auto text =
      std::make_shared<const std::string>(msg.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (local) hub_->Publish(topic, api_id, text, kind);
  if (remote) bus_->RelayLive(static_cast<int>(topic), api_id, kind, *text);
}

void App::PublishEvents(const std::vector<Event>& events) {
  if (hub_->HasSubscribers(Topic::kMetrics)) live_metrics_.Add(events);
  const bool local = hub_->HasSubscribers(Topic::kStream);
  const bool remote = bus_ && bus_->RemoteInterest(static_cast<int>(Topic::kStream));
  if (!local && !remote) return;
  std::string tmpl;
  for (const Event& e : events) {
    detect::TemplateOf(e.endpoint, tmpl);
    Json j = {{"type", "event"},
              {"event",
               {{"id", e.id},
                {"api_id", e.api_id},
                {"timestamp", e.timestamp},
                {"method", e.method},
                {"path", e.endpoint},
                {"endpoint_template", tmpl},
                {"status_code", e.status_code},
                {"latency_ms", e.latency_ms},
                {"client_ip", e.client_ip},
                {"identity", e.identity},
                {"user_agent", e.user_agent}}}};
    PublishLive(Topic::kStream, e.api_id, 'e', j, local, remote);
  }
}

void App::PublishFindings(const std::vector<FindingRecord>& findings) {
  const bool local = hub_->HasSubscribers(Topic::kStream);
  const bool remote = bus_ && bus_->RemoteInterest(static_cast<int>(Topic::kStream));
  if (!local && !remote) return;
  for (const auto& f : findings) {
    Json j = {{"type", "finding"}, {"finding", FindingRecordJson(f)}};
    PublishLive(Topic::kStream, f.api_id, 'f', j, local, remote);
  }
}

void App::TickerLoop() {
  constexpr int kSweepEverySeconds = 5;
  auto next = std::chrono::steady_clock::now();
  for (int tick = 0;; ++tick) {
    next += std::chrono::seconds(1);
    {
      std::unique_lock lock(ticker_mu_);
      if (ticker_cv_.wait_until(lock, next, [this] { return ticker_stop_; })) return;
    }
    if (tick % kSweepEverySeconds == 0) alerts_->Sweep();
    if (bus_) {
      FollowSettingsChanges();
      // Tell the other instances which live streams have clients here (they relay to us).
      std::vector<int> watched;
      for (Topic t : {Topic::kAlerts, Topic::kStream}) {
        if (hub_->HasSubscribers(t)) watched.push_back(static_cast<int>(t));
      }
      if (!watched.empty()) bus_->AnnounceInterest(watched);
    }
    auto per_api = live_metrics_.Take();
    auto clients = hub_->Clients(Topic::kMetrics);
    if (clients.empty()) continue;
    const int64_t ts = NowSeconds();
    // Clients with the same scope share one message.
    std::map<std::string, std::shared_ptr<const std::string>> by_scope;
    for (const auto& c : clients) {
      std::string scope = "all";
      if (c->apis) {
        scope.clear();
        for (int64_t id : *c->apis) scope += std::to_string(id) + ",";
      }
      auto& msg = by_scope[scope];
      if (!msg) {
        Json sev = OpenBySeverity(c->apis)["open_by_severity"];
        msg = std::make_shared<const std::string>(
            LiveMetrics::Message(per_api, c->apis, ts, sev.dump()));
      }
      hub_->Send(c, msg);
    }
  }
}

}  // namespace boing
