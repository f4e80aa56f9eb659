#include "boing/agent/options.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace boing::agent {
namespace {

class OptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/boing-options-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/agent.yaml";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::string& text) { std::ofstream(path_) << text; }
  // The error of loading `text`, "" when it loads.
  std::string ErrorOf(const std::string& text) {
    Write(text);
    AgentOptions o;
    std::string error;
    return LoadAgentConfig(path_, o, &error) ? "" : error;
  }
  std::optional<AgentOptions> Parse(std::vector<std::string> args, std::string* error) {
    args.insert(args.begin(), "boing-agent");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return ParseAgentOptions(static_cast<int>(argv.size()), argv.data(), error);
  }

  std::string dir_, path_;
};

constexpr const char* kFull = R"(# every section
server:
  url: https://boing.example:8443
  enroll_token: et_123
  ca_file: /etc/boing/ca.pem
  timeout_ms: 5000
state_dir: /var/lib/boing-test
scope:
  ports: [80, 443]
  exclude_pids: [1]
trusted_proxies: [10.0.0.0/8, "::1"]
headers:
  allowlist: [Host, User-Agent, Authorization]
capture:
  max_payload: 2048
  payload_excerpt: 512
  ringbuf_bytes: 16MiB
  tls: false
  rate_counters: no
uplink:
  batch_size: 50
  batch_bytes: 512KiB
  batch_interval_ms: 250
  max_in_flight: 2
  heartbeat_interval_s: 5
  backoff_initial_ms: 100
  backoff_max_ms: 2000
spool:
  dir: /var/spool/boing
  max_bytes: 64MiB
  segment_bytes: 1MiB
  fsync: always
metrics:
  listen: 127.0.0.1:9464
)";

TEST_F(OptionsTest, FullFileLoadsEveryField) {
  Write(kFull);
  AgentOptions o;
  std::string error;
  ASSERT_TRUE(LoadAgentConfig(path_, o, &error)) << error;
  EXPECT_EQ(o.server, "https://boing.example:8443");
  EXPECT_EQ(o.enroll_token, "et_123");
  EXPECT_EQ(o.ca_file, "/etc/boing/ca.pem");
  EXPECT_EQ(o.http_timeout_ms, 5000);
  EXPECT_EQ(o.state_dir, "/var/lib/boing-test");
  EXPECT_EQ(o.sensor.ports, (std::vector<uint16_t>{80, 443}));
  EXPECT_FALSE(o.sensor.exclude_ports);
  EXPECT_EQ(o.sensor.pids, (std::vector<uint32_t>{1}));
  EXPECT_TRUE(o.sensor.exclude_pids);
  EXPECT_EQ(o.trusted_proxies, (std::vector<std::string>{"10.0.0.0/8", "::1"}));
  EXPECT_EQ(o.header_allowlist, (std::vector<std::string>{"host", "user-agent", "authorization"}));
  EXPECT_EQ(o.sensor.max_payload, 2048u);
  EXPECT_EQ(o.payload_excerpt, 512u);
  EXPECT_EQ(o.sensor.ringbuf_bytes, 16u << 20);
  EXPECT_FALSE(o.tls);
  EXPECT_FALSE(o.sensor.rate_counters);
  EXPECT_EQ(o.batch_size, 50u);
  EXPECT_EQ(o.batch_bytes, 512u << 10);
  EXPECT_EQ(o.batch_interval_ms, 250);
  EXPECT_EQ(o.max_in_flight, 2u);
  EXPECT_EQ(o.heartbeat_interval_s, 5);
  EXPECT_EQ(o.backoff_initial_ms, 100);
  EXPECT_EQ(o.backoff_max_ms, 2000);
  EXPECT_EQ(o.spool.dir, "/var/spool/boing");
  EXPECT_EQ(o.spool.max_bytes, 64u << 20);
  EXPECT_EQ(o.spool.segment_bytes, 1u << 20);
  EXPECT_EQ(o.spool.fsync, FsyncPolicy::kAlways);
  EXPECT_EQ(o.metrics_listen, "127.0.0.1:9464");
}

TEST_F(OptionsTest, TheExampleFileShippedWithTheAgentLoads) {
  AgentOptions o;
  std::string error;
  std::string example = std::string(BOING_SOURCE_DIR) + "/agent/agent.example.yaml";
  ASSERT_TRUE(LoadAgentConfig(example, o, &error)) << error;
  EXPECT_FALSE(o.server.empty());
}

TEST_F(OptionsTest, ErrorsNameFileLineAndField) {
  EXPECT_EQ(ErrorOf("uplink:\n  batch_size: 50\n  batch_interval_ms: soon\n"),
            path_ + ":3: uplink.batch_interval_ms: must be an integer in 1..3600000, got soon");
  EXPECT_EQ(ErrorOf("server:\n  url: http://x\nuplink:\n  batch_sise: 5\n"),
            path_ +
                ":4: uplink.batch_sise: unknown field (expected one of: batch_size, batch_bytes, "
                "batch_interval_ms, max_in_flight, heartbeat_interval_s, backoff_initial_ms, "
                "backoff_max_ms)");
  EXPECT_EQ(ErrorOf("uplink:\n  batch_size: 5\nspool:\n  fsync: never\nuplink:\n  batch_size: 7\n"),
            path_ + ":5: uplink: given twice");
  EXPECT_EQ(ErrorOf("uplink:\n  batch_size: 5\n  batch_size: 7\n"),
            path_ + ":3: uplink.batch_size: given twice");
  EXPECT_EQ(ErrorOf("spool:\n  fsync: sometimes\n"),
            path_ + ":2: spool.fsync: must be batch, always or never, got sometimes");
  EXPECT_EQ(ErrorOf("trusted_proxies:\n  - 10.0.0.0/8\n  - not-an-ip\n"),
            path_ + ":3: trusted_proxies: not an address or CIDR: not-an-ip");
  EXPECT_EQ(ErrorOf("server:\n  url: ftp://x\n"),
            path_ + ":2: server.url: must start with http:// or https://, got ftp://x");
  EXPECT_EQ(ErrorOf("scope:\n  ports: [80]\n  exclude_ports: [81]\n"),
            path_ + ":3: scope.exclude_ports: ports and exclude_ports cannot be mixed");
  EXPECT_EQ(ErrorOf("scope:\n  ports:\n    - 80\n    - 70000\n"),
            path_ + ":4: scope.ports: not a port: 70000");
  EXPECT_EQ(ErrorOf("capture:\n  ringbuf_bytes: 3000\n"),
            path_ + ":2: capture.ringbuf_bytes: must be a power of two up to 1 GiB");
  EXPECT_EQ(ErrorOf("capture:\n  tls: maybe\n"),
            path_ + ":2: capture.tls: must be true or false, got maybe");
  EXPECT_EQ(ErrorOf("colour: blue\n").substr(0, path_.size() + 11), path_ + ":1: colour:");
  EXPECT_EQ(ErrorOf("scope:\n# pids: [1]\nmetrics:\n"), "") << "empty sections are allowed";
  EXPECT_EQ(ErrorOf("uplink: 5\n"), path_ + ":1: uplink: must be a mapping");
  // Syntax errors carry yaml-cpp's line.
  std::string syntax = ErrorOf("server:\n  url: [unclosed\n");
  EXPECT_EQ(syntax.rfind(path_ + ":", 0), 0u) << syntax;
  EXPECT_NE(syntax.find("(syntax)"), std::string::npos) << syntax;
  AgentOptions o;
  std::string error;
  EXPECT_FALSE(LoadAgentConfig(dir_ + "/missing.yaml", o, &error));
  EXPECT_EQ(error, dir_ + "/missing.yaml: cannot read the configuration file");
}

TEST_F(OptionsTest, AnEmptyFileChangesNothing) {
  EXPECT_EQ(ErrorOf(""), "");
  EXPECT_EQ(ErrorOf("# only a comment\n"), "");
}

TEST_F(OptionsTest, FlagsOverrideTheFile) {
  Write(kFull);
  std::string error;
  auto o = Parse({"--config", path_, "--batch-size", "7", "--port", "8080", "--server",
                  "http://127.0.0.1:9", "--spool-max-bytes", "1MiB", "--header", "X-Trace"},
                 &error);
  ASSERT_TRUE(o) << error;
  EXPECT_EQ(o->batch_size, 7u);
  EXPECT_EQ(o->sensor.ports, std::vector<uint16_t>{8080}) << "a flag list replaces the file's";
  EXPECT_EQ(o->server, "http://127.0.0.1:9");
  EXPECT_EQ(o->spool.max_bytes, 1u << 20);
  EXPECT_EQ(o->header_allowlist, std::vector<std::string>{"x-trace"});
  EXPECT_EQ(o->batch_interval_ms, 250) << "not overridden: the file's value";
  EXPECT_EQ(o->config_file, path_);
}

TEST_F(OptionsTest, SpoolDirDefaultsToTheStateDir) {
  std::string error;
  auto o = Parse({"--server", "http://h:1", "--state-dir", "/tmp/st"}, &error);
  ASSERT_TRUE(o) << error;
  EXPECT_EQ(o->spool.dir, "/tmp/st/spool");
}

TEST_F(OptionsTest, UplinkModeNeedsAServerAndFlagErrorsNameTheFlag) {
  std::string error;
  EXPECT_FALSE(Parse({}, &error));
  EXPECT_NE(error.find("no server"), std::string::npos);
  EXPECT_TRUE(Parse({"--stdout"}, &error));
  EXPECT_FALSE(Parse({"--server", "localhost:80"}, &error));
  EXPECT_EQ(error, "--server: must start with http:// or https://, got localhost:80");
  EXPECT_FALSE(Parse({"--stdout", "--batch-size", "0"}, &error));
  EXPECT_EQ(error, "--batch-size: must be an integer in 1..10000, got 0");
  EXPECT_FALSE(Parse({"--config", dir_ + "/nope.yaml", "--stdout"}, &error));
  EXPECT_NE(error.find("nope.yaml: cannot read"), std::string::npos);
}

TEST(ParseByteSize, AcceptsPlainAndBinarySuffixes) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseByteSize("65536", v));
  EXPECT_EQ(v, 65536u);
  EXPECT_TRUE(ParseByteSize("64KiB", v));
  EXPECT_EQ(v, 64u << 10);
  EXPECT_TRUE(ParseByteSize("256MiB", v));
  EXPECT_EQ(v, 256u << 20);
  EXPECT_TRUE(ParseByteSize("1G", v));
  EXPECT_EQ(v, 1u << 30);
  EXPECT_FALSE(ParseByteSize("MiB", v));
  EXPECT_FALSE(ParseByteSize("12 parsecs", v));
  EXPECT_FALSE(ParseByteSize("-1", v));
}

}  // namespace
}  // namespace boing::agent
