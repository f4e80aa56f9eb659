// SQLite connections for the SQL store: WAL mode, prepared-statement cache, checkpoint control.
#pragma once

#include <functional>
#include <string>

#include "sql.h"

namespace boing::sql {

struct SqliteConnOptions {
  std::string path;
  bool fsync_full = false;
  int cache_kib = 16 * 1024;
};

std::unique_ptr<Conn> OpenSqliteConn(const SqliteConnOptions& o, Status* status);

// Replaces SQLite's automatic checkpoints on `writer`: `hook(wal_pages)` runs after each commit.
void SetWalHook(Conn& writer, std::function<void(int wal_pages)> hook);
// Copies committed WAL frames back into the database file without blocking readers or the writer
// (SQLITE_CHECKPOINT_PASSIVE).
Status CheckpointPassive(Conn& c);
// Runs every statement of `script` in order (sqlite3_prepare_v2 over the text, so triggers with
// inner semicolons work). On failure `failed` receives the start of the failing statement.
Status ExecSqliteScript(Conn& c, std::string_view script, std::string* failed);

}  // namespace boing::sql
