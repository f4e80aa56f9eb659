// The REST/WebSocket application of boing-server: authentication, the monitored-API registry,
// agents, ingest, logs, metrics and configuration endpoints, wired onto the HTTP core's Router.
//
// Invariants: every route authenticates before touching data, and a non-admin user only ever
// reads or changes data of APIs they own; every admin or configuration change is written to the
// audit log; secrets (passwords, ingest keys, tokens, upstream secrets) are never logged and never
// stored in clear.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "alerts.h"
#include "boing/crypto.h"
#include "boing/http.h"
#include "boing/server_config.h"
#include "boing/store.h"
#include "bus.h"
#include "detection.h"
#include "live.h"
#include "notify.h"

namespace boing {

namespace asio = boost::asio;
using Json = nlohmann::json;

struct Principal {
  enum class Kind { kUser, kAgent };
  Kind kind = Kind::kUser;
  User user;
  Agent agent;
  std::string jti;
  int64_t exp = 0;
  bool IsAdmin() const { return kind == Kind::kUser && user.role == "admin"; }
};

// Counts hits per key in a sliding window of two fixed windows (Cloudflare's approximation), in a
// bounded table: when full, the stalest keys are evicted.
class RateLimiter {
 public:
  explicit RateLimiter(size_t max_keys = 100000) : max_keys_(max_keys) {}
  // 0 when allowed (and counted), otherwise the seconds until a hit would be allowed.
  int Hit(const std::string& key, int limit, int window_s, int64_t now_ms);
  size_t Size() {
    std::lock_guard lock(mu_);
    return slots_.size();
  }

 private:
  struct Slot {
    int64_t window_start = 0;
    int current = 0;
    int previous = 0;
  };
  std::mutex mu_;
  size_t max_keys_;
  std::unordered_map<std::string, Slot> slots_;
};

struct IngestResult {
  Status status;
  std::vector<InsertOutcome> outcomes;
  std::vector<int64_t> ids;  // row ids, 0 for duplicates
};

// Group commit: events from concurrent requests are queued, written by one thread in a single
// transaction, and each request is completed after the commit that contains its events. The queue
// is bounded (Submit refuses when full, so the handler can answer 503).
class IngestWriter {
 public:
  using Done = std::function<void(IngestResult)>;
  // Called on the writer thread after each successful commit, after the requests are answered,
  // with the committed events (it may move from them) and their outcomes.
  using OnCommit = std::function<void(std::vector<Event>&, const std::vector<InsertOutcome>&)>;
  IngestWriter(Store& store, size_t queue_max, size_t commit_max, OnCommit on_commit = nullptr);
  // With a bus (BUS_URL) a request is answered once its events are committed and published: the
  // writer hands each successful commit's events with the answers to `handoff` (instead of
  // answering itself and calling on_commit), which runs the answers when the bus acknowledged the
  // events (or its publish timeout passed). Failed commits are still answered here.
  using Answer = std::function<void()>;
  using Handoff = std::function<void(std::vector<Event>&, const std::vector<InsertOutcome>&,
                                     std::vector<Answer>&&)>;
  void SetHandoff(Handoff h) { handoff_ = std::move(h); }  // before the first Submit
  ~IngestWriter();
  bool Submit(std::vector<Event> events, Done done);
  void Stop();  // drains the queue, then joins
  size_t QueueDepth() const { return queued_events_.load(); }
  // Totals for /metrics.
  std::atomic<uint64_t> committed{0}, duplicates{0}, commits{0}, failures{0};
  std::atomic<uint64_t> commit_micros{0};

 private:
  void Loop();
  struct Item {
    std::vector<Event> events;
    Done done;
  };
  Store& store_;
  size_t queue_max_, commit_max_;
  OnCommit on_commit_;
  Handoff handoff_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::atomic<size_t> queued_events_{0};
  bool stopping_ = false;
  std::thread thread_;
};

class App {
 public:
  App(ServerConfig cfg, std::unique_ptr<Store> store);
  ~App();
  // First-start seeding (detector defaults, identity key, admin from env), key rotation.
  bool Init(std::string* error);
  void Register(http::Router& r);
  void Shutdown();  // flushes pending ingest
  Store& store() { return *store_; }
  DetectionWorker* detection() { return detection_.get(); }
  EventBus* bus() { return bus_.get(); }  // null without BUS_URL
  AlertManager* alerts() { return alerts_.get(); }
  Notifier* notifier() { return notifier_.get(); }
  LiveHub* hub() { return hub_.get(); }
  const ServerConfig& config() const { return cfg_; }

  // Access levels routes ask for.
  enum class Access { kUser, kAdmin };
  using AuthResult = std::variant<Principal, http::Response>;
  AuthResult Authenticate(const http::Request& req, Access need);
  // Route helpers: authenticate (and for AuthedJson parse a JSON object body) before calling the
  // handler; failures answer with Authenticate's or ParseBody's response.
  using PrincipalHandler = std::function<http::Response(http::Request&, const Principal&)>;
  using JsonHandler =
      std::function<http::Response(http::Request&, const Principal&, const Json& body)>;
  http::Handler Authed(Access need, PrincipalHandler f);
  http::Handler AuthedJson(Access need, JsonHandler f);
  // 429 when the caller exceeded `limit` hits per minute under `key`.
  std::optional<http::Response> Limit(const std::string& key, int limit);
  void Audit(const Principal& p, const http::Request& req, std::string action, std::string target,
             Json details = Json::object());
  // APIs the principal may see: nullopt = all (admin).
  std::optional<std::vector<int64_t>> VisibleApis(const Principal& p);
  // Narrows a list query to `?api_id=` (a whole number: 400 otherwise, 404 when the caller cannot
  // see that API; 0 = events no API matched, admins only) or else to the APIs the caller sees
  // (admins: every API), as a filter's `api_ids` and `restrict_to_apis`.
  std::optional<http::Response> ScopeToApis(const http::Request& req, const Principal& p,
                                            std::vector<int64_t>& api_ids, bool& restrict_to_apis);
  bool CanAccessApi(const Principal& p, const Api& a) const {
    return p.IsAdmin() || a.owner_id == p.user.id;
  }

  // JSON bodies: an object or a 400 naming the problem.
  std::variant<Json, http::Response> ParseBody(const http::Request& req);
  static http::Response Unavailable(const Status& s);
  // 401 for a token neither cached nor in the database; 503 when the database cannot say.
  http::Response UnknownAgentToken();
  static http::Response StoreError(const Status& s);

 private:
  friend struct Routes;
  void RegisterAuth(http::Router& r);
  void RegisterApis(http::Router& r);
  void RegisterAgents(http::Router& r);
  void RegisterIngest(http::Router& r);
  void RegisterQueries(http::Router& r);
  void RegisterConfig(http::Router& r);
  void RegisterOps(http::Router& r);
  void RegisterFindings(http::Router& r);
  void RegisterAlerts(http::Router& r);
  void RegisterChannels(http::Router& r);
  // Alerts and live streams.
  AuthResult AuthenticateWs(const http::Request& req);
  std::string ApiName(int64_t api_id);
  Json AlertOut(const AlertRecord& a);
  Json ChannelOut(const ChannelRecord& c);
  std::variant<AlertRecord, http::Response> VisibleAlert(const Principal& p,
                                                         const std::string& id_text);
  // {"open_by_severity":{...},"open":n,"acknowledged":n} for the APIs (nullopt = all).
  Json OpenBySeverity(const std::optional<std::vector<int64_t>>& apis);
  Status SeedChannels();
  // Stored events after detection (on its thread): live stream and per-second metrics.
  void PublishEvents(const std::vector<Event>& events);
  void PublishFindings(const std::vector<FindingRecord>& findings);
  // To this instance's clients (`local`) and, with BUS_URL, the other instances' (`remote`).
  void PublishLive(Topic topic, int64_t api_id, char kind, const Json& msg, bool local,
                   bool remote);
  void TickerLoop();  // once a second: /ws/metrics; every few seconds: alert auto-resolve
  // Hands changed detector settings or lists to the pipeline (from the next event on); with
  // BUS_URL also tells the other instances (AnnounceSettingsChange).
  void ReloadDetection();
  // With BUS_URL: detector settings, white/blacklists and matcher mutes are shared through the
  // database. A change made through one instance writes a new value into the setting
  // kSettingsGenerationKey; every instance compares it once a second (FollowSettingsChanges)
  // and, when it changed, re-reads detector settings, lists and mutes.
  void AnnounceSettingsChange();
  void FollowSettingsChanges();
  static constexpr const char* kSettingsGenerationKey = "bus.settings_generation";
  std::atomic<uint64_t> settings_changes_{0};  // announced by this instance
  std::string settings_seen_;                  // the ticker thread's last read of the key

  // Ingest internals.
  // nullopt for an unknown key; *unavailable when the keys could not be loaded (database down).
  std::optional<Api> ApiForKey(const std::string& api_key, bool* unavailable = nullptr);
  void InvalidateApiCache();
  int64_t MatchApi(const Event& e);
  std::optional<Agent> AgentForToken(std::string_view token);
  asio::awaitable<IngestResult> Commit(std::vector<Event> events);

  ServerConfig cfg_;
  std::unique_ptr<Store> store_;
  std::optional<crypto::MultiFernet> fernet_;
  std::string identity_key_;
  RateLimiter limiter_;
  std::unique_ptr<LiveHub> hub_;
  LiveMetrics live_metrics_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<AlertManager> alerts_;
  std::unique_ptr<DetectionWorker> detection_;
  std::string geo_unavailable_;  // why the geographic detectors cannot run ("" = they can)
  std::unique_ptr<EventBus> bus_;
  std::unique_ptr<IngestWriter> writer_;
  std::thread ticker_;
  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;

  std::shared_mutex cache_mu_;
  std::unordered_map<std::string, Api> api_by_key_hash_;  // ingest key hash -> API
  std::vector<Api> api_rules_;                            // APIs with match rules
  bool api_cache_loaded_ = false;
  // With BUS_URL other instances change APIs and agents in the shared database: the caches are
  // re-read when older than kSharedCacheMs, and an ingest key unknown here is looked up in the
  // database, so a key created elsewhere works at once and one rotated or deleted elsewhere stops
  // within kSharedCacheMs.
  static constexpr int64_t kSharedCacheMs = 5000;
  std::atomic<int64_t> api_cache_loaded_ms_{0};
  std::atomic<int64_t> agent_cache_cleared_ms_{0};
  std::unordered_map<std::string, Agent> agent_by_token_hash_;
  std::unordered_map<int64_t, std::string> api_names_;  // alert answers; under cache_mu_

  std::mutex revoked_mu_;
  // Serialises account bookkeeping: first-account-is-admin on register, failure count and lock on
  // login (one process; across instances the scale-out issue moves this into the database).
  std::mutex accounts_mu_;
  std::unordered_set<std::string> revoked_jtis_;

 public:
  // Counters for /metrics.
  std::atomic<uint64_t> ingest_rejected{0}, ingest_requests{0}, auth_failures{0};
  std::atomic<uint64_t> http_responses[6] = {};
};

// Wraps a synchronous handler as a coroutine handler.
template <class F>
http::Handler Sync(F f) {
  return [f = std::move(f)](http::Request& req) -> asio::awaitable<http::Response> {
    co_return f(req);
  };
}

// Helpers shared by the route files.
int64_t NowSeconds();
int64_t NowMillis();
std::optional<int64_t> ParseId(const std::string& s);
// A non-negative number from the query string: true and `out` untouched when absent, false when
// not a finite non-negative number.
bool QueryNumber(const http::Request& req, const char* name, double* out);
Json UserJson(const User& u);
Json ApiJson(const Api& a);
Json EventJson(const Event& e);
// Nearest-rank percentile (reorders `v`); 0 for no data.
double Percentile(std::vector<double>& v, double q);
// The `n` largest counts as [{key: name, "count": n}], ties by name.
Json TopN(const std::unordered_map<std::string, int64_t>& counts, size_t n, const char* key);

// The dashboard's static files (DASHBOARD_DIR). A URL path split into a relative file path, or
// nullopt when it could name something outside the directory (".." segments, hidden files,
// backslashes, NUL bytes).
struct StaticPath {
  std::filesystem::path relative;  // empty for "/"
  std::string last_segment;
  bool hashed_asset = false;     // under assets/: content-hashed names, cached for good
  bool looks_like_file = false;  // the last segment has an extension
};
std::optional<StaticPath> ResolveStaticPath(std::string_view url_path);
// The Router fallback serving `dir`: existing files with their content type and caching headers,
// index.html for client-side routes, JSON 404 under /api and /ws and for missing files.
http::Handler DashboardHandler(const std::string& dir, size_t max_file_bytes = 64 << 20);

}  // namespace boing
