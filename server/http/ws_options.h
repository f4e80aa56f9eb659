// The settings every server WebSocket gets after the upgrade (server.cpp's WsSession), shared with
// fuzz/fuzz_ws_frames.cpp so that the fuzzer drives Beast with the server's exact configuration.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket.hpp>

#include "boing/http.h"

namespace boing::http::internal {

template <class WsStream>
void ConfigureServerWebSocket(WsStream& ws, const ServerOptions& o) {
  namespace websocket = boost::beast::websocket;
  ws.set_option(websocket::stream_base::timeout{o.read_timeout, o.idle_timeout, true});
  ws.read_message_max(o.max_ws_message_bytes);
  websocket::permessage_deflate pmd;
  pmd.server_enable = true;
  ws.set_option(pmd);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(boost::beast::http::field::server, "boing"); }));
}

// The buffer a server WebSocket reads messages into, bounded by the message bound: Beast sizes
// the next read of a compressed message by the frame's declared length, which read_message_max
// cannot check before inflating, so an unbounded buffer let one frame declaring 2^62 bytes throw
// std::bad_alloc out of the I/O thread (the server died) or reserve gigabytes. A bounded buffer
// turns that into a read error (buffer_overflow) for that connection only.
inline boost::beast::flat_buffer ServerWebSocketReadBuffer(const ServerOptions& o) {
  return boost::beast::flat_buffer(o.max_ws_message_bytes);
}

}  // namespace boing::http::internal
