// Internals of boing::store shared by its sources and its tests (not part of the public API).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "boing/store.h"
#include "sql.h"

namespace boing::store_internal {

// One file of sql/<dialect>/, embedded at build time by embed_sql.cmake.
struct Migration {
  int version;
  const char* name;  // file name, e.g. "0001_init.sql"
  const char* sql;
};

std::span<const Migration> EmbeddedMigrations(sql::Dialect d);

// Applies the migrations of `all` not yet recorded in schema_migrations, in order. On failure sets
// `error` to a message naming the file.
Status Migrate(sql::Conn& c, std::span<const Migration> all, std::string* error);

// Splits a MySQL script into statements at `;` outside quotes and comments; comments are dropped.
std::vector<std::string> SplitSqlScript(std::string_view script);

// Open* with an explicit migration list (tests use it to add failing or extra migrations).
std::unique_ptr<Store> OpenSqliteStoreWith(const SqliteOptions& o, std::span<const Migration> m,
                                           std::string* error);
std::unique_ptr<Store> OpenMysqlStoreWith(const MysqlOptions& o, std::span<const Migration> m,
                                          std::string* error);

// Versions recorded in schema_migrations, ascending (empty on error).
std::vector<int> AppliedMigrations(Store& s);

// Event::headers as stored in events.headers_json: a JSON array of [name, value] pairs, which keeps
// order and repeated names.
void AppendHeadersJson(const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string& out);
bool ParseHeadersJson(std::string_view json,
                      std::vector<std::pair<std::string, std::string>>& headers);

}  // namespace boing::store_internal
