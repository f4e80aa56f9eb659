#include "sqlite_conn.h"

#include <unordered_map>

namespace boing::sql {
namespace {

class SqliteStmt : public Stmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~SqliteStmt() override { sqlite3_finalize(s_); }
  void BindInt(int i, int64_t v) override { sqlite3_bind_int64(s_, i, v); }
  void BindDouble(int i, double v) override { sqlite3_bind_double(s_, i, v); }
  void BindText(int i, std::string_view v) override {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) override { sqlite3_bind_null(s_, i); }
  Status Exec(int64_t* changes) override {
    int rc = sqlite3_step(s_);
    Status st = rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok() : Error(rc);
    if (changes) *changes = sqlite3_changes(db_);
    Reset();
    return st;
  }
  bool Next() override {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) status_ = Error(rc);
    return false;
  }
  const Status& status() const override { return status_; }
  bool IsNull(int c) override { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  int64_t Int(int c) override { return sqlite3_column_int64(s_, c); }
  double Double(int c) override { return sqlite3_column_double(s_, c); }
  std::string Text(int c) override {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }
  void Reset() override {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    status_ = Status::Ok();
  }

 private:
  Status Error(int rc) {
    std::string msg = sqlite3_errmsg(db_);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return Status::Conflict(msg);
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL) {
      return Status::Unavailable(msg);
    }
    return Status::Error(msg);
  }
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
  Stmt* Prepare(const std::string& sql, Status* status) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      it->second->Reset();
      return it->second.get();
    }
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr) !=
        SQLITE_OK) {
      *status = Status::Error(std::string(sqlite3_errmsg(db_)) + " in: " + sql.substr(0, 200));
      return nullptr;
    }
    auto& slot = cache_[sql];
    slot = std::make_unique<SqliteStmt>(db_, s);
    return slot.get();
  }
  Status Begin() override { return Run("BEGIN IMMEDIATE"); }
  Status Commit() override { return Run("COMMIT"); }
  void Rollback() override { Run("ROLLBACK"); }
  int64_t LastInsertId() override { return sqlite3_last_insert_rowid(db_); }
  bool Broken() const override { return false; }

 private:
  Status Run(const std::string& sql) {
    Status st;
    Stmt* s = Prepare(sql, &st);
    return s ? s->Exec() : st;
  }
  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

}  // namespace

std::unique_ptr<Conn> OpenSqliteConn(const std::string& path, bool fsync_full, Status* status) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    *status = Status::Error(path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_busy_timeout(db, 10000);
  auto conn = std::make_unique<SqliteConn>(db);
  // WAL with synchronous=NORMAL: a committed transaction survives a crash of the process;
  // FULL also survives power loss.
  for (std::string pragma :
       {std::string("PRAGMA journal_mode=WAL"),
        std::string("PRAGMA synchronous=") + (fsync_full ? "FULL" : "NORMAL"),
        std::string("PRAGMA foreign_keys=ON"), std::string("PRAGMA temp_store=MEMORY"),
        std::string("PRAGMA cache_size=-65536")}) {
    Status st;
    Stmt* s = conn->Prepare(pragma, &st);
    if (!s || !(st = s->Exec()).ok) {
      *status = Status::Error(path + ": " + pragma + ": " + st.message);
      return nullptr;
    }
  }
  return conn;
}

}  // namespace boing::sql
