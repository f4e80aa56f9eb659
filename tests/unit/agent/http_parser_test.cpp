#include "boing/agent/http_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace boing::agent {
namespace {

TEST(HttpParser, RequestHeadIsParsedWithHeadersAndLength) {
  std::string req = "POST /api/items?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  RequestHead h;
  ASSERT_EQ(ParseRequestHead(req, {}, h), ParseState::kSuccess);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/api/items?x=1");
  EXPECT_EQ(h.version, "HTTP/1.1");
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(h.head_bytes, req.size() - 5);
  EXPECT_EQ(FindHeader(h.headers, "HOST"), "a");
}

TEST(HttpParser, EveryPrefixOfARequestNeedsMoreData) {
  std::string req = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; i < req.size(); ++i) {
    RequestHead h;
    EXPECT_EQ(ParseRequestHead(std::string_view(req).substr(0, i), {}, h),
              ParseState::kNeedsMoreData)
        << i;
  }
}

TEST(HttpParser, GarbageIsInvalidQuickly) {
  RequestHead h;
  EXPECT_EQ(ParseRequestHead("\x16\x03\x01\x02\x00\x01", {}, h), ParseState::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET /a FTP/1.0\r\n\r\n", {}, h), ParseState::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET /a HTTP/1.1\r\nbad header\r\n\r\n", {}, h), ParseState::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET /a HTTP/1.1\r\nContent-Length: x\r\n\r\n", {}, h),
            ParseState::kInvalid);
}

TEST(HttpParser, HeadOverTheLimitIsInvalid) {
  HttpLimits limits;
  limits.max_head_bytes = 64;
  std::string req = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n";
  RequestHead h;
  EXPECT_EQ(ParseRequestHead(req, limits, h), ParseState::kInvalid);
}

TEST(HttpParser, ResponseFraming) {
  ResponseHead r;
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", {}, r),
            ParseState::kSuccess);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, BodyKind::kContentLength);
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD", {}, r),
            ParseState::kSuccess);
  EXPECT_EQ(r.body, BodyKind::kNone);
  ASSERT_EQ(ParseResponseHead("HTTP/1.1 204 \r\n\r\n", "GET", {}, r), ParseState::kSuccess);
  EXPECT_EQ(r.body, BodyKind::kNone);
  ASSERT_EQ(ParseResponseHead("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", "GET", {}, r),
            ParseState::kSuccess);
  EXPECT_EQ(r.body, BodyKind::kUntilClose);
  ASSERT_EQ(
      ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", {}, r),
      ParseState::kSuccess);
  EXPECT_EQ(r.body, BodyKind::kChunked);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 999 X\r\n\r\n", "GET", {}, r), ParseState::kInvalid);
  EXPECT_EQ(ParseResponseHead("HTTX/1.1 200 OK\r\n\r\n", "GET", {}, r), ParseState::kInvalid);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 20", "GET", {}, r), ParseState::kNeedsMoreData);
}

TEST(HttpParser, ChunkedDecoderAcrossEverySplit) {
  std::string body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t split = 0; split <= body.size(); ++split) {
    ChunkedDecoder d;
    size_t used = 0;
    std::string_view first = std::string_view(body).substr(0, split);
    ParseState st = d.Consume(first, used);
    std::string rest = std::string(first.substr(used)) + body.substr(split);
    if (st != ParseState::kSuccess) {
      size_t used2 = 0;
      st = d.Consume(rest, used2);
      EXPECT_EQ(used2, rest.size()) << split;
    }
    EXPECT_EQ(st, ParseState::kSuccess) << split;
    EXPECT_EQ(d.body_bytes(), 9u) << split;
  }
}

TEST(HttpParser, ChunkedDecoderRejectsBadSizes) {
  ChunkedDecoder d;
  size_t used = 0;
  EXPECT_EQ(d.Consume("zz\r\n", used), ParseState::kInvalid);
  ChunkedDecoder d2;
  EXPECT_EQ(d2.Consume("3\r\nabcXX", used), ParseState::kInvalid);
}

TEST(HttpParser, ChunkedGapInsideDataIsConsumed) {
  ChunkedDecoder d;
  size_t used = 0;
  ASSERT_EQ(d.Consume("a\r\nab", used), ParseState::kNeedsMoreData);
  uint64_t g = 0;
  EXPECT_EQ(d.ConsumeGap(8, g), ParseState::kNeedsMoreData);
  EXPECT_EQ(g, 8u);
  EXPECT_EQ(d.Consume("\r\n0\r\n\r\n", used), ParseState::kSuccess);
  EXPECT_EQ(d.body_bytes(), 10u);
}

}  // namespace
}  // namespace boing::agent
