// Storage for boing-server behind one interface, with two implementations: SQLite (embedded
// default, a file in the data dir) and MySQL/MariaDB (mysql-connector-c++). Schemas and numbered
// forward-only migrations live in sql/ and are applied by Open*().
//
// Invariants:
//  - Every statement is prepared; no value is ever spliced into SQL text.
//  - Every method is thread-safe (implementations use a connection pool).
//  - Methods never throw: driver exceptions are caught at this boundary and turned into
//    StoreError (a failed Status). `Status::unavailable` marks a database that cannot be reached,
//    so HTTP handlers can answer 503 with Retry-After.
//  - InsertEvents commits before it returns success: that commit is the durability point of
//    ingest (EVENTS.md, "Durability").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "boing/event.h"

namespace boing {

struct Status {
  bool ok = true;
  bool unavailable = false;  // connection lost / database down: retryable
  bool conflict = false;     // unique constraint violated (e.g. username taken)
  std::string message;
  static Status Ok() { return {}; }
  static Status Error(std::string m) { return {false, false, false, std::move(m)}; }
  static Status Unavailable(std::string m) { return {false, true, false, std::move(m)}; }
  static Status Conflict(std::string m) { return {false, false, true, std::move(m)}; }
  explicit operator bool() const { return ok; }
};

struct User {
  int64_t id = 0;
  std::string username;
  std::string email;
  std::string password_hash;  // Argon2id PHC string
  std::string role;           // "admin" | "user"
  bool disabled = false;
  int failed_logins = 0;
  int64_t locked_until = 0;  // unix seconds, 0 = not locked
  int64_t created_at = 0;
};

struct Api {
  int64_t id = 0;
  std::string name;
  std::string base_url;
  int64_t owner_id = 0;
  std::string settings_json = "{}";
  std::string ingest_key_hash;      // hex SHA-256 of the ingest key
  std::string ingest_key_prefix;    // first characters, to recognise a key without storing it
  std::string upstream_secret_enc;  // Fernet token, "" when none
  // Match rules for sensor events (which carry no ingest key). Empty / 0 = any.
  std::string match_host;
  int match_port = 0;
  std::string match_base_path;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct EnrollmentToken {
  int64_t id = 0;
  std::string token_hash;  // hex SHA-256
  std::string name;        // label given by the admin
  int64_t created_by = 0;
  int64_t expires_at = 0;
  int64_t used_at = 0;  // 0 = unused
  int64_t created_at = 0;
};

struct Agent {
  int64_t id = 0;
  std::string agent_id;    // public id used in events (agent_id field)
  std::string token_hash;  // hex SHA-256 of the agent token
  std::string hostname;
  std::string version;
  int64_t enrolled_at = 0;
  int64_t last_seen = 0;
  bool revoked = false;
  std::string counters_json = "{}";  // last heartbeat's counters
  std::string rates_json = "[]";     // last heartbeat's per-IP rate samples
};

struct DetectorConfig {
  std::string id;  // stable: "rate_limit", "sqli", ...
  std::string name;
  std::string stage;  // "rules" | "statistics" | "ml" | "classifier"
  bool enabled = true;
  std::string severity = "medium";
  std::string config_json = "{}";  // thresholds, windows, ...
  int64_t updated_at = 0;
  int64_t updated_by = 0;
};

struct ListEntry {
  int64_t id = 0;
  std::string list;  // "whitelist" | "blacklist"
  std::string kind;  // "ip" | "cidr" | "identity" | "api_key"
  std::string value;
  std::string reason;
  int64_t api_id = 0;  // 0 = all APIs
  int64_t created_by = 0;
  int64_t created_at = 0;
  int64_t expires_at = 0;  // 0 = never
};

struct AuditEntry {
  int64_t id = 0;
  int64_t ts_ms = 0;
  int64_t user_id = 0;
  std::string username;
  std::string action;  // e.g. "api.create"
  std::string target;  // e.g. "api:12"
  std::string client_ip;
  std::string details_json = "{}";
};

// One finding of the detection pipeline as stored (server/detect produces them).
struct FindingRecord {
  int64_t id = 0;
  int64_t api_id = 0;
  int64_t event_id = 0;  // 0 when not tied to one stored event
  double ts = 0;         // the event's timestamp, Unix seconds
  std::string detector;
  std::string severity;   // info | low | medium | high | critical
  int severity_rank = 0;  // 0 (info) .. 4 (critical), for "at least" filters
  double score = 0;
  std::string actor;  // ip:<addr> | id:<identity> | api:<id>
  std::string endpoint_template;
  std::string method;
  std::string client_ip;
  std::string identity;
  std::string message;
  std::string evidence_json = "{}";
  double created_at = 0;
};

struct FindingFilter {
  std::vector<int64_t> api_ids;  // with restrict_to_apis: only these (empty = nothing)
  bool restrict_to_apis = false;
  std::string detector;
  int min_severity_rank = 0;
  std::string actor;
  std::string client_ip;
  int64_t event_id = 0;
  double from_ts = 0;     // inclusive; 0 = no bound
  double to_ts = 0;       // exclusive; 0 = no bound
  int64_t before_id = 0;  // keyset pagination: ids below this, newest first
  int limit = 100;
};

// An alert: findings of one fingerprint (detector + actor + API + endpoint template) grouped.
struct AlertRecord {
  int64_t id = 0;
  std::string fingerprint;  // hex SHA-256 of the four parts
  int64_t api_id = 0;
  std::string detector;
  std::string severity;
  int severity_rank = 0;
  std::string status = "open";  // open | acknowledged | resolved
  std::string actor;
  std::string endpoint_template;
  int64_t count = 0;
  double first_seen = 0;  // event time of the first / last finding, Unix seconds
  double last_seen = 0;
  int64_t touched_at = 0;  // wall clock of the last finding (auto-resolve runs on it)
  std::string message;
  std::string evidence_json = "{}";
  int64_t muted_until = 0;  // 0 = not muted
  std::string acknowledged_by;
  int64_t acknowledged_at = 0;
  std::string ack_comment;
  int64_t resolved_at = 0;
  std::string resolved_by;
  int64_t created_at = 0;
};

struct BusLease {
  int part = 0;
  std::string holder;  // "" when never held or released
  int64_t expires_at_ms = 0;
  int64_t epoch = 0;  // incremented on every change of holder
  int64_t acquired_at_ms = 0;
};

struct BusOutboxRun {  // committed events first_id..last_id (consecutive ids) still to publish
  int64_t first_id = 0;
  int64_t last_id = 0;
  int64_t created_at_ms = 0;
};

struct BusMember {
  std::string instance_id;
  int64_t expires_at_ms = 0;  // its last heartbeat + the lease TTL
};

struct AlertFilter {
  std::vector<int64_t> api_ids;  // with restrict_to_apis: only these (empty = nothing)
  bool restrict_to_apis = false;
  std::string status;
  int min_severity_rank = 0;
  std::string detector;
  std::string actor;
  double from_ts = 0;  // on last_seen, inclusive; 0 = no bound
  double to_ts = 0;    // exclusive
  // Keyset pagination: rows strictly older than (before_ts, before_id) in (last_seen, id) order.
  std::optional<double> before_ts;
  int64_t before_id = 0;
  int limit = 100;
};

// A matcher mute: alerts whose detector, actor and API match (empty / 0 = any) are not notified.
struct MuteRecord {
  int64_t id = 0;
  std::string detector;
  std::string actor;
  int64_t api_id = 0;
  int64_t expires_at = 0;
  std::string comment;
  int64_t created_by = 0;
  int64_t created_at = 0;
};

struct ChannelRecord {
  int64_t id = 0;
  std::string name;
  std::string kind;  // email | webhook | slack
  bool enabled = true;
  std::string min_severity = "info";
  std::string api_ids_json = "[]";  // [] = every API
  std::string config_enc;           // Fernet token of the config JSON (it holds secrets)
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct DeliveryRecord {
  int64_t id = 0;
  int64_t alert_id = 0;
  int64_t channel_id = 0;
  std::string channel_name;
  std::string kind;
  std::string status = "pending";  // pending | sent | failed | muted
  int attempts = 0;
  std::string last_error;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// Result of inserting one event of a batch.
enum class InsertOutcome { kInserted, kDuplicate };

struct LogFilter {
  std::vector<int64_t> api_ids;   // empty = all (caller enforces ownership by filling this)
  bool restrict_to_apis = false;  // true with empty api_ids = nothing visible
  std::string client_ip;
  std::string endpoint;  // exact match, or prefix match when it ends with '*'
  std::string method;
  int status_min = 0;
  int status_max = 0;  // 0 = no bound
  double from_ts = 0;  // Unix seconds, inclusive; 0 = no bound
  double to_ts = 0;    // exclusive; 0 = no bound
  // Keyset pagination: rows strictly older than (before_ts, before_id) in (timestamp, id) order,
  // newest first.
  std::optional<double> before_ts;
  int64_t before_id = 0;
  int limit = 100;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string Backend() const = 0;  // "sqlite" | "mysql"
  virtual Status Ping() = 0;

  // Users.
  virtual Status CreateUser(User& u) = 0;  // sets u.id; Conflict on duplicate username
  virtual std::optional<User> GetUserByName(const std::string& username) = 0;
  virtual std::optional<User> GetUser(int64_t id) = 0;
  virtual std::vector<User> ListUsers() = 0;
  virtual Status UpdateUser(const User& u) = 0;  // role, email, disabled, password_hash, lockout
  virtual Status DeleteUser(int64_t id) = 0;
  virtual int64_t CountUsers() = 0;

  // Revoked JWT ids (logout). Expired rows may be purged.
  virtual Status RevokeToken(const std::string& jti, int64_t expires_at) = 0;
  virtual bool IsTokenRevoked(const std::string& jti) = 0;
  virtual std::vector<std::pair<std::string, int64_t>> ListRevokedTokens() = 0;

  // Monitored APIs.
  virtual Status CreateApi(Api& a) = 0;  // sets a.id
  virtual std::optional<Api> GetApi(int64_t id) = 0;
  virtual std::vector<Api> ListApis(std::optional<int64_t> owner_id) = 0;
  virtual Status UpdateApi(const Api& a) = 0;
  virtual Status DeleteApi(int64_t id) = 0;  // also deletes its events
  virtual std::optional<Api> GetApiByKeyHash(const std::string& ingest_key_hash) = 0;

  // Agents.
  virtual Status CreateEnrollmentToken(EnrollmentToken& t) = 0;
  // Marks the token used and creates the agent atomically. Fails when the token is unknown,
  // used or expired (message says which).
  virtual Status EnrollAgent(const std::string& token_hash, int64_t now, Agent& agent) = 0;
  virtual std::optional<Agent> GetAgentByTokenHash(const std::string& token_hash) = 0;
  virtual std::vector<Agent> ListAgents() = 0;
  virtual Status UpdateAgentHeartbeat(const std::string& agent_id, int64_t now,
                                      const std::string& version, const std::string& counters_json,
                                      const std::string& rates_json) = 0;
  virtual Status RevokeAgent(const std::string& agent_id) = 0;

  // Events: one transaction for the whole vector, committed before return. Events with an
  // (agent_id, seq) already stored are reported kDuplicate and not stored again. `outcomes` is
  // resized to events.size(). Sets Event::id for inserted rows.
  virtual Status InsertEvents(std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) = 0;
  virtual std::vector<Event> QueryLogs(const LogFilter& f) = 0;
  // Streams matching events oldest first (ignores limit/before_*), stopping when `fn` returns
  // false. Fills every field. Used by metrics and CSV export.
  virtual Status ScanEvents(const LogFilter& f, const std::function<bool(const Event&)>& fn) = 0;
  virtual int64_t CountEvents() = 0;
  virtual std::optional<Event> GetEvent(int64_t id) = 0;

  // Detector configs.
  virtual std::vector<DetectorConfig> ListDetectors() = 0;
  virtual std::optional<DetectorConfig> GetDetector(const std::string& id) = 0;
  virtual Status InsertDetectorIfMissing(const DetectorConfig& d) = 0;  // first-start defaults
  virtual Status UpdateDetector(const DetectorConfig& d) = 0;

  // White/black lists.
  virtual Status AddListEntry(ListEntry& e) = 0;
  virtual std::vector<ListEntry> ListEntries(const std::string& list) = 0;
  virtual std::optional<ListEntry> GetListEntry(int64_t id) = 0;
  virtual Status DeleteListEntry(const std::string& list, int64_t id) = 0;

  // Findings: InsertFindings writes all in one transaction and sets their ids; QueryFindings
  // returns the newest first.
  virtual Status InsertFindings(std::vector<FindingRecord>& findings) = 0;
  virtual std::vector<FindingRecord> QueryFindings(const FindingFilter& f) = 0;

  // Alerts. SaveAlerts inserts (id 0, sets the id) or updates every record in one transaction.
  virtual Status SaveAlerts(std::vector<AlertRecord*>& alerts) = 0;
  virtual std::optional<AlertRecord> GetAlert(int64_t id) = 0;
  virtual std::vector<AlertRecord> QueryAlerts(const AlertFilter& f) = 0;
  virtual std::vector<AlertRecord> ActiveAlerts() = 0;  // open or acknowledged
  // The active alerts among these fingerprints (at most one each: a unique key guards it, so
  // several server instances cannot both open one; inserting a second gives Status::conflict).
  virtual std::vector<AlertRecord> ActiveAlertsByFingerprint(
      const std::vector<std::string>& fingerprints) = 0;
  // (status, severity, count) of open and acknowledged alerts of the filter's APIs.
  struct AlertCount {
    std::string status, severity;
    int64_t count = 0;
  };
  virtual std::vector<AlertCount> CountActiveAlerts(const AlertFilter& f) = 0;

  // Matcher mutes.
  virtual Status AddMute(MuteRecord& m) = 0;
  virtual std::vector<MuteRecord> ListMutes() = 0;
  virtual std::optional<MuteRecord> GetMute(int64_t id) = 0;
  virtual Status DeleteMute(int64_t id) = 0;

  // Notification channels (names are unique: Conflict).
  virtual Status CreateChannel(ChannelRecord& c) = 0;
  virtual Status UpdateChannel(const ChannelRecord& c) = 0;
  virtual std::optional<ChannelRecord> GetChannel(int64_t id) = 0;
  virtual std::vector<ChannelRecord> ListChannels() = 0;
  virtual Status DeleteChannel(int64_t id) = 0;

  // Deliveries of notifications, oldest first per alert.
  virtual Status InsertDelivery(DeliveryRecord& d) = 0;
  virtual Status UpdateDelivery(const DeliveryRecord& d) = 0;
  virtual std::vector<DeliveryRecord> ListDeliveries(int64_t alert_id) = 0;
  // Deliveries still "pending" (queued or waiting for a retry when the server stopped) created at
  // or after `since`, oldest first, at most `limit`.
  virtual std::vector<DeliveryRecord> ListPendingDeliveries(int64_t since, size_t limit) = 0;
  // Marks "failed", with `error`, the deliveries still "pending" created before `before`.
  virtual Status FailPendingDeliveries(int64_t before, int64_t now, const std::string& error) = 0;

  // Audit log, newest first.
  virtual Status AddAudit(const AuditEntry& a) = 0;
  virtual std::vector<AuditEntry> ListAudit(int limit, int64_t before_id) = 0;

  // Small key/value settings (identity key, schema facts).
  virtual std::optional<std::string> GetSetting(const std::string& key) = 0;
  virtual Status PutSetting(const std::string& key, const std::string& value) = 0;

  // Scale-out bus (BUS_URL): partition leases and live members, times in Unix milliseconds.
  // Creates the lease rows 0..partitions-1 that do not exist yet.
  virtual Status SeedBusPartitions(int partitions) = 0;
  // Records that `instance` is alive until `expires_at_ms` (drops members expired before `now_ms`).
  virtual Status BusHeartbeat(const std::string& instance, int64_t now_ms, int64_t expires_at_ms,
                              int64_t started_at_ms) = 0;
  virtual Status BusLeave(const std::string& instance) = 0;
  // Instances whose heartbeat has not expired at `now_ms`, sorted by id.
  virtual std::vector<BusMember> BusMembers(int64_t now_ms) = 0;
  // Takes or renews the lease of `part` for `holder` until `expires_at_ms` when it is free,
  // expired at `now_ms` or already held by `holder`; *got says whether it did.
  virtual Status TakeBusLease(int part, const std::string& holder, int64_t now_ms,
                              int64_t expires_at_ms, bool* got) = 0;
  virtual Status ReleaseBusLease(int part, const std::string& holder) = 0;
  virtual std::vector<BusLease> ListBusLeases() = 0;
  // The publish outbox: runs of consecutive committed event ids not yet on the bus.
  virtual Status AddBusOutbox(const std::vector<BusOutboxRun>& runs) = 0;
  // The oldest runs (lowest first id), at most `limit`.
  virtual std::vector<BusOutboxRun> ListBusOutbox(int limit) = 0;
  // The run starting at `first_id` was published up to `published_to`: it now starts after it,
  // or is removed when that was its end. A no-op when the run no longer starts at `first_id`.
  virtual Status AdvanceBusOutbox(int64_t first_id, int64_t published_to) = 0;
  // Events still in the outbox (the sum of the runs' lengths).
  virtual int64_t BusOutboxEvents() = 0;
  // Events with first_id <= id <= last_id, by id, at most `limit`.
  virtual std::vector<Event> EventsByIdRange(int64_t first_id, int64_t last_id, int limit) = 0;
};

struct SqliteOptions {
  std::string path;         // database file
  bool fsync_full = false;  // synchronous=FULL (power-loss safe) instead of NORMAL (crash safe)
  int pool_size = 4;        // reader connections
};

struct MysqlOptions {
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string user;
  std::string password;
  std::string database = "boing";
  int pool_size = 8;
  // A replica for log and metrics reads (QueryLogs, ScanEvents); empty = everything on `host`.
  // An empty read_user means `user` and `password`.
  std::string read_host;
  int read_port = 3306;
  std::string read_user;
  std::string read_password;
};

// Open, create the schema if needed and apply pending migrations (the files of sql/, embedded in
// the binary at build time). On failure returns nullptr and
// sets `error` to a message naming what failed (file, host, migration number).
std::unique_ptr<Store> OpenSqliteStore(const SqliteOptions& o, std::string* error);
std::unique_ptr<Store> OpenMysqlStore(const MysqlOptions& o, std::string* error);

}  // namespace boing
