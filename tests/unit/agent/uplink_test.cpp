#include "boing/agent/uplink.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "boing/agent/metrics.h"

namespace boing::agent {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string Gunzip(const std::string& in) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

TEST(Backoff, DoublesWithJitterUpToTheCapAndResets) {
  Backoff b(100ms, 1000ms, 42);
  int64_t expected_max[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int64_t d : expected_max) {
    auto w = b.Next().count();
    EXPECT_GE(w, d / 2);
    EXPECT_LE(w, d);
  }
  b.Reset();
  EXPECT_LE(b.Next().count(), 100);
  // Jitter: two agents failing together do not retry in lockstep.
  Backoff x(1000ms, 1000ms, 1), y(1000ms, 1000ms, 2);
  bool differ = false;
  for (int i = 0; i < 10; ++i) differ = differ || x.Next() != y.Next();
  EXPECT_TRUE(differ);
}

TEST(BatchPolicy, SendsOnCountBytesOrAge) {
  BatchPolicy p{100, 4096, 500ms};
  EXPECT_FALSE(p.ShouldSend(0, 0, 10s));
  EXPECT_FALSE(p.ShouldSend(99, 100, 499ms));
  EXPECT_TRUE(p.ShouldSend(100, 100, 0ms));
  EXPECT_TRUE(p.ShouldSend(1, 4096, 0ms));
  EXPECT_TRUE(p.ShouldSend(1, 10, 500ms));
}

TEST(BatchBody, IsAJsonArrayInSeqOrderAndGzipRoundTrips) {
  std::vector<SpoolRecord> recs = {{1, R"({"a":1})"}, {2, R"({"a":2})"}, {3, R"({"a":3})"}};
  std::string body = BatchBody(recs);
  EXPECT_EQ(body, R"([{"a":1},{"a":2},{"a":3}])");
  std::string gz = Gzip(body);
  ASSERT_FALSE(gz.empty());
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(Gunzip(gz), body);
  EXPECT_EQ(BatchBody({}), "[]");
}

TEST(ClassifyBatchAnswer, AcksOnlyOnACompleteAnswer) {
  HttpResult ok{200,
                R"({"results":[{"index":0,"status":"accepted"},{"index":1,"status":"duplicate"},
                {"index":2,"status":"rejected","field":"status_code","error":"bad"}],
                "accepted":1,"duplicates":1,"rejected":1})",
                ""};
  BatchOutcome o = ClassifyBatchAnswer(ok, 3);
  EXPECT_EQ(o.kind, BatchOutcome::Kind::kAcked);
  EXPECT_EQ(o.accepted, 1u);
  EXPECT_EQ(o.duplicates, 1u);
  EXPECT_EQ(o.rejected, 1u);
  EXPECT_NE(o.detail.find("status_code"), std::string::npos);
  EXPECT_EQ(ClassifyBatchAnswer(ok, 4).kind, BatchOutcome::Kind::kRetry) << "count mismatch";
  EXPECT_EQ(ClassifyBatchAnswer({200, "garbage", ""}, 1).kind, BatchOutcome::Kind::kRetry);
  EXPECT_EQ(ClassifyBatchAnswer({0, "", "connection refused"}, 1).kind, BatchOutcome::Kind::kRetry);
  EXPECT_EQ(ClassifyBatchAnswer({503, "", ""}, 5).kind, BatchOutcome::Kind::kRetry);
  EXPECT_EQ(ClassifyBatchAnswer({401, "", ""}, 5).kind, BatchOutcome::Kind::kRetry);
  EXPECT_EQ(ClassifyBatchAnswer({429, "", ""}, 5).kind, BatchOutcome::Kind::kRetry);
  EXPECT_EQ(ClassifyBatchAnswer({400, "", ""}, 5).kind, BatchOutcome::Kind::kSplit);
  EXPECT_EQ(ClassifyBatchAnswer({413, "", ""}, 2).kind, BatchOutcome::Kind::kSplit);
  BatchOutcome poison = ClassifyBatchAnswer({400, "", ""}, 1);
  EXPECT_EQ(poison.kind, BatchOutcome::Kind::kPoison);
  EXPECT_EQ(poison.rejected, 1u);
}

TEST(RateWindow, RatesAreDeltasOverTheWindow) {
  RateWindow w;
  EXPECT_TRUE(w.Update({{"10.0.0.1", 0, 100, 0}, {"10.0.0.1", 77, 50, 0}}, 10.0).empty());
  auto r = w.Update({{"10.0.0.1", 0, 150, 0}, {"10.0.0.2", 0, 20, 0}, {"10.0.0.3", 0, 0, 0}}, 20.0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].ip, "10.0.0.1");
  EXPECT_DOUBLE_EQ(r[0].rps, 5.0);
  EXPECT_EQ(r[0].requests, 150u);
  EXPECT_EQ(r[1].ip, "10.0.0.2");
  EXPECT_DOUBLE_EQ(r[1].rps, 2.0);
  // An LRU eviction restarts a counter below its previous value: counted from zero.
  r = w.Update({{"10.0.0.1", 0, 30, 0}}, 30.0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_DOUBLE_EQ(r[0].rps, 3.0);
  EXPECT_TRUE(w.Update({{"10.0.0.1", 0, 30, 0}}, 40.0).empty()) << "idle IPs are not reported";
}

TEST(HeartbeatBody, CarriesVersionCountersAndRates) {
  Json j = Json::parse(HeartbeatBody("1.2.3", {{"captured", 7}, {"kernel_drop_ringbuf_full", 1}},
                                     {RateWindow::Rate{"192.0.2.1", 2.5, 10}}));
  EXPECT_EQ(j["version"], "1.2.3");
  EXPECT_EQ(j["counters"]["captured"], 7);
  EXPECT_EQ(j["counters"]["kernel_drop_ringbuf_full"], 1);
  ASSERT_EQ(j["rates"].size(), 1u);
  EXPECT_EQ(j["rates"][0]["ip"], "192.0.2.1");
  EXPECT_DOUBLE_EQ(j["rates"][0]["rps"].get<double>(), 2.5);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/boing-uplink-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

using CredentialsTest = TempDir;

TEST_F(CredentialsTest, SavedPrivatelyAndLoadedBack) {
  std::string state = dir_ + "/state", error;
  Credentials c{"http://127.0.0.1:1", "ag_1", "tok", std::string(32, '\x07')};
  Credentials back;
  EXPECT_FALSE(LoadCredentials(state, back, &error));
  EXPECT_TRUE(error.empty()) << "absent is not an error: " << error;
  ASSERT_TRUE(SaveCredentials(state, c, &error)) << error;
  struct stat st {};
  ASSERT_EQ(stat((state + "/agent.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(LoadCredentials(state, back, &error)) << error;
  EXPECT_EQ(back.agent_id, "ag_1");
  EXPECT_EQ(back.agent_token, "tok");
  EXPECT_EQ(back.identity_key, c.identity_key);
  FILE* f = fopen((state + "/agent.json").c_str(), "w");
  fputs("{\"agent_id\":\"x\"}", f);
  fclose(f);
  EXPECT_FALSE(LoadCredentials(state, back, &error));
  EXPECT_NE(error.find("not a valid agent state file"), std::string::npos);
}

// A fake ingest server (no real boing-server in a unit test; tests/integration uses the real one):
// answers the first `failures` batch requests with 503, then accepts every item, recording the
// seqs it received.
class FakeIngestServer {
 public:
  explicit FakeIngestServer(int failures) : failures_(failures) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 8);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeIngestServer() {
    stop_ = true;
    thread_.join();
    for (std::thread& t : connections_) t.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Every seq received, sorted.
  std::vector<int64_t> seqs() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<int64_t> all;
    for (const auto& b : batches_) all.insert(all.end(), b.begin(), b.end());
    std::sort(all.begin(), all.end());
    return all;
  }
  std::vector<std::vector<int64_t>> batches() {
    std::lock_guard<std::mutex> l(mu_);
    return batches_;
  }
  int max_concurrent() const { return max_concurrent_; }
  int requests() const { return requests_; }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      connections_.emplace_back([this, c] {
        Serve(c);
        close(c);
      });
    }
  }
  void Serve(int c) {
    std::string buf;
    char tmp[65536];
    for (;;) {
      size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        pollfd p{c, POLLIN, 0};
        if (stop_ || poll(&p, 1, 100) < 0) return;
        if (!(p.revents & POLLIN)) continue;
        ssize_t n = recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      std::string head = buf.substr(0, head_end);
      size_t cl_pos = head.find("Content-Length: ");
      size_t cl = cl_pos == std::string::npos ? 0 : std::stoul(head.substr(cl_pos + 16));
      while (buf.size() < head_end + 4 + cl) {
        ssize_t n = recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      std::string body = buf.substr(head_end + 4, cl);
      buf.erase(0, head_end + 4 + cl);
      ++requests_;
      std::string status = "200 OK", answer = "{\"ok\":true}";
      if (head.rfind("POST /api/ingest/batch", 0) == 0) {
        bool authed = head.find("Authorization: Bearer tok") != std::string::npos &&
                      head.find("Content-Encoding: gzip") != std::string::npos;
        if (!authed) {
          status = "401 Unauthorized";
        } else if (failures_ > 0) {
          --failures_;
          status = "503 Service Unavailable";
        } else {
          int now = ++concurrent_;
          for (int m = max_concurrent_;
               now > m && !max_concurrent_.compare_exchange_weak(m, now);) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a commit takes time
          --concurrent_;
          Json items = Json::parse(Gunzip(body));
          Json results = Json::array();
          std::vector<int64_t> batch;
          for (size_t i = 0; i < items.size(); ++i) {
            batch.push_back(items[i]["seq"].get<int64_t>());
            results.push_back({{"index", i}, {"status", "accepted"}});
          }
          std::lock_guard<std::mutex> l(mu_);
          batches_.push_back(std::move(batch));
          answer = Json{{"results", results}}.dump();
        }
      }
      std::string resp = "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\n" +
                         "Content-Length: " + std::to_string(answer.size()) + "\r\n\r\n" + answer;
      send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    }
  }

  int fd_;
  uint16_t port_ = 0;
  std::atomic<int> failures_;
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> concurrent_{0};
  std::atomic<int> max_concurrent_{0};
  std::mutex mu_;
  std::vector<std::vector<int64_t>> batches_;
  std::thread thread_;
  std::vector<std::thread> connections_;
};

class UplinkWithFakeServerTest : public TempDir {
 protected:
  std::unique_ptr<Spool> OpenSpool() {
    SpoolOptions so;
    so.dir = dir_ + "/spool";
    std::string error;
    auto s = Spool::Open(so, &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }
  static void Append(Spool& s, int n) {
    for (int i = 0; i < n; ++i) {
      uint64_t seq = s.NextSeq();
      std::string error;
      ASSERT_TRUE(s.Append(seq, "{\"seq\":" + std::to_string(seq) + "}", &error)) << error;
    }
  }
  static bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }
};

TEST_F(UplinkWithFakeServerTest, RetriesWithBackoffAndDeliversEverythingInOrderOnce) {
  FakeIngestServer server(2);
  auto spool = OpenSpool();
  AgentMetrics metrics;
  UplinkOptions o;
  o.server = server.url();
  o.batch = BatchPolicy{100, 1 << 20, 50ms};
  o.backoff_initial = 20ms;
  o.backoff_max = 100ms;
  Uplink up(o, Credentials{o.server, "ag", "tok", std::string(32, 'k')}, spool.get(), &metrics);
  up.Start();
  Append(*spool, 250);
  up.Notify();
  ASSERT_TRUE(WaitFor([&] { return spool->stats().pending == 0; }, 10s));
  up.Stop(0ms);
  std::vector<int64_t> expected;
  for (int64_t i = 1; i <= 250; ++i) expected.push_back(i);
  EXPECT_EQ(server.seqs(), expected) << "every event once";
  for (const auto& b : server.batches()) {
    EXPECT_LE(b.size(), 100u);
    for (size_t i = 1; i < b.size(); ++i) EXPECT_EQ(b[i], b[i - 1] + 1) << "a batch is in order";
  }
  EXPECT_EQ(metrics.uplink_errors.load(), 2u);
  EXPECT_EQ(metrics.sent.load(), 250u);
  EXPECT_EQ(spool->stats().acked_seq, 250u);
}

TEST_F(UplinkWithFakeServerTest, SeveralBatchesInFlightAndTheSpoolAckedInOrder) {
  FakeIngestServer server(0);
  auto spool = OpenSpool();
  AgentMetrics metrics;
  UplinkOptions o;
  o.server = server.url();
  o.batch = BatchPolicy{10, 1 << 20, 10ms};
  o.max_in_flight = 4;
  Uplink up(o, Credentials{o.server, "ag", "tok", std::string(32, 'k')}, spool.get(), &metrics);
  Append(*spool, 400);
  up.Start();
  up.Notify();
  ASSERT_TRUE(WaitFor([&] { return spool->stats().pending == 0; }, 10s));
  up.Stop(0ms);
  EXPECT_EQ(server.seqs().size(), 400u);
  EXPECT_EQ(server.batches().size(), 40u);
  EXPECT_GE(server.max_concurrent(), 2) << "batches were sent one at a time";
  EXPECT_EQ(spool->stats().acked_seq, 400u);
}

TEST_F(UplinkWithFakeServerTest, OneInFlightKeepsBatchesSequential) {
  FakeIngestServer server(0);
  auto spool = OpenSpool();
  AgentMetrics metrics;
  UplinkOptions o;
  o.server = server.url();
  o.batch = BatchPolicy{10, 1 << 20, 10ms};
  o.max_in_flight = 1;
  Uplink up(o, Credentials{o.server, "ag", "tok", std::string(32, 'k')}, spool.get(), &metrics);
  Append(*spool, 100);
  up.Start();
  up.Notify();
  ASSERT_TRUE(WaitFor([&] { return spool->stats().pending == 0; }, 10s));
  up.Stop(0ms);
  EXPECT_EQ(server.max_concurrent(), 1);
  auto batches = server.batches();
  ASSERT_EQ(batches.size(), 10u);
  for (size_t i = 1; i < batches.size(); ++i)
    EXPECT_EQ(batches[i].front(), batches[i - 1].back() + 1);
}

TEST_F(UplinkWithFakeServerTest, APartialBatchWaitsForTheInterval) {
  FakeIngestServer server(0);
  auto spool = OpenSpool();
  AgentMetrics metrics;
  UplinkOptions o;
  o.server = server.url();
  o.batch = BatchPolicy{100, 1 << 20, 400ms};
  Uplink up(o, Credentials{o.server, "ag", "tok", std::string(32, 'k')}, spool.get(), &metrics);
  up.Start();
  auto t0 = std::chrono::steady_clock::now();
  Append(*spool, 3);
  up.Notify();
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(server.seqs().empty()) << "3 events of 100 are sent only after the interval";
  ASSERT_TRUE(WaitFor([&] { return server.seqs().size() == 3; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);
  ASSERT_EQ(server.batches().size(), 1u);
  EXPECT_EQ(server.batches()[0].size(), 3u);
  up.Stop(0ms);
}

TEST_F(UplinkWithFakeServerTest, EventsStayInTheSpoolWhileTheServerIsDown) {
  auto spool = OpenSpool();
  AgentMetrics metrics;
  UplinkOptions o;
  o.server = "http://127.0.0.1:1";  // nothing listens there
  o.batch = BatchPolicy{10, 1 << 20, 10ms};
  o.backoff_initial = 10ms;
  o.backoff_max = 20ms;
  Uplink up(o, Credentials{o.server, "ag", "tok", std::string(32, 'k')}, spool.get(), &metrics);
  up.Start();
  Append(*spool, 20);
  up.Notify();
  ASSERT_TRUE(WaitFor([&] { return metrics.uplink_errors.load() >= 3; }, 5s));
  up.Stop(0ms);
  EXPECT_EQ(spool->stats().pending, 20u);
  EXPECT_EQ(metrics.sent.load(), 0u);
}

TEST(Metrics, PrometheusTextHasTheAdvertisedSeries) {
  AgentMetrics m;
  m.captured = 5;
  m.sent = 4;
  m.SetSpool(1234, 1, 2, 3, 4096);
  m.SetKernelCounters({{"events", 9}, {"drop_ringbuf_full", 3}});
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("boing_agent_events_captured_total 5\n"), std::string::npos);
  EXPECT_NE(text.find("boing_agent_events_sent_total 4\n"), std::string::npos);
  EXPECT_NE(text.find("boing_agent_spool_bytes 1234\n"), std::string::npos);
  EXPECT_NE(text.find("boing_agent_events_dropped_total{cause=\"spool_full\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("boing_agent_spool_disk_full_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("boing_agent_spool_limit_bytes 4096\n"), std::string::npos);
  EXPECT_NE(text.find("boing_agent_kernel_drops_total{cause=\"ringbuf_full\"} 3\n"),
            std::string::npos);
  std::string error;
  EXPECT_EQ(MetricsServer::Start("0.0.0.0:0", &m, &error), nullptr);
  EXPECT_NE(error.find("loopback"), std::string::npos);
  auto server = MetricsServer::Start("127.0.0.1:0", &m, &error);
  ASSERT_NE(server, nullptr) << error;
  EXPECT_GT(server->port(), 0);
}

}  // namespace
}  // namespace boing::agent
