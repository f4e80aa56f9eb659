#include "app.h"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>

#include "boing/log.h"

namespace boing {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<int64_t> ParseId(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

bool QueryNumber(const http::Request& req, const char* name, double* out) {
  auto v = req.QueryParam(name);
  if (!v || v->empty()) return true;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end != '\0' || !std::isfinite(d) || d < 0) return false;
  *out = d;
  return true;
}

Json UserJson(const User& u) {
  return {{"id", u.id},     {"username", u.username}, {"email", u.email},
          {"role", u.role}, {"disabled", u.disabled}, {"created_at", u.created_at}};
}

Json ApiJson(const Api& a) {
  Json settings = Json::parse(a.settings_json, nullptr, false);
  if (settings.is_discarded()) settings = Json::object();
  return {{"id", a.id},
          {"name", a.name},
          {"base_url", a.base_url},
          {"owner_id", a.owner_id},
          {"settings", settings},
          {"ingest_key_prefix", a.ingest_key_prefix},
          {"has_upstream_secret", !a.upstream_secret_enc.empty()},
          {"match_host", a.match_host},
          {"match_port", a.match_port},
          {"match_base_path", a.match_base_path},
          {"created_at", a.created_at},
          {"updated_at", a.updated_at}};
}

Json EventJson(const Event& e) {
  Json j = Json::parse(EventToJson(e), nullptr, false);
  j["id"] = e.id;
  j["api_id"] = e.api_id;
  return j;
}

// --- RateLimiter ---------------------------------------------------------------------------

int RateLimiter::Hit(const std::string& key, int limit, int window_s, int64_t now_ms) {
  const int64_t window_ms = int64_t{window_s} * 1000;
  const int64_t start = now_ms - now_ms % window_ms;
  std::lock_guard lock(mu_);
  if (slots_.size() >= max_keys_ && !slots_.count(key)) {
    // Evict every key idle for two windows; if none, drop an arbitrary one. Bounded either way.
    for (auto it = slots_.begin(); it != slots_.end();) {
      it = it->second.window_start < start - window_ms ? slots_.erase(it) : std::next(it);
    }
    if (slots_.size() >= max_keys_) slots_.erase(slots_.begin());
  }
  Slot& s = slots_[key];
  if (s.window_start != start) {
    s.previous = s.window_start == start - window_ms ? s.current : 0;
    s.current = 0;
    s.window_start = start;
  }
  double elapsed = static_cast<double>(now_ms - start) / static_cast<double>(window_ms);
  double estimate = s.previous * (1.0 - elapsed) + s.current;
  if (estimate + 1 > limit) {
    int wait = static_cast<int>((start + window_ms - now_ms + 999) / 1000);
    return wait < 1 ? 1 : wait;
  }
  ++s.current;
  return 0;
}

// --- IngestWriter --------------------------------------------------------------------------

IngestWriter::IngestWriter(Store& store, size_t queue_max, size_t commit_max, OnCommit on_commit)
    : store_(store),
      queue_max_(queue_max),
      commit_max_(commit_max),
      on_commit_(std::move(on_commit)) {
  thread_ = std::thread([this] { Loop(); });
}

IngestWriter::~IngestWriter() { Stop(); }

bool IngestWriter::Submit(std::vector<Event> events, Done done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    // One oversized request is still admitted into an empty queue, so a batch within
    // BATCH_MAX_EVENTS can never be refused forever.
    if (queued_events_ > 0 && queued_events_ + events.size() > queue_max_) return false;
    queued_events_ += events.size();
    queue_.push_back({std::move(events), std::move(done)});
  }
  cv_.notify_one();
  return true;
}

void IngestWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IngestWriter::Loop() {
  std::vector<Item> take;
  std::vector<Event> all;
  std::vector<InsertOutcome> outcomes;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      size_t n = 0;
      while (!queue_.empty() && (take.empty() || n + queue_.front().events.size() <= commit_max_)) {
        n += queue_.front().events.size();
        take.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    all.clear();
    for (auto& item : take) {
      std::move(item.events.begin(), item.events.end(), std::back_inserter(all));
    }
    auto t0 = std::chrono::steady_clock::now();
    Status st = all.empty() ? Status::Ok() : store_.InsertEvents(all, outcomes);
    commit_micros +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    ++commits;
    if (!st.ok) {
      ++failures;
      log::Error("ingest commit failed", {{"events", all.size()}, {"error", st.message}});
    }
    size_t offset = 0;
    std::vector<Answer> answers;
    for (auto& item : take) {
      IngestResult r;
      r.status = st;
      size_t n = item.events.size();
      if (st.ok) {
        r.outcomes.assign(outcomes.begin() + static_cast<ptrdiff_t>(offset),
                          outcomes.begin() + static_cast<ptrdiff_t>(offset + n));
        for (auto o : r.outcomes) (o == InsertOutcome::kInserted ? committed : duplicates)++;
        r.ids.reserve(n);
        for (size_t i = offset; i < offset + n; ++i) r.ids.push_back(all[i].id);
      }
      offset += n;
      queued_events_ -= n;
      if (st.ok && handoff_) {
        answers.push_back(
            [done = std::move(item.done), r = std::move(r)]() mutable { done(std::move(r)); });
      } else {
        item.done(std::move(r));
      }
    }
    if (st.ok && handoff_) {
      handoff_(all, outcomes, std::move(answers));
    } else if (st.ok && on_commit_ && !all.empty()) {
      on_commit_(all, outcomes);
    }
    take.clear();
  }
}

// --- App -----------------------------------------------------------------------------------

App::App(ServerConfig cfg, std::unique_ptr<Store> store)
    : cfg_(std::move(cfg)), store_(std::move(store)) {}

App::~App() { Shutdown(); }

void App::Shutdown() {
  if (writer_) writer_->Stop();
  if (bus_) bus_->StopConsuming();
  if (detection_) detection_->Stop();
  if (bus_) bus_->Stop();
  {
    std::lock_guard lock(ticker_mu_);
    ticker_stop_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (notifier_) notifier_->Stop();
}

void App::ReloadDetection() {
  if (!detection_) return;
  Status s = detection_->Reload();
  if (!s.ok) log::Error("detector settings not reloaded", {{"error", s.message}});
  AnnounceSettingsChange();
}

void App::AnnounceSettingsChange() {
  if (!bus_) return;
  // Unique per change (instance, sequence, time): any difference means "re-read".
  const std::string generation = bus_->instance_id() + ":" + std::to_string(++settings_changes_) +
                                 ":" + std::to_string(NowMillis());
  if (Status s = store_->PutSetting(kSettingsGenerationKey, generation); !s.ok) {
    log::Error(
        "settings change not announced to the other instances (they follow at their "
        "next change or restart)",
        {{"error", s.message}});
  }
}

void App::FollowSettingsChanges() {
  auto generation = store_->GetSetting(kSettingsGenerationKey);
  if (!generation || *generation == settings_seen_) return;
  // Own announcements too: re-reading once more closes the race of two instances changing
  // settings at the same moment (the later announcement overwrites the earlier one).
  settings_seen_ = *generation;
  Status s = detection_->Reload();
  Status m = alerts_->ReloadMutes();
  if (!s.ok || !m.ok) {
    log::Error("settings changed on another instance not reloaded",
               {{"error", !s.ok ? s.message : m.message}});
    settings_seen_.clear();  // try again at the next tick
    return;
  }
  log::Info("detector settings, lists and mutes re-read (changed through an instance)",
            {{"generation", *generation}});
}

bool App::Init(std::string* error) {
  std::vector<crypto::Fernet> keys;
  std::string err;
  auto primary = crypto::Fernet::FromConfigKey(cfg_.encryption_key, &err);
  if (!primary) {
    *error = "ENCRYPTION_KEY: " + err;
    return false;
  }
  keys.push_back(*primary);
  for (const auto& k : cfg_.encryption_keys_old) {
    auto f = crypto::Fernet::FromConfigKey(k, &err);
    if (!f) {
      *error = "ENCRYPTION_KEYS_OLD: " + err;
      return false;
    }
    keys.push_back(*f);
  }
  fernet_.emplace(std::move(keys));

  // The identity key is a secret shared with agents: kept Fernet-encrypted in the database.
  if (auto enc = store_->GetSetting("identity_key_enc")) {
    auto plain = fernet_->Decrypt(*enc);
    if (!plain) {
      *error =
          "the identity key in the database cannot be decrypted with ENCRYPTION_KEY (or "
          "ENCRYPTION_KEYS_OLD): set the key it was created with";
      return false;
    }
    identity_key_ = *plain;
  } else {
    identity_key_ = crypto::RandomBytes(32);
    Status s = store_->PutSetting("identity_key_enc", fernet_->Encrypt(identity_key_));
    if (!s.ok) {
      *error = "cannot store the identity key: " + s.message;
      return false;
    }
  }

  const int64_t now = NowSeconds();
  for (const auto& dc : DefaultDetectors(cfg_, now)) {
    Status s = store_->InsertDetectorIfMissing(dc);
    if (!s.ok) {
      *error = "cannot seed detector " + dc.id + ": " + s.message;
      return false;
    }
  }

  if (!cfg_.admin_username.empty()) {
    if (!store_->GetUserByName(cfg_.admin_username)) {
      if (cfg_.admin_password.size() < static_cast<size_t>(cfg_.password_min_len)) {
        *error = "ADMIN_PASSWORD: needs at least " + std::to_string(cfg_.password_min_len) +
                 " characters";
        return false;
      }
      User u;
      u.username = cfg_.admin_username;
      u.password_hash = crypto::HashPassword(cfg_.admin_password);
      u.role = "admin";
      u.created_at = now;
      Status s = store_->CreateUser(u);
      if (!s.ok && !s.conflict) {
        *error = "cannot create the admin from ADMIN_USERNAME: " + s.message;
        return false;
      }
      log::Info("admin account created from ADMIN_USERNAME", {{"username", u.username}});
    }
  }

  // Re-encrypt upstream secrets still under an old key, so old keys can be retired.
  if (!cfg_.encryption_keys_old.empty()) {
    int rotated = 0;
    for (Api a : store_->ListApis(std::nullopt)) {
      if (a.upstream_secret_enc.empty()) continue;
      if (auto r = fernet_->Rotate(a.upstream_secret_enc)) {
        a.upstream_secret_enc = *r;
        if (store_->UpdateApi(a).ok) ++rotated;
      } else {
        log::Warn("upstream secret undecryptable with any configured key", {{"api_id", a.id}});
      }
    }
    if (auto plain = fernet_->Decrypt(*store_->GetSetting("identity_key_enc"))) {
      store_->PutSetting("identity_key_enc", fernet_->Encrypt(*plain));
    }
    log::Info("encryption key rotation", {{"secrets_reencrypted", rotated}});
  }

  for (auto& [jti, exp] : store_->ListRevokedTokens()) {
    if (exp > now) revoked_jtis_.insert(jti);
  }

  // Alerting: findings -> alerts (AlertManager) -> notifications (Notifier) and /ws/alerts.
  hub_ = std::make_unique<LiveHub>(cfg_.ws_send_queue_max);
  NotifySettings ns;
  ns.smtp_host = cfg_.smtp_host;
  ns.smtp_port = cfg_.smtp_port;
  ns.smtp_user = cfg_.smtp_user;
  ns.smtp_password = cfg_.smtp_password;
  ns.smtp_tls = cfg_.smtp_tls;
  ns.smtp_ca_file = cfg_.smtp_ca_file;
  ns.email_from = cfg_.alert_email_from;
  ns.public_url = cfg_.public_url;
  while (!ns.public_url.empty() && ns.public_url.back() == '/') ns.public_url.pop_back();
  ns.max_attempts = cfg_.alert_delivery_max_attempts;
  ns.backoff_ms = cfg_.alert_delivery_backoff_ms;
  ns.timeout_s = cfg_.alert_delivery_timeout_s;
  ns.workers = cfg_.alert_delivery_workers;
  ns.queue_max = cfg_.alert_delivery_queue_max;
  ns.allow_private_targets = cfg_.alert_allow_private_targets;
  notifier_ = std::make_unique<Notifier>(*store_, *fernet_, ns);
  if (Status s = SeedChannels(); !s.ok) {
    *error = "cannot create the notification channels from the environment: " + s.message;
    return false;
  }
  if (size_t n = notifier_->Resume(NowSeconds() - int64_t{cfg_.alert_delivery_resume_hours} * 3600,
                                   [this](int64_t id) { return ApiName(id); })) {
    log::Info("resumed pending notifications", {{"deliveries", n}});
  }
  AlertSettings as;
  as.group_window_s = cfg_.alert_group_window_s;
  as.resolve_after_s = cfg_.alert_resolve_after_s;
  as.autoblock_s = cfg_.alert_autoblock_seconds;
  as.autoblock_max_s = cfg_.alert_autoblock_max_seconds;
  detect::Severity min_block;
  if (!detect::ParseSeverity(cfg_.alert_autoblock_min_severity, &min_block)) {
    *error = "ALERT_AUTOBLOCK_MIN_SEVERITY: must be one of info, low, medium, high, critical";
    return false;
  }
  as.autoblock_min_rank = static_cast<int>(min_block);
  alerts_ = std::make_unique<AlertManager>(*store_, as);
  if (Status s = alerts_->Load(); !s.ok) {
    *error = "cannot load alerts: " + s.message;
    return false;
  }
  alerts_->SetListener([this](const std::string& action, const AlertRecord& a) {
    const bool local = hub_->HasSubscribers(Topic::kAlerts);
    const bool remote = bus_ && bus_->RemoteInterest(static_cast<int>(Topic::kAlerts));
    if (!local && !remote) return;
    Json msg = {{"type", "alert"}, {"action", action}, {"alert", AlertOut(a)}};
    PublishLive(Topic::kAlerts, a.api_id, 0, msg, local, remote);
  });
  alerts_->SetNotifier(
      [this](const AlertRecord& a, bool muted) { notifier_->Notify(a, ApiName(a.api_id), muted); });
  alerts_->SetListsChanged([this] { ReloadDetection(); });

  detection_ = std::make_unique<DetectionWorker>(
      *store_, cfg_.detection_queue_max, static_cast<size_t>(cfg_.detection_batch_size),
      [this](const std::vector<FindingRecord>& findings) {
        PublishFindings(findings);
        alerts_->OnFindings(findings);
      },
      [this](const std::vector<Event>& events) { PublishEvents(events); });
  detection_->SetPayloadClassifier(LoadPayloadModel(cfg_));
  detection_->SetModelDir(cfg_.data_dir + "/models");
  detection_->SetGeoIp(LoadGeoIp(cfg_, &geo_unavailable_));
  if (Status s = detection_->Reload(); !s.ok) {
    *error = "cannot load detector settings: " + s.message;
    return false;
  }
  if (!cfg_.bus_url.empty()) {
    // Scale-out: committed events go through JetStream to the instance holding their partition.
    BusOptions bo;
    bo.urls = cfg_.bus_url;
    bo.stream = cfg_.bus_stream;
    bo.partitions = cfg_.bus_partitions;
    bo.lease_seconds = cfg_.bus_lease_seconds;
    bo.instance_id = cfg_.bus_instance_id;
    bo.publish_queue_max = static_cast<size_t>(cfg_.bus_publish_queue_max);
    bo.fetch_batch = cfg_.bus_fetch_batch;
    bo.publish_timeout_ms = cfg_.bus_publish_timeout_ms;
    bo.limits = cfg_.event_limits;
    bus_ = std::make_unique<EventBus>(*store_, *detection_, std::move(bo));
    if (!bus_->Start(error)) return false;
    alerts_->SetShared(true);
    settings_seen_ = store_->GetSetting(kSettingsGenerationKey).value_or("");
    if (!bus_->StartLive(
            [this](int topic, int64_t api_id, char kind, std::string msg) {
              const auto t = static_cast<Topic>(topic);
              if (!hub_->HasSubscribers(t)) return;
              hub_->Publish(t, api_id, std::make_shared<const std::string>(std::move(msg)), kind);
            },
            error)) {
      return false;
    }
    writer_ =
        std::make_unique<IngestWriter>(*store_, cfg_.ingest_queue_max, cfg_.commit_max_events);
    writer_->SetHandoff([this](std::vector<Event>& events,
                               const std::vector<InsertOutcome>& outcomes,
                               std::vector<IngestWriter::Answer>&& answers) {
      bus_->Publish(events, outcomes, std::move(answers));
    });
  } else {
    writer_ = std::make_unique<IngestWriter>(
        *store_, cfg_.ingest_queue_max, cfg_.commit_max_events,
        [this](std::vector<Event>& events, const std::vector<InsertOutcome>& outcomes) {
          detection_->Submit(events, outcomes);
        });
  }
  ticker_ = std::thread([this] { TickerLoop(); });
  return true;
}

void App::Register(http::Router& r) {
  RegisterAuth(r);
  RegisterApis(r);
  RegisterAgents(r);
  RegisterIngest(r);
  RegisterQueries(r);
  RegisterConfig(r);
  RegisterOps(r);
  RegisterFindings(r);
  RegisterAlerts(r);
  RegisterChannels(r);
}

std::optional<http::Response> App::Limit(const std::string& key, int limit) {
  int wait = limiter_.Hit(key, limit, 60, NowMillis());
  if (wait == 0) return std::nullopt;
  auto resp = http::Response::Error(
      429, "too many requests; retry after " + std::to_string(wait) + " seconds");
  resp.headers.emplace_back("Retry-After", std::to_string(wait));
  return resp;
}

App::AuthResult App::Authenticate(const http::Request& req, Access need) {
  std::string_view h = req.Header("Authorization");
  if (h.size() < 8 || !(h.substr(0, 7) == "Bearer " || h.substr(0, 7) == "bearer ")) {
    ++auth_failures;
    return http::Response::Error(401, "missing bearer token");
  }
  std::string token(h.substr(7));
  std::string why;
  auto claims = crypto::JwtVerify(token, cfg_.jwt_secret, cfg_.jwt_issuer, cfg_.jwt_audience,
                                  NowSeconds(), &why, 0);
  if (!claims) {
    ++auth_failures;
    return http::Response::Error(401, "invalid token: " + why);
  }
  {
    std::lock_guard lock(revoked_mu_);
    if (revoked_jtis_.count(claims->jti)) {
      ++auth_failures;
      return http::Response::Error(401, "token revoked");
    }
  }
  auto id = ParseId(claims->sub);
  std::optional<User> user = id ? store_->GetUser(*id) : std::nullopt;
  if (!user || user->disabled) {
    ++auth_failures;
    return http::Response::Error(401, "account unknown or disabled");
  }
  // Rate limit by user and client IP before any work is done for the caller.
  if (auto r =
          Limit("api:" + std::to_string(user->id) + ":" + req.client_ip, cfg_.api_rate_per_min)) {
    return *r;
  }
  if (need == Access::kAdmin && user->role != "admin") {
    return http::Response::Error(403, "admin role required");
  }
  Principal p;
  p.kind = Principal::Kind::kUser;
  p.user = std::move(*user);
  p.jti = claims->jti;
  p.exp = claims->exp;
  return p;
}

http::Handler App::Authed(Access need, PrincipalHandler f) {
  return Sync([this, need, f = std::move(f)](http::Request& req) -> http::Response {
    auto au = Authenticate(req, need);
    if (auto* e = std::get_if<http::Response>(&au)) return *e;
    return f(req, std::get<Principal>(au));
  });
}

http::Handler App::AuthedJson(Access need, JsonHandler f) {
  return Authed(need, [this, f = std::move(f)](http::Request& req, const Principal& p) {
    auto parsed = ParseBody(req);
    if (auto* e = std::get_if<http::Response>(&parsed)) return *e;
    return f(req, p, std::get<Json>(parsed));
  });
}

void App::Audit(const Principal& p, const http::Request& req, std::string action,
                std::string target, Json details) {
  AuditEntry a;
  a.ts_ms = NowMillis();
  a.user_id = p.kind == Principal::Kind::kUser ? p.user.id : 0;
  a.username = p.kind == Principal::Kind::kUser ? p.user.username : "agent:" + p.agent.agent_id;
  a.action = std::move(action);
  a.target = std::move(target);
  a.client_ip = req.client_ip;
  a.details_json = details.dump();
  Status s = store_->AddAudit(a);
  if (!s.ok) log::Error("audit write failed", {{"action", a.action}, {"error", s.message}});
}

std::optional<std::vector<int64_t>> App::VisibleApis(const Principal& p) {
  if (p.IsAdmin()) return std::nullopt;
  std::vector<int64_t> ids;
  for (const auto& a : store_->ListApis(p.user.id)) ids.push_back(a.id);
  return ids;
}

std::optional<http::Response> App::ScopeToApis(const http::Request& req, const Principal& p,
                                               std::vector<int64_t>& api_ids,
                                               bool& restrict_to_apis) {
  auto visible = VisibleApis(p);
  if (auto v = req.QueryParam("api_id"); v && !v->empty()) {
    // 0 names the events no API rule matched (admins only: no owner sees them).
    double api_id = 0;
    if (!QueryNumber(req, "api_id", &api_id) || api_id != std::floor(api_id) || api_id > 9e15) {
      return http::Response::Error(400, "api_id must be a whole number", "api_id");
    }
    auto id = static_cast<int64_t>(api_id);
    if (visible && std::find(visible->begin(), visible->end(), id) == visible->end()) {
      return http::Response::Error(404, "API not found", "api_id");
    }
    api_ids = {id};
    restrict_to_apis = true;
  } else if (visible) {
    api_ids = std::move(*visible);
    restrict_to_apis = true;
  }
  return std::nullopt;
}

namespace {
// True when the JSON text nests arrays/objects deeper than `max_depth` (brackets inside strings do
// not count). Checked before parsing so no hostile document reaches a recursive walk.
bool JsonTooDeep(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}
}  // namespace

std::variant<Json, http::Response> App::ParseBody(const http::Request& req) {
  if (req.body.empty()) return http::Response::Error(400, "request body must be a JSON object");
  if (JsonTooDeep(req.body, cfg_.api_json_max_depth)) {
    return http::Response::Error(400, "request body nests deeper than " +
                                          std::to_string(cfg_.api_json_max_depth) +
                                          " levels (API_JSON_MAX_DEPTH)");
  }
  Json j = Json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return http::Response::Error(400, "request body must be a JSON object");
  }
  return j;
}

http::Response App::Unavailable(const Status& s) {
  auto r = http::Response::Error(503, "storage unavailable, retry later");
  r.headers.emplace_back("Retry-After", "5");
  log::Warn("storage unavailable", {{"error", s.message}});
  return r;
}

http::Response App::UnknownAgentToken() {
  // A token missing from the cache is looked up in the database: while that is down the token may
  // well be valid, and the agent must retry (503), not give up on a revoked token (401).
  if (Status s = store_->Ping(); !s.ok) return Unavailable(s);
  return http::Response::Error(401, "unknown or revoked agent token");
}

http::Response App::StoreError(const Status& s) {
  if (s.unavailable) return Unavailable(s);
  if (s.conflict) return http::Response::Error(409, s.message);
  log::Error("storage error", {{"error", s.message}});
  return http::Response::Error(500, "internal storage error");
}

asio::awaitable<IngestResult> App::Commit(std::vector<Event> events) {
  auto initiate = [this](auto handler, std::vector<Event> evs) {
    auto ex = asio::get_associated_executor(handler);
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    bool queued = writer_->Submit(std::move(evs), [h, ex](IngestResult r) mutable {
      asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
    });
    if (!queued) {
      IngestResult r;
      r.status = Status::Unavailable("ingest queue full");
      asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
    }
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(IngestResult)>(
      initiate, asio::use_awaitable, std::move(events));
}

}  // namespace boing
