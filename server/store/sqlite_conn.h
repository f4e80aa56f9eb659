// SQLite connections for the shared SQL store (WAL mode, statement cache).
#pragma once

#include <sqlite3.h>

#include "sql.h"

namespace boing::sql {

std::unique_ptr<Conn> OpenSqliteConn(const std::string& path, bool fsync_full, Status* status);

}  // namespace boing::sql
