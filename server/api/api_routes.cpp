// Monitored APIs (ingest keys, encrypted upstream secrets, sensor match rules) and agents
// (enrolment, heartbeats, revocation).
#include "app.h"
#include "boing/log.h"

namespace boing {
namespace {

std::string NewIngestKey() { return "bk_" + crypto::RandomToken(24); }

std::string HashHex(std::string_view secret) { return crypto::Hex(crypto::Sha256(secret)); }

// An upstream credential (a token, a key); without a bound one API row could hold megabytes.
constexpr size_t kMaxUpstreamSecret = 4096;

std::optional<http::Response> UpstreamSecretTooLong(const std::string& secret) {
  if (secret.size() <= kMaxUpstreamSecret) return std::nullopt;
  return http::Response::Error(
      400, "upstream_secret exceeds " + std::to_string(kMaxUpstreamSecret) + " characters",
      "upstream_secret");
}

// Applies the writable fields of `body` to `a`. Returns an error response naming the field.
std::optional<http::Response> ApplyApiFields(const Json& body, Api& a, bool creating) {
  auto str = [&](const char* k, std::string& out, size_t max) -> std::optional<http::Response> {
    if (!body.contains(k)) return std::nullopt;
    if (!body[k].is_string())
      return http::Response::Error(400, std::string(k) + " must be a string", k);
    std::string v = body[k].get<std::string>();
    if (v.size() > max) {
      return http::Response::Error(
          400, std::string(k) + " exceeds " + std::to_string(max) + " characters", k);
    }
    out = std::move(v);
    return std::nullopt;
  };
  if (creating && (!body.contains("name") || !body["name"].is_string() ||
                   body["name"].get<std::string>().empty())) {
    return http::Response::Error(400, "name is required", "name");
  }
  if (auto e = str("name", a.name, 200)) return e;
  if (a.name.empty()) return http::Response::Error(400, "name must not be empty", "name");
  if (auto e = str("base_url", a.base_url, 2048)) return e;
  if (!a.base_url.empty() && a.base_url.rfind("http://", 0) != 0 &&
      a.base_url.rfind("https://", 0) != 0) {
    return http::Response::Error(400, "base_url must start with http:// or https://", "base_url");
  }
  if (auto e = str("match_host", a.match_host, 253)) return e;
  if (auto e = str("match_base_path", a.match_base_path, 2048)) return e;
  if (!a.match_base_path.empty() && a.match_base_path[0] != '/') {
    return http::Response::Error(400, "match_base_path must start with /", "match_base_path");
  }
  if (body.contains("match_port")) {
    const Json& p = body["match_port"];
    if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() > 65535) {
      return http::Response::Error(400, "match_port must be an integer 0-65535", "match_port");
    }
    a.match_port = p.get<int>();
  }
  if (body.contains("settings")) {
    if (!body["settings"].is_object()) {
      return http::Response::Error(400, "settings must be an object", "settings");
    }
    a.settings_json = body["settings"].dump();
    if (a.settings_json.size() > 64 * 1024) {
      return http::Response::Error(400, "settings exceeds 65536 bytes", "settings");
    }
  }
  return std::nullopt;
}

}  // namespace

void App::InvalidateApiCache() {
  std::unique_lock lock(cache_mu_);
  api_cache_loaded_ = false;
  api_by_key_hash_.clear();
  api_rules_.clear();
  api_names_.clear();
}

void App::RegisterApis(http::Router& r) {
  r.Add("POST", "/api/apis",
        AuthedJson(
            Access::kUser,
            [this](http::Request& req, const Principal& p, const Json& body) -> http::Response {
              Api a;
              if (auto e = ApplyApiFields(body, a, true)) return *e;
              if (body.contains("upstream_secret")) {
                if (!body["upstream_secret"].is_string()) {
                  return http::Response::Error(400, "upstream_secret must be a string",
                                               "upstream_secret");
                }
                auto secret = body["upstream_secret"].get<std::string>();
                if (auto e = UpstreamSecretTooLong(secret)) return *e;
                if (!secret.empty()) a.upstream_secret_enc = fernet_->Encrypt(secret);
              }
              std::string key = NewIngestKey();
              a.ingest_key_hash = HashHex(key);
              a.ingest_key_prefix = key.substr(0, 8);
              a.owner_id = p.user.id;
              a.created_at = a.updated_at = NowSeconds();
              Status s = store_->CreateApi(a);
              if (!s.ok) return StoreError(s);
              InvalidateApiCache();
              Audit(p, req, "api.create", "api:" + std::to_string(a.id), {{"name", a.name}});
              Json j = ApiJson(a);
              j["ingest_key"] = key;
              return http::Response::Json(201, j.dump());
            }));

  r.Add("GET", "/api/apis",
        Authed(Access::kUser, [this](http::Request& /*req*/, const Principal& p) -> http::Response {
          Json list = Json::array();
          auto owner = p.IsAdmin() ? std::nullopt : std::optional<int64_t>(p.user.id);
          for (const auto& a : store_->ListApis(owner)) list.push_back(ApiJson(a));
          return http::Response::Json(200, Json{{"apis", list}}.dump());
        }));

  // Owner or admin: anything else answers 404, so ids of other users' APIs are not revealed.
  auto load = [this](http::Request& req, const Principal& p) -> std::variant<Api, http::Response> {
    auto id = ParseId(req.params["id"]);
    auto a = id ? store_->GetApi(*id) : std::nullopt;
    if (!a || !CanAccessApi(p, *a)) return http::Response::Error(404, "API not found");
    return *a;
  };

  r.Add(
      "GET", "/api/apis/:id",
      Authed(Access::kUser, [this, load](http::Request& req, const Principal& p) -> http::Response {
        auto a = load(req, p);
        if (auto* e = std::get_if<http::Response>(&a)) return *e;
        return http::Response::Json(200, ApiJson(std::get<Api>(a)).dump());
      }));

  r.Add(
      "PUT", "/api/apis/:id",
      Authed(Access::kUser, [this, load](http::Request& req, const Principal& p) -> http::Response {
        auto loaded = load(req, p);
        if (auto* e = std::get_if<http::Response>(&loaded)) return *e;
        Api a = std::get<Api>(loaded);
        auto parsed = ParseBody(req);
        if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
        const Json& body = std::get<Json>(parsed);
        if (auto e = ApplyApiFields(body, a, false)) return *e;
        Json changed = Json::object();
        for (auto it = body.begin(); it != body.end(); ++it) {
          if (it.key() != "upstream_secret") changed[it.key()] = true;
        }
        if (body.contains("upstream_secret")) {
          if (!body["upstream_secret"].is_string() && !body["upstream_secret"].is_null()) {
            return http::Response::Error(400, "upstream_secret must be a string or null",
                                         "upstream_secret");
          }
          std::string secret =
              body["upstream_secret"].is_null() ? "" : body["upstream_secret"].get<std::string>();
          if (auto e = UpstreamSecretTooLong(secret)) return *e;
          a.upstream_secret_enc = secret.empty() ? "" : fernet_->Encrypt(secret);
          changed["upstream_secret"] = secret.empty() ? "cleared" : "set";
        }
        std::string key;
        if (body.contains("rotate_ingest_key") && body["rotate_ingest_key"] == true) {
          key = NewIngestKey();
          a.ingest_key_hash = HashHex(key);
          a.ingest_key_prefix = key.substr(0, 8);
        }
        a.updated_at = NowSeconds();
        Status s = store_->UpdateApi(a);
        if (!s.ok) return StoreError(s);
        InvalidateApiCache();
        Audit(p, req, "api.update", "api:" + std::to_string(a.id), changed);
        Json j = ApiJson(a);
        if (!key.empty()) j["ingest_key"] = key;
        return http::Response::Json(200, j.dump());
      }));

  r.Add(
      "DELETE", "/api/apis/:id",
      Authed(Access::kUser, [this, load](http::Request& req, const Principal& p) -> http::Response {
        auto loaded = load(req, p);
        if (auto* e = std::get_if<http::Response>(&loaded)) return *e;
        const Api& a = std::get<Api>(loaded);
        Status s = store_->DeleteApi(a.id);
        if (!s.ok) return StoreError(s);
        InvalidateApiCache();
        Audit(p, req, "api.delete", "api:" + std::to_string(a.id), {{"name", a.name}});
        return http::Response::Json(204, "");
      }));
}

std::optional<Agent> App::AgentForToken(std::string_view token) {
  std::string hash = HashHex(token);
  if (!cfg_.bus_url.empty() && NowMillis() - agent_cache_cleared_ms_ >= kSharedCacheMs) {
    // Another instance may have revoked an agent: re-read tokens from the database.
    std::unique_lock lock(cache_mu_);
    agent_by_token_hash_.clear();
    agent_cache_cleared_ms_ = NowMillis();
  }
  {
    std::shared_lock lock(cache_mu_);
    auto it = agent_by_token_hash_.find(hash);
    if (it != agent_by_token_hash_.end()) return it->second;
  }
  auto agent = store_->GetAgentByTokenHash(hash);
  if (!agent || agent->revoked) return std::nullopt;
  std::unique_lock lock(cache_mu_);
  if (agent_by_token_hash_.size() > 100000) agent_by_token_hash_.clear();
  agent_by_token_hash_[hash] = *agent;
  return agent;
}

void App::RegisterAgents(http::Router& r) {
  r.Add(
      "POST", "/api/agents",
      Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
        Json body = Json::object();
        if (!req.body.empty()) {
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          body = std::get<Json>(parsed);
        }
        EnrollmentToken t;
        int64_t ttl = cfg_.enrollment_ttl_s;
        if (body.contains("ttl_seconds")) {
          if (!body["ttl_seconds"].is_number_integer() || body["ttl_seconds"].get<int64_t>() < 60 ||
              body["ttl_seconds"].get<int64_t>() > 86400 * 365) {
            return http::Response::Error(400, "ttl_seconds must be 60 to 31536000", "ttl_seconds");
          }
          ttl = body["ttl_seconds"].get<int64_t>();
        }
        if (body.contains("name")) {
          if (!body["name"].is_string() || body["name"].get<std::string>().size() > 200) {
            return http::Response::Error(400, "name must be a string of at most 200 characters",
                                         "name");
          }
          t.name = body["name"].get<std::string>();
        }
        std::string token = "be_" + crypto::RandomToken(24);
        t.token_hash = HashHex(token);
        t.created_by = p.user.id;
        t.created_at = NowSeconds();
        t.expires_at = t.created_at + ttl;
        Status s = store_->CreateEnrollmentToken(t);
        if (!s.ok) return StoreError(s);
        Audit(p, req, "agent.enrollment_token", "enrollment:" + std::to_string(t.id),
              {{"name", t.name}, {"expires_at", t.expires_at}});
        return http::Response::Json(
            201, Json{{"enrollment_token", token}, {"expires_at", t.expires_at}}.dump());
      }));

  r.Add("POST", "/api/agents/enroll", Sync([this](http::Request& req) -> http::Response {
          if (auto l = Limit("enroll:" + req.client_ip, cfg_.auth_rate_per_min)) return *l;
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          if (!body.contains("enrollment_token") || !body["enrollment_token"].is_string()) {
            return http::Response::Error(400, "enrollment_token is required", "enrollment_token");
          }
          Agent agent;
          agent.agent_id = "ag_" + crypto::Hex(crypto::RandomBytes(8));
          std::string token = "bt_" + crypto::RandomToken(32);
          agent.token_hash = HashHex(token);
          auto text = [&](const char* k, std::string& out) {
            if (body.contains(k) && body[k].is_string())
              out = body[k].get<std::string>().substr(0, 255);
          };
          text("hostname", agent.hostname);
          text("version", agent.version);
          agent.enrolled_at = agent.last_seen = NowSeconds();
          Status s = store_->EnrollAgent(HashHex(body["enrollment_token"].get<std::string>()),
                                         agent.enrolled_at, agent);
          if (!s.ok) {
            if (s.unavailable) return Unavailable(s);
            return http::Response::Error(401, s.message, "enrollment_token");
          }
          log::Info("agent enrolled", {{"agent_id", agent.agent_id}, {"hostname", agent.hostname}});
          Principal p;
          p.kind = Principal::Kind::kAgent;
          p.agent = agent;
          Audit(p, req, "agent.enroll", "agent:" + agent.agent_id, {{"hostname", agent.hostname}});
          return http::Response::Json(201, Json{{"agent_id", agent.agent_id},
                                                {"agent_token", token},
                                                {"identity_key", crypto::Hex(identity_key_)}}
                                               .dump());
        }));

  r.Add("POST", "/api/agents/heartbeat", Sync([this](http::Request& req) -> http::Response {
          std::string_view h = req.Header("Authorization");
          auto agent = h.size() > 7 ? AgentForToken(h.substr(7)) : std::nullopt;
          if (!agent) return UnknownAgentToken();
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          std::string version = agent->version;
          if (body.contains("version") && body["version"].is_string()) {
            version = body["version"].get<std::string>().substr(0, 64);
          }
          Json counters = body.value("counters", Json::object());
          Json rates = body.value("rates", Json::array());
          if (!counters.is_object())
            return http::Response::Error(400, "counters must be an object", "counters");
          if (!rates.is_array())
            return http::Response::Error(400, "rates must be an array", "rates");
          if (rates.size() > 10000)
            return http::Response::Error(400, "rates has more than 10000 entries", "rates");
          Status s = store_->UpdateAgentHeartbeat(agent->agent_id, NowSeconds(), version,
                                                  counters.dump(), rates.dump());
          if (!s.ok) return StoreError(s);
          return http::Response::Json(200, R"({"ok":true})");
        }));

  r.Add(
      "GET", "/api/agents",
      Authed(Access::kAdmin,
             [this](http::Request& /*req*/, const Principal& /*p*/) -> http::Response {
               Json list = Json::array();
               for (const auto& a : store_->ListAgents()) {
                 Json counters = Json::parse(a.counters_json, nullptr, false);
                 Json rates = Json::parse(a.rates_json, nullptr, false);
                 list.push_back({{"agent_id", a.agent_id},
                                 {"hostname", a.hostname},
                                 {"version", a.version},
                                 {"enrolled_at", a.enrolled_at},
                                 {"last_seen", a.last_seen},
                                 {"revoked", a.revoked},
                                 {"counters", counters.is_discarded() ? Json::object() : counters},
                                 {"rates", rates.is_discarded() ? Json::array() : rates}});
               }
               return http::Response::Json(200, Json{{"agents", list}}.dump());
             }));

  r.Add("DELETE", "/api/agents/:agent_id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          const std::string& id = req.params["agent_id"];
          bool known = false;
          for (const auto& a : store_->ListAgents()) known = known || a.agent_id == id;
          if (!known) return http::Response::Error(404, "agent not found");
          Status s = store_->RevokeAgent(id);
          if (!s.ok) return StoreError(s);
          {
            std::unique_lock lock(cache_mu_);
            agent_by_token_hash_.clear();
          }
          Audit(p, req, "agent.revoke", "agent:" + id);
          return http::Response::Json(204, "");
        }));
}

}  // namespace boing
