#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "boing/crypto.h"

namespace boing::crypto {
namespace {

// An OpenSSL digest/MAC failure leaves no correct value to return, and an empty result could
// compare equal to an attacker's empty signature, so it is fatal like a randomness failure.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "boing: %s failed\n", what);
  std::abort();
}

const EVP_MD* Sha256Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) Fatal("EVP_MD_fetch(SHA256)");
  return md;
}

EVP_MAC* HmacMac() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!mac) Fatal("EVP_MAC_fetch(HMAC)");
  return mac;
}

}  // namespace

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, Sha256Md(), nullptr) != 1 || len != 32) {
    Fatal("SHA-256");
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(HmacMac()),
                                                                &EVP_MAC_CTX_free);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  // EVP_MAC_init reads a null key as "reuse the previous key", which a fresh context lacks; an
  // empty key is still a valid HMAC key.
  static const unsigned char kNoKey = 0;
  const auto* k = key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), k, key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1 ||
      EVP_MAC_final(ctx.get(), md, &len, sizeof(md)) != 1 || len != 32) {
    Fatal("HMAC-SHA256");
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  for (size_t done = 0; done < n;) {
    int chunk = static_cast<int>(std::min<size_t>(n - done, INT_MAX));
    if (RAND_bytes(p + done, chunk) != 1) Fatal("RAND_bytes (no system randomness)");
    done += static_cast<size_t>(chunk);
  }
  return out;
}

std::string RandomToken(size_t bytes) { return Base64UrlNoPad(RandomBytes(bytes)); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace boing::crypto
