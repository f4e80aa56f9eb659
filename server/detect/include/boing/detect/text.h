// Text helpers for the detectors: endpoint templating and the normalisation applied to every
// value before content detectors look at it.
//
// Both are pure functions over std::string_view that write into caller-owned buffers, so the
// pipeline reuses its buffers and allocates nothing per event once they have grown.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "boing/utf8.h"

namespace boing::detect {

// Folds id-like path segments into "{id}": all digits, UUIDs, hex strings of 16+ characters with a
// digit, and tokens of 20+ URL-safe characters that contain a digit. The query string (from '?')
// is dropped. `ids_hash` (when not null) receives a hash of the folded segments, so two requests
// for the same template with different ids hash differently. Returns the number of folded segments.
int TemplateOf(std::string_view endpoint, std::string& out, uint64_t* ids_hash = nullptr);

// Normalises one value for content detectors: repeated URL decoding (%XX, %uXXXX, and '+' as a
// space when `plus_is_space`), HTML character references (&#NN; &#xHH; and the named ones attacks
// use), escapes (\uXXXX, \xHH), over-long UTF-8 forms and full-width ASCII folded to ASCII,
// whitespace control characters to a space, and ASCII lower case. Decoding repeats until the value
// stops changing (at most 4 rounds), so double encoding does not hide a payload.
void Normalize(std::string_view in, std::string& out, bool plus_is_space);

// True when `s` is valid UTF-8 (no over-long forms, no surrogates, at most U+10FFFF).
using boing::ValidUtf8;

// A 64-bit hash of `s` under `seed` (in memory only, never stored); keys of the bounded state
// tables.
uint64_t Hash64(std::string_view s, uint64_t seed = 0);

}  // namespace boing::detect
