// Forward-only schema migrations: sql/<dialect>/NNNN_description.sql, applied in order and
// recorded in schema_migrations.
#include <cctype>
#include <chrono>
#include <set>

#include "sqlite_conn.h"
#include "store_internal.h"

namespace boing::store_internal {
namespace {

using sql::Conn;
using sql::Dialect;
using sql::Stmt;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status Exec(Conn& c, const std::string& text) {
  Status st;
  Stmt* s = c.Prepare(text, &st);
  return s ? s->Exec() : st;
}

Status IsApplied(Conn& c, int version, bool* applied) {
  Status st;
  Stmt* s = c.Prepare("SELECT 1 FROM schema_migrations WHERE version = ?", &st);
  if (!s) return st;
  s->BindInt(1, version);
  *applied = s->Next();
  st = s->status();
  s->Reset();
  return st;
}

Status Record(Conn& c, const Migration& m) {
  Status st;
  Stmt* s =
      c.Prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", &st);
  if (!s) return st;
  s->BindInt(1, m.version);
  s->BindText(2, m.name);
  s->BindInt(3, NowSeconds());
  return s->Exec();
}

Status RunScript(Conn& c, const Migration& m, std::string* failed) {
  if (c.dialect() == Dialect::kSqlite) return sql::ExecSqliteScript(c, m.sql, failed);
  for (const std::string& stmt : SplitSqlScript(m.sql)) {
    Status st = Exec(c, stmt);
    if (!st.ok) {
      *failed = stmt.substr(0, 120);
      return st;
    }
  }
  return Status::Ok();
}

// Applies one migration. SQLite runs it in one transaction (DDL included). MySQL commits DDL
// implicitly, so a failing MySQL migration can leave its earlier statements applied; the error
// names the statement.
Status ApplyOne(Conn& c, const Migration& m, std::string* error) {
  Status st = c.Begin();
  bool applied = false;
  // Checked again inside the transaction: another process may have applied it meanwhile.
  if (st.ok) st = IsApplied(c, m.version, &applied);
  std::string failed;
  if (st.ok && !applied) {
    st = RunScript(c, m, &failed);
    if (st.ok) st = Record(c, m);
  }
  if (st.ok) st = c.Commit();
  if (!st.ok) {
    c.Rollback();
    *error = std::string("migration ") + m.name + " failed: " + st.message;
    if (!failed.empty()) *error += " (statement: " + failed + ")";
  }
  c.TrimCache(0);
  return st;
}

}  // namespace

std::vector<std::string> SplitSqlScript(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    size_t b = cur.find_first_not_of(" \t\r\n");
    if (b != std::string::npos) {
      size_t e = cur.find_last_not_of(" \t\r\n");
      out.push_back(cur.substr(b, e - b + 1));
    }
    cur.clear();
  };
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\'' || c == '"' || c == '`') {
      // Quoted: copy through the closing quote; a doubled quote or (outside backticks) a
      // backslash escapes.
      size_t j = i + 1;
      while (j < s.size()) {
        if (s[j] == '\\' && c != '`' && j + 1 < s.size()) {
          j += 2;
        } else if (s[j] == c && j + 1 < s.size() && s[j + 1] == c) {
          j += 2;
        } else if (s[j] == c) {
          ++j;
          break;
        } else {
          ++j;
        }
      }
      cur.append(s.substr(i, j - i));
      i = j;
    } else if (c == '#' ||
               (s.substr(i, 2) == "--" &&
                (i + 2 == s.size() || std::isspace(static_cast<unsigned char>(s[i + 2]))))) {
      size_t nl = s.find('\n', i);
      i = nl == std::string_view::npos ? s.size() : nl;
      cur += ' ';
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t e = s.find("*/", i + 2);
      i = e == std::string_view::npos ? s.size() : e + 2;
      cur += ' ';
    } else if (c == ';') {
      flush();
      ++i;
    } else {
      cur += c;
      ++i;
    }
  }
  flush();
  return out;
}

Status Migrate(Conn& c, std::span<const Migration> all, std::string* error) {
  for (size_t i = 1; i < all.size(); ++i) {
    if (all[i].version <= all[i - 1].version) {
      *error = std::string("migrations out of order: ") + all[i].name;
      return Status::Error(*error);
    }
  }
  const bool mysql = c.dialect() == Dialect::kMysql;
  Status st = Exec(c, mysql ? "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              "version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
                              "applied_at BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                            : "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                              "applied_at INTEGER NOT NULL)");
  if (!st.ok) {
    *error = "schema_migrations: " + st.message;
    return st;
  }
  std::set<int> applied;
  {
    Stmt* s = c.Prepare("SELECT version FROM schema_migrations", &st);
    if (!s) {
      *error = "schema_migrations: " + st.message;
      return st;
    }
    while (s->Next()) applied.insert(static_cast<int>(s->Int(0)));
    st = s->status();
    s->Reset();
    if (!st.ok) {
      *error = "schema_migrations: " + st.message;
      return st;
    }
  }
  bool locked = false;
  for (const Migration& m : all) {
    if (applied.count(m.version)) continue;
    if (mysql && !locked) {
      // Two servers starting at once against one database apply each migration once.
      Stmt* s = c.Prepare("SELECT GET_LOCK(CONCAT('boing_migrate.', DATABASE()), 60)", &st);
      if (s) {
        locked = s->Next() && s->Int(0) == 1;
        st = s->status().ok ? (locked ? Status::Ok() : Status::Unavailable("timed out"))
                            : s->status();
        s->Reset();
      }
      if (!st.ok) {
        *error = "cannot take the migration lock: " + st.message;
        return st;
      }
    }
    st = ApplyOne(c, m, error);
    if (!st.ok) break;
  }
  if (locked) {
    Status ignored;
    if (Stmt* s =
            c.Prepare("SELECT RELEASE_LOCK(CONCAT('boing_migrate.', DATABASE()))", &ignored)) {
      while (s->Next()) {
      }
      s->Reset();
    }
  }
  return st;
}

}  // namespace boing::store_internal
