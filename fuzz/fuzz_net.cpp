// Address parsing on attacker-controlled headers (common/ net.h): X-Forwarded-For and RFC 7239
// Forwarded behind a trusted proxy, CIDR matching. Property: the resolved client is the peer or
// a valid address taken from the headers.
//
// Input: X-Forwarded-For, "\n", Forwarded, "\n", a CIDR (lines).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boing/net.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    size_t nl = text.find('\n');
    parts[i] = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  const std::vector<std::string> trusted = {"127.0.0.1", "10.0.0.0/8", "::1"};
  for (std::string_view peer : {"127.0.0.1", "192.0.2.7"}) {
    std::string ip = boing::ResolveClientIp(peer, parts[0], parts[1], trusted);
    BOING_FUZZ_CHECK(ip == peer || boing::IsValidIp(ip));
    if (peer == "192.0.2.7") BOING_FUZZ_CHECK(ip == peer);  // untrusted peer: headers ignored
  }
  std::vector<std::string> cidr_list = {std::string(parts[2])};
  boing::ResolveClientIp("10.1.2.3", parts[0], parts[1], cidr_list);
  bool valid_cidr = boing::IsValidCidr(parts[2]);
  for (std::string_view ip : {"10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1", "0.0.0.0"}) {
    if (boing::IpInCidr(ip, parts[2])) BOING_FUZZ_CHECK(valid_cidr);
  }
  if (boing::IsValidIp(parts[0])) BOING_FUZZ_CHECK(boing::IpInCidr(parts[0], parts[0]));
  return 0;
}
