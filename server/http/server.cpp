// Listener, HTTP sessions and WebSocket sessions on Beast with Asio C++20 coroutines. Each
// connection lives on its own strand; a registry of live sessions lets Stop() close idle
// keep-alive connections while requests in flight finish (graceful drain).
#include <zlib.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "boing/http.h"
#include "boing/log.h"

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
using Clock = std::chrono::steady_clock;

// Inflates a gzip body, refusing output beyond `limit`. 0 = ok, 413 = too large, 400 = corrupt.
int Gunzip(const std::string& in, size_t limit, std::string& out) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return 400;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  out.clear();
  char buf[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return 400;
    }
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > limit) {
      inflateEnd(&z);
      return 413;
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return 400;  // truncated stream
    }
  }
  inflateEnd(&z);
  return 0;
}

bool OriginAllowed(const std::vector<std::string>& origins, std::string_view origin) {
  for (const auto& o : origins) {
    if (o == "*" || o == origin) return true;
  }
  return false;
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  std::shared_ptr<Router> router;
  boost::asio::io_context ioc;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::atomic<bool> draining{false};
  std::function<void(const AccessRecord&)> access_log;
  boost::asio::steady_timer drain_timer{ioc};

  // Live sessions: id -> closer (runs on the session's strand).
  struct Live {
    std::function<void()> close_if_idle;
  };
  std::mutex mu;
  std::unordered_map<uint64_t, Live> sessions;
  uint64_t next_id = 0;

  Impl(ServerOptions o, std::shared_ptr<Router> r)
      : opts(std::move(o)), router(std::move(r)), ioc(std::max(1, opts.threads)) {}

  uint64_t Register(std::function<void()> closer) {
    std::lock_guard lock(mu);
    uint64_t id = ++next_id;
    sessions[id] = {std::move(closer)};
    return id;
  }
  void Unregister(uint64_t id) {
    bool last = false;
    {
      std::lock_guard lock(mu);
      sessions.erase(id);
      last = sessions.empty();
    }
    if (last && draining) ioc.stop();
  }

  awaitable<void> Listen() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket(boost::asio::make_strand(ioc));
      co_await acceptor.async_accept(socket, redirect_error(use_awaitable, ec));
      if (ec) {
        if (draining || ec == boost::asio::error::operation_aborted) co_return;
        log::Warn("accept failed", {{"error", ec.message()}});
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto ex = socket.get_executor();
      if (tls) {
        boost::asio::co_spawn(ex, TlsSession(std::move(socket)), boost::asio::detached);
      } else {
        boost::asio::co_spawn(ex, Session(beast::tcp_stream(std::move(socket)), false),
                              boost::asio::detached);
      }
    }
  }

  awaitable<void> TlsSession(tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
    beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
    boost::system::error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server, redirect_error(use_awaitable, ec));
    if (ec) co_return;
    co_await Session(std::move(stream), true);
  }

  template <class Stream>
  awaitable<void> Session(Stream stream, bool is_tls) {
    auto& lowest = beast::get_lowest_layer(stream);
    std::string peer;
    {
      boost::system::error_code ec;
      auto ep = lowest.socket().remote_endpoint(ec);
      if (!ec) {
        auto addr = ep.address();
        if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
          addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
        }
        peer = addr.to_string();
      }
    }
    // `busy` is only touched on this session's strand.
    auto busy = std::make_shared<bool>(false);
    auto closed = std::make_shared<bool>(false);
    auto ex = lowest.get_executor();
    uint64_t id = Register([ex, busy, closed, &lowest] {
      boost::asio::post(ex, [busy, closed, &lowest] {
        if (!*busy && !*closed) lowest.cancel();
      });
    });
    beast::flat_buffer buffer;
    size_t served = 0;
    bool upgraded = false;
    for (;;) {
      if (draining) break;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
      parser.body_limit(opts.max_body_bytes);
      lowest.expires_after(served == 0 ? opts.read_timeout : opts.idle_timeout);
      boost::system::error_code ec;
      co_await bhttp::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (!ec) {
        *busy = true;
        lowest.expires_after(opts.read_timeout);
        if (!parser.is_done()) {
          co_await bhttp::async_read(stream, buffer, parser, redirect_error(use_awaitable, ec));
        }
      }
      auto start = Clock::now();
      if (ec) {
        int status = 0;
        std::string msg;
        if (ec == bhttp::error::header_limit) {
          status = 431;
          msg = "request headers exceed " + std::to_string(opts.max_header_bytes) + " bytes";
        } else if (ec == bhttp::error::body_limit) {
          status = 413;
          msg = "request body exceeds " + std::to_string(opts.max_body_bytes) + " bytes";
        } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                   ec != boost::asio::error::operation_aborted &&
                   ec != boost::asio::error::connection_reset && ec != boost::asio::error::eof &&
                   ec != ssl::error::stream_truncated && buffer.size() + parser.got_some() > 0) {
          status = 400;
          msg = "malformed HTTP request";
        }
        if (status) {
          Response r = Response::Error(status, msg);
          WriteMeta meta;
          meta.client_ip = peer;
          meta.start = start;
          co_await WriteResponse(stream, r, std::move(meta));
        }
        break;
      }
      auto& req = parser.get();
      ++served;
      bool keep =
          req.keep_alive() && !draining &&
          (opts.max_requests_per_connection == 0 || served < opts.max_requests_per_connection);
      Request r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      size_t q = r.target.find('?');
      r.path = PercentDecode(std::string_view(r.target).substr(0, q), false);
      if (q != std::string::npos) r.query = r.target.substr(q + 1);
      r.headers.reserve(16);
      for (const auto& f : req)
        r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      r.peer_ip = peer;
      r.client_ip = ResolveClientIp(peer, r.Header("X-Forwarded-For"), r.Header("Forwarded"),
                                    opts.trusted_proxies);
      r.tls = is_tls;
      std::string origin(r.Header("Origin"));
      bool cors =
          !origin.empty() && !opts.cors_origins.empty() && OriginAllowed(opts.cors_origins, origin);

      Response resp;
      bool is_ws = websocket::is_upgrade(req);
      std::map<std::string, std::string> params;
      auto m = router->Find(r.method, r.path, is_ws, params);
      r.params = std::move(params);
      if (cors && r.method == "OPTIONS" && !r.Header("Access-Control-Request-Method").empty()) {
        resp.status = 204;
        resp.headers.emplace_back("Access-Control-Allow-Methods",
                                  "GET, POST, PUT, DELETE, OPTIONS");
        resp.headers.emplace_back("Access-Control-Allow-Headers",
                                  "Authorization, Content-Type, Content-Encoding, X-Api-Key");
        resp.headers.emplace_back("Access-Control-Max-Age", "600");
      } else if (is_ws && m.ws_handler) {
        if (auto refuse = (*m.ws_authorize) ? (*m.ws_authorize)(r) : std::nullopt) {
          resp = std::move(*refuse);
          keep = false;
        } else {
          upgraded = true;
          *busy = true;
          co_await RunWebSocket(std::move(stream), req, r, *m.ws_handler);
          break;
        }
      } else if (is_ws) {
        resp = Response::Error(400, "no WebSocket endpoint at this path");
        keep = false;
      } else if (m.handler) {
        std::string_view enc = r.Header("Content-Encoding");
        int gz = 0;
        if (enc == "gzip" || enc == "x-gzip") {
          gz = Gunzip(req.body(), opts.max_body_bytes, r.body);
        } else if (!enc.empty() && enc != "identity") {
          gz = 415;
        } else {
          r.body = std::move(req.body());
        }
        if (gz == 413) {
          resp =
              Response::Error(413, "request body exceeds " + std::to_string(opts.max_body_bytes) +
                                       " bytes after decompression");
        } else if (gz == 400) {
          resp = Response::Error(400, "request body is not valid gzip");
        } else if (gz == 415) {
          resp = Response::Error(415, "unsupported Content-Encoding (use gzip or identity)");
        } else {
          try {
            resp = co_await (*m.handler)(r);
          } catch (const std::exception& e) {
            log::Error("handler threw", {{"path", r.path}, {"error", e.what()}});
            resp = Response::Error(500, "internal error");
          }
        }
      } else if (m.path_known) {
        resp = Response::Error(405, "method not allowed");
        resp.headers.emplace_back("Allow", router->AllowedMethods(r.path));
      } else if (router->Fallback() && (r.method == "GET" || r.method == "HEAD")) {
        try {
          resp = co_await (*router->Fallback())(r);
        } catch (const std::exception& e) {
          resp = Response::Error(500, "internal error");
        }
      } else {
        resp = Response::Error(404, "not found");
      }
      if (draining) keep = false;
      WriteMeta meta;
      meta.version = req.version();
      meta.keep = keep;
      meta.head = r.method == "HEAD";
      if (cors) meta.cors_origin = origin;
      meta.client_ip = r.client_ip;
      meta.start = start;
      meta.method = r.method;
      meta.target = r.target;
      bool ok = co_await WriteResponse(stream, resp, std::move(meta));
      *busy = false;
      if (!ok || !keep) break;
    }
    *closed = true;
    if (!upgraded) {
      boost::system::error_code ec;
      if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      } else {
        lowest.expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(redirect_error(use_awaitable, ec));
      }
    }
    Unregister(id);
  }

  // Passed by value: GCC 12 mishandles temporaries bound to reference parameters of coroutines.
  struct WriteMeta {
    unsigned version = 11;
    bool keep = false;
    bool head = false;
    std::string cors_origin;
    std::string client_ip;
    Clock::time_point start;
    std::string method;
    std::string target;
  };

  template <class Stream>
  awaitable<bool> WriteResponse(Stream& stream, Response& resp, WriteMeta m) {
    const unsigned version = m.version;
    const bool keep = m.keep, head = m.head;
    const std::string& cors_origin = m.cors_origin;
    boost::system::error_code ec;
    size_t bytes = 0;
    auto apply = [&](auto& res) {
      res.set(bhttp::field::server, "boing");
      if (resp.status != 204) res.set(bhttp::field::content_type, resp.content_type);
      for (const auto& [k, v] : resp.headers) res.set(k, v);
      if (!cors_origin.empty()) {
        res.set(bhttp::field::access_control_allow_origin, cors_origin);
        res.set(bhttp::field::vary, "Origin");
        res.set(bhttp::field::access_control_allow_credentials, "true");
      }
      res.keep_alive(keep);
    };
    beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
    if (resp.chunk_source && !head) {
      bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(resp.status), version};
      apply(res);
      res.chunked(true);
      bhttp::response_serializer<bhttp::empty_body> sr{res};
      co_await bhttp::async_write_header(stream, sr, redirect_error(use_awaitable, ec));
      while (!ec) {
        std::optional<std::string> chunk;
        try {
          chunk = resp.chunk_source();
        } catch (const std::exception& e) {
          log::Error("chunk source threw", {{"error", e.what()}});
          ec = boost::asio::error::operation_aborted;
          break;
        }
        if (!chunk) break;
        if (chunk->empty()) continue;
        bytes += chunk->size();
        beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
        co_await boost::asio::async_write(stream, bhttp::make_chunk(boost::asio::buffer(*chunk)),
                                          redirect_error(use_awaitable, ec));
      }
      if (!ec) {
        co_await boost::asio::async_write(stream, bhttp::make_chunk_last(),
                                          redirect_error(use_awaitable, ec));
      }
    } else {
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(resp.status), version};
      apply(res);
      if (resp.status == 204 || resp.status == 304) {
        resp.body.clear();
      }
      res.body() = std::move(resp.body);
      res.prepare_payload();
      if (head) {
        res.body().clear();
      }
      bytes = res.body().size();
      bhttp::response_serializer<bhttp::string_body> sr{res};
      if (head) sr.split(true);
      if (head) {
        co_await bhttp::async_write_header(stream, sr, redirect_error(use_awaitable, ec));
      } else {
        co_await bhttp::async_write(stream, sr, redirect_error(use_awaitable, ec));
      }
    }
    if (access_log) {
      AccessRecord a;
      a.method = m.method.empty() ? "-" : m.method;
      a.target = m.target;
      a.status = resp.status;
      a.client_ip = m.client_ip;
      a.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - m.start).count();
      a.bytes_out = bytes;
      access_log(a);
    }
    co_return !ec;
  }

  template <class Stream>
  class WsConn : public WsConnection {
   public:
    explicit WsConn(websocket::stream<Stream>& ws) : ws_(ws) {}
    awaitable<std::optional<std::string>> Read() override {
      beast::flat_buffer buf;
      boost::system::error_code ec;
      co_await ws_.async_read(buf, redirect_error(use_awaitable, ec));
      if (ec) co_return std::nullopt;
      co_return beast::buffers_to_string(buf.data());
    }
    awaitable<bool> Write(std::string message) override {
      boost::system::error_code ec;
      ws_.text(true);
      co_await ws_.async_write(boost::asio::buffer(message), redirect_error(use_awaitable, ec));
      co_return !ec;
    }
    awaitable<void> Close(uint16_t code, std::string reason) override {
      boost::system::error_code ec;
      co_await ws_.async_close(
          websocket::close_reason(static_cast<websocket::close_code>(code), reason),
          redirect_error(use_awaitable, ec));
    }

   private:
    websocket::stream<Stream>& ws_;
  };

  template <class Stream>
  awaitable<void> RunWebSocket(Stream stream, bhttp::request<bhttp::string_body>& req, Request& r,
                               const WsHandler& handler) {
    beast::get_lowest_layer(stream).expires_never();
    websocket::stream<Stream> ws(std::move(stream));
    ws.set_option(websocket::stream_base::timeout{opts.read_timeout, opts.idle_timeout, true});
    ws.read_message_max(opts.max_ws_message_bytes);
    websocket::permessage_deflate pmd;
    pmd.server_enable = true;
    ws.set_option(pmd);
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(bhttp::field::server, "boing"); }));
    boost::system::error_code ec;
    co_await ws.async_accept(req, redirect_error(use_awaitable, ec));
    if (ec) co_return;
    WsConn<Stream> conn(ws);
    try {
      co_await handler(r, conn);
    } catch (const std::exception& e) {
      log::Error("websocket handler threw", {{"path", r.path}, {"error", e.what()}});
    }
    if (ws.is_open()) {
      co_await ws.async_close(websocket::close_code::going_away, redirect_error(use_awaitable, ec));
    }
  }
};

Server::Server(ServerOptions opts, std::shared_ptr<Router> router)
    : impl_(std::make_unique<Impl>(std::move(opts), std::move(router))) {}

Server::~Server() = default;

bool Server::Start(std::string* error) {
  auto& o = impl_->opts;
  if (!o.tls_cert_file.empty()) {
    impl_->tls.emplace(ssl::context::tls_server);
    boost::system::error_code ec;
    impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
    impl_->tls->use_certificate_chain_file(o.tls_cert_file, ec);
    if (ec) {
      *error = "TLS_CERT_FILE " + o.tls_cert_file + ": " + ec.message();
      return false;
    }
    impl_->tls->use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      *error = "TLS_KEY_FILE " + o.tls_key_file + ": " + ec.message();
      return false;
    }
  }
  boost::system::error_code ec;
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
    return false;
  }
  impl_->port = acc.local_endpoint().port();
  boost::asio::co_spawn(impl_->ioc, impl_->Listen(), boost::asio::detached);
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
  boost::asio::post(impl_->ioc, [impl = impl_.get()] {
    if (impl->draining.exchange(true)) return;
    boost::system::error_code ec;
    impl->acceptor.close(ec);
    std::vector<std::function<void()>> closers;
    {
      std::lock_guard lock(impl->mu);
      for (auto& [id, live] : impl->sessions) closers.push_back(live.close_if_idle);
      if (impl->sessions.empty()) {
        impl->ioc.stop();
        return;
      }
    }
    for (auto& c : closers) c();
    impl->drain_timer.expires_after(impl->opts.drain_timeout);
    impl->drain_timer.async_wait([impl](const boost::system::error_code& e) {
      if (!e) {
        log::Warn("drain timeout: closing remaining connections");
        impl->ioc.stop();
      }
    });
  });
}

boost::asio::io_context& Server::Context() { return impl_->ioc; }

void Server::SetAccessLog(std::function<void(const AccessRecord&)> fn) {
  impl_->access_log = std::move(fn);
}

}  // namespace boing::http
