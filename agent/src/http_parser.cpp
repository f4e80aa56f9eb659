#include "boing/agent/http_parser.h"

#include <array>
#include <charconv>

#include "boing/event.h"

namespace boing::agent {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IContains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (IEquals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

using boing::IsHttpTokenChar;

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};

// Finds the end of the head ("\r\n\r\n"); returns the head size or 0 when not yet complete.
size_t HeadEnd(std::string_view data) {
  size_t p = data.find("\r\n\r\n");
  return p == std::string_view::npos ? 0 : p + 4;
}

bool ParseUint(std::string_view s, uint64_t& out) {
  s = Trim(s);
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Parses the header lines in `lines` (each ending in \r\n, the final empty line excluded).
ParseState ParseHeaders(std::string_view lines, const HttpLimits& limits, HeaderList& out) {
  out.clear();
  while (!lines.empty()) {
    size_t eol = lines.find("\r\n");
    if (eol == std::string_view::npos) return ParseState::kInvalid;
    std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return ParseState::kInvalid;
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!IsHttpTokenChar(c)) return ParseState::kInvalid;
    if (out.size() >= limits.max_headers) return ParseState::kInvalid;
    out.emplace_back(std::string(name), std::string(Trim(line.substr(colon + 1))));
  }
  return ParseState::kSuccess;
}

// Framing from the headers (RFC 9112 section 6.3). Returns false on a malformed length.
bool BodyFraming(const HeaderList& headers, BodyKind& kind, uint64_t& length) {
  std::string_view te = FindHeader(headers, "transfer-encoding");
  if (!te.empty() && IContains(te, "chunked")) {
    kind = BodyKind::kChunked;
    return true;
  }
  std::string_view cl = FindHeader(headers, "content-length");
  if (!cl.empty()) {
    if (!ParseUint(cl, length)) return false;
    kind = length ? BodyKind::kContentLength : BodyKind::kNone;
    return true;
  }
  kind = BodyKind::kNone;
  return true;
}

}  // namespace

std::string_view FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (IEquals(k, name)) return v;
  return {};
}

bool LooksLikeRequestStart(std::string_view data) {
  for (std::string_view m : kMethods) {
    if (data.size() > m.size() && data.substr(0, m.size()) == m && data[m.size()] == ' ')
      return true;
  }
  return false;
}

bool LooksLikeResponseStart(std::string_view data) { return data.substr(0, 7) == "HTTP/1."; }

ParseState ParseRequestHead(std::string_view data, const HttpLimits& limits, RequestHead& out) {
  // Reject early what cannot become a request, so garbage does not wait for max_head_bytes.
  size_t sp = data.find(' ');
  if (sp == std::string_view::npos) {
    if (data.size() > 16) return ParseState::kInvalid;
    for (char c : data)
      if (!IsHttpTokenChar(c)) return ParseState::kInvalid;
    return ParseState::kNeedsMoreData;
  }
  if (sp == 0 || sp > 16) return ParseState::kInvalid;
  for (size_t i = 0; i < sp; ++i)
    if (!IsHttpTokenChar(data[i])) return ParseState::kInvalid;

  size_t end = HeadEnd(data.substr(0, limits.max_head_bytes));
  if (end == 0) {
    return data.size() >= limits.max_head_bytes ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  }
  std::string_view head = data.substr(0, end);
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp2 = line.find(' ', sp + 1);
  if (sp2 == std::string_view::npos) return ParseState::kInvalid;
  std::string_view target = line.substr(sp + 1, sp2 - sp - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (target.empty() || version.substr(0, 7) != "HTTP/1." || version.size() != 8)
    return ParseState::kInvalid;
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return ParseState::kInvalid;

  RequestHead r;
  r.method.assign(line.substr(0, sp));
  r.target.assign(target);
  r.version.assign(version);
  if (ParseHeaders(head.substr(eol + 2), limits, r.headers) != ParseState::kSuccess)
    return ParseState::kInvalid;
  if (!BodyFraming(r.headers, r.body, r.content_length)) return ParseState::kInvalid;
  r.head_bytes = end;
  out = std::move(r);
  return ParseState::kSuccess;
}

ParseState ParseResponseHead(std::string_view data, std::string_view request_method,
                             const HttpLimits& limits, ResponseHead& out) {
  std::string_view prefix = data.substr(0, 7);
  if (std::string_view("HTTP/1.").substr(0, prefix.size()) != prefix) return ParseState::kInvalid;
  size_t end = HeadEnd(data.substr(0, limits.max_head_bytes));
  if (end == 0) {
    return data.size() >= limits.max_head_bytes ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  }
  std::string_view head = data.substr(0, end);
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // "HTTP/1.1 200 OK" (the reason phrase may be empty).
  if (line.size() < 12 || line[8] != ' ') return ParseState::kInvalid;
  uint64_t status = 0;
  if (!ParseUint(line.substr(9, 3), status) || status < 100 || status > 599)
    return ParseState::kInvalid;
  if (line.size() > 12 && line[12] != ' ') return ParseState::kInvalid;

  ResponseHead r;
  r.version.assign(line.substr(0, 8));
  r.status = static_cast<int>(status);
  if (ParseHeaders(head.substr(eol + 2), limits, r.headers) != ParseState::kSuccess)
    return ParseState::kInvalid;
  if (request_method == "HEAD" || r.status < 200 || r.status == 204 || r.status == 304) {
    r.body = BodyKind::kNone;
  } else {
    if (!BodyFraming(r.headers, r.body, r.content_length)) return ParseState::kInvalid;
    bool has_length = r.body != BodyKind::kNone || !FindHeader(r.headers, "content-length").empty();
    if (!has_length) r.body = BodyKind::kUntilClose;
    if (request_method == "CONNECT" && r.status / 100 == 2) r.body = BodyKind::kNone;
  }
  r.head_bytes = end;
  out = std::move(r);
  return ParseState::kSuccess;
}

ParseState ChunkedDecoder::Consume(std::string_view data, size_t& consumed) {
  consumed = 0;
  while (consumed < data.size()) {
    std::string_view rest = data.substr(consumed);
    switch (state_) {
      case State::kSize: {
        size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
          return rest.size() > 1024 ? ParseState::kInvalid : ParseState::kNeedsMoreData;
        }
        std::string_view line = rest.substr(0, eol);
        size_t semi = line.find(';');  // chunk extensions are ignored
        if (semi != std::string_view::npos) line = line.substr(0, semi);
        line = Trim(line);
        uint64_t size = 0;
        if (line.empty() || line.size() > 15) return ParseState::kInvalid;
        auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
        if (ec != std::errc() || ptr != line.data() + line.size()) return ParseState::kInvalid;
        consumed += eol + 2;
        remaining_ = size;
        state_ = size == 0 ? State::kTrailer : State::kData;
        break;
      }
      case State::kData: {
        uint64_t n = std::min<uint64_t>(remaining_, rest.size());
        consumed += n;
        remaining_ -= n;
        body_bytes_ += n;
        if (remaining_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kDataEnd: {
        if (rest.size() < 2) return ParseState::kNeedsMoreData;
        if (rest.substr(0, 2) != "\r\n") return ParseState::kInvalid;
        consumed += 2;
        state_ = State::kSize;
        break;
      }
      case State::kTrailer: {
        size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
          return rest.size() > 8192 ? ParseState::kInvalid : ParseState::kNeedsMoreData;
        }
        consumed += eol + 2;
        if (eol == 0) return ParseState::kSuccess;
        break;
      }
    }
  }
  return ParseState::kNeedsMoreData;
}

ParseState ChunkedDecoder::ConsumeGap(uint64_t n, uint64_t& consumed) {
  consumed = 0;
  if (state_ != State::kData) return ParseState::kInvalid;
  consumed = std::min(n, remaining_);
  remaining_ -= consumed;
  body_bytes_ += consumed;
  if (remaining_ == 0) state_ = State::kDataEnd;
  if (consumed < n) return ParseState::kInvalid;  // the gap ran past the chunk: framing lost
  return ParseState::kNeedsMoreData;
}

}  // namespace boing::agent
