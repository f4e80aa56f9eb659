// The HTTP/1.1 + WebSocket server core of boing-server, on Boost.Beast and Asio C++20 coroutines.
//
// Shape (Beast examples): a listener accepts TCP (optionally TLS) connections; each becomes an
// HTTP session that reads requests with header/body limits and timeouts, dispatches them through
// the Router, and writes responses (keep-alive; one request at a time per connection). A request
// for a WebSocket route is upgraded and handed to a WebSocket handler.
//
// Handlers are coroutines returning a Response. They may suspend (e.g. waiting for the group
// commit of ingest) without blocking an I/O thread. Handlers never throw: the session converts an
// escaped exception into a 500 and logs it, but that is a bug.
//
// Graceful shutdown (Stop): stop accepting, let in-flight requests finish and their responses be
// written (up to a drain timeout), close idle keep-alive connections, then return from Run.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "boing/net.h"

namespace boing::http {

namespace asio = boost::asio;

struct Request {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // raw target, path + query
  std::string path;                                          // decoded path without query
  std::string query;                                         // raw query string without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string body;       // already gunzipped when Content-Encoding: gzip
  std::string peer_ip;    // TCP peer
  std::string client_ip;  // peer, or the client named by X-Forwarded-For/Forwarded when the peer
                          // is a trusted proxy
  bool tls = false;
  std::map<std::string, std::string> params;  // route parameters (":id" -> value)

  // Case-insensitive header lookup; "" when absent.
  std::string_view Header(std::string_view name) const;
  // Decoded query parameter; nullopt when absent.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, the body is streamed with chunked transfer encoding: the session calls it
  // repeatedly and writes each returned chunk until it returns nullopt. `body` is ignored.
  std::function<std::optional<std::string>()> chunk_source;

  static Response Json(int status, std::string body);
  // {"error": message, "field": field} (field omitted when empty).
  static Response Error(int status, std::string_view message, std::string_view field = "");
};

using Handler = std::function<asio::awaitable<Response>(Request&)>;

// An accepted WebSocket connection as seen by a handler.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Next text/binary message; nullopt when the peer closed or an error/timeout occurred.
  virtual asio::awaitable<std::optional<std::string>> Read() = 0;
  // Sends one text message; false when the connection is gone.
  virtual asio::awaitable<bool> Write(std::string message) = 0;
  virtual asio::awaitable<void> Close(uint16_t code, std::string reason) = 0;
  // Closes the socket at once, without a close frame: pending Read/Write complete with an error.
  // For a peer that stopped reading (a close frame could never be written). Call on the
  // connection's executor (the handler's).
  virtual void Abort() = 0;
  // Caps the kernel's send buffer for this connection (SO_SNDBUF): a peer that stops reading
  // then blocks our writes after that many bytes instead of after the kernel's autotuned
  // megabytes. Call on the connection's executor.
  virtual void LimitSendBuffer(int bytes) = 0;
};

// Called after the upgrade; the connection closes when the coroutine returns.
using WsHandler = std::function<asio::awaitable<void>(Request&, WsConnection&)>;
// Called before the upgrade: a non-empty Response refuses the upgrade with it (e.g. 401).
using WsAuthorizer = std::function<std::optional<Response>(Request&)>;

// Decodes %XX escapes (and '+' as space in query strings).
std::string PercentDecode(std::string_view s, bool plus_is_space);

struct RouteInfo {
  std::string method;   // "GET", ... or "WS" for WebSocket routes
  std::string pattern;  // "/api/apis/:id"
};

// Exact-segment router with ":param" segments. Method mismatch on a known path gives 405. When
// several patterns match a path, literal segments win over parameters (left to right), then
// registration order; HEAD is served by a GET route unless a HEAD route exists.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler h);
  void AddWebSocket(std::string pattern, WsAuthorizer authorize, WsHandler h);
  // Fallback for GET requests that match no route (static files / SPA), optional.
  void SetFallback(Handler h);
  const std::vector<RouteInfo>& Routes() const { return routes_; }

  struct Match {
    const Handler* handler = nullptr;
    const WsAuthorizer* ws_authorize = nullptr;
    const WsHandler* ws_handler = nullptr;
    bool path_known = false;  // some route has this path (for 405 vs 404)
    bool ws_route = false;    // a WebSocket route has this path (426 without an upgrade)
  };
  Match Find(std::string_view method, std::string_view path, bool websocket,
             std::map<std::string, std::string>& params) const;
  const Handler* Fallback() const { return fallback_ ? &*fallback_ : nullptr; }
  // "GET, POST" for the routes matching `path` (for 405's Allow header).
  std::string AllowedMethods(std::string_view path) const;

 private:
  struct Entry {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    WsAuthorizer ws_authorize;
    WsHandler ws_handler;
    uint64_t specificity = 0;  // literal segments win over ":param" ones, left to right
  };
  std::vector<Entry> entries_;
  std::vector<RouteInfo> routes_;
  std::optional<Handler> fallback_;
};

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8000;  // 0 = pick a free port (see Server::Port)
  int threads = 2;
  size_t max_header_bytes = 16 * 1024;      // 431 beyond
  size_t max_body_bytes = 8 * 1024 * 1024;  // 413 beyond (after gunzip too)
  size_t max_ws_message_bytes = 1024 * 1024;
  std::chrono::seconds read_timeout{30};   // whole request
  std::chrono::seconds idle_timeout{60};   // keep-alive idle
  std::chrono::seconds drain_timeout{15};  // graceful shutdown
  size_t max_requests_per_connection = 0;  // 0 = unlimited
  std::string tls_cert_file;               // both set = HTTPS
  std::string tls_key_file;
  std::vector<std::string> trusted_proxies;  // IPs or CIDRs
  std::vector<std::string> cors_origins;     // "*" or exact origins; empty = no CORS headers
};

// Request-level access log hook, called after each response is written.
struct AccessRecord {
  std::string method;
  std::string target;
  int status = 0;
  std::string client_ip;
  double duration_ms = 0;
  size_t bytes_out = 0;
};

class Server {
 public:
  Server(ServerOptions opts, std::shared_ptr<Router> router);
  ~Server();
  // Binds and listens; returns false and sets `error` on failure (port in use, bad TLS files).
  bool Start(std::string* error);
  uint16_t Port() const;  // the bound port (after Start)
  // Runs the I/O threads until Stop() completes the drain. Call after Start.
  void Run();
  // Thread-safe; may be called from a signal handler context via asio::signal_set.
  void Stop();
  asio::io_context& Context();
  void SetAccessLog(std::function<void(const AccessRecord&)> fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace boing::http
