#include "boing/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace boing::log {
namespace {

struct State {
  std::mutex mu;
  Options opts;
  FILE* file = nullptr;
  uint64_t file_bytes = 0;
};

State& S() {
  static State s;
  return s;
}

void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void OpenFile(State& s) {
  if (s.file) std::fclose(s.file);
  s.file = nullptr;
  s.file_bytes = 0;
  if (s.opts.file.empty()) return;
  s.file = std::fopen(s.opts.file.c_str(), "a");
  if (!s.file) {
    std::fprintf(stderr, "boing: cannot open log file %s\n", s.opts.file.c_str());
    return;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(s.opts.file, ec);
  s.file_bytes = ec ? 0 : size;
}

// file → file.1 → ... → file.N; the oldest beyond N is removed.
void Rotate(State& s) {
  std::fclose(s.file);
  s.file = nullptr;
  std::error_code ec;
  const std::string& f = s.opts.file;
  std::filesystem::remove(f + "." + std::to_string(s.opts.max_files), ec);
  for (int i = s.opts.max_files - 1; i >= 1; --i) {
    std::filesystem::rename(f + "." + std::to_string(i), f + "." + std::to_string(i + 1), ec);
  }
  std::filesystem::rename(f, f + ".1", ec);
  OpenFile(s);
}

}  // namespace

void Configure(const Options& o) {
  State& s = S();
  std::lock_guard lock(s.mu);
  s.opts = o;
  OpenFile(s);
}

Level ParseLevel(std::string_view v) {
  if (v == "debug") return Level::kDebug;
  if (v == "warn" || v == "warning") return Level::kWarn;
  if (v == "error") return Level::kError;
  return Level::kInfo;
}

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  State& s = S();
  if (level < s.opts.min_level) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  std::string line;
  line.reserve(128);
  line += "{\"ts\":\"";
  line += ts;
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"msg\":\"";
  AppendEscaped(line, msg);
  line += '"';
  for (const auto& f : fields) {
    line += ",\"";
    AppendEscaped(line, f.key);
    line += "\":";
    if (auto* sv = std::get_if<std::string_view>(&f.value)) {
      line += '"';
      AppendEscaped(line, *sv);
      line += '"';
    } else if (auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else if (auto* d = std::get_if<double>(&f.value)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", *d);
      line += buf;
    } else if (auto* b = std::get_if<bool>(&f.value)) {
      line += *b ? "true" : "false";
    }
  }
  line += "}\n";
  std::lock_guard lock(s.mu);
  if (s.opts.to_stdout) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  if (s.file) {
    if (s.file_bytes + line.size() > s.opts.max_file_bytes && s.file_bytes > 0) Rotate(s);
    if (s.file) {
      std::fwrite(line.data(), 1, line.size(), s.file);
      std::fflush(s.file);
      s.file_bytes += line.size();
    }
  }
}

void Flush() {
  State& s = S();
  std::lock_guard lock(s.mu);
  std::fflush(stdout);
  if (s.file) std::fflush(s.file);
}

}  // namespace boing::log
