// Single-thread pipeline throughput on synthetic mixed traffic: 2,000 client IPs, 300 identities,
// 40 endpoint templates with ids, JSON and form bodies, realistic headers, and 1% attack values
// (SQLi, XSS, traversal, command injection). All rule and statistics detectors on, defaults.
// usage: detect_bench [events (default 1000000)]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "boing/detect/pipeline.h"

int main(int argc, char** argv) {
  using boing::Event;
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  std::mt19937_64 rng(42);
  const char* resources[] = {"users", "orders",  "products", "invoices",
                             "carts", "reviews", "sessions", "payments"};
  const char* attacks[] = {
      "1' or '1'='1",      "<script>alert(1)</script>",  "../../etc/passwd",
      "x; cat /etc/hosts", "1 union select null,null--", "<img src=x onerror=alert(1)>"};
  const char* words[] = {"blue",
                         "shoes",
                         "size 42",
                         "Barcelona",
                         "express",
                         "gift card",
                         "john.doe@example.com",
                         "2024-05-01",
                         "O'Brien",
                         "42"};
  std::vector<Event> pool(100000);
  std::lognormal_distribution<double> lat(3.0, 0.6);
  for (size_t i = 0; i < pool.size(); ++i) {
    Event& e = pool[i];
    e.api_id = 1 + static_cast<int64_t>(rng() % 4);
    e.method = rng() % 5 == 0 ? "POST" : "GET";
    std::string res = resources[rng() % std::size(resources)];
    e.endpoint = "/api/v1/" + res + "/" + std::to_string(rng() % 5000);
    if (rng() % 3 == 0) e.endpoint += "/items/" + std::to_string(rng() % 50);
    bool attack = rng() % 100 == 0;
    std::string value =
        attack ? attacks[rng() % std::size(attacks)] : words[rng() % std::size(words)];
    if (e.method == "GET") {
      e.endpoint += "?q=" + value + "&page=" + std::to_string(rng() % 20);
    } else if (rng() % 2) {
      e.headers.emplace_back("Content-Type", "application/json");
      e.payload = "{\"name\":\"" + value + "\",\"qty\":" + std::to_string(rng() % 9) +
                  ",\"tags\":[\"a\",\"b\"]}";
      e.body_size = static_cast<int64_t>(e.payload.size());
    } else {
      e.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
      e.payload = "name=" + value + "&qty=" + std::to_string(rng() % 9);
      e.body_size = static_cast<int64_t>(e.payload.size());
    }
    e.headers.emplace_back("Accept", "application/json");
    e.headers.emplace_back("Referer", "https://shop.example/" + res);
    e.user_agent = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    e.client_ip = "10." + std::to_string(rng() % 8) + "." + std::to_string(rng() % 250) + ".7";
    if (rng() % 3 == 0) e.identity = "id" + std::to_string(rng() % 300);
    e.status_code = rng() % 50 == 0 ? 404 : 200;
    e.latency_ms = lat(rng);
    e.response_size = static_cast<int64_t>(200 + rng() % 4000);
  }
  boing::detect::Pipeline p;
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
    e.timestamp = 1.7e9 + static_cast<double>(i) * 1e-4;  // 10,000 events/s of traffic time
    out.clear();
    p.Process(e, out);
    findings += out.size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = cpu_now() - cpu0;
  auto c = p.Counters();
  std::printf(
      "{\"events\":%zu,\"wall_seconds\":%.3f,\"cpu_seconds\":%.3f,\"events_per_wall_second\":%.0f,"
      "\"events_per_cpu_second\":%.0f,\"findings\":%zu,\"actors\":%zu,\"templates\":%zu}\n",
      n, secs, cpu, static_cast<double>(n) / secs, static_cast<double>(n) / cpu, findings, c.actors,
      c.templates);
  return 0;
}
