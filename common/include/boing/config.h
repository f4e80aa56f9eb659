// Settings from three layers, later ones winning: an env-file (`--config FILE`, KEY=VALUE lines as
// in .env.example), the process environment, and command-line flags. Typed getters validate and
// name the variable in their error, so a bad value stops start-up with a message that says what
// to fix.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace boing {

class Settings {
 public:
  // KEY=VALUE per line; `#` comments, blank lines, optional `export ` prefix, single or double
  // quotes around the value. Errors name the file and line.
  bool LoadEnvFile(const std::string& path, std::string* error);
  // Copies every variable of the process environment whose name is in `names`.
  void LoadEnvironment(const std::vector<std::string>& names);
  void Set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  bool Has(const std::string& key) const { return values_.count(key) > 0; }
  std::optional<std::string> Get(const std::string& key) const;
  std::string GetString(const std::string& key, const std::string& def = "") const;

  // Each getter leaves `*out` untouched and appends "KEY: reason" to `errors` on a bad value.
  void GetInt(const std::string& key, int64_t min, int64_t max, int64_t* out,
              std::vector<std::string>& errors) const;
  void GetDouble(const std::string& key, double min, double max, double* out,
                 std::vector<std::string>& errors) const;
  void GetBool(const std::string& key, bool* out, std::vector<std::string>& errors) const;
  // Comma-separated list, items trimmed, empties dropped.
  std::vector<std::string> GetList(const std::string& key) const;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace boing
