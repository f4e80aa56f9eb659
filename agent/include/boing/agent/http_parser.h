// HTTP/1.x message heads and chunked framing, parsed from bytes captured by the sensor.
//
// Parsers take a std::string_view of what has arrived so far and return kNeedsMoreData, kInvalid
// or kSuccess; they never throw and never read past the view. On kSuccess the head's size in
// bytes is reported so the caller can advance its buffer. Limits are explicit (HttpLimits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boing::agent {

enum class ParseState { kNeedsMoreData, kInvalid, kSuccess };

struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;  // request line/status line plus headers
  size_t max_headers = 100;
};

enum class BodyKind {
  kNone,           // no body (GET without length, HEAD response, 1xx/204/304)
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
  kUntilClose,     // response without length: ends when the connection closes
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RequestHead {
  std::string method;
  std::string target;
  std::string version;  // "HTTP/1.1"
  HeaderList headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  size_t head_bytes = 0;
};

struct ResponseHead {
  std::string version;
  int status = 0;
  HeaderList headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  size_t head_bytes = 0;
};

ParseState ParseRequestHead(std::string_view data, const HttpLimits& limits, RequestHead& out);

// `request_method` is the method of the request this response answers ("" when unknown): a
// response to HEAD has no body whatever its headers say.
ParseState ParseResponseHead(std::string_view data, std::string_view request_method,
                             const HttpLimits& limits, ResponseHead& out);

// True when `data` starts like a request ("GET /", ...) or a response ("HTTP/1.").
bool LooksLikeRequestStart(std::string_view data);
bool LooksLikeResponseStart(std::string_view data);

// Case-insensitive header lookup; returns "" when absent.
std::string_view FindHeader(const HeaderList& headers, std::string_view name);

// Incremental decoder of a chunked body. Feed it bytes (and gaps: bytes the sensor did not copy);
// it reports how many it consumed and kSuccess once the last chunk and trailers are through.
class ChunkedDecoder {
 public:
  ParseState Consume(std::string_view data, size_t& consumed);
  // A gap can only be consumed inside chunk data; anywhere else the framing is lost (kInvalid).
  ParseState ConsumeGap(uint64_t n, uint64_t& consumed);
  uint64_t body_bytes() const { return body_bytes_; }
  void Reset() { *this = ChunkedDecoder(); }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  uint64_t body_bytes_ = 0;
};

}  // namespace boing::agent
