#include "boing/net.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>
#include <optional>

namespace boing {
namespace {

// An address as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so both forms compare.
struct Addr {
  std::array<uint8_t, 16> b{};
  bool v4 = false;
};

std::optional<Addr> Parse(std::string_view text) {
  // inet_pton reads a C string: an embedded NUL would let "1.2.3.4\0<anything>" pass as 1.2.3.4.
  if (text.empty() || text.size() > 64 || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  char buf[65];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Addr a;
  in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    a.v4 = true;
    a.b[10] = a.b[11] = 0xff;
    std::memcpy(&a.b[12], &v4, 4);
    return a;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(a.b.data(), &v6, 16);
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    a.v4 = std::memcmp(a.b.data(), kMapped, 12) == 0;
    return a;
  }
  return std::nullopt;
}

struct Cidr {
  Addr addr;
  int prefix = 128;  // in the 128-bit space
};

std::optional<Cidr> ParseCidr(std::string_view text) {
  size_t slash = text.find('/');
  auto addr = Parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  Cidr c{*addr, 128};
  if (slash == std::string_view::npos) return c;
  std::string_view p = text.substr(slash + 1);
  int prefix = -1;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (ec != std::errc() || ptr != p.data() + p.size() || p.empty()) return std::nullopt;
  // A prefix on IPv4 text counts IPv4 bits.
  bool v4_text = text.substr(0, slash).find(':') == std::string_view::npos;
  if (v4_text) {
    if (prefix < 0 || prefix > 32) return std::nullopt;
    c.prefix = 96 + prefix;
  } else {
    if (prefix < 0 || prefix > 128) return std::nullopt;
    c.prefix = prefix;
  }
  return c;
}

bool Contains(const Cidr& c, const Addr& a) {
  int full = c.prefix / 8, rest = c.prefix % 8;
  if (std::memcmp(c.addr.b.data(), a.b.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (c.addr.b[static_cast<size_t>(full)] & mask) == (a.b[static_cast<size_t>(full)] & mask);
}

std::string_view Trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\"");
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(" \t\"");
  return s.substr(a, b - a + 1);
}

// "1.2.3.4", "1.2.3.4:80", "[::1]", "[::1]:80", "::1" → the address text.
std::string_view StripPort(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    return close == std::string_view::npos ? std::string_view() : s.substr(1, close - 1);
  }
  size_t colon = s.find(':');
  if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
    return s.substr(0, colon);  // exactly one colon: IPv4 with a port
  }
  return s;
}

bool Trusted(std::string_view ip, const std::vector<std::string>& proxies) {
  for (const auto& p : proxies) {
    if (IpInCidr(ip, p)) return true;
  }
  return false;
}

}  // namespace

bool IsValidIp(std::string_view ip) { return Parse(ip).has_value(); }

bool IsValidCidr(std::string_view cidr) { return ParseCidr(cidr).has_value(); }

bool IsPrivateAddress(std::string_view ip) {
  // IPv4 blocks also match their IPv4-mapped IPv6 forms (Parse maps both the same way).
  static const std::vector<Cidr> kRanges = [] {
    std::vector<Cidr> out;
    for (const char* r :
         {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
          "100.64.0.0/10", "0.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10", "::/128"}) {
      out.push_back(*ParseCidr(r));
    }
    return out;
  }();
  auto a = Parse(ip);
  if (!a) return false;
  for (const auto& c : kRanges) {
    if (Contains(c, *a)) return true;
  }
  return false;
}

bool IpInCidr(std::string_view ip, std::string_view cidr_or_ip) {
  auto a = Parse(ip);
  auto c = ParseCidr(cidr_or_ip);
  return a && c && Contains(*c, *a);
}

std::string ResolveClientIp(std::string_view peer, std::string_view xff, std::string_view forwarded,
                            const std::vector<std::string>& trusted_proxies) {
  if (!Trusted(peer, trusted_proxies)) return std::string(peer);
  std::vector<std::string_view> hops;
  if (!xff.empty()) {
    size_t pos = 0;
    while (pos <= xff.size()) {
      size_t comma = xff.find(',', pos);
      if (comma == std::string_view::npos) comma = xff.size();
      hops.push_back(StripPort(xff.substr(pos, comma - pos)));
      pos = comma + 1;
    }
  } else if (!forwarded.empty()) {
    // Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"
    size_t pos = 0;
    while (pos <= forwarded.size()) {
      size_t comma = forwarded.find(',', pos);
      if (comma == std::string_view::npos) comma = forwarded.size();
      std::string_view element = forwarded.substr(pos, comma - pos);
      size_t start = 0;
      while (start <= element.size()) {
        size_t semi = element.find(';', start);
        if (semi == std::string_view::npos) semi = element.size();
        std::string_view pair = Trim(element.substr(start, semi - start));
        if (pair.size() > 4 && (pair.substr(0, 4) == "for=" || pair.substr(0, 4) == "For=" ||
                                pair.substr(0, 4) == "FOR=")) {
          hops.push_back(StripPort(pair.substr(4)));
        }
        start = semi + 1;
      }
      pos = comma + 1;
    }
  }
  std::string_view leftmost_valid;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!IsValidIp(*it)) break;  // a garbled hop ends the trusted chain
    leftmost_valid = *it;
    if (!Trusted(*it, trusted_proxies)) return std::string(*it);
  }
  if (!leftmost_valid.empty()) return std::string(leftmost_valid);
  return std::string(peer);
}

}  // namespace boing
