// Address helpers shared by the server and the agent: CIDR matching and real-client-IP
// resolution behind trusted proxies (X-Forwarded-For and RFC 7239 Forwarded).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace boing {

// True when `ip` (IPv4 or IPv6 text) equals `cidr_or_ip` or lies in that CIDR block. An IPv4
// address also matches its IPv4-mapped IPv6 form. Malformed input never matches.
bool IpInCidr(std::string_view ip, std::string_view cidr_or_ip);
bool IsValidIp(std::string_view ip);
bool IsValidCidr(std::string_view cidr_or_ip);  // an IP, or IP/prefix with a valid prefix
// Whether `ip` is loopback, private (RFC 1918, carrier-grade NAT), link-local, unique-local or
// unspecified (IPv4, IPv4-mapped or IPv6). Malformed input is not.
bool IsPrivateAddress(std::string_view ip);

// When `peer` is a trusted proxy, walks X-Forwarded-For (or, when absent, Forwarded's for=)
// right to left, skipping trusted hops, and returns the first untrusted valid address (or the
// left-most one when all are trusted); otherwise, or when the headers hold no valid address,
// returns `peer`. Ports and brackets ("[::1]:80", "1.2.3.4:5") are stripped.
std::string ResolveClientIp(std::string_view peer, std::string_view x_forwarded_for,
                            std::string_view forwarded,
                            const std::vector<std::string>& trusted_proxies);

}  // namespace boing
