#include "boing/crypto.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

namespace boing::crypto {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<uint8_t>(in[k]); };
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = b(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

uint64_t UnixNow() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string Base64(std::string_view bytes) { return Encode(bytes, kStd, true); }
std::string Base64Url(std::string_view bytes) { return Encode(bytes, kUrl, true); }
std::string Base64UrlNoPad(std::string_view bytes) { return Encode(bytes, kUrl, false); }

std::optional<std::string> Base64Decode(std::string_view text) {
  size_t end = text.size();
  size_t padding = 0;
  while (end > 0 && text[end - 1] == '=') {
    --end;
    ++padding;
  }
  if (padding > 2) return std::nullopt;
  if (padding && text.size() % 4 != 0) return std::nullopt;
  if (end % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(end * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < end; ++i) {
    int v = DecodeChar(text[i]);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fputs("boing: RAND_bytes failed: no system randomness\n", stderr);
    std::abort();
  }
  return out;
}

std::string RandomToken(size_t bytes) { return Base64UrlNoPad(RandomBytes(bytes)); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// --- Fernet ----------------------------------------------------------------------------------

namespace {
constexpr uint8_t kFernetVersion = 0x80;
constexpr uint64_t kMaxClockSkew = 60;

std::optional<std::string> AesCbc(bool encrypt, std::string_view key, std::string_view iv,
                                  std::string_view in) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return std::nullopt;
  std::string out(in.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  bool ok = EVP_CipherInit_ex(
                ctx, EVP_aes_128_cbc(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                reinterpret_cast<const unsigned char*>(iv.data()), encrypt ? 1 : 0) == 1 &&
            EVP_CipherUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n1,
                             reinterpret_cast<const unsigned char*>(in.data()),
                             static_cast<int>(in.size())) == 1 &&
            EVP_CipherFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + n1, &n2) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return std::nullopt;
  out.resize(static_cast<size_t>(n1 + n2));
  return out;
}
}  // namespace

std::optional<Fernet> Fernet::FromKey(std::string_view key, std::string* error) {
  auto raw = key.size() == 44 ? Base64Decode(key) : std::nullopt;
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
  return key.size() == 32 ? FromRaw32(key, error) : FromKey(key, error);
}

std::string Fernet::GenerateKey() { return Base64Url(RandomBytes(32)); }

std::string Fernet::Encrypt(std::string_view plaintext) const {
  return EncryptAt(plaintext, UnixNow(), RandomBytes(16));
}

std::string Fernet::EncryptAt(std::string_view plaintext, uint64_t unix_time,
                              std::string_view iv) const {
  std::string token;
  token += static_cast<char>(kFernetVersion);
  for (int i = 7; i >= 0; --i) token += static_cast<char>((unix_time >> (8 * i)) & 0xff);
  token.append(iv);
  token += *AesCbc(true, encryption_key_, iv, plaintext);
  token += HmacSha256(signing_key_, token);
  return Base64Url(token);
}

std::optional<std::string> Fernet::Decrypt(std::string_view token, uint64_t ttl_seconds,
                                           uint64_t now) const {
  if (token.size() > (64u << 20)) return std::nullopt;
  auto raw = Base64Decode(token);
  // version(1) + time(8) + iv(16) + at least one block(16) + hmac(32)
  if (!raw || raw->size() < 73 || static_cast<uint8_t>((*raw)[0]) != kFernetVersion) {
    return std::nullopt;
  }
  const std::string& r = *raw;
  std::string_view body(r.data(), r.size() - 32);
  std::string_view mac(r.data() + r.size() - 32, 32);
  if (!ConstantTimeEquals(HmacSha256(signing_key_, body), mac)) return std::nullopt;
  uint64_t ts = 0;
  for (int i = 1; i <= 8; ++i) ts = (ts << 8) | static_cast<uint8_t>(r[static_cast<size_t>(i)]);
  if (now == 0) now = UnixNow();
  if (ts > now + kMaxClockSkew) return std::nullopt;
  if (ttl_seconds && ts + ttl_seconds < now) return std::nullopt;
  std::string_view iv(r.data() + 9, 16);
  std::string_view ciphertext(r.data() + 25, body.size() - 25);
  if (ciphertext.empty() || ciphertext.size() % 16) return std::nullopt;
  return AesCbc(false, encryption_key_, iv, ciphertext);
}

std::optional<std::string> MultiFernet::Decrypt(std::string_view token) const {
  for (const auto& k : keys_) {
    if (auto p = k.Decrypt(token)) return p;
  }
  return std::nullopt;
}

std::optional<std::string> MultiFernet::Rotate(std::string_view token) const {
  auto p = Decrypt(token);
  if (!p) return std::nullopt;
  return Encrypt(*p);
}

// --- JWT -------------------------------------------------------------------------------------

std::string JwtSign(const JwtClaims& c, std::string_view secret) {
  nlohmann::ordered_json p;
  if (!c.sub.empty()) p["sub"] = c.sub;
  if (!c.role.empty()) p["role"] = c.role;
  if (!c.jti.empty()) p["jti"] = c.jti;
  if (!c.iss.empty()) p["iss"] = c.iss;
  if (!c.aud.empty()) p["aud"] = c.aud;
  if (c.iat) p["iat"] = c.iat;
  if (c.nbf) p["nbf"] = c.nbf;
  p["exp"] = c.exp;
  std::string signing_input =
      Base64UrlNoPad(R"({"alg":"HS256","typ":"JWT"})") + "." + Base64UrlNoPad(p.dump());
  return signing_input + "." + Base64UrlNoPad(HmacSha256(secret, signing_input));
}

namespace {

struct JwtParts {
  std::string_view header, payload, signature, signing_input;
};

std::optional<JwtParts> SplitJwt(std::string_view token) {
  size_t a = token.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return JwtParts{token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1),
                  token.substr(0, b)};
}

// JWT segments are unpadded base64url; padding or the standard alphabet are refused.
std::optional<nlohmann::json> DecodeSegment(std::string_view seg) {
  if (seg.find_first_of("=+/") != std::string_view::npos) return std::nullopt;
  auto raw = Base64Decode(seg);
  if (!raw) return std::nullopt;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

std::optional<JwtClaims> JwtVerify(std::string_view token, std::string_view secret,
                                   std::string_view expected_iss, std::string_view expected_aud,
                                   int64_t now, std::string* error, int64_t leeway) {
  auto fail = [&](const char* why) -> std::optional<JwtClaims> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (token.size() > 8192) return fail("token too long");
  auto parts = SplitJwt(token);
  if (!parts) return fail("malformed token");
  auto header = DecodeSegment(parts->header);
  if (!header) return fail("malformed header");
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || *alg != "HS256") {
    return fail("algorithm not allowed");
  }
  if (auto typ = header->find("typ"); typ != header->end() && *typ != "JWT") {
    return fail("wrong token type");
  }
  if (parts->signature.find_first_of("=+/") != std::string_view::npos) {
    return fail("bad signature");
  }
  auto sig = Base64Decode(parts->signature);
  if (!sig || !ConstantTimeEquals(*sig, HmacSha256(secret, parts->signing_input))) {
    return fail("bad signature");
  }
  auto payload = DecodeSegment(parts->payload);
  if (!payload) return fail("malformed payload");
  JwtClaims c;
  const auto& p = *payload;
  auto str = [&](const char* k, std::string& out) {
    if (auto it = p.find(k); it != p.end() && it->is_string()) out = it->get<std::string>();
  };
  auto num = [&](const char* k, int64_t& out) -> bool {
    auto it = p.find(k);
    if (it == p.end()) return true;
    if (!it->is_number_integer()) return false;
    out = it->get<int64_t>();
    return true;
  };
  str("sub", c.sub);
  str("role", c.role);
  str("jti", c.jti);
  str("iss", c.iss);
  if (!num("iat", c.iat) || !num("nbf", c.nbf) || !num("exp", c.exp)) {
    return fail("malformed time claim");
  }
  if (!p.contains("exp")) return fail("missing exp");
  if (now > c.exp + leeway) return fail("expired");
  if (c.nbf && now + leeway < c.nbf) return fail("not yet valid");
  if (c.iss != expected_iss) return fail("wrong issuer");
  bool aud_ok = false;
  if (auto it = p.find("aud"); it != p.end()) {
    if (it->is_string()) {
      aud_ok = *it == expected_aud;
      c.aud = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& a : *it) {
        if (a.is_string() && a == expected_aud) {
          aud_ok = true;
          c.aud = a.get<std::string>();
        }
      }
    }
  }
  if (!aud_ok) return fail("wrong audience");
  return c;
}

std::optional<std::string> JwtUnverifiedSubject(std::string_view token) {
  if (token.size() > 8192) return std::nullopt;
  auto parts = SplitJwt(token);
  if (!parts) return std::nullopt;
  auto payload = DecodeSegment(parts->payload);
  if (!payload) return std::nullopt;
  auto it = payload->find("sub");
  if (it == payload->end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return std::nullopt;
}

// --- Passwords -------------------------------------------------------------------------------

namespace {
constexpr uint32_t kTimeCost = 2;
constexpr uint32_t kMemoryKiB = 19456;
constexpr uint32_t kParallelism = 1;
constexpr size_t kSaltLen = 16;
constexpr size_t kHashLen = 32;
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
  if (password.size() > 1024 || encoded.empty() || encoded.size() > 512) return false;
  std::string enc(encoded);
  return argon2id_verify(enc.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace boing::crypto
