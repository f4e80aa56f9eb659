// Cryptographic building blocks used by the server and the agent, all on OpenSSL and libargon2:
// encodings, hashes, HMAC, randomness, Fernet (byte-compatible with Python's `cryptography`),
// JWT HS256 (algorithm pinned), and Argon2id password hashing.
//
// Nothing here throws on bad input: decoders and verifiers return std::nullopt or an error string.
// Functions that fail because the system cannot provide randomness abort: that is never
// recoverable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boing::crypto {

// --- encodings -------------------------------------------------------------------------------
std::string Hex(std::string_view bytes);
std::optional<std::string> Unhex(std::string_view hex);
std::string Base64(std::string_view bytes);          // standard alphabet, padded
std::string Base64Url(std::string_view bytes);       // urlsafe alphabet, padded (Fernet's form)
std::string Base64UrlNoPad(std::string_view bytes);  // JWT's form
// Accepts padded or unpadded, standard or urlsafe alphabet; rejects anything else.
std::optional<std::string> Base64Decode(std::string_view text);

// --- hashes and randomness -------------------------------------------------------------------
std::string Sha256(std::string_view data);                            // 32 raw bytes
std::string HmacSha256(std::string_view key, std::string_view data);  // 32 raw bytes
std::string RandomBytes(size_t n);
std::string RandomToken(size_t bytes = 32);  // urlsafe base64 without padding
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// --- Fernet ----------------------------------------------------------------------------------
// https://github.com/fernet/spec: version 0x80 | timestamp (8 bytes BE) | IV (16) |
// AES-128-CBC ciphertext (PKCS7) | HMAC-SHA256 (32) over everything before it; urlsafe base64.
class Fernet {
 public:
  // `key` is the 44-character urlsafe base64 of 32 bytes (signing key = first 16, encryption key =
  // last 16). Returns nullopt (with `error` set) when the key is malformed.
  static std::optional<Fernet> FromKey(std::string_view key, std::string* error = nullptr);
  // Derives a Fernet key from exactly 32 raw characters (the seed's "32-chars" example), by using
  // those bytes as the key material: Fernet key = base64url(raw).
  static std::optional<Fernet> FromRaw32(std::string_view raw, std::string* error = nullptr);
  static std::string GenerateKey();  // a fresh 44-character key
  // A configured key (ENCRYPTION_KEY and friends): a 44-character Fernet key, or exactly 32 raw
  // characters (FromRaw32).
  static std::optional<Fernet> FromConfigKey(std::string_view key, std::string* error = nullptr);

  std::string Encrypt(std::string_view plaintext) const;  // current time, random IV
  // For test vectors: explicit time and IV.
  std::string EncryptAt(std::string_view plaintext, uint64_t unix_time, std::string_view iv) const;
  // Verifies and decrypts. `ttl_seconds` 0 = no expiry check. `now` 0 = current time.
  std::optional<std::string> Decrypt(std::string_view token, uint64_t ttl_seconds = 0,
                                     uint64_t now = 0) const;

 private:
  std::string signing_key_;     // 16 bytes
  std::string encryption_key_;  // 16 bytes
};

// Key rotation in the style of cryptography's MultiFernet: encrypts with the first key, decrypts
// with any.
class MultiFernet {
 public:
  explicit MultiFernet(std::vector<Fernet> keys) : keys_(std::move(keys)) {}
  std::string Encrypt(std::string_view plaintext) const { return keys_.front().Encrypt(plaintext); }
  std::optional<std::string> Decrypt(std::string_view token) const;
  // Re-encrypts with the primary key; nullopt when no key decrypts it.
  std::optional<std::string> Rotate(std::string_view token) const;

 private:
  std::vector<Fernet> keys_;
};

// --- JWT (HS256 only) ------------------------------------------------------------------------
struct JwtClaims {
  std::string sub;  // subject (user id as text)
  std::string role;
  std::string jti;
  std::string iss;
  std::string aud;
  int64_t iat = 0;
  int64_t nbf = 0;
  int64_t exp = 0;
};
std::string JwtSign(const JwtClaims& claims, std::string_view secret);
// Verifies header alg == "HS256" and typ (if present) == "JWT", the signature, exp (with
// `leeway_seconds`), nbf, iss and aud. On failure returns nullopt and sets `error` to a short
// reason ("bad signature", "expired", "wrong audience", ...).
std::optional<JwtClaims> JwtVerify(std::string_view token, std::string_view secret,
                                   std::string_view expected_iss, std::string_view expected_aud,
                                   int64_t now, std::string* error, int64_t leeway_seconds = 30);
// Returns the `sub` claim of any JWT-shaped token without verifying it (for identity hashing on a
// monitored API's own tokens, which Boing cannot verify). nullopt if not a JWT or no sub.
std::optional<std::string> JwtUnverifiedSubject(std::string_view token);

// --- passwords -------------------------------------------------------------------------------
// Argon2id with OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1), encoded PHC string.
std::string HashPassword(std::string_view password);
bool VerifyPassword(std::string_view encoded, std::string_view password);

}  // namespace boing::crypto
