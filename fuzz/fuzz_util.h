// Small helpers shared by the fuzz targets: a deterministic PRNG for splitting an input into
// reads, a scratch file for parsers that take a path, and a check that aborts (so libFuzzer
// records the input) when a property the code promises does not hold.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace boing::fuzz {

#define BOING_FUZZ_CHECK(cond)                                                         \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

// xorshift64*: cheap, deterministic for a given seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  size_t Below(size_t n) { return n ? Next() % n : 0; }

 private:
  uint64_t s_;
};

// A per-process scratch directory (on tmpfs when available) for parsers that read files, removed
// at exit.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/boing-fuzz.XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    static char to_remove[128];
    std::snprintf(to_remove, sizeof to_remove, "%s", tmpl.c_str());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline std::string WriteScratch(const std::string& name, std::string_view data) {
  std::string path = ScratchDir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace boing::fuzz
