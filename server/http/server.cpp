// Listener, HTTP session and WebSocket session on Beast with Asio C++20 coroutines (the shape of
// Beast's advanced server example, with coroutines instead of callbacks).
//
// Every connection is an HttpSession<Stream> for Stream = plain tcp_stream or ssl_stream over it;
// one coroutine per connection runs the keep-alive loop, and a request for a WebSocket route hands
// the stream over to a WsSession. With several I/O threads each connection lives on its own strand;
// with one thread the io_context executor is used directly (no strand overhead).
//
// Hot path (small keep-alive requests): the flat_buffer, the Request and the response header
// buffer are per-connection and reused; the parser is fresh per request (in place, no heap); a
// body that arrived with the header is parsed without another read operation; the response
// header is serialized by hand into one buffer and written with the body in one gather write; no
// nested coroutine frames are allocated except the handler's own.
//
// Graceful drain: Server::Stop closes the acceptor and asks every registered session to drain on
// its own executor. A session idle between requests is cancelled at once; a session with a request
// in flight finishes it (with "Connection: close") and then closes; a WebSocket session sends a
// close frame (1001 going away). Run returns when the last session unregisters, or when the drain
// timeout fires (the io_context is then stopped and remaining sessions are destroyed with it).
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "boing/http.h"
#include "boing/log.h"
#include "internal.h"
#include "ws_options.h"

namespace boing::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::asio::awaitable;
using boost::asio::redirect_error;
using boost::asio::use_awaitable;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Executor = boost::asio::any_io_executor;
using internal::IEquals;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using BeastRequest = bhttp::request<bhttp::string_body>;

// How long a closing connection keeps reading (and discarding) what the client still sends after
// our final response, so that unread request bytes do not turn the close into a reset that could
// destroy the response before the client read it (nginx's lingering close).
constexpr auto kLingerTime = std::chrono::seconds(1);
// A TLS close_notify exchange never holds a connection longer than this.
constexpr auto kTlsShutdownTime = std::chrono::seconds(2);
// Read buffers that grew beyond this (a large header or message) are shrunk while idle.
constexpr size_t kMaxIdleBuffer = 64 * 1024;
// Back-off after a failed accept (e.g. EMFILE) so the loop does not spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(50);

bool OriginAllowed(const std::vector<std::string>& origins, std::string_view origin) {
  for (const auto& o : origins) {
    if (o == "*" || o == origin) return true;
  }
  return false;
}

bool HeaderTextSafe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool HeaderNameSafe(std::string_view s) {
  return !s.empty() && HeaderTextSafe(s) && s.find_first_of(": \t") == std::string_view::npos;
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

std::string_view ReasonPhrase(int status) {
  std::string_view r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  if (r.empty() || r.front() == '<') {  // "<unknown-status>"
    if (status >= 500) return "Server Error";
    if (status >= 400) return "Client Error";
    return "Status";
  }
  return r;
}

// Errors after which the connection is simply closed: the peer went away, timed out, or we
// cancelled it. Anything else from the HTTP parser is a malformed request (400).
bool IsParseError(const error_code& ec) {
  static const auto& http_category = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == http_category && ec != bhttp::error::end_of_stream;
}

// ------------------------------------------------------------------------------------------------
// Shared server state.

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Runs on the session's executor (see GetExecutor).
  virtual void Drain() = 0;
  virtual Executor GetExecutor() const = 0;
};

struct ServerCore {
  // Declared before `ioc`: sessions still reach these while the io_context destroys them.
  ServerOptions opts;
  std::shared_ptr<Router> router;
  std::function<void(const AccessRecord&)> access_log;
  std::optional<ssl::context> tls;
  std::mutex mu;
  std::unordered_map<uint64_t, std::weak_ptr<SessionBase>> sessions;  // guarded by mu
  uint64_t next_id = 0;                                               // guarded by mu
  bool destroying = false;                                            // guarded by mu
  std::atomic<bool> draining{false};

  boost::asio::io_context ioc;
  Executor acceptor_ex;
  tcp::acceptor acceptor;
  boost::asio::steady_timer drain_timer;
  uint16_t port = 0;

  ServerCore(ServerOptions o, std::shared_ptr<Router> r)
      : opts(std::move(o)),
        router(std::move(r)),
        ioc(std::max(1, opts.threads)),
        acceptor_ex(boost::asio::make_strand(ioc)),
        acceptor(acceptor_ex),
        drain_timer(acceptor_ex) {
    if (!router) router = std::make_shared<Router>();
  }

  ~ServerCore() {
    std::lock_guard lock(mu);
    destroying = true;  // sessions destroyed with the io_context must not touch it
  }

  Executor NewConnectionExecutor() {
    if (opts.threads > 1) return boost::asio::make_strand(ioc);
    return ioc.get_executor();
  }

  uint64_t Register(std::weak_ptr<SessionBase> s) {
    std::lock_guard lock(mu);
    uint64_t id = ++next_id;
    sessions.emplace(id, std::move(s));
    return id;
  }

  void Unregister(uint64_t id) {
    std::lock_guard lock(mu);
    if (destroying) return;
    sessions.erase(id);
    if (sessions.empty() && draining) ioc.stop();
  }

  // On acceptor_ex.
  void BeginDrain() {
    if (draining.exchange(true)) return;
    error_code ec;
    acceptor.close(ec);
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      std::lock_guard lock(mu);
      if (sessions.empty()) {
        ioc.stop();
        return;
      }
      live.reserve(sessions.size());
      for (auto& [id, weak] : sessions) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) {
      boost::asio::post(s->GetExecutor(), [s] { s->Drain(); });
    }
    drain_timer.expires_after(opts.drain_timeout);
    drain_timer.async_wait([this](const error_code& e) {
      if (e) return;
      size_t left;
      {
        std::lock_guard lock(mu);
        left = sessions.size();
      }
      log::Warn("drain timeout: closing remaining connections", {{"connections", left}});
      ioc.stop();
    });
  }

  awaitable<void> Listen();
  template <class Stream>
  void StartSession(tcp::socket socket);
};

// ------------------------------------------------------------------------------------------------
// WebSocket session: owns the websocket stream after the upgrade and implements WsConnection for
// the handler. Writes (messages and the close frame) go through a one-at-a-time gate, so a handler
// may write from several coroutines and a drain close never overlaps a message write.

template <class Stream>
class WsSession : public WsConnection, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(ServerCore& core, Stream&& stream, Request&& req)
      : core_(core),
        ws_(std::move(stream)),
        req_(std::move(req)),
        rbuf_(internal::ServerWebSocketReadBuffer(core.opts)),
        gate_(ws_.get_executor(), Clock::time_point::max()) {}

  awaitable<void> Run(BeastRequest& upgrade, const WsHandler& handler) {
    const auto& o = core_.opts;
    beast::get_lowest_layer(ws_).expires_never();  // the websocket stream has its own timeouts
    internal::ConfigureServerWebSocket(ws_, o);
    error_code ec;
    co_await ws_.async_accept(upgrade, redirect_error(use_awaitable, ec));
    if (ec) co_return;
    accepted_ = true;
    if (drain_) StartClose();
    try {
      co_await handler(req_, *this);
    } catch (const std::exception& e) {
      log::Error("websocket handler threw", {{"path", req_.path}, {"error", e.what()}});
    } catch (...) {
      log::Error("websocket handler threw", {{"path", req_.path}});
    }
    if (!closing_ && ws_.is_open()) {
      co_await Close(drain_ ? 1001 : 1000, "");
    }
    // A drain close may still be in flight: it references this stream.
    while (writing_) co_await WaitGate();
  }

  // On the session's executor.
  void Drain() {
    drain_ = true;
    if (!accepted_ || closing_) return;
    if (writing_) {
      close_pending_ = true;  // sent by ReleaseWrite when the current write is done
      return;
    }
    StartClose();
  }

  awaitable<std::optional<std::string>> Read() override {
    rbuf_.consume(rbuf_.size());
    if (rbuf_.capacity() > kMaxIdleBuffer) rbuf_.shrink_to_fit();
    error_code ec;
    co_await ws_.async_read(rbuf_, redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    co_return beast::buffers_to_string(rbuf_.data());
  }

  awaitable<bool> Write(std::string message) override {
    while (writing_) co_await WaitGate();
    if (closing_ || !ws_.is_open()) co_return false;
    writing_ = true;
    error_code ec;
    ws_.text(true);
    co_await ws_.async_write(boost::asio::buffer(message), redirect_error(use_awaitable, ec));
    ReleaseWrite();
    co_return !ec;
  }

  awaitable<void> Close(uint16_t code, std::string reason) override {
    while (writing_) co_await WaitGate();
    if (closing_ || !ws_.is_open()) co_return;
    writing_ = true;
    closing_ = true;
    error_code ec;
    co_await ws_.async_close(
        websocket::close_reason(static_cast<websocket::close_code>(code), reason),
        redirect_error(use_awaitable, ec));
    ReleaseWrite();
  }

  void Abort() override {
    closing_ = true;
    beast::get_lowest_layer(ws_).close();
  }

  void LimitSendBuffer(int bytes) override {
    error_code ec;
    beast::get_lowest_layer(ws_).socket().set_option(asio::socket_base::send_buffer_size(bytes),
                                                     ec);
  }

 private:
  awaitable<void> WaitGate() {
    error_code ec;
    co_await gate_.async_wait(redirect_error(use_awaitable, ec));  // woken by cancel_one
  }

  void ReleaseWrite() {
    writing_ = false;
    if (close_pending_) {
      close_pending_ = false;
      if (!closing_ && ws_.is_open()) {
        StartClose();
        return;
      }
    }
    gate_.cancel_one();
  }

  // Sends 1001 going away without waiting; a pending Read then ends when the peer answers.
  void StartClose() {
    if (closing_ || !ws_.is_open()) return;
    closing_ = true;
    writing_ = true;
    ws_.async_close(websocket::close_code::going_away,
                    [self = this->shared_from_this()](const error_code&) {
                      self->writing_ = false;
                      self->gate_.cancel_one();
                    });
  }

  ServerCore& core_;
  websocket::stream<Stream> ws_;
  Request req_;
  beast::flat_buffer rbuf_;
  boost::asio::steady_timer gate_;  // never expires; cancel_one wakes one waiting writer
  bool accepted_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool close_pending_ = false;
  bool drain_ = false;
};

// ------------------------------------------------------------------------------------------------
// HTTP session.

template <class Stream>
class HttpSession : public SessionBase {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, PlainStream>;

  HttpSession(ServerCore& core, tcp::socket&& socket)
      : core_(core), ex_(socket.get_executor()), stream_(MakeStream(core, std::move(socket))) {
    error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) {
      auto addr = ep.address();
      if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
        addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
      }
      req_.peer_ip = addr.to_string();
    }
    req_.tls = kTls;
  }

  ~HttpSession() override { core_.Unregister(id_); }

  void SetId(uint64_t id) { id_ = id; }
  Executor GetExecutor() const override { return ex_; }

  void Drain() override {
    drain_ = true;
    switch (phase_) {
      case Phase::kIdle:
        // Waiting for the next request (or the TLS handshake) with nothing received yet.
        if (buffer_.size() == 0) Lowest().cancel();
        break;
      case Phase::kClosing:
        Lowest().cancel();
        break;
      case Phase::kBusy:
        break;  // the response goes out with "Connection: close"
      case Phase::kUpgraded:
        if (ws_) ws_->Drain();
        break;
    }
  }

  awaitable<void> Run() {
    try {
      co_await Serve();
    } catch (const std::exception& e) {
      log::Error("http session failed", {{"error", e.what()}});
      graceful_close_ = false;
    } catch (...) {
      log::Error("http session failed");
      graceful_close_ = false;
    }
    if (phase_ == Phase::kUpgraded) co_return;
    phase_ = Phase::kClosing;
    try {
      co_await Shutdown();
    } catch (...) {
    }
  }

 private:
  enum class Phase { kIdle, kBusy, kUpgraded, kClosing };

  static Stream MakeStream(ServerCore& core, tcp::socket&& socket) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *core.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  bool Draining() const { return drain_ || core_.draining.load(std::memory_order_relaxed); }

  awaitable<void> Serve() {
    const ServerOptions& o = core_.opts;
    error_code ec;
    if constexpr (kTls) {
      Lowest().expires_after(o.read_timeout);
      co_await stream_.async_handshake(ssl::stream_base::server, redirect_error(use_awaitable, ec));
      if (ec) co_return;
    }
    size_t served = 0;
    for (;;) {
      phase_ = Phase::kIdle;
      if (Draining()) co_return;
      if (buffer_.size() == 0 && buffer_.capacity() > kMaxIdleBuffer) buffer_.shrink_to_fit();
      parser_.emplace();
      parser_->header_limit(static_cast<std::uint32_t>(
          std::min<size_t>(o.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
      parser_->body_limit(o.max_body_bytes);
      Lowest().expires_after(served == 0 || buffer_.size() > 0 ? o.read_timeout : o.idle_timeout);
      co_await bhttp::async_read_header(stream_, buffer_, *parser_,
                                        redirect_error(use_awaitable, ec));
      if (!ec) {
        phase_ = Phase::kBusy;
        ++served;
        if (!parser_->is_done()) {
          // 100-continue: the client waits for it before sending the body (e.g. curl > 1 KiB).
          if (buffer_.size() == 0 &&
              IEquals(parser_->get()[bhttp::field::expect], "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            Lowest().expires_after(o.read_timeout);
            co_await boost::asio::async_write(stream_, boost::asio::buffer(kContinue),
                                              redirect_error(use_awaitable, ec));
            if (ec) co_return;
          }
          // Most bodies arrived with the header: parse them without another read operation.
          ParseBuffered(ec);
          if (!ec && !parser_->is_done()) {
            Lowest().expires_after(o.read_timeout);
            co_await bhttp::async_read(stream_, buffer_, *parser_,
                                       redirect_error(use_awaitable, ec));
          }
        }
      }
      if (ec) {
        co_await AnswerReadError(ec);
        co_return;
      }

      auto start = core_.access_log ? Clock::now() : Clock::time_point();
      BeastRequest& msg = parser_->get();
      FillRequest(msg);
      bool keep = msg.keep_alive() &&
                  (o.max_requests_per_connection == 0 || served < o.max_requests_per_connection);
      const bool head = msg.method() == bhttp::verb::head;
      const unsigned version = msg.version();

      Response resp;
      const Handler* handler = nullptr;
      const WsHandler* ws_handler = nullptr;
      Route(msg, resp, handler, ws_handler, keep);
      if (ws_handler) {
        co_await Upgrade(msg, *ws_handler, start);
        co_return;
      }
      if (handler) {
        try {
          resp = co_await (*handler)(req_);
        } catch (const std::exception& e) {
          log::Error("handler threw",
                     {{"method", req_.method}, {"path", req_.path}, {"error", e.what()}});
          resp = Response::Error(500, "internal error");
        } catch (...) {
          log::Error("handler threw", {{"method", req_.method}, {"path", req_.path}});
          resp = Response::Error(500, "internal error");
        }
      }
      if (Draining()) keep = false;

      size_t bytes = 0;
      if (resp.chunk_source && !head) {
        bytes = co_await WriteChunked(resp, version, keep, ec);
      } else {
        const bool no_body = resp.status == 204 || resp.status == 304 || resp.status < 200;
        if (no_body) resp.body.clear();
        SerializeHead(resp, version, keep, resp.chunk_source ? -1 : int64_t(resp.body.size()));
        const std::string_view body = head ? std::string_view() : std::string_view(resp.body);
        std::array<boost::asio::const_buffer, 2> bufs{boost::asio::buffer(head_),
                                                      boost::asio::buffer(body)};
        Lowest().expires_after(o.read_timeout);
        co_await boost::asio::async_write(stream_, bufs, redirect_error(use_awaitable, ec));
        bytes = body.size();
      }
      if (core_.access_log) {
        AccessLog(req_.method, req_.target, resp.status, req_.client_ip, start, bytes);
      }
      if (ec) co_return;
      if (!keep) {
        graceful_close_ = true;
        co_return;
      }
    }
  }

  void ParseBuffered(error_code& ec) {
    while (buffer_.size() > 0 && !parser_->is_done()) {
      size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec == bhttp::error::need_more) {
        ec = {};
        return;
      }
      if (ec || n == 0) return;
    }
  }

  // 431 / 413 / 400 for requests we cannot read; silence for timeouts and vanished peers.
  awaitable<void> AnswerReadError(error_code ec) {
    const ServerOptions& o = core_.opts;
    int status = 0;
    std::string message;
    if (ec == bhttp::error::header_limit) {
      status = 431;
      message = "request headers exceed " + std::to_string(o.max_header_bytes) + " bytes";
    } else if (ec == bhttp::error::body_limit) {
      status = 413;
      message = "request body exceeds " + std::to_string(o.max_body_bytes) + " bytes";
    } else if (IsParseError(ec) && (buffer_.size() > 0 || parser_->got_some())) {
      status = 400;
      message = "malformed HTTP request";
    }
    if (status == 0) co_return;
    Response resp = Response::Error(status, message);
    SerializeHead(resp, 11, false, static_cast<int64_t>(resp.body.size()));
    std::array<boost::asio::const_buffer, 2> bufs{boost::asio::buffer(head_),
                                                  boost::asio::buffer(resp.body)};
    Lowest().expires_after(o.read_timeout);
    co_await boost::asio::async_write(stream_, bufs, redirect_error(use_awaitable, ec));
    if (core_.access_log) {
      std::string method, target;
      if (parser_->is_header_done()) {
        method = std::string(parser_->get().method_string());
        target = std::string(parser_->get().target());
      }
      AccessLog(method, target, status, req_.peer_ip, Clock::now(), ec ? 0 : resp.body.size());
    }
    graceful_close_ = !ec;
  }

  void FillRequest(BeastRequest& msg) {
    Request& r = req_;
    r.method.assign(msg.method_string());
    std::string_view target = msg.target();
    r.target.assign(target);
    // absolute-form ("http://host/path?q") is served like origin-form
    if (!target.empty() && target.front() != '/') {
      size_t scheme = target.find("://");
      if (scheme != std::string_view::npos) {
        size_t slash = target.find('/', scheme + 3);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      }
    }
    size_t q = target.find('?');
    internal::PercentDecodeInto(target.substr(0, q), false, r.path);
    if (q == std::string_view::npos) {
      r.query.clear();
    } else {
      r.query.assign(target.substr(q + 1));
    }
    size_t n = 0;
    for (const auto& f : msg) {
      if (n < r.headers.size()) {
        r.headers[n].first.assign(f.name_string());
        r.headers[n].second.assign(f.value());
      } else {
        r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      }
      ++n;
    }
    r.headers.resize(n);
    r.body.clear();
    r.params.clear();
    const auto& trusted = core_.opts.trusted_proxies;
    if (trusted.empty()) {
      r.client_ip.assign(r.peer_ip);
    } else {
      // Several X-Forwarded-For lines form one comma-separated list.
      std::string_view xff;
      std::string joined;
      for (const auto& [k, v] : r.headers) {
        if (!IEquals(k, "X-Forwarded-For")) continue;
        if (xff.empty() && joined.empty()) {
          xff = v;
        } else {
          if (joined.empty()) joined.assign(xff);
          joined += ", ";
          joined += v;
          xff = {};
        }
      }
      if (!joined.empty()) xff = joined;
      r.client_ip = ResolveClientIp(r.peer_ip, xff, msg[bhttp::field::forwarded], trusted);
    }
  }

  // Decides what answers the request: sets `handler` or `ws_handler` to run, or fills `resp`.
  void Route(BeastRequest& msg, Response& resp, const Handler*& handler,
             const WsHandler*& ws_handler, bool& keep) {
    const ServerOptions& o = core_.opts;
    Request& r = req_;
    cors_origin_.clear();
    if (!o.cors_origins.empty()) {
      std::string_view origin = msg[bhttp::field::origin];
      if (!origin.empty() && OriginAllowed(o.cors_origins, origin)) cors_origin_.assign(origin);
    }
    if (!cors_origin_.empty() && msg.method() == bhttp::verb::options &&
        !msg[bhttp::field::access_control_request_method].empty()) {
      resp.status = 204;
      resp.headers.emplace_back("Access-Control-Allow-Methods",
                                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
      resp.headers.emplace_back("Access-Control-Allow-Headers",
                                "Authorization, Content-Type, Content-Encoding, X-Api-Key");
      resp.headers.emplace_back("Access-Control-Max-Age", "600");
      return;
    }
    const bool upgrade = websocket::is_upgrade(msg);
    Router::Match m = core_.router->Find(r.method, r.path, upgrade, r.params);
    if (upgrade) {
      keep = false;
      if (!m.ws_handler) {
        resp = Response::Error(400, "no WebSocket endpoint at this path");
        return;
      }
      if (Draining()) {
        resp = Response::Error(503, "server is shutting down");
        return;
      }
      std::optional<Response> refused;
      try {
        if (*m.ws_authorize) refused = (*m.ws_authorize)(r);
      } catch (const std::exception& e) {
        log::Error("websocket authorizer threw", {{"path", r.path}, {"error", e.what()}});
        refused = Response::Error(500, "internal error");
      } catch (...) {
        refused = Response::Error(500, "internal error");
      }
      if (refused) {
        resp = std::move(*refused);
      } else {
        ws_handler = m.ws_handler;
      }
      return;
    }
    if (m.handler) {
      std::string_view enc = msg[bhttp::field::content_encoding];
      if (enc.empty() || IEquals(enc, "identity")) {
        r.body = std::move(msg.body());
      } else if (IEquals(enc, "gzip") || IEquals(enc, "x-gzip")) {
        switch (internal::Gunzip(msg.body(), o.max_body_bytes, r.body)) {
          case internal::GunzipResult::kOk:
            break;
          case internal::GunzipResult::kTooLarge:
            resp = Response::Error(413, "request body exceeds " + std::to_string(o.max_body_bytes) +
                                            " bytes after decompression");
            keep = false;
            return;
          case internal::GunzipResult::kCorrupt:
            resp = Response::Error(400, "request body is not valid gzip");
            keep = false;
            return;
        }
      } else {
        resp = Response::Error(415, "unsupported Content-Encoding (use gzip or identity)");
        return;
      }
      handler = m.handler;
      return;
    }
    if (m.ws_route) {
      resp = Response::Error(426, "this endpoint requires a WebSocket upgrade");
      resp.headers.emplace_back("Upgrade", "websocket");
      return;
    }
    if (m.path_known) {
      resp = Response::Error(405, "method not allowed");
      resp.headers.emplace_back("Allow", core_.router->AllowedMethods(r.path));
      return;
    }
    if (const Handler* fb = core_.router->Fallback();
        fb && (msg.method() == bhttp::verb::get || msg.method() == bhttp::verb::head)) {
      handler = fb;
      return;
    }
    resp = Response::Error(404, "not found");
  }

  // The status line and headers, into head_. content_length < 0: chunked (or, for HTTP/1.0,
  // delimited by the close).
  void SerializeHead(const Response& resp, unsigned version, bool keep, int64_t content_length) {
    std::string& h = head_;
    h.clear();
    h += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    AppendUint(h, static_cast<uint64_t>(std::clamp(resp.status, 100, 999)));
    h += ' ';
    h += ReasonPhrase(resp.status);
    h += "\r\nServer: boing\r\n";
    const bool no_body = resp.status == 204 || resp.status == 304 || resp.status < 200;
    bool custom_type = false;
    for (const auto& [k, v] : resp.headers) {
      if (!HeaderNameSafe(k) || !HeaderTextSafe(v)) continue;
      // Framing and connection management belong to the session.
      if (IEquals(k, "Content-Length") || IEquals(k, "Transfer-Encoding") ||
          IEquals(k, "Connection") || IEquals(k, "Server")) {
        continue;
      }
      if (IEquals(k, "Content-Type")) custom_type = true;
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
    if (!custom_type && !no_body && !resp.content_type.empty() &&
        HeaderTextSafe(resp.content_type)) {
      h += "Content-Type: ";
      h += resp.content_type;
      h += "\r\n";
    }
    if (!cors_origin_.empty()) {
      h += "Access-Control-Allow-Origin: ";
      h += cors_origin_;
      h += "\r\nVary: Origin\r\nAccess-Control-Allow-Credentials: true\r\n";
    }
    if (!no_body) {
      if (content_length >= 0) {
        h += "Content-Length: ";
        AppendUint(h, static_cast<uint64_t>(content_length));
        h += "\r\n";
      } else if (version != 10) {
        h += "Transfer-Encoding: chunked\r\n";
      }
    }
    if (!keep) {
      h += "Connection: close\r\n";
    } else if (version == 10) {
      h += "Connection: keep-alive\r\n";
    }
    h += "\r\n";
  }

  // Streams chunk_source with chunked transfer encoding (raw until close for HTTP/1.0 clients).
  awaitable<size_t> WriteChunked(Response& resp, unsigned version, bool& keep, error_code& ec) {
    const bool raw = version == 10;
    if (raw) keep = false;
    SerializeHead(resp, version, keep, -1);
    size_t bytes = 0;
    Lowest().expires_after(core_.opts.read_timeout);
    co_await boost::asio::async_write(stream_, boost::asio::buffer(head_),
                                      redirect_error(use_awaitable, ec));
    while (!ec) {
      std::optional<std::string> chunk;
      try {
        chunk = resp.chunk_source();
      } catch (const std::exception& e) {
        log::Error("chunk source threw", {{"path", req_.path}, {"error", e.what()}});
        ec = boost::asio::error::operation_aborted;  // no last chunk: the client sees a cut
        break;
      } catch (...) {
        log::Error("chunk source threw", {{"path", req_.path}});
        ec = boost::asio::error::operation_aborted;
        break;
      }
      if (!chunk) break;
      if (chunk->empty()) continue;
      bytes += chunk->size();
      Lowest().expires_after(core_.opts.read_timeout);
      if (raw) {
        co_await boost::asio::async_write(stream_, boost::asio::buffer(*chunk),
                                          redirect_error(use_awaitable, ec));
      } else {
        co_await boost::asio::async_write(stream_, bhttp::make_chunk(boost::asio::buffer(*chunk)),
                                          redirect_error(use_awaitable, ec));
      }
    }
    if (!ec && !raw) {
      co_await boost::asio::async_write(stream_, bhttp::make_chunk_last(),
                                        redirect_error(use_awaitable, ec));
    }
    co_return bytes;
  }

  awaitable<void> Upgrade(BeastRequest& msg, const WsHandler& handler, Clock::time_point start) {
    if (core_.access_log) {
      AccessLog(req_.method, req_.target, 101, req_.client_ip, start, 0);
    }
    ws_ = std::make_shared<WsSession<Stream>>(core_, std::move(stream_), std::move(req_));
    phase_ = Phase::kUpgraded;
    if (drain_) ws_->Drain();
    co_await ws_->Run(msg, handler);
  }

  void AccessLog(std::string_view method, std::string_view target, int status,
                 std::string_view client_ip, Clock::time_point start, size_t bytes) {
    AccessRecord a;
    a.method = method.empty() ? "-" : std::string(method);
    a.target = std::string(target);
    a.status = status;
    a.client_ip = std::string(client_ip);
    a.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    a.bytes_out = bytes;
    try {
      core_.access_log(a);
    } catch (...) {
    }
  }

  // After our last response: TLS close_notify, or for plain TCP a half-close followed by a short
  // lingering read so that request bytes still in flight do not reset the connection.
  awaitable<void> Shutdown() {
    error_code ec;
    if constexpr (kTls) {
      if (!graceful_close_) co_return;
      Lowest().expires_after(kTlsShutdownTime);
      co_await stream_.async_shutdown(redirect_error(use_awaitable, ec));
    } else {
      if (!graceful_close_) co_return;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) co_return;
      Lowest().expires_after(kLingerTime);
      while (!ec) {
        buffer_.consume(buffer_.size());
        co_await stream_.async_read_some(buffer_.prepare(4096), redirect_error(use_awaitable, ec));
      }
    }
  }

  ServerCore& core_;
  Executor ex_;
  Stream stream_;
  uint64_t id_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request req_;
  std::string head_;         // serialized response header
  std::string cors_origin_;  // allowed Origin of the current request, "" for none
  Phase phase_ = Phase::kIdle;
  bool drain_ = false;
  bool graceful_close_ = false;  // we sent a final response: close politely
  std::shared_ptr<WsSession<Stream>> ws_;
};

// ------------------------------------------------------------------------------------------------
// Listener.

template <class Stream>
void ServerCore::StartSession(tcp::socket socket) {
  auto session = std::make_shared<HttpSession<Stream>>(*this, std::move(socket));
  session->SetId(Register(session));
  boost::asio::co_spawn(
      session->GetExecutor(), [session]() { return session->Run(); }, boost::asio::detached);
}

awaitable<void> ServerCore::Listen() {
  boost::asio::steady_timer backoff(acceptor_ex);
  for (;;) {
    error_code ec;
    tcp::socket socket(NewConnectionExecutor());
    co_await acceptor.async_accept(socket, redirect_error(use_awaitable, ec));
    if (draining || !acceptor.is_open()) co_return;
    if (ec) {
      if (ec == boost::asio::error::operation_aborted) co_return;
      log::Warn("accept failed", {{"error", ec.message()}});
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    try {
      if (tls) {
        StartSession<TlsStream>(std::move(socket));
      } else {
        StartSession<PlainStream>(std::move(socket));
      }
    } catch (const std::exception& e) {
      log::Error("cannot start session", {{"error", e.what()}});
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Server.

struct Server::Impl : ServerCore {
  using ServerCore::ServerCore;
};

Server::Server(ServerOptions opts, std::shared_ptr<Router> router)
    : impl_(std::make_unique<Impl>(std::move(opts), std::move(router))) {}

Server::~Server() = default;

namespace {

// "" when `path` can be opened for reading, else why not.
std::string Unreadable(const std::string& path) {
  std::ifstream f(path);
  if (f) return "";
  return std::strerror(errno);
}

}  // namespace

bool Server::Start(std::string* error) {
  std::string scratch;
  if (!error) error = &scratch;
  auto& o = impl_->opts;
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    *error = "TLS needs both a certificate file and a key file";
    return false;
  }
  if (!o.tls_cert_file.empty()) {
    if (auto why = Unreadable(o.tls_cert_file); !why.empty()) {
      *error = "cannot read TLS certificate file " + o.tls_cert_file + ": " + why;
      return false;
    }
    if (auto why = Unreadable(o.tls_key_file); !why.empty()) {
      *error = "cannot read TLS key file " + o.tls_key_file + ": " + why;
      return false;
    }
    auto& ctx = impl_->tls.emplace(ssl::context::tls_server);
    error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use,
                    ec);
    ctx.use_certificate_chain_file(o.tls_cert_file, ec);
    if (ec) {
      *error = "TLS certificate file " + o.tls_cert_file + ": " + ec.message();
      impl_->tls.reset();
      return false;
    }
    ctx.use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      *error = "TLS key file " + o.tls_key_file + ": " + ec.message();
      impl_->tls.reset();
      return false;
    }
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      *error =
          "TLS key file " + o.tls_key_file + " does not match certificate file " + o.tls_cert_file;
      impl_->tls.reset();
      return false;
    }
  }
  error_code ec;
  auto addr = boost::asio::ip::make_address(o.host, ec);
  if (ec) {
    *error = "invalid listen host '" + o.host + "'";
    return false;
  }
  tcp::endpoint ep(addr, o.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = o.host + ":" + std::to_string(o.port) + ": " + ec.message();
    error_code ignored;
    acc.close(ignored);
    return false;
  }
  impl_->port = acc.local_endpoint(ec).port();
  boost::asio::co_spawn(impl_->acceptor_ex, impl_->Listen(), boost::asio::detached);
  return true;
}

uint16_t Server::Port() const { return impl_->port; }

void Server::Run() {
  std::vector<std::thread> threads;
  for (int i = 1; i < impl_->opts.threads; ++i) {
    threads.emplace_back([this] { impl_->ioc.run(); });
  }
  impl_->ioc.run();
  for (auto& t : threads) t.join();
}

void Server::Stop() {
  boost::asio::post(impl_->acceptor_ex, [impl = impl_.get()] { impl->BeginDrain(); });
}

boost::asio::io_context& Server::Context() { return impl_->ioc; }

void Server::SetAccessLog(std::function<void(const AccessRecord&)> fn) {
  impl_->access_log = std::move(fn);
}

}  // namespace boing::http
