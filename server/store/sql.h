// A minimal prepared-statement adapter over SQLite and mysql-connector-c++, so the Store's queries
// are written once (sql_store.cpp) and only the dialect differs. Parameters are 1-based and bound
// by type; result columns are 0-based. Nothing here throws: driver errors come back as Status.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boing/store.h"

namespace boing::sql {

class Stmt {
 public:
  virtual ~Stmt() = default;
  virtual void BindInt(int idx, int64_t v) = 0;
  virtual void BindDouble(int idx, double v) = 0;
  virtual void BindText(int idx, std::string_view v) = 0;
  virtual void BindNull(int idx) = 0;
  // Runs a statement that returns no rows; `changes` = affected rows.
  virtual Status Exec(int64_t* changes = nullptr) = 0;
  // Runs a query (first call) and advances to the next row. false at the end or on error
  // (then `status()` is not ok).
  virtual bool Next() = 0;
  virtual const Status& status() const = 0;
  virtual bool IsNull(int col) = 0;
  virtual int64_t Int(int col) = 0;
  virtual double Double(int col) = 0;
  virtual std::string Text(int col) = 0;
  // Clears bindings and results so the statement can run again.
  virtual void Reset() = 0;

  void BindOptInt(int idx, const std::optional<int64_t>& v) {
    if (v)
      BindInt(idx, *v);
    else
      BindNull(idx);
  }
  std::optional<int64_t> OptInt(int col) {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
};

class Conn {
 public:
  virtual ~Conn() = default;
  // Prepared statements are cached per connection by SQL text.
  virtual Stmt* Prepare(const std::string& sql, Status* status) = 0;
  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  virtual int64_t LastInsertId() = 0;
  virtual bool Broken() const = 0;  // connection lost: the pool replaces it
};

enum class Dialect { kSqlite, kMysql };

}  // namespace boing::sql
