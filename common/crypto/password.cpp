#include <argon2.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "boing/crypto.h"

namespace boing::crypto {
namespace {

// OWASP's Argon2id recommendation.
constexpr uint32_t kTimeCost = 2;
constexpr uint32_t kMemoryKiB = 19456;
constexpr uint32_t kParallelism = 1;
constexpr size_t kSaltLen = 16;
constexpr size_t kHashLen = 32;
// Bounds the work an unauthenticated login can cause; the server refuses longer passwords too.
constexpr size_t kMaxPasswordLen = 1024;
constexpr size_t kMaxEncodedLen = 512;

}  // namespace

std::string HashPassword(std::string_view password) {
  std::string salt = RandomBytes(kSaltLen);
  size_t len =
      argon2_encodedlen(kTimeCost, kMemoryKiB, kParallelism, kSaltLen, kHashLen, Argon2_id);
  std::string encoded(len, '\0');
  int rc =
      argon2id_hash_encoded(kTimeCost, kMemoryKiB, kParallelism, password.data(), password.size(),
                            salt.data(), salt.size(), kHashLen, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    std::fprintf(stderr, "boing: argon2id failed: %s\n", argon2_error_message(rc));
    std::abort();
  }
  encoded.resize(std::strlen(encoded.c_str()));
  return encoded;
}

bool VerifyPassword(std::string_view encoded, std::string_view password) {
  if (password.size() > kMaxPasswordLen || encoded.empty() || encoded.size() > kMaxEncodedLen) {
    return false;
  }
  if (encoded.find('\0') != std::string_view::npos) return false;
  std::string enc(encoded);  // argon2 wants a NUL-terminated string
  return argon2id_verify(enc.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace boing::crypto
