// One Store implementation over the sql::Conn adapter, for SQLite and MySQL/MariaDB. Only the
// dialect-specific statements differ (upserts, insert-or-ignore).
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "boing/store.h"
#include "mysql_conn.h"
#include "sql.h"
#include "sqlite_conn.h"

namespace boing {

// Generated at build time from sql/<dialect>/*.sql (see server/store/CMakeLists.txt).
struct Migration {
  int version;
  const char* name;
  const char* sql;
};
extern const Migration kSqliteMigrations[];
extern const size_t kSqliteMigrationCount;
extern const Migration kMysqlMigrations[];
extern const size_t kMysqlMigrationCount;

namespace {

using sql::Conn;
using sql::Dialect;
using sql::Stmt;

double NowSecondsF() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr char kEventColumns[] =
    "api_id, timestamp, method, endpoint, client_ip, headers_json, status_code, latency_ms, "
    "body_size, response_size, query, payload, user_agent, host, identity, server_ip, server_port, "
    "tls, protocol, agent_id, seq, host_name, pid, comm, cgroup_id, container_id, pod, namespace, "
    "received_at";
constexpr int kEventParams = 29;

std::string HeadersToJson(const Event& e) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [k, v] : e.headers) a.push_back({k, v});
  return a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void HeadersFromJson(const std::string& s, Event& e) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_array()) return;
  for (const auto& p : j) {
    if (p.is_array() && p.size() == 2 && p[0].is_string() && p[1].is_string()) {
      e.headers.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
    }
  }
}

void BindEvent(Stmt* s, int base, const Event& e, double received) {
  auto opt_text = [&](int i, const std::string& v) {
    if (v.empty())
      s->BindNull(i);
    else
      s->BindText(i, v);
  };
  int i = base;
  s->BindInt(i++, e.api_id);
  s->BindDouble(i++, e.timestamp);
  s->BindText(i++, e.method);
  s->BindText(i++, e.endpoint);
  s->BindText(i++, e.client_ip);
  s->BindText(i++, HeadersToJson(e));
  s->BindInt(i++, e.status_code);
  s->BindDouble(i++, e.latency_ms);
  s->BindOptInt(i++, e.body_size);
  s->BindOptInt(i++, e.response_size);
  s->BindText(i++, e.query);
  s->BindText(i++, e.payload);
  s->BindText(i++, e.user_agent);
  s->BindText(i++, e.host);
  s->BindText(i++, e.identity);
  s->BindText(i++, e.server_ip);
  if (e.server_port)
    s->BindInt(i++, *e.server_port);
  else
    s->BindNull(i++);
  if (e.tls)
    s->BindInt(i++, *e.tls ? 1 : 0);
  else
    s->BindNull(i++);
  s->BindText(i++, e.protocol);
  opt_text(i++, e.agent_id);
  s->BindOptInt(i++, e.seq);
  s->BindText(i++, e.host_name);
  s->BindOptInt(i++, e.pid);
  s->BindText(i++, e.comm);
  if (e.cgroup_id)
    s->BindInt(i++, static_cast<int64_t>(*e.cgroup_id));
  else
    s->BindNull(i++);
  s->BindText(i++, e.container_id);
  s->BindText(i++, e.pod);
  s->BindText(i++, e.k8s_namespace);
  s->BindDouble(i++, received);
}

// Columns in the order of "id, " + kEventColumns.
Event ReadEvent(Stmt* s) {
  Event e;
  int c = 0;
  e.id = s->Int(c++);
  e.api_id = s->Int(c++);
  e.timestamp = s->Double(c++);
  e.method = s->Text(c++);
  e.endpoint = s->Text(c++);
  e.client_ip = s->Text(c++);
  HeadersFromJson(s->Text(c++), e);
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

constexpr char kUserColumns[] =
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

constexpr char kApiColumns[] =
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

constexpr char kAgentColumns[] =
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

constexpr char kDetectorColumns[] =
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

constexpr char kEntryColumns[] =
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

class SqlStore : public Store {
 public:
  using Factory = std::function<std::unique_ptr<Conn>(Status*)>;

  SqlStore(Dialect d, Factory factory, int pool_size)
      : dialect_(d), factory_(std::move(factory)), pool_size_(pool_size) {}

  Status Init(const Migration* migrations, size_t count, std::string* error) {
    Status st;
    auto conn = factory_(&st);
    if (!conn) {
      *error = st.message;
      return st;
    }
    st = Migrate(*conn, migrations, count, error);
    if (!st.ok) return st;
    idle_.push_back(std::move(conn));
    created_ = 1;
    return Status::Ok();
  }

  std::string Backend() const override { return dialect_ == Dialect::kSqlite ? "sqlite" : "mysql"; }

  Status Ping() override {
    return With([&](Conn& c) -> Status {
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
    return With([&](Conn& c) {
      return Insert(
          c,
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
          },
          &u.id);
    });
  }
  std::optional<User> GetUserByName(const std::string& name) override {
    return QueryOne<User>(
        std::string("SELECT ") + kUserColumns + " FROM users WHERE username = ?",
        [&](Stmt* s) { s->BindText(1, name); }, ReadUser);
  }
  std::optional<User> GetUser(int64_t id) override {
    return QueryOne<User>(
        std::string("SELECT ") + kUserColumns + " FROM users WHERE id = ?",
        [&](Stmt* s) { s->BindInt(1, id); }, ReadUser);
  }
  std::vector<User> ListUsers() override {
    return QueryAll<User>(
        std::string("SELECT ") + kUserColumns + " FROM users ORDER BY id", [](Stmt*) {}, ReadUser);
  }
  Status UpdateUser(const User& u) override {
    return Exec(
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
  }
  Status DeleteUser(int64_t id) override {
    return Transaction([&](Conn& c) -> Status {
      Status st =
          ExecOn(c, "DELETE FROM events WHERE api_id IN (SELECT id FROM apis WHERE owner_id = ?)",
                 [&](Stmt* s) { s->BindInt(1, id); });
      if (!st.ok) return st;
      st = ExecOn(c, "DELETE FROM apis WHERE owner_id = ?", [&](Stmt* s) { s->BindInt(1, id); });
      if (!st.ok) return st;
      return ExecOn(c, "DELETE FROM users WHERE id = ?", [&](Stmt* s) { s->BindInt(1, id); });
    });
  }
  int64_t CountUsers() override { return Count("SELECT COUNT(*) FROM users"); }

  // --- revoked tokens ---
  Status RevokeToken(const std::string& jti, int64_t expires_at) override {
    const int64_t now = static_cast<int64_t>(NowSecondsF());
    Exec("DELETE FROM revoked_tokens WHERE expires_at < ?", [&](Stmt* s) { s->BindInt(1, now); });
    return Exec(std::string(dialect_ == Dialect::kSqlite ? "INSERT OR IGNORE" : "INSERT IGNORE") +
                    " INTO revoked_tokens (jti, expires_at) VALUES (?, ?)",
                [&](Stmt* s) {
                  s->BindText(1, jti);
                  s->BindInt(2, expires_at);
                });
  }
  bool IsTokenRevoked(const std::string& jti) override {
    return Count("SELECT COUNT(*) FROM revoked_tokens WHERE jti = ?",
                 [&](Stmt* s) { s->BindText(1, jti); }) > 0;
  }
  std::vector<std::pair<std::string, int64_t>> ListRevokedTokens() override {
    return QueryAll<std::pair<std::string, int64_t>>(
        "SELECT jti, expires_at FROM revoked_tokens", [](Stmt*) {},
        [](Stmt* s) { return std::make_pair(s->Text(0), s->Int(1)); });
  }

  // --- APIs ---
  Status CreateApi(Api& a) override {
    return With([&](Conn& c) {
      return Insert(
          c,
          "INSERT INTO apis (name, base_url, owner_id, settings_json, ingest_key_hash, "
          "ingest_key_prefix, upstream_secret_enc, match_host, match_port, "
          "match_base_path, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
          [&](Stmt* s) { BindApi(s, a, true); }, &a.id);
    });
  }
  std::optional<Api> GetApi(int64_t id) override {
    return QueryOne<Api>(
        std::string("SELECT ") + kApiColumns + " FROM apis WHERE id = ?",
        [&](Stmt* s) { s->BindInt(1, id); }, ReadApi);
  }
  std::vector<Api> ListApis(std::optional<int64_t> owner) override {
    if (owner) {
      return QueryAll<Api>(
          std::string("SELECT ") + kApiColumns + " FROM apis WHERE owner_id = ? ORDER BY id",
          [&](Stmt* s) { s->BindInt(1, *owner); }, ReadApi);
    }
    return QueryAll<Api>(
        std::string("SELECT ") + kApiColumns + " FROM apis ORDER BY id", [](Stmt*) {}, ReadApi);
  }
  Status UpdateApi(const Api& a) override {
    return Exec(
        "UPDATE apis SET name = ?, base_url = ?, owner_id = ?, settings_json = ?, "
        "ingest_key_hash = ?, ingest_key_prefix = ?, upstream_secret_enc = ?, "
        "match_host = ?, match_port = ?, match_base_path = ?, updated_at = ? WHERE id = ?",
        [&](Stmt* s) { BindApi(s, a, false); });
  }
  Status DeleteApi(int64_t id) override {
    return Transaction([&](Conn& c) -> Status {
      Status st =
          ExecOn(c, "DELETE FROM events WHERE api_id = ?", [&](Stmt* s) { s->BindInt(1, id); });
      if (!st.ok) return st;
      return ExecOn(c, "DELETE FROM apis WHERE id = ?", [&](Stmt* s) { s->BindInt(1, id); });
    });
  }
  std::optional<Api> GetApiByKeyHash(const std::string& h) override {
    return QueryOne<Api>(
        std::string("SELECT ") + kApiColumns + " FROM apis WHERE ingest_key_hash = ?",
        [&](Stmt* s) { s->BindText(1, h); }, ReadApi);
  }

  // --- agents ---
  Status CreateEnrollmentToken(EnrollmentToken& t) override {
    return With([&](Conn& c) {
      return Insert(
          c,
          "INSERT INTO enrollment_tokens (token_hash, name, created_by, expires_at, "
          "used_at, created_at) VALUES (?,?,?,?,?,?)",
          [&](Stmt* s) {
            s->BindText(1, t.token_hash);
            s->BindText(2, t.name);
            s->BindInt(3, t.created_by);
            s->BindInt(4, t.expires_at);
            s->BindInt(5, t.used_at);
            s->BindInt(6, t.created_at);
          },
          &t.id);
    });
  }
  Status EnrollAgent(const std::string& token_hash, int64_t now, Agent& agent) override {
    return Transaction([&](Conn& c) -> Status {
      Status st;
      Stmt* s = c.Prepare(
          "SELECT id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?", &st);
      if (!s) return st;
      s->BindText(1, token_hash);
      if (!s->Next()) {
        st = s->status();
        s->Reset();
        return st.ok ? Status::Error("unknown enrollment token") : st;
      }
      int64_t id = s->Int(0), expires = s->Int(1), used = s->Int(2);
      s->Reset();
      if (used != 0) return Status::Error("enrollment token already used");
      if (expires < now) return Status::Error("enrollment token expired");
      int64_t changed = 0;
      st = ExecOn(
          c, "UPDATE enrollment_tokens SET used_at = ? WHERE id = ? AND used_at = 0",
          [&](Stmt* u) {
            u->BindInt(1, now);
            u->BindInt(2, id);
          },
          &changed);
      if (!st.ok) return st;
      if (changed != 1) return Status::Error("enrollment token already used");
      return Insert(
          c,
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
          },
          &agent.id);
    });
  }
  std::optional<Agent> GetAgentByTokenHash(const std::string& h) override {
    return QueryOne<Agent>(
        std::string("SELECT ") + kAgentColumns + " FROM agents WHERE token_hash = ?",
        [&](Stmt* s) { s->BindText(1, h); }, ReadAgent);
  }
  std::vector<Agent> ListAgents() override {
    return QueryAll<Agent>(
        std::string("SELECT ") + kAgentColumns + " FROM agents ORDER BY id", [](Stmt*) {},
        ReadAgent);
  }
  Status UpdateAgentHeartbeat(const std::string& agent_id, int64_t now, const std::string& version,
                              const std::string& counters, const std::string& rates) override {
    return Exec(
        "UPDATE agents SET last_seen = ?, version = ?, counters_json = ?, rates_json = ? "
        "WHERE agent_id = ?",
        [&](Stmt* s) {
          s->BindInt(1, now);
          s->BindText(2, version);
          s->BindText(3, counters);
          s->BindText(4, rates);
          s->BindText(5, agent_id);
        });
  }
  Status RevokeAgent(const std::string& agent_id) override {
    return Exec("UPDATE agents SET revoked = 1 WHERE agent_id = ?",
                [&](Stmt* s) { s->BindText(1, agent_id); });
  }

  // --- events ---
  Status InsertEvents(std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) override {
    outcomes.assign(events.size(), InsertOutcome::kInserted);
    if (events.empty()) return Status::Ok();
    return Transaction([&](Conn& c) -> Status {
      return dialect_ == Dialect::kSqlite ? InsertSqlite(c, events, outcomes)
                                          : InsertMysql(c, events, outcomes);
    });
  }

  std::vector<Event> QueryLogs(const LogFilter& f) override {
    std::string sql = std::string("SELECT id, ") + kEventColumns + " FROM events";
    std::vector<std::function<void(Stmt*, int&)>> binds;
    std::string where = Where(f, binds);
    if (f.before_ts) {
      where += where.empty() ? " WHERE " : " AND ";
      where += "(timestamp < ? OR (timestamp = ? AND id < ?))";
      double ts = *f.before_ts;
      int64_t id = f.before_id;
      binds.push_back([ts, id](Stmt* s, int& i) {
        s->BindDouble(i++, ts);
        s->BindDouble(i++, ts);
        s->BindInt(i++, id);
      });
    }
    int limit = std::clamp(f.limit, 1, 1000);
    sql += where + " ORDER BY timestamp DESC, id DESC LIMIT " + std::to_string(limit);
    if (f.restrict_to_apis && f.api_ids.empty()) return {};
    return QueryAll<Event>(
        sql,
        [&](Stmt* s) {
          int i = 1;
          for (auto& b : binds) b(s, i);
        },
        ReadEvent);
  }

  // Pages through the matches in (timestamp, id) order so memory stays bounded on any backend.
  Status ScanEvents(const LogFilter& f, const std::function<bool(const Event&)>& fn) override {
    if (f.restrict_to_apis && f.api_ids.empty()) return Status::Ok();
    std::vector<std::function<void(Stmt*, int&)>> binds;
    std::string where = Where(f, binds);
    std::string base = std::string("SELECT id, ") + kEventColumns + " FROM events" + where;
    std::string paged = base + (where.empty() ? " WHERE " : " AND ") +
                        "(timestamp > ? OR (timestamp = ? AND id > ?))";
    constexpr int kPage = 5000;
    std::optional<double> after_ts;
    int64_t after_id = 0;
    for (;;) {
      std::vector<Event> page;
      Status st = With([&](Conn& c) -> Status {
        Status s0;
        std::string sql =
            (after_ts ? paged : base) + " ORDER BY timestamp, id LIMIT " + std::to_string(kPage);
        Stmt* s = c.Prepare(sql, &s0);
        if (!s) return s0;
        int i = 1;
        for (auto& b : binds) b(s, i);
        if (after_ts) {
          s->BindDouble(i++, *after_ts);
          s->BindDouble(i++, *after_ts);
          s->BindInt(i++, after_id);
        }
        while (s->Next()) page.push_back(ReadEvent(s));
        s0 = s->status();
        s->Reset();
        return s0;
      });
      if (!st.ok) return st;
      for (const auto& e : page) {
        if (!fn(e)) return Status::Ok();
      }
      if (page.size() < static_cast<size_t>(kPage)) return Status::Ok();
      after_ts = page.back().timestamp;
      after_id = page.back().id;
    }
  }

  int64_t CountEvents() override { return Count("SELECT COUNT(*) FROM events"); }

  // --- detectors ---
  std::vector<DetectorConfig> ListDetectors() override {
    return QueryAll<DetectorConfig>(
        std::string("SELECT ") + kDetectorColumns + " FROM detectors ORDER BY stage, id",
        [](Stmt*) {}, ReadDetector);
  }
  std::optional<DetectorConfig> GetDetector(const std::string& id) override {
    return QueryOne<DetectorConfig>(
        std::string("SELECT ") + kDetectorColumns + " FROM detectors WHERE id = ?",
        [&](Stmt* s) { s->BindText(1, id); }, ReadDetector);
  }
  Status InsertDetectorIfMissing(const DetectorConfig& d) override {
    return Exec(std::string(dialect_ == Dialect::kSqlite ? "INSERT OR IGNORE" : "INSERT IGNORE") +
                    " INTO detectors (id, name, stage, enabled, severity, config_json, "
                    "updated_at, updated_by) VALUES (?,?,?,?,?,?,?,?)",
                [&](Stmt* s) { BindDetector(s, d); });
  }
  Status UpdateDetector(const DetectorConfig& d) override {
    return Exec(
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
  }

  // --- lists ---
  Status AddListEntry(ListEntry& e) override {
    return With([&](Conn& c) {
      return Insert(
          c,
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
          },
          &e.id);
    });
  }
  std::vector<ListEntry> ListEntries(const std::string& list) override {
    return QueryAll<ListEntry>(
        std::string("SELECT ") + kEntryColumns + " FROM list_entries WHERE list = ? ORDER BY id",
        [&](Stmt* s) { s->BindText(1, list); }, ReadEntry);
  }
  std::optional<ListEntry> GetListEntry(int64_t id) override {
    return QueryOne<ListEntry>(
        std::string("SELECT ") + kEntryColumns + " FROM list_entries WHERE id = ?",
        [&](Stmt* s) { s->BindInt(1, id); }, ReadEntry);
  }
  Status DeleteListEntry(const std::string& list, int64_t id) override {
    return Exec("DELETE FROM list_entries WHERE list = ? AND id = ?", [&](Stmt* s) {
      s->BindText(1, list);
      s->BindInt(2, id);
    });
  }

  // --- audit ---
  Status AddAudit(const AuditEntry& a) override {
    return Exec(
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
  }
  std::vector<AuditEntry> ListAudit(int limit, int64_t before_id) override {
    limit = std::clamp(limit, 1, 1000);
    return QueryAll<AuditEntry>(
        "SELECT id, ts_ms, user_id, username, action, target, client_ip, details_json FROM "
        "audit_log WHERE id < ? ORDER BY id DESC LIMIT " +
            std::to_string(limit),
        [&](Stmt* s) { s->BindInt(1, before_id > 0 ? before_id : INT64_MAX); },
        [](Stmt* s) {
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
        });
  }

  // --- settings ---
  std::optional<std::string> GetSetting(const std::string& key) override {
    return QueryOne<std::string>(
        "SELECT value FROM settings WHERE `key` = ?", [&](Stmt* s) { s->BindText(1, key); },
        [](Stmt* s) { return s->Text(0); });
  }
  Status PutSetting(const std::string& key, const std::string& value) override {
    return Exec(dialect_ == Dialect::kSqlite
                    ? "INSERT INTO settings (`key`, value) VALUES (?, ?) ON CONFLICT(`key`) DO "
                      "UPDATE SET value = excluded.value"
                    : "INSERT INTO settings (`key`, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE "
                      "value = VALUES(value)",
                [&](Stmt* s) {
                  s->BindText(1, key);
                  s->BindText(2, value);
                });
  }

  // --- findings ---
  Status InsertFindings(std::vector<FindingRecord>& findings) override {
    if (findings.empty()) return Status::Ok();
    return Transaction([&](Conn& c) -> Status {
      for (auto& f : findings) {
        Status st = Insert(
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
            },
            &f.id);
        if (!st.ok) return st;
      }
      return Status::Ok();
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
    return QueryAll<FindingRecord>(
        sql,
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
  }

 private:
  using Binder = std::function<void(Stmt*)>;

  // --- pool ---
  std::unique_ptr<Conn> Acquire(Status* st) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (created_ < pool_size_) {
        ++created_;
        lock.unlock();
        auto c = factory_(st);
        if (!c) {
          lock.lock();
          --created_;
          cv_.notify_one();
          if (st->ok)
            *st = Status::Unavailable("cannot open a database connection");
          else if (!st->unavailable)
            *st = Status::Unavailable(st->message);
        }
        return c;
      }
      cv_.wait(lock);
    }
  }
  void Release(std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu_);
    if (c->Broken()) {
      --created_;
    } else {
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }
  // Runs `fn` with a pooled connection; retries once on a fresh connection when the first one
  // turned out to be broken (server restarted, idle timeout).
  template <class F>
  auto With(F fn) -> decltype(fn(std::declval<Conn&>())) {
    for (int attempt = 0;; ++attempt) {
      Status st;
      auto c = Acquire(&st);
      if (!c) {
        if constexpr (std::is_same_v<decltype(fn(*c)), Status>) {
          return st;
        } else {
          return {};
        }
      }
      auto result = fn(*c);
      bool broken = c->Broken();
      Release(std::move(c));
      if (!broken || attempt > 0) return result;
    }
  }

  Status Transaction(const std::function<Status(Conn&)>& fn) {
    return With([&](Conn& c) -> Status {
      Status st = c.Begin();
      if (!st.ok) return st;
      st = fn(c);
      if (st.ok) st = c.Commit();
      if (!st.ok) c.Rollback();
      return st;
    });
  }

  Status ExecOn(Conn& c, const std::string& sql, const Binder& bind, int64_t* changes = nullptr) {
    Status st;
    Stmt* s = c.Prepare(sql, &st);
    if (!s) return st;
    bind(s);
    return s->Exec(changes);
  }
  Status Exec(const std::string& sql, const Binder& bind) {
    return With([&](Conn& c) { return ExecOn(c, sql, bind); });
  }
  Status Insert(Conn& c, const std::string& sql, const Binder& bind, int64_t* id) {
    Status st = ExecOn(c, sql, bind);
    if (st.ok) *id = c.LastInsertId();
    return st;
  }
  template <class T, class Read>
  std::vector<T> QueryAll(const std::string& sql, const Binder& bind, Read read) {
    return With([&](Conn& c) {
      std::vector<T> out;
      Status st;
      Stmt* s = c.Prepare(sql, &st);
      if (!s) return out;
      bind(s);
      while (s->Next()) out.push_back(read(s));
      s->Reset();
      return out;
    });
  }
  template <class T, class Read>
  std::optional<T> QueryOne(const std::string& sql, const Binder& bind, Read read) {
    return With([&](Conn& c) -> std::optional<T> {
      Status st;
      Stmt* s = c.Prepare(sql, &st);
      if (!s) return std::nullopt;
      bind(s);
      std::optional<T> out;
      if (s->Next()) out = read(s);
      s->Reset();
      return out;
    });
  }
  int64_t Count(
      const std::string& sql, const Binder& bind = [](Stmt*) {}) {
    return QueryOne<int64_t>(sql, bind, [](Stmt* s) { return s->Int(0); }).value_or(0);
  }

  void BindApi(Stmt* s, const Api& a, bool creating) {
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
    if (creating) {
      s->BindInt(11, a.created_at);
      s->BindInt(12, a.updated_at);
    } else {
      s->BindInt(11, a.updated_at);
      s->BindInt(12, a.id);
    }
  }
  void BindDetector(Stmt* s, const DetectorConfig& d) {
    s->BindText(1, d.id);
    s->BindText(2, d.name);
    s->BindText(3, d.stage);
    s->BindInt(4, d.enabled);
    s->BindText(5, d.severity);
    s->BindText(6, d.config_json);
    s->BindInt(7, d.updated_at);
    s->BindInt(8, d.updated_by);
  }

  std::string Where(const LogFilter& f, std::vector<std::function<void(Stmt*, int&)>>& binds) {
    std::vector<std::string> conds;
    if (f.restrict_to_apis && !f.api_ids.empty()) {
      std::string in = "api_id IN (";
      for (size_t i = 0; i < f.api_ids.size(); ++i) in += i ? ",?" : "?";
      conds.push_back(in + ")");
      auto ids = f.api_ids;
      binds.push_back([ids](Stmt* s, int& i) {
        for (auto id : ids) s->BindInt(i++, id);
      });
    }
    auto text = [&](const std::string& col, const std::string& v) {
      if (v.empty()) return;
      conds.push_back(col + " = ?");
      binds.push_back([v](Stmt* s, int& i) { s->BindText(i++, v); });
    };
    text("client_ip", f.client_ip);
    text("method", f.method);
    if (!f.endpoint.empty()) {
      if (f.endpoint.back() == '*') {
        // Prefix match without LIKE wildcards: substr comparison works the same on both backends.
        std::string prefix = f.endpoint.substr(0, f.endpoint.size() - 1);
        conds.push_back("substr(endpoint, 1, ?) = ?");
        binds.push_back([prefix](Stmt* s, int& i) {
          s->BindInt(i++, static_cast<int64_t>(prefix.size()));
          s->BindText(i++, prefix);
        });
      } else {
        text("endpoint", f.endpoint);
      }
    }
    auto num = [&](const char* cond, double v, bool is_int) {
      conds.push_back(cond);
      binds.push_back([v, is_int](Stmt* s, int& i) {
        if (is_int)
          s->BindInt(i++, static_cast<int64_t>(v));
        else
          s->BindDouble(i++, v);
      });
    };
    if (f.status_min) num("status_code >= ?", f.status_min, true);
    if (f.status_max) num("status_code <= ?", f.status_max, true);
    if (f.from_ts > 0) num("timestamp >= ?", f.from_ts, false);
    if (f.to_ts > 0) num("timestamp < ?", f.to_ts, false);
    std::string where;
    for (size_t i = 0; i < conds.size(); ++i) where += (i ? " AND " : " WHERE ") + conds[i];
    return where;
  }

  Status InsertSqlite(Conn& c, std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) {
    Status st;
    Stmt* s = c.Prepare(std::string("INSERT INTO events (") + kEventColumns + ") VALUES (" +
                            Placeholders(kEventParams) + ") ON CONFLICT DO NOTHING",
                        &st);
    if (!s) return st;
    const double now = NowSecondsF();
    for (size_t i = 0; i < events.size(); ++i) {
      BindEvent(s, 1, events[i], now);
      int64_t changes = 0;
      st = s->Exec(&changes);
      if (!st.ok) return st;
      if (changes == 0) {
        outcomes[i] = InsertOutcome::kDuplicate;
        events[i].id = 0;
      } else {
        events[i].id = c.LastInsertId();
      }
    }
    return Status::Ok();
  }

  // MySQL: find duplicates first (already stored, or repeated inside the batch), then insert the
  // rest with multi-row statements; ids of one multi-row INSERT are consecutive
  // (innodb_autoinc_lock_mode 1 or 2 with a single writer per statement).
  Status InsertMysql(Conn& c, std::vector<Event>& events, std::vector<InsertOutcome>& outcomes) {
    std::map<std::string, std::vector<size_t>> by_agent;
    for (size_t i = 0; i < events.size(); ++i) {
      if (!events[i].agent_id.empty() && events[i].seq) by_agent[events[i].agent_id].push_back(i);
    }
    for (auto& [agent, idx] : by_agent) {
      std::set<int64_t> seen;
      std::set<int64_t> stored;
      constexpr size_t kChunk = 500;
      for (size_t off = 0; off < idx.size(); off += kChunk) {
        size_t n = std::min(kChunk, idx.size() - off);
        Status st;
        Stmt* s = c.Prepare("SELECT seq FROM events WHERE agent_id = ? AND seq IN (" +
                                Placeholders(static_cast<int>(n)) + ")",
                            &st);
        if (!s) return st;
        s->BindText(1, agent);
        for (size_t k = 0; k < n; ++k)
          s->BindInt(static_cast<int>(k + 2), *events[idx[off + k]].seq);
        while (s->Next()) stored.insert(s->Int(0));
        st = s->status();
        s->Reset();
        if (!st.ok) return st;
      }
      for (size_t i : idx) {
        int64_t seq = *events[i].seq;
        if (stored.count(seq) || !seen.insert(seq).second) outcomes[i] = InsertOutcome::kDuplicate;
      }
    }
    std::vector<size_t> fresh;
    for (size_t i = 0; i < events.size(); ++i) {
      if (outcomes[i] == InsertOutcome::kInserted)
        fresh.push_back(i);
      else
        events[i].id = 0;
    }
    constexpr size_t kRows = 200;
    const double now = NowSecondsF();
    for (size_t off = 0; off < fresh.size(); off += kRows) {
      size_t n = std::min(kRows, fresh.size() - off);
      std::string sql = std::string("INSERT INTO events (") + kEventColumns + ") VALUES ";
      std::string row = "(" + Placeholders(kEventParams) + ")";
      for (size_t k = 0; k < n; ++k) sql += (k ? "," : "") + row;
      Status st;
      Stmt* s = c.Prepare(sql, &st);
      if (!s) return st;
      for (size_t k = 0; k < n; ++k)
        BindEvent(s, static_cast<int>(k * kEventParams + 1), events[fresh[off + k]], now);
      st = s->Exec();
      if (!st.ok) return st;
      int64_t first = c.LastInsertId();
      for (size_t k = 0; k < n; ++k) events[fresh[off + k]].id = first + static_cast<int64_t>(k);
    }
    return Status::Ok();
  }

  static std::string Placeholders(int n) {
    std::string p;
    for (int i = 0; i < n; ++i) p += i ? ",?" : "?";
    return p;
  }

  Status Migrate(Conn& c, const Migration* m, size_t count, std::string* error) {
    Status st;
    Stmt* s = c.Prepare(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name "
        "VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL)",
        &st);
    if (!s || !(st = s->Exec()).ok) {
      *error = "schema_migrations: " + st.message;
      return st;
    }
    std::set<int64_t> applied;
    s = c.Prepare("SELECT version FROM schema_migrations", &st);
    if (!s) {
      *error = st.message;
      return st;
    }
    while (s->Next()) applied.insert(s->Int(0));
    s->Reset();
    for (size_t i = 0; i < count; ++i) {
      if (applied.count(m[i].version)) continue;
      // SQLite runs DDL inside the transaction; MySQL commits DDL implicitly, so a failed MySQL
      // migration may be partial and the error says which file to look at.
      st = c.Begin();
      std::string text = m[i].sql;
      size_t pos = 0;
      while (st.ok && pos < text.size()) {
        size_t end = text.find(";\n", pos);
        if (end == std::string::npos) end = text.size();
        std::string stmt = text.substr(pos, end - pos);
        pos = end + 2;
        // Strip comment lines.
        std::string clean;
        size_t lp = 0;
        while (lp < stmt.size()) {
          size_t nl = stmt.find('\n', lp);
          if (nl == std::string::npos) nl = stmt.size();
          std::string line = stmt.substr(lp, nl - lp);
          size_t first = line.find_first_not_of(" \t");
          if (first != std::string::npos && line.compare(first, 2, "--") != 0) {
            clean += line + "\n";
          }
          lp = nl + 1;
        }
        if (clean.find_first_not_of(" \t\r\n;") == std::string::npos) continue;
        Stmt* ms = c.Prepare(clean, &st);
        if (ms) st = ms->Exec();
      }
      if (st.ok) {
        st = ExecOn(c, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                    [&](Stmt* x) {
                      x->BindInt(1, m[i].version);
                      x->BindText(2, m[i].name);
                      x->BindInt(3, static_cast<int64_t>(NowSecondsF()));
                    });
      }
      if (st.ok) st = c.Commit();
      if (!st.ok) {
        c.Rollback();
        *error = std::string("migration ") + m[i].name + " failed: " + st.message;
        return st;
      }
    }
    return Status::Ok();
  }

  Dialect dialect_;
  Factory factory_;
  int pool_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int created_ = 0;
};

}  // namespace

std::unique_ptr<Store> OpenSqliteStore(const SqliteOptions& o, std::string* error) {
  std::string path = o.path;
  bool fsync = o.fsync_full;
  auto store = std::make_unique<SqlStore>(
      Dialect::kSqlite, [path, fsync](Status* st) { return sql::OpenSqliteConn(path, fsync, st); },
      std::max(1, o.pool_size));
  if (!store->Init(kSqliteMigrations, kSqliteMigrationCount, error).ok) return nullptr;
  return store;
}

std::unique_ptr<Store> OpenMysqlStore(const MysqlOptions& o, std::string* error) {
  sql::MysqlTarget t{o.host, o.port, o.user, o.password, o.database};
  auto store = std::make_unique<SqlStore>(
      Dialect::kMysql, [t](Status* st) { return sql::OpenMysqlConn(t, st); },
      std::max(1, o.pool_size));
  if (!store->Init(kMysqlMigrations, kMysqlMigrationCount, error).ok) return nullptr;
  return store;
}

}  // namespace boing
