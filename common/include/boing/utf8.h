// UTF-8 validation shared by the store's JSON encoder and the detectors.
#pragma once

#include <cstddef>
#include <string_view>

namespace boing {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size(), s[i] >= 0x80), or 0 when it
// is invalid: over-long forms, surrogates, code points above U+10FFFF and truncated sequences.
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i);

// True when `s` is valid UTF-8 (as Utf8SequenceLength defines it).
bool ValidUtf8(std::string_view s);

// The longest prefix of `s` of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view Utf8Prefix(std::string_view s, std::size_t max);

}  // namespace boing
