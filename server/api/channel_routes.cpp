// Notification channels (/api/channels): admin only; configurations (recipients, webhook URLs and
// signing secrets) stored Fernet-encrypted, masked in answers.
#include "app.h"
#include "boing/log.h"

namespace boing {

namespace {

// Validates name, kind, enabled, min_severity and api_ids of a POST/PUT body into `c`.
std::optional<http::Response> ChannelFields(const Json& body, bool create, ChannelRecord& c) {
  if (create || body.contains("name")) {
    if (!body.contains("name") || !body["name"].is_string() ||
        body["name"].get_ref<const std::string&>().empty() ||
        body["name"].get_ref<const std::string&>().size() > 128) {
      return http::Response::Error(400, "name must be 1 to 128 characters", "name");
    }
    c.name = body["name"].get<std::string>();
  }
  if (create || body.contains("kind")) {
    if (!body.contains("kind") || !body["kind"].is_string() ||
        (body["kind"] != "email" && body["kind"] != "webhook" && body["kind"] != "slack")) {
      return http::Response::Error(400, "kind must be email, webhook or slack", "kind");
    }
    c.kind = body["kind"].get<std::string>();
  }
  if (body.contains("enabled")) {
    if (!body["enabled"].is_boolean()) {
      return http::Response::Error(400, "enabled must be true or false", "enabled");
    }
    c.enabled = body["enabled"].get<bool>();
  }
  if (body.contains("min_severity")) {
    detect::Severity s;
    if (!body["min_severity"].is_string() ||
        !detect::ParseSeverity(body["min_severity"].get<std::string>(), &s)) {
      return http::Response::Error(
          400, "min_severity must be one of info, low, medium, high, critical", "min_severity");
    }
    c.min_severity = body["min_severity"].get<std::string>();
  }
  if (body.contains("api_ids")) {
    const Json& ids = body["api_ids"];
    bool ok = ids.is_array() && ids.size() <= 10000;
    for (const auto& id : ids) ok = ok && id.is_number_integer() && id.get<int64_t>() > 0;
    if (!ok) {
      return http::Response::Error(400, "api_ids must be a list of API ids ([] = all)", "api_ids");
    }
    c.api_ids_json = ids.dump();
  }
  return std::nullopt;
}

}  // namespace

Json App::ChannelOut(const ChannelRecord& c) {
  auto config = notifier_->Config(c);
  Json ids = Json::parse(c.api_ids_json, nullptr, false);
  return {{"id", c.id},
          {"name", c.name},
          {"kind", c.kind},
          {"enabled", c.enabled},
          {"min_severity", c.min_severity},
          {"api_ids", ids.is_array() ? ids : Json::array()},
          {"config", config ? MaskChannelConfig(c.kind, *config) : Json(nullptr)},
          {"created_at", c.created_at},
          {"updated_at", c.updated_at}};
}

Status App::SeedChannels() {
  if (store_->GetSetting("channels_seeded")) return Status::Ok();
  const int64_t now = NowSeconds();
  auto add = [&](const char* name, const char* kind, const Json& config) -> Status {
    if (std::string err = ValidateChannelConfig(kind, config); !err.empty()) {
      log::Warn("channel from the environment not created", {{"channel", name}, {"error", err}});
      return Status::Ok();
    }
    ChannelRecord c;
    c.name = name;
    c.kind = kind;
    c.config_enc = fernet_->Encrypt(config.dump());
    c.created_at = c.updated_at = now;
    Status st = store_->CreateChannel(c);
    if (st.ok) log::Info("notification channel created from the environment", {{"channel", name}});
    return st.conflict ? Status::Ok() : st;
  };
  if (!cfg_.smtp_host.empty() && !cfg_.alert_email_to.empty()) {
    if (Status st = add("email", "email", {{"recipients", cfg_.alert_email_to}}); !st.ok) return st;
  }
  if (!cfg_.webhook_url.empty()) {
    Json config = {{"url", cfg_.webhook_url}};
    if (!cfg_.webhook_secret.empty()) config["secret"] = cfg_.webhook_secret;
    if (Status st = add("webhook", "webhook", config); !st.ok) return st;
  }
  if (!cfg_.slack_webhook_url.empty()) {
    if (Status st = add("slack", "slack", {{"url", cfg_.slack_webhook_url}}); !st.ok) return st;
  }
  return store_->PutSetting("channels_seeded", "1");
}

void App::RegisterChannels(http::Router& r) {
  r.Add("POST", "/api/channels",
        AuthedJson(
            Access::kAdmin,
            [this](http::Request& req, const Principal& p, const Json& body) -> http::Response {
              ChannelRecord c;
              if (auto bad = ChannelFields(body, true, c)) return *bad;
              Json config = body.contains("config") ? body["config"] : Json();
              if (std::string err = ValidateChannelConfig(c.kind, config); !err.empty()) {
                return http::Response::Error(400, err, "config");
              }
              c.config_enc = fernet_->Encrypt(config.dump());
              c.created_at = c.updated_at = NowSeconds();
              Status st = store_->CreateChannel(c);
              if (!st.ok) return StoreError(st);
              Json out = ChannelOut(c);
              Audit(p, req, "channel.create", "channel:" + std::to_string(c.id),
                    {{"name", c.name}, {"kind", c.kind}, {"config", out["config"]}});
              return http::Response::Json(201,
                                          out.dump(-1, ' ', false, Json::error_handler_t::replace));
            }));
  r.Add("GET", "/api/channels",
        Authed(Access::kAdmin, [this](http::Request&, const Principal&) -> http::Response {
          Json list = Json::array();
          for (const auto& c : store_->ListChannels()) list.push_back(ChannelOut(c));
          return http::Response::Json(
              200, Json{{"channels", list}}.dump(-1, ' ', false, Json::error_handler_t::replace));
        }));
  r.Add("GET", "/api/channels/:id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal&) -> http::Response {
          auto id = ParseId(req.params["id"]);
          auto c = id ? store_->GetChannel(*id) : std::nullopt;
          if (!c) return http::Response::Error(404, "channel not found");
          return http::Response::Json(
              200, ChannelOut(*c).dump(-1, ' ', false, Json::error_handler_t::replace));
        }));
  r.Add("PUT", "/api/channels/:id",
        AuthedJson(
            Access::kAdmin,
            [this](http::Request& req, const Principal& p, const Json& body) -> http::Response {
              auto id = ParseId(req.params["id"]);
              auto c = id ? store_->GetChannel(*id) : std::nullopt;
              if (!c) return http::Response::Error(404, "channel not found");
              const std::string old_kind = c->kind;
              if (auto bad = ChannelFields(body, false, *c)) return *bad;
              Json config = notifier_->Config(*c).value_or(Json::object());
              if (body.contains("config")) {
                if (!body["config"].is_object()) {
                  return http::Response::Error(400, "config must be an object", "config");
                }
                // Fields left out keep their value (answers mask the URL and secret, so a client
                // editing other fields need not know them); null removes one.
                if (c->kind != old_kind) config = Json::object();
                for (auto& [k, v] : body["config"].items()) {
                  if (v.is_null()) {
                    config.erase(k);
                  } else {
                    config[k] = v;
                  }
                }
              } else if (c->kind != old_kind) {
                return http::Response::Error(400, "a new kind needs a new config", "config");
              }
              if (std::string err = ValidateChannelConfig(c->kind, config); !err.empty()) {
                return http::Response::Error(400, err, "config");
              }
              c->config_enc = fernet_->Encrypt(config.dump());
              c->updated_at = NowSeconds();
              Status st = store_->UpdateChannel(*c);
              if (!st.ok) return StoreError(st);
              Json out = ChannelOut(*c);
              Audit(p, req, "channel.update", "channel:" + std::to_string(c->id),
                    {{"name", c->name},
                     {"kind", c->kind},
                     {"enabled", c->enabled},
                     {"min_severity", c->min_severity},
                     {"config", out["config"]}});
              return http::Response::Json(200,
                                          out.dump(-1, ' ', false, Json::error_handler_t::replace));
            }));
  r.Add("DELETE", "/api/channels/:id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          auto id = ParseId(req.params["id"]);
          auto c = id ? store_->GetChannel(*id) : std::nullopt;
          if (!c) return http::Response::Error(404, "channel not found");
          Status st = store_->DeleteChannel(c->id);
          if (!st.ok) return StoreError(st);
          Audit(p, req, "channel.delete", "channel:" + std::to_string(c->id), {{"name", c->name}});
          return http::Response::Json(204, "");
        }));
  r.Add("POST", "/api/channels/:id/test",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          auto id = ParseId(req.params["id"]);
          auto c = id ? store_->GetChannel(*id) : std::nullopt;
          if (!c) return http::Response::Error(404, "channel not found");
          if (!notifier_->Test(*c)) {
            return http::Response::Error(503, "delivery queue full or channel undecryptable");
          }
          Audit(p, req, "channel.test", "channel:" + std::to_string(c->id), {{"name", c->name}});
          return http::Response::Json(202, R"({"status":"queued"})");
        }));
}

}  // namespace boing
