#include "boing/agent/agent.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "boing/agent/metrics.h"
#include "boing/agent/spool.h"
#include "boing/agent/tls_discovery.h"
#include "boing/agent/tracker.h"
#include "boing/agent/uplink.h"
#include "boing/event.h"

namespace boing::agent {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void LogErr(const std::string& msg) { std::fprintf(stderr, "boing-agent: %s\n", msg.c_str()); }

// Sleeps up to `d`, waking early when a signal asks to stop.
void SleepUnlessStopped(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!g_stop.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// The enrolment credentials: from the state directory, or by enrolling once with the token.
bool ObtainCredentials(const AgentOptions& o, const std::string& host, Credentials& out) {
  std::string error;
  if (LoadCredentials(o.state_dir, out, &error)) {
    if (out.server != o.server)
      LogErr("enrolled at " + out.server + "; sending to " + o.server + " as configured");
    LogErr("agent " + out.agent_id + " (credentials from " + o.state_dir + "/agent.json)");
    return true;
  }
  if (!error.empty()) {
    LogErr(error);
    return false;
  }
  if (o.enroll_token.empty()) {
    LogErr("not enrolled yet: pass --enroll-token TOKEN (or server.enroll_token) once");
    return false;
  }
  HttpClient http(HttpClientOptions{o.ca_file, o.http_timeout_ms, 3000});
  Backoff backoff(std::chrono::milliseconds(1000), std::chrono::milliseconds(30000));
  while (!g_stop.load()) {
    bool fatal = false;
    if (Enroll(http, o.server, o.enroll_token, host, out, &error, &fatal)) {
      if (!SaveCredentials(o.state_dir, out, &error)) {
        LogErr(error);
        return false;
      }
      LogErr("enrolled as agent " + out.agent_id + " (credentials in " + o.state_dir +
             "/agent.json)");
      return true;
    }
    LogErr(error);
    if (fatal) return false;
    SleepUnlessStopped(backoff.Next());
  }
  return false;
}

// Test-only event source: NDJSON events from a file (tailed with --replay-follow).
class ReplaySource {
 public:
  explicit ReplaySource(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~ReplaySource() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // Complete lines read since the last call; *eof when the file has no more bytes now.
  std::vector<std::string> Lines(bool* eof) {
    std::vector<std::string> lines;
    char buf[65536];
    *eof = false;
    for (int rounds = 0; rounds < 16; ++rounds) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        *eof = true;
        break;
      }
      partial_.append(buf, static_cast<size_t>(n));
    }
    size_t start = 0, nl;
    while ((nl = partial_.find('\n', start)) != std::string::npos) {
      if (nl > start) lines.emplace_back(partial_, start, nl - start);
      start = nl + 1;
    }
    partial_.erase(0, start);
    return lines;
  }

 private:
  int fd_;
  std::string partial_;
};

}  // namespace

int RunCheck(const AgentOptions& options) {
  bool ok = true;
  auto line = [](const std::string& what, bool good, const std::string& detail) {
    std::printf("%-28s %s%s%s\n", what.c_str(), good ? "yes" : "NO", detail.empty() ? "" : "  ",
                detail.c_str());
  };
  // The configuration first: file and flags were parsed before we got here (errors exit 2 with
  // FILE:LINE: FIELD), so what is left is what only holds at run time.
  std::printf("%-28s %s\n", "configuration",
              options.config_file.empty() ? "(no --config: defaults and flags)"
                                          : (options.config_file + " valid").c_str());
  if (options.to_stdout) {
    line("server", true, "not used (--stdout)");
  } else if (options.server.empty()) {
    line("server", false, "no server.url in the configuration and no --server");
    ok = false;
  } else {
    line("server", true, options.server);
    Credentials cred;
    std::string cerr;
    if (LoadCredentials(options.state_dir, cred, &cerr)) {
      line("enrolment", true, "agent " + cred.agent_id + " (" + options.state_dir + "/agent.json)");
    } else if (!cerr.empty()) {
      line("enrolment", false, cerr);
      ok = false;
    } else if (!options.enroll_token.empty()) {
      line("enrolment", true, "not yet; enrols with the configured token at start");
    } else {
      line("enrolment", false,
           "not enrolled and no server.enroll_token / --enroll-token (an admin creates one with "
           "POST /api/agents)");
      ok = false;
    }
  }
  if (!options.metrics_listen.empty()) {
    std::string merr;
    bool good = ValidMetricsListen(options.metrics_listen, &merr);
    line("metrics listen", good, good ? options.metrics_listen : merr);
    ok = ok && good;
  }

  utsname u{};
  uname(&u);
  std::printf("%-28s %s %s\n", "kernel", u.release, u.machine);
  std::printf("%-28s %s\n", "running as",
              geteuid() == 0 ? "root" : "not root (loading needs CAP_BPF+CAP_PERFMON)");

  bool btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  line("BTF (/sys/kernel/btf/vmlinux)", btf, btf ? "" : "CO-RE programs cannot load");
  ok = ok && btf;
  std::vector<std::string> mount_errors = EnsureKernelFilesystems();
  for (const std::string& e : mount_errors) line("filesystem", false, e);
  bool tracefs = access("/sys/kernel/tracing/events/syscalls", R_OK) == 0;
  line("tracefs syscall events", tracefs, "/sys/kernel/tracing/events/syscalls");
  ok = ok && tracefs;

  bool ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1;
  line("ring buffer maps", ringbuf, "");
  ok = ok && ringbuf;
  bool lru = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LRU_HASH, nullptr) == 1;
  line("LRU hash maps", lru, "");
  bool tp_progs = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, nullptr) == 1;
  line("tracepoint programs", tp_progs, "");
  ok = ok && tp_progs;
  bool uprobe_pmu = access("/sys/bus/event_source/devices/uprobe/type", R_OK) == 0;
  line("uprobes (perf PMU)", uprobe_pmu, uprobe_pmu ? "" : "TLS capture unavailable");
  bool kprobe_pmu = access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0;
  std::printf("%-28s %s\n", "kprobes", kprobe_pmu ? "yes (not used)" : "no (not needed)");

  std::string missing;
  for (const char* tp :
       {"sys_enter_accept", "sys_enter_accept4", "sys_enter_connect", "sys_enter_read",
        "sys_enter_readv", "sys_enter_recvfrom", "sys_enter_recvmsg", "sys_enter_write",
        "sys_enter_writev", "sys_enter_sendto", "sys_enter_sendmsg", "sys_enter_sendfile64",
        "sys_enter_close", "sys_enter_mmap"}) {
    if (access((std::string("/sys/kernel/tracing/events/syscalls/") + tp).c_str(), F_OK) != 0)
      missing += std::string(missing.empty() ? "" : ", ") + tp;
  }
  bool sched = access("/sys/kernel/tracing/events/sched/sched_process_exec", F_OK) == 0;
  line("syscall tracepoints", missing.empty(),
       missing.empty() ? "all present" : "missing: " + missing);
  line("sched_process_exec", sched, "");
  ok = ok && missing.empty() && sched;

  std::string error;
  SensorOptions so = options.sensor;
  auto sensor = Sensor::Start(
      so, [](std::span<const uint8_t>) {}, &error);
  line("load + attach sensor", sensor != nullptr, sensor ? "" : error);
  ok = ok && sensor != nullptr;

  std::printf("TLS libraries found:\n");
  TlsDiscovery discovery;
  std::map<std::string, int> found;
  std::vector<SslBinary> all;
  for (uint32_t pid :
       ProcessesInScope(options.sensor.exclude_pids ? std::vector<uint32_t>{} : options.sensor.pids,
                        options.cgroup_dirs)) {
    for (SslBinary& b : discovery.Scan(pid)) all.push_back(std::move(b));
  }
  for (const char* path :
       {"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
        "/usr/bin/node", "/usr/local/bin/node"}) {
    struct stat st {};
    if (stat(path, &st) != 0) continue;
    bool dup = false;
    for (const SslBinary& b : all) {
      struct stat bs {};
      if (stat(b.path.c_str(), &bs) == 0 && bs.st_ino == st.st_ino && bs.st_dev == st.st_dev)
        dup = true;
    }
    if (!dup && ElfDefinesSymbol(path, "SSL_read"))
      all.push_back(SslBinary{path, path, std::string(path).find("libssl") == std::string::npos});
  }
  if (all.empty()) std::printf("  (none)\n");
  for (const SslBinary& b : all) {
    std::string attach;
    if (sensor && uprobe_pmu) {
      std::string err;
      int n = sensor->AttachOpenSsl(b.path, &err);
      attach =
          n > 0 ? "uprobes attach: " + std::to_string(n) + " functions" : "uprobes FAIL: " + err;
    }
    std::printf("  %s (%s)  %s\n", b.mapped_path.c_str(),
                b.static_openssl ? "OpenSSL linked statically" : "shared libssl", attach.c_str());
  }
  std::printf("%s\n", ok ? "capture can start" : "capture cannot start (see NO above)");
  return ok ? 0 : 1;
}

int RunAgent(const AgentOptions& options) {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  AgentMetrics metrics;
  TrackerOptions to;
  to.limits.max_body_excerpt = options.payload_excerpt;
  if (!options.header_allowlist.empty()) to.header_allowlist = options.header_allowlist;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  to.host_name = options.host_name.empty() ? std::string(host) : options.host_name;
  to.pods.runtime_dirs = options.runtime_dirs;
  for (const std::string& p : options.trusted_proxies) {
    Cidr c;
    if (Cidr::Parse(p, c)) to.trusted_proxies.push_back(c);
  }

  const bool uplink_mode = !options.to_stdout;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<Uplink> uplink;
  if (uplink_mode) {
    Credentials cred;
    if (!ObtainCredentials(options, host, cred)) return 1;
    // The identity hash uses the server's key, so the same caller hashes the same everywhere.
    to.identity_key = cred.identity_key;
    to.agent_id = cred.agent_id;
    std::string error;
    spool = Spool::Open(options.spool, &error);
    if (!spool) {
      LogErr(error);
      return 1;
    }
    SpoolStats st = spool->stats();
    LogErr(
        "spool " + options.spool.dir + ": " + std::to_string(st.pending) +
        " events waiting, next seq " + std::to_string(spool->NextSeq()) +
        (st.truncated_bytes ? ", cut " + std::to_string(st.truncated_bytes) + " torn bytes" : ""));
    UplinkOptions uo;
    uo.server = options.server;
    uo.http = HttpClientOptions{options.ca_file, options.http_timeout_ms, 3000};
    uo.batch.max_events = options.batch_size;
    uo.batch.max_bytes = options.batch_bytes;
    uo.batch.interval = std::chrono::milliseconds(options.batch_interval_ms);
    uo.max_in_flight = options.max_in_flight;
    uo.backoff_initial = std::chrono::milliseconds(options.backoff_initial_ms);
    uo.backoff_max = std::chrono::milliseconds(options.backoff_max_ms);
    uplink = std::make_unique<Uplink>(std::move(uo), cred, spool.get(), &metrics);
    uplink->Start();
  } else {
    to.identity_key = RandomHex(32);  // --stdout without enrolment: a per-run key
    to.agent_id = "stdout-" + RandomHex(8);
  }
  std::unique_ptr<MetricsServer> metrics_server;
  if (!options.metrics_listen.empty()) {
    std::string error;
    metrics_server = MetricsServer::Start(options.metrics_listen, &metrics, &error);
    if (!metrics_server) {
      LogErr(error);
      if (uplink) uplink->Stop(std::chrono::milliseconds(0));
      return 1;
    }
    LogErr("metrics on " + options.metrics_listen.substr(0, options.metrics_listen.rfind(':')) +
           ":" + std::to_string(metrics_server->port()) + "/metrics");
  }

  std::string out;
  // Events of one ring-buffer poll, encoded with the seqs they will have, go to the spool with
  // one write (Spool::AppendBatch) before the uplink is told about them: a write per event cost
  // a syscall each on the capture thread. Flushed at the end of every loop round, and sooner
  // when kSpoolBatchEvents/kSpoolBatchBytes are reached.
  constexpr size_t kSpoolBatchEvents = 1024, kSpoolBatchBytes = 1 << 20;
  std::string batch_buf;
  std::vector<size_t> batch_ends;  // end offset of each record in batch_buf
  uint64_t batch_first_seq = 0;
  std::vector<std::string_view> batch_views;
  bool appended = false;
  uint64_t spool_errors_logged = 0;
  auto flush_spool = [&]() {
    if (batch_ends.empty()) return;
    batch_views.clear();
    size_t start = 0;
    for (size_t end : batch_ends) {
      batch_views.emplace_back(batch_buf.data() + start, end - start);
      start = end;
    }
    std::string error;
    size_t n = spool->AppendBatch(batch_first_seq, batch_views, &error);
    metrics.spooled += n;
    if (n > 0) appended = true;
    if (n < batch_ends.size()) {
      metrics.spool_errors += batch_ends.size() - n;
      if (spool_errors_logged++ < 10) LogErr(error);
    }
    batch_buf.clear();
    batch_ends.clear();
    if (batch_buf.capacity() > 4 * kSpoolBatchBytes) batch_buf.shrink_to_fit();
  };
  auto sink = [&](Event&& e) {
    ++metrics.captured;
    if (!uplink_mode) {
      AppendEventJson(e, out);
      out += '\n';
      return;
    }
    if (batch_ends.empty()) batch_first_seq = spool->NextSeq();
    uint64_t seq = batch_first_seq + batch_ends.size();
    e.seq = static_cast<int64_t>(seq);
    const size_t start = batch_buf.size();
    AppendEventJson(e, batch_buf);
    if (batch_buf.size() - start > spool->max_record_bytes()) {
      // Refused like Spool::Append would: counted, and its seq goes to the next event.
      batch_buf.resize(start);
      ++metrics.spool_errors;
      if (spool_errors_logged++ < 10)
        LogErr("spool: an event of more than " + std::to_string(spool->max_record_bytes()) +
               " bytes was not spooled");
      return;
    }
    batch_ends.push_back(batch_buf.size());
    if (batch_ends.size() >= kSpoolBatchEvents || batch_buf.size() >= kSpoolBatchBytes)
      flush_spool();
  };
  const TrackerOptions policy = to;
  Tracker tracker(std::move(to), sink);
  std::set<uint32_t> rescan;
  tracker.set_process_sink([&rescan](uint32_t, uint32_t tgid) {
    if (rescan.size() < 4096) rescan.insert(tgid);
  });

  std::unique_ptr<ReplaySource> replay;
  std::unordered_map<std::string, uint64_t> replay_counts;  // per client IP, for the heartbeat
  std::unique_ptr<Sensor> sensor;
  TlsDiscovery discovery;
  auto attach_tls = [&](uint32_t pid) {
    for (const SslBinary& b : discovery.Scan(pid)) {
      std::string err;
      int n = sensor->AttachOpenSsl(b.path, &err);
      if (n > 0) {
        LogErr("OpenSSL probes on " + b.mapped_path + " (" +
               (b.static_openssl ? "static" : "shared") + ", " + std::to_string(n) +
               " functions, seen in pid " + std::to_string(pid) + ")");
      } else {
        LogErr(err);
      }
    }
  };
  if (!options.replay_file.empty()) {
    replay = std::make_unique<ReplaySource>(options.replay_file);
    if (!replay->ok()) {
      LogErr("cannot open " + options.replay_file + ": " + std::strerror(errno));
      if (uplink) uplink->Stop(std::chrono::milliseconds(0));
      return 1;
    }
    LogErr("capturing (replaying " + options.replay_file + ")");
  } else {
    std::string error;
    sensor = Sensor::Start(
        options.sensor, [&tracker](std::span<const uint8_t> r) { tracker.OnRecord(r); }, &error);
    if (!sensor) {
      LogErr(error);
      if (uplink) uplink->Stop(std::chrono::milliseconds(0));
      return 1;
    }
    // Children that existed before the sensor started are in scope too (later forks are followed
    // in the kernel).
    if (!options.sensor.pids.empty() && !options.sensor.exclude_pids) {
      for (uint32_t pid : ProcessesInScope(options.sensor.pids, {})) sensor->AddScopePid(pid);
    }
    if (options.tls) {
      for (uint32_t pid : ProcessesInScope(
               options.sensor.exclude_pids ? std::vector<uint32_t>{} : options.sensor.pids,
               options.cgroup_dirs)) {
        attach_tls(pid);
      }
    }
    LogErr("capturing (max payload " + std::to_string(options.sensor.max_payload) + " bytes)");
  }

  auto kernel_counters = [&]() {
    std::vector<std::pair<std::string, uint64_t>> kc;
    if (!sensor) return kc;
    std::vector<uint64_t> c = sensor->Counters();
    for (size_t i = 0; i < c.size() && i < CounterNames().size(); ++i)
      kc.emplace_back(CounterNames()[i], c[i]);
    return kc;
  };
  auto tracker_counters = [&]() {
    TrackerStats t = tracker.stats();
    return std::vector<std::pair<std::string, uint64_t>>{
        {"records", t.records},
        {"bad_records", t.bad_records},
        {"events", t.events},
        {"parse_errors", t.parse_errors},
        {"orphan_responses", t.orphan_responses},
        {"unanswered_requests", t.unanswered_requests},
        {"lost_requests", t.lost_requests},
        {"connections_opened", t.connections_opened},
        {"connections_evicted", t.connections_evicted}};
  };
  auto refresh_metrics = [&]() {
    metrics.SetKernelCounters(kernel_counters());
    metrics.SetTrackerCounters(tracker_counters());
    if (spool) {
      SpoolStats st = spool->stats();
      metrics.SetSpool(st.bytes, st.pending, st.dropped, st.disk_full, st.cap_bytes);
    }
  };
  RateWindow rate_window;
  auto heartbeat = [&]() {
    std::vector<RateSample> totals;
    if (sensor) {
      totals = sensor->ReadRates(65536);
    } else {
      for (const auto& [ip, n] : replay_counts) totals.push_back(RateSample{ip, 0, n, 0});
    }
    double now_s = static_cast<double>(MonotonicNs()) / 1e9;
    std::vector<std::pair<std::string, uint64_t>> counters;
    for (auto& [k, v] : kernel_counters()) counters.emplace_back("kernel_" + k, v);
    SpoolStats st = spool->stats();
    counters.insert(counters.end(), {{"captured", metrics.captured.load()},
                                     {"spooled", metrics.spooled.load()},
                                     {"sent", metrics.sent.load()},
                                     {"duplicates", metrics.duplicates.load()},
                                     {"rejected", metrics.rejected.load()},
                                     {"dropped_spool_full", st.dropped},
                                     {"dropped_spool_error", metrics.spool_errors.load()},
                                     {"spool_disk_full", st.disk_full},
                                     {"uplink_errors", metrics.uplink_errors.load()},
                                     {"spool_bytes", st.bytes},
                                     {"spool_pending", st.pending}});
    uplink->QueueHeartbeat(
        HeartbeatBody(BOING_VERSION, counters, rate_window.Update(totals, now_s)));
  };

  uint64_t start = MonotonicNs();
  uint64_t last_sweep = start, last_stats = start, last_refresh = 0;
  uint64_t last_heartbeat = 0;
  bool replay_done = false;
  while (!g_stop.load()) {
    if (replay) {
      bool eof = false;
      for (std::string& line : replay->Lines(&eof)) {
        Event e;
        if (ParseEvent(line, EventLimits{}, e)) {
          ++metrics.replay_bad_lines;
          continue;
        }
        HeaderList full(e.headers.begin(), e.headers.end());
        ApplyHeaderPolicy(e, full, policy);
        if (e.payload.size() > options.payload_excerpt) e.payload.resize(options.payload_excerpt);
        e.agent_id = policy.agent_id;
        e.host_name = policy.host_name;
        ++replay_counts[e.client_ip];
        sink(std::move(e));
      }
      if (eof && !options.replay_follow) replay_done = true;
      if (eof && !replay_done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } else {
      int n = sensor->Poll(options.sensor.batch_wakeups ? kPollBatchMs : 100);
      if (n < 0 && n != -EINTR) {
        LogErr("ring buffer poll failed: " + std::string(std::strerror(-n)));
        break;
      }
      if (options.tls && !rescan.empty()) {
        std::set<uint32_t> pids;
        pids.swap(rescan);
        for (uint32_t pid : pids) attach_tls(pid);
      }
    }
    if (!out.empty()) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      out.clear();
    }
    if (uplink_mode) flush_spool();
    if (appended) {
      uplink->Notify();
      appended = false;
    }
    uint64_t now = MonotonicNs();
    if (now - last_refresh > 1'000'000'000ull) {
      refresh_metrics();
      last_refresh = now;
    }
    if (uplink && (last_heartbeat == 0 ||
                   now - last_heartbeat >
                       static_cast<uint64_t>(options.heartbeat_interval_s) * 1'000'000'000ull)) {
      heartbeat();
      last_heartbeat = now;
    }
    if (now - last_sweep > 10'000'000'000ull) {
      tracker.Sweep(now, 300'000'000'000ull);
      last_sweep = now;
    }
    if (sensor && options.stats_interval_s > 0 &&
        now - last_stats > static_cast<uint64_t>(options.stats_interval_s) * 1'000'000'000ull) {
      last_stats = now;
      std::vector<uint64_t> c = sensor->Counters();
      std::string s = "kernel:";
      for (size_t i = 0; i < c.size(); ++i)
        s += " " + CounterNames()[i] + "=" + std::to_string(c[i]);
      LogErr(s);
    }
    if (replay_done) break;
    if (options.duration_s > 0 &&
        now - start > static_cast<uint64_t>(options.duration_s) * 1'000'000'000ull)
      break;
  }
  if (sensor) sensor->Poll(0);
  // Close what is still open: responses that end at close complete, requests still waiting for
  // an answer are counted as unanswered (every request is accounted for).
  tracker.Sweep(UINT64_MAX, 0);
  if (uplink_mode) flush_spool();
  if (!out.empty()) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  if (uplink) {
    heartbeat();
    // Leave with what the server can take in a few seconds; the spool keeps the rest.
    uplink->Notify();
    uplink->Stop(std::chrono::milliseconds(replay_done ? 30000 : 3000));
    SpoolStats st = spool->stats();
    LogErr("uplink: sent=" + std::to_string(metrics.sent.load()) +
           " duplicates=" + std::to_string(metrics.duplicates.load()) +
           " rejected=" + std::to_string(metrics.rejected.load()) +
           " errors=" + std::to_string(metrics.uplink_errors.load()) + " spool_pending=" +
           std::to_string(st.pending) + " spool_dropped=" + std::to_string(st.dropped));
  }
  if (sensor) {
    std::vector<uint64_t> c = sensor->Counters();
    std::string s = "kernel counters:";
    for (size_t i = 0; i < c.size(); ++i) s += " " + CounterNames()[i] + "=" + std::to_string(c[i]);
    LogErr(s);
  }
  TrackerStats t = tracker.stats();
  LogErr("tracker: records=" + std::to_string(t.records) +
         " bad_records=" + std::to_string(t.bad_records) + " events=" + std::to_string(t.events) +
         " parse_errors=" + std::to_string(t.parse_errors) +
         " orphan_responses=" + std::to_string(t.orphan_responses) +
         " unanswered_requests=" + std::to_string(t.unanswered_requests) + " lost_requests=" +
         std::to_string(t.lost_requests) + " connections=" + std::to_string(t.connections_opened) +
         " captured=" + std::to_string(metrics.captured.load()));
  return 0;
}

}  // namespace boing::agent
