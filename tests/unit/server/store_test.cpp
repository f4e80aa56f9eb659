// The Store contract as one value-parameterised suite: store_test runs it on SQLite (temporary
// files, label unit); store_mysql_test, built with BOING_STORE_TEST_MYSQL, runs it on the MariaDB
// named by BOING_TEST_MYSQL_* (tests/support/mariadb.sh; label integration), one fresh database per
// test.
#include "boing/store.h"

#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <gtest/gtest.h>
#include <mysql_driver.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "store_internal.h"

namespace boing {
namespace {

enum class Backend { kSqlite, kMysql };

std::string RandomHex(int n) {
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  std::string s;
  for (int i = 0; i < n; ++i) s += "0123456789abcdef"[rng() % 16];
  return s;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && *ci && std::strcmp(ci, "false") != 0 && std::strcmp(ci, "0") != 0;
}

std::unique_ptr<::sql::Connection> MysqlAdmin(const MysqlOptions& o) {
  return std::unique_ptr<::sql::Connection>(::sql::mysql::get_mysql_driver_instance()->connect(
      "tcp://" + o.host + ":" + std::to_string(o.port), o.user, o.password));
}

[[maybe_unused]] int FreeLocalPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMysql) {
      const char* host = std::getenv("BOING_TEST_MYSQL_HOST");
      if (!host || !*host) {
        if (InCi())
          FAIL() << "CI is set but BOING_TEST_MYSQL_HOST is not (tests/support/mariadb.sh)";
        GTEST_SKIP() << "no MariaDB: set BOING_TEST_MYSQL_* (tests/support/mariadb.sh start DIR)";
      }
      auto env = [](const char* k) {
        const char* v = std::getenv(k);
        return std::string(v ? v : "");
      };
      mysql_.host = host;
      mysql_.port = std::atoi(env("BOING_TEST_MYSQL_PORT").c_str());
      mysql_.user = env("BOING_TEST_MYSQL_USER");
      mysql_.password = env("BOING_TEST_MYSQL_PASSWORD");
      mysql_.database = "boing_t" + RandomHex(16);  // created by the store, dropped in TearDown
      drop_database_ = true;
      mysql_.pool_size = 4;
    } else {
      std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
      for (char& c : name) {
        if (c == '/') c = '_';
      }
      dir_ = std::filesystem::temp_directory_path() /
             ("boing_store_" + std::to_string(::getpid()) + "_" + name);
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
      sqlite_.path = (dir_ / "boing.db").string();
    }
    Open();
  }

  void TearDown() override {
    store_.reset();
    if (GetParam() == Backend::kMysql) {
      if (drop_database_) {
        try {
          auto c = MysqlAdmin(mysql_);
          std::unique_ptr<::sql::Statement> s(c->createStatement());
          s->execute("DROP DATABASE IF EXISTS `" + mysql_.database + "`");
        } catch (const ::sql::SQLException& e) {
          ADD_FAILURE() << "cannot drop " << mysql_.database << ": " << e.what();
        }
      }
    } else {
      std::filesystem::remove_all(dir_);
    }
  }

  std::unique_ptr<Store> OpenWith(std::span<const store_internal::Migration> m, std::string* err) {
    if (GetParam() == Backend::kMysql) return store_internal::OpenMysqlStoreWith(mysql_, m, err);
    return store_internal::OpenSqliteStoreWith(sqlite_, m, err);
  }
  std::span<const store_internal::Migration> Embedded() {
    return store_internal::EmbeddedMigrations(
        GetParam() == Backend::kMysql ? sql::Dialect::kMysql : sql::Dialect::kSqlite);
  }
  void Open() {
    std::string err;
    store_ = OpenWith(Embedded(), &err);
    ASSERT_TRUE(store_) << err;
    EXPECT_EQ(store_->Backend(), GetParam() == Backend::kMysql ? "mysql" : "sqlite");
  }
  void Reopen() {
    store_.reset();
    Open();
  }

  int64_t MakeUser(const std::string& name, const std::string& role = "user") {
    User u;
    u.username = name;
    u.password_hash = "$argon2id$v=19$x";
    u.role = role;
    u.created_at = 1;
    Status s = store_->CreateUser(u);
    EXPECT_TRUE(s.ok) << s.message;
    return u.id;
  }
  int64_t MakeApi(int64_t owner, const std::string& key_hash) {
    Api a;
    a.name = "api-" + key_hash;
    a.owner_id = owner;
    a.ingest_key_hash = key_hash;
    a.created_at = a.updated_at = 1;
    Status s = store_->CreateApi(a);
    EXPECT_TRUE(s.ok) << s.message;
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
  static Event AgentEvent(int64_t api, double ts, const std::string& agent, int64_t seq) {
    Event e = MakeEvent(api, ts, "/s/" + std::to_string(seq));
    e.agent_id = agent;
    e.seq = seq;
    return e;
  }
  Status Insert(std::vector<Event>& v, std::vector<InsertOutcome>& out) {
    return store_->InsertEvents(v, out);
  }
  std::vector<Event> All() {
    LogFilter f;
    f.limit = 1000;
    return store_->QueryLogs(f);
  }

  std::unique_ptr<Store> store_;
  std::filesystem::path dir_;
  SqliteOptions sqlite_;
  MysqlOptions mysql_;
  bool drop_database_ = false;  // only ever the random boing_t* database of this test
};

TEST_P(StoreTest, UsersCrudAndUniqueConflict) {
  int64_t id = MakeUser("alice", "admin");
  ASSERT_GT(id, 0);
  User dup;
  dup.username = "alice";
  dup.password_hash = "x";
  dup.role = "user";
  Status s = store_->CreateUser(dup);
  EXPECT_FALSE(s.ok);
  EXPECT_TRUE(s.conflict) << s.message;
  EXPECT_FALSE(s.unavailable);
  EXPECT_FALSE(store_->GetUserByName("Alice")) << "usernames compare case-sensitively";

  auto u = store_->GetUserByName("alice");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->id, id);
  EXPECT_EQ(u->role, "admin");
  EXPECT_EQ(u->password_hash, "$argon2id$v=19$x");
  u->email = "a@example.com";
  u->failed_logins = 3;
  u->locked_until = 99;
  u->disabled = true;
  u->role = "user";
  ASSERT_TRUE(store_->UpdateUser(*u).ok);
  auto again = store_->GetUser(id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->email, "a@example.com");
  EXPECT_EQ(again->failed_logins, 3);
  EXPECT_EQ(again->locked_until, 99);
  EXPECT_TRUE(again->disabled);
  EXPECT_EQ(again->role, "user");
  EXPECT_EQ(again->created_at, 1);

  int64_t bob = MakeUser("bob");
  EXPECT_EQ(store_->CountUsers(), 2);
  auto all = store_->ListUsers();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].username, "alice");
  EXPECT_EQ(all[1].username, "bob");
  ASSERT_TRUE(store_->DeleteUser(id).ok);
  EXPECT_FALSE(store_->GetUser(id));
  EXPECT_TRUE(store_->GetUser(bob));
  EXPECT_EQ(store_->CountUsers(), 1);
}

TEST_P(StoreTest, ApisCrudKeyLookupOwnerFilterAndCascade) {
  int64_t a = MakeUser("a"), b = MakeUser("b");
  int64_t api1 = MakeApi(a, "h1"), api2 = MakeApi(b, "h2"), api3 = MakeApi(b, "h3");
  Api dup;
  dup.name = "dup";
  dup.owner_id = a;
  dup.ingest_key_hash = "h1";
  EXPECT_TRUE(store_->CreateApi(dup).conflict) << "ingest_key_hash is unique";

  ASSERT_EQ(store_->ListApis(a).size(), 1u);
  EXPECT_EQ(store_->ListApis(a)[0].id, api1);
  EXPECT_EQ(store_->ListApis(b).size(), 2u);
  EXPECT_EQ(store_->ListApis(std::nullopt).size(), 3u);
  auto found = store_->GetApiByKeyHash("h2");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, api2);
  EXPECT_FALSE(store_->GetApiByKeyHash("nope"));

  Api upd = *store_->GetApi(api1);
  upd.name = "renamed";
  upd.base_url = "https://shop.example";
  upd.settings_json = R"({"x":1})";
  upd.ingest_key_prefix = "bk_12";
  upd.match_host = "shop.example";
  upd.match_port = 8080;
  upd.match_base_path = "/api";
  upd.upstream_secret_enc = "gAAAA";
  upd.updated_at = 5;
  ASSERT_TRUE(store_->UpdateApi(upd).ok);
  Api got = *store_->GetApi(api1);
  EXPECT_EQ(got.name, "renamed");
  EXPECT_EQ(got.base_url, "https://shop.example");
  EXPECT_EQ(got.settings_json, R"({"x":1})");
  EXPECT_EQ(got.ingest_key_prefix, "bk_12");
  EXPECT_EQ(got.match_host, "shop.example");
  EXPECT_EQ(got.match_port, 8080);
  EXPECT_EQ(got.match_base_path, "/api");
  EXPECT_EQ(got.upstream_secret_enc, "gAAAA");
  EXPECT_EQ(got.created_at, 1);
  EXPECT_EQ(got.updated_at, 5);

  std::vector<Event> ev = {MakeEvent(api1, 10, "/a"), MakeEvent(api1, 11, "/a2"),
                           MakeEvent(api2, 12, "/b"), MakeEvent(api3, 13, "/c")};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(ev, out).ok);
  ASSERT_TRUE(store_->DeleteApi(api1).ok);
  EXPECT_FALSE(store_->GetApi(api1));
  EXPECT_EQ(store_->CountEvents(), 2) << "DeleteApi removes the API's events";
  // Deleting a user removes their APIs and those APIs' events.
  ASSERT_TRUE(store_->DeleteUser(b).ok);
  EXPECT_FALSE(store_->GetApi(api2));
  EXPECT_FALSE(store_->GetApi(api3));
  EXPECT_EQ(store_->CountEvents(), 0);
  EXPECT_TRUE(store_->GetUser(a));
}

TEST_P(StoreTest, EnrollmentIsSingleUseAndExpires) {
  EnrollmentToken t;
  t.token_hash = "tok";
  t.name = "rack 1";
  t.expires_at = 100;
  t.created_at = 1;
  ASSERT_TRUE(store_->CreateEnrollmentToken(t).ok);
  EXPECT_GT(t.id, 0);
  Agent ag;
  ag.agent_id = "ag1";
  ag.token_hash = "agent-token-hash";
  ag.hostname = "node-1";
  ag.version = "1.0";
  Status s = store_->EnrollAgent("tok", 50, ag);
  ASSERT_TRUE(s.ok) << s.message;
  EXPECT_GT(ag.id, 0);

  Agent ag2;
  ag2.agent_id = "ag2";
  ag2.token_hash = "other";
  s = store_->EnrollAgent("tok", 51, ag2);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.message, "enrollment token already used");
  s = store_->EnrollAgent("nope", 51, ag2);
  EXPECT_EQ(s.message, "unknown enrollment token");

  EnrollmentToken old;
  old.token_hash = "old";
  old.expires_at = 10;
  ASSERT_TRUE(store_->CreateEnrollmentToken(old).ok);
  s = store_->EnrollAgent("old", 50, ag2);
  EXPECT_EQ(s.message, "enrollment token expired");

  // A failed agent insert (agent_id taken) leaves the token unused: one transaction.
  EnrollmentToken fresh;
  fresh.token_hash = "fresh";
  fresh.expires_at = 1000;
  ASSERT_TRUE(store_->CreateEnrollmentToken(fresh).ok);
  Agent clash;
  clash.agent_id = "ag1";
  clash.token_hash = "clash";
  EXPECT_FALSE(store_->EnrollAgent("fresh", 60, clash).ok);
  ASSERT_TRUE(store_->EnrollAgent("fresh", 61, ag2).ok) << "token consumed by a failed enrolment";

  auto agents = store_->ListAgents();
  ASSERT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents[0].agent_id, "ag1");
  EXPECT_EQ(agents[0].hostname, "node-1");
  EXPECT_EQ(agents[0].enrolled_at, 50);
  EXPECT_EQ(agents[0].counters_json, "{}");
  EXPECT_EQ(agents[0].rates_json, "[]");
  EXPECT_FALSE(agents[0].revoked);
}

TEST_P(StoreTest, HeartbeatUpdatesAndRevokedAgentsStayVisible) {
  EnrollmentToken t;
  t.token_hash = "tok";
  t.expires_at = 100;
  ASSERT_TRUE(store_->CreateEnrollmentToken(t).ok);
  Agent ag;
  ag.agent_id = "ag1";
  ag.token_hash = "agent-token-hash";
  ag.version = "1.0";
  ASSERT_TRUE(store_->EnrollAgent("tok", 50, ag).ok);
  ASSERT_TRUE(store_
                  ->UpdateAgentHeartbeat("ag1", 60, "1.2", R"({"captured":5})",
                                         R"([{"ip":"10.0.0.1","rps":3}])")
                  .ok);
  auto got = store_->GetAgentByTokenHash("agent-token-hash");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->last_seen, 60);
  EXPECT_EQ(got->enrolled_at, 50);
  EXPECT_EQ(got->version, "1.2");
  EXPECT_EQ(got->counters_json, R"({"captured":5})");
  EXPECT_EQ(got->rates_json, R"([{"ip":"10.0.0.1","rps":3}])");
  ASSERT_TRUE(store_->RevokeAgent("ag1").ok);
  got = store_->GetAgentByTokenHash("agent-token-hash");
  ASSERT_TRUE(got) << "revoked agents are returned; the caller checks `revoked`";
  EXPECT_TRUE(got->revoked);
  EXPECT_FALSE(store_->GetAgentByTokenHash("unknown"));
}

TEST_P(StoreTest, InsertEventsDeduplicatesAgentSequence) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(AgentEvent(api, 100 + i, "ag", i));
  batch.push_back(batch[2]);                          // duplicate inside the batch
  batch.push_back(MakeEvent(api, 200, "/app"));       // application event: no agent_id
  batch.push_back(MakeEvent(api, 200, "/app"));       // an identical app event is not a duplicate
  batch.push_back(AgentEvent(api, 105, "other", 2));  // same seq, other agent
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(batch, out).ok);
  ASSERT_EQ(out.size(), batch.size());
  for (int i : {0, 1, 2, 3, 4, 6, 7, 8}) {
    EXPECT_EQ(out[i], InsertOutcome::kInserted) << i;
    EXPECT_GT(batch[i].id, 0) << i;
  }
  EXPECT_EQ(out[5], InsertOutcome::kDuplicate);
  EXPECT_EQ(batch[5].id, 0);
  std::set<int64_t> ids;
  for (int i : {0, 1, 2, 3, 4, 6, 7, 8}) ids.insert(batch[i].id);
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(store_->CountEvents(), 8);

  // A later batch repeating seq 3 and 4 (and 4 twice), around a new seq.
  std::vector<Event> again = {batch[3], AgentEvent(api, 106, "ag", 5), batch[4], batch[4]};
  ASSERT_TRUE(Insert(again, out).ok);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], InsertOutcome::kDuplicate);
  EXPECT_EQ(out[1], InsertOutcome::kInserted);
  EXPECT_EQ(out[2], InsertOutcome::kDuplicate);
  EXPECT_EQ(out[3], InsertOutcome::kDuplicate);
  EXPECT_GT(again[1].id, *ids.rbegin());
  EXPECT_EQ(store_->CountEvents(), 9);

  std::vector<Event> none;
  ASSERT_TRUE(Insert(none, out).ok);
  EXPECT_TRUE(out.empty());
}

// A batch large enough for several multi-row statements (and a remainder) on MySQL: every id
// handed back must be the row that holds that event.
TEST_P(StoreTest, LargeMixedBatchReturnsTheRightIds) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> first;
  for (int i = 0; i < 300; ++i) first.push_back(AgentEvent(api, 1000 + i, "ag", i * 2));
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(first, out).ok);

  std::vector<Event> batch;
  std::vector<InsertOutcome> want;
  for (int i = 0; i < 1037; ++i) {
    if (i % 3 == 0) {
      batch.push_back(AgentEvent(api, 2000 + i, "ag", i));  // even seqs < 600 are stored
      want.push_back(i % 2 == 0 && i < 600 ? InsertOutcome::kDuplicate : InsertOutcome::kInserted);
    } else {
      batch.push_back(MakeEvent(api, 2000 + i, "/app/" + std::to_string(i)));
      want.push_back(InsertOutcome::kInserted);
    }
  }
  ASSERT_TRUE(Insert(batch, out).ok);
  ASSERT_EQ(out, want);
  int64_t inserted = 0;
  for (auto o : out) inserted += o == InsertOutcome::kInserted;
  EXPECT_EQ(store_->CountEvents(), 300 + inserted);

  std::map<int64_t, std::string> by_id;
  LogFilter f;
  f.limit = 1000;
  f.from_ts = 2000;
  for (;;) {
    auto rows = store_->QueryLogs(f);
    for (const auto& r : rows) by_id[r.id] = r.endpoint;
    if (rows.size() < 1000) break;
    f.before_ts = rows.back().timestamp;
    f.before_id = rows.back().id;
  }
  ASSERT_EQ(static_cast<int64_t>(by_id.size()), inserted);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (out[i] != InsertOutcome::kInserted) continue;
    ASSERT_EQ(by_id[batch[i].id], batch[i].endpoint) << "event " << i << " id " << batch[i].id;
  }
}

TEST_P(StoreTest, EveryEventFieldRoundTrips) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  Event e = MakeEvent(api, 1764050000.123456, "/users/42");
  e.method = "PATCH";
  e.client_ip = "2001:db8::1";
  e.headers = {{"Host", "shop"},
               {"X-B", "2"},
               {"A-First", "1"},
               {"X-B", "again"},
               {"uni", "\xC3\xBC\xE2\x82\xAC \xF0\x9F\x98\x80"},
               {"quote\"s", "back\\slash\tand\nnewline\x01"}};
  e.status_code = 503;
  e.latency_ms = 12.25;
  e.body_size = 10;
  e.response_size = 0;
  e.query = "a=1&b=2";
  e.payload = "{\"q\":\"' OR 1=1 --\"}";
  e.user_agent = "curl/8";
  e.host = "shop";
  e.identity = "abcd";
  e.server_ip = "::1";
  e.server_port = 8443;
  e.tls = false;
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
  Event bare = MakeEvent(api, 1764050001, "/bare");
  std::vector<Event> v = {e, bare};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(v, out).ok);

  auto rows = All();
  ASSERT_EQ(rows.size(), 2u);
  const Event& r = rows[1];  // newest first
  EXPECT_EQ(r.id, v[0].id);
  EXPECT_EQ(r.api_id, api);
  EXPECT_EQ(r.timestamp, e.timestamp);
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.endpoint, "/users/42");
  EXPECT_EQ(r.client_ip, "2001:db8::1");
  EXPECT_EQ(r.headers, e.headers);
  EXPECT_EQ(r.status_code, 503);
  EXPECT_EQ(r.latency_ms, 12.25);
  EXPECT_EQ(r.body_size, e.body_size);
  EXPECT_EQ(r.response_size, e.response_size);
  EXPECT_EQ(r.query, e.query);
  EXPECT_EQ(r.payload, e.payload);
  EXPECT_EQ(r.user_agent, e.user_agent);
  EXPECT_EQ(r.host, e.host);
  EXPECT_EQ(r.identity, e.identity);
  EXPECT_EQ(r.server_ip, e.server_ip);
  EXPECT_EQ(r.server_port, e.server_port);
  EXPECT_EQ(r.tls, e.tls);
  EXPECT_EQ(r.protocol, e.protocol);
  EXPECT_EQ(r.agent_id, e.agent_id);
  EXPECT_EQ(r.seq, e.seq);
  EXPECT_EQ(r.host_name, e.host_name);
  EXPECT_EQ(r.pid, e.pid);
  EXPECT_EQ(r.comm, e.comm);
  EXPECT_EQ(r.cgroup_id, e.cgroup_id);
  EXPECT_EQ(r.container_id, e.container_id);
  EXPECT_EQ(r.pod, e.pod);
  EXPECT_EQ(r.k8s_namespace, e.k8s_namespace);
  EXPECT_TRUE(r.api_key.empty());

  const Event& b = rows[0];
  EXPECT_EQ(b.id, v[1].id);
  EXPECT_TRUE(b.headers.empty());
  EXPECT_FALSE(b.body_size);
  EXPECT_FALSE(b.response_size);
  EXPECT_FALSE(b.server_port);
  EXPECT_FALSE(b.tls);
  EXPECT_TRUE(b.agent_id.empty());
  EXPECT_FALSE(b.seq);
  EXPECT_FALSE(b.pid);
  EXPECT_FALSE(b.cgroup_id);

  // ScanEvents fills every field too.
  std::vector<Event> scanned;
  ASSERT_TRUE(store_
                  ->ScanEvents(LogFilter{},
                               [&](const Event& x) {
                                 scanned.push_back(x);
                                 return true;
                               })
                  .ok);
  ASSERT_EQ(scanned.size(), 2u);
  EXPECT_EQ(scanned[0].headers, e.headers);
  EXPECT_EQ(scanned[0].cgroup_id, e.cgroup_id);
  EXPECT_EQ(scanned[0].k8s_namespace, "prod");
}

class FilterTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    int64_t u = MakeUser("u");
    a1_ = MakeApi(u, "k1");
    a2_ = MakeApi(u, "k2");
    // 25 events, 5 per timestamp 1000..1004; api alternates; status 500 for i % 3 == 0.
    for (int i = 0; i < 25; ++i) {
      Event e = MakeEvent(i % 2 ? a1_ : a2_, 1000 + i / 5, "/p/" + std::to_string(i));
      e.status_code = i % 3 == 0 ? 500 : (i % 3 == 1 ? 404 : 200);
      e.client_ip = i < 10 ? "10.0.0.1" : "10.0.0.2";
      e.method = i % 4 == 0 ? "POST" : "GET";
      events_.push_back(e);
    }
    std::vector<InsertOutcome> out;
    ASSERT_TRUE(Insert(events_, out).ok);
  }
  // The expected result, newest first, by brute force.
  std::vector<int64_t> Expect(const std::function<bool(const Event&)>& pred) {
    std::vector<const Event*> m;
    for (const auto& e : events_) {
      if (pred(e)) m.push_back(&e);
    }
    std::sort(m.begin(), m.end(), [](const Event* a, const Event* b) {
      return a->timestamp != b->timestamp ? a->timestamp > b->timestamp : a->id > b->id;
    });
    std::vector<int64_t> ids;
    for (auto* e : m) ids.push_back(e->id);
    return ids;
  }
  std::vector<int64_t> Ids(const LogFilter& f) {
    std::vector<int64_t> ids;
    for (const auto& e : store_->QueryLogs(f)) ids.push_back(e.id);
    return ids;
  }
  int64_t a1_ = 0, a2_ = 0;
  std::vector<Event> events_;
};

TEST_P(FilterTest, EachFilterSelectsExactly) {
  LogFilter f;
  EXPECT_EQ(Ids(f), Expect([](const Event&) { return true; }));

  f = {};
  f.api_ids = {a1_};
  EXPECT_EQ(Ids(f), Expect([&](const Event& e) { return e.api_id == a1_; }));
  f.api_ids = {a1_, a2_, 999};
  EXPECT_EQ(Ids(f).size(), 25u);
  f.restrict_to_apis = true;
  f.api_ids = {a2_};
  EXPECT_EQ(Ids(f), Expect([&](const Event& e) { return e.api_id == a2_; }));
  f.api_ids.clear();
  EXPECT_TRUE(Ids(f).empty()) << "restricted to no API means nothing";

  f = {};
  f.client_ip = "10.0.0.1";
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.client_ip == "10.0.0.1"; }));
  f = {};
  f.method = "POST";
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.method == "POST"; }));
  f = {};
  f.endpoint = "/p/1";
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.endpoint == "/p/1"; }));
  f.endpoint = "/p/1*";
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.endpoint.rfind("/p/1", 0) == 0; }));
  EXPECT_EQ(Ids(f).size(), 11u);  // /p/1 and /p/10 .. /p/19
  f.endpoint = "/P/1*";
  EXPECT_TRUE(Ids(f).empty()) << "prefix match is case-sensitive";
  f.endpoint = "*";
  EXPECT_EQ(Ids(f).size(), 25u);
  f = {};
  f.status_min = 400;
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.status_code >= 400; }));
  f.status_max = 499;
  EXPECT_EQ(Ids(f), Expect([](const Event& e) { return e.status_code == 404; }));
  f = {};
  f.from_ts = 1001;
  f.to_ts = 1003;
  EXPECT_EQ(Ids(f),
            Expect([](const Event& e) { return e.timestamp >= 1001 && e.timestamp < 1003; }));
  f.client_ip = "10.0.0.1";
  f.api_ids = {a1_};
  EXPECT_EQ(Ids(f), Expect([&](const Event& e) {
              return e.timestamp >= 1001 && e.timestamp < 1003 && e.client_ip == "10.0.0.1" &&
                     e.api_id == a1_;
            }));
  f = {};
  f.limit = 3;
  EXPECT_EQ(Ids(f).size(), 3u);
  f.limit = 5000;
  EXPECT_EQ(Ids(f).size(), 25u);
}

TEST_P(FilterTest, KeysetPaginationAcrossEqualTimestamps) {
  for (int page_size : {1, 3, 4, 5, 7}) {
    for (bool filtered : {false, true}) {
      LogFilter f;
      f.limit = page_size;
      if (filtered) f.client_ip = "10.0.0.2";
      std::vector<int64_t> got;
      for (int page = 0; page < 100; ++page) {
        auto rows = store_->QueryLogs(f);
        for (const auto& r : rows) got.push_back(r.id);
        if (rows.size() < static_cast<size_t>(page_size)) break;
        f.before_ts = rows.back().timestamp;
        f.before_id = rows.back().id;
      }
      auto want = Expect([&](const Event& e) { return !filtered || e.client_ip == "10.0.0.2"; });
      EXPECT_EQ(got, want) << "page size " << page_size << (filtered ? " filtered" : "");
    }
  }
}

TEST_P(FilterTest, ScanEventsIsOldestFirstFilteredAndStops) {
  std::vector<int64_t> all;
  ASSERT_TRUE(store_
                  ->ScanEvents(LogFilter{},
                               [&](const Event& e) {
                                 all.push_back(e.id);
                                 return true;
                               })
                  .ok);
  auto want = Expect([](const Event&) { return true; });
  std::reverse(want.begin(), want.end());
  EXPECT_EQ(all, want);

  int seen = 0;
  ASSERT_TRUE(store_->ScanEvents(LogFilter{}, [&](const Event&) { return ++seen < 12; }).ok);
  EXPECT_EQ(seen, 12) << "stops when the callback returns false";

  LogFilter f;
  f.api_ids = {a1_};
  f.status_min = 500;
  f.limit = 1;         // ignored
  f.before_ts = 1000;  // ignored
  std::vector<int64_t> some;
  ASSERT_TRUE(store_
                  ->ScanEvents(f,
                               [&](const Event& e) {
                                 some.push_back(e.id);
                                 return true;
                               })
                  .ok);
  auto want2 = Expect([&](const Event& e) { return e.api_id == a1_ && e.status_code >= 500; });
  std::reverse(want2.begin(), want2.end());
  EXPECT_EQ(some, want2);

  f = {};
  f.restrict_to_apis = true;
  int none = 0;
  ASSERT_TRUE(store_->ScanEvents(f, [&](const Event&) { return ++none > 0; }).ok);
  EXPECT_EQ(none, 0);
}

TEST_P(StoreTest, ScanEventsStreamsPastOnePage) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> v;
  for (int i = 0; i < 2500; ++i) v.push_back(MakeEvent(api, 5000 + i / 3, "/x"));
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(v, out).ok);
  int64_t n = 0, last_id = 0;
  double last_ts = 0;
  ASSERT_TRUE(store_
                  ->ScanEvents(LogFilter{},
                               [&](const Event& e) {
                                 EXPECT_TRUE(e.timestamp > last_ts ||
                                             (e.timestamp == last_ts && e.id > last_id));
                                 last_ts = e.timestamp;
                                 last_id = e.id;
                                 ++n;
                                 return true;
                               })
                  .ok);
  EXPECT_EQ(n, 2500);
}

TEST_P(StoreTest, DetectorInsertIfMissingDoesNotOverwrite) {
  DetectorConfig d;
  d.id = "sqli";
  d.name = "SQLi";
  d.stage = "rules";
  d.severity = "high";
  d.config_json = R"({"x":1})";
  ASSERT_TRUE(store_->InsertDetectorIfMissing(d).ok);
  DetectorConfig d2 = d;
  d2.severity = "low";
  d2.enabled = false;
  d2.config_json = R"({"x":2})";
  ASSERT_TRUE(store_->InsertDetectorIfMissing(d2).ok);
  auto got = store_->GetDetector("sqli");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->severity, "high") << "insert-if-missing overwrote";
  EXPECT_TRUE(got->enabled);
  EXPECT_EQ(got->config_json, R"({"x":1})");
  d2.updated_at = 7;
  d2.updated_by = 3;
  ASSERT_TRUE(store_->UpdateDetector(d2).ok);
  got = store_->GetDetector("sqli");
  EXPECT_EQ(got->config_json, R"({"x":2})");
  EXPECT_FALSE(got->enabled);
  EXPECT_EQ(got->updated_at, 7);
  EXPECT_EQ(got->updated_by, 3);
  DetectorConfig r;
  r.id = "rate_limit";
  r.name = "Rate";
  r.stage = "rules";
  ASSERT_TRUE(store_->InsertDetectorIfMissing(r).ok);
  EXPECT_EQ(store_->ListDetectors().size(), 2u);
  EXPECT_FALSE(store_->GetDetector("nope"));
}

TEST_P(StoreTest, ListEntries) {
  ListEntry e;
  e.list = "blacklist";
  e.kind = "cidr";
  e.value = "10.0.0.0/8";
  e.reason = "scanner";
  e.api_id = 3;
  e.created_by = 1;
  e.created_at = 10;
  e.expires_at = 20;
  ASSERT_TRUE(store_->AddListEntry(e).ok);
  ListEntry w = e;
  w.list = "whitelist";
  w.kind = "ip";
  w.value = "192.0.2.1";
  ASSERT_TRUE(store_->AddListEntry(w).ok);
  EXPECT_NE(e.id, w.id);
  auto black = store_->ListEntries("blacklist");
  ASSERT_EQ(black.size(), 1u);
  EXPECT_EQ(black[0].id, e.id);
  EXPECT_EQ(black[0].value, "10.0.0.0/8");
  EXPECT_EQ(black[0].reason, "scanner");
  EXPECT_EQ(black[0].api_id, 3);
  EXPECT_EQ(black[0].expires_at, 20);
  EXPECT_EQ(store_->ListEntries("whitelist").size(), 1u);
  store_->DeleteListEntry("whitelist", e.id);  // wrong list: must not delete
  EXPECT_TRUE(store_->GetListEntry(e.id));
  ASSERT_TRUE(store_->DeleteListEntry("blacklist", e.id).ok);
  EXPECT_FALSE(store_->GetListEntry(e.id));
  EXPECT_TRUE(store_->ListEntries("blacklist").empty());
}

TEST_P(StoreTest, AuditIsNewestFirstWithPaging) {
  for (int i = 0; i < 5; ++i) {
    AuditEntry a;
    a.ts_ms = 1000 + i;
    a.user_id = 1;
    a.username = "admin";
    a.action = "act" + std::to_string(i);
    a.target = "api:" + std::to_string(i);
    a.client_ip = "127.0.0.1";
    a.details_json = R"({"i":)" + std::to_string(i) + "}";
    ASSERT_TRUE(store_->AddAudit(a).ok);
  }
  auto page1 = store_->ListAudit(2, 0);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].action, "act4");
  EXPECT_EQ(page1[1].action, "act3");
  EXPECT_EQ(page1[0].details_json, R"({"i":4})");
  EXPECT_EQ(page1[0].ts_ms, 1004);
  auto page2 = store_->ListAudit(2, page1[1].id);
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].action, "act2");
  auto page3 = store_->ListAudit(2, page2[1].id);
  ASSERT_EQ(page3.size(), 1u);
  EXPECT_EQ(page3[0].action, "act0");
  EXPECT_EQ(store_->ListAudit(100, 0).size(), 5u);
}

TEST_P(StoreTest, SettingsAndRevokedTokens) {
  EXPECT_FALSE(store_->GetSetting("k"));
  ASSERT_TRUE(store_->PutSetting("k", "v1").ok);
  ASSERT_TRUE(store_->PutSetting("k", "v2").ok);
  ASSERT_TRUE(store_->PutSetting("other", std::string(100000, 'x')).ok);
  EXPECT_EQ(store_->GetSetting("k"), "v2");
  EXPECT_EQ(store_->GetSetting("other")->size(), 100000u);

  ASSERT_TRUE(store_->RevokeToken("jti1", 4102444800).ok);
  ASSERT_TRUE(store_->RevokeToken("jti1", 4102444800).ok) << "revoking twice is fine";
  ASSERT_TRUE(store_->RevokeToken("old", 1).ok);
  EXPECT_TRUE(store_->IsTokenRevoked("jti1"));
  EXPECT_FALSE(store_->IsTokenRevoked("jti2"));
  auto list = store_->ListRevokedTokens();
  ASSERT_EQ(list.size(), 1u) << "expired revocations are not listed";
  EXPECT_EQ(list[0].first, "jti1");
  EXPECT_EQ(list[0].second, 4102444800);
}

TEST_P(StoreTest, BusLeasesAreExclusiveUntilTheyExpire) {
  ASSERT_TRUE(store_->SeedBusPartitions(4).ok);
  ASSERT_TRUE(store_->SeedBusPartitions(4).ok) << "seeding again keeps the rows";
  ASSERT_EQ(store_->ListBusLeases().size(), 4u);
  bool got = false;
  ASSERT_TRUE(store_->TakeBusLease(2, "a", 1000, 11000, &got).ok);
  EXPECT_TRUE(got);
  ASSERT_TRUE(store_->TakeBusLease(2, "b", 5000, 15000, &got).ok);
  EXPECT_FALSE(got) << "held by a until 11000";
  ASSERT_TRUE(store_->TakeBusLease(2, "a", 6000, 16000, &got).ok);
  EXPECT_TRUE(got) << "renewal by the holder";
  ASSERT_TRUE(store_->TakeBusLease(2, "b", 16001, 26001, &got).ok);
  EXPECT_TRUE(got) << "expired: b takes over";
  auto l = store_->ListBusLeases()[2];
  EXPECT_EQ(l.holder, "b");
  EXPECT_EQ(l.expires_at_ms, 26001);
  EXPECT_EQ(l.epoch, 2) << "one increment per change of holder";
  EXPECT_EQ(l.acquired_at_ms, 16001);
  ASSERT_TRUE(store_->ReleaseBusLease(2, "a").ok);
  EXPECT_EQ(store_->ListBusLeases()[2].holder, "b") << "only the holder releases";
  ASSERT_TRUE(store_->ReleaseBusLease(2, "b").ok);
  ASSERT_TRUE(store_->TakeBusLease(2, "c", 17000, 27000, &got).ok);
  EXPECT_TRUE(got) << "released: free at once";

  ASSERT_TRUE(store_->BusHeartbeat("a", 1000, 5000, 1000).ok);
  ASSERT_TRUE(store_->BusHeartbeat("b", 1000, 9000, 1000).ok);
  auto members = store_->BusMembers(6000);
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].instance_id, "b");
  EXPECT_EQ(members[0].expires_at_ms, 9000);
  ASSERT_TRUE(store_->BusLeave("b").ok);
  EXPECT_TRUE(store_->BusMembers(6000).empty());
}

TEST_P(StoreTest, BusOutboxRunsAdvanceAndReadTheirEvents) {
  const int64_t api = MakeApi(MakeUser("outbox"), "ko");
  std::vector<Event> v;
  for (int i = 0; i < 5; ++i) v.push_back(MakeEvent(api, 100 + i, "/o/" + std::to_string(i)));
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(v, out).ok);
  const int64_t first = v[0].id;
  EXPECT_EQ(store_->BusOutboxEvents(), 0);
  ASSERT_TRUE(store_->AddBusOutbox({{first, first + 3, 7}, {first + 4, first + 4, 8}}).ok);
  ASSERT_TRUE(store_->AddBusOutbox({{first, first + 3, 9}}).ok)
      << "a run recorded twice is kept once";
  EXPECT_EQ(store_->BusOutboxEvents(), 5);
  auto runs = store_->ListBusOutbox(10);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].first_id, first);
  EXPECT_EQ(runs[0].last_id, first + 3);
  EXPECT_EQ(runs[0].created_at_ms, 7);
  EXPECT_EQ(store_->ListBusOutbox(1).size(), 1u);
  auto events = store_->EventsByIdRange(first, first + 3, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, first);
  EXPECT_EQ(events[1].endpoint, "/o/1");
  ASSERT_TRUE(store_->AdvanceBusOutbox(first, first + 1).ok);
  runs = store_->ListBusOutbox(10);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].first_id, first + 2) << "advanced past what was published";
  EXPECT_EQ(store_->BusOutboxEvents(), 3);
  ASSERT_TRUE(store_->AdvanceBusOutbox(first, first + 3).ok);
  EXPECT_EQ(store_->ListBusOutbox(10)[0].first_id, first + 2) << "no run starts there any more";
  ASSERT_TRUE(store_->AdvanceBusOutbox(first + 2, first + 3).ok);
  ASSERT_TRUE(store_->AdvanceBusOutbox(first + 4, first + 4).ok);
  EXPECT_TRUE(store_->ListBusOutbox(10).empty());
  EXPECT_EQ(store_->BusOutboxEvents(), 0);
}

TEST_P(StoreTest, OneActiveAlertPerFingerprint) {
  auto alert = [](const std::string& status) {
    AlertRecord a;
    a.fingerprint = std::string(64, 'f');
    a.api_id = 1;
    a.detector = "sqli";
    a.severity = "high";
    a.severity_rank = 3;
    a.status = status;
    a.actor = "ip:198.51.100.1";
    a.count = 1;
    a.evidence_json = "{}";
    return a;
  };
  AlertRecord first = alert("open"), second = alert("acknowledged"), old = alert("resolved");
  std::vector<AlertRecord*> v{&first};
  ASSERT_TRUE(store_->SaveAlerts(v).ok);
  v = {&second};
  Status st = store_->SaveAlerts(v);
  EXPECT_FALSE(st.ok);
  EXPECT_TRUE(st.conflict) << st.message;
  v = {&old};
  EXPECT_TRUE(store_->SaveAlerts(v).ok) << "resolved alerts do not count";
  auto active = store_->ActiveAlertsByFingerprint({first.fingerprint, std::string(64, 'x')});
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].id, first.id);
  first.status = "resolved";
  v = {&first};
  ASSERT_TRUE(store_->SaveAlerts(v).ok);
  second.id = 0;
  v = {&second};
  EXPECT_TRUE(store_->SaveAlerts(v).ok) << "a new alert once the old one is resolved";
}

TEST_P(StoreTest, ReopenKeepsDataAndIdsAreNotReused) {
  int64_t u = MakeUser("u");
  int64_t keep = MakeApi(u, "keep"), gone = MakeApi(u, "gone");
  std::vector<Event> v = {MakeEvent(keep, 5, "/x"), MakeEvent(gone, 6, "/y"),
                          MakeEvent(gone, 7, "/z")};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(v, out).ok);
  const int64_t max_id = v[2].id;
  ASSERT_TRUE(store_->PutSetting("identity_key_enc", "secret").ok);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_->CountUsers(), 1);
  EXPECT_EQ(store_->CountEvents(), 3);
  EXPECT_TRUE(store_->GetApiByKeyHash("keep"));
  EXPECT_EQ(store_->GetSetting("identity_key_enc"), "secret");
  EXPECT_TRUE(store_->Ping().ok);
  // The newest events go away with their API; new events still get new ids.
  ASSERT_TRUE(store_->DeleteApi(gone).ok);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<Event> w = {MakeEvent(keep, 8, "/w")};
  ASSERT_TRUE(Insert(w, out).ok);
  EXPECT_GT(w[0].id, max_id);
}

TEST_P(StoreTest, MigrationsAreRecordedOnceAndFailuresNameTheFile) {
  using store_internal::Migration;
  std::vector<Migration> m(Embedded().begin(), Embedded().end());
  ASSERT_FALSE(m.empty());
  // The embedded migrations are numbered 1..n without gaps; the test's own follow them.
  const int n = static_cast<int>(m.size());
  auto upto = [](int last) {
    std::vector<int> v;
    for (int i = 1; i <= last; ++i) v.push_back(i);
    return v;
  };
  EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n));
  store_.reset();

  // Re-running the seed migration would fail on the primary key: reopening proves it is applied
  // only once.
  m.push_back({n + 1, "9001_seed.sql",
               "-- a comment; with a semicolon\n"
               "INSERT INTO settings (`key`, value) VALUES ('m2', 'a;b');\n"
               "CREATE TABLE extra_2 (x INTEGER NOT NULL);\n"});
  std::string err;
  store_ = OpenWith(m, &err);
  ASSERT_TRUE(store_) << err;
  EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n + 1));
  EXPECT_EQ(store_->GetSetting("m2"), "a;b");
  store_.reset();
  store_ = OpenWith(m, &err);
  ASSERT_TRUE(store_) << err;
  EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n + 1));
  store_.reset();

  m.push_back(
      {n + 2, "9002_broken.sql", "CREATE TABLE extra_3 (x INTEGER NOT NULL);\nTHIS IS NOT SQL;\n"});
  err.clear();
  EXPECT_FALSE(OpenWith(m, &err));
  EXPECT_NE(err.find("9002_broken.sql"), std::string::npos) << err;
  m.pop_back();
  store_ = OpenWith(m, &err);
  ASSERT_TRUE(store_) << err;
  EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n + 1));
  if (GetParam() == Backend::kSqlite) {
    // SQLite ran the broken one in one transaction: its first statement was rolled back too.
    store_.reset();
    m.push_back({n + 2, "9002_fixed.sql", "CREATE TABLE extra_3 (y INTEGER);"});
    store_ = OpenWith(m, &err);
    ASSERT_TRUE(store_) << err;
    EXPECT_EQ(store_internal::AppliedMigrations(*store_), upto(n + 2));
  }
}

TEST_P(StoreTest, ConcurrentWritersAndReaders) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  constexpr int kThreads = 4, kBatches = 15, kAgentPerBatch = 40, kAppPerBatch = 10;
  std::atomic<int64_t> agent_inserted{0}, failures{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<Event> v;
        // Every thread sends the same agent sequence numbers: each must be stored once.
        for (int k = 0; k < kAgentPerBatch; ++k) {
          v.push_back(AgentEvent(api, 100 + b, "shared", b * kAgentPerBatch + k));
        }
        for (int k = 0; k < kAppPerBatch; ++k) v.push_back(MakeEvent(api, 100 + b, "/t"));
        std::vector<InsertOutcome> out;
        Status s = store_->InsertEvents(v, out);
        if (!s.ok) {
          ++failures;
          ADD_FAILURE() << "thread " << t << ": " << s.message;
          continue;
        }
        for (int k = 0; k < kAgentPerBatch; ++k) {
          agent_inserted += out[k] == InsertOutcome::kInserted;
        }
      }
    });
  }
  std::thread reader([&] {
    while (!done) {
      LogFilter f;
      f.limit = 50;
      store_->QueryLogs(f);
      store_->CountEvents();
      if (!store_->GetUserByName("u")) ++failures;
    }
  });
  for (auto& th : threads) th.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(agent_inserted, kBatches * kAgentPerBatch);
  EXPECT_EQ(store_->CountEvents(), kBatches * kAgentPerBatch + kThreads * kBatches * kAppPerBatch);
}

// Tests that only make sense on one backend.
using SqliteOnlyTest = StoreTest;
using MysqlOnlyTest = StoreTest;

TEST_P(SqliteOnlyTest, SurvivesSigkillAfterInsertReturns) {
  store_.reset();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string err;
    auto s = OpenSqliteStore(sqlite_, &err);
    char ok = 0;
    if (s) {
      User u;
      u.username = "child";
      u.password_hash = "x";
      u.role = "user";
      s->CreateUser(u);
      Api a;
      a.name = "a";
      a.owner_id = u.id;
      a.ingest_key_hash = "child";
      s->CreateApi(a);
      std::vector<Event> v;
      for (int i = 0; i < 500; ++i) v.push_back(MakeEvent(a.id, 10 + i, "/k"));
      std::vector<InsertOutcome> out;
      ok = s->InsertEvents(v, out).ok ? 1 : 0;
    }
    [[maybe_unused]] ssize_t n = ::write(fds[1], &ok, 1);
    ::raise(SIGKILL);  // no destructors, no checkpoint, no close
    ::_exit(1);
  }
  ::close(fds[1]);
  char ok = 0;
  ASSERT_EQ(::read(fds[0], &ok, 1), 1);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(ok, 1) << "child could not insert";
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->CountEvents(), 500);
  EXPECT_TRUE(store_->GetUserByName("child"));
}

TEST_P(MysqlOnlyTest, ReconnectsAfterTheServerDropsConnections) {
  int64_t api = MakeApi(MakeUser("u"), "k");
  std::vector<Event> v = {MakeEvent(api, 1, "/a")};
  std::vector<InsertOutcome> out;
  ASSERT_TRUE(Insert(v, out).ok);
  ASSERT_EQ(store_->CountUsers(), 1);
  // Kill every connection the store holds (a server restart or idle timeout looks the same).
  auto admin = MysqlAdmin(mysql_);
  std::unique_ptr<::sql::PreparedStatement> q(admin->prepareStatement(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()"));
  q->setString(1, mysql_.database);
  std::unique_ptr<::sql::ResultSet> rs(q->executeQuery());
  std::vector<int64_t> ids;
  while (rs->next()) ids.push_back(rs->getInt64(1));
  ASSERT_FALSE(ids.empty());
  for (int64_t id : ids) {
    std::unique_ptr<::sql::Statement> k(admin->createStatement());
    k->execute("KILL CONNECTION " + std::to_string(id));
  }
  EXPECT_EQ(store_->CountUsers(), 1) << "a read reconnects once";
  std::vector<Event> w = {MakeEvent(api, 2, "/b")};
  Status s = Insert(w, out);
  EXPECT_TRUE(s.ok) << s.message;
  EXPECT_EQ(store_->CountEvents(), 2);
  EXPECT_TRUE(store_->Ping().ok);
}

std::string BackendName(const ::testing::TestParamInfo<Backend>& p) {
  return p.param == Backend::kMysql ? "MySQL" : "SQLite";
}

#ifdef BOING_STORE_TEST_MYSQL
INSTANTIATE_TEST_SUITE_P(MySQL, StoreTest, ::testing::Values(Backend::kMysql), BackendName);
INSTANTIATE_TEST_SUITE_P(MySQL, FilterTest, ::testing::Values(Backend::kMysql), BackendName);
INSTANTIATE_TEST_SUITE_P(MySQL, MysqlOnlyTest, ::testing::Values(Backend::kMysql), BackendName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SqliteOnlyTest);
#else
INSTANTIATE_TEST_SUITE_P(SQLite, StoreTest, ::testing::Values(Backend::kSqlite), BackendName);
INSTANTIATE_TEST_SUITE_P(SQLite, FilterTest, ::testing::Values(Backend::kSqlite), BackendName);
INSTANTIATE_TEST_SUITE_P(SQLite, SqliteOnlyTest, ::testing::Values(Backend::kSqlite), BackendName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(MysqlOnlyTest);

TEST(StoreOpen, ErrorsNameWhatFailed) {
  std::string err;
  SqliteOptions o;
  o.path = "/nonexistent-dir-boing/x/boing.db";
  EXPECT_FALSE(OpenSqliteStore(o, &err));
  EXPECT_NE(err.find(o.path), std::string::npos) << err;

  MysqlOptions m;
  m.host = "127.0.0.1";
  m.port = FreeLocalPort();
  m.user = "nobody";
  m.database = "boing_x";
  err.clear();
  EXPECT_FALSE(OpenMysqlStore(m, &err));
  EXPECT_NE(err.find("127.0.0.1:" + std::to_string(m.port)), std::string::npos) << err;

  m.database = "bad-name; DROP";
  err.clear();
  EXPECT_FALSE(OpenMysqlStore(m, &err));
  EXPECT_NE(err.find("database name"), std::string::npos) << err;
}

TEST(StoreInternals, SplitSqlScriptRespectsQuotesAndComments) {
  auto parts = store_internal::SplitSqlScript(
      "-- head; comment\nCREATE TABLE a (x TEXT DEFAULT ';');\n"
      "/* block; */ INSERT INTO a VALUES ('it''s;', \"q;\", `c;`); # tail;\n  ;\n"
      "SELECT '\\';'");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], "CREATE TABLE a (x TEXT DEFAULT ';')");
  EXPECT_EQ(parts[1], "INSERT INTO a VALUES ('it''s;', \"q;\", `c;`)");
  EXPECT_EQ(parts[2], "SELECT '\\';'");
}

TEST(StoreInternals, HeadersJsonRoundTripsAndHandlesBadUtf8) {
  std::vector<std::pair<std::string, std::string>> h = {
      {"A", "1"}, {"A", "2"}, {"ctl", std::string("\x00\x1f\x7f", 3)}, {"u", "\xE2\x82\xAC"}};
  std::string json;
  store_internal::AppendHeadersJson(h, json);
  std::vector<std::pair<std::string, std::string>> back;
  ASSERT_TRUE(store_internal::ParseHeadersJson(json, back)) << json;
  EXPECT_EQ(back, h);
  json.clear();
  store_internal::AppendHeadersJson({{"bad", "\xC3\x28"}}, json);
  ASSERT_TRUE(store_internal::ParseHeadersJson(json, back)) << json;
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].second, "\xEF\xBF\xBD(");  // replaced, not dropped
  json.clear();
  store_internal::AppendHeadersJson({}, json);
  EXPECT_EQ(json, "[]");
}
#endif

}  // namespace
}  // namespace boing
