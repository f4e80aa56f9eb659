// Reassembly of one TCP connection's two byte streams into HTTP/1.x transactions.
//
// HttpStream turns one direction's captured bytes (with gaps where the sensor copied only a
// prefix) into complete messages: keep-alive, pipelining, Content-Length and chunked bodies,
// bodies that end at close, heads split across reads. When framing is lost (garbage, a gap inside
// a head) it counts a parse error and resynchronises on the next line that starts a message.
//
// HttpConnection pairs requests and responses in FIFO order (HTTP/1.x answers in order) and
// reports each pair as a Transaction. Latency is first request byte to first response byte: the
// times are those the sensor stamped on the read/write that carried those bytes.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "boing/agent/http_parser.h"

namespace boing::agent {

struct StreamLimits {
  HttpLimits http;
  size_t max_body_excerpt = 1024;  // request body bytes kept for the event's `payload`
  size_t max_pending_requests = 256;
};

struct CapturedMessage {
  bool is_request = true;
  RequestHead request;
  ResponseHead response;
  uint64_t first_byte_ns = 0;
  uint64_t body_bytes = 0;
  std::string body_excerpt;
  bool incomplete = false;  // the body ended early (close, lost framing)
};

class HttpStream {
 public:
  enum class Kind { kRequests, kResponses };

  HttpStream(Kind kind, const StreamLimits& limits) : kind_(kind), limits_(limits) {}

  void Append(std::string_view bytes, uint64_t ts_ns);
  // `n` bytes went by that the sensor did not copy.
  void AppendGap(uint64_t n, uint64_t ts_ns);
  // Completes one message if the buffered bytes hold one. `request_method` is the method of the
  // request the next response answers (responses only; "" when unknown).
  bool ParseOne(std::string_view request_method, CapturedMessage& out);
  // End of stream: completes a body that runs until close.
  bool Close(CapturedMessage& out);
  // No more HTTP on this stream (after 101 Switching Protocols): drop everything from now on.
  void Stop();
  // Bytes of unknown length were lost here (the sensor's ring buffer was full): drops what is
  // buffered and the message in progress, and resynchronises on the next message start. True
  // when a message had begun (its head, or part of it, was buffered).
  bool Lost();

  uint64_t parse_errors() const { return parse_errors_; }

 private:
  struct Segment {
    bool gap = false;
    std::string data;
    uint64_t gap_len = 0;
  };
  enum class State { kHead, kBody, kResync, kStopped };

  uint64_t TsAt(uint64_t abs_pos) const;
  void Advance(uint64_t n);  // consumes n bytes (or gap) from the front segment
  void LoseSync();
  bool Finish(CapturedMessage& out, bool incomplete);

  Kind kind_;
  StreamLimits limits_;
  std::deque<Segment> segments_;
  size_t front_off_ = 0;  // consumed bytes of segments_.front()
  uint64_t abs_front_ = 0;
  uint64_t abs_end_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> marks_;  // (absolute position, ts)
  State state_ = State::kHead;
  CapturedMessage cur_;
  uint64_t body_remaining_ = 0;
  ChunkedDecoder chunked_;
  uint64_t parse_errors_ = 0;
};

struct Transaction {
  RequestHead request;
  ResponseHead response;
  uint64_t request_ns = 0;   // first request byte
  uint64_t response_ns = 0;  // first response byte
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;
  std::string request_body_excerpt;
};

struct ConnectionStats {
  uint64_t transactions = 0;
  uint64_t parse_errors = 0;
  uint64_t orphan_responses = 0;     // a response with no request to answer
  uint64_t unanswered_requests = 0;  // requests still pending at close, or over the limit
  uint64_t lost_requests = 0;        // requests dropped because the sensor lost records around them
};

class HttpConnection {
 public:
  // role_hint: 1 server (requests are read), 2 client (requests are written), 0 unknown.
  HttpConnection(int role_hint, const StreamLimits& limits);

  // `ingress` is true for bytes the process read. `gap` uncopied bytes follow `bytes`.
  // Records the sensor lost (ring buffer full), see OnLoss: `after_loss`, records of this
  // direction were lost just before `bytes`; `peer_lost`, the other direction's latest records
  // were lost and nothing of it arrived since.
  void OnData(bool ingress, std::string_view bytes, uint64_t gap, uint64_t ts_ns,
              std::vector<Transaction>& out, bool after_loss = false, bool peer_lost = false);
  void OnClose(std::vector<Transaction>& out);

  // True when requests travel in the ingress direction (the process is the server).
  bool is_server() const { return requests_ingress_ == 1; }
  const ConnectionStats& stats() const { return stats_; }

 private:
  void OnLoss(HttpStream& s, std::string_view next_bytes, bool peer_lost);
  void Pump(std::vector<Transaction>& out);
  void Pair(CapturedMessage& response, std::vector<Transaction>& out);

  StreamLimits limits_;
  int requests_ingress_ = -1;  // -1 undecided, 1 ingress, 0 egress
  HttpStream requests_;
  HttpStream responses_;
  std::deque<CapturedMessage> pending_;
  bool stopped_ = false;
  ConnectionStats stats_;
};

}  // namespace boing::agent
