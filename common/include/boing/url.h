// Percent-encoding (RFC 3986): every byte outside the unreserved set (ALPHA / DIGIT / "-" / "." /
// "_" / "~") becomes %XX with upper-case hex digits, so the result is safe as a query value.
#pragma once

#include <string>
#include <string_view>

namespace boing {

inline std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace boing
