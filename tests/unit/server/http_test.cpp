// The HTTP core against a real server on 127.0.0.1:0, driven by raw sockets and Beast clients.
#include "boing/http.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <filesystem>
#include <thread>

namespace boing::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class HttpTest : public ::testing::Test {
 protected:
  void Start(ServerOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    auto router = std::make_shared<Router>();
    router->Add("GET", "/hello/:name", [](Request& r) -> asio::awaitable<Response> {
      co_return Response::Json(200, "{\"hi\":\"" + r.params["name"] + "\",\"q\":\"" +
                                        r.QueryParam("q").value_or("") + "\",\"ip\":\"" +
                                        r.client_ip + "\"}");
    });
    router->Add("POST", "/echo", [](Request& r) -> asio::awaitable<Response> {
      co_return Response::Json(200, r.body);
    });
    router->Add("GET", "/slow", [](Request&) -> asio::awaitable<Response> {
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_after(std::chrono::milliseconds(300));
      co_await t.async_wait(asio::use_awaitable);
      co_return Response::Json(200, "{\"slow\":true}");
    });
    router->Add("GET", "/chunks", [](Request&) -> asio::awaitable<Response> {
      Response r;
      r.content_type = "text/plain";
      auto n = std::make_shared<int>(0);
      r.chunk_source = [n]() -> std::optional<std::string> {
        if (*n == 5) return std::nullopt;
        return "part" + std::to_string((*n)++) + ";";
      };
      co_return r;
    });
    router->AddWebSocket(
        "/ws/echo",
        [](Request& r) -> std::optional<Response> {
          if (r.QueryParam("token") != "ok") return Response::Error(401, "bad token");
          return std::nullopt;
        },
        [](Request&, WsConnection& ws) -> asio::awaitable<void> {
          while (auto m = co_await ws.Read()) {
            if (!co_await ws.Write("echo:" + *m)) co_return;
          }
        });
    server_ = std::make_unique<Server>(o, router);
    std::string err;
    ASSERT_TRUE(server_->Start(&err)) << err;
    port_ = server_->Port();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (server_) {
      server_->Stop();
      thread_.join();
    }
  }
  // Sends raw bytes and reads until the peer closes or `timeout_ms` passes.
  std::string Raw(const std::string& bytes, int timeout_ms = 2000) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port_});
    asio::write(s, asio::buffer(bytes));
    s.shutdown(tcp::socket::shutdown_send);
    std::string out;
    char buf[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    s.non_blocking(true);
    while (std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }
  bhttp::response<bhttp::string_body> Do(
      bhttp::verb verb, const std::string& target, const std::string& body = "",
      std::vector<std::pair<std::string, std::string>> hdrs = {}) {
    asio::io_context io;
    beast::tcp_stream s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "localhost");
    for (auto& [k, v] : hdrs) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(s, req);
    beast::flat_buffer b;
    bhttp::response<bhttp::string_body> res;
    bhttp::response_parser<bhttp::string_body> p;
    p.body_limit(64 << 20);
    bhttp::read(s, b, p);
    return p.release();
  }
  static std::string Gzip(const std::string& in) {
    z_stream z{};
    deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, in.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
  }

  std::unique_ptr<Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TEST_F(HttpTest, RoutesParamsQueryAndErrors) {
  Start();
  auto r = Do(bhttp::verb::get, "/hello/w%20orld?q=a+b%21");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), R"({"hi":"w orld","q":"a b!","ip":"127.0.0.1"})");
  EXPECT_EQ(r[bhttp::field::server], "boing");
  auto nf = Do(bhttp::verb::get, "/nope");
  EXPECT_EQ(nf.result_int(), 404);
  EXPECT_EQ(nf.body(), R"({"error":"not found"})");
  auto na = Do(bhttp::verb::delete_, "/echo");
  EXPECT_EQ(na.result_int(), 405);
  EXPECT_EQ(na[bhttp::field::allow], "POST");
}

TEST_F(HttpTest, KeepAliveAndPipelining) {
  Start();
  std::string two =
      "GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
  std::string out = Raw(two);
  size_t first = out.find("HTTP/1.1 200");
  size_t second = out.find("HTTP/1.1 200", first + 1);
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_LT(out.find(R"("hi":"a")"), out.find("hello", second));
}

TEST_F(HttpTest, LimitsAnswerWithJsonErrors) {
  ServerOptions o;
  o.max_header_bytes = 2048;
  o.max_body_bytes = 1000;
  Start(o);
  std::string big_header =
      "GET /hello/a HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n";
  std::string out = Raw(big_header);
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos) << out.substr(0, 200);
  EXPECT_NE(out.find("request headers exceed 2048 bytes"), std::string::npos);
  auto r = Do(bhttp::verb::post, "/echo", std::string(5000, 'x'));
  EXPECT_EQ(r.result_int(), 413);
  EXPECT_NE(r.body().find("exceeds 1000 bytes"), std::string::npos);
  out = Raw("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
}

TEST_F(HttpTest, GzipBodiesAndBombs) {
  ServerOptions o;
  o.max_body_bytes = 100000;
  Start(o);
  std::string payload = R"({"a":")" + std::string(5000, 'z') + "\"}";
  auto r = Do(bhttp::verb::post, "/echo", Gzip(payload), {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), payload);
  auto bomb = Gzip(std::string(10 << 20, '\0'));
  ASSERT_LT(bomb.size(), 100000u);
  r = Do(bhttp::verb::post, "/echo", bomb, {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.result_int(), 413);
  r = Do(bhttp::verb::post, "/echo", "not gzip", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.result_int(), 400);
}

TEST_F(HttpTest, ReadTimeoutClosesSilentConnections) {
  ServerOptions o;
  o.read_timeout = std::chrono::seconds(1);
  Start(o);
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port_});
  asio::write(s, asio::buffer(std::string("GET /hello/a HTTP/1.1\r\n")));  // never finished
  auto t0 = std::chrono::steady_clock::now();
  char buf[256];
  boost::system::error_code ec;
  s.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec);  // closed by the server
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(HttpTest, TrustedProxyResolution) {
  ServerOptions o;
  o.trusted_proxies = {"127.0.0.1"};
  Start(o);
  auto r = Do(bhttp::verb::get, "/hello/a", "", {{"X-Forwarded-For", "203.0.113.7"}});
  EXPECT_NE(r.body().find(R"("ip":"203.0.113.7")"), std::string::npos) << r.body();
  TearDown();
  server_.reset();
  Start();  // 127.0.0.1 no longer trusted
  r = Do(bhttp::verb::get, "/hello/a", "", {{"X-Forwarded-For", "203.0.113.7"}});
  EXPECT_NE(r.body().find(R"("ip":"127.0.0.1")"), std::string::npos) << r.body();
}

TEST_F(HttpTest, Cors) {
  ServerOptions o;
  o.cors_origins = {"http://localhost:5173"};
  Start(o);
  auto pre = Do(bhttp::verb::options, "/echo", "",
                {{"Origin", "http://localhost:5173"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(pre.result_int(), 204);
  EXPECT_EQ(pre[bhttp::field::access_control_allow_origin], "http://localhost:5173");
  EXPECT_NE(pre[bhttp::field::access_control_allow_headers].find("Authorization"),
            std::string::npos);
  auto r = Do(bhttp::verb::get, "/hello/a", "", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(r[bhttp::field::access_control_allow_origin], "");
}

TEST_F(HttpTest, ChunkedStreamingAndSuspendingHandlers) {
  Start();
  auto r = Do(bhttp::verb::get, "/chunks");
  EXPECT_EQ(r.body(), "part0;part1;part2;part3;part4;");
  EXPECT_TRUE(r.chunked());
  auto t0 = std::chrono::steady_clock::now();
  auto s = Do(bhttp::verb::get, "/slow");
  EXPECT_EQ(s.body(), R"({"slow":true})");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(290));
}

TEST_F(HttpTest, WebSocketEchoAndAuthorizer) {
  Start();
  asio::io_context io;
  beast::websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port_});
  ws.handshake("localhost", "/ws/echo?token=ok");
  ws.write(asio::buffer(std::string("ping")));
  beast::flat_buffer b;
  ws.read(b);
  EXPECT_EQ(beast::buffers_to_string(b.data()), "echo:ping");
  ws.close(beast::websocket::close_code::normal);

  std::string refused =
      Raw("GET /ws/echo?token=no HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(refused.rfind("HTTP/1.1 401", 0), 0u) << refused;
  EXPECT_NE(refused.find(R"({"error":"bad token"})"), std::string::npos);
  // A WebSocket upgrade on a plain route is refused with a clear error.
  std::string wrong =
      Raw("GET /hello/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(wrong.rfind("HTTP/1.1 400", 0), 0u) << wrong;
}

// fuzz_ws_frames finding: a compressed frame declaring 2^62 bytes made Beast size the server's
// read buffer from that length; std::bad_alloc escaped the I/O thread and the server died (any
// client can open /ws/ingest). Now the read buffer is bounded by WS_MAX_MESSAGE_BYTES: that
// connection fails, the server stays up.
TEST_F(HttpTest, WebSocketCompressedFrameDeclaringAHugeLengthOnlyClosesItsConnection) {
  ServerOptions o;
  o.max_ws_message_bytes = 64 * 1024;
  Start(o);
  // Raw deflate (no zlib header), sync-flushed, without the 00 00 ff ff tail (RFC 7692).
  std::string text(200000, 'a');
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string deflated(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(text.data());
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(deflated.data());
  z.avail_out = static_cast<uInt>(deflated.size());
  ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  deflated.resize(z.total_out - 4);
  deflateEnd(&z);

  for (uint64_t declared : {uint64_t{1} << 62, uint64_t{3} << 30}) {
    asio::io_context io;
    beast::websocket::stream<tcp::socket> ws(io);
    beast::websocket::permessage_deflate pmd;
    pmd.client_enable = true;
    ws.set_option(pmd);
    ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port_});
    beast::websocket::response_type res;
    ws.handshake(res, "localhost", "/ws/echo?token=ok");
    ASSERT_NE(res[bhttp::field::sec_websocket_extensions].find("permessage-deflate"),
              beast::string_view::npos);
    // FIN + RSV1 (compressed) + text; masked with a zero key; 64-bit length.
    std::string frame = {'\xC1', '\xFF'};
    for (int i = 7; i >= 0; --i) frame += static_cast<char>((declared >> (8 * i)) & 0xFF);
    frame.append(4, '\0');
    frame += deflated;
    boost::system::error_code ec;
    asio::write(ws.next_layer(), asio::buffer(frame), ec);
    // The server fails this connection (a close frame, then EOF): read until it ends.
    char buf[4096];
    ws.next_layer().set_option(asio::socket_base::linger(true, 0));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ec && std::chrono::steady_clock::now() < deadline) {
      ws.next_layer().read_some(asio::buffer(buf), ec);
    }
    EXPECT_TRUE(ec) << "the connection stayed open";
    // The server is still up.
    auto r = Do(bhttp::verb::get, "/hello/alive");
    EXPECT_EQ(r.result_int(), 200);
  }
}

TEST_F(HttpTest, Tls) {
  auto dir = std::filesystem::temp_directory_path() / ("boing_tls_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string cert = (dir / "c.pem").string(), key = (dir / "k.pem").string();
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + key +
      " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ServerOptions o;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  Start(o);
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_verify_mode(asio::ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> s(io, ctx);
  beast::get_lowest_layer(s).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  s.handshake(asio::ssl::stream_base::client);
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/hello/tls", 11};
  req.set(bhttp::field::host, "localhost");
  bhttp::write(s, req);
  beast::flat_buffer b;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(s, b, res);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_NE(res.body().find("tls"), std::string::npos);
  std::filesystem::remove_all(dir);
  // Unreadable certificate: Start fails naming the file.
  ServerOptions broken;
  broken.port = 0;
  broken.tls_cert_file = "/nonexistent.pem";
  broken.tls_key_file = "/nonexistent.key";
  Server s2(broken, std::make_shared<Router>());
  std::string err;
  EXPECT_FALSE(s2.Start(&err));
  EXPECT_NE(err.find("/nonexistent.pem"), std::string::npos);
}

TEST_F(HttpTest, GracefulShutdownFinishesInFlightRequests) {
  Start();
  std::thread stopper([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server_->Stop();
  });
  auto r = Do(bhttp::verb::get, "/slow");  // in flight when Stop() is called
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), R"({"slow":true})");
  EXPECT_FALSE(r.keep_alive());
  stopper.join();
  thread_.join();  // Run() returned
  server_.reset();
}

}  // namespace
}  // namespace boing::http
