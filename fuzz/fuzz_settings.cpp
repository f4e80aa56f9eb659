// The server's settings file (common/ config.h: KEY=VALUE env-file) and the typed getters every
// setting goes through. Property: a load that fails names the file and line.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boing/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string path = boing::fuzz::WriteScratch("settings.env", text);
  boing::Settings s;
  std::string error;
  if (!s.LoadEnvFile(path, &error)) {
    BOING_FUZZ_CHECK(error.find(path) != std::string::npos);
    return 0;
  }
  // Every key the file could have set, through every getter.
  std::vector<std::string> keys;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
    start = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq);
    while (!key.empty() && (key.front() == ' ' || key.front() == '\t')) key.remove_prefix(1);
    if (key.substr(0, 7) == "export ") key.remove_prefix(7);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    keys.emplace_back(key);
  }
  std::vector<std::string> errors;
  for (const std::string& k : keys) {
    int64_t i = 0;
    double d = 0;
    bool b = false;
    s.GetInt(k, -1000, 1000000, &i, errors);
    BOING_FUZZ_CHECK(i >= -1000 && i <= 1000000);
    s.GetDouble(k, 0.0, 1e9, &d, errors);
    BOING_FUZZ_CHECK(d >= 0.0 && d <= 1e9);
    s.GetBool(k, &b, errors);
    for (const std::string& item : s.GetList(k)) BOING_FUZZ_CHECK(!item.empty());
    s.GetString(k);
  }
  for (const std::string& e : errors) BOING_FUZZ_CHECK(!e.empty());
  return 0;
}
