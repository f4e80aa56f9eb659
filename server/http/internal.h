// Helpers shared by the HTTP core's translation units (not part of the public contract).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace boing::http::internal {

// ASCII case-insensitive equality (header names, tokens).
bool IEquals(std::string_view a, std::string_view b);

// PercentDecode into `out` (replacing its contents, keeping its capacity).
void PercentDecodeInto(std::string_view s, bool plus_is_space, std::string& out);

enum class GunzipResult { kOk, kTooLarge, kCorrupt };

// Inflates a gzip body into `out`, refusing output beyond `limit` bytes.
GunzipResult Gunzip(std::string_view in, size_t limit, std::string& out);

}  // namespace boing::http::internal
