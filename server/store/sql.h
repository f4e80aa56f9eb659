// A minimal prepared-statement adapter over SQLite and mysql-connector-c++, so the Store's queries
// are written once (sql_store.cpp) and only the dialect differs. Parameters are 1-based and bound
// by type; result columns are 0-based. Nothing here throws: driver errors come back as Status.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "boing/store.h"

namespace boing::sql {

enum class Dialect { kSqlite, kMysql };

class Stmt {
 public:
  virtual ~Stmt() = default;
  virtual void BindInt(int idx, int64_t v) = 0;
  virtual void BindDouble(int idx, double v) = 0;
  // Copies `v`.
  virtual void BindText(int idx, std::string_view v) = 0;
  // Does not copy: `v` must stay valid until the statement has run (the ingest path binds every
  // event's strings this way).
  virtual void BindTextRef(int idx, std::string_view v) { BindText(idx, v); }
  virtual void BindNull(int idx) = 0;
  // Runs a statement that returns no rows; `changes` = affected rows. Resets the statement.
  virtual Status Exec(int64_t* changes = nullptr) = 0;
  // Runs the query (first call) and advances to the next row. false at the end or on error
  // (then `status()` is not ok).
  virtual bool Next() = 0;
  virtual const Status& status() const = 0;
  virtual bool IsNull(int col) = 0;
  virtual int64_t Int(int col) = 0;
  virtual double Double(int col) = 0;
  virtual std::string Text(int col) = 0;
  // Drops results so the statement can run again. Every execution binds every parameter: SQLite
  // clears bindings here (a forgotten one is NULL), MySQL keeps them (clearing is costly).
  virtual void Reset() = 0;

  void BindOptInt(int idx, const std::optional<int64_t>& v) {
    if (v) {
      BindInt(idx, *v);
    } else {
      BindNull(idx);
    }
  }
  std::optional<int64_t> OptInt(int col) {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
};

class Conn {
 public:
  virtual ~Conn() = default;
  virtual Dialect dialect() const = 0;
  // Prepared statements are cached per connection by SQL text. The pointer stays valid until
  // TrimCache() or the connection is destroyed.
  virtual Stmt* Prepare(const std::string& sql, Status* status) = 0;
  // Drops cached statements when there are more than `max` (called while no statement is in use).
  virtual void TrimCache(size_t max) = 0;
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  virtual int64_t LastInsertId() = 0;
  // Connection lost (server restart, idle timeout, killed): the pool replaces it.
  virtual bool Broken() const = 0;
};

}  // namespace boing::sql
