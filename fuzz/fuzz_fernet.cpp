// Fernet decoding (common/ crypto.h): hostile tokens under a fixed key, and hostile keys.
// Properties: only tokens carrying a valid HMAC under the key decrypt; encrypt/decrypt round-trip.
#include <cstdint>
#include <string>
#include <string_view>

#include "boing/crypto.h"
#include "fuzz_util.h"

using namespace boing::crypto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const Fernet key = *Fernet::FromKey("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
  static const Fernet other = *Fernet::FromKey("2abNYj63n5i10xnREBZuTqE-xwWvjAvWqBGU6Td6L5U=");

  auto plain = key.Decrypt(text);
  if (plain) {
    // Decryption authenticated the token: the HMAC over its body must match.
    auto raw = Base64Decode(text);
    BOING_FUZZ_CHECK(raw && raw->size() >= 1 + 8 + 16 + 16 + 32);
    BOING_FUZZ_CHECK(!other.Decrypt(text));
  }
  key.Decrypt(text, 60, 1'700'000'000);
  MultiFernet({other, key}).Rotate(text);

  std::string error;
  if (auto k = Fernet::FromConfigKey(text, &error)) {
    std::string token = k->Encrypt("secret value");
    BOING_FUZZ_CHECK(k->Decrypt(token) == std::string("secret value"));
  } else {
    BOING_FUZZ_CHECK(!error.empty());
  }
  std::string token = key.EncryptAt(text, 1'700'000'000, std::string(16, 'i'));
  BOING_FUZZ_CHECK(key.Decrypt(token) == std::string(text));
  BOING_FUZZ_CHECK(!key.Decrypt(token, 10, 1'700'000'100));  // expired
  return 0;
}
