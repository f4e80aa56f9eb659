// Configuration: detector settings, white/black lists, and the audit log.
#include "app.h"
#include "boing/net.h"

namespace boing {
namespace {

Json DetectorJson(const DetectorConfig& d, const std::string& geo_unavailable,
                  const DetectionWorker* detection) {
  Json config = Json::parse(d.config_json, nullptr, false);
  // Why an implemented detector cannot run here (its database is missing, or the LLM endpoint
  // keeps failing), or null.
  Json unavailable;
  if (!geo_unavailable.empty() &&
      std::find(GeoDetectors().begin(), GeoDetectors().end(), d.id) != GeoDetectors().end()) {
    unavailable = geo_unavailable;
  }
  if (d.id == "llm" && d.enabled && detection) {
    if (std::string why = detection->LlmUnavailable(); !why.empty()) unavailable = why;
  }
  return {{"id", d.id},
          {"name", d.name},
          {"stage", d.stage},
          {"enabled", d.enabled},
          {"severity", d.severity},
          {"config", config.is_discarded() ? Json::object() : config},
          {"implemented",
           std::find(detect::ImplementedDetectors().begin(), detect::ImplementedDetectors().end(),
                     d.id) != detect::ImplementedDetectors().end()},
          {"unavailable", unavailable},
          {"updated_at", d.updated_at},
          {"updated_by", d.updated_by}};
}

Json EntryJson(const ListEntry& e) {
  return {{"id", e.id},
          {"list", e.list},
          {"kind", e.kind},
          {"value", e.value},
          {"reason", e.reason},
          {"api_id", e.api_id},
          {"created_by", e.created_by},
          {"created_at", e.created_at},
          {"expires_at", e.expires_at}};
}

bool ValidSeverity(const std::string& s) {
  return s == "info" || s == "low" || s == "medium" || s == "high" || s == "critical";
}

}  // namespace

void App::RegisterConfig(http::Router& r) {
  r.Add("GET", "/api/detectors",
        Authed(Access::kUser, [this](http::Request&, const Principal&) -> http::Response {
          Json list = Json::array();
          for (const auto& d : store_->ListDetectors())
            list.push_back(DetectorJson(d, geo_unavailable_, detection_.get()));
          return http::Response::Json(200, Json{{"detectors", list}}.dump());
        }));

  r.Add("PUT", "/api/detectors/:id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          auto d = store_->GetDetector(req.params["id"]);
          if (!d) return http::Response::Error(404, "detector not found");
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          Json changed = Json::object();
          if (body.contains("enabled")) {
            if (!body["enabled"].is_boolean()) {
              return http::Response::Error(400, "enabled must be a boolean", "enabled");
            }
            d->enabled = body["enabled"].get<bool>();
            changed["enabled"] = d->enabled;
          }
          if (body.contains("severity")) {
            if (!body["severity"].is_string() ||
                !ValidSeverity(body["severity"].get<std::string>())) {
              return http::Response::Error(
                  400, "severity must be one of info, low, medium, high, critical", "severity");
            }
            d->severity = body["severity"].get<std::string>();
            changed["severity"] = d->severity;
          }
          if (body.contains("config")) {
            if (!body["config"].is_object()) {
              return http::Response::Error(400, "config must be an object", "config");
            }
            // Merge: keys given replace stored ones; the types of known keys must not change.
            Json current = Json::parse(d->config_json, nullptr, false);
            if (current.is_discarded()) current = Json::object();
            for (auto it = body["config"].begin(); it != body["config"].end(); ++it) {
              if (current.contains(it.key()) &&
                  current[it.key()].is_number() != it.value().is_number()) {
                return http::Response::Error(400, "config." + it.key() + " must be a number",
                                             "config." + it.key());
              }
              if (it.value().is_number() && it.value().get<double>() < 0) {
                return http::Response::Error(400, "config." + it.key() + " must not be negative",
                                             "config." + it.key());
              }
              current[it.key()] = it.value();
            }
            if (d->id == "llm") {
              std::string field, why;
              if (!ValidateLlmConfig(current, &field, &why))
                return http::Response::Error(400, why, field);
            }
            d->config_json = current.dump();
            if (d->config_json.size() > 64 * 1024) {
              return http::Response::Error(400, "config exceeds 65536 bytes", "config");
            }
            changed["config"] = body["config"];
          }
          d->updated_at = NowSeconds();
          d->updated_by = p.user.id;
          Status s = store_->UpdateDetector(*d);
          if (!s.ok) return StoreError(s);
          ReloadDetection();
          Audit(p, req, "detector.update", "detector:" + d->id, changed);
          return http::Response::Json(200,
                                      DetectorJson(*d, geo_unavailable_, detection_.get()).dump());
        }));

  for (std::string list : {"whitelist", "blacklist"}) {
    r.Add("POST", "/api/" + list,
          AuthedJson(
              Access::kUser,
              [this, list](http::Request& req, const Principal& p,
                           const Json& body) -> http::Response {
                ListEntry e;
                e.list = list;
                if (body.contains("kind") && body["kind"].is_string()) e.kind = body["kind"];
                if (!body.contains("kind") || !body["kind"].is_string() ||
                    (e.kind != "ip" && e.kind != "cidr" && e.kind != "identity")) {
                  return http::Response::Error(400, "kind must be ip, cidr or identity", "kind");
                }
                if (!body.contains("value") || !body["value"].is_string()) {
                  return http::Response::Error(400, "value is required", "value");
                }
                e.value = body["value"].get<std::string>();
                if ((e.kind == "ip" && !IsValidIp(e.value)) ||
                    (e.kind == "cidr" && !IsValidCidr(e.value)) ||
                    (e.kind == "identity" && (e.value.empty() || e.value.size() > 128))) {
                  return http::Response::Error(400, "value is not a valid " + e.kind, "value");
                }
                if (body.contains("reason")) {
                  if (!body["reason"].is_string() ||
                      body["reason"].get<std::string>().size() > 1000) {
                    return http::Response::Error(
                        400, "reason must be a string of at most 1000 characters", "reason");
                  }
                  e.reason = body["reason"].get<std::string>();
                }
                if (body.contains("api_id") && !body["api_id"].is_null()) {
                  if (!body["api_id"].is_number_integer()) {
                    return http::Response::Error(400, "api_id must be an integer", "api_id");
                  }
                  e.api_id = body["api_id"].get<int64_t>();
                }
                if (e.api_id != 0) {
                  auto api = store_->GetApi(e.api_id);
                  if (!api || !CanAccessApi(p, *api)) {
                    return http::Response::Error(404, "API not found", "api_id");
                  }
                } else if (!p.IsAdmin()) {
                  return http::Response::Error(403, "only admins manage global entries; set api_id",
                                               "api_id");
                }
                e.created_at = NowSeconds();
                if (body.contains("ttl_seconds")) {
                  if (!body["ttl_seconds"].is_number_integer() ||
                      body["ttl_seconds"].get<int64_t>() <= 0) {
                    return http::Response::Error(400, "ttl_seconds must be a positive integer",
                                                 "ttl_seconds");
                  }
                  e.expires_at = e.created_at + body["ttl_seconds"].get<int64_t>();
                } else if (body.contains("expires_at") && !body["expires_at"].is_null()) {
                  if (!body["expires_at"].is_number_integer() ||
                      body["expires_at"].get<int64_t>() <= e.created_at) {
                    return http::Response::Error(400, "expires_at must be a future Unix time",
                                                 "expires_at");
                  }
                  e.expires_at = body["expires_at"].get<int64_t>();
                }
                e.created_by = p.user.id;
                Status s = store_->AddListEntry(e);
                if (!s.ok) return StoreError(s);
                ReloadDetection();
                Audit(p, req, list + ".add", list + ":" + std::to_string(e.id),
                      {{"kind", e.kind}, {"value", e.value}, {"api_id", e.api_id}});
                return http::Response::Json(201, EntryJson(e).dump());
              }));

    r.Add("GET", "/api/" + list,
          Authed(Access::kUser, [this, list](http::Request&, const Principal& p) -> http::Response {
            auto visible = VisibleApis(p);
            const int64_t now = NowSeconds();
            Json out = Json::array();
            for (const auto& e : store_->ListEntries(list)) {
              if (e.expires_at != 0 && e.expires_at <= now) continue;
              if (visible && e.api_id != 0 &&
                  std::find(visible->begin(), visible->end(), e.api_id) == visible->end()) {
                continue;
              }
              out.push_back(EntryJson(e));
            }
            return http::Response::Json(200, Json{{"entries", out}}.dump());
          }));

    r.Add("DELETE", "/api/" + list + "/:id",
          Authed(Access::kUser,
                 [this, list](http::Request& req, const Principal& p) -> http::Response {
                   auto id = ParseId(req.params["id"]);
                   auto e = id ? store_->GetListEntry(*id) : std::nullopt;
                   if (!e || e->list != list) return http::Response::Error(404, "entry not found");
                   if (!p.IsAdmin()) {
                     auto api = e->api_id ? store_->GetApi(e->api_id) : std::nullopt;
                     if (!api || !CanAccessApi(p, *api))
                       return http::Response::Error(404, "entry not found");
                   }
                   Status s = store_->DeleteListEntry(list, e->id);
                   if (!s.ok) return StoreError(s);
                   ReloadDetection();
                   Audit(p, req, list + ".delete", list + ":" + std::to_string(e->id),
                         {{"kind", e->kind}, {"value", e->value}});
                   return http::Response::Json(204, "");
                 }));
  }

  r.Add("GET", "/api/audit",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal&) -> http::Response {
          int limit = 100;
          int64_t before = 0;
          if (auto v = req.QueryParam("limit")) {
            auto n = ParseId(*v);
            if (!n || *n > 1000)
              return http::Response::Error(400, "limit must be 1 to 1000", "limit");
            limit = static_cast<int>(*n);
          }
          if (auto v = req.QueryParam("before_id")) {
            auto n = ParseId(*v);
            if (!n)
              return http::Response::Error(400, "before_id must be a positive integer",
                                           "before_id");
            before = *n;
          }
          Json out = Json::array();
          for (const auto& a : store_->ListAudit(limit, before)) {
            Json details = Json::parse(a.details_json, nullptr, false);
            out.push_back({{"id", a.id},
                           {"ts_ms", a.ts_ms},
                           {"user_id", a.user_id},
                           {"username", a.username},
                           {"action", a.action},
                           {"target", a.target},
                           {"client_ip", a.client_ip},
                           {"details", details.is_discarded() ? Json::object() : details}});
          }
          return http::Response::Json(200, Json{{"entries", out}}.dump());
        }));
}

}  // namespace boing
