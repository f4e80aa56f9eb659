#include "boing/agent/options.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "boing/agent/tracker.h"

namespace boing::agent {
namespace {

bool ParseUint(const std::string& s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = std::stoull(s);
  return out <= max;
}

bool ValidServerUrl(const std::string& url) {
  return (url.rfind("http://", 0) == 0 && url.size() > 7) ||
         (url.rfind("https://", 0) == 0 && url.size() > 8);
}

// A configuration error at a node; caught in LoadAgentConfig, never escapes it.
struct ConfigError {
  int line;  // 1-based, 0 unknown
  std::string field;
  std::string message;
};

class ConfigReader {
 public:
  explicit ConfigReader(AgentOptions& o) : o_(o) {}

  void Root(const YAML::Node& root) {
    if (root.IsNull()) return;  // an empty file sets nothing
    Keys(root, "",
         {"server", "state_dir", "host_name", "scope", "trusted_proxies", "headers", "capture",
          "uplink", "spool", "metrics", "kubernetes"});
    if (auto n = root["server"]) {
      Keys(n, "server", {"url", "enroll_token", "ca_file", "timeout_ms"});
      if (auto v = n["url"]) {
        o_.server = Str(v, "server.url");
        if (!ValidServerUrl(o_.server))
          Fail(v, "server.url", "must start with http:// or https://, got " + o_.server);
      }
      if (auto v = n["enroll_token"]) o_.enroll_token = Str(v, "server.enroll_token");
      if (auto v = n["ca_file"]) o_.ca_file = Str(v, "server.ca_file");
      if (auto v = n["timeout_ms"])
        o_.http_timeout_ms = static_cast<int>(Uint(v, "server.timeout_ms", 100, 600000));
    }
    if (auto v = root["state_dir"]) o_.state_dir = Str(v, "state_dir");
    if (auto v = root["host_name"]) o_.host_name = Str(v, "host_name");
    if (auto n = root["scope"]) Scope(n);
    if (auto v = root["trusted_proxies"]) {
      o_.trusted_proxies.clear();
      for (const auto& [item, line] : List(v, "trusted_proxies")) {
        Cidr c;
        if (!Cidr::Parse(item, c))
          throw ConfigError{line, "trusted_proxies", "not an address or CIDR: " + item};
        o_.trusted_proxies.push_back(item);
      }
    }
    if (auto n = root["headers"]) {
      Keys(n, "headers", {"allowlist"});
      if (auto v = n["allowlist"]) {
        o_.header_allowlist.clear();
        for (auto& [item, line] : List(v, "headers.allowlist")) {
          if (item.empty() || item.find_first_of(" :\t\r\n") != std::string::npos)
            throw ConfigError{line, "headers.allowlist", "not a header name: " + item};
          std::string lower;
          for (char c : item)
            lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          o_.header_allowlist.push_back(lower);
        }
      }
    }
    if (auto n = root["capture"]) {
      Keys(n, "capture",
           {"max_payload", "payload_excerpt", "ringbuf_bytes", "tls", "rate_counters",
            "batch_wakeups"});
      if (auto v = n["max_payload"])
        o_.sensor.max_payload = static_cast<uint32_t>(Uint(v, "capture.max_payload", 0, 8192));
      if (auto v = n["payload_excerpt"])
        o_.payload_excerpt = Uint(v, "capture.payload_excerpt", 0, 8192);
      if (auto v = n["ringbuf_bytes"]) {
        uint64_t b = Bytes(v, "capture.ringbuf_bytes");
        if (b == 0 || (b & (b - 1)) || b > (1u << 30))
          Fail(v, "capture.ringbuf_bytes", "must be a power of two up to 1 GiB");
        o_.sensor.ringbuf_bytes = static_cast<uint32_t>(b);
      }
      if (auto v = n["tls"]) o_.tls = Bool(v, "capture.tls");
      if (auto v = n["rate_counters"]) o_.sensor.rate_counters = Bool(v, "capture.rate_counters");
      if (auto v = n["batch_wakeups"]) o_.sensor.batch_wakeups = Bool(v, "capture.batch_wakeups");
    }
    if (auto n = root["uplink"]) {
      Keys(n, "uplink",
           {"batch_size", "batch_bytes", "batch_interval_ms", "max_in_flight",
            "heartbeat_interval_s", "backoff_initial_ms", "backoff_max_ms"});
      if (auto v = n["batch_size"]) o_.batch_size = Uint(v, "uplink.batch_size", 1, 10000);
      if (auto v = n["batch_bytes"]) {
        o_.batch_bytes = Bytes(v, "uplink.batch_bytes");
        if (o_.batch_bytes < 1024) Fail(v, "uplink.batch_bytes", "must be at least 1 KiB");
      }
      if (auto v = n["batch_interval_ms"])
        o_.batch_interval_ms = static_cast<int>(Uint(v, "uplink.batch_interval_ms", 1, 3600000));
      if (auto v = n["max_in_flight"]) o_.max_in_flight = Uint(v, "uplink.max_in_flight", 1, 64);
      if (auto v = n["heartbeat_interval_s"])
        o_.heartbeat_interval_s =
            static_cast<int>(Uint(v, "uplink.heartbeat_interval_s", 1, 86400));
      if (auto v = n["backoff_initial_ms"])
        o_.backoff_initial_ms = static_cast<int>(Uint(v, "uplink.backoff_initial_ms", 1, 3600000));
      if (auto v = n["backoff_max_ms"])
        o_.backoff_max_ms = static_cast<int>(Uint(v, "uplink.backoff_max_ms", 1, 3600000));
    }
    if (auto n = root["spool"]) {
      Keys(n, "spool", {"dir", "max_bytes", "segment_bytes", "fsync"});
      if (auto v = n["dir"]) o_.spool.dir = Str(v, "spool.dir");
      if (auto v = n["max_bytes"]) {
        o_.spool.max_bytes = Bytes(v, "spool.max_bytes");
        if (o_.spool.max_bytes < 8192) Fail(v, "spool.max_bytes", "must be at least 8 KiB");
      }
      if (auto v = n["segment_bytes"]) o_.spool.segment_bytes = Bytes(v, "spool.segment_bytes");
      if (auto v = n["fsync"]) {
        std::string f = Str(v, "spool.fsync");
        if (f == "batch") {
          o_.spool.fsync = FsyncPolicy::kBatch;
        } else if (f == "always") {
          o_.spool.fsync = FsyncPolicy::kAlways;
        } else if (f == "never") {
          o_.spool.fsync = FsyncPolicy::kNever;
        } else {
          Fail(v, "spool.fsync", "must be batch, always or never, got " + f);
        }
      }
    }
    if (auto n = root["metrics"]) {
      Keys(n, "metrics", {"listen"});
      if (auto v = n["listen"]) o_.metrics_listen = Str(v, "metrics.listen");
    }
    if (auto n = root["kubernetes"]) {
      Keys(n, "kubernetes", {"runtime_dirs"});
      if (auto v = n["runtime_dirs"]) {
        o_.runtime_dirs.clear();
        for (const auto& [item, line] : List(v, "kubernetes.runtime_dirs")) {
          if (item.empty() || item[0] != '/')
            throw ConfigError{line, "kubernetes.runtime_dirs", "not an absolute path: " + item};
          o_.runtime_dirs.push_back(item);
        }
      }
    }
  }

 private:
  [[noreturn]] static void Fail(const YAML::Node& n, const std::string& field,
                                const std::string& msg) {
    throw ConfigError{n.Mark().line + 1, field, msg};
  }

  static void Keys(const YAML::Node& n, const std::string& path,
                   std::initializer_list<const char*> allowed) {
    if (n.IsNull() && !path.empty()) return;  // a section whose fields are all commented out
    if (!n.IsMap()) Fail(n, path.empty() ? "(top level)" : path, "must be a mapping");
    std::set<std::string> seen;
    for (const auto& kv : n) {
      std::string k = kv.first.Scalar();
      // yaml-cpp keeps one of two equal keys silently; a second "uplink:" section would be
      // ignored, so it is an error here.
      if (!seen.insert(k).second) Fail(kv.first, path.empty() ? k : path + "." + k, "given twice");
      bool ok = false;
      for (const char* a : allowed) ok = ok || k == a;
      if (!ok) {
        std::string list;
        for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
        Fail(kv.first, path.empty() ? k : path + "." + k,
             "unknown field (expected one of: " + list + ")");
      }
    }
  }

  static std::string Str(const YAML::Node& n, const std::string& field) {
    if (!n.IsScalar()) Fail(n, field, "must be a string");
    return n.Scalar();
  }

  static uint64_t Uint(const YAML::Node& n, const std::string& field, uint64_t min, uint64_t max) {
    uint64_t v = 0;
    if (!n.IsScalar() || !ParseUint(n.Scalar(), UINT64_MAX, v) || v < min || v > max) {
      Fail(n, field,
           "must be an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
               (n.IsScalar() ? n.Scalar() : std::string("a non-scalar")));
    }
    return v;
  }

  static uint64_t Bytes(const YAML::Node& n, const std::string& field) {
    uint64_t v = 0;
    if (!n.IsScalar() || !ParseByteSize(n.Scalar(), v))
      Fail(n, field,
           "must be a size in bytes (e.g. 65536, 64KiB, 256MiB), got " +
               (n.IsScalar() ? n.Scalar() : std::string("a non-scalar")));
    return v;
  }

  static bool Bool(const YAML::Node& n, const std::string& field) {
    std::string s = n.IsScalar() ? n.Scalar() : "";
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    Fail(n, field, "must be true or false, got " + s);
  }

  static std::vector<std::pair<std::string, int>> List(const YAML::Node& n,
                                                       const std::string& field) {
    if (!n.IsSequence()) Fail(n, field, "must be a list");
    std::vector<std::pair<std::string, int>> out;
    for (const auto& item : n) {
      if (!item.IsScalar()) Fail(item, field, "items must be scalars");
      out.emplace_back(item.Scalar(), item.Mark().line + 1);
    }
    return out;
  }

  void Scope(const YAML::Node& n) {
    Keys(n, "scope",
         {"pids", "exclude_pids", "cgroups", "exclude_cgroups", "ports", "exclude_ports"});
    if (n["pids"] && n["exclude_pids"])
      Fail(n["exclude_pids"], "scope.exclude_pids", "pids and exclude_pids cannot be mixed");
    if (n["cgroups"] && n["exclude_cgroups"])
      Fail(n["exclude_cgroups"], "scope.exclude_cgroups",
           "cgroups and exclude_cgroups cannot be mixed");
    if (n["ports"] && n["exclude_ports"])
      Fail(n["exclude_ports"], "scope.exclude_ports", "ports and exclude_ports cannot be mixed");
    for (const char* k : {"pids", "exclude_pids"}) {
      if (!n[k]) continue;
      std::string field = std::string("scope.") + k;
      o_.sensor.pids.clear();
      o_.sensor.exclude_pids = k[0] == 'e';
      for (const auto& [item, line] : List(n[k], field)) {
        uint64_t v = 0;
        if (!ParseUint(item, 0x7fffffff, v) || v == 0)
          throw ConfigError{line, field, "not a process id: " + item};
        o_.sensor.pids.push_back(static_cast<uint32_t>(v));
      }
    }
    for (const char* k : {"ports", "exclude_ports"}) {
      if (!n[k]) continue;
      std::string field = std::string("scope.") + k;
      o_.sensor.ports.clear();
      o_.sensor.exclude_ports = k[0] == 'e';
      for (const auto& [item, line] : List(n[k], field)) {
        uint64_t v = 0;
        if (!ParseUint(item, 65535, v) || v == 0)
          throw ConfigError{line, field, "not a port: " + item};
        o_.sensor.ports.push_back(static_cast<uint16_t>(v));
      }
    }
    for (const char* k : {"cgroups", "exclude_cgroups"}) {
      if (!n[k]) continue;
      std::string field = std::string("scope.") + k;
      o_.sensor.cgroup_ids.clear();
      o_.sensor.cgroup_levels = 0;
      o_.cgroup_dirs.clear();
      o_.sensor.exclude_cgroups = k[0] == 'e';
      for (const auto& [item, line] : List(n[k], field)) {
        std::string resolved;
        int level = 0;
        auto id = CgroupIdOf(item, &resolved, &level);
        if (!id) throw ConfigError{line, field, "no cgroup v2 directory at " + item};
        if (level >= kMaxCgroupLevels)
          throw ConfigError{line, field, item + " is nested deeper than the sensor looks"};
        o_.sensor.cgroup_ids.push_back(*id);
        o_.sensor.cgroup_levels |= 1u << level;
        if (!o_.sensor.exclude_cgroups) o_.cgroup_dirs.push_back(resolved);
      }
    }
  }

  AgentOptions& o_;
};

}  // namespace

bool ParseByteSize(const std::string& text, uint64_t& out) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  uint64_t n = 0;
  if (i == 0 || !ParseUint(text.substr(0, i), uint64_t{1} << 50, n)) return false;
  std::string unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KiB") {
    mult = 1ull << 10;
  } else if (unit == "M" || unit == "MB" || unit == "MiB") {
    mult = 1ull << 20;
  } else if (unit == "G" || unit == "GB" || unit == "GiB") {
    mult = 1ull << 30;
  } else {
    return false;
  }
  out = n * mult;
  return true;
}

bool LoadAgentConfig(const std::string& path, AgentOptions& o, std::string* error) {
  std::ifstream f(path);
  if (!f) {
    *error = path + ": cannot read the configuration file";
    return false;
  }
  AgentOptions copy = o;
  try {
    YAML::Node root = YAML::LoadFile(path);
    ConfigReader(copy).Root(root);
  } catch (const ConfigError& e) {
    *error = path + ":" + std::to_string(e.line) + ": " + e.field + ": " + e.message;
    return false;
  } catch (const YAML::Exception& e) {
    *error = path + ":" + std::to_string(e.mark.line + 1) + ": (syntax): " + e.msg;
    return false;
  }
  copy.config_file = path;
  o = std::move(copy);
  return true;
}

std::string CgroupV2Mount() {
  std::ifstream f("/proc/self/mounts");
  std::string dev, mnt, type, rest;
  while (f >> dev >> mnt >> type && std::getline(f, rest)) {
    if (type == "cgroup2") return mnt;
  }
  return {};
}

std::string AgentUsage() {
  return R"(usage: boing-agent [options]
  --config FILE         YAML configuration (see agent.example.yaml); flags override it
  --server URL          boing-server base URL (http:// or https://); events go there
  --enroll-token TOKEN  enrolment token from POST /api/agents (used once: the credentials are
                        kept in the state directory and reused on restart)
  --state-dir DIR       credentials and spool (default /var/lib/boing-agent)
  --host-name NAME      host_name in events (default: the system's host name)
  --ca-file FILE        CA bundle for an https server with a private CA
  --spool-dir DIR       on-disk spool (default STATE_DIR/spool)
  --spool-max-bytes N   spool size bound, e.g. 256MiB (oldest segment dropped and counted)
  --batch-size N        events per batch (default 100)
  --batch-interval-ms N send a partial batch after N ms (default 1000)
  --max-in-flight N     batches sent concurrently (default 4)
  --heartbeat-interval S  heartbeat with counters and per-IP rates every S seconds (default 30)
  --metrics-listen A:P  Prometheus self-metrics on a loopback address, e.g. 127.0.0.1:9464
  --header NAME         request header copied into events (repeatable; replaces the default list)
  --stdout              write one JSON event per line to stdout (no uplink)
  --check               validate the configuration (file, flags, server and enrolment state),
                        print what the kernel offers (BTF, tracepoints, uprobes, ring buffer)
                        and the TLS libraries found, then exit (0 when capture can start)
  --version             print the version and exit
  --pid N               capture only process N and its children (repeatable)
  --exclude-pid N       capture everything except process N (repeatable)
  --cgroup PATH         capture only processes in this cgroup v2 directory or its descendants
                        (repeatable)
  --exclude-cgroup PATH
  --port N              capture only TCP connections with local or remote port N (repeatable)
  --exclude-port N
  --max-payload N       bytes copied per read/write in the kernel (default 4096, max 8192)
  --payload-excerpt N   request body bytes kept in the event's payload (default 1024)
  --ringbuf-bytes N     ring buffer size, a power of two (default 8388608)
  --trusted-proxy CIDR  take the client IP from X-Forwarded-For/Forwarded behind it (repeatable)
  --no-tls              do not attach OpenSSL uprobes
  --no-rate-counters    do not keep per-IP request counters in the kernel
  --wakeup-per-record   wake the agent for every ring-buffer record (default: once 1/8 of the
                        ring is waiting, polling every 10 ms meanwhile; cheaper for the traced
                        application)
  --stats-interval S    print counters to stderr every S seconds
  --duration S          exit after S seconds
)";
}

std::optional<uint64_t> CgroupIdOf(const std::string& path, std::string* resolved, int* level) {
  std::vector<std::string> candidates;
  if (!path.empty() && path[0] == '/') candidates.push_back(path);
  std::string v2 = CgroupV2Mount();
  if (!v2.empty()) candidates.push_back(v2 + (path.empty() || path[0] != '/' ? "/" : "") + path);
  for (const std::string& c : candidates) {
    struct stat st {};
    if (stat(c.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
        access((c + "/cgroup.procs").c_str(), F_OK) == 0) {
      if (level) {
        // Depth below the v2 root: components of the canonical path after the mount's.
        std::error_code ec;
        auto dir = std::filesystem::canonical(c, ec);
        auto root = std::filesystem::canonical(v2.empty() ? "/" : v2, ec);
        if (ec) return std::nullopt;
        auto rel = dir.lexically_relative(root);
        if (rel.empty() || *rel.begin() == "..") return std::nullopt;  // not under the v2 mount
        *level = 0;
        for (const auto& part : rel) *level += part != ".";
      }
      *resolved = c;
      return static_cast<uint64_t>(st.st_ino);
    }
  }
  return std::nullopt;
}

std::optional<AgentOptions> ParseAgentOptions(int argc, char** argv, std::string* error) {
  AgentOptions o;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--config") {
      if (!LoadAgentConfig(argv[i + 1], o, error)) return std::nullopt;
      break;
    }
  }
  // A list given on the command line replaces the file's list of the same kind.
  std::set<std::string> cli_lists;
  auto first_on_cli = [&cli_lists](const std::string& kind) {
    return cli_lists.insert(kind).second;
  };
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
    auto number = [&](uint64_t min, uint64_t max, uint64_t& out) {
      if (!value(&v)) return false;
      if (!ParseUint(v, max, out) || out < min) {
        *error = a + ": must be an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                 ", got " + v;
        return false;
      }
      return true;
    };
    if (a == "--help" || a == "-h") {
      *error = AgentUsage();
      return std::nullopt;
    } else if (a == "--config") {
      ++i;  // loaded above
    } else if (a == "--stdout") {
      o.to_stdout = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--version") {
      o.version = true;
    } else if (a == "--no-tls") {
      o.tls = false;
    } else if (a == "--no-rate-counters") {
      o.sensor.rate_counters = false;
    } else if (a == "--wakeup-per-record") {
      o.sensor.batch_wakeups = false;
    } else if (a == "--server") {
      if (!value(&o.server)) return std::nullopt;
      if (!ValidServerUrl(o.server)) {
        *error = "--server: must start with http:// or https://, got " + o.server;
        return std::nullopt;
      }
    } else if (a == "--enroll-token") {
      if (!value(&o.enroll_token)) return std::nullopt;
    } else if (a == "--host-name") {
      if (!value(&o.host_name)) return std::nullopt;
    } else if (a == "--state-dir") {
      if (!value(&o.state_dir)) return std::nullopt;
    } else if (a == "--ca-file") {
      if (!value(&o.ca_file)) return std::nullopt;
    } else if (a == "--spool-dir") {
      if (!value(&o.spool.dir)) return std::nullopt;
    } else if (a == "--spool-max-bytes") {
      if (!value(&v)) return std::nullopt;
      if (!ParseByteSize(v, n) || n < 8192) {
        *error = "--spool-max-bytes: must be a size of at least 8KiB, got " + v;
        return std::nullopt;
      }
      o.spool.max_bytes = n;
    } else if (a == "--batch-size") {
      if (!number(1, 10000, n)) return std::nullopt;
      o.batch_size = n;
    } else if (a == "--batch-interval-ms") {
      if (!number(1, 3600000, n)) return std::nullopt;
      o.batch_interval_ms = static_cast<int>(n);
    } else if (a == "--max-in-flight") {
      if (!number(1, 64, n)) return std::nullopt;
      o.max_in_flight = n;
    } else if (a == "--heartbeat-interval") {
      if (!number(1, 86400, n)) return std::nullopt;
      o.heartbeat_interval_s = static_cast<int>(n);
    } else if (a == "--metrics-listen") {
      if (!value(&o.metrics_listen)) return std::nullopt;
    } else if (a == "--header") {
      if (!value(&v)) return std::nullopt;
      if (first_on_cli("header")) o.header_allowlist.clear();
      std::string lower;
      for (char c : v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      o.header_allowlist.push_back(lower);
    } else if (a == "--replay-file") {
      if (!value(&o.replay_file)) return std::nullopt;
    } else if (a == "--replay-follow") {
      o.replay_follow = true;
    } else if (a == "--pid" || a == "--exclude-pid") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 0x7fffffff, n) || n == 0) {
        *error = a + ": not a process id: " + v;
        return std::nullopt;
      }
      if (first_on_cli("pid")) o.sensor.pids.clear();
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
      int level = 0;
      auto id = CgroupIdOf(v, &resolved, &level);
      if (!id) {
        *error = a + ": no cgroup v2 directory at " + v +
                 " (cgroup2 mount: " + (CgroupV2Mount().empty() ? "none" : CgroupV2Mount()) + ")";
        return std::nullopt;
      }
      if (level >= kMaxCgroupLevels) {
        *error = a + ": " + v + " is nested deeper than the sensor looks";
        return std::nullopt;
      }
      if (first_on_cli("cgroup")) {
        o.sensor.cgroup_ids.clear();
        o.sensor.cgroup_levels = 0;
        o.cgroup_dirs.clear();
      }
      bool exclude = a == "--exclude-cgroup";
      if (!o.sensor.cgroup_ids.empty() && exclude != o.sensor.exclude_cgroups) {
        *error = "--cgroup and --exclude-cgroup cannot be mixed";
        return std::nullopt;
      }
      o.sensor.cgroup_ids.push_back(*id);
      o.sensor.cgroup_levels |= 1u << level;
      o.sensor.exclude_cgroups = exclude;
      if (!exclude) o.cgroup_dirs.push_back(resolved);
    } else if (a == "--port" || a == "--exclude-port") {
      if (!value(&v)) return std::nullopt;
      if (!ParseUint(v, 65535, n) || n == 0) {
        *error = a + ": not a port: " + v;
        return std::nullopt;
      }
      if (first_on_cli("port")) o.sensor.ports.clear();
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
      if (first_on_cli("trusted-proxy")) o.trusted_proxies.clear();
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
  if (o.spool.dir.empty()) o.spool.dir = o.state_dir + "/spool";
  if (o.version) return o;
  if (!o.check && !o.to_stdout && o.server.empty()) {
    *error =
        "no server: set server.url in the configuration or pass --server URL (or use --stdout)";
    return std::nullopt;
  }
  return o;
}

}  // namespace boing::agent
