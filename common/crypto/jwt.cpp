#include <exception>
#include <limits>
#include <nlohmann/json.hpp>

#include "boing/crypto.h"

namespace boing::crypto {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxTokenLen = 8192;
// base64url of {"alg":"HS256","typ":"JWT"}
constexpr std::string_view kHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

struct JwtParts {
  std::string_view header, payload, signature, signing_input;
};

std::optional<JwtParts> Split(std::string_view token) {
  size_t a = token.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return JwtParts{token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1),
                  token.substr(0, b)};
}

// JWS segments are unpadded base64url (RFC 7515); anything else has no single spelling.
std::optional<std::string> DecodeStrict(std::string_view seg) {
  if (seg.empty() || seg.find_first_of("=+/") != std::string_view::npos) return std::nullopt;
  return Base64Decode(seg);
}

std::optional<Json> ParseObject(std::optional<std::string> raw) {
  if (!raw) return std::nullopt;
  Json j = Json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// Absent is fine; present must be a string.
bool GetString(const Json& p, const char* key, std::string& out) {
  auto it = p.find(key);
  if (it == p.end()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

// Absent is fine; present must be an integer NumericDate that fits in int64.
bool GetTime(const Json& p, const char* key, int64_t& out) {
  auto it = p.find(key);
  if (it == p.end()) return true;
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
  } else if (!it->is_number_integer()) {
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

std::optional<JwtClaims> Verify(std::string_view token, std::string_view secret,
                                std::string_view expected_iss, std::string_view expected_aud,
                                int64_t now, std::string* error, int64_t leeway) {
  auto fail = [&](const char* why) -> std::optional<JwtClaims> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (token.size() > kMaxTokenLen) return fail("token too long");
  auto parts = Split(token);
  if (!parts) return fail("malformed token");
  auto header = ParseObject(DecodeStrict(parts->header));
  if (!header) return fail("malformed header");
  // The algorithm is pinned: "none", other HMACs and asymmetric algorithms (HS/RS confusion) are
  // all refused before the signature is looked at.
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || alg->get<std::string>() != "HS256") {
    return fail("algorithm not allowed");
  }
  if (auto typ = header->find("typ");
      typ != header->end() && (!typ->is_string() || typ->get<std::string>() != "JWT")) {
    return fail("wrong token type");
  }
  auto sig = DecodeStrict(parts->signature);
  if (!sig || !ConstantTimeEquals(*sig, HmacSha256(secret, parts->signing_input))) {
    return fail("bad signature");
  }
  auto payload = ParseObject(DecodeStrict(parts->payload));
  if (!payload) return fail("malformed payload");
  const Json& p = *payload;
  JwtClaims c;
  if (!GetString(p, "sub", c.sub) || !GetString(p, "role", c.role) || !GetString(p, "jti", c.jti) ||
      !GetString(p, "iss", c.iss)) {
    return fail("malformed claim");
  }
  if (!GetTime(p, "iat", c.iat) || !GetTime(p, "nbf", c.nbf) || !GetTime(p, "exp", c.exp)) {
    return fail("malformed time claim");
  }
  // Arithmetic only on the trusted side, so extreme claim values cannot overflow.
  if (!p.contains("exp")) return fail("missing exp");
  if (c.exp <= now - leeway) return fail("expired");
  if (p.contains("nbf") && c.nbf > now + leeway) return fail("not yet valid");
  if (c.iss != expected_iss) return fail("wrong issuer");
  bool aud_ok = false;
  if (auto it = p.find("aud"); it == p.end()) {
    aud_ok = expected_aud.empty();
  } else if (it->is_string()) {
    c.aud = it->get<std::string>();
    aud_ok = c.aud == expected_aud;
  } else if (it->is_array()) {
    for (const auto& a : *it) {
      if (a.is_string() && a.get<std::string>() == expected_aud) {
        c.aud = a.get<std::string>();
        aud_ok = true;
        break;
      }
    }
  }
  if (!aud_ok) return fail("wrong audience");
  return c;
}

}  // namespace

std::string JwtSign(const JwtClaims& c, std::string_view secret) {
  Json p = Json::object();
  if (!c.sub.empty()) p["sub"] = c.sub;
  if (!c.role.empty()) p["role"] = c.role;
  if (!c.jti.empty()) p["jti"] = c.jti;
  if (!c.iss.empty()) p["iss"] = c.iss;
  if (!c.aud.empty()) p["aud"] = c.aud;
  if (c.iat) p["iat"] = c.iat;
  if (c.nbf) p["nbf"] = c.nbf;
  p["exp"] = c.exp;
  // Invalid UTF-8 in a claim would make dump() throw; replace it instead.
  std::string signing_input =
      std::string(kHeader) + "." +
      Base64UrlNoPad(p.dump(-1, ' ', false, Json::error_handler_t::replace));
  return signing_input + "." + Base64UrlNoPad(HmacSha256(secret, signing_input));
}

std::optional<JwtClaims> JwtVerify(std::string_view token, std::string_view secret,
                                   std::string_view expected_iss, std::string_view expected_aud,
                                   int64_t now, std::string* error, int64_t leeway_seconds) {
  try {
    return Verify(token, secret, expected_iss, expected_aud, now, error, leeway_seconds);
  } catch (const std::exception&) {
    if (error) *error = "malformed token";
    return std::nullopt;
  }
}

std::optional<std::string> JwtUnverifiedSubject(std::string_view token) {
  try {
    if (token.size() > kMaxTokenLen) return std::nullopt;
    auto parts = Split(token);
    if (!parts || parts->header.empty() || parts->payload.empty()) return std::nullopt;
    // Lenient on purpose: this only labels a monitored API's own tokens, whose issuers vary.
    auto payload = ParseObject(Base64Decode(parts->payload));
    if (!payload) return std::nullopt;
    auto it = payload->find("sub");
    if (it == payload->end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return it->dump();
    return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace boing::crypto
