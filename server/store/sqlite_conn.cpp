#include "sqlite_conn.h"

#include <sqlite3.h>

#include <unordered_map>

namespace boing::sql {
namespace {

Status FromCode(sqlite3* db, int rc) {
  std::string msg = sqlite3_errmsg(db);
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Status::Conflict(msg);
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
      return Status::Unavailable(msg);
    default:
      return Status::Error(msg);
  }
}

class SqliteStmt : public Stmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~SqliteStmt() override { sqlite3_finalize(s_); }
  void BindInt(int i, int64_t v) override { sqlite3_bind_int64(s_, i, v); }
  void BindDouble(int i, double v) override { sqlite3_bind_double(s_, i, v); }
  void BindText(int i, std::string_view v) override {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindTextRef(int i, std::string_view v) override {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindNull(int i) override { sqlite3_bind_null(s_, i); }
  Status Exec(int64_t* changes) override {
    int rc;
    while ((rc = sqlite3_step(s_)) == SQLITE_ROW) {
    }
    Status st = rc == SQLITE_DONE ? Status::Ok() : FromCode(db_, sqlite3_extended_errcode(db_));
    if (changes) *changes = sqlite3_changes(db_);
    Reset();
    return st;
  }
  bool Next() override {
    if (!status_.ok) return false;
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) status_ = FromCode(db_, sqlite3_extended_errcode(db_));
    return false;
  }
  const Status& status() const override { return status_; }
  bool IsNull(int c) override { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  int64_t Int(int c) override { return sqlite3_column_int64(s_, c); }
  double Double(int c) override { return sqlite3_column_double(s_, c); }
  std::string Text(int c) override {
    const auto* p = sqlite3_column_text(s_, c);
    if (!p) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(s_, c)));
  }
  void Reset() override {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    status_ = Status::Ok();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
  Status status_;
};

class SqliteConn : public Conn {
 public:
  explicit SqliteConn(sqlite3* db) : db_(db) {}
  ~SqliteConn() override {
    cache_.clear();
    sqlite3_close_v2(db_);
  }
  Dialect dialect() const override { return Dialect::kSqlite; }
  Stmt* Prepare(const std::string& sql, Status* status) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      it->second->Reset();
      return it->second.get();
    }
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK) {
      *status = FromCode(db_, sqlite3_extended_errcode(db_));
      status->message += " in: " + sql.substr(0, 200);
      sqlite3_finalize(s);
      return nullptr;
    }
    auto& slot = cache_[sql];
    slot = std::make_unique<SqliteStmt>(db_, s);
    return slot.get();
  }
  void TrimCache(size_t max) override {
    if (cache_.size() > max) cache_.clear();
  }
  Status Begin() override { return Run("BEGIN IMMEDIATE"); }
  Status Commit() override { return Run("COMMIT"); }
  void Rollback() override {
    if (!sqlite3_get_autocommit(db_)) Run("ROLLBACK");
  }
  int64_t LastInsertId() override { return sqlite3_last_insert_rowid(db_); }
  bool Broken() const override { return false; }

  sqlite3* db() { return db_; }
  std::function<void(int)> wal_hook;

 private:
  Status Run(const std::string& sql) {
    Status st;
    Stmt* s = Prepare(sql, &st);
    return s ? s->Exec() : st;
  }
  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

// The statement text without leading blanks and comments, for error messages.
std::string_view SkipComments(std::string_view s) {
  for (;;) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    s.remove_prefix(b);
    if (s.substr(0, 2) == "--") {
      size_t nl = s.find('\n');
      s.remove_prefix(nl == std::string_view::npos ? s.size() : nl);
    } else if (s.substr(0, 2) == "/*") {
      size_t e = s.find("*/");
      s.remove_prefix(e == std::string_view::npos ? s.size() : e + 2);
    } else {
      return s;
    }
  }
}

int WalHookTrampoline(void* arg, sqlite3*, const char*, int pages) {
  auto* conn = static_cast<SqliteConn*>(arg);
  if (conn->wal_hook) conn->wal_hook(pages);
  return SQLITE_OK;
}

}  // namespace

std::unique_ptr<Conn> OpenSqliteConn(const SqliteConnOptions& o, Status* status) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(o.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    *status = Status::Unavailable(o.path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 10000);
  auto conn = std::make_unique<SqliteConn>(db);
  // WAL with synchronous=NORMAL: a committed transaction survives a crash or SIGKILL of the
  // process; FULL also survives power loss. mmap: reads skip a copy through the page cache.
  const std::string pragmas[] = {
      "PRAGMA journal_mode=WAL",
      std::string("PRAGMA synchronous=") + (o.fsync_full ? "FULL" : "NORMAL"),
      "PRAGMA foreign_keys=ON",
      "PRAGMA temp_store=MEMORY",
      "PRAGMA cache_size=-" + std::to_string(o.cache_kib),
      "PRAGMA mmap_size=268435456",
      "PRAGMA journal_size_limit=67108864",
  };
  for (const std::string& pragma : pragmas) {
    Status st;
    Stmt* s = conn->Prepare(pragma, &st);
    if (s && pragma == "PRAGMA journal_mode=WAL") {
      if (s->Next() && s->Text(0) != "wal") {
        st = Status::Error("cannot enable WAL mode (journal_mode is " + s->Text(0) + ")");
      } else if (!s->status().ok) {
        st = s->status();
      }
      s->Reset();
    } else if (s) {
      st = s->Exec();
    }
    if (!s || !st.ok) {
      st.message = o.path + ": " + pragma + ": " + st.message;
      *status = st;
      return nullptr;
    }
  }
  conn->TrimCache(0);
  return conn;
}

void SetWalHook(Conn& writer, std::function<void(int)> hook) {
  auto& c = static_cast<SqliteConn&>(writer);
  c.wal_hook = std::move(hook);
  sqlite3_wal_hook(c.db(), &WalHookTrampoline, &c);
}

Status CheckpointPassive(Conn& conn) {
  auto& c = static_cast<SqliteConn&>(conn);
  int rc = sqlite3_wal_checkpoint_v2(c.db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc == SQLITE_OK) return Status::Ok();
  return FromCode(c.db(), rc);
}

Status ExecSqliteScript(Conn& conn, std::string_view script, std::string* failed) {
  auto& c = static_cast<SqliteConn&>(conn);
  const char* p = script.data();
  const char* end = script.data() + script.size();
  while (p < end) {
    sqlite3_stmt* s = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(c.db(), p, static_cast<int>(end - p), &s, &tail);
    if (rc == SQLITE_OK && s) {
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      }
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
      Status st = FromCode(c.db(), sqlite3_extended_errcode(c.db()));
      sqlite3_finalize(s);
      std::string_view stmt(p, static_cast<size_t>((tail && tail > p ? tail : end) - p));
      *failed = std::string(SkipComments(stmt).substr(0, 120));
      return st;
    }
    sqlite3_finalize(s);
    if (!tail || tail <= p) break;
    p = tail;
  }
  return Status::Ok();
}

}  // namespace boing::sql
