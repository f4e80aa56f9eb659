// JWT verification and the base64 decoders (common/ crypto.h) on hostile tokens: nothing but a
// token signed with the server's secret, HS256, unexpired, right issuer and audience, passes.
// Base64Decode must invert every encoder.
#include <cstdint>
#include <string>
#include <string_view>

#include "boing/crypto.h"
#include "fuzz_util.h"

using namespace boing::crypto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string secret = "fuzz-jwt-secret-0123456789abcdef";
  std::string error;
  auto claims = JwtVerify(text, secret, "boing", "boing-api", 1'700'000'000, &error);
  if (claims) {
    // Only a correctly signed token can verify: its signature must be the HMAC of its own
    // header.payload under the secret.
    size_t dot2 = text.rfind('.');
    BOING_FUZZ_CHECK(dot2 != std::string_view::npos);
    BOING_FUZZ_CHECK(Base64Decode(text.substr(dot2 + 1)) ==
                     HmacSha256(secret, text.substr(0, dot2)));
  } else {
    BOING_FUZZ_CHECK(!error.empty());
  }
  JwtUnverifiedSubject(text);

  // A token the fuzzer could only forge by knowing the secret: sign the input's claims properly
  // and check the verifier agrees.
  JwtClaims c;
  c.sub = "u" + Hex(text.substr(0, 16));
  c.role = "user";
  c.iss = "boing";
  c.aud = "boing-api";
  c.iat = 1'700'000'000;
  c.exp = c.iat + 60;
  std::string token = JwtSign(c, secret);
  auto ok = JwtVerify(token, secret, "boing", "boing-api", c.iat, &error);
  BOING_FUZZ_CHECK(ok && ok->sub == c.sub);
  BOING_FUZZ_CHECK(!JwtVerify(token, secret + "x", "boing", "boing-api", c.iat, &error));

  if (auto raw = Base64Decode(text)) Base64(*raw);
  BOING_FUZZ_CHECK(Base64Decode(Base64(text)) == std::string(text));
  BOING_FUZZ_CHECK(Base64Decode(Base64Url(text)) == std::string(text));
  BOING_FUZZ_CHECK(Base64Decode(Base64UrlNoPad(text)) == std::string(text));
  if (auto raw = Unhex(text)) BOING_FUZZ_CHECK(Unhex(Hex(*raw)) == raw);
  return 0;
}
