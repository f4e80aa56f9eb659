#include "boing/server_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace boing {
namespace {

std::string TempDir() {
  auto d = std::filesystem::temp_directory_path() /
           ("boing_cfg_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(ServerConfig, ReadsSeedVariables) {
  Settings s;
  s.Set("DB_HOST", "db.internal");
  s.Set("DB_PORT", "3307");
  s.Set("RATE_LIMIT_THRESHOLD", "250");
  s.Set("ANOMALY_ZSCORE_THRESHOLD", "2.5");
  s.Set("ML_CONTAMINATION", "0.05");
  s.Set("LLM_ENABLED", "true");
  s.Set("LISTEN", "127.0.0.1:0");
  s.Set("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1");
  ServerConfig c;
  auto errors = LoadServerConfig(s, c);
  ASSERT_TRUE(errors.empty()) << errors[0];
  EXPECT_EQ(c.db_host, "db.internal");
  EXPECT_EQ(c.db_port, 3307);
  EXPECT_EQ(c.rate_limit_threshold, 250);
  EXPECT_DOUBLE_EQ(c.anomaly_zscore_threshold, 2.5);
  EXPECT_DOUBLE_EQ(c.ml_contamination, 0.05);
  EXPECT_TRUE(c.llm_enabled);
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 0);
  EXPECT_EQ(c.trusted_proxies.size(), 2u);
}

TEST(ServerConfig, EveryErrorNamesItsVariable) {
  Settings s;
  s.Set("DB_PORT", "99999");
  s.Set("LISTEN", "nonsense");
  s.Set("ML_CONTAMINATION", "abc");
  s.Set("TLS_CERT_FILE", "/x.pem");
  ServerConfig c;
  auto errors = LoadServerConfig(s, c);
  ASSERT_EQ(errors.size(), 4u);
  std::string all;
  for (auto& e : errors) all += e + "\n";
  for (const char* v : {"DB_PORT", "LISTEN", "ML_CONTAMINATION", "TLS_CERT_FILE"}) {
    EXPECT_NE(all.find(v), std::string::npos) << all;
  }
}

TEST(ServerConfig, BusSettingsAreBoundedAndNamed) {
  Settings ok;
  ok.Set("BUS_URL", "nats://127.0.0.1:4222,nats://10.0.0.2:4222");
  ok.Set("BUS_PARTITIONS", "32");
  ok.Set("BUS_LEASE_SECONDS", "6");
  ServerConfig c;
  auto errors = LoadServerConfig(ok, c);
  ASSERT_TRUE(errors.empty()) << errors[0];
  EXPECT_EQ(c.bus_partitions, 32);
  EXPECT_EQ(c.bus_lease_seconds, 6);
  EXPECT_TRUE(ServerConfig().bus_url.empty());  // default: the in-process bus

  Settings bad;
  bad.Set("BUS_URL", "http://127.0.0.1:4222");
  bad.Set("BUS_STREAM", "has space");
  bad.Set("BUS_PARTITIONS", "0");
  bad.Set("BUS_LEASE_SECONDS", "1");
  bad.Set("BUS_PUBLISH_QUEUE_MAX", "-5");
  bad.Set("BUS_FETCH_BATCH", "x");
  bad.Set("BUS_PUBLISH_TIMEOUT_MS", "10");
  ServerConfig d;
  errors = LoadServerConfig(bad, d);
  std::string all;
  for (auto& e : errors) all += e + "\n";
  EXPECT_EQ(errors.size(), 7u) << all;
  for (const char* v : {"BUS_URL", "BUS_STREAM", "BUS_PARTITIONS", "BUS_LEASE_SECONDS",
                        "BUS_PUBLISH_QUEUE_MAX", "BUS_FETCH_BATCH", "BUS_PUBLISH_TIMEOUT_MS"}) {
    EXPECT_NE(all.find(v), std::string::npos) << all;
  }
}

TEST(ServerConfig, ProductionRefusesMissingAndWeakSecrets) {
  ServerConfig c;
  c.production = true;
  auto errors = ResolveSecrets(c);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("JWT_SECRET", 0), 0u);
  EXPECT_EQ(errors[1].rfind("ENCRYPTION_KEY", 0), 0u);
  c.jwt_secret = "your-secret-key-change-this";
  c.encryption_key = "your-encryption-key-32-chars";
  errors = ResolveSecrets(c);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("weak"), std::string::npos);
}

TEST(ServerConfig, ProductionAcceptsStrongSecretsAndRaw32Key) {
  ServerConfig c;
  c.production = true;
  c.jwt_secret = std::string(48, 'j') + "x9";
  c.encryption_key = "0123456789abcdef0123456789abcdef";  // 32 raw characters
  EXPECT_TRUE(ResolveSecrets(c).empty());
  c.encryption_key = "short";
  auto errors = ResolveSecrets(c);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("ENCRYPTION_KEY", 0), 0u);
}

TEST(ServerConfig, LocalModeGeneratesSecretsOnceAndKeepsThem) {
  ServerConfig a;
  a.data_dir = TempDir();
  ASSERT_TRUE(ResolveSecrets(a).empty());
  EXPECT_GE(a.jwt_secret.size(), 32u);
  EXPECT_EQ(a.encryption_key.size(), 44u);
  auto perms = std::filesystem::status(a.data_dir + "/secrets.env").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::others_read, std::filesystem::perms::none);
  ServerConfig b;
  b.data_dir = a.data_dir;
  ASSERT_TRUE(ResolveSecrets(b).empty());
  EXPECT_EQ(a.jwt_secret, b.jwt_secret);
  EXPECT_EQ(a.encryption_key, b.encryption_key);
}

}  // namespace
}  // namespace boing

namespace boing {
namespace {

// .env.example documents exactly the variables the server reads.
TEST(ServerConfig, EnvExampleListsEveryVariable) {
  Settings example;
  std::string err;
  ASSERT_TRUE(example.LoadEnvFile(std::string(BOING_SOURCE_DIR) + "/.env.example", &err)) << err;
  for (const auto& v : ServerConfigVariables()) {
    EXPECT_TRUE(example.Has(v)) << v << " is read by the server but missing from .env.example";
  }
  std::ifstream in(std::string(BOING_SOURCE_DIR) + "/.env.example");
  std::string line;
  const auto& known = ServerConfigVariables();
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string key = line.substr(0, line.find('='));
    EXPECT_NE(std::find(known.begin(), known.end(), key), known.end())
        << key << " is in .env.example but the server does not read it";
  }
}

}  // namespace
}  // namespace boing
