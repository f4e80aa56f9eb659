// AlertManager (grouping, dedup, auto-resolve, mutes, automatic response) on a real SQLite store,
// and the pure parts of notification delivery (signatures, routing, masking, backoff).
#include "alerts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "boing/crypto.h"
#include "notify.h"

namespace boing {
namespace {

class AlertManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("boing-alerts-test-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
    SqliteOptions o;
    o.path = (dir_ / "boing.db").string();
    std::string err;
    store_ = OpenSqliteStore(o, &err);
    ASSERT_TRUE(store_) << err;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<AlertManager> Make(AlertSettings s = {}) {
    auto m = std::make_unique<AlertManager>(*store_, s, [this] { return now_; });
    m->SetListener([this](const std::string& action, const AlertRecord& a) {
      actions_.push_back(action + ":" + std::to_string(a.id));
    });
    m->SetNotifier(
        [this](const AlertRecord& a, bool muted) { (muted ? muted_ : notified_).push_back(a.id); });
    EXPECT_TRUE(m->Load().ok);
    return m;
  }
  static FindingRecord F(double ts, std::string actor = "ip:203.0.113.9",
                         std::string detector = "sqli", std::string severity = "high",
                         int rank = 3) {
    FindingRecord f;
    f.api_id = 7;
    f.event_id = static_cast<int64_t>(ts);
    f.ts = ts;
    f.detector = std::move(detector);
    f.severity = std::move(severity);
    f.severity_rank = rank;
    f.actor = std::move(actor);
    f.endpoint_template = "/users/{id}";
    f.message = "finding at " + std::to_string(ts);
    f.evidence_json = R"({"rule":"x"})";
    return f;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  int64_t now_ = 1700000000;
  std::vector<std::string> actions_;
  std::vector<int64_t> notified_, muted_;
};

TEST_F(AlertManagerTest, ThousandFindingsOfOneFingerprintAreOneAlertNotifiedOnce) {
  auto m = Make();
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<FindingRecord> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(F(1700000000 + batch * 10 + i * 0.01));
    m->OnFindings(fs);
  }
  ASSERT_EQ(notified_.size(), 1u);
  auto a = store_->GetAlert(notified_[0]);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->count, 1000);
  EXPECT_EQ(a->status, "open");
  EXPECT_DOUBLE_EQ(a->first_seen, 1700000000);
  EXPECT_NEAR(a->last_seen, 1700000090.99, 1e-6);
  EXPECT_EQ(a->fingerprint, AlertFingerprint("sqli", "ip:203.0.113.9", 7, "/users/{id}"));
  EXPECT_EQ(store_->ActiveAlerts().size(), 1u);
  // One "created", then one "updated" per later batch.
  ASSERT_EQ(actions_.size(), 10u);
  EXPECT_EQ(actions_[0], "created:" + std::to_string(a->id));
  EXPECT_EQ(actions_[1], "updated:" + std::to_string(a->id));
}

TEST_F(AlertManagerTest, FingerprintPartsSeparateAlerts) {
  auto m = Make();
  m->OnFindings(
      {F(1700000000), F(1700000001, "ip:203.0.113.10"), F(1700000002, "ip:203.0.113.9", "xss")});
  EXPECT_EQ(notified_.size(), 3u);
  EXPECT_NE(AlertFingerprint("a", "b", 1, "c"), AlertFingerprint("a", "b", 1, "c2"));
  EXPECT_NE(AlertFingerprint("ab", "", 1, ""), AlertFingerprint("a", "b", 1, ""));
}

TEST_F(AlertManagerTest, GapLongerThanWindowStartsANewAlert) {
  AlertSettings s;
  s.group_window_s = 60;
  auto m = Make(s);
  m->OnFindings({F(1700000000)});
  m->OnFindings({F(1700000050)});  // within 60 s of last_seen
  m->OnFindings({F(1700000200)});  // 150 s later: new alert, old one resolved
  ASSERT_EQ(notified_.size(), 2u);
  auto old = store_->GetAlert(notified_[0]);
  EXPECT_EQ(old->status, "resolved");
  EXPECT_EQ(old->resolved_by, "auto");
  EXPECT_EQ(old->count, 2);
  EXPECT_EQ(store_->GetAlert(notified_[1])->count, 1);
}

TEST_F(AlertManagerTest, QuietAlertsResolveAutomaticallySurvivingRestart) {
  AlertSettings s;
  s.resolve_after_s = 100;
  auto m = Make(s);
  m->OnFindings({F(1700000000)});
  now_ += 99;
  m->Sweep();
  EXPECT_EQ(store_->GetAlert(notified_[0])->status, "open");
  // A new manager (restart) picks the alert up and keeps grouping into it.
  auto m2 = Make(s);
  m2->OnFindings({F(1700000010)});
  EXPECT_EQ(notified_.size(), 1u);
  EXPECT_EQ(store_->GetAlert(notified_[0])->count, 2);
  now_ += 100;
  m2->Sweep();
  auto a = store_->GetAlert(notified_[0]);
  EXPECT_EQ(a->status, "resolved");
  EXPECT_EQ(a->resolved_by, "auto");
  EXPECT_EQ(m2->ActiveCount(), 0u);
}

TEST_F(AlertManagerTest, AcknowledgeResolveAndConflict) {
  auto m = Make();
  m->OnFindings({F(1700000000)});
  Status st;
  auto a = m->Acknowledge(notified_[0], "alice", "looking", &st);
  ASSERT_TRUE(a) << st.message;
  EXPECT_EQ(a->status, "acknowledged");
  EXPECT_EQ(store_->GetAlert(a->id)->acknowledged_by, "alice");
  m->OnFindings({F(1700000001)});  // still groups into the acknowledged alert
  EXPECT_EQ(notified_.size(), 1u);
  auto r = m->Resolve(a->id, "alice", "", &st);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, "resolved");
  EXPECT_FALSE(m->Acknowledge(a->id, "bob", "", &st));
  EXPECT_TRUE(st.conflict);
  EXPECT_FALSE(m->Acknowledge(9999, "bob", "", &st));
  EXPECT_TRUE(st.ok);              // unknown
  m->OnFindings({F(1700000002)});  // resolved: a new alert
  EXPECT_EQ(notified_.size(), 2u);
}

TEST_F(AlertManagerTest, MatcherMuteRecordsButDoesNotNotifyUntilItExpires) {
  AlertSettings s;
  s.group_window_s = 10;
  auto m = Make(s);
  MuteRecord mute;
  mute.actor = "ip:203.0.113.9";
  mute.expires_at = now_ + 60;
  ASSERT_TRUE(m->AddMute(mute).ok);
  m->OnFindings({F(1700000000)});
  EXPECT_EQ(muted_.size(), 1u);
  EXPECT_TRUE(notified_.empty());
  m->OnFindings({F(1700000000, "ip:203.0.113.77")});  // another actor: not muted
  EXPECT_EQ(notified_.size(), 1u);
  now_ += 61;
  m->OnFindings({F(1700000100)});  // past the window: a new alert, the mute expired
  EXPECT_EQ(notified_.size(), 2u);
  EXPECT_EQ(muted_.size(), 1u);
  ASSERT_TRUE(m->DeleteMute(mute.id).ok);
  EXPECT_TRUE(store_->ListMutes().empty());
}

TEST_F(AlertManagerTest, PerAlertMute) {
  auto m = Make();
  m->OnFindings({F(1700000000)});
  Status st;
  auto a = m->Mute(notified_[0], now_ + 30, &st);
  ASSERT_TRUE(a);
  EXPECT_TRUE(m->IsMuted(*a, now_));
  EXPECT_FALSE(m->IsMuted(*a, now_ + 31));
  EXPECT_EQ(actions_.back(), "muted:" + std::to_string(a->id));
  EXPECT_EQ(AlertJson(*a, "shop", now_)["muted"], true);
  EXPECT_EQ(AlertJson(*a, "shop", now_ + 31)["muted"], false);
}

TEST_F(AlertManagerTest, AutomaticResponseBlacklistsAndEscalates) {
  AlertSettings s;
  s.autoblock_s = 60;
  s.autoblock_max_s = 200;
  s.autoblock_min_rank = 3;
  s.group_window_s = 10;
  auto m = Make(s);
  int reloads = 0;
  m->SetListsChanged([&] { ++reloads; });
  m->OnFindings({F(1700000000, "ip:203.0.113.9", "malformed", "low", 1)});  // below the bar
  EXPECT_TRUE(store_->ListEntries("blacklist").empty());
  m->OnFindings({F(1700000000)});
  auto bl = store_->ListEntries("blacklist");
  ASSERT_EQ(bl.size(), 1u);
  EXPECT_EQ(bl[0].value, "203.0.113.9");
  EXPECT_EQ(bl[0].expires_at, now_ + 60);
  EXPECT_EQ(reloads, 1);
  // Second offence after the first block expired: twice as long; third: capped.
  for (int64_t expect : {120, 200}) {
    now_ += 1000;
    m->OnFindings({F(static_cast<double>(now_))});
    bl = store_->ListEntries("blacklist");
    EXPECT_EQ(bl.back().expires_at, now_ + expect);
  }
  EXPECT_EQ(bl.size(), 3u);
}

TEST(NotifyTest, WebhookSignatureIsHmacOfTimestampAndBody) {
  std::string sig = WebhookSignature("s3cret", "1700000000", R"({"a":1})");
  EXPECT_EQ(sig, "sha256=" + crypto::Hex(crypto::HmacSha256("s3cret", "1700000000.{\"a\":1}")));
  EXPECT_NE(sig, WebhookSignature("s3cret", "1700000001", R"({"a":1})"));
}

TEST(NotifyTest, RoutingBySeverityAndApi) {
  ChannelRecord c;
  c.min_severity = "high";
  AlertRecord a;
  a.api_id = 3;
  a.severity_rank = 2;
  EXPECT_FALSE(ChannelRoutes(c, a));
  a.severity_rank = 3;
  EXPECT_TRUE(ChannelRoutes(c, a));
  c.api_ids_json = "[4,5]";
  EXPECT_FALSE(ChannelRoutes(c, a));
  c.api_ids_json = "[3]";
  EXPECT_TRUE(ChannelRoutes(c, a));
  c.enabled = false;
  EXPECT_FALSE(ChannelRoutes(c, a));
}

TEST(NotifyTest, ConfigValidationAndMasking) {
  using Json = nlohmann::json;
  EXPECT_EQ(ValidateChannelConfig("email", {{"recipients", {"a@example.com"}}}), "");
  EXPECT_NE(ValidateChannelConfig("email", {{"recipients", Json::array()}}), "");
  EXPECT_NE(ValidateChannelConfig("email", {{"recipients", {"a@example.com\r\nBcc: x@y"}}}), "");
  EXPECT_EQ(ValidateChannelConfig("webhook", {{"url", "https://h.example/x"}, {"secret", "k"}}),
            "");
  EXPECT_NE(ValidateChannelConfig("webhook", {{"url", "ftp://h.example/x"}}), "");
  EXPECT_NE(ValidateChannelConfig("slack", {{"url", "https://h/x"}, {"secret", "k"}}), "");
  EXPECT_NE(ValidateChannelConfig("pager", Json::object()), "");
  Json masked =
      MaskChannelConfig("webhook", {{"url", "https://h.example/hook/T0K3N"}, {"secret", "k"}});
  EXPECT_EQ(masked["url"], "https://h.example/****");
  EXPECT_EQ(masked["has_secret"], true);
  EXPECT_EQ(masked.dump().find("T0K3N"), std::string::npos);
  EXPECT_EQ(masked.dump().find("\"k\""), std::string::npos);
}

TEST(NotifyTest, BackoffDoublesWithJitter) {
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 5; ++attempt) {
    int64_t base = 1000LL << (attempt - 1);
    for (int i = 0; i < 50; ++i) {
      int64_t d = BackoffMillis(1000, attempt, rng);
      EXPECT_GE(d, base / 2);
      EXPECT_LE(d, base * 3 / 2);
    }
  }
}

TEST(NotifyTest, EmailPartsEscapeAndLink) {
  AlertRecord a;
  a.id = 12;
  a.severity = "high";
  a.detector = "xss";
  a.actor = "ip:203.0.113.9";
  a.message = "<script>alert(1)</script>";
  std::string html = EmailHtml(a, "shop", "http://b.example/alerts/12");
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(html.find("href=\"http://b.example/alerts/12\""), std::string::npos);
  EXPECT_NE(EmailText(a, "shop", "http://b.example/alerts/12").find("http://b.example/alerts/12"),
            std::string::npos);
  a.actor = "ip:1.2.3.4\r\nBcc: evil@example.com";
  EXPECT_EQ(EmailSubject(a, "shop", false).find('\n'), std::string::npos);
}

}  // namespace
}  // namespace boing
