// Bounded gzip inflation of request bodies (Content-Encoding: gzip).
#include <zlib.h>

#include <algorithm>
#include <climits>

#include "internal.h"

namespace boing::http::internal {

GunzipResult Gunzip(std::string_view in, size_t limit, std::string& out) {
  out.clear();
  if (in.size() > UINT_MAX) return GunzipResult::kTooLarge;  // bodies are far smaller
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return GunzipResult::kCorrupt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  // Typical compression ratios are 3-10x; start there and grow, never beyond limit + 1 bytes
  // (one byte more than allowed is how "too large" is detected).
  size_t cap = std::min(limit + 1, std::max<size_t>(in.size() * 4, 4096));
  GunzipResult result = GunzipResult::kOk;
  for (;;) {
    if (out.size() == cap) {
      if (cap > limit) {
        result = GunzipResult::kTooLarge;
        break;
      }
      cap = std::min(limit + 1, cap * 2);
    }
    size_t used = out.size();
    out.resize(cap);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(std::min<size_t>(cap - used, UINT_MAX));
    int rc = inflate(&z, Z_NO_FLUSH);
    out.resize(cap - z.avail_out);
    if (rc == Z_STREAM_END) {
      if (out.size() > limit) result = GunzipResult::kTooLarge;
      break;
    }
    if (rc != Z_OK) {  // Z_DATA_ERROR, Z_BUF_ERROR (truncated input), Z_MEM_ERROR, ...
      result = GunzipResult::kCorrupt;
      break;
    }
    if (z.avail_in == 0 && z.avail_out != 0) {  // input ended before the gzip trailer
      result = GunzipResult::kCorrupt;
      break;
    }
  }
  inflateEnd(&z);
  if (result != GunzipResult::kOk) out.clear();
  return result;
}

}  // namespace boing::http::internal
