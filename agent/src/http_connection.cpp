#include "boing/agent/http_connection.h"

#include <algorithm>

namespace boing::agent {

void HttpStream::Append(std::string_view bytes, uint64_t ts_ns) {
  if (bytes.empty() || state_ == State::kStopped) return;
  marks_.emplace_back(abs_end_, ts_ns);
  abs_end_ += bytes.size();
  if (!segments_.empty() && !segments_.back().gap) {
    segments_.back().data.append(bytes);
  } else {
    segments_.push_back(Segment{false, std::string(bytes), 0});
  }
}

void HttpStream::AppendGap(uint64_t n, uint64_t ts_ns) {
  if (n == 0 || state_ == State::kStopped) return;
  marks_.emplace_back(abs_end_, ts_ns);
  abs_end_ += n;
  if (!segments_.empty() && segments_.back().gap) {
    segments_.back().gap_len += n;
  } else {
    segments_.push_back(Segment{true, {}, n});
  }
}

void HttpStream::Stop() {
  state_ = State::kStopped;
  segments_.clear();
  marks_.clear();
  front_off_ = 0;
}

bool HttpStream::Lost() {
  if (state_ == State::kStopped) return false;
  bool begun = state_ == State::kBody;
  if (state_ == State::kHead) {
    for (size_t i = 0; i < segments_.size() && !begun; ++i) {
      const Segment& s = segments_[i];
      if (s.gap) continue;
      std::string_view d = std::string_view(s.data).substr(i == 0 ? front_off_ : 0);
      begun = d.find_first_not_of(" \r\n") != std::string_view::npos;
    }
  }
  segments_.clear();
  marks_.clear();
  front_off_ = 0;
  abs_front_ = abs_end_;
  cur_ = CapturedMessage();
  body_remaining_ = 0;
  state_ = State::kResync;
  return begun;
}

uint64_t HttpStream::TsAt(uint64_t abs_pos) const {
  uint64_t ts = 0;
  for (const auto& [pos, t] : marks_) {
    if (pos > abs_pos) break;
    ts = t;
  }
  return ts;
}

void HttpStream::Advance(uint64_t n) {
  Segment& s = segments_.front();
  uint64_t size = s.gap ? s.gap_len : s.data.size();
  abs_front_ += n;
  front_off_ += n;
  if (front_off_ >= size) {
    segments_.pop_front();
    front_off_ = 0;
  }
  // Keep the mark that covers the front byte, drop older ones.
  while (marks_.size() > 1 && marks_[1].first <= abs_front_) marks_.pop_front();
}

void HttpStream::LoseSync() {
  ++parse_errors_;
  state_ = State::kResync;
}

bool HttpStream::Finish(CapturedMessage& out, bool incomplete) {
  cur_.incomplete = incomplete;
  out = std::move(cur_);
  cur_ = CapturedMessage();
  if (state_ != State::kStopped && state_ != State::kResync) state_ = State::kHead;
  return true;
}

bool HttpStream::ParseOne(std::string_view request_method, CapturedMessage& out) {
  while (!segments_.empty() && state_ != State::kStopped) {
    Segment& s = segments_.front();
    if (state_ == State::kResync) {
      if (s.gap) {
        Advance(s.gap_len - front_off_);
        continue;
      }
      std::string_view d = std::string_view(s.data).substr(front_off_);
      auto starts = [&](std::string_view v) {
        return kind_ == Kind::kRequests ? LooksLikeRequestStart(v) : LooksLikeResponseStart(v);
      };
      if (starts(d)) {
        state_ = State::kHead;
        continue;
      }
      // A message starts after a line end, or where a read began (the sensor's records usually
      // start at message boundaries).
      size_t pos = 0;
      bool found = false;
      while ((pos = d.find("\r\n", pos)) != std::string_view::npos) {
        pos += 2;
        if (starts(d.substr(pos))) {
          found = true;
          break;
        }
      }
      for (const auto& mark : marks_) {
        if (mark.first <= abs_front_) continue;
        size_t at = mark.first - abs_front_;
        if (at >= d.size() || (found && at >= pos)) break;
        if (starts(d.substr(at))) {
          pos = at;
          found = true;
          break;
        }
      }
      if (found) {
        Advance(pos);
        state_ = State::kHead;
        continue;
      }
      if (segments_.size() > 1) {  // a gap follows: nothing here can start a message
        Advance(d.size());
        continue;
      }
      // Keep a short tail in case a start line is split across reads.
      if (d.size() > 16) Advance(d.size() - 16);
      return false;
    }

    if (state_ == State::kHead) {
      if (s.gap) {
        LoseSync();
        continue;
      }
      std::string_view d = std::string_view(s.data).substr(front_off_);
      ParseState st;
      size_t head_bytes = 0;
      if (kind_ == Kind::kRequests) {
        st = ParseRequestHead(d, limits_.http, cur_.request);
        head_bytes = cur_.request.head_bytes;
      } else {
        st = ParseResponseHead(d, request_method, limits_.http, cur_.response);
        head_bytes = cur_.response.head_bytes;
      }
      if (st == ParseState::kNeedsMoreData) {
        if (segments_.size() == 1) return false;
        // A gap follows: the head can never complete. Step past its start, or the resync would
        // find the same start again and loop forever (found by fuzz_tracker).
        LoseSync();
        Advance(1);
        continue;
      }
      if (st == ParseState::kInvalid) {
        LoseSync();
        Advance(1);
        continue;
      }
      cur_.is_request = kind_ == Kind::kRequests;
      cur_.first_byte_ns = TsAt(abs_front_);
      cur_.body_bytes = 0;
      Advance(head_bytes);
      BodyKind body = cur_.is_request ? cur_.request.body : cur_.response.body;
      body_remaining_ =
          cur_.is_request ? cur_.request.content_length : cur_.response.content_length;
      if (cur_.is_request && body == BodyKind::kUntilClose) body = BodyKind::kNone;
      if (body == BodyKind::kNone) return Finish(out, false);
      if (body == BodyKind::kChunked) chunked_.Reset();
      if (body == BodyKind::kContentLength)
        body_remaining_ =
            cur_.is_request ? cur_.request.content_length : cur_.response.content_length;
      state_ = State::kBody;
      continue;
    }

    // kBody
    BodyKind body = cur_.is_request ? cur_.request.body : cur_.response.body;
    uint64_t avail = (s.gap ? s.gap_len : s.data.size()) - front_off_;
    if (body == BodyKind::kContentLength) {
      uint64_t n = std::min(avail, body_remaining_);
      if (!s.gap && cur_.is_request && cur_.body_excerpt.size() < limits_.max_body_excerpt) {
        size_t keep = std::min<size_t>(n, limits_.max_body_excerpt - cur_.body_excerpt.size());
        cur_.body_excerpt.append(s.data, front_off_, keep);
      }
      cur_.body_bytes += n;
      body_remaining_ -= n;
      Advance(n);
      if (body_remaining_ == 0) return Finish(out, false);
      continue;
    }
    if (body == BodyKind::kUntilClose) {
      cur_.body_bytes += avail;
      Advance(avail);
      continue;
    }
    // Chunked.
    if (s.gap) {
      uint64_t used = 0;
      ParseState st = chunked_.ConsumeGap(avail, used);
      cur_.body_bytes = chunked_.body_bytes();
      if (st == ParseState::kInvalid) {
        Advance(used);
        LoseSync();
        return Finish(out, true);
      }
      Advance(used);
      continue;
    }
    std::string_view d = std::string_view(s.data).substr(front_off_);
    size_t used = 0;
    ParseState st = chunked_.Consume(d, used);
    cur_.body_bytes = chunked_.body_bytes();
    bool whole_segment = used == d.size();
    if (used) Advance(used);
    if (st == ParseState::kInvalid) {
      LoseSync();
      return Finish(out, true);
    }
    if (st == ParseState::kSuccess) return Finish(out, false);
    if (whole_segment) continue;
    // Part of a framing line is left; if a gap follows it can never complete.
    if (segments_.size() > 1) {
      LoseSync();
      return Finish(out, true);
    }
    return false;
  }
  return false;
}

bool HttpStream::Close(CapturedMessage& out) {
  if (state_ != State::kBody) return false;
  BodyKind body = cur_.is_request ? cur_.request.body : cur_.response.body;
  state_ = State::kHead;
  return Finish(out, body != BodyKind::kUntilClose);
}

HttpConnection::HttpConnection(int role_hint, const StreamLimits& limits)
    : limits_(limits),
      requests_(HttpStream::Kind::kRequests, limits),
      responses_(HttpStream::Kind::kResponses, limits) {
  if (role_hint == 1) requests_ingress_ = 1;
  if (role_hint == 2) requests_ingress_ = 0;
}

void HttpConnection::OnData(bool ingress, std::string_view bytes, uint64_t gap, uint64_t ts_ns,
                            std::vector<Transaction>& out, bool after_loss, bool peer_lost) {
  if (stopped_) return;
  if (requests_ingress_ < 0) {
    bool response_first = LooksLikeResponseStart(bytes);
    requests_ingress_ = (ingress != response_first) ? 1 : 0;
  }
  HttpStream& s = (ingress == (requests_ingress_ == 1)) ? requests_ : responses_;
  if (after_loss) OnLoss(s, bytes, peer_lost);
  s.Append(bytes, ts_ns);
  s.AppendGap(gap, ts_ns);
  Pump(out);
}

// How many requests and responses the lost bytes held is unknown, so FIFO pairing cannot be
// trusted across the loss. What can: a client that does not pipeline sends a request only after
// the answer to its previous one arrived, and the ring buffer keeps the order of the records.
// - Requests lost: every earlier answer was written before the request after the loss was read,
//   so whatever is still pending was pipelined (or its answer is the one lost): dropped.
// - Responses lost: if the record after the loss starts a response and no request was lost
//   since (`peer_lost`), it answers the newest request; older pending requests lost their
//   answers. Otherwise nothing pending can be paired.
// Dropped requests are counted (lost_requests); the requests the lost records themselves
// started are counted by the sensor in the kernel (lost_requests there).
void HttpConnection::OnLoss(HttpStream& s, std::string_view next_bytes, bool peer_lost) {
  bool begun = s.Lost();
  size_t keep = 0;
  if (&s == &requests_) {
    stats_.lost_requests += begun ? 1 : 0;
  } else if (!peer_lost && LooksLikeResponseStart(next_bytes) && !pending_.empty()) {
    keep = 1;
  }
  while (pending_.size() > keep) {
    pending_.pop_front();
    ++stats_.lost_requests;
  }
}

void HttpConnection::Pump(std::vector<Transaction>& out) {
  CapturedMessage m;
  while (requests_.ParseOne({}, m)) {
    if (pending_.size() >= limits_.max_pending_requests) {
      pending_.pop_front();
      ++stats_.unanswered_requests;
    }
    pending_.push_back(std::move(m));
  }
  for (;;) {
    std::string_view method =
        pending_.empty() ? std::string_view() : pending_.front().request.method;
    if (!responses_.ParseOne(method, m)) break;
    Pair(m, out);
    if (stopped_) break;
  }
  stats_.parse_errors = requests_.parse_errors() + responses_.parse_errors();
}

void HttpConnection::Pair(CapturedMessage& response, std::vector<Transaction>& out) {
  int status = response.response.status;
  if (status >= 100 && status < 200 && status != 101) return;  // interim: the final one follows
  if (pending_.empty()) {
    ++stats_.orphan_responses;
    return;
  }
  CapturedMessage req = std::move(pending_.front());
  pending_.pop_front();
  Transaction t;
  t.request = std::move(req.request);
  t.response = std::move(response.response);
  t.request_ns = req.first_byte_ns;
  t.response_ns = response.first_byte_ns;
  t.request_body_bytes = req.body_bytes;
  t.response_body_bytes = response.body_bytes;
  t.request_body_excerpt = std::move(req.body_excerpt);
  out.push_back(std::move(t));
  ++stats_.transactions;
  if (status == 101 || (t.request.method == "CONNECT" && status / 100 == 2)) {
    stopped_ = true;  // the connection now carries another protocol
    requests_.Stop();
    responses_.Stop();
  }
}

void HttpConnection::OnClose(std::vector<Transaction>& out) {
  if (stopped_) return;
  Pump(out);
  CapturedMessage m;
  if (requests_.Close(m)) pending_.push_back(std::move(m));
  if (responses_.Close(m)) Pair(m, out);
  stats_.unanswered_requests += pending_.size();
  pending_.clear();
}

}  // namespace boing::agent
