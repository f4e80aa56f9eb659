// MySQL/MariaDB connections (mysql-connector-c++ 1.1, JDBC-style API) for the shared SQL store.
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

std::unique_ptr<Conn> OpenMysqlConn(const MysqlTarget& t, Status* status);

}  // namespace boing::sql
