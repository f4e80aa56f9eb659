// One Store over the sql::Conn adapter, for SQLite and MySQL/MariaDB. Only the upserts and the
// ingest path (InsertEvents) differ by dialect.
//
// Connections: a pool for reads (and, on MySQL, for every write but ingest) plus one exclusive
// connection. On SQLite the exclusive connection takes every write (SQLite has a single writer, and
// queueing on a mutex beats retrying SQLITE_BUSY); on MySQL it takes InsertEvents only, so the
// large multi-row INSERT statements are prepared once.
#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "boing/store.h"
#include "mysql_conn.h"
#include "sqlite_conn.h"
#include "store_internal.h"

namespace boing {
namespace {

using sql::Conn;
using sql::Dialect;
using sql::Stmt;
using store_internal::Migration;

constexpr size_t kMaxCachedStatements = 128;
constexpr int kDefaultLimit = 100;
constexpr int kMaxLimit = 1000;
constexpr int kMysqlScanPage = 1000;
constexpr size_t kMysqlInsertRows = 200;       // rows per multi-row INSERT
constexpr size_t kMysqlLookupChunk = 256;      // seqs per duplicate lookup
constexpr size_t kMaxFilterApis = 16384;       // api_ids in one LogFilter
constexpr int kCheckpointPages = 4096;         // WAL size that wakes the background checkpointer
constexpr int kInlineCheckpointPages = 65536;  // the writer checkpoints itself beyond this
constexpr auto kPoolWait = std::chrono::seconds(30);

double NowF() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t Now() { return static_cast<int64_t>(NowF()); }

// Smallest power of two >= n (n >= 1): statements with variable-length IN lists or VALUES lists
// come in a few shapes only, so the statement caches stay small.
size_t Bucket(size_t n) {
  size_t b = 1;
  while (b < n) b <<= 1;
  return b;
}

std::string Placeholders(size_t n) {
  std::string p;
  p.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) p += i ? ",?" : "?";
  return p;
}

size_t Utf8Chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// --- events ---------------------------------------------------------------------------------

constexpr char kEventInsertCols[] =
    "api_id, timestamp, method, endpoint, client_ip, headers_json, status_code, latency_ms, "
    "body_size, response_size, query, payload, user_agent, host, identity, server_ip, server_port, "
    "tls, protocol, agent_id, seq, host_name, pid, comm, cgroup_id, container_id, pod, namespace, "
    "received_at";
constexpr size_t kEventParams = 29;
constexpr char kEventSelectCols[] =
    "id, api_id, timestamp, method, endpoint, client_ip, headers_json, status_code, latency_ms, "
    "body_size, response_size, query, payload, user_agent, host, identity, server_ip, server_port, "
    "tls, protocol, agent_id, seq, host_name, pid, comm, cgroup_id, container_id, pod, namespace";

// Binds kEventInsertCols from `base`. Strings are bound without copying: `e` and `headers_json`
// must outlive the statement's execution.
void BindEvent(Stmt* s, int base, const Event& e, std::string_view headers_json, double received) {
  int i = base;
  s->BindInt(i++, e.api_id);
  s->BindDouble(i++, e.timestamp);
  s->BindTextRef(i++, e.method);
  s->BindTextRef(i++, e.endpoint);
  s->BindTextRef(i++, e.client_ip);
  s->BindTextRef(i++, headers_json);
  s->BindInt(i++, e.status_code);
  s->BindDouble(i++, e.latency_ms);
  s->BindOptInt(i++, e.body_size);
  s->BindOptInt(i++, e.response_size);
  s->BindTextRef(i++, e.query);
  s->BindTextRef(i++, e.payload);
  s->BindTextRef(i++, e.user_agent);
  s->BindTextRef(i++, e.host);
  s->BindTextRef(i++, e.identity);
  s->BindTextRef(i++, e.server_ip);
  if (e.server_port) {
    s->BindInt(i++, *e.server_port);
  } else {
    s->BindNull(i++);
  }
  if (e.tls) {
    s->BindInt(i++, *e.tls ? 1 : 0);
  } else {
    s->BindNull(i++);
  }
  s->BindTextRef(i++, e.protocol);
  // NULL, not '', for application events: NULLs never collide in the (agent_id, seq) index.
  if (e.agent_id.empty()) {
    s->BindNull(i++);
  } else {
    s->BindTextRef(i++, e.agent_id);
  }
  s->BindOptInt(i++, e.seq);
  s->BindTextRef(i++, e.host_name);
  s->BindOptInt(i++, e.pid);
  s->BindTextRef(i++, e.comm);
  if (e.cgroup_id) {
    s->BindInt(i++, static_cast<int64_t>(*e.cgroup_id));  // stored two's complement
  } else {
    s->BindNull(i++);
  }
  s->BindTextRef(i++, e.container_id);
  s->BindTextRef(i++, e.pod);
  s->BindTextRef(i++, e.k8s_namespace);
  s->BindDouble(i++, received);
}

Event ReadEvent(Stmt* s) {
  Event e;
  int c = 0;
  e.id = s->Int(c++);
  e.api_id = s->Int(c++);
  e.timestamp = s->Double(c++);
  e.method = s->Text(c++);
  e.endpoint = s->Text(c++);
  e.client_ip = s->Text(c++);
  store_internal::ParseHeadersJson(s->Text(c++), e.headers);
  e.status_code = static_cast<int>(s->Int(c++));
  e.latency_ms = s->Double(c++);
  e.body_size = s->OptInt(c++);
  e.response_size = s->OptInt(c++);
  e.query = s->Text(c++);
  e.payload = s->Text(c++);
  e.user_agent = s->Text(c++);
  e.host = s->Text(c++);
  e.identity = s->Text(c++);
  e.server_ip = s->Text(c++);
  if (auto v = s->OptInt(c++)) e.server_port = static_cast<int>(*v);
  if (auto v = s->OptInt(c++)) e.tls = *v != 0;
  e.protocol = s->Text(c++);
  if (!s->IsNull(c)) e.agent_id = s->Text(c);
  ++c;
  e.seq = s->OptInt(c++);
  e.host_name = s->Text(c++);
  e.pid = s->OptInt(c++);
  e.comm = s->Text(c++);
  if (auto v = s->OptInt(c++)) e.cgroup_id = static_cast<uint64_t>(*v);
  e.container_id = s->Text(c++);
  e.pod = s->Text(c++);
  e.k8s_namespace = s->Text(c++);
  return e;
}

// A WHERE clause and its parameters, built from a LogFilter. Text parameters point into the filter.
struct Param {
  enum Kind { kInt, kDouble, kText } kind;
  int64_t i = 0;
  double d = 0;
  std::string_view s;
};

struct Where {
  std::string sql;
  std::vector<Param> params;

  void Add(std::string_view cond) {
    sql += sql.empty() ? " WHERE " : " AND ";
    sql += cond;
  }
  void Int(int64_t v) { params.push_back({Param::kInt, v, 0, {}}); }
  void Double(double v) { params.push_back({Param::kDouble, 0, v, {}}); }
  void Text(std::string_view v) { params.push_back({Param::kText, 0, 0, v}); }
  void Bind(Stmt* s) const {
    int i = 1;
    for (const Param& p : params) {
      if (p.kind == Param::kInt) {
        s->BindInt(i++, p.i);
      } else if (p.kind == Param::kDouble) {
        s->BindDouble(i++, p.d);
      } else {
        s->BindTextRef(i++, p.s);
      }
    }
  }
};

// false when the filter can match nothing (or names more APIs than a statement can carry).
bool BuildWhere(const LogFilter& f, Where& w) {
  if (f.restrict_to_apis && f.api_ids.empty()) return false;
  if (!f.api_ids.empty()) {
    if (f.api_ids.size() > kMaxFilterApis) return false;
    if (f.api_ids.size() == 1) {
      w.Add("api_id = ?");
      w.Int(f.api_ids[0]);
    } else {
      size_t n = Bucket(f.api_ids.size());
      w.Add("api_id IN (" + Placeholders(n) + ")");
      for (size_t i = 0; i < n; ++i) w.Int(f.api_ids[std::min(i, f.api_ids.size() - 1)]);
    }
  }
  if (!f.client_ip.empty()) {
    w.Add("client_ip = ?");
    w.Text(f.client_ip);
  }
  if (!f.method.empty()) {
    w.Add("method = ?");
    w.Text(f.method);
  }
  if (!f.endpoint.empty()) {
    if (f.endpoint.back() == '*') {
      // A prefix compare rather than LIKE: no wildcard escaping, and case-sensitive on both
      // backends (SQLite's LIKE is not). SUBSTR counts characters on both.
      std::string_view prefix(f.endpoint.data(), f.endpoint.size() - 1);
      if (!prefix.empty()) {
        w.Add("SUBSTR(endpoint, 1, ?) = ?");
        w.Int(static_cast<int64_t>(Utf8Chars(prefix)));
        w.Text(prefix);
      }
    } else {
      w.Add("endpoint = ?");
      w.Text(f.endpoint);
    }
  }
  if (f.status_min > 0) {
    w.Add("status_code >= ?");
    w.Int(f.status_min);
  }
  if (f.status_max > 0) {
    w.Add("status_code <= ?");
    w.Int(f.status_max);
  }
  if (f.from_ts > 0) {
    w.Add("timestamp >= ?");
    w.Double(f.from_ts);
  }
  if (f.to_ts > 0) {
    w.Add("timestamp < ?");
    w.Double(f.to_ts);
  }
  return true;
}

// --- alerts, mutes, channels ----------------------------------------------------------------

constexpr char kAlertWriteCols[] =
    "fingerprint, api_id, detector, severity, severity_rank, status, actor, endpoint_template, "
    "count, first_seen, last_seen, touched_at, message, evidence_json, muted_until, "
    "acknowledged_by, acknowledged_at, ack_comment, resolved_at, resolved_by, created_at";
constexpr char kAlertCols[] =
    "id, fingerprint, api_id, detector, severity, severity_rank, status, actor, "
    "endpoint_template, count, first_seen, last_seen, touched_at, message, evidence_json, "
    "muted_until, acknowledged_by, acknowledged_at, ack_comment, resolved_at, resolved_by, "
    "created_at";
// Binds kAlertWriteCols (1..21).
void BindAlert(Stmt* s, const AlertRecord& a) {
  s->BindText(1, a.fingerprint);
  s->BindInt(2, a.api_id);
  s->BindText(3, a.detector);
  s->BindText(4, a.severity);
  s->BindInt(5, a.severity_rank);
  s->BindText(6, a.status);
  s->BindText(7, a.actor);
  s->BindText(8, a.endpoint_template);
  s->BindInt(9, a.count);
  s->BindDouble(10, a.first_seen);
  s->BindDouble(11, a.last_seen);
  s->BindInt(12, a.touched_at);
  s->BindText(13, a.message);
  s->BindText(14, a.evidence_json);
  s->BindInt(15, a.muted_until);
  s->BindText(16, a.acknowledged_by);
  s->BindInt(17, a.acknowledged_at);
  s->BindText(18, a.ack_comment);
  s->BindInt(19, a.resolved_at);
  s->BindText(20, a.resolved_by);
  s->BindInt(21, a.created_at);
}
AlertRecord ReadAlert(Stmt* s) {
  AlertRecord a;
  int c = 0;
  a.id = s->Int(c++);
  a.fingerprint = s->Text(c++);
  a.api_id = s->Int(c++);
  a.detector = s->Text(c++);
  a.severity = s->Text(c++);
  a.severity_rank = static_cast<int>(s->Int(c++));
  a.status = s->Text(c++);
  a.actor = s->Text(c++);
  a.endpoint_template = s->Text(c++);
  a.count = s->Int(c++);
  a.first_seen = s->Double(c++);
  a.last_seen = s->Double(c++);
  a.touched_at = s->Int(c++);
  a.message = s->Text(c++);
  a.evidence_json = s->Text(c++);
  a.muted_until = s->Int(c++);
  a.acknowledged_by = s->Text(c++);
  a.acknowledged_at = s->Int(c++);
  a.ack_comment = s->Text(c++);
  a.resolved_at = s->Int(c++);
  a.resolved_by = s->Text(c++);
  a.created_at = s->Int(c++);
  return a;
}

// false when the filter can match nothing.
bool AlertWhere(const AlertFilter& f, Where& w) {
  if (f.restrict_to_apis && f.api_ids.empty()) return false;
  if (f.restrict_to_apis) {
    if (f.api_ids.size() > kMaxFilterApis) return false;
    size_t n = Bucket(f.api_ids.size());
    w.Add("api_id IN (" + Placeholders(n) + ")");
    for (size_t i = 0; i < n; ++i) w.Int(f.api_ids[std::min(i, f.api_ids.size() - 1)]);
  }
  if (!f.status.empty()) {
    w.Add("status = ?");
    w.Text(f.status);
  }
  if (f.min_severity_rank > 0) {
    w.Add("severity_rank >= ?");
    w.Int(f.min_severity_rank);
  }
  if (!f.detector.empty()) {
    w.Add("detector = ?");
    w.Text(f.detector);
  }
  if (!f.actor.empty()) {
    w.Add("actor = ?");
    w.Text(f.actor);
  }
  if (f.from_ts > 0) {
    w.Add("last_seen >= ?");
    w.Double(f.from_ts);
  }
  if (f.to_ts > 0) {
    w.Add("last_seen < ?");
    w.Double(f.to_ts);
  }
  return true;
}

constexpr char kMuteCols[] =
    "id, detector, actor, api_id, expires_at, comment, created_by, created_at";
MuteRecord ReadMute(Stmt* s) {
  MuteRecord m;
  m.id = s->Int(0);
  m.detector = s->Text(1);
  m.actor = s->Text(2);
  m.api_id = s->Int(3);
  m.expires_at = s->Int(4);
  m.comment = s->Text(5);
  m.created_by = s->Int(6);
  m.created_at = s->Int(7);
  return m;
}

constexpr char kChannelCols[] =
    "id, name, kind, enabled, min_severity, api_ids_json, config_enc, created_at, updated_at";
ChannelRecord ReadChannel(Stmt* s) {
  ChannelRecord c;
  c.id = s->Int(0);
  c.name = s->Text(1);
  c.kind = s->Text(2);
  c.enabled = s->Int(3) != 0;
  c.min_severity = s->Text(4);
  c.api_ids_json = s->Text(5);
  c.config_enc = s->Text(6);
  c.created_at = s->Int(7);
  c.updated_at = s->Int(8);
  return c;
}
// Binds name .. config_enc (1..6).
void BindChannel(Stmt* s, const ChannelRecord& c) {
  s->BindText(1, c.name);
  s->BindText(2, c.kind);
  s->BindInt(3, c.enabled ? 1 : 0);
  s->BindText(4, c.min_severity);
  s->BindText(5, c.api_ids_json);
  s->BindText(6, c.config_enc);
}

// --- other rows -----------------------------------------------------------------------------

constexpr char kUserCols[] =
    "id, username, email, password_hash, role, disabled, failed_logins, locked_until, created_at";
User ReadUser(Stmt* s) {
  User u;
  u.id = s->Int(0);
  u.username = s->Text(1);
  u.email = s->Text(2);
  u.password_hash = s->Text(3);
  u.role = s->Text(4);
  u.disabled = s->Int(5) != 0;
  u.failed_logins = static_cast<int>(s->Int(6));
  u.locked_until = s->Int(7);
  u.created_at = s->Int(8);
  return u;
}

constexpr char kApiCols[] =
    "id, name, base_url, owner_id, settings_json, ingest_key_hash, ingest_key_prefix, "
    "upstream_secret_enc, match_host, match_port, match_base_path, created_at, updated_at";
Api ReadApi(Stmt* s) {
  Api a;
  a.id = s->Int(0);
  a.name = s->Text(1);
  a.base_url = s->Text(2);
  a.owner_id = s->Int(3);
  a.settings_json = s->Text(4);
  a.ingest_key_hash = s->Text(5);
  a.ingest_key_prefix = s->Text(6);
  a.upstream_secret_enc = s->Text(7);
  a.match_host = s->Text(8);
  a.match_port = static_cast<int>(s->Int(9));
  a.match_base_path = s->Text(10);
  a.created_at = s->Int(11);
  a.updated_at = s->Int(12);
  return a;
}
// Binds name .. match_base_path (1..10).
void BindApiFields(Stmt* s, const Api& a) {
  s->BindText(1, a.name);
  s->BindText(2, a.base_url);
  s->BindInt(3, a.owner_id);
  s->BindText(4, a.settings_json);
  s->BindText(5, a.ingest_key_hash);
  s->BindText(6, a.ingest_key_prefix);
  s->BindText(7, a.upstream_secret_enc);
  s->BindText(8, a.match_host);
  s->BindInt(9, a.match_port);
  s->BindText(10, a.match_base_path);
}

constexpr char kAgentCols[] =
    "id, agent_id, token_hash, hostname, version, enrolled_at, last_seen, revoked, counters_json, "
    "rates_json";
Agent ReadAgent(Stmt* s) {
  Agent a;
  a.id = s->Int(0);
  a.agent_id = s->Text(1);
  a.token_hash = s->Text(2);
  a.hostname = s->Text(3);
  a.version = s->Text(4);
  a.enrolled_at = s->Int(5);
  a.last_seen = s->Int(6);
  a.revoked = s->Int(7) != 0;
  a.counters_json = s->Text(8);
  a.rates_json = s->Text(9);
  return a;
}

constexpr char kDetectorCols[] =
    "id, name, stage, enabled, severity, config_json, updated_at, updated_by";
DetectorConfig ReadDetector(Stmt* s) {
  DetectorConfig d;
  d.id = s->Text(0);
  d.name = s->Text(1);
  d.stage = s->Text(2);
  d.enabled = s->Int(3) != 0;
  d.severity = s->Text(4);
  d.config_json = s->Text(5);
  d.updated_at = s->Int(6);
  d.updated_by = s->Int(7);
  return d;
}

constexpr char kEntryCols[] =
    "id, list, kind, value, reason, api_id, created_by, created_at, expires_at";
ListEntry ReadEntry(Stmt* s) {
  ListEntry e;
  e.id = s->Int(0);
  e.list = s->Text(1);
  e.kind = s->Text(2);
  e.value = s->Text(3);
  e.reason = s->Text(4);
  e.api_id = s->Int(5);
  e.created_by = s->Int(6);
  e.created_at = s->Int(7);
  e.expires_at = s->Int(8);
  return e;
}

constexpr char kAuditCols[] =
    "id, ts_ms, user_id, username, action, target, client_ip, details_json";
AuditEntry ReadAudit(Stmt* s) {
  AuditEntry a;
  a.id = s->Int(0);
  a.ts_ms = s->Int(1);
  a.user_id = s->Int(2);
  a.username = s->Text(3);
  a.action = s->Text(4);
  a.target = s->Text(5);
  a.client_ip = s->Text(6);
  a.details_json = s->Text(7);
  return a;
}

std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

// --- statement helpers on one connection ----------------------------------------------------

template <class B>
Status ExecOn(Conn& c, const std::string& sql, B&& bind, int64_t* changes = nullptr) {
  Status st;
  Stmt* s = c.Prepare(sql, &st);
  if (!s) return st;
  bind(s);
  return s->Exec(changes);
}

template <class T, class B, class R>
std::vector<T> AllOn(Conn& c, const std::string& sql, B&& bind, R&& read) {
  std::vector<T> out;
  Status st;
  Stmt* s = c.Prepare(sql, &st);
  if (!s) return out;
  bind(s);
  while (s->Next()) out.push_back(read(s));
  s->Reset();
  return out;
}

template <class T, class B, class R>
std::optional<T> OneOn(Conn& c, const std::string& sql, B&& bind, R&& read) {
  Status st;
  Stmt* s = c.Prepare(sql, &st);
  if (!s) return std::nullopt;
  bind(s);
  std::optional<T> out;
  if (s->Next()) out = read(s);
  s->Reset();
  return out;
}

// Runs `fn` inside a transaction; commits when it returns ok, else rolls back.
template <class F>
Status Tx(Conn& c, F&& fn) {
  Status st = c.Begin();
  if (!st.ok) return st;
  try {
    st = fn();
  } catch (...) {
    c.Rollback();
    throw;
  }
  if (st.ok) st = c.Commit();
  if (!st.ok) c.Rollback();
  return st;
}

constexpr auto kNoBind = [](Stmt*) {};

// --- connections ----------------------------------------------------------------------------

using Factory = std::function<std::unique_ptr<Conn>(Status*)>;

// Up to `max` connections, checked out by one caller at a time.
class Pool {
 public:
  Pool(Factory f, int max) : factory_(std::move(f)), max_(std::max(1, max)) {}

  std::unique_ptr<Conn> Acquire(Status* st) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + kPoolWait;
    for (;;) {
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (open_ < max_) {
        ++open_;
        lock.unlock();
        auto c = factory_(st);
        if (!c) {
          lock.lock();
          --open_;
          cv_.notify_one();
          if (st->ok || !st->unavailable) *st = Status::Unavailable(st->message);
        }
        return c;
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        *st = Status::Unavailable("all database connections are busy");
        return nullptr;
      }
    }
  }

  void Release(std::unique_ptr<Conn> c) {
    if (c->Broken()) return Discard(std::move(c));
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(c));
    cv_.notify_one();
  }

  // Closes a connection that is broken or in an unknown state.
  void Discard(std::unique_ptr<Conn> c) {
    c.reset();
    std::lock_guard lock(mu_);
    --open_;
    cv_.notify_one();
  }

  // After one connection turned out broken the idle ones are likely stale too (server restart).
  void DropIdle() {
    std::vector<std::unique_ptr<Conn>> drop;
    {
      std::lock_guard lock(mu_);
      drop.swap(idle_);
      open_ -= static_cast<int>(drop.size());
      cv_.notify_all();
    }
  }

 private:
  Factory factory_;
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;
};

template <class R>
R Fail(const R& fallback, const Status& st) {
  if constexpr (std::is_same_v<R, Status>) {
    return st;
  } else {
    (void)st;
    return fallback;
  }
}

// For the work a method does outside OnPool()/OnExclusive() (building statements, copying).
template <class R, class F>
R Guarded(const R& fallback, F&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Fail(fallback, Status::Error(std::string("store: ") + e.what()));
  } catch (...) {
    return Fail(fallback, Status::Error("store: unknown exception"));
  }
}

class SqlStore final : public Store {
 public:
  void SetReadPool(Factory f, int size) { read_pool_ = std::make_unique<Pool>(std::move(f), size); }
  SqlStore(Dialect d, Factory factory, Factory exclusive_factory, int pool_size)
      : dialect_(d), pool_(std::move(factory), pool_size) {
    if (d == Dialect::kSqlite) {
      exclusive_factory_ = [this, base = std::move(exclusive_factory)](Status* st) {
        auto c = base(st);
        if (c) {
          Conn* raw = c.get();
          sql::SetWalHook(*c, [this, raw](int pages) { OnWalCommit(*raw, pages); });
        }
        return c;
      };
    } else {
      exclusive_factory_ = std::move(exclusive_factory);
    }
  }

  ~SqlStore() override {
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    if (ckpt_thread_.joinable()) ckpt_thread_.join();
  }

  Status Init(std::span<const Migration> migrations, Factory checkpoint_factory,
              std::string* error) {
    std::lock_guard lock(ex_mu_);
    Status st;
    ex_ = exclusive_factory_(&st);
    if (!ex_) {
      *error = st.message;
      return st;
    }
    st = store_internal::Migrate(*ex_, migrations, error);
    if (!st.ok) return st;
    if (checkpoint_factory) {
      ckpt_conn_ = checkpoint_factory(&st);
      if (!ckpt_conn_) {
        *error = st.message;
        return st;
      }
      ckpt_thread_ = std::thread([this] { CheckpointLoop(); });
    }
    return Status::Ok();
  }

  // Called by SQLite after each commit on the exclusive connection.
  void OnWalCommit(Conn& writer, int pages) {
    if (pages >= kInlineCheckpointPages) {
      // The background checkpointer cannot keep up: copy the WAL back here, between two writes.
      sql::CheckpointPassive(writer);
    } else if (pages >= kCheckpointPages) {
      {
        std::lock_guard lock(ckpt_mu_);
        ckpt_wanted_ = true;
      }
      ckpt_cv_.notify_one();
    }
  }

  std::string Backend() const override { return mysql() ? "mysql" : "sqlite"; }

  Status Ping() override {
    return OnPool(Status::Error("ping failed"), [&](Conn& c) -> Status {
      Status st;
      Stmt* s = c.Prepare("SELECT 1", &st);
      if (!s) return st;
      s->Next();
      st = s->status();
      s->Reset();
      return st;
    });
  }

  // --- users ---
  Status CreateUser(User& u) override {
    return Write(Status::Error("create user failed"), [&](Conn& c) -> Status {
      Status st = ExecOn(c,
                         "INSERT INTO users (username, email, password_hash, role, disabled, "
                         "failed_logins, locked_until, created_at) VALUES (?,?,?,?,?,?,?,?)",
                         [&](Stmt* s) {
                           s->BindText(1, u.username);
                           s->BindText(2, u.email);
                           s->BindText(3, u.password_hash);
                           s->BindText(4, u.role);
                           s->BindInt(5, u.disabled);
                           s->BindInt(6, u.failed_logins);
                           s->BindInt(7, u.locked_until);
                           s->BindInt(8, u.created_at);
                         });
      if (st.ok) u.id = c.LastInsertId();
      if (st.conflict) st.message = "username already taken";
      return st;
    });
  }
  std::optional<User> GetUserByName(const std::string& name) override {
    return OnPool(std::optional<User>(), [&](Conn& c) {
      return OneOn<User>(
          c, Cat({"SELECT ", kUserCols, " FROM users WHERE username = ?"}),
          [&](Stmt* s) { s->BindText(1, name); }, ReadUser);
    });
  }
  std::optional<User> GetUser(int64_t id) override {
    return OnPool(std::optional<User>(), [&](Conn& c) {
      return OneOn<User>(
          c, Cat({"SELECT ", kUserCols, " FROM users WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadUser);
    });
  }
  std::vector<User> ListUsers() override {
    return OnPool(std::vector<User>(), [&](Conn& c) {
      return AllOn<User>(c, Cat({"SELECT ", kUserCols, " FROM users ORDER BY id"}), kNoBind,
                         ReadUser);
    });
  }
  Status UpdateUser(const User& u) override {
    return Write(Status::Error("update user failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE users SET email = ?, password_hash = ?, role = ?, disabled = ?, "
                    "failed_logins = ?, locked_until = ? WHERE id = ?",
                    [&](Stmt* s) {
                      s->BindText(1, u.email);
                      s->BindText(2, u.password_hash);
                      s->BindText(3, u.role);
                      s->BindInt(4, u.disabled);
                      s->BindInt(5, u.failed_logins);
                      s->BindInt(6, u.locked_until);
                      s->BindInt(7, u.id);
                    });
    });
  }
  Status DeleteUser(int64_t id) override {
    auto bind = [&](Stmt* s) { s->BindInt(1, id); };
    return Write(Status::Error("delete user failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        Status st = ExecOn(
            c, "DELETE FROM events WHERE api_id IN (SELECT id FROM apis WHERE owner_id = ?)", bind);
        if (st.ok) st = ExecOn(c, "DELETE FROM apis WHERE owner_id = ?", bind);
        if (st.ok) st = ExecOn(c, "DELETE FROM users WHERE id = ?", bind);
        return st;
      });
    });
  }
  int64_t CountUsers() override { return Count("SELECT COUNT(*) FROM users"); }

  // --- revoked tokens ---
  Status RevokeToken(const std::string& jti, int64_t expires_at) override {
    const int64_t now = Now();
    return Write(Status::Error("revoke token failed"), [&](Conn& c) -> Status {
      Status st = ExecOn(c, "DELETE FROM revoked_tokens WHERE expires_at < ?",
                         [&](Stmt* s) { s->BindInt(1, now); });
      if (!st.ok) return st;
      return ExecOn(c,
                    mysql() ? "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
                              "ON DUPLICATE KEY UPDATE jti = jti"
                            : "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
                              "ON CONFLICT(jti) DO NOTHING",
                    [&](Stmt* s) {
                      s->BindText(1, jti);
                      s->BindInt(2, expires_at);
                    });
    });
  }
  bool IsTokenRevoked(const std::string& jti) override {
    return Count("SELECT COUNT(*) FROM revoked_tokens WHERE jti = ?",
                 [&](Stmt* s) { s->BindText(1, jti); }) > 0;
  }
  std::vector<std::pair<std::string, int64_t>> ListRevokedTokens() override {
    const int64_t now = Now();
    return OnPool(std::vector<std::pair<std::string, int64_t>>(), [&](Conn& c) {
      return AllOn<std::pair<std::string, int64_t>>(
          c, "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= ? ORDER BY jti",
          [&](Stmt* s) { s->BindInt(1, now); },
          [](Stmt* s) { return std::make_pair(s->Text(0), s->Int(1)); });
    });
  }

  // --- APIs ---
  Status CreateApi(Api& a) override {
    return Write(Status::Error("create API failed"), [&](Conn& c) -> Status {
      Status st =
          ExecOn(c,
                 "INSERT INTO apis (name, base_url, owner_id, settings_json, ingest_key_hash, "
                 "ingest_key_prefix, upstream_secret_enc, match_host, match_port, "
                 "match_base_path, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 [&](Stmt* s) {
                   BindApiFields(s, a);
                   s->BindInt(11, a.created_at);
                   s->BindInt(12, a.updated_at);
                 });
      if (st.ok) a.id = c.LastInsertId();
      return st;
    });
  }
  std::optional<Api> GetApi(int64_t id) override {
    return OnPool(std::optional<Api>(), [&](Conn& c) {
      return OneOn<Api>(
          c, Cat({"SELECT ", kApiCols, " FROM apis WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadApi);
    });
  }
  std::vector<Api> ListApis(std::optional<int64_t> owner) override {
    return OnPool(std::vector<Api>(), [&](Conn& c) {
      if (owner) {
        return AllOn<Api>(
            c, Cat({"SELECT ", kApiCols, " FROM apis WHERE owner_id = ? ORDER BY id"}),
            [&](Stmt* s) { s->BindInt(1, *owner); }, ReadApi);
      }
      return AllOn<Api>(c, Cat({"SELECT ", kApiCols, " FROM apis ORDER BY id"}), kNoBind, ReadApi);
    });
  }
  Status UpdateApi(const Api& a) override {
    return Write(Status::Error("update API failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE apis SET name = ?, base_url = ?, owner_id = ?, settings_json = ?, "
                    "ingest_key_hash = ?, ingest_key_prefix = ?, upstream_secret_enc = ?, "
                    "match_host = ?, match_port = ?, match_base_path = ?, updated_at = ? "
                    "WHERE id = ?",
                    [&](Stmt* s) {
                      BindApiFields(s, a);
                      s->BindInt(11, a.updated_at);
                      s->BindInt(12, a.id);
                    });
    });
  }
  Status DeleteApi(int64_t id) override {
    auto bind = [&](Stmt* s) { s->BindInt(1, id); };
    return Write(Status::Error("delete API failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        Status st = ExecOn(c, "DELETE FROM findings WHERE api_id = ?", bind);
        if (st.ok) st = ExecOn(c, "DELETE FROM events WHERE api_id = ?", bind);
        if (st.ok) st = ExecOn(c, "DELETE FROM apis WHERE id = ?", bind);
        return st;
      });
    });
  }
  std::optional<Api> GetApiByKeyHash(const std::string& h) override {
    return OnPool(std::optional<Api>(), [&](Conn& c) {
      return OneOn<Api>(
          c, Cat({"SELECT ", kApiCols, " FROM apis WHERE ingest_key_hash = ?"}),
          [&](Stmt* s) { s->BindText(1, h); }, ReadApi);
    });
  }

  // --- agents ---
  Status CreateEnrollmentToken(EnrollmentToken& t) override {
    return Write(Status::Error("create enrollment token failed"), [&](Conn& c) -> Status {
      Status st = ExecOn(c,
                         "INSERT INTO enrollment_tokens (token_hash, name, created_by, expires_at, "
                         "used_at, created_at) VALUES (?,?,?,?,?,?)",
                         [&](Stmt* s) {
                           s->BindText(1, t.token_hash);
                           s->BindText(2, t.name);
                           s->BindInt(3, t.created_by);
                           s->BindInt(4, t.expires_at);
                           s->BindInt(5, t.used_at);
                           s->BindInt(6, t.created_at);
                         });
      if (st.ok) t.id = c.LastInsertId();
      return st;
    });
  }
  Status EnrollAgent(const std::string& token_hash, int64_t now, Agent& agent) override {
    return Write(Status::Error("enrollment failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        struct Token {
          int64_t id, expires_at, used_at;
        };
        Status st;
        Stmt* s = c.Prepare(
            "SELECT id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?", &st);
        if (!s) return st;
        s->BindText(1, token_hash);
        std::optional<Token> tok;
        if (s->Next()) tok = Token{s->Int(0), s->Int(1), s->Int(2)};
        st = s->status();
        s->Reset();
        if (!st.ok) return st;
        if (!tok) return Status::Error("unknown enrollment token");
        if (tok->used_at != 0) return Status::Error("enrollment token already used");
        if (tok->expires_at <= now) return Status::Error("enrollment token expired");
        int64_t changed = 0;
        st = ExecOn(
            c, "UPDATE enrollment_tokens SET used_at = ? WHERE id = ? AND used_at = 0",
            [&](Stmt* u) {
              u->BindInt(1, std::max<int64_t>(now, 1));
              u->BindInt(2, tok->id);
            },
            &changed);
        if (!st.ok) return st;
        if (changed != 1) return Status::Error("enrollment token already used");
        if (agent.enrolled_at == 0) agent.enrolled_at = now;
        if (agent.last_seen == 0) agent.last_seen = now;
        st = ExecOn(c,
                    "INSERT INTO agents (agent_id, token_hash, hostname, version, enrolled_at, "
                    "last_seen, revoked, counters_json, rates_json) VALUES (?,?,?,?,?,?,?,?,?)",
                    [&](Stmt* u) {
                      u->BindText(1, agent.agent_id);
                      u->BindText(2, agent.token_hash);
                      u->BindText(3, agent.hostname);
                      u->BindText(4, agent.version);
                      u->BindInt(5, agent.enrolled_at);
                      u->BindInt(6, agent.last_seen);
                      u->BindInt(7, agent.revoked);
                      u->BindText(8, agent.counters_json);
                      u->BindText(9, agent.rates_json);
                    });
        if (st.ok) agent.id = c.LastInsertId();
        return st;
      });
    });
  }
  std::optional<Agent> GetAgentByTokenHash(const std::string& h) override {
    return OnPool(std::optional<Agent>(), [&](Conn& c) {
      return OneOn<Agent>(
          c, Cat({"SELECT ", kAgentCols, " FROM agents WHERE token_hash = ?"}),
          [&](Stmt* s) { s->BindText(1, h); }, ReadAgent);
    });
  }
  std::vector<Agent> ListAgents() override {
    return OnPool(std::vector<Agent>(), [&](Conn& c) {
      return AllOn<Agent>(c, Cat({"SELECT ", kAgentCols, " FROM agents ORDER BY id"}), kNoBind,
                          ReadAgent);
    });
  }
  Status UpdateAgentHeartbeat(const std::string& agent_id, int64_t now, const std::string& version,
                              const std::string& counters, const std::string& rates) override {
    return Write(Status::Error("heartbeat update failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE agents SET last_seen = ?, version = ?, counters_json = ?, "
                    "rates_json = ? WHERE agent_id = ?",
                    [&](Stmt* s) {
                      s->BindInt(1, now);
                      s->BindText(2, version);
                      s->BindText(3, counters);
                      s->BindText(4, rates);
                      s->BindText(5, agent_id);
                    });
    });
  }
  Status RevokeAgent(const std::string& agent_id) override {
    return Write(Status::Error("revoke agent failed"), [&](Conn& c) {
      return ExecOn(c, "UPDATE agents SET revoked = 1 WHERE agent_id = ?",
                    [&](Stmt* s) { s->BindText(1, agent_id); });
    });
  }

  // --- events ---
  Status InsertEvents(std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) override {
    return Guarded(Status::Error("insert failed"),
                   [&] { return DoInsertEvents(events, outcomes); });
  }
  Status DoInsertEvents(std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) {
    outcomes.assign(events.size(), InsertOutcome::kInserted);
    if (events.empty()) return Status::Ok();
    Status st = OnExclusive(Status::Error("insert failed"), [&](Conn& c) -> Status {
      if (!mysql()) return InsertSqlite(c, events, outcomes);
      Status s = InsertMysql(c, events, outcomes);
      // Another process stored one of our (agent_id, seq) between the lookup and the INSERT.
      if (s.conflict) s = InsertMysql(c, events, outcomes);
      return s;
    });
    if (!st.ok) {
      for (auto& e : events) e.id = 0;
    }
    return st;
  }

  std::vector<Event> QueryLogs(const LogFilter& f) override {
    return Guarded(std::vector<Event>(), [&] { return DoQueryLogs(f); });
  }
  std::vector<Event> DoQueryLogs(const LogFilter& f) {
    Where w;
    if (!BuildWhere(f, w)) return {};
    if (f.before_ts) {
      // The first term alone is enough for an index range; the second breaks timestamp ties.
      w.Add("timestamp <= ? AND (timestamp < ? OR id < ?)");
      w.Double(*f.before_ts);
      w.Double(*f.before_ts);
      w.Int(f.before_id);
    }
    const int limit = f.limit <= 0 ? kDefaultLimit : std::min(f.limit, kMaxLimit);
    w.Int(limit);
    const std::string q = Cat({"SELECT ", kEventSelectCols, " FROM events", w.sql,
                               " ORDER BY timestamp DESC, id DESC LIMIT ?"});
    return OnRead(std::vector<Event>(), [&](Conn& c) {
      std::vector<Event> out;
      Status st;
      Stmt* s = c.Prepare(q, &st);
      if (!s) return out;
      w.Bind(s);
      while (s->Next()) out.push_back(ReadEvent(s));
      s->Reset();
      return out;
    });
  }

  Status ScanEvents(const LogFilter& f, const std::function<bool(const Event&)>& fn) override {
    return Guarded(Status::Error("scan failed"), [&] { return DoScanEvents(f, fn); });
  }
  Status DoScanEvents(const LogFilter& f, const std::function<bool(const Event&)>& fn) {
    Where w;
    if (!BuildWhere(f, w)) {
      return f.api_ids.size() > kMaxFilterApis ? Status::Error("too many APIs in the filter")
                                               : Status::Ok();
    }
    return mysql() ? ScanPaged(w, fn) : ScanStreaming(w, fn);
  }

  int64_t CountEvents() override { return Count("SELECT COUNT(*) FROM events"); }

  // --- detectors ---
  std::vector<DetectorConfig> ListDetectors() override {
    return OnPool(std::vector<DetectorConfig>(), [&](Conn& c) {
      return AllOn<DetectorConfig>(
          c, Cat({"SELECT ", kDetectorCols, " FROM detectors ORDER BY stage, id"}), kNoBind,
          ReadDetector);
    });
  }
  std::optional<DetectorConfig> GetDetector(const std::string& id) override {
    return OnPool(std::optional<DetectorConfig>(), [&](Conn& c) {
      return OneOn<DetectorConfig>(
          c, Cat({"SELECT ", kDetectorCols, " FROM detectors WHERE id = ?"}),
          [&](Stmt* s) { s->BindText(1, id); }, ReadDetector);
    });
  }
  Status InsertDetectorIfMissing(const DetectorConfig& d) override {
    return Write(Status::Error("insert detector failed"), [&](Conn& c) {
      return ExecOn(
          c,
          Cat({"INSERT INTO detectors (", kDetectorCols, ") VALUES (?,?,?,?,?,?,?,?) ",
               mysql() ? "ON DUPLICATE KEY UPDATE id = id" : "ON CONFLICT(id) DO NOTHING"}),
          [&](Stmt* s) {
            s->BindText(1, d.id);
            s->BindText(2, d.name);
            s->BindText(3, d.stage);
            s->BindInt(4, d.enabled);
            s->BindText(5, d.severity);
            s->BindText(6, d.config_json);
            s->BindInt(7, d.updated_at);
            s->BindInt(8, d.updated_by);
          });
    });
  }
  Status UpdateDetector(const DetectorConfig& d) override {
    return Write(Status::Error("update detector failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE detectors SET name = ?, stage = ?, enabled = ?, severity = ?, "
                    "config_json = ?, updated_at = ?, updated_by = ? WHERE id = ?",
                    [&](Stmt* s) {
                      s->BindText(1, d.name);
                      s->BindText(2, d.stage);
                      s->BindInt(3, d.enabled);
                      s->BindText(4, d.severity);
                      s->BindText(5, d.config_json);
                      s->BindInt(6, d.updated_at);
                      s->BindInt(7, d.updated_by);
                      s->BindText(8, d.id);
                    });
    });
  }

  // --- lists ---
  Status AddListEntry(ListEntry& e) override {
    return Write(Status::Error("add list entry failed"), [&](Conn& c) -> Status {
      Status st = ExecOn(c,
                         "INSERT INTO list_entries (list, kind, value, reason, api_id, created_by, "
                         "created_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
                         [&](Stmt* s) {
                           s->BindText(1, e.list);
                           s->BindText(2, e.kind);
                           s->BindText(3, e.value);
                           s->BindText(4, e.reason);
                           s->BindInt(5, e.api_id);
                           s->BindInt(6, e.created_by);
                           s->BindInt(7, e.created_at);
                           s->BindInt(8, e.expires_at);
                         });
      if (st.ok) e.id = c.LastInsertId();
      return st;
    });
  }
  std::vector<ListEntry> ListEntries(const std::string& list) override {
    return OnPool(std::vector<ListEntry>(), [&](Conn& c) {
      return AllOn<ListEntry>(
          c, Cat({"SELECT ", kEntryCols, " FROM list_entries WHERE list = ? ORDER BY id"}),
          [&](Stmt* s) { s->BindText(1, list); }, ReadEntry);
    });
  }
  std::optional<ListEntry> GetListEntry(int64_t id) override {
    return OnPool(std::optional<ListEntry>(), [&](Conn& c) {
      return OneOn<ListEntry>(
          c, Cat({"SELECT ", kEntryCols, " FROM list_entries WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadEntry);
    });
  }
  Status DeleteListEntry(const std::string& list, int64_t id) override {
    return Write(Status::Error("delete list entry failed"), [&](Conn& c) {
      return ExecOn(c, "DELETE FROM list_entries WHERE list = ? AND id = ?", [&](Stmt* s) {
        s->BindText(1, list);
        s->BindInt(2, id);
      });
    });
  }

  // --- audit ---
  Status AddAudit(const AuditEntry& a) override {
    return Write(Status::Error("audit insert failed"), [&](Conn& c) {
      return ExecOn(c,
                    "INSERT INTO audit_log (ts_ms, user_id, username, action, target, client_ip, "
                    "details_json) VALUES (?,?,?,?,?,?,?)",
                    [&](Stmt* s) {
                      s->BindInt(1, a.ts_ms);
                      s->BindInt(2, a.user_id);
                      s->BindText(3, a.username);
                      s->BindText(4, a.action);
                      s->BindText(5, a.target);
                      s->BindText(6, a.client_ip);
                      s->BindText(7, a.details_json);
                    });
    });
  }
  std::vector<AuditEntry> ListAudit(int limit, int64_t before_id) override {
    limit = limit <= 0 ? kDefaultLimit : std::min(limit, kMaxLimit);
    return OnPool(std::vector<AuditEntry>(), [&](Conn& c) {
      return AllOn<AuditEntry>(
          c, Cat({"SELECT ", kAuditCols, " FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?"}),
          [&](Stmt* s) {
            s->BindInt(1, before_id > 0 ? before_id : INT64_MAX);
            s->BindInt(2, limit);
          },
          ReadAudit);
    });
  }

  // --- settings ---
  std::optional<std::string> GetSetting(const std::string& key) override {
    return OnPool(std::optional<std::string>(), [&](Conn& c) {
      return OneOn<std::string>(
          c, "SELECT value FROM settings WHERE `key` = ?", [&](Stmt* s) { s->BindText(1, key); },
          [](Stmt* s) { return s->Text(0); });
    });
  }
  Status PutSetting(const std::string& key, const std::string& value) override {
    return Write(Status::Error("put setting failed"), [&](Conn& c) {
      return ExecOn(c,
                    mysql() ? "INSERT INTO settings (`key`, value) VALUES (?, ?) "
                              "ON DUPLICATE KEY UPDATE value = VALUES(value)"
                            : "INSERT INTO settings (`key`, value) VALUES (?, ?) "
                              "ON CONFLICT(`key`) DO UPDATE SET value = excluded.value",
                    [&](Stmt* s) {
                      s->BindText(1, key);
                      s->BindText(2, value);
                    });
    });
  }

  // --- scale-out bus ---
  Status SeedBusPartitions(int partitions) override {
    return Write(Status::Error("seed bus partitions failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        for (int p = 0; p < partitions; ++p) {
          Status st = ExecOn(c,
                             mysql() ? "INSERT IGNORE INTO bus_leases (part) VALUES (?)"
                                     : "INSERT OR IGNORE INTO bus_leases (part) VALUES (?)",
                             [&](Stmt* s) { s->BindInt(1, p); });
          if (!st.ok) return st;
        }
        return Status::Ok();
      });
    });
  }
  Status BusHeartbeat(const std::string& instance, int64_t now_ms, int64_t expires_at_ms,
                      int64_t started_at_ms) override {
    return Write(Status::Error("bus heartbeat failed"), [&](Conn& c) {
      Status st = ExecOn(
          c,
          mysql() ? "INSERT INTO bus_members (instance_id, expires_at_ms, started_at_ms) VALUES "
                    "(?, ?, ?) ON DUPLICATE KEY UPDATE expires_at_ms = VALUES(expires_at_ms)"
                  : "INSERT INTO bus_members (instance_id, expires_at_ms, started_at_ms) VALUES "
                    "(?, ?, ?) ON CONFLICT(instance_id) DO UPDATE SET expires_at_ms = "
                    "excluded.expires_at_ms",
          [&](Stmt* s) {
            s->BindText(1, instance);
            s->BindInt(2, expires_at_ms);
            s->BindInt(3, started_at_ms);
          });
      if (!st.ok) return st;
      return ExecOn(c, "DELETE FROM bus_members WHERE expires_at_ms < ?",
                    [&](Stmt* s) { s->BindInt(1, now_ms); });
    });
  }
  Status BusLeave(const std::string& instance) override {
    return Write(Status::Error("bus leave failed"), [&](Conn& c) {
      return ExecOn(c, "DELETE FROM bus_members WHERE instance_id = ?",
                    [&](Stmt* s) { s->BindText(1, instance); });
    });
  }
  std::vector<BusMember> BusMembers(int64_t now_ms) override {
    return OnPool(std::vector<BusMember>(), [&](Conn& c) {
      return AllOn<BusMember>(
          c,
          "SELECT instance_id, expires_at_ms FROM bus_members WHERE expires_at_ms >= ? ORDER BY "
          "instance_id",
          [&](Stmt* s) { s->BindInt(1, now_ms); },
          [](Stmt* s) {
            return BusMember{s->Text(0), s->Int(1)};
          });
    });
  }
  Status TakeBusLease(int part, const std::string& holder, int64_t now_ms, int64_t expires_at_ms,
                      bool* got) override {
    *got = false;
    return Write(Status::Error("take bus lease failed"), [&](Conn& c) {
      int64_t changed = 0;
      // The epoch and acquisition time change only when the holder does.
      Status st = ExecOn(
          c,
          "UPDATE bus_leases SET epoch = CASE WHEN holder = ? THEN epoch ELSE epoch + 1 END, "
          "acquired_at_ms = CASE WHEN holder = ? THEN acquired_at_ms ELSE ? END, "
          "holder = ?, expires_at_ms = ? WHERE part = ? AND (holder = ? OR holder = '' OR "
          "expires_at_ms < ?)",
          [&](Stmt* s) {
            s->BindText(1, holder);
            s->BindText(2, holder);
            s->BindInt(3, now_ms);
            s->BindText(4, holder);
            s->BindInt(5, expires_at_ms);
            s->BindInt(6, part);
            s->BindText(7, holder);
            s->BindInt(8, now_ms);
          },
          &changed);
      if (st.ok) *got = changed == 1;
      return st;
    });
  }
  Status ReleaseBusLease(int part, const std::string& holder) override {
    return Write(Status::Error("release bus lease failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE bus_leases SET holder = '', expires_at_ms = 0, epoch = epoch + 1 "
                    "WHERE part = ? AND holder = ?",
                    [&](Stmt* s) {
                      s->BindInt(1, part);
                      s->BindText(2, holder);
                    });
    });
  }
  std::vector<BusLease> ListBusLeases() override {
    return OnPool(std::vector<BusLease>(), [&](Conn& c) {
      return AllOn<BusLease>(
          c,
          "SELECT part, holder, expires_at_ms, epoch, acquired_at_ms FROM bus_leases ORDER BY "
          "part",
          kNoBind, [](Stmt* s) {
            BusLease l;
            l.part = static_cast<int>(s->Int(0));
            l.holder = s->Text(1);
            l.expires_at_ms = s->Int(2);
            l.epoch = s->Int(3);
            l.acquired_at_ms = s->Int(4);
            return l;
          });
    });
  }

  Status AddBusOutbox(const std::vector<BusOutboxRun>& runs) override {
    return Write(Status::Error("bus outbox insert failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        for (const auto& r : runs) {
          // A run is recorded once (a retried spill of the same events changes nothing).
          Status st = ExecOn(c,
                             mysql() ? "INSERT IGNORE INTO bus_outbox (first_id, last_id, "
                                       "created_at_ms) VALUES (?, ?, ?)"
                                     : "INSERT OR IGNORE INTO bus_outbox (first_id, last_id, "
                                       "created_at_ms) VALUES (?, ?, ?)",
                             [&](Stmt* s) {
                               s->BindInt(1, r.first_id);
                               s->BindInt(2, r.last_id);
                               s->BindInt(3, r.created_at_ms);
                             });
          if (!st.ok) return st;
        }
        return Status::Ok();
      });
    });
  }
  std::vector<BusOutboxRun> ListBusOutbox(int limit) override {
    return OnPool(std::vector<BusOutboxRun>(), [&](Conn& c) {
      return AllOn<BusOutboxRun>(
          c, "SELECT first_id, last_id, created_at_ms FROM bus_outbox ORDER BY first_id LIMIT ?",
          [&](Stmt* s) { s->BindInt(1, limit); },
          [](Stmt* s) {
            return BusOutboxRun{s->Int(0), s->Int(1), s->Int(2)};
          });
    });
  }
  Status AdvanceBusOutbox(int64_t first_id, int64_t published_to) override {
    return Write(Status::Error("bus outbox update failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        Status st =
            ExecOn(c, "DELETE FROM bus_outbox WHERE first_id = ? AND last_id <= ?", [&](Stmt* s) {
              s->BindInt(1, first_id);
              s->BindInt(2, published_to);
            });
        if (!st.ok) return st;
        return ExecOn(c, "UPDATE bus_outbox SET first_id = ? WHERE first_id = ? AND last_id > ?",
                      [&](Stmt* s) {
                        s->BindInt(1, published_to + 1);
                        s->BindInt(2, first_id);
                        s->BindInt(3, published_to);
                      });
      });
    });
  }
  int64_t BusOutboxEvents() override {
    return Count("SELECT CAST(COALESCE(SUM(last_id - first_id + 1), 0) AS SIGNED) FROM bus_outbox");
  }
  std::vector<Event> EventsByIdRange(int64_t first_id, int64_t last_id, int limit) override {
    return OnPool(std::vector<Event>(), [&](Conn& c) {
      return AllOn<Event>(
          c,
          Cat({"SELECT ", kEventSelectCols,
               " FROM events WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?"}),
          [&](Stmt* s) {
            s->BindInt(1, first_id);
            s->BindInt(2, last_id);
            s->BindInt(3, limit);
          },
          ReadEvent);
    });
  }

  std::optional<Event> GetEvent(int64_t id) override {
    return OnPool(std::optional<Event>(), [&](Conn& c) {
      return OneOn<Event>(
          c, Cat({"SELECT ", kEventSelectCols, " FROM events WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadEvent);
    });
  }

  // --- alerts ---
  Status SaveAlerts(std::vector<AlertRecord*>& alerts) override {
    if (alerts.empty()) return Status::Ok();
    return Write(Status::Error("save alerts failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        for (AlertRecord* a : alerts) {
          const bool insert = a->id == 0;
          Status st = ExecOn(
              c,
              insert ? Cat({"INSERT INTO alerts (", kAlertWriteCols,
                            ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"})
                     : "UPDATE alerts SET fingerprint=?, api_id=?, detector=?, severity=?, "
                       "severity_rank=?, status=?, actor=?, endpoint_template=?, count=?, "
                       "first_seen=?, last_seen=?, touched_at=?, message=?, evidence_json=?, "
                       "muted_until=?, acknowledged_by=?, acknowledged_at=?, ack_comment=?, "
                       "resolved_at=?, resolved_by=?, created_at=? WHERE id=?",
              [&](Stmt* s) {
                BindAlert(s, *a);
                if (!insert) s->BindInt(22, a->id);
              });
          if (!st.ok) return st;
          if (insert) a->id = c.LastInsertId();
        }
        return Status::Ok();
      });
    });
  }
  std::optional<AlertRecord> GetAlert(int64_t id) override {
    return OnPool(std::optional<AlertRecord>(), [&](Conn& c) {
      return OneOn<AlertRecord>(
          c, Cat({"SELECT ", kAlertCols, " FROM alerts WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadAlert);
    });
  }
  std::vector<AlertRecord> ActiveAlerts() override {
    return OnPool(std::vector<AlertRecord>(), [&](Conn& c) {
      return AllOn<AlertRecord>(
          c,
          Cat({"SELECT ", kAlertCols,
               " FROM alerts WHERE status IN ('open', 'acknowledged') ORDER BY id"}),
          kNoBind, ReadAlert);
    });
  }
  std::vector<AlertRecord> ActiveAlertsByFingerprint(
      const std::vector<std::string>& fingerprints) override {
    std::vector<AlertRecord> out;
    constexpr size_t kChunk = 200;
    for (size_t at = 0; at < fingerprints.size(); at += kChunk) {
      const size_t n = std::min(kChunk, fingerprints.size() - at);
      std::string q = Cat({"SELECT ", kAlertCols,
                           " FROM alerts WHERE status IN ('open', 'acknowledged') AND "
                           "fingerprint IN ("});
      for (size_t i = 0; i < n; ++i) q += i ? ",?" : "?";
      q += ") ORDER BY id";
      auto part = OnPool(std::vector<AlertRecord>(), [&](Conn& c) {
        return AllOn<AlertRecord>(
            c, q,
            [&](Stmt* s) {
              for (size_t i = 0; i < n; ++i)
                s->BindText(static_cast<int>(i + 1), fingerprints[at + i]);
            },
            ReadAlert);
      });
      std::move(part.begin(), part.end(), std::back_inserter(out));
    }
    return out;
  }
  std::vector<AlertRecord> QueryAlerts(const AlertFilter& f) override {
    Where w;
    if (!AlertWhere(f, w)) return {};
    if (f.before_ts) {
      w.Add("(last_seen < ? OR (last_seen = ? AND id < ?))");
      w.Double(*f.before_ts);
      w.Double(*f.before_ts);
      w.Int(f.before_id > 0 ? f.before_id : INT64_MAX);
    }
    std::string q = Cat({"SELECT ", kAlertCols, " FROM alerts", w.sql,
                         " ORDER BY last_seen DESC, id DESC LIMIT "}) +
                    std::to_string(std::clamp(f.limit, 1, kMaxLimit));
    return OnPool(std::vector<AlertRecord>(), [&](Conn& c) {
      return AllOn<AlertRecord>(
          c, q, [&](Stmt* s) { w.Bind(s); }, ReadAlert);
    });
  }
  std::vector<AlertCount> CountActiveAlerts(const AlertFilter& f) override {
    Where w;
    if (!AlertWhere(f, w)) return {};
    w.Add("status IN ('open', 'acknowledged')");
    std::string q =
        Cat({"SELECT status, severity, COUNT(*) FROM alerts", w.sql, " GROUP BY status, severity"});
    return OnPool(std::vector<AlertCount>(), [&](Conn& c) {
      return AllOn<AlertCount>(
          c, q, [&](Stmt* s) { w.Bind(s); },
          [](Stmt* s) {
            return AlertCount{s->Text(0), s->Text(1), s->Int(2)};
          });
    });
  }

  // --- mutes ---
  Status AddMute(MuteRecord& m) override {
    return Write(Status::Error("add mute failed"), [&](Conn& c) {
      Status st = ExecOn(c,
                         "INSERT INTO mutes (detector, actor, api_id, expires_at, comment, "
                         "created_by, created_at) VALUES (?,?,?,?,?,?,?)",
                         [&](Stmt* s) {
                           s->BindText(1, m.detector);
                           s->BindText(2, m.actor);
                           s->BindInt(3, m.api_id);
                           s->BindInt(4, m.expires_at);
                           s->BindText(5, m.comment);
                           s->BindInt(6, m.created_by);
                           s->BindInt(7, m.created_at);
                         });
      if (st.ok) m.id = c.LastInsertId();
      return st;
    });
  }
  std::vector<MuteRecord> ListMutes() override {
    return OnPool(std::vector<MuteRecord>(), [&](Conn& c) {
      return AllOn<MuteRecord>(c, Cat({"SELECT ", kMuteCols, " FROM mutes ORDER BY id"}), kNoBind,
                               ReadMute);
    });
  }
  std::optional<MuteRecord> GetMute(int64_t id) override {
    return OnPool(std::optional<MuteRecord>(), [&](Conn& c) {
      return OneOn<MuteRecord>(
          c, Cat({"SELECT ", kMuteCols, " FROM mutes WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadMute);
    });
  }
  Status DeleteMute(int64_t id) override {
    return Write(Status::Error("delete mute failed"), [&](Conn& c) {
      return ExecOn(c, "DELETE FROM mutes WHERE id = ?", [&](Stmt* s) { s->BindInt(1, id); });
    });
  }

  // --- channels ---
  Status CreateChannel(ChannelRecord& ch) override {
    return Write(Status::Error("create channel failed"), [&](Conn& c) {
      Status st = ExecOn(c,
                         "INSERT INTO channels (name, kind, enabled, min_severity, api_ids_json, "
                         "config_enc, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                         [&](Stmt* s) {
                           BindChannel(s, ch);
                           s->BindInt(7, ch.created_at);
                           s->BindInt(8, ch.updated_at);
                         });
      if (st.ok) ch.id = c.LastInsertId();
      if (st.conflict) st.message = "a channel with this name exists";
      return st;
    });
  }
  Status UpdateChannel(const ChannelRecord& ch) override {
    return Write(Status::Error("update channel failed"), [&](Conn& c) {
      Status st = ExecOn(c,
                         "UPDATE channels SET name=?, kind=?, enabled=?, min_severity=?, "
                         "api_ids_json=?, config_enc=?, updated_at=? WHERE id=?",
                         [&](Stmt* s) {
                           BindChannel(s, ch);
                           s->BindInt(7, ch.updated_at);
                           s->BindInt(8, ch.id);
                         });
      if (st.conflict) st.message = "a channel with this name exists";
      return st;
    });
  }
  std::optional<ChannelRecord> GetChannel(int64_t id) override {
    return OnPool(std::optional<ChannelRecord>(), [&](Conn& c) {
      return OneOn<ChannelRecord>(
          c, Cat({"SELECT ", kChannelCols, " FROM channels WHERE id = ?"}),
          [&](Stmt* s) { s->BindInt(1, id); }, ReadChannel);
    });
  }
  std::vector<ChannelRecord> ListChannels() override {
    return OnPool(std::vector<ChannelRecord>(), [&](Conn& c) {
      return AllOn<ChannelRecord>(c, Cat({"SELECT ", kChannelCols, " FROM channels ORDER BY id"}),
                                  kNoBind, ReadChannel);
    });
  }
  Status DeleteChannel(int64_t id) override {
    return Write(Status::Error("delete channel failed"), [&](Conn& c) {
      return ExecOn(c, "DELETE FROM channels WHERE id = ?", [&](Stmt* s) { s->BindInt(1, id); });
    });
  }

  // --- deliveries ---
  Status InsertDelivery(DeliveryRecord& d) override {
    return Write(Status::Error("insert delivery failed"), [&](Conn& c) {
      Status st =
          ExecOn(c,
                 "INSERT INTO deliveries (alert_id, channel_id, channel_name, kind, status, "
                 "attempts, last_error, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                 [&](Stmt* s) {
                   s->BindInt(1, d.alert_id);
                   s->BindInt(2, d.channel_id);
                   s->BindText(3, d.channel_name);
                   s->BindText(4, d.kind);
                   s->BindText(5, d.status);
                   s->BindInt(6, d.attempts);
                   s->BindText(7, d.last_error);
                   s->BindInt(8, d.created_at);
                   s->BindInt(9, d.updated_at);
                 });
      if (st.ok) d.id = c.LastInsertId();
      return st;
    });
  }
  Status UpdateDelivery(const DeliveryRecord& d) override {
    return Write(Status::Error("update delivery failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE deliveries SET status=?, attempts=?, last_error=?, updated_at=? "
                    "WHERE id=?",
                    [&](Stmt* s) {
                      s->BindText(1, d.status);
                      s->BindInt(2, d.attempts);
                      s->BindText(3, d.last_error);
                      s->BindInt(4, d.updated_at);
                      s->BindInt(5, d.id);
                    });
    });
  }
  std::vector<DeliveryRecord> ListDeliveries(int64_t alert_id) override {
    return DeliveriesWhere("alert_id = ? ORDER BY id", [&](Stmt* s) { s->BindInt(1, alert_id); });
  }
  std::vector<DeliveryRecord> ListPendingDeliveries(int64_t since, size_t limit) override {
    return DeliveriesWhere("status = 'pending' AND created_at >= ? ORDER BY id LIMIT ?",
                           [&](Stmt* s) {
                             s->BindInt(1, since);
                             s->BindInt(2, static_cast<int64_t>(limit));
                           });
  }
  Status FailPendingDeliveries(int64_t before, int64_t now, const std::string& error) override {
    return Write(Status::Error("expiring deliveries failed"), [&](Conn& c) {
      return ExecOn(c,
                    "UPDATE deliveries SET status='failed', last_error=?, updated_at=? "
                    "WHERE status='pending' AND created_at < ?",
                    [&](Stmt* s) {
                      s->BindText(1, error);
                      s->BindInt(2, now);
                      s->BindInt(3, before);
                    });
    });
  }
  std::vector<DeliveryRecord> DeliveriesWhere(const std::string& where,
                                              const std::function<void(Stmt*)>& bind) {
    return OnPool(std::vector<DeliveryRecord>(), [&](Conn& c) {
      return AllOn<DeliveryRecord>(
          c,
          "SELECT id, alert_id, channel_id, channel_name, kind, status, attempts, last_error, "
          "created_at, updated_at FROM deliveries WHERE " +
              where,
          bind, [](Stmt* s) {
            DeliveryRecord d;
            d.id = s->Int(0);
            d.alert_id = s->Int(1);
            d.channel_id = s->Int(2);
            d.channel_name = s->Text(3);
            d.kind = s->Text(4);
            d.status = s->Text(5);
            d.attempts = static_cast<int>(s->Int(6));
            d.last_error = s->Text(7);
            d.created_at = s->Int(8);
            d.updated_at = s->Int(9);
            return d;
          });
    });
  }

  std::vector<int> AppliedMigrations() {
    return OnPool(std::vector<int>(), [&](Conn& c) {
      return AllOn<int>(c, "SELECT version FROM schema_migrations ORDER BY version", kNoBind,
                        [](Stmt* s) { return static_cast<int>(s->Int(0)); });
    });
  }

  // --- findings ---
  Status InsertFindings(std::vector<FindingRecord>& findings) override {
    if (findings.empty()) return Status::Ok();
    return Write(Status::Error("insert findings failed"), [&](Conn& c) {
      return Tx(c, [&]() -> Status {
        for (auto& f : findings) {
          Status st = ExecOn(
              c,
              "INSERT INTO findings (api_id, event_id, ts, detector, severity, severity_rank, "
              "score, actor, endpoint_template, method, client_ip, identity, message, "
              "evidence_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              [&](Stmt* s) {
                s->BindInt(1, f.api_id);
                s->BindInt(2, f.event_id);
                s->BindDouble(3, f.ts);
                s->BindText(4, f.detector);
                s->BindText(5, f.severity);
                s->BindInt(6, f.severity_rank);
                s->BindDouble(7, f.score);
                s->BindText(8, f.actor);
                s->BindText(9, f.endpoint_template);
                s->BindText(10, f.method);
                s->BindText(11, f.client_ip);
                s->BindText(12, f.identity);
                s->BindText(13, f.message);
                s->BindText(14, f.evidence_json);
                s->BindDouble(15, f.created_at);
              });
          if (!st.ok) return st;
          f.id = c.LastInsertId();
        }
        return Status::Ok();
      });
    });
  }
  std::vector<FindingRecord> QueryFindings(const FindingFilter& f) override {
    if (f.restrict_to_apis && f.api_ids.empty()) return {};
    std::string sql =
        "SELECT id, api_id, event_id, ts, detector, severity, severity_rank, score, actor, "
        "endpoint_template, method, client_ip, identity, message, evidence_json, created_at "
        "FROM findings WHERE id < ?";
    if (f.restrict_to_apis) {
      sql += " AND api_id IN (";
      for (size_t i = 0; i < f.api_ids.size(); ++i) sql += i ? ",?" : "?";
      sql += ")";
    }
    if (!f.detector.empty()) sql += " AND detector = ?";
    if (f.min_severity_rank > 0) sql += " AND severity_rank >= ?";
    if (!f.actor.empty()) sql += " AND actor = ?";
    if (!f.client_ip.empty()) sql += " AND client_ip = ?";
    if (f.event_id > 0) sql += " AND event_id = ?";
    if (f.from_ts > 0) sql += " AND ts >= ?";
    if (f.to_ts > 0) sql += " AND ts < ?";
    sql += " ORDER BY id DESC LIMIT " + std::to_string(std::clamp(f.limit, 1, 1000));
    return OnPool(std::vector<FindingRecord>(), [&](Conn& c) {
      return AllOn<FindingRecord>(
          c, sql,
          [&](Stmt* s) {
            int i = 1;
            s->BindInt(i++, f.before_id > 0 ? f.before_id : INT64_MAX);
            if (f.restrict_to_apis) {
              for (int64_t id : f.api_ids) s->BindInt(i++, id);
            }
            if (!f.detector.empty()) s->BindText(i++, f.detector);
            if (f.min_severity_rank > 0) s->BindInt(i++, f.min_severity_rank);
            if (!f.actor.empty()) s->BindText(i++, f.actor);
            if (!f.client_ip.empty()) s->BindText(i++, f.client_ip);
            if (f.event_id > 0) s->BindInt(i++, f.event_id);
            if (f.from_ts > 0) s->BindDouble(i++, f.from_ts);
            if (f.to_ts > 0) s->BindDouble(i++, f.to_ts);
          },
          [](Stmt* s) {
            FindingRecord r;
            r.id = s->Int(0);
            r.api_id = s->Int(1);
            r.event_id = s->Int(2);
            r.ts = s->Double(3);
            r.detector = s->Text(4);
            r.severity = s->Text(5);
            r.severity_rank = static_cast<int>(s->Int(6));
            r.score = s->Double(7);
            r.actor = s->Text(8);
            r.endpoint_template = s->Text(9);
            r.method = s->Text(10);
            r.client_ip = s->Text(11);
            r.identity = s->Text(12);
            r.message = s->Text(13);
            r.evidence_json = s->Text(14);
            r.created_at = s->Double(15);
            return r;
          });
    });
  }

 private:
  bool mysql() const { return dialect_ == Dialect::kMysql; }

  // Runs `fn` on a pooled connection (reads; on MySQL writes too). A connection found broken is
  // replaced and `fn` runs once more; exceptions end here.
  template <class R, class F>
  R OnPoolOf(Pool& pool, R fallback, F&& fn) {
    for (int attempt = 0;; ++attempt) {
      Status st;
      std::unique_ptr<Conn> c = pool.Acquire(&st);
      if (!c) return Fail(fallback, st);
      c->TrimCache(kMaxCachedStatements);
      std::optional<R> r;
      try {
        r.emplace(fn(*c));
      } catch (const std::exception& e) {
        pool.Discard(std::move(c));
        return Fail(fallback, Status::Error(std::string("store: ") + e.what()));
      } catch (...) {
        pool.Discard(std::move(c));
        return Fail(fallback, Status::Error("store: unknown exception"));
      }
      const bool broken = c->Broken();
      pool.Release(std::move(c));
      if (!broken || attempt > 0) return std::move(*r);
      pool.DropIdle();
    }
  }

  template <class R, class F>
  R OnPool(R fallback, F&& fn) {
    return OnPoolOf(pool_, std::move(fallback), std::forward<F>(fn));
  }
  // Log and metrics reads: on the read replica when DB_READ_HOST is set (may lag the primary).
  template <class R, class F>
  R OnRead(R fallback, F&& fn) {
    return OnPoolOf(read_pool_ ? *read_pool_ : pool_, std::move(fallback), std::forward<F>(fn));
  }

  // The same on the exclusive connection.
  template <class R, class F>
  R OnExclusive(R fallback, F&& fn) {
    std::lock_guard lock(ex_mu_);
    for (int attempt = 0;; ++attempt) {
      Status st;
      if (!ex_) ex_ = exclusive_factory_(&st);
      if (!ex_) return Fail(fallback, st.ok ? Status::Unavailable("no connection") : st);
      ex_->TrimCache(kMaxCachedStatements);
      std::optional<R> r;
      try {
        r.emplace(fn(*ex_));
      } catch (const std::exception& e) {
        ex_.reset();
        return Fail(fallback, Status::Error(std::string("store: ") + e.what()));
      } catch (...) {
        ex_.reset();
        return Fail(fallback, Status::Error("store: unknown exception"));
      }
      if (!ex_->Broken()) return std::move(*r);
      ex_.reset();
      if (attempt > 0) return std::move(*r);
    }
  }

  template <class R, class F>
  R Write(R fallback, F&& fn) {
    if (mysql()) return OnPool(std::move(fallback), std::forward<F>(fn));
    return OnExclusive(std::move(fallback), std::forward<F>(fn));
  }

  template <class B = decltype(kNoBind)>
  int64_t Count(const char* q, const B& bind = kNoBind) {
    return OnPool(std::optional<int64_t>(),
                  [&](Conn& c) {
                    return OneOn<int64_t>(c, q, bind, [](Stmt* s) { return s->Int(0); });
                  })
        .value_or(0);
  }

  // SQLite: one statement per row in one transaction; ON CONFLICT tells duplicates apart through
  // the changes count. Ids are assigned here rather than by AUTOINCREMENT, which costs a
  // sqlite_sequence update per row: the high-water mark in `sequences` keeps them from being
  // reused after the newest events are deleted.
  Status InsertSqlite(Conn& c, std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) {
    return Tx(c, [&]() -> Status {
      Status st;
      Stmt* s = c.Prepare(
          "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), "
          "COALESCE((SELECT value FROM sequences WHERE name = 'events'), 0))",
          &st);
      if (!s) return st;
      int64_t next = s->Next() ? s->Int(0) + 1 : 0;
      st = s->status();
      s->Reset();
      if (!st.ok) return st;
      Stmt* ins =
          c.Prepare(Cat({"INSERT INTO events (id, ", kEventInsertCols, ") VALUES (?,",
                         Placeholders(kEventParams),
                         ") ON CONFLICT(agent_id, seq) WHERE agent_id IS NOT NULL DO NOTHING"}),
                    &st);
      if (!ins) return st;
      const double now = NowF();
      int64_t last = 0;
      for (size_t i = 0; i < events.size(); ++i) {
        Event& e = events[i];
        headers_buf_.clear();
        store_internal::AppendHeadersJson(e.headers, headers_buf_);
        ins->BindInt(1, next);
        BindEvent(ins, 2, e, headers_buf_, now);
        int64_t changes = 0;
        st = ins->Exec(&changes);
        if (!st.ok) return st;
        if (changes == 1) {
          e.id = last = next++;
        } else {
          e.id = 0;
          outcomes[i] = InsertOutcome::kDuplicate;
        }
      }
      if (last == 0) return Status::Ok();
      return ExecOn(c,
                    "INSERT INTO sequences (name, value) VALUES ('events', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    [&](Stmt* u) { u->BindInt(1, last); });
    });
  }

  // MySQL: duplicates are found first (repeated inside the batch, or already stored), then the
  // rest goes in with multi-row INSERTs; the ids of one statement are consecutive steps of
  // @@auto_increment_increment from LAST_INSERT_ID() (InnoDB reserves them at once for an INSERT
  // with a known row count).
  Status InsertMysql(Conn& c, std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) {
    std::fill(outcomes.begin(), outcomes.end(), InsertOutcome::kInserted);
    std::unordered_map<std::string_view, std::vector<size_t>> by_agent;
    for (size_t i = 0; i < events.size(); ++i) {
      if (!events[i].agent_id.empty() && events[i].seq) by_agent[events[i].agent_id].push_back(i);
    }
    return Tx(c, [&]() -> Status {
      Status st;
      std::unordered_set<int64_t> stored;
      std::vector<size_t> candidates;
      for (auto& [agent, idx] : by_agent) {
        std::stable_sort(idx.begin(), idx.end(),
                         [&](size_t a, size_t b) { return *events[a].seq < *events[b].seq; });
        candidates.clear();
        for (size_t k = 0; k < idx.size(); ++k) {
          if (k > 0 && *events[idx[k]].seq == *events[idx[k - 1]].seq) {
            outcomes[idx[k]] = InsertOutcome::kDuplicate;
          } else {
            candidates.push_back(idx[k]);
          }
        }
        stored.clear();
        for (size_t off = 0; off < candidates.size(); off += kMysqlLookupChunk) {
          const size_t n = std::min(kMysqlLookupChunk, candidates.size() - off);
          const size_t shape = Bucket(n);
          Stmt* s = c.Prepare(
              "SELECT seq FROM events WHERE agent_id = ? AND seq IN (" + Placeholders(shape) + ")",
              &st);
          if (!s) return st;
          s->BindText(1, agent);
          for (size_t k = 0; k < shape; ++k) {
            s->BindInt(static_cast<int>(k + 2), *events[candidates[off + std::min(k, n - 1)]].seq);
          }
          while (s->Next()) stored.insert(s->Int(0));
          st = s->status();
          s->Reset();
          if (!st.ok) return st;
        }
        for (size_t i : candidates) {
          if (stored.count(*events[i].seq)) outcomes[i] = InsertOutcome::kDuplicate;
        }
      }
      fresh_.clear();
      for (size_t i = 0; i < events.size(); ++i) {
        if (outcomes[i] == InsertOutcome::kInserted) {
          fresh_.push_back(i);
        } else {
          events[i].id = 0;
        }
      }
      const double now = NowF();
      const int64_t step = sql::AutoIncrementStep(c);
      for (size_t off = 0; off < fresh_.size();) {
        size_t left = fresh_.size() - off;
        size_t n = left >= kMysqlInsertRows ? kMysqlInsertRows : std::bit_floor(left);
        Stmt* s = c.Prepare(MysqlInsertSql(n), &st);
        if (!s) return st;
        for (size_t k = 0; k < n; ++k) {
          const Event& e = events[fresh_[off + k]];
          headers_buf_.clear();
          store_internal::AppendHeadersJson(e.headers, headers_buf_);
          // BindTextRef copies on MySQL, so the buffer can be reused for the next row.
          BindEvent(s, static_cast<int>(k * kEventParams + 1), e, headers_buf_, now);
        }
        st = s->Exec();
        if (!st.ok) return st;
        const int64_t first = c.LastInsertId();
        if (first <= 0) return Status::Error("LAST_INSERT_ID() unavailable after insert");
        for (size_t k = 0; k < n; ++k) {
          events[fresh_[off + k]].id = first + static_cast<int64_t>(k) * step;
        }
        off += n;
      }
      return Status::Ok();
    });
  }

  const std::string& MysqlInsertSql(size_t rows) {
    std::string& q = insert_sql_[rows];
    if (q.empty()) {
      q = Cat({"INSERT INTO events (", kEventInsertCols, ") VALUES "});
      const std::string row = "(" + Placeholders(kEventParams) + ")";
      for (size_t k = 0; k < rows; ++k) {
        if (k) q += ',';
        q += row;
      }
    }
    return q;
  }

  // SQLite: one statement, stepped row by row on a reader (a WAL snapshot: writers go on).
  Status ScanStreaming(const Where& w, const std::function<bool(const Event&)>& fn) {
    const std::string q = Cat(
        {"SELECT ", kEventSelectCols, " FROM events", w.sql, " ORDER BY timestamp ASC, id ASC"});
    return OnPool(Status::Error("scan failed"), [&](Conn& c) -> Status {
      Status st;
      Stmt* s = c.Prepare(q, &st);
      if (!s) return st;
      w.Bind(s);
      bool more = true;
      try {
        while (more && s->Next()) more = fn(ReadEvent(s));
      } catch (...) {
        s->Reset();
        throw;
      }
      st = s->status();
      s->Reset();
      return st;
    });
  }

  // MySQL: keyset pages, each fetched on a pooled connection that is released before the
  // callback runs, so a slow consumer holds neither a connection nor a server-side result.
  Status ScanPaged(const Where& base, const std::function<bool(const Event&)>& fn) {
    std::optional<std::pair<double, int64_t>> after;
    std::vector<Event> page;
    for (;;) {
      Where w = base;
      if (after) {
        w.Add("timestamp >= ? AND (timestamp > ? OR id > ?)");
        w.Double(after->first);
        w.Double(after->first);
        w.Int(after->second);
      }
      w.Int(kMysqlScanPage);
      const std::string q = Cat({"SELECT ", kEventSelectCols, " FROM events", w.sql,
                                 " ORDER BY timestamp ASC, id ASC LIMIT ?"});
      page.clear();
      Status st = OnRead(Status::Error("scan failed"), [&](Conn& c) -> Status {
        page.clear();
        Status s0;
        Stmt* s = c.Prepare(q, &s0);
        if (!s) return s0;
        w.Bind(s);
        while (s->Next()) page.push_back(ReadEvent(s));
        s0 = s->status();
        s->Reset();
        return s0;
      });
      if (!st.ok) return st;
      try {
        for (const Event& e : page) {
          if (!fn(e)) return Status::Ok();
        }
      } catch (const std::exception& e) {
        return Status::Error(std::string("scan callback: ") + e.what());
      } catch (...) {
        return Status::Error("scan callback: unknown exception");
      }
      if (page.size() < static_cast<size_t>(kMysqlScanPage)) return Status::Ok();
      after.emplace(page.back().timestamp, page.back().id);
    }
  }

  void CheckpointLoop() {
    std::unique_lock lock(ckpt_mu_);
    for (;;) {
      ckpt_cv_.wait(lock, [&] { return ckpt_stop_ || ckpt_wanted_; });
      if (ckpt_stop_) return;
      ckpt_wanted_ = false;
      lock.unlock();
      sql::CheckpointPassive(*ckpt_conn_);
      lock.lock();
    }
  }

  const Dialect dialect_;
  Pool pool_;
  std::unique_ptr<Pool> read_pool_;  // DB_READ_HOST (MySQL only); null = pool_
  Factory exclusive_factory_;
  std::mutex ex_mu_;
  std::unique_ptr<Conn> ex_;                            // guarded by ex_mu_
  std::string headers_buf_;                             // guarded by ex_mu_
  std::vector<size_t> fresh_;                           // guarded by ex_mu_
  std::unordered_map<size_t, std::string> insert_sql_;  // guarded by ex_mu_

  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_stop_ = false;
  bool ckpt_wanted_ = false;
  std::unique_ptr<Conn> ckpt_conn_;
  std::thread ckpt_thread_;
};

}  // namespace

namespace store_internal {

std::unique_ptr<Store> OpenSqliteStoreWith(const SqliteOptions& o, std::span<const Migration> m,
                                           std::string* error) {
  try {
    if (o.path.empty()) {
      *error = "SQLite database path is empty";
      return nullptr;
    }
    auto make = [o](int cache_kib) -> Factory {
      return [o, cache_kib](Status* st) {
        return sql::OpenSqliteConn({o.path, o.fsync_full, cache_kib}, st);
      };
    };
    auto store = std::make_unique<SqlStore>(Dialect::kSqlite, make(16 * 1024), make(64 * 1024),
                                            std::max(2, o.pool_size));
    if (!store->Init(m, make(2 * 1024), error).ok) {
      if (error->rfind(o.path, 0) != 0) *error = o.path + ": " + *error;
      return nullptr;
    }
    return store;
  } catch (const std::exception& e) {
    *error = o.path + ": " + e.what();
    return nullptr;
  }
}

std::unique_ptr<Store> OpenMysqlStoreWith(const MysqlOptions& o, std::span<const Migration> m,
                                          std::string* error) {
  const std::string where = o.host + ":" + std::to_string(o.port) + "/" + o.database;
  try {
    sql::MysqlTarget t{o.host, o.port, o.user, o.password, o.database};
    Factory f = [t](Status* st) { return sql::OpenMysqlConn(t, st); };
    auto store = std::make_unique<SqlStore>(Dialect::kMysql, f, f, std::max(1, o.pool_size));
    if (!o.read_host.empty()) {
      sql::MysqlTarget rt{o.read_host, o.read_port, o.read_user.empty() ? o.user : o.read_user,
                          o.read_user.empty() ? o.password : o.read_password, o.database};
      Status rst;
      if (!sql::OpenMysqlConn(rt, &rst)) {
        *error =
            "read replica " + o.read_host + ":" + std::to_string(o.read_port) + ": " + rst.message;
        return nullptr;
      }
      store->SetReadPool([rt](Status* st) { return sql::OpenMysqlConn(rt, st); },
                         std::max(1, o.pool_size));
    }
    if (!store->Init(m, nullptr, error).ok) {
      if (error->find(o.host + ":" + std::to_string(o.port)) == std::string::npos) {
        *error = where + ": " + *error;
      }
      return nullptr;
    }
    return store;
  } catch (const std::exception& e) {
    *error = where + ": " + e.what();
    return nullptr;
  }
}

std::vector<int> AppliedMigrations(Store& s) {
  auto* sql_store = dynamic_cast<SqlStore*>(&s);
  return sql_store ? sql_store->AppliedMigrations() : std::vector<int>();
}

}  // namespace store_internal

std::unique_ptr<Store> OpenSqliteStore(const SqliteOptions& o, std::string* error) {
  return store_internal::OpenSqliteStoreWith(
      o, store_internal::EmbeddedMigrations(Dialect::kSqlite), error);
}

std::unique_ptr<Store> OpenMysqlStore(const MysqlOptions& o, std::string* error) {
  return store_internal::OpenMysqlStoreWith(o, store_internal::EmbeddedMigrations(Dialect::kMysql),
                                            error);
}

}  // namespace boing
