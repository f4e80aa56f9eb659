// traffic_spike: an API's requests per minute against its hour-of-week baseline.
#include <gtest/gtest.h>

#include "boing/detect/pipeline.h"

namespace boing::detect {
namespace {

constexpr double kMonday = 1767571200;  // 2026-01-05 00:00 UTC, a Monday

Event Ev(double t, int64_t api = 1) {
  Event e;
  e.api_id = api;
  e.timestamp = t;
  e.method = "GET";
  e.endpoint = "/items/7";
  e.client_ip = "198.51.100." + std::to_string(static_cast<int64_t>(t) % 200 + 1);
  e.status_code = 200;
  e.latency_ms = 20;
  return e;
}

struct Spikes {
  Pipeline p;
  std::vector<Finding> found;
  explicit Spikes(nlohmann::json config = nlohmann::json::object()) {
    std::vector<DetectorSettings> all;
    for (const auto& id : ImplementedDetectors()) {
      DetectorSettings d;
      d.id = id;
      d.enabled = id == "traffic_spike";
      d.severity = Severity::kLow;
      if (d.enabled) d.config = config;
      all.push_back(d);
    }
    p.Configure(all);
  }
  // `n` requests spread over the minute starting at `t`; returns the spike findings.
  std::vector<Finding> Minute(double t, int n, int64_t api = 1) {
    std::vector<Finding> out, spikes;
    for (int i = 0; i < n; ++i) p.Process(Ev(t + 60.0 * i / n, api), out);
    for (auto& f : out) {
      if (f.detector == "traffic_spike") spikes.push_back(std::move(f));
    }
    return spikes;
  }
};

TEST(TrafficSpike, FiresAboveFactorTimesTheBaselineOncePerMinute) {
  Spikes s;
  double t = kMonday + 9 * 3600;
  for (int m = 0; m < 30; ++m) EXPECT_TRUE(s.Minute(t += 60, 40).empty()) << m;
  // 100 a minute is 2.5 x 40: not yet.
  EXPECT_TRUE(s.Minute(t += 60, 100).empty());
  auto f = s.Minute(t += 60, 400);
  ASSERT_EQ(f.size(), 1u);  // one per minute, not one per event past the threshold
  EXPECT_EQ(f[0].actor, "api:1");
  EXPECT_EQ(f[0].severity, Severity::kLow);
  const auto& ev = f[0].evidence;
  EXPECT_EQ(ev["baseline"], "hour_of_week");
  EXPECT_EQ(ev["hour_of_week"], 9);  // Monday 09h
  EXPECT_EQ(ev["hour_of_week_name"], "Mon 09h UTC");
  // 30 minutes of 40 (exact mean), then the 100-minute weighted by alpha 0.05: 43.
  EXPECT_NEAR(ev["baseline_per_minute"].get<double>(), 43, 0.01);
  // It fires on the request that crosses 3 x the baseline.
  EXPECT_EQ(ev["requests_this_minute"], 130);
  EXPECT_NEAR(f[0].score, 1.0, 0.05);
  // Cool-down (600 s): the next spike minute right after raises nothing.
  EXPECT_TRUE(s.Minute(t += 60, 400).empty());
  // Another API has its own baseline (none yet: nothing).
  EXPECT_TRUE(s.Minute(t, 400, 2).empty());
}

TEST(TrafficSpike, MinimumVolumeAndWarmUp) {
  Spikes s;
  double t = kMonday;
  // Before min_baseline_minutes (10) whole minutes there is no baseline.
  EXPECT_TRUE(s.Minute(t += 60, 2).empty());
  EXPECT_TRUE(s.Minute(t += 60, 500).empty());
  Spikes low;
  for (int m = 0; m < 40; ++m) low.Minute(kMonday + 60 * m, 2);
  // 50 a minute is 25 x a baseline of 2, but under min_requests_per_minute (60).
  EXPECT_TRUE(low.Minute(kMonday + 60 * 40, 50).empty());
  EXPECT_EQ(low.Minute(kMonday + 60 * 41, 70).size(), 1u);
}

TEST(TrafficSpike, SeasonalBaselineKnowsTheBusyHour) {
  // Two weeks: 2 requests a minute, except Mondays 09-10h UTC with 80 a minute.
  Spikes s(nlohmann::json{{"min_requests_per_minute", 20}});
  std::vector<double> early;
  for (int week = 0; week < 2; ++week) {
    for (int m = 0; m < 7 * 1440; ++m) {
      double t = kMonday + week * 7 * 86400.0 + m * 60.0;
      bool busy = m / 60 == 9;
      for (const auto& f : s.Minute(t, busy ? 80 : 2)) early.push_back(f.timestamp);
    }
  }
  // Only the first busy hour stood out (against all hours), until that hour of the week had
  // min_hour_of_week_minutes (30) of its own; one finding per cooldown_seconds (600).
  ASSERT_FALSE(early.empty());
  for (double t : early) {
    EXPECT_GE(t, kMonday + 9 * 3600) << t;
    EXPECT_LT(t, kMonday + 9 * 3600 + 30 * 60) << t;
  }
  EXPECT_LE(early.size(), 3u);
  double week3 = kMonday + 14 * 86400.0;
  // Monday 09h at its usual level: normal for that hour.
  for (int m = 0; m < 60; ++m) {
    EXPECT_TRUE(s.Minute(week3 + 9 * 3600 + m * 60, 80).empty()) << m;
  }
  // The same volume on Tuesday 09h is a spike against Tuesday's baseline.
  auto f = s.Minute(week3 + 86400 + 9 * 3600, 80);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].evidence["baseline"], "hour_of_week");
  EXPECT_EQ(f[0].evidence["hour_of_week"], 24 + 9);
  EXPECT_LT(f[0].evidence["baseline_per_minute"].get<double>(), 5);
}

TEST(TrafficSpike, DisabledThroughConfigure) {
  Spikes s;
  for (int m = 0; m < 30; ++m) s.Minute(kMonday + 60 * m, 40);
  DetectorSettings off;
  off.id = "traffic_spike";
  off.enabled = false;
  s.p.Configure({off});
  EXPECT_TRUE(s.Minute(kMonday + 60 * 30, 400).empty());
}

}  // namespace
}  // namespace boing::detect
