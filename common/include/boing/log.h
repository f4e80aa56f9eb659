// Structured JSON logging: one JSON object per line to stdout, and to LOG_FILE with size-based
// rotation when configured (file, file.1 ... file.N). Thread-safe. Secrets must never be passed
// as fields: callers log ids and hashes, not tokens or passwords.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace boing::log {

enum class Level { kDebug, kInfo, kWarn, kError };

struct Field {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int v) : key(k), value(int64_t{v}) {}
  Field(std::string_view k, long v) : key(k), value(int64_t{v}) {}
  Field(std::string_view k, long long v) : key(k), value(int64_t{v}) {}
  Field(std::string_view k, unsigned v) : key(k), value(int64_t{v}) {}
  Field(std::string_view k, unsigned long v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
};

struct Options {
  Level min_level = Level::kInfo;
  bool to_stdout = true;
  std::string file;                    // "" = no file
  uint64_t max_file_bytes = 10 << 20;  // rotate when exceeded
  int max_files = 5;                   // rotated files kept
};

void Configure(const Options& o);
Level ParseLevel(std::string_view s);  // "debug" | "info" | "warn" | "error" (default info)

// {"ts":"2026-11-25T06:00:00.123Z","level":"info","msg":"...", fields...}
void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kDebug, m, f);
}
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarn, m, f);
}
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, m, f);
}
void Flush();

}  // namespace boing::log
