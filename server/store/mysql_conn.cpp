#include "mysql_conn.h"

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <mysql_driver.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

namespace boing::sql {
namespace {

bool IsConnectionError(int code) {
  switch (code) {
    case 1053:  // server shutdown in progress
    case 1927:  // connection killed
    case 2002:  // cannot connect through socket
    case 2003:  // cannot connect to server
    case 2005:  // unknown host
    case 2006:  // server has gone away
    case 2013:  // lost connection during query
    case 2055:  // lost connection (system error)
    case 4031:  // disconnected by the server (idle timeout)
      return true;
    default:
      return false;
  }
}

Status FromException(const ::sql::SQLException& e, bool* broken) {
  int code = e.getErrorCode();
  std::string msg = std::string(e.what()) + " (MySQL error " + std::to_string(code) + ")";
  if (IsConnectionError(code)) {
    if (broken) *broken = true;
    return Status::Unavailable(msg);
  }
  if (code == 1062) return Status::Conflict(msg);
  if (code == 1205 || code == 1213) return Status::Unavailable(msg);  // lock wait, deadlock
  return Status::Error(msg);
}

class MysqlStmt : public Stmt {
 public:
  MysqlStmt(std::unique_ptr<::sql::PreparedStatement> s, bool* broken)
      : s_(std::move(s)), broken_(broken) {}
  void BindInt(int i, int64_t v) override {
    Guard([&] { s_->setInt64(static_cast<unsigned>(i), v); });
  }
  void BindDouble(int i, double v) override {
    Guard([&] { s_->setDouble(static_cast<unsigned>(i), v); });
  }
  void BindText(int i, std::string_view v) override {
    Guard([&] { s_->setString(static_cast<unsigned>(i), ::sql::SQLString(v.data(), v.size())); });
  }
  void BindNull(int i) override {
    Guard([&] { s_->setNull(static_cast<unsigned>(i), ::sql::DataType::VARCHAR); });
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
  bool IsNull(int c) override { return rs_->isNull(Col(c)); }
  int64_t Int(int c) override { return rs_->getInt64(Col(c)); }
  double Double(int c) override { return static_cast<double>(rs_->getDouble(Col(c))); }
  std::string Text(int c) override {
    ::sql::SQLString s = rs_->getString(Col(c));
    return std::string(s.c_str(), s.length());
  }
  // Keeps the bound values: the next execution sets them all again, and the connector's
  // clearParameters() costs more than the whole rest of an ingest INSERT on the client.
  void Reset() override {
    rs_.reset();
    status_ = Status::Ok();
  }

 private:
  static uint32_t Col(int c) { return static_cast<uint32_t>(c + 1); }
  template <class F>
  void Guard(F f) {
    try {
      f();
    } catch (const ::sql::SQLException& e) {
      if (status_.ok) status_ = FromException(e, broken_);
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
    try {
      cache_.clear();
      c_->close();
    } catch (...) {
    }
  }
  Dialect dialect() const override { return Dialect::kMysql; }
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
  void TrimCache(size_t max) override {
    if (cache_.size() <= max) return;
    try {
      cache_.clear();
    } catch (...) {
    }
  }
  Status Begin() override {
    return Guard([&] { c_->setAutoCommit(false); });
  }
  Status Commit() override {
    Status st = Guard([&] { c_->commit(); });
    Status st2 = Guard([&] { c_->setAutoCommit(true); });
    return st.ok ? st2 : st;
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

  int64_t increment = 1;

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
  const std::string where = t.host + ":" + std::to_string(t.port);
  if (!ValidIdentifier(t.database)) {
    *status =
        Status::Error("database name must be letters, digits and _ (got '" + t.database + "')");
    return nullptr;
  }
  try {
    ::sql::ConnectOptionsMap opts;
    opts["hostName"] = ::sql::SQLString("tcp://" + where);
    opts["userName"] = ::sql::SQLString(t.user);
    opts["password"] = ::sql::SQLString(t.password);
    opts["OPT_CONNECT_TIMEOUT"] = 5;
    opts["OPT_READ_TIMEOUT"] = 600;
    opts["OPT_WRITE_TIMEOUT"] = 600;
    opts["OPT_RECONNECT"] = false;
    opts["OPT_CHARSET_NAME"] = ::sql::SQLString("utf8mb4");
    std::unique_ptr<::sql::Connection> c(::sql::mysql::get_mysql_driver_instance()->connect(opts));
    try {
      c->setSchema(::sql::SQLString(t.database));
    } catch (const ::sql::SQLException& e) {
      if (e.getErrorCode() != 1049) throw;  // 1049: unknown database
      // An identifier cannot be a bound parameter; it was validated above.
      std::unique_ptr<::sql::PreparedStatement> create(
          c->prepareStatement("CREATE DATABASE IF NOT EXISTS `" + t.database +
                              "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"));
      create->execute();
      c->setSchema(::sql::SQLString(t.database));
    }
    auto conn = std::make_unique<MysqlConn>(std::move(c));
    Status st;
    Stmt* s = conn->Prepare("SELECT @@auto_increment_increment", &st);
    if (s && s->Next()) conn->increment = std::max<int64_t>(1, s->Int(0));
    if (s) s->Reset();
    return conn;
  } catch (const ::sql::SQLException& e) {
    Status st = FromException(e, nullptr);
    // Any failure to open a session (refused, auth, unknown database) means the database is not
    // usable right now; callers answer 503.
    *status = Status::Unavailable(where + ": " + st.message);
    return nullptr;
  } catch (const std::exception& e) {
    *status = Status::Unavailable(where + ": " + e.what());
    return nullptr;
  }
}

int64_t AutoIncrementStep(Conn& c) { return static_cast<MysqlConn&>(c).increment; }

}  // namespace boing::sql
