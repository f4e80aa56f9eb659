// Accounts: register, login (with per-IP rate limit and per-account lockout), logout (jti
// revocation), and user management for admins.
#include "app.h"
#include "boing/log.h"

namespace boing {
namespace {

http::Response TokenResponse(int status, const ServerConfig& cfg, const User& u) {
  crypto::JwtClaims c;
  const int64_t now = NowSeconds();
  c.sub = std::to_string(u.id);
  c.role = u.role;
  c.jti = crypto::RandomToken(16);
  c.iss = cfg.jwt_issuer;
  c.aud = cfg.jwt_audience;
  c.iat = now;
  c.nbf = now;
  c.exp = now + cfg.jwt_ttl_s;
  Json j = {
      {"token", crypto::JwtSign(c, cfg.jwt_secret)}, {"expires_at", c.exp}, {"user", UserJson(u)}};
  return http::Response::Json(status, j.dump());
}

bool ValidUsername(const std::string& s) {
  if (s.size() < 3 || s.size() > 64) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' &&
        c != '@') {
      return false;
    }
  }
  return true;
}

std::optional<http::Response> CheckPassword(const ServerConfig& cfg, const Json& body,
                                            std::string& out) {
  if (!body.contains("password") || !body["password"].is_string()) {
    return http::Response::Error(400, "password is required", "password");
  }
  out = body["password"].get<std::string>();
  if (out.size() < static_cast<size_t>(cfg.password_min_len)) {
    return http::Response::Error(
        400, "password needs at least " + std::to_string(cfg.password_min_len) + " characters",
        "password");
  }
  if (out.size() > 1024) return http::Response::Error(400, "password too long", "password");
  return std::nullopt;
}

}  // namespace

void App::RegisterAuth(http::Router& r) {
  r.Add("POST", "/api/register", Sync([this](http::Request& req) -> http::Response {
          if (auto l = Limit("auth:" + req.client_ip, cfg_.auth_rate_per_min)) return *l;
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          if (!cfg_.allow_registration && store_->CountUsers() != 0) {
            return http::Response::Error(403, "registration is disabled; ask an admin");
          }
          if (!body.contains("username") || !body["username"].is_string() ||
              !ValidUsername(body["username"].get<std::string>())) {
            return http::Response::Error(400, "username must be 3 to 64 letters, digits or _ - . @",
                                         "username");
          }
          std::string password;
          if (auto e = CheckPassword(cfg_, body, password)) return *e;
          User u;
          u.username = body["username"].get<std::string>();
          if (body.contains("email")) {
            if (!body["email"].is_string() || body["email"].get<std::string>().size() > 254) {
              return http::Response::Error(400, "email must be a string", "email");
            }
            u.email = body["email"].get<std::string>();
          }
          u.password_hash = crypto::HashPassword(password);  // slow: outside the lock
          u.created_at = NowSeconds();
          Status s;
          {
            // "The first account is the admin" and "registration closed" are decided and the
            // account created in one step, so concurrent first registrations make one admin.
            std::lock_guard lock(accounts_mu_);
            bool first = store_->CountUsers() == 0;
            if (!cfg_.allow_registration && !first) {
              return http::Response::Error(403, "registration is disabled; ask an admin");
            }
            u.role = first ? "admin" : "user";
            s = store_->CreateUser(u);
          }
          if (s.conflict) return http::Response::Error(409, "username already taken", "username");
          if (!s.ok) return StoreError(s);
          Principal p;
          p.user = u;
          Audit(p, req, "user.register", "user:" + std::to_string(u.id), {{"role", u.role}});
          return TokenResponse(201, cfg_, u);
        }));

  r.Add("POST", "/api/login", Sync([this](http::Request& req) -> http::Response {
          if (auto l = Limit("auth:" + req.client_ip, cfg_.auth_rate_per_min)) return *l;
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          if (!body.contains("username") || !body["username"].is_string()) {
            return http::Response::Error(400, "username is required", "username");
          }
          if (!body.contains("password") || !body["password"].is_string()) {
            return http::Response::Error(400, "password is required", "password");
          }
          const auto username = body["username"].get<std::string>();
          const auto password = body["password"].get<std::string>();
          auto user = store_->GetUserByName(username);
          const int64_t now = NowSeconds();
          if (!user) {
            // Same cost as a real check, so timing does not reveal which usernames exist.
            static const std::string kDummy = crypto::HashPassword("boing-timing-equaliser");
            crypto::VerifyPassword(kDummy, password);
            ++auth_failures;
            return http::Response::Error(401, "wrong username or password");
          }
          if (user->locked_until > now) {
            auto resp = http::Response::Error(
                423, "account locked after repeated failed logins; retry later");
            resp.headers.emplace_back("Retry-After", std::to_string(user->locked_until - now));
            return resp;
          }
          const bool good =
              crypto::VerifyPassword(user->password_hash, password) && !user->disabled;
          // The failure count and the lock are read and written under one lock: a concurrent
          // attempt working from a stale copy can neither undo a lock nor lose a failure.
          std::lock_guard lock(accounts_mu_);
          auto fresh = store_->GetUserByName(username);
          if (!fresh) return http::Response::Error(401, "wrong username or password");
          user = std::move(fresh);
          if (user->locked_until > now) {
            auto resp = http::Response::Error(
                423, "account locked after repeated failed logins; retry later");
            resp.headers.emplace_back("Retry-After", std::to_string(user->locked_until - now));
            return resp;
          }
          if (!good) {
            ++auth_failures;
            user->failed_logins += 1;
            if (user->failed_logins >= cfg_.login_max_failures) {
              user->locked_until = now + cfg_.login_lockout_s;
              user->failed_logins = 0;
              log::Warn("account locked", {{"user_id", user->id}, {"client_ip", req.client_ip}});
            }
            store_->UpdateUser(*user);
            return http::Response::Error(401, "wrong username or password");
          }
          if (user->failed_logins != 0 || user->locked_until != 0) {
            user->failed_logins = 0;
            user->locked_until = 0;
            store_->UpdateUser(*user);
          }
          return TokenResponse(200, cfg_, *user);
        }));

  r.Add("POST", "/api/logout",
        Authed(Access::kUser, [this](http::Request& /*req*/, const Principal& p) -> http::Response {
          Status s = store_->RevokeToken(p.jti, p.exp);
          if (!s.ok) return StoreError(s);
          {
            std::lock_guard lock(revoked_mu_);
            revoked_jtis_.insert(p.jti);
          }
          return http::Response::Json(204, "");
        }));

  r.Add("GET", "/api/me",
        Authed(Access::kUser, [this](http::Request& /*req*/, const Principal& p) -> http::Response {
          return http::Response::Json(200, UserJson(p.user).dump());
        }));

  r.Add("GET", "/api/users",
        Authed(Access::kAdmin,
               [this](http::Request& /*req*/, const Principal& /*p*/) -> http::Response {
                 Json list = Json::array();
                 for (const auto& u : store_->ListUsers()) list.push_back(UserJson(u));
                 return http::Response::Json(200, Json{{"users", list}}.dump());
               }));

  r.Add("PUT", "/api/users/:id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          auto id = ParseId(req.params["id"]);
          auto user = id ? store_->GetUser(*id) : std::nullopt;
          if (!user) return http::Response::Error(404, "user not found");
          auto parsed = ParseBody(req);
          if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
          const Json& body = std::get<Json>(parsed);
          Json changed = Json::object();
          if (body.contains("role")) {
            if (!body["role"].is_string() || (body["role"] != "admin" && body["role"] != "user")) {
              return http::Response::Error(400, "role must be admin or user", "role");
            }
            if (user->id == p.user.id && body["role"] != "admin") {
              return http::Response::Error(400, "you cannot demote yourself", "role");
            }
            user->role = body["role"].get<std::string>();
            changed["role"] = user->role;
          }
          if (body.contains("disabled")) {
            if (!body["disabled"].is_boolean()) {
              return http::Response::Error(400, "disabled must be a boolean", "disabled");
            }
            if (user->id == p.user.id && body["disabled"].get<bool>()) {
              return http::Response::Error(400, "you cannot disable yourself", "disabled");
            }
            user->disabled = body["disabled"].get<bool>();
            changed["disabled"] = user->disabled;
          }
          if (body.contains("email")) {
            if (!body["email"].is_string()) {
              return http::Response::Error(400, "email must be a string", "email");
            }
            user->email = body["email"].get<std::string>();
            changed["email"] = true;
          }
          if (body.contains("password")) {
            std::string password;
            if (auto e = CheckPassword(cfg_, body, password)) return *e;
            user->password_hash = crypto::HashPassword(password);
            user->failed_logins = 0;
            user->locked_until = 0;
            changed["password"] = "reset";
          }
          Status s = store_->UpdateUser(*user);
          if (!s.ok) return StoreError(s);
          Audit(p, req, "user.update", "user:" + std::to_string(user->id), changed);
          return http::Response::Json(200, UserJson(*user).dump());
        }));

  r.Add("DELETE", "/api/users/:id",
        Authed(Access::kAdmin, [this](http::Request& req, const Principal& p) -> http::Response {
          auto id = ParseId(req.params["id"]);
          if (!id || !store_->GetUser(*id)) return http::Response::Error(404, "user not found");
          if (*id == p.user.id) return http::Response::Error(400, "you cannot delete yourself");
          Status s = store_->DeleteUser(*id);
          if (!s.ok) return StoreError(s);
          InvalidateApiCache();
          Audit(p, req, "user.delete", "user:" + std::to_string(*id));
          return http::Response::Json(204, "");
        }));
}

}  // namespace boing
