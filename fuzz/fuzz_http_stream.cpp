// The agent's HTTP/1.x reassembly (agent/ boing_agent_http): head parsers, the chunked decoder,
// and HttpConnection fed with both directions of a connection in arbitrary read sizes, with gaps.
//
// Input: byte 0 = role hint (mod 3) and flags (bit 2: turn some reads into gaps), byte 1 = seed
// of the read sizes, then the request stream, "\0\0", the response stream. Seeds stay readable.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "boing/agent/http_connection.h"
#include "boing/agent/http_parser.h"
#include "fuzz_util.h"

using namespace boing::agent;
using boing::fuzz::Rng;

namespace {

void ParseHeads(std::string_view data) {
  HttpLimits limits;
  limits.max_head_bytes = 4096;
  limits.max_headers = 32;
  RequestHead req;
  if (ParseRequestHead(data, limits, req) == ParseState::kSuccess) {
    BOING_FUZZ_CHECK(req.head_bytes <= data.size() && req.head_bytes <= limits.max_head_bytes);
    BOING_FUZZ_CHECK(req.headers.size() <= limits.max_headers);
    ChunkedDecoder dec;
    size_t consumed = 0;
    std::string_view body = data.substr(req.head_bytes);
    if (dec.Consume(body, consumed) != ParseState::kInvalid) {
      BOING_FUZZ_CHECK(consumed <= body.size());
    }
  }
  for (std::string_view method : {"", "HEAD", "GET"}) {
    ResponseHead resp;
    if (ParseResponseHead(data, method, limits, resp) == ParseState::kSuccess) {
      BOING_FUZZ_CHECK(resp.head_bytes <= data.size());
      if (method == "HEAD") BOING_FUZZ_CHECK(resp.body == BodyKind::kNone);
    }
  }
  LooksLikeRequestStart(data);
  LooksLikeResponseStart(data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int role = data[0] % 3;
  const bool gaps = data[0] & 4;
  Rng rng(data[1]);
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t sep = rest.find(std::string_view("\0\0", 2));
  std::string_view req = sep == std::string_view::npos ? rest : rest.substr(0, sep);
  std::string_view resp = sep == std::string_view::npos ? std::string_view() : rest.substr(sep + 2);

  ParseHeads(req);
  ParseHeads(resp);

  StreamLimits limits;
  limits.http.max_head_bytes = 2048;
  limits.http.max_headers = 32;
  limits.max_body_excerpt = 64;
  limits.max_pending_requests = 8;
  // Requests travel in the ingress direction when the process is the server (role 1 or unknown).
  const bool req_ingress = role != 2;
  HttpConnection conn(role, limits);
  std::vector<Transaction> out;
  uint64_t ts = 1000;
  size_t ri = 0, si = 0;
  while (ri < req.size() || si < resp.size()) {
    bool take_req = si >= resp.size() || (ri < req.size() && rng.Below(2) == 0);
    std::string_view& side = take_req ? req : resp;
    size_t& pos = take_req ? ri : si;
    size_t n = 1 + rng.Below(side.size() - pos < 300 ? side.size() - pos : 300);
    std::string_view chunk = side.substr(pos, n);
    pos += n;
    ts += 1 + rng.Below(1000);
    const bool ingress = take_req == req_ingress;
    if (gaps && rng.Below(8) == 0) {
      conn.OnData(ingress, chunk.substr(0, chunk.size() / 2), chunk.size() - chunk.size() / 2, ts,
                  out);
    } else {
      conn.OnData(ingress, chunk, 0, ts, out);
    }
  }
  conn.OnClose(out);
  for (const Transaction& t : out) {
    BOING_FUZZ_CHECK(t.request_body_excerpt.size() <= limits.max_body_excerpt);
    BOING_FUZZ_CHECK(t.request.headers.size() <= limits.http.max_headers);
  }
  BOING_FUZZ_CHECK(conn.stats().transactions == out.size());
  return 0;
}
