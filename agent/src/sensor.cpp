#include "boing/agent/sensor.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "boing/agent/tracker.h"
#include "boing_abi.h"
#include "boing_bpf.skel.h"

namespace boing::agent {
namespace {

std::string Errno(int err) { return std::strerror(err < 0 ? -err : err); }

bool IsMounted(const std::string& path, const std::string& fstype) {
  std::ifstream f("/proc/self/mounts");
  std::string dev, mnt, type, rest;
  while (f >> dev >> mnt >> type && std::getline(f, rest)) {
    if (mnt == path && type == fstype) return true;
  }
  return false;
}

int OnRingRecord(void* ctx, void* data, size_t size) {
  auto* handler = static_cast<Sensor::RecordHandler*>(ctx);
  (*handler)(std::span<const uint8_t>(static_cast<const uint8_t*>(data), size));
  return 0;
}

}  // namespace

const std::vector<std::string>& CounterNames() {
  static const std::vector<std::string> names = {"events",
                                                 "data_events",
                                                 "data_bytes",
                                                 "drop_ringbuf_full",
                                                 "drop_conn_map_full",
                                                 "drop_args_map_full",
                                                 "drop_ssl_map_full",
                                                 "drop_rate_map_full",
                                                 "drop_read_failed",
                                                 "truncated",
                                                 "not_http",
                                                 "ssl_no_fd",
                                                 "lost_requests"};
  static_assert(BOING_CTR_MAX == 13, "keep CounterNames in step with enum boing_counter");
  return names;
}

std::vector<std::string> EnsureKernelFilesystems() {
  std::vector<std::string> errors;
  struct Fs {
    const char* path;
    const char* type;
  };
  for (Fs fs : {Fs{"/sys/kernel/tracing", "tracefs"}, Fs{"/sys/fs/bpf", "bpf"}}) {
    if (IsMounted(fs.path, fs.type)) continue;
    if (mount(fs.type, fs.path, fs.type, 0, nullptr) != 0) {
      errors.push_back(std::string("cannot mount ") + fs.type + " at " + fs.path + ": " +
                       Errno(errno));
    }
  }
  return errors;
}

struct Sensor::Impl {
  boing_bpf* skel = nullptr;
  ring_buffer* ring = nullptr;
  RecordHandler handler;
  std::vector<bpf_link*> links;

  ~Impl() {
    if (ring) ring_buffer__free(ring);
    for (bpf_link* l : links) bpf_link__destroy(l);
    if (skel) boing_bpf__destroy(skel);
  }
};

std::unique_ptr<Sensor> Sensor::Start(const SensorOptions& o, RecordHandler handler,
                                      std::string* error) {
  auto fail = [&](std::string msg) -> std::unique_ptr<Sensor> {
    *error = std::move(msg);
    return nullptr;
  };
  if (o.max_payload > BOING_MAX_PAYLOAD)
    return fail("max payload " + std::to_string(o.max_payload) + " exceeds the ABI maximum " +
                std::to_string(BOING_MAX_PAYLOAD));
  long page = sysconf(_SC_PAGESIZE);
  if (o.ringbuf_bytes < static_cast<uint32_t>(page) || (o.ringbuf_bytes & (o.ringbuf_bytes - 1)))
    return fail("ring buffer size " + std::to_string(o.ringbuf_bytes) +
                " must be a power of two and at least one page");
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    return fail("kernel BTF (/sys/kernel/btf/vmlinux) is missing: CO-RE programs cannot load");
  for (const std::string& e : EnsureKernelFilesystems()) {
    if (e.find("tracefs") != std::string::npos) return fail(e + " (tracepoints need it)");
  }

  std::unique_ptr<Sensor> s(new Sensor());
  s->impl_ = std::make_unique<Impl>();
  Impl& im = *s->impl_;
  im.handler = std::move(handler);

  im.skel = boing_bpf__open();
  if (!im.skel) return fail("opening the BPF object failed: " + Errno(errno));
  auto* ro = im.skel->rodata;
  ro->cfg_max_payload = o.max_payload;
  ro->cfg_self_tgid = static_cast<uint32_t>(getpid());
  ro->cfg_pid_mode = o.pids.empty() ? BOING_SCOPE_ALL
                                    : (o.exclude_pids ? BOING_SCOPE_EXCLUDE : BOING_SCOPE_INCLUDE);
  ro->cfg_cgroup_mode = o.cgroup_ids.empty()
                            ? BOING_SCOPE_ALL
                            : (o.exclude_cgroups ? BOING_SCOPE_EXCLUDE : BOING_SCOPE_INCLUDE);
  static_assert(kMaxCgroupLevels == BOING_MAX_CGROUP_LEVELS);
  if (!o.cgroup_ids.empty() && o.cgroup_levels == 0)
    return fail("cgroup scope without hierarchy levels (resolve cgroups with CgroupIdOf)");
  ro->cfg_cgroup_levels = o.cgroup_levels;
  ro->cfg_wakeup_bytes = o.batch_wakeups ? std::max<uint32_t>(o.ringbuf_bytes / 8, 1) : 0;
  ro->cfg_port_mode = o.ports.empty()
                          ? BOING_SCOPE_ALL
                          : (o.exclude_ports ? BOING_SCOPE_EXCLUDE : BOING_SCOPE_INCLUDE);
  ro->cfg_follow_children = o.follow_children ? 1 : 0;
  ro->cfg_rate_counters = o.rate_counters ? 1 : 0;
  if (int err = bpf_map__set_max_entries(im.skel->maps.events, o.ringbuf_bytes))
    return fail("setting the ring buffer size failed: " + Errno(err));

  if (int err = boing_bpf__load(im.skel)) {
    return fail("loading the BPF programs failed: " + Errno(err) +
                " (needs root or CAP_BPF+CAP_PERFMON, kernel BTF, ring buffers; run "
                "`boing-agent --check`)");
  }

  uint8_t one = 1;
  for (uint32_t pid : o.pids) {
    if (bpf_map__update_elem(im.skel->maps.scope_pids, &pid, sizeof(pid), &one, 1, BPF_ANY))
      return fail("adding pid " + std::to_string(pid) + " to the scope failed: " + Errno(errno));
  }
  for (uint64_t cg : o.cgroup_ids) {
    if (bpf_map__update_elem(im.skel->maps.scope_cgroups, &cg, sizeof(cg), &one, 1, BPF_ANY))
      return fail("adding cgroup " + std::to_string(cg) + " to the scope failed: " + Errno(errno));
  }
  for (uint16_t port : o.ports) {
    if (bpf_map__update_elem(im.skel->maps.scope_ports, &port, sizeof(port), &one, 1, BPF_ANY))
      return fail("adding port " + std::to_string(port) + " to the scope failed: " + Errno(errno));
  }

  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, im.skel->obj) {
    std::string sec = bpf_program__section_name(prog);
    if (sec.rfind("tracepoint/", 0) != 0) continue;  // uprobes are attached per library
    bpf_link* link = bpf_program__attach(prog);
    if (!link) {
      int err = errno;
      return fail("attaching " + sec + " failed: " + Errno(err) +
                  " (is tracefs mounted at /sys/kernel/tracing?)");
    }
    im.links.push_back(link);
  }

  im.ring = ring_buffer__new(bpf_map__fd(im.skel->maps.events), OnRingRecord, &im.handler, nullptr);
  if (!im.ring) return fail("creating the ring buffer reader failed: " + Errno(errno));
  return s;
}

Sensor::~Sensor() = default;

int Sensor::Poll(int timeout_ms) {
  int n = ring_buffer__poll(impl_->ring, timeout_ms);
  // With batched wakeups records wait without a wakeup: take them when the timer fires.
  if (n == 0) n = ring_buffer__consume(impl_->ring);
  return n;
}

std::vector<uint64_t> Sensor::Counters() const {
  std::vector<uint64_t> out(BOING_CTR_MAX, 0);
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < BOING_CTR_MAX; ++i) {
    if (bpf_map__lookup_elem(impl_->skel->maps.counters, &i, sizeof(i), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) == 0) {
      for (uint64_t v : per_cpu) out[i] += v;
    }
  }
  return out;
}

int Sensor::AttachOpenSsl(const std::string& path, std::string* error) {
  struct Probe {
    bpf_program* prog;
    const char* func;
    bool ret;
  };
  auto& p = impl_->skel->progs;
  const Probe probes[] = {
      {p.uprobe_ssl_read, "SSL_read", false},
      {p.uretprobe_ssl_read, "SSL_read", true},
      {p.uprobe_ssl_read_ex, "SSL_read_ex", false},
      {p.uretprobe_ssl_read_ex, "SSL_read_ex", true},
      {p.uprobe_ssl_write, "SSL_write", false},
      {p.uretprobe_ssl_write, "SSL_write", true},
      {p.uprobe_ssl_write_ex, "SSL_write_ex", false},
      {p.uretprobe_ssl_write_ex, "SSL_write_ex", true},
  };
  int attached = 0;
  std::string errors;
  for (const Probe& pr : probes) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = pr.ret, .func_name = pr.func);
    bpf_link* link = bpf_program__attach_uprobe_opts(pr.prog, -1, path.c_str(), 0, &opts);
    if (!link) {
      int err = errno;
      if (!errors.empty()) errors += "; ";
      errors += std::string(pr.func) + (pr.ret ? " (return)" : "") + ": " + Errno(err);
      continue;
    }
    impl_->links.push_back(link);
    if (!pr.ret) ++attached;
  }
  if (attached == 0) *error = "no OpenSSL probe attached to " + path + ": " + errors;
  return attached;
}

std::vector<RateSample> Sensor::ReadRates(size_t max_entries) const {
  std::vector<RateSample> out;
  auto read_map = [&](bpf_map* map, bool with_endpoint) {
    int fd = bpf_map__fd(map);
    boing_ip_endpoint_key key{}, next{};
    size_t key_size = with_endpoint ? sizeof(boing_ip_endpoint_key) : sizeof(boing_ip_key);
    void* prev = nullptr;
    while (out.size() < max_entries && bpf_map_get_next_key(fd, prev, &next) == 0) {
      boing_rate_value v{};
      if (bpf_map_lookup_elem(fd, &next, &v) == 0) {
        RateSample r;
        r.client_ip = AddressToString(10, next.addr);
        r.endpoint_hash = with_endpoint ? next.endpoint_hash : 0;
        r.requests = v.requests;
        r.last_ns = v.last_ns;
        out.push_back(std::move(r));
      }
      std::memcpy(&key, &next, key_size);
      prev = &key;
    }
  };
  read_map(impl_->skel->maps.rate_ip, false);
  read_map(impl_->skel->maps.rate_ip_endpoint, true);
  return out;
}

void Sensor::AddScopePid(uint32_t pid) {
  uint8_t one = 1;
  bpf_map__update_elem(impl_->skel->maps.scope_pids, &pid, sizeof(pid), &one, 1, BPF_ANY);
}

}  // namespace boing::agent
