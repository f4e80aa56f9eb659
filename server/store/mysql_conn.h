// MySQL/MariaDB connections (mysql-connector-c++ 1.1, JDBC-style API) for the SQL store.
#pragma once

#include "sql.h"

namespace boing::sql {

struct MysqlTarget {
  std::string host;
  int port = 3306;
  std::string user;
  std::string password;
  std::string database;
};

// Connects, creating the database when it does not exist yet. Failures to reach the server are
// Status::unavailable.
std::unique_ptr<Conn> OpenMysqlConn(const MysqlTarget& t, Status* status);

// @@auto_increment_increment of the session: the distance between ids of one multi-row INSERT.
int64_t AutoIncrementStep(Conn& c);

}  // namespace boing::sql
