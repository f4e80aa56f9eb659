// The binary model files of the detection stage (payload classifier, Isolation Forest, One-Class
// SVM): 8-byte magic, little-endian fields, a 64-bit FNV-1a checksum of everything before it; and
// whole-file reads and atomic (temporary file + rename) writes. Internal to boing_detect.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace boing::detect::model_io {

inline uint64_t Fnv(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

template <class T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

// Reads fixed-size fields from a byte string, failing (without reading) past its end.
struct Cursor {
  std::string_view s;
  size_t pos = 0;
  template <class T>
  bool Get(T* v) {
    if (s.size() - pos < sizeof(T)) return false;
    std::memcpy(v, s.data() + pos, sizeof(T));
    pos += sizeof(T);
    return true;
  }
};

// Appends the checksum that Open verifies.
inline void Seal(std::string& out) { Put<uint64_t>(out, Fnv(out)); }

// Checks magic and checksum; on success `c` covers the body (after the magic, before the sum).
inline bool Open(std::string_view bytes, const char (&magic)[8], Cursor* c, std::string* error) {
  if (bytes.size() < 16 || std::memcmp(bytes.data(), magic, 8) != 0) {
    *error = "wrong magic (expected " + std::string(magic, 8) + ")";
    return false;
  }
  uint64_t sum;
  std::memcpy(&sum, bytes.data() + bytes.size() - 8, 8);
  if (sum != Fnv(bytes.substr(0, bytes.size() - 8))) {
    *error = "checksum mismatch";
    return false;
  }
  *c = Cursor{bytes.substr(0, bytes.size() - 8), 8};
  return true;
}

inline bool ReadFile(const std::string& path, std::string* bytes, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  *bytes = std::move(ss).str();
  return true;
}

// Writes `path.tmp` and renames it over `path`, so a reader sees the old file or the new one.
inline bool WriteFileAtomic(const std::string& path, std::string_view bytes, std::string* error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !f.write(bytes.data(), static_cast<std::streamsize>(bytes.size())) || !f.flush()) {
      *error = tmp + ": cannot write: " + std::strerror(errno);
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": cannot rename into place: " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace boing::detect::model_io
