#include "mysql_conn.h"

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include <unordered_map>

namespace boing::sql {
namespace {

bool IsConnectionError(int code) {
  return code == 2002 || code == 2003 || code == 2006 || code == 2013 || code == 2055 ||
         code == 1927 || code == 4031;
}

Status FromException(const ::sql::SQLException& e, bool* broken) {
  int code = e.getErrorCode();
  std::string msg = std::string(e.what()) + " (MySQL error " + std::to_string(code) + ")";
  if (IsConnectionError(code) || code == 0) {
    if (broken) *broken = true;
    return Status::Unavailable(msg);
  }
  if (code == 1062) return Status::Conflict(msg);
  if (code == 1205 || code == 1213) return Status::Unavailable(msg);  // lock wait / deadlock
  return Status::Error(msg);
}

class MysqlStmt : public Stmt {
 public:
  MysqlStmt(std::unique_ptr<::sql::PreparedStatement> s, bool* broken)
      : s_(std::move(s)), broken_(broken) {}
  void BindInt(int i, int64_t v) override {
    Guard([&] { s_->setInt64(i, v); });
  }
  void BindDouble(int i, double v) override {
    Guard([&] { s_->setDouble(i, v); });
  }
  void BindText(int i, std::string_view v) override {
    Guard([&] { s_->setString(i, ::sql::SQLString(v.data(), v.size())); });
  }
  void BindNull(int i) override {
    Guard([&] { s_->setNull(i, ::sql::DataType::VARCHAR); });
  }
  Status Exec(int64_t* changes) override {
    Status st = status_;
    if (st.ok) {
      try {
        int n = s_->executeUpdate();
        if (changes) *changes = n;
      } catch (const ::sql::SQLException& e) {
        st = FromException(e, broken_);
      }
    }
    Reset();
    return st;
  }
  bool Next() override {
    if (!status_.ok) return false;
    try {
      if (!rs_) rs_.reset(s_->executeQuery());
      return rs_->next();
    } catch (const ::sql::SQLException& e) {
      status_ = FromException(e, broken_);
      return false;
    }
  }
  const Status& status() const override { return status_; }
  bool IsNull(int c) override { return rs_->isNull(static_cast<uint32_t>(c + 1)); }
  int64_t Int(int c) override { return rs_->getInt64(static_cast<uint32_t>(c + 1)); }
  double Double(int c) override {
    return static_cast<double>(rs_->getDouble(static_cast<uint32_t>(c + 1)));
  }
  std::string Text(int c) override {
    ::sql::SQLString s = rs_->getString(static_cast<uint32_t>(c + 1));
    return std::string(s.c_str(), s.length());
  }
  void Reset() override {
    rs_.reset();
    status_ = Status::Ok();
    try {
      s_->clearParameters();
    } catch (const ::sql::SQLException&) {
    }
  }

 private:
  template <class F>
  void Guard(F f) {
    try {
      f();
    } catch (const ::sql::SQLException& e) {
      status_ = FromException(e, broken_);
    }
  }
  std::unique_ptr<::sql::PreparedStatement> s_;
  std::unique_ptr<::sql::ResultSet> rs_;
  Status status_;
  bool* broken_;
};

class MysqlConn : public Conn {
 public:
  explicit MysqlConn(std::unique_ptr<::sql::Connection> c) : c_(std::move(c)) {}
  ~MysqlConn() override {
    cache_.clear();
    try {
      c_->close();
    } catch (...) {
    }
  }
  Stmt* Prepare(const std::string& sql, Status* status) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      it->second->Reset();
      return it->second.get();
    }
    try {
      std::unique_ptr<::sql::PreparedStatement> ps(c_->prepareStatement(sql));
      auto& slot = cache_[sql];
      slot = std::make_unique<MysqlStmt>(std::move(ps), &broken_);
      return slot.get();
    } catch (const ::sql::SQLException& e) {
      *status = FromException(e, &broken_);
      if (!broken_) status->message += " in: " + sql.substr(0, 200);
      return nullptr;
    }
  }
  Status Begin() override {
    return Guard([&] { c_->setAutoCommit(false); });
  }
  Status Commit() override {
    Status st = Guard([&] { c_->commit(); });
    Guard([&] { c_->setAutoCommit(true); });
    return st;
  }
  void Rollback() override {
    Guard([&] { c_->rollback(); });
    Guard([&] { c_->setAutoCommit(true); });
  }
  int64_t LastInsertId() override {
    Status st;
    Stmt* s = Prepare("SELECT LAST_INSERT_ID()", &st);
    if (!s || !s->Next()) return 0;
    int64_t id = s->Int(0);
    s->Reset();
    return id;
  }
  bool Broken() const override { return broken_; }

 private:
  template <class F>
  Status Guard(F f) {
    try {
      f();
      return Status::Ok();
    } catch (const ::sql::SQLException& e) {
      return FromException(e, &broken_);
    }
  }
  std::unique_ptr<::sql::Connection> c_;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
  bool broken_ = false;
};

bool ValidIdentifier(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<Conn> OpenMysqlConn(const MysqlTarget& t, Status* status) {
  if (!ValidIdentifier(t.database)) {
    *status = Status::Error("DB_NAME must be letters, digits and _ (got '" + t.database + "')");
    return nullptr;
  }
  try {
    ::sql::ConnectOptionsMap opts;
    opts["hostName"] = ::sql::SQLString("tcp://" + t.host + ":" + std::to_string(t.port));
    opts["userName"] = ::sql::SQLString(t.user);
    opts["password"] = ::sql::SQLString(t.password);
    opts["OPT_CONNECT_TIMEOUT"] = 5;
    opts["OPT_READ_TIMEOUT"] = 60;
    opts["OPT_WRITE_TIMEOUT"] = 60;
    opts["OPT_CHARSET_NAME"] = ::sql::SQLString("utf8mb4");
    std::unique_ptr<::sql::Connection> c(::sql::mysql::get_mysql_driver_instance()->connect(opts));
    {
      // The database name is an identifier (validated above), not a value: it cannot be bound.
      std::unique_ptr<::sql::Statement> s(c->createStatement());
      s->execute("CREATE DATABASE IF NOT EXISTS `" + t.database +
                 "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
    }
    c->setSchema(::sql::SQLString(t.database));
    return std::make_unique<MysqlConn>(std::move(c));
  } catch (const ::sql::SQLException& e) {
    *status = FromException(e, nullptr);
    status->message = t.host + ":" + std::to_string(t.port) + ": " + status->message;
    return nullptr;
  }
}

}  // namespace boing::sql
