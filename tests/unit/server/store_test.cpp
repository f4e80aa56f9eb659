// The Store contract, run against SQLite (store_test, label unit) and, compiled with
// BOING_STORE_TEST_MYSQL, against a real MariaDB started by the test command (store_mysql_test,
// label integration; BOING_TEST_MYSQL_* variables).
#include "boing/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

namespace boing {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef BOING_STORE_TEST_MYSQL
    const char* host = std::getenv("BOING_TEST_MYSQL_HOST");
    if (!host) {
      if (std::getenv("CI")) FAIL() << "BOING_TEST_MYSQL_* not set under CI";
      GTEST_SKIP() << "no MariaDB (BOING_TEST_MYSQL_* unset)";
    }
    mysql_.host = host;
    mysql_.port = std::atoi(std::getenv("BOING_TEST_MYSQL_PORT"));
    mysql_.user = std::getenv("BOING_TEST_MYSQL_USER");
    mysql_.password = std::getenv("BOING_TEST_MYSQL_PASSWORD");
    mysql_.database = "boing_t" + std::to_string(std::random_device{}() % 100000000);
    Open();
#else
    dir_ = std::filesystem::temp_directory_path() /
           ("boing_store_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
#endif
  }
  void TearDown() override {
#ifdef BOING_STORE_TEST_MYSQL
    if (store_) {
      store_.reset();
      std::string cmd = "mariadb -h " + mysql_.host + " -P " + std::to_string(mysql_.port) +
                        " -u " + mysql_.user + " -p" + mysql_.password + " -e 'DROP DATABASE " +
                        mysql_.database + "' 2>/dev/null";
      (void)std::system(cmd.c_str());
    }
#else
    store_.reset();
    std::filesystem::remove_all(dir_);
#endif
  }
  void Open() {
    std::string err;
#ifdef BOING_STORE_TEST_MYSQL
    store_ = OpenMysqlStore(mysql_, &err);
#else
    SqliteOptions o;
    o.path = (dir_ / "boing.db").string();
    store_ = OpenSqliteStore(o, &err);
#endif
    ASSERT_TRUE(store_) << err;
  }
  void Reopen() {
    store_.reset();
    Open();
  }
  int64_t MakeUser(const std::string& name, const std::string& role = "user") {
    User u;
    u.username = name;
    u.password_hash = "$argon2id$x";
    u.role = role;
    u.created_at = 1;
    EXPECT_TRUE(store_->CreateUser(u).ok);
    return u.id;
  }
  int64_t MakeApi(int64_t owner, const std::string& key_hash) {
    Api a;
    a.name = "api-" + key_hash;
    a.owner_id = owner;
    a.ingest_key_hash = key_hash;
    a.created_at = a.updated_at = 1;
    EXPECT_TRUE(store_->CreateApi(a).ok);
    return a.id;
  }
  static Event MakeEvent(int64_t api, double ts, const std::string& endpoint) {
    Event e;
    e.api_id = api;
    e.timestamp = ts;
    e.method = "GET";
    e.endpoint = endpoint;
    e.client_ip = "10.0.0.1";
    e.status_code = 200;
    e.latency_ms = 1.5;
    return e;
  }

  std::unique_ptr<Store> store_;
  std::filesystem::path dir_;
  MysqlOptions mysql_;
};

TEST_F(StoreTest, UsersCrudAndConflict) {
  int64_t id = MakeUser("alice", "admin");
  EXPECT_GT(id, 0);
  User dup;
  dup.username = "alice";
  dup.password_hash = "x";
  dup.role = "user";
  Status s = store_->CreateUser(dup);
  EXPECT_FALSE(s.ok);
  EXPECT_TRUE(s.conflict) << s.message;
  auto u = store_->GetUserByName("alice");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->role, "admin");
  u->failed_logins = 3;
  u->locked_until = 99;
  u->disabled = true;
  ASSERT_TRUE(store_->UpdateUser(*u).ok);
  auto again = store_->GetUser(id);
  EXPECT_EQ(again->failed_logins, 3);
  EXPECT_EQ(again->locked_until, 99);
  EXPECT_TRUE(again->disabled);
  EXPECT_EQ(store_->CountUsers(), 1);
  EXPECT_EQ(store_->ListUsers().size(), 1u);
  ASSERT_TRUE(store_->DeleteUser(id).ok);
  EXPECT_FALSE(store_->GetUser(id));
}

TEST_F(StoreTest, ApisOwnershipKeyLookupAndCascade) {
  int64_t a = MakeUser("a"), b = MakeUser("b");
  int64_t api1 = MakeApi(a, "h1"), api2 = MakeApi(b, "h2");
  EXPECT_EQ(store_->ListApis(a).size(), 1u);
  EXPECT_EQ(store_->ListApis(std::nullopt).size(), 2u);
  auto found = store_->GetApiByKeyHash("h2");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, api2);
  Api upd = *store_->GetApi(api1);
  upd.match_host = "shop.example";
  upd.match_port = 8080;
  upd.upstream_secret_enc = "gAAAA";
  ASSERT_TRUE(store_->UpdateApi(upd).ok);
  EXPECT_EQ(store_->GetApi(api1)->match_port, 8080);
  std::vector<Event> ev = {MakeEvent(api1, 10, "/a"), MakeEvent(api2, 11, "/b")};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(store_->InsertEvents(ev, out).ok);
  ASSERT_TRUE(store_->DeleteApi(api1).ok);
  EXPECT_FALSE(store_->GetApi(api1));
  EXPECT_EQ(store_->CountEvents(), 1);
  // Deleting a user removes their APIs and those APIs' events.
  ASSERT_TRUE(store_->DeleteUser(b).ok);
  EXPECT_FALSE(store_->GetApi(api2));
  EXPECT_EQ(store_->CountEvents(), 0);
}

TEST_F(StoreTest, EnrollmentIsSingleUseAndExpires) {
  EnrollmentToken t;
  t.token_hash = "tok";
  t.expires_at = 100;
  t.created_at = 1;
  ASSERT_TRUE(store_->CreateEnrollmentToken(t).ok);
  Agent ag;
  ag.agent_id = "ag1";
  ag.token_hash = "agent-token-hash";
  ag.enrolled_at = ag.last_seen = 50;
  ASSERT_TRUE(store_->EnrollAgent("tok", 50, ag).ok);
  EXPECT_GT(ag.id, 0);
  Agent ag2 = ag;
  ag2.agent_id = "ag2";
  ag2.token_hash = "other";
  Status s = store_->EnrollAgent("tok", 51, ag2);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.message.find("already used"), std::string::npos);
  EXPECT_NE(store_->EnrollAgent("nope", 51, ag2).message.find("unknown"), std::string::npos);
  EnrollmentToken t2;
  t2.token_hash = "old";
  t2.expires_at = 10;
  ASSERT_TRUE(store_->CreateEnrollmentToken(t2).ok);
  EXPECT_NE(store_->EnrollAgent("old", 50, ag2).message.find("expired"), std::string::npos);
  ASSERT_TRUE(store_->UpdateAgentHeartbeat("ag1", 60, "1.2", R"({"captured":5})", "[]").ok);
  auto got = store_->GetAgentByTokenHash("agent-token-hash");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->last_seen, 60);
  EXPECT_EQ(got->version, "1.2");
  EXPECT_EQ(got->counters_json, R"({"captured":5})");
  ASSERT_TRUE(store_->RevokeAgent("ag1").ok);
  EXPECT_TRUE(store_->GetAgentByTokenHash("agent-token-hash")->revoked);
  EXPECT_EQ(store_->ListAgents().size(), 1u);
}

TEST_F(StoreTest, InsertEventsDeduplicatesAgentSequence) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> batch;
  for (int i = 0; i < 5; ++i) {
    Event e = MakeEvent(api, 100 + i, "/e" + std::to_string(i));
    e.agent_id = "ag";
    e.seq = i;
    batch.push_back(e);
  }
  batch.push_back(batch[2]);                     // duplicate inside the batch
  batch.push_back(MakeEvent(api, 200, "/app"));  // application event: no agent_id
  batch.push_back(MakeEvent(api, 200, "/app"));  // identical app event is not a duplicate
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(store_->InsertEvents(batch, out).ok);
  ASSERT_EQ(out.size(), 8u);
  for (int i : {0, 1, 2, 3, 4, 6, 7}) EXPECT_EQ(out[i], InsertOutcome::kInserted) << i;
  EXPECT_EQ(out[5], InsertOutcome::kDuplicate);
  std::set<int64_t> ids;
  for (int i : {0, 1, 2, 3, 4, 6, 7}) ids.insert(batch[i].id);
  EXPECT_EQ(ids.size(), 7u);
  EXPECT_FALSE(ids.count(0));
  // A later batch repeating seq 3 and 4 plus a new seq.
  std::vector<Event> again = {batch[3], batch[4]};
  Event e5 = MakeEvent(api, 105, "/e5");
  e5.agent_id = "ag";
  e5.seq = 5;
  again.push_back(e5);
  ASSERT_TRUE(store_->InsertEvents(again, out).ok);
  EXPECT_EQ(out[0], InsertOutcome::kDuplicate);
  EXPECT_EQ(out[1], InsertOutcome::kDuplicate);
  EXPECT_EQ(out[2], InsertOutcome::kInserted);
  EXPECT_EQ(store_->CountEvents(), 8);
}

TEST_F(StoreTest, EveryEventFieldRoundTrips) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  Event e = MakeEvent(api, 1764050000.123456, "/users/42");
  e.headers = {{"Host", "shop"}, {"X-B", "2"}, {"A-First", "1"}, {"uni", "ü€"}};
  e.body_size = 10;
  e.response_size = 20;
  e.query = "a=1&b=2";
  e.payload = "{\"q\":\"' OR 1=1\"}";
  e.user_agent = "curl/8";
  e.host = "shop";
  e.identity = "abcd";
  e.server_ip = "::1";
  e.server_port = 8443;
  e.tls = true;
  e.protocol = "HTTP/1.1";
  e.agent_id = "ag";
  e.seq = 77;
  e.host_name = "node-1";
  e.pid = 4242;
  e.comm = "nginx";
  e.cgroup_id = 0xfedcba9876543210ULL;
  e.container_id = "c0ffee";
  e.pod = "web-0";
  e.k8s_namespace = "prod";
  std::vector<Event> v = {e};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(store_->InsertEvents(v, out).ok);
  LogFilter f;
  auto rows = store_->QueryLogs(f);
  ASSERT_EQ(rows.size(), 1u);
  const Event& r = rows[0];
  EXPECT_EQ(r.id, v[0].id);
  EXPECT_DOUBLE_EQ(r.timestamp, e.timestamp);
  EXPECT_EQ(r.headers, e.headers);
  EXPECT_EQ(r.body_size, e.body_size);
  EXPECT_EQ(r.response_size, e.response_size);
  EXPECT_EQ(r.query, e.query);
  EXPECT_EQ(r.payload, e.payload);
  EXPECT_EQ(r.server_port, e.server_port);
  EXPECT_EQ(r.tls, e.tls);
  EXPECT_EQ(r.agent_id, e.agent_id);
  EXPECT_EQ(r.seq, e.seq);
  EXPECT_EQ(r.pid, e.pid);
  EXPECT_EQ(r.cgroup_id, e.cgroup_id);
  EXPECT_EQ(r.k8s_namespace, "prod");
  EXPECT_EQ(r.comm, "nginx");
  EXPECT_EQ(r.identity, "abcd");
}

TEST_F(StoreTest, FiltersAndKeysetPaginationWithEqualTimestamps) {
  int64_t u = MakeUser("u");
  int64_t a1 = MakeApi(u, "k1"), a2 = MakeApi(u, "k2");
  std::vector<Event> v;
  for (int i = 0; i < 25; ++i) {
    Event e = MakeEvent(i % 2 ? a1 : a2, 1000 + i / 5, "/p/" + std::to_string(i));  // 5 per ts
    e.status_code = i % 3 == 0 ? 500 : 200;
    e.client_ip = i < 10 ? "10.0.0.1" : "10.0.0.2";
    v.push_back(e);
  }
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(store_->InsertEvents(v, out).ok);
  LogFilter f;
  f.limit = 4;
  std::set<int64_t> seen;
  for (int page = 0; page < 20; ++page) {
    auto rows = store_->QueryLogs(f);
    for (const auto& r : rows) EXPECT_TRUE(seen.insert(r.id).second) << "row repeated";
    if (rows.size() < 4) break;
    f.before_ts = rows.back().timestamp;
    f.before_id = rows.back().id;
  }
  EXPECT_EQ(seen.size(), 25u);
  LogFilter g;
  g.restrict_to_apis = true;
  g.api_ids = {a1};
  g.status_min = 500;
  g.limit = 100;
  for (const auto& r : store_->QueryLogs(g)) {
    EXPECT_EQ(r.api_id, a1);
    EXPECT_GE(r.status_code, 500);
  }
  g.api_ids.clear();
  EXPECT_TRUE(store_->QueryLogs(g).empty()) << "restricted to no API means nothing";
  LogFilter h;
  h.endpoint = "/p/1*";
  h.limit = 100;
  EXPECT_EQ(store_->QueryLogs(h).size(), 11u);  // /p/1 and /p/10../p/19
  h = LogFilter{};
  h.client_ip = "10.0.0.1";
  h.from_ts = 1001;
  h.to_ts = 1002;
  h.limit = 100;
  EXPECT_EQ(store_->QueryLogs(h).size(), 5u);
  int scanned = 0;
  double last = 0;
  ASSERT_TRUE(store_
                  ->ScanEvents(LogFilter{},
                               [&](const Event& e) {
                                 EXPECT_GE(e.timestamp, last);
                                 last = e.timestamp;
                                 return ++scanned < 12;
                               })
                  .ok);
  EXPECT_EQ(scanned, 12);
}

TEST_F(StoreTest, DetectorsListsAuditSettingsTokens) {
  DetectorConfig d;
  d.id = "sqli";
  d.name = "SQLi";
  d.stage = "rules";
  d.severity = "high";
  d.config_json = R"({"x":1})";
  ASSERT_TRUE(store_->InsertDetectorIfMissing(d).ok);
  d.severity = "low";
  d.config_json = R"({"x":2})";
  ASSERT_TRUE(store_->InsertDetectorIfMissing(d).ok);
  EXPECT_EQ(store_->GetDetector("sqli")->severity, "high") << "insert-if-missing overwrote";
  ASSERT_TRUE(store_->UpdateDetector(d).ok);
  EXPECT_EQ(store_->GetDetector("sqli")->config_json, R"({"x":2})");
  EXPECT_EQ(store_->ListDetectors().size(), 1u);

  ListEntry e;
  e.list = "blacklist";
  e.kind = "cidr";
  e.value = "10.0.0.0/8";
  e.created_at = 1;
  ASSERT_TRUE(store_->AddListEntry(e).ok);
  EXPECT_EQ(store_->ListEntries("blacklist").size(), 1u);
  EXPECT_TRUE(store_->ListEntries("whitelist").empty());
  store_->DeleteListEntry("whitelist", e.id);  // wrong list: must not delete
  EXPECT_TRUE(store_->GetListEntry(e.id));
  ASSERT_TRUE(store_->DeleteListEntry("blacklist", e.id).ok);
  EXPECT_FALSE(store_->GetListEntry(e.id));

  for (int i = 0; i < 3; ++i) {
    AuditEntry a;
    a.ts_ms = i;
    a.action = "act" + std::to_string(i);
    ASSERT_TRUE(store_->AddAudit(a).ok);
  }
  auto audit = store_->ListAudit(2, 0);
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[0].action, "act2");
  EXPECT_EQ(store_->ListAudit(10, audit[1].id).size(), 1u);

  EXPECT_FALSE(store_->GetSetting("k"));
  ASSERT_TRUE(store_->PutSetting("k", "v1").ok);
  ASSERT_TRUE(store_->PutSetting("k", "v2").ok);
  EXPECT_EQ(store_->GetSetting("k"), "v2");

  ASSERT_TRUE(store_->RevokeToken("jti1", 4102444800).ok);
  ASSERT_TRUE(store_->RevokeToken("jti1", 4102444800).ok);
  EXPECT_TRUE(store_->IsTokenRevoked("jti1"));
  EXPECT_FALSE(store_->IsTokenRevoked("jti2"));
}

TEST_F(StoreTest, ReopenKeepsDataAndAppliesMigrationsOnce) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> v = {MakeEvent(api, 5, "/x")};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(store_->InsertEvents(v, out).ok);
  Reopen();
  Reopen();
  EXPECT_EQ(store_->CountUsers(), 1);
  EXPECT_EQ(store_->CountEvents(), 1);
  EXPECT_TRUE(store_->GetApiByKeyHash("k"));
  EXPECT_TRUE(store_->Ping().ok);
}

}  // namespace
}  // namespace boing
