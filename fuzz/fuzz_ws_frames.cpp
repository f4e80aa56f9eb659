// WebSocket frames as the server receives them: a Beast websocket::stream configured exactly as
// the server's WsSession configures it (server/http/ws_options.h: read_message_max, timeouts,
// permessage-deflate offered by the server), accepting a valid upgrade request, then reading
// hostile client bytes (any opcode, masking, fragmentation, control frames, compressed frames,
// close frames) with the asynchronous operations the server uses. Every message
// read goes through what /ws/ingest does with it (ParseEvent under the server's default event
// limits, a JSON reply written back as a text message, compressed when negotiated).
//
// Properties besides "no crash, no sanitizer report, no hang": every message is within the
// configured bound; a text message is valid UTF-8; a message that parses as an event respects the
// event limits; every reply is written while the connection is open.
//
// Input: byte 0 selects the permessage-deflate offer (bits 0-2), the message bound (bits 3-5:
// 0 = the server's default 1 MiB, else 2^(bits+4) bytes), and whether the transport delivers the
// bytes in small reads (bit 6, size from byte 1). The rest is what the client sends after the
// upgrade.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "boing/event.h"
#include "boing/http.h"
#include "boing/utf8.h"
#include "fuzz_util.h"
#include "ws_options.h"

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace bhttp = beast::http;
using boost::system::error_code;

constexpr const char* kExtensionOffers[] = {
    nullptr,
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits=8; server_max_window_bits=9",
    "permessage-deflate; server_max_window_bits=15, permessage-deflate",
    "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15",
    "permessage-deflate; server_max_window_bits=8",
};

// The server's session loop (WsSession::Run, Read, Write and the /ws/ingest handler) as completion
// handlers: clang 14 cannot assemble this file's Asio coroutines under the fuzzer's sanitizer
// flags ("Cannot represent a difference across sections"). Beast runs the same composed accept,
// read and write operations for either completion token.
using WsStream = websocket::stream<beast::test::stream>;

class Session {
 public:
  // `ws` is destroyed when the session ends, as the server destroys its WsSession (that also
  // cancels the stream's idle timer).
  Session(std::optional<WsStream>& ws, const boing::http::ServerOptions& opts)
      : ws_(*ws),
        owner_(ws),
        opts_(opts),
        buf_(boing::http::internal::ServerWebSocketReadBuffer(opts)) {}

  void Start(const bhttp::request<bhttp::string_body>& upgrade) {
    ws_.async_accept(upgrade, [this](error_code ec) {
      if (ec) return End();
      accepted = true;
      Read();
    });
  }

  bool accepted = false;
  bool ended = false;
  size_t messages = 0;
  size_t replies = 0;

 private:
  void Read() {  // as WsSession::Read
    buf_.consume(buf_.size());
    ws_.async_read(buf_, [this](error_code ec, size_t) {
      if (ec) return End();
      OnMessage(beast::buffers_to_string(buf_.data()));
    });
  }

  void OnMessage(std::string msg) {
    ++messages;
    BOING_FUZZ_CHECK(msg.size() <= opts_.max_ws_message_bytes);
    if (ws_.got_text()) BOING_FUZZ_CHECK(boing::ValidUtf8(msg));

    // As the /ws/ingest handler: parse under the server's default limits (EVENT_* settings
    // unset), answer with a JSON status.
    boing::Event e;
    if (auto err = boing::ParseEvent(msg, limits_, e)) {
      reply_ = boing::http::Response::Error(400, err->message, err->field).body;
    } else {
      BOING_FUZZ_CHECK(e.method.size() <= limits_.max_field_len);
      BOING_FUZZ_CHECK(e.endpoint.size() <= limits_.max_endpoint_len);
      BOING_FUZZ_CHECK(e.headers.size() <= limits_.max_headers);
      reply_ = R"({"status":"inserted","id":1})";
    }
    ws_.text(true);  // as WsSession::Write
    ws_.async_write(boost::asio::buffer(reply_), [this](error_code ec, size_t) {
      if (ec) return End();
      ++replies;
      Read();
    });
  }

  void End() {
    ended = true;
    boost::asio::post(ws_.get_executor(), [this] { owner_.reset(); });
  }

  WsStream& ws_;
  std::optional<WsStream>& owner_;
  const boing::http::ServerOptions& opts_;
  const boing::EventLimits limits_;
  beast::flat_buffer buf_;
  std::string reply_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const uint8_t read_size = data[1];
  std::string_view frames(reinterpret_cast<const char*>(data + 2), size - 2);

  boing::http::ServerOptions opts;
  if (unsigned bound = (mode >> 3) & 7) opts.max_ws_message_bytes = size_t{1} << (bound + 4);

  bhttp::request<bhttp::string_body> upgrade{bhttp::verb::get, "/ws/ingest", 11};
  upgrade.set(bhttp::field::host, "127.0.0.1");
  upgrade.set(bhttp::field::upgrade, "websocket");
  upgrade.set(bhttp::field::connection, "Upgrade");
  upgrade.set(bhttp::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  upgrade.set(bhttp::field::sec_websocket_version, "13");
  if (const char* offer = kExtensionOffers[mode & 7]) {
    upgrade.set(bhttp::field::sec_websocket_extensions, offer);
  }

  boost::asio::io_context ioc;
  beast::test::stream client(ioc);
  std::optional<WsStream> ws(std::in_place, ioc);
  beast::test::stream& transport = ws->next_layer();
  transport.connect(client);
  if (mode & 0x40) transport.read_size(1 + read_size % 32);
  transport.append(frames);
  transport.close_remote();  // the client's bytes end here: the server then reads EOF
  boing::http::internal::ConfigureServerWebSocket(*ws, opts);
  Session session(ws, opts);
  session.Start(upgrade);
  ioc.run();
  BOING_FUZZ_CHECK(session.ended && !ws);  // the session ended: no operation left hanging
  BOING_FUZZ_CHECK(session.accepted);      // the upgrade itself is valid
  BOING_FUZZ_CHECK(session.replies <= session.messages);
  BOING_FUZZ_CHECK(session.messages <= frames.size() / 6);  // a client frame is >= 6 bytes
  return 0;
}
