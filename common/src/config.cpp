#include "boing/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>

namespace boing {
namespace {

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

bool ValidKey(const std::string& k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

bool Settings::LoadEnvFile(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot open";
    return false;
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.rfind("export ", 0) == 0) t = Trim(t.substr(7));
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      *error = path + ":" + std::to_string(n) + ": expected KEY=VALUE";
      return false;
    }
    std::string key = Trim(t.substr(0, eq));
    std::string value = Trim(t.substr(eq + 1));
    if (!ValidKey(key)) {
      *error = path + ":" + std::to_string(n) + ": invalid variable name '" + key + "'";
      return false;
    }
    if (!value.empty() && (value[0] == '"' || value[0] == '\'')) {
      char q = value[0];
      size_t end = value.find(q, 1);
      if (end == std::string::npos) {
        *error = path + ":" + std::to_string(n) + ": unterminated quote in " + key;
        return false;
      }
      value = value.substr(1, end - 1);
    } else {
      // An unquoted value ends at an inline comment.
      size_t hash = value.find(" #");
      if (hash != std::string::npos) value = Trim(value.substr(0, hash));
    }
    values_[key] = value;
  }
  return true;
}

void Settings::LoadEnvironment(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (const char* v = std::getenv(n.c_str())) values_[n] = v;
  }
}

std::optional<std::string> Settings::Get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Settings::GetString(const std::string& key, const std::string& def) const {
  auto v = Get(key);
  return v && !v->empty() ? *v : def;
}

void Settings::GetInt(const std::string& key, int64_t min, int64_t max, int64_t* out,
                      std::vector<std::string>& errors) const {
  auto v = Get(key);
  if (!v || v->empty()) return;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (errno != 0 || end == v->c_str() || *end != '\0') {
    errors.push_back(key + ": '" + *v + "' is not an integer");
  } else if (x < min || x > max) {
    errors.push_back(key + ": " + *v + " is outside " + std::to_string(min) + ".." +
                     std::to_string(max));
  } else {
    *out = x;
  }
}

void Settings::GetDouble(const std::string& key, double min, double max, double* out,
                         std::vector<std::string>& errors) const {
  auto v = Get(key);
  if (!v || v->empty()) return;
  char* end = nullptr;
  errno = 0;
  double x = std::strtod(v->c_str(), &end);
  if (errno != 0 || end == v->c_str() || *end != '\0' || !std::isfinite(x)) {
    errors.push_back(key + ": '" + *v + "' is not a number");
  } else if (x < min || x > max) {
    errors.push_back(key + ": " + *v + " is outside " + std::to_string(min) + ".." +
                     std::to_string(max));
  } else {
    *out = x;
  }
}

void Settings::GetBool(const std::string& key, bool* out, std::vector<std::string>& errors) const {
  auto v = Get(key);
  if (!v || v->empty()) return;
  std::string s;
  for (char c : *v) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "1" || s == "true" || s == "yes" || s == "on") {
    *out = true;
  } else if (s == "0" || s == "false" || s == "no" || s == "off") {
    *out = false;
  } else {
    errors.push_back(key + ": '" + *v + "' is not a boolean (true/false)");
  }
}

std::vector<std::string> Settings::GetList(const std::string& key) const {
  std::vector<std::string> out;
  auto v = Get(key);
  if (!v) return out;
  size_t pos = 0;
  while (pos <= v->size()) {
    size_t c = v->find(',', pos);
    if (c == std::string::npos) c = v->size();
    std::string item = Trim(v->substr(pos, c - pos));
    if (!item.empty()) out.push_back(item);
    pos = c + 1;
  }
  return out;
}

}  // namespace boing
