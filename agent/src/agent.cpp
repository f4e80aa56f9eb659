#include "boing/agent/agent.h"

#include <bpf/libbpf.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "boing/agent/tls_discovery.h"
#include "boing/event.h"

namespace boing::agent {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

bool ParseUint(const std::string& s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = std::stoull(s);
  return out <= max;
}

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

std::string CgroupV2Mount() {
  std::ifstream f("/proc/self/mounts");
  std::string dev, mnt, type, rest;
  while (f >> dev >> mnt >> type && std::getline(f, rest)) {
    if (type == "cgroup2") return mnt;
  }
  return {};
}

void LogErr(const std::string& msg) { std::fprintf(stderr, "boing-agent: %s\n", msg.c_str()); }

}  // namespace

std::string AgentUsage() {
  return R"(usage: boing-agent [options]
  --stdout              write one JSON event per line to stdout (no uplink)
  --check               print what the kernel offers (BTF, tracepoints, uprobes, ring buffer)
                        and the TLS libraries found, then exit (0 when capture can start)
  --pid N               capture only process N and its children (repeatable)
  --exclude-pid N       capture everything except process N (repeatable)
  --cgroup PATH         capture only processes in this cgroup v2 directory (repeatable)
  --exclude-cgroup PATH
  --port N              capture only TCP connections with local or remote port N (repeatable)
  --exclude-port N
  --max-payload N       bytes copied per read/write in the kernel (default 4096, max 8192)
  --payload-excerpt N   request body bytes kept in the event's payload (default 1024)
  --ringbuf-bytes N     ring buffer size, a power of two (default 8388608)
  --trusted-proxy CIDR  take the client IP from X-Forwarded-For/Forwarded behind it (repeatable)
  --no-tls              do not attach OpenSSL uprobes
  --no-rate-counters    do not keep per-IP request counters in the kernel
  --stats-interval S    print counters to stderr every S seconds
  --duration S          exit after S seconds
)";
}

std::optional<uint64_t> CgroupIdOf(const std::string& path, std::string* resolved) {
  std::vector<std::string> candidates;
  if (!path.empty() && path[0] == '/') candidates.push_back(path);
  std::string v2 = CgroupV2Mount();
  if (!v2.empty()) candidates.push_back(v2 + (path.empty() || path[0] != '/' ? "/" : "") + path);
  for (const std::string& c : candidates) {
    struct stat st {};
    if (stat(c.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
        access((c + "/cgroup.procs").c_str(), F_OK) == 0) {
      *resolved = c;
      return static_cast<uint64_t>(st.st_ino);
    }
  }
  return std::nullopt;
}

std::optional<AgentOptions> ParseAgentOptions(int argc, char** argv, std::string* error) {
  AgentOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) {
        *error = a + " needs a value";
        return false;
      }
      *out = argv[++i];
      return true;
    };
    std::string v;
    uint64_t n = 0;
    if (a == "--help" || a == "-h") {
      *error = AgentUsage();
      return std::nullopt;
    } else if (a == "--stdout") {
      o.to_stdout = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--no-tls") {
      o.tls = false;
    } else if (a == "--no-rate-counters") {
      o.sensor.rate_counters = false;
    } else if (a == "--pid" || a == "--exclude-pid") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 0x7fffffff, n) || n == 0) {
        *error = a + ": not a process id: " + v;
        return std::nullopt;
      }
      o.sensor.pids.push_back(static_cast<uint32_t>(n));
      bool exclude = a == "--exclude-pid";
      if (o.sensor.pids.size() > 1 && exclude != o.sensor.exclude_pids) {
        *error = "--pid and --exclude-pid cannot be mixed";
        return std::nullopt;
      }
      o.sensor.exclude_pids = exclude;
    } else if (a == "--cgroup" || a == "--exclude-cgroup") {
      if (!value(&v)) return std::nullopt;
      std::string resolved;
      auto id = CgroupIdOf(v, &resolved);
      if (!id) {
        *error = a + ": no cgroup v2 directory at " + v +
                 " (cgroup2 mount: " + (CgroupV2Mount().empty() ? "none" : CgroupV2Mount()) + ")";
        return std::nullopt;
      }
      bool exclude = a == "--exclude-cgroup";
      if (!o.sensor.cgroup_ids.empty() && exclude != o.sensor.exclude_cgroups) {
        *error = "--cgroup and --exclude-cgroup cannot be mixed";
        return std::nullopt;
      }
      o.sensor.cgroup_ids.push_back(*id);
      o.sensor.exclude_cgroups = exclude;
      if (!exclude) o.cgroup_dirs.push_back(resolved);
    } else if (a == "--port" || a == "--exclude-port") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 65535, n) || n == 0) {
        *error = a + ": not a port: " + v;
        return std::nullopt;
      }
      bool exclude = a == "--exclude-port";
      if (!o.sensor.ports.empty() && exclude != o.sensor.exclude_ports) {
        *error = "--port and --exclude-port cannot be mixed";
        return std::nullopt;
      }
      o.sensor.ports.push_back(static_cast<uint16_t>(n));
      o.sensor.exclude_ports = exclude;
    } else if (a == "--max-payload") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 8192, n)) {
        *error = "--max-payload: must be 0..8192, got " + v;
        return std::nullopt;
      }
      o.sensor.max_payload = static_cast<uint32_t>(n);
    } else if (a == "--payload-excerpt") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 8192, n)) {
        *error = "--payload-excerpt: must be 0..8192, got " + v;
        return std::nullopt;
      }
      o.payload_excerpt = n;
    } else if (a == "--ringbuf-bytes") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 1u << 30, n) || n == 0 || (n & (n - 1))) {
        *error = "--ringbuf-bytes: must be a power of two up to 1 GiB, got " + v;
        return std::nullopt;
      }
      o.sensor.ringbuf_bytes = static_cast<uint32_t>(n);
    } else if (a == "--trusted-proxy") {
      if (!value(&v)) return std::nullopt;
      Cidr c;
      if (!Cidr::Parse(v, c)) {
        *error = "--trusted-proxy: not an address or CIDR: " + v;
        return std::nullopt;
      }
      o.trusted_proxies.push_back(v);
    } else if (a == "--stats-interval" || a == "--duration") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 86400 * 365, n)) {
        *error = a + ": not a number of seconds: " + v;
        return std::nullopt;
      }
      (a == "--duration" ? o.duration_s : o.stats_interval_s) = static_cast<int>(n);
    } else {
      *error = "unknown option " + a + "\n" + AgentUsage();
      return std::nullopt;
    }
  }
  if (!o.check && !o.to_stdout) {
    *error = "the uplink is not implemented yet: use --stdout (or --check)";
    return std::nullopt;
  }
  return o;
}

int RunCheck(const AgentOptions& options) {
  bool ok = true;
  auto line = [](const std::string& what, bool good, const std::string& detail) {
    std::printf("%-28s %s%s%s\n", what.c_str(), good ? "yes" : "NO", detail.empty() ? "" : "  ",
                detail.c_str());
  };
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

  TrackerOptions to;
  to.limits.max_body_excerpt = options.payload_excerpt;
  to.identity_key = RandomHex(32);  // --stdout without enrolment: a per-run key
  to.agent_id = "stdout-" + RandomHex(8);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  to.host_name = host;
  for (const std::string& p : options.trusted_proxies) {
    Cidr c;
    if (Cidr::Parse(p, c)) to.trusted_proxies.push_back(c);
  }

  std::string out;
  Tracker tracker(std::move(to), [&out](Event&& e) {
    out += EventToJson(e);
    out += '\n';
  });
  std::set<uint32_t> rescan;
  tracker.set_process_sink([&rescan](uint32_t, uint32_t tgid) {
    if (rescan.size() < 4096) rescan.insert(tgid);
  });

  std::string error;
  auto sensor = Sensor::Start(
      options.sensor, [&tracker](std::span<const uint8_t> r) { tracker.OnRecord(r); }, &error);
  if (!sensor) {
    LogErr(error);
    return 1;
  }

  // Children that existed before the sensor started are in scope too (later forks are followed
  // in the kernel).
  if (!options.sensor.pids.empty() && !options.sensor.exclude_pids) {
    for (uint32_t pid : ProcessesInScope(options.sensor.pids, {})) sensor->AddScopePid(pid);
  }

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
  if (options.tls) {
    for (uint32_t pid : ProcessesInScope(
             options.sensor.exclude_pids ? std::vector<uint32_t>{} : options.sensor.pids,
             options.cgroup_dirs)) {
      attach_tls(pid);
    }
  }
  LogErr("capturing (max payload " + std::to_string(options.sensor.max_payload) + " bytes)");

  uint64_t start = MonotonicNs();
  uint64_t last_sweep = start, last_stats = start;
  while (!g_stop.load()) {
    int n = sensor->Poll(100);
    if (n < 0 && n != -EINTR) {
      LogErr("ring buffer poll failed: " + std::string(std::strerror(-n)));
      break;
    }
    if (options.tls && !rescan.empty()) {
      std::set<uint32_t> pids;
      pids.swap(rescan);
      for (uint32_t pid : pids) attach_tls(pid);
    }
    if (!out.empty()) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      out.clear();
    }
    uint64_t now = MonotonicNs();
    if (now - last_sweep > 10'000'000'000ull) {
      tracker.Sweep(now, 300'000'000'000ull);
      last_sweep = now;
    }
    if (options.stats_interval_s > 0 &&
        now - last_stats > static_cast<uint64_t>(options.stats_interval_s) * 1'000'000'000ull) {
      last_stats = now;
      std::vector<uint64_t> c = sensor->Counters();
      std::string s = "kernel:";
      for (size_t i = 0; i < c.size(); ++i)
        s += " " + CounterNames()[i] + "=" + std::to_string(c[i]);
      LogErr(s);
    }
    if (options.duration_s > 0 &&
        now - start > static_cast<uint64_t>(options.duration_s) * 1'000'000'000ull)
      break;
  }
  sensor->Poll(0);
  if (!out.empty()) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  std::vector<uint64_t> c = sensor->Counters();
  std::string s = "kernel counters:";
  for (size_t i = 0; i < c.size(); ++i) s += " " + CounterNames()[i] + "=" + std::to_string(c[i]);
  LogErr(s);
  TrackerStats t = tracker.stats();
  LogErr("tracker: records=" + std::to_string(t.records) +
         " bad_records=" + std::to_string(t.bad_records) + " events=" + std::to_string(t.events) +
         " parse_errors=" + std::to_string(t.parse_errors) +
         " orphan_responses=" + std::to_string(t.orphan_responses) +
         " unanswered_requests=" + std::to_string(t.unanswered_requests) +
         " connections=" + std::to_string(t.connections_opened));
  return 0;
}

}  // namespace boing::agent
