#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "boing/crypto.h"

namespace boing::crypto {
namespace {

constexpr uint8_t kVersion = 0x80;
constexpr uint64_t kMaxClockSkew = 60;  // seconds, as in cryptography and the spec
constexpr size_t kBlock = 16;
constexpr size_t kMacLen = 32;
constexpr size_t kHeaderLen = 1 + 8 + kBlock;                   // version, timestamp, IV
constexpr size_t kMinTokenLen = kHeaderLen + kBlock + kMacLen;  // PKCS7 yields >= 1 block
constexpr size_t kMaxTokenChars = 64u << 20;

[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "boing: %s\n", what);
  std::abort();
}

uint64_t UnixNow() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// AES-128-CBC with PKCS7 padding. nullopt on a padding (or length) error when decrypting.
std::optional<std::string> AesCbc(bool encrypt, std::string_view key, std::string_view iv,
                                  std::string_view in) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  if (!ctx) Fatal("EVP_CIPHER_CTX_new failed");
  auto init = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
  if (init(ctx.get(), EVP_aes_128_cbc(), nullptr, Bytes(key), Bytes(iv)) != 1) {
    Fatal("AES-128-CBC init failed");
  }
  std::string out(in.size() + kBlock, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  size_t written = 0;
  // EVP lengths are ints; feed block-aligned chunks so any size works.
  constexpr size_t kChunk = (INT_MAX / 2) & ~(kBlock - 1);
  for (size_t off = 0; off < in.size(); off += kChunk) {
    int n = 0;
    int len = static_cast<int>(std::min(kChunk, in.size() - off));
    int ok = encrypt ? EVP_EncryptUpdate(ctx.get(), dst + written, &n, Bytes(in) + off, len)
                     : EVP_DecryptUpdate(ctx.get(), dst + written, &n, Bytes(in) + off, len);
    if (ok != 1) return std::nullopt;
    written += static_cast<size_t>(n);
  }
  int n = 0;
  int ok = encrypt ? EVP_EncryptFinal_ex(ctx.get(), dst + written, &n)
                   : EVP_DecryptFinal_ex(ctx.get(), dst + written, &n);
  if (ok != 1) return std::nullopt;
  out.resize(written + static_cast<size_t>(n));
  return out;
}

uint64_t TimestampOf(std::string_view raw) {
  uint64_t ts = 0;
  for (size_t i = 1; i <= 8; ++i) ts = (ts << 8) | static_cast<uint8_t>(raw[i]);
  return ts;
}

}  // namespace

std::optional<Fernet> Fernet::FromKey(std::string_view key, std::string* error) {
  // Fernet keys are urlsafe base64 with padding; the standard alphabet is refused so a key has a
  // single spelling.
  std::optional<std::string> raw;
  if (key.size() == 44 && key.back() == '=' && key.find_first_of("+/") == std::string_view::npos) {
    raw = Base64Decode(key);
  }
  if (!raw || raw->size() != 32) {
    if (error) *error = "a Fernet key is 32 bytes in urlsafe base64 (44 characters)";
    return std::nullopt;
  }
  Fernet f;
  f.signing_key_ = raw->substr(0, 16);
  f.encryption_key_ = raw->substr(16, 16);
  return f;
}

std::optional<Fernet> Fernet::FromRaw32(std::string_view raw, std::string* error) {
  if (raw.size() != 32) {
    if (error) *error = "a raw key must be exactly 32 characters";
    return std::nullopt;
  }
  return FromKey(Base64Url(raw), error);
}

std::optional<Fernet> Fernet::FromConfigKey(std::string_view key, std::string* error) {
  if (key.size() == 32) return FromRaw32(key, error);
  if (key.size() == 44) return FromKey(key, error);
  if (error) {
    *error = "expected a 44-character Fernet key or exactly 32 raw characters, got " +
             std::to_string(key.size()) + " characters";
  }
  return std::nullopt;
}

std::string Fernet::GenerateKey() { return Base64Url(RandomBytes(32)); }

std::string Fernet::Encrypt(std::string_view plaintext) const {
  return EncryptAt(plaintext, UnixNow(), RandomBytes(kBlock));
}

std::string Fernet::EncryptAt(std::string_view plaintext, uint64_t unix_time,
                              std::string_view iv) const {
  // A short IV would make OpenSSL read past it; this is a caller bug, not bad input.
  if (iv.size() != kBlock || signing_key_.size() != 16 || encryption_key_.size() != 16) {
    Fatal("Fernet::EncryptAt: the IV must be 16 bytes and the key initialised");
  }
  std::string token;
  token.reserve(kHeaderLen + plaintext.size() + kBlock + kMacLen);
  token += static_cast<char>(kVersion);
  for (int i = 7; i >= 0; --i) token += static_cast<char>((unix_time >> (8 * i)) & 0xff);
  token.append(iv);
  auto ciphertext = AesCbc(true, encryption_key_, iv, plaintext);
  if (!ciphertext) Fatal("AES-128-CBC encryption failed");
  token += *ciphertext;
  token += HmacSha256(signing_key_, token);
  return Base64Url(token);
}

std::optional<std::string> Fernet::Decrypt(std::string_view token, uint64_t ttl_seconds,
                                           uint64_t now) const {
  if (signing_key_.size() != 16 || token.size() > kMaxTokenChars) return std::nullopt;
  auto raw = Base64Decode(token);
  if (!raw || raw->size() < kMinTokenLen || static_cast<uint8_t>((*raw)[0]) != kVersion) {
    return std::nullopt;
  }
  std::string_view r(*raw);
  std::string_view body = r.substr(0, r.size() - kMacLen);
  // Authenticate before interpreting anything else (no padding oracle).
  if (!ConstantTimeEquals(HmacSha256(signing_key_, body), r.substr(body.size()))) {
    return std::nullopt;
  }
  uint64_t ts = TimestampOf(r);
  if (now == 0) now = UnixNow();
  if (ts > now + kMaxClockSkew) return std::nullopt;
  if (ttl_seconds && ts < now && now - ts > ttl_seconds) return std::nullopt;
  std::string_view iv = r.substr(9, kBlock);
  std::string_view ciphertext = body.substr(kHeaderLen);
  if (ciphertext.empty() || ciphertext.size() % kBlock) return std::nullopt;
  return AesCbc(false, encryption_key_, iv, ciphertext);
}

std::optional<std::string> MultiFernet::Decrypt(std::string_view token) const {
  for (const auto& k : keys_) {
    if (auto p = k.Decrypt(token)) return p;
  }
  return std::nullopt;
}

std::optional<std::string> MultiFernet::Rotate(std::string_view token) const {
  auto plaintext = Decrypt(token);
  if (!plaintext || keys_.empty()) return std::nullopt;
  // Like cryptography's MultiFernet.rotate, keep the original timestamp so TTLs still apply.
  uint64_t ts = TimestampOf(*Base64Decode(token));
  return keys_.front().EncryptAt(*plaintext, ts, RandomBytes(kBlock));
}

}  // namespace boing::crypto
