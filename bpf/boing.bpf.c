// SPDX-License-Identifier: GPL-2.0
// The Boing sensor: HTTP/1.x capture from syscall tracepoints and OpenSSL uprobes.
//
// Only syscall tracepoints, sched tracepoints and uprobes are used (no kprobes, no fentry: the
// kernels we target refuse them). Connections are keyed by (tgid, fd) with a generation stamp so a
// reused fd is a new connection. The first bytes of a connection are checked for HTTP/1.x before
// anything is copied; after that a bounded prefix of each read/write is copied. Every failure to
// record something is counted in `counters`.
// clang-format off
#include "vmlinux/vmlinux.h"  // must come first: the libbpf headers use its types
// clang-format on

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "boing_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define PROT_EXEC 4
#define EINPROGRESS 115

// ---- configuration fixed at load (set by the agent before load) ----
const volatile __u32 cfg_max_payload = 4096;
const volatile __u32 cfg_self_tgid = 0;
const volatile __u32 cfg_pid_mode = BOING_SCOPE_ALL;
const volatile __u32 cfg_cgroup_mode = BOING_SCOPE_ALL;
// Bit L set: some cgroup in scope_cgroups sits at hierarchy level L (root = 0). A task matches
// when its ancestor at one of these levels is in the map, so descendants of a scoped cgroup
// (containers under a pod slice, services under a slice) are matched too.
const volatile __u32 cfg_cgroup_levels = 0;
const volatile __u32 cfg_port_mode = BOING_SCOPE_ALL;
const volatile __u8 cfg_follow_children = 1;
const volatile __u8 cfg_rate_counters = 1;
// Ring-buffer wakeups: 0 wakes the agent for every record it is waiting on (the kernel's
// adaptive default); N > 0 wakes it only once N bytes are waiting, the agent polling on a short
// timer meanwhile. A wakeup is an irq_work plus a cross-CPU task wakeup, several microseconds
// charged to the traced application per record: at N > 0 it is paid once per batch.
const volatile __u32 cfg_wakeup_bytes = 0;

// ---- maps ----
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BOING_CTR_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct conn_key {
  __u32 tgid;
  __s32 fd;
};

struct conn_state {
  __u64 generation;
  __u16 family;
  __u16 role;
  __u16 local_port;
  __u16 remote_port;
  __u8 local_addr[16];
  __u8 remote_addr[16];
  __u8 proto;      // enum boing_proto for the syscall (plaintext) stream
  __u8 tls_proto;  // enum boing_proto for the SSL plaintext stream
  __u8 tls;        // SSL calls were seen on this fd: the syscall stream is ciphertext
  __u8 ignored;    // not a TCP socket, or out of scope by port
  __u8 open_sent;  // BOING_EV_CONN_OPEN was emitted
  __u8 lost;       // bit (1 << direction): that direction's last data record was lost
  __u8 pad[2];
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct conn_key);
  __type(value, struct conn_state);
} conns SEC(".maps");

enum args_kind { ARGS_ACCEPT = 1, ARGS_CONNECT, ARGS_BUF, ARGS_IOV, ARGS_SENDFILE };

struct syscall_args {
  __u64 ptr;  // buffer, or iovec array
  __u64 iovcnt;
  __u64 ts;
  __s32 fd;
  __u32 kind;
  __u32 dir;
  __u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);  // pid_tgid
  __type(value, struct syscall_args);
} inflight SEC(".maps");

enum ssl_func { SSL_FN_READ = 1, SSL_FN_READ_EX, SSL_FN_WRITE, SSL_FN_WRITE_EX };

struct ssl_call {
  __u64 ssl;
  __u64 buf;
  __u64 len_ptr;  // size_t* of the _ex variants
  __u64 ts;
  __s32 fd;
  __u32 func;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);  // pid_tgid
  __type(value, struct ssl_call);
} ssl_active SEC(".maps");

struct ssl_key {
  __u64 ssl;
  __u32 tgid;
  __u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct ssl_key);
  __type(value, __s32);
} ssl_fds SEC(".maps");

// The socket a thread read from last. Runtimes that feed OpenSSL through memory BIOs (Node.js)
// make no syscall inside SSL_read: they read the socket just before, on the same thread.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);  // pid_tgid
  __type(value, __s32);
} last_read_fd SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, __u8);
} scope_pids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, __u8);
} scope_cgroups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u16);
  __type(value, __u8);
} scope_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct boing_ip_key);
  __type(value, struct boing_rate_value);
} rate_ip SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 131072);
  __type(key, struct boing_ip_endpoint_key);
  __type(value, struct boing_rate_value);
} rate_ip_endpoint SEC(".maps");

// Data records are assembled here and sent with bpf_ringbuf_output: bpf_ringbuf_reserve needs a
// constant size, and reserving the maximum for every 100-byte read would waste most of the ring.
// The buffer is twice the maximum so an iovec copy at any offset <= max of any length <= max is
// provably in bounds.
struct data_scratch {
  struct boing_data_event ev;
  char data[2 * BOING_MAX_PAYLOAD];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct data_scratch);
} scratch SEC(".maps");

// ---- helpers: counters and scope ----
static __always_inline void count(__u32 idx, __u64 n) {
  __u64* v = bpf_map_lookup_elem(&counters, &idx);
  if (v) *v += n;
}

static __always_inline bool task_in_scope(__u32 tgid) {
  if (tgid == cfg_self_tgid) return false;
  if (cfg_pid_mode != BOING_SCOPE_ALL) {
    bool hit = bpf_map_lookup_elem(&scope_pids, &tgid) != NULL;
    if ((cfg_pid_mode == BOING_SCOPE_INCLUDE) != hit) return false;
  }
  if (cfg_cgroup_mode != BOING_SCOPE_ALL) {
    bool hit = false;
    for (int level = 0; level < BOING_MAX_CGROUP_LEVELS && !hit; level++) {
      if (!(cfg_cgroup_levels & (1u << level))) continue;
      __u64 cg = bpf_get_current_ancestor_cgroup_id(level);
      hit = cg && bpf_map_lookup_elem(&scope_cgroups, &cg) != NULL;
    }
    if ((cfg_cgroup_mode == BOING_SCOPE_INCLUDE) != hit) return false;
  }
  return true;
}

static __always_inline bool ports_in_scope(__u16 local_port, __u16 remote_port) {
  if (cfg_port_mode == BOING_SCOPE_ALL) return true;
  bool hit = bpf_map_lookup_elem(&scope_ports, &local_port) != NULL ||
             bpf_map_lookup_elem(&scope_ports, &remote_port) != NULL;
  return (cfg_port_mode == BOING_SCOPE_INCLUDE) == hit;
}

// ---- helpers: fd -> struct sock (CO-RE) ----
static __always_inline struct sock* sock_of_fd(__s32 fd) {
  if (fd < 0) return NULL;
  struct task_struct* task = (struct task_struct*)bpf_get_current_task();
  struct files_struct* files = BPF_CORE_READ(task, files);
  if (!files) return NULL;
  struct fdtable* fdt = BPF_CORE_READ(files, fdt);
  if (!fdt) return NULL;
  unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
  if ((unsigned int)fd >= max_fds) return NULL;
  struct file** fds = BPF_CORE_READ(fdt, fd);
  struct file* file = NULL;
  if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file) return NULL;
  umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
  if ((mode & S_IFMT) != S_IFSOCK) return NULL;
  struct socket* sock = BPF_CORE_READ(file, private_data);
  if (!sock) return NULL;
  return BPF_CORE_READ(sock, sk);
}

// Fills the address part of `c`; returns false when the socket is not TCP over IPv4/IPv6.
static __always_inline bool fill_addresses(struct sock* sk, struct conn_state* c) {
  if (!sk) return false;
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family != AF_INET && family != AF_INET6) return false;
  if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM) return false;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return false;
  c->family = family;
  c->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
  c->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == AF_INET) {
    __u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    __u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    __builtin_memcpy(c->local_addr, &l, 4);
    __builtin_memcpy(c->remote_addr, &r, 4);
  } else {
    BPF_CORE_READ_INTO(&c->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&c->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  }
  return true;
}

// Starts tracking (tgid, fd); replaces any previous entry (the fd was reused).
static __always_inline struct conn_state* conn_create(__u32 tgid, __s32 fd, __u16 role) {
  struct conn_key key = {.tgid = tgid, .fd = fd};
  struct conn_state c = {};
  c.generation = bpf_ktime_get_ns();
  c.role = role;
  if (!fill_addresses(sock_of_fd(fd), &c) || !ports_in_scope(c.local_port, c.remote_port))
    c.ignored = 1;
  if (bpf_map_update_elem(&conns, &key, &c, BPF_ANY)) {
    count(BOING_CTR_DROP_CONN_MAP_FULL, 1);
    return NULL;
  }
  return bpf_map_lookup_elem(&conns, &key);
}

// Connections opened before tracking began are picked up at their first read or write.
static __always_inline struct conn_state* conn_get(__u32 tgid, __s32 fd) {
  struct conn_key key = {.tgid = tgid, .fd = fd};
  struct conn_state* c = bpf_map_lookup_elem(&conns, &key);
  if (c) return c;
  return conn_create(tgid, fd, BOING_ROLE_UNKNOWN);
}

static __always_inline void fill_header(struct boing_event_header* h, __u32 type, __u32 tgid,
                                        __s32 fd, __u64 generation, __u64 ts) {
  __u64 id = bpf_get_current_pid_tgid();
  h->type = type;
  h->abi_version = BOING_ABI_VERSION;
  h->ts_ns = ts;
  h->conn.tgid = tgid;
  h->conn.fd = fd;
  h->conn.generation = generation;
  h->cgroup_id = bpf_get_current_cgroup_id();
  h->tid = (__u32)id;
  h->pad = 0;
  bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline __u64 wakeup_flags(void) {
  if (!cfg_wakeup_bytes) return 0;
  return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                           : BPF_RB_NO_WAKEUP;
}

static __always_inline bool emit_conn(__u32 type, __u32 tgid, __s32 fd, struct conn_state* c) {
  struct boing_conn_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(BOING_CTR_DROP_RINGBUF_FULL, 1);
    return false;
  }
  fill_header(&e->hdr, type, tgid, fd, c->generation, bpf_ktime_get_ns());
  e->family = c->family;
  e->role = c->role;
  e->local_port = c->local_port;
  e->remote_port = c->remote_port;
  __builtin_memcpy(e->local_addr, c->local_addr, 16);
  __builtin_memcpy(e->remote_addr, c->remote_addr, 16);
  bpf_ringbuf_submit(e, wakeup_flags());
  count(BOING_CTR_EVENTS, 1);
  return true;
}

static __always_inline void emit_proc(__u32 type, __u32 tgid) {
  struct boing_proc_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count(BOING_CTR_DROP_RINGBUF_FULL, 1);
    return;
  }
  fill_header(&e->hdr, type, tgid, -1, 0, bpf_ktime_get_ns());
  // Prompt even when data records wait: the agent attaches TLS probes on these.
  bpf_ringbuf_submit(e, cfg_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : 0);
  count(BOING_CTR_EVENTS, 1);
}

// ---- protocol detection ----
static __always_inline bool is_http_start(const char* p) {
  // p holds 8 bytes.
  if (p[0] == 'G' && p[1] == 'E' && p[2] == 'T' && p[3] == ' ') return true;
  if (p[0] == 'P' && p[1] == 'O' && p[2] == 'S' && p[3] == 'T') return true;
  if (p[0] == 'P' && p[1] == 'U' && p[2] == 'T' && p[3] == ' ') return true;
  if (p[0] == 'H' && p[1] == 'E' && p[2] == 'A' && p[3] == 'D') return true;
  if (p[0] == 'D' && p[1] == 'E' && p[2] == 'L' && p[3] == 'E') return true;
  if (p[0] == 'P' && p[1] == 'A' && p[2] == 'T' && p[3] == 'C') return true;
  if (p[0] == 'O' && p[1] == 'P' && p[2] == 'T' && p[3] == 'I') return true;
  if (p[0] == 'C' && p[1] == 'O' && p[2] == 'N' && p[3] == 'N') return true;
  if (p[0] == 'T' && p[1] == 'R' && p[2] == 'A' && p[3] == 'C') return true;
  return p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' && p[5] == '1' &&
         p[6] == '.';
}

// Decides the protocol of a stream from its first bytes; returns the (possibly updated) state.
static __always_inline __u8 detect(__u8* state, const void* first, __u64 avail) {
  if (*state != BOING_PROTO_UNKNOWN) return *state;
  if (avail < 4) return BOING_PROTO_UNKNOWN;  // too little to decide; look again next time
  char p[8] = {};
  bpf_probe_read_user(p, avail < 8 ? 4 : 8, first);
  if (is_http_start(p)) {
    *state = BOING_PROTO_HTTP1;
  } else {
    *state = BOING_PROTO_OTHER;
    count(BOING_CTR_NOT_HTTP, 1);
  }
  return *state;
}

// True when the copied bytes start an HTTP request (not a response).
static __always_inline bool starts_request(const char* data, __u32 n) {
  if (n < 6) return false;
  char m[8] = {};
  __builtin_memcpy(m, data, 8);
  return is_http_start(m) && !(m[0] == 'H' && m[1] == 'T');
}

// ---- rate counters ----
static __always_inline void count_request(struct conn_state* c, const char* data, __u32 n) {
  if (!cfg_rate_counters || c->role == BOING_ROLE_CLIENT) return;
  // Only a request that starts the read is counted (pipelined followers are not).
  if (!starts_request(data, n)) return;

  struct boing_ip_endpoint_key k = {};
  if (c->family == AF_INET) {
    k.addr[10] = 0xff;
    k.addr[11] = 0xff;
    __builtin_memcpy(&k.addr[12], c->remote_addr, 4);
  } else {
    __builtin_memcpy(k.addr, c->remote_addr, 16);
  }
  __u64 h = 0xcbf29ce484222325ULL;
  bool in_target = false;
  for (int i = 0; i < 80; i++) {
    if ((__u32)i >= n) break;
    char ch = data[i & (2 * BOING_MAX_PAYLOAD - 1)];
    if (!in_target) {
      if (ch == ' ') in_target = true;
      continue;
    }
    if (ch == ' ' || ch == '?' || ch == '\r') break;
    h ^= (__u8)ch;
    h *= 0x100000001b3ULL;
  }
  k.endpoint_hash = h;
  __u64 now = bpf_ktime_get_ns();

  struct boing_ip_key ik = {};
  __builtin_memcpy(ik.addr, k.addr, 16);
  struct boing_rate_value* v = bpf_map_lookup_elem(&rate_ip, &ik);
  if (v) {
    __sync_fetch_and_add(&v->requests, 1);
    v->last_ns = now;
  } else {
    struct boing_rate_value nv = {.requests = 1, .last_ns = now};
    if (bpf_map_update_elem(&rate_ip, &ik, &nv, BPF_NOEXIST) && !bpf_map_lookup_elem(&rate_ip, &ik))
      count(BOING_CTR_DROP_RATE_MAP_FULL, 1);
  }
  v = bpf_map_lookup_elem(&rate_ip_endpoint, &k);
  if (v) {
    __sync_fetch_and_add(&v->requests, 1);
    v->last_ns = now;
  } else {
    struct boing_rate_value nv = {.requests = 1, .last_ns = now};
    if (bpf_map_update_elem(&rate_ip_endpoint, &k, &nv, BPF_NOEXIST) &&
        !bpf_map_lookup_elem(&rate_ip_endpoint, &k))
      count(BOING_CTR_DROP_RATE_MAP_FULL, 1);
  }
}

// ---- data records ----
// Copies up to cfg_max_payload of `total` bytes held in `iovcnt` iovecs (or one plain buffer when
// `is_iov` is false) and submits the record.
static __always_inline void emit_data(__u32 tgid, __s32 fd, struct conn_state* c, __u32 dir,
                                      __u32 flags, __u64 ptr, __u64 iovcnt, bool is_iov,
                                      __u64 total, __u64 ts) {
  __u32 zero = 0;
  struct data_scratch* s = bpf_map_lookup_elem(&scratch, &zero);
  if (!s) return;

  // A connection's data never precedes its OPEN record: when the OPEN is lost, so is the data
  // (marked as a loss in both directions), and the OPEN is tried again with the next record.
  bool open_lost = false;
  if (!c->open_sent) {
    if (emit_conn(BOING_EV_CONN_OPEN, tgid, fd, c)) {
      c->open_sent = 1;
    } else {
      c->lost = 3;
      open_lost = true;
    }
  }

  __u64 cap = cfg_max_payload;
  if (cap > BOING_MAX_PAYLOAD) cap = BOING_MAX_PAYLOAD;
  if (flags & BOING_DATA_SENDFILE) cap = 0;
  __u64 captured = 0;
  __u64 remaining = total;

  if (!is_iov) {
    __u64 n = total < cap ? total : cap;
    if (n > BOING_MAX_PAYLOAD) n = BOING_MAX_PAYLOAD;
    if (n && bpf_probe_read_user(s->data, n, (const void*)ptr)) {
      count(BOING_CTR_DROP_READ_FAILED, 1);
      n = 0;
    }
    captured = n;
  } else {
    for (int i = 0; i < BOING_MAX_IOV; i++) {
      if ((__u64)i >= iovcnt || remaining == 0 || captured >= cap) break;
      struct iovec iov = {};
      if (bpf_probe_read_user(&iov, sizeof(iov), (const void*)(ptr + i * sizeof(iov)))) break;
      __u64 n = iov.iov_len;
      if (n > remaining) n = remaining;
      remaining -= n;
      __u64 room = cap - captured;
      if (n > room) n = room;
      __u64 off = captured;
      if (off > BOING_MAX_PAYLOAD || n > BOING_MAX_PAYLOAD) break;
      if (n && bpf_probe_read_user(&s->data[off], n, iov.iov_base)) {
        count(BOING_CTR_DROP_READ_FAILED, 1);
        break;
      }
      captured += n;
    }
  }

  if (captured > BOING_MAX_PAYLOAD) captured = BOING_MAX_PAYLOAD;
  fill_header(&s->ev.hdr, BOING_EV_DATA, tgid, fd, c->generation, ts);
  s->ev.direction = dir;
  s->ev.len = total > 0xffffffffULL ? 0xffffffffU : (__u32)total;
  s->ev.captured = (__u32)captured;
  if (captured < total) {
    flags |= BOING_DATA_TRUNCATED;
    count(BOING_CTR_TRUNCATED, 1);
  }
  __u8 dir_bit = dir == BOING_DIR_EGRESS ? 2 : 1;
  if (c->lost & dir_bit) flags |= BOING_DATA_AFTER_LOSS;
  if (c->lost & (dir_bit ^ 3)) flags |= BOING_DATA_PEER_LOST;
  s->ev.flags = flags;

  if (dir == BOING_DIR_INGRESS && captured) count_request(c, s->data, (__u32)captured);

  if (open_lost || bpf_ringbuf_output(&events, s, sizeof(s->ev) + captured, wakeup_flags())) {
    if (!open_lost) count(BOING_CTR_DROP_RINGBUF_FULL, 1);
    c->lost |= dir_bit;
    // Counted so that user space can account for every request: those it never saw.
    if (starts_request(s->data, (__u32)captured)) count(BOING_CTR_LOST_REQUESTS, 1);
    return;
  }
  c->lost &= ~dir_bit;
  count(BOING_CTR_EVENTS, 1);
  count(BOING_CTR_DATA_EVENTS, 1);
  count(BOING_CTR_DATA_BYTES, captured);
}

// ---- syscall tracepoints ----
// If an SSL call is in progress on this thread, the syscall belongs to it: note the fd (the
// nested-syscall technique), mark the connection as TLS so its ciphertext is never emitted, and
// tell the caller to skip it.
static __always_inline bool claim_for_ssl(__u64 id, __s32 fd) {
  struct ssl_call* call = bpf_map_lookup_elem(&ssl_active, &id);
  if (!call) return false;
  if (call->fd < 0) call->fd = fd;
  struct conn_state* c = conn_get(id >> 32, fd);
  if (c) c->tls = 1;
  return true;
}

static __always_inline void save_args(__u32 kind, __s32 fd, __u64 ptr, __u64 iovcnt, __u32 dir) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  if (!task_in_scope(tgid)) return;
  if ((kind == ARGS_BUF || kind == ARGS_IOV) && claim_for_ssl(id, fd)) return;
  if (kind == ARGS_BUF || kind == ARGS_IOV || kind == ARGS_SENDFILE) {
    // Skip fds already known to be uninteresting before paying for a map update.
    struct conn_key key = {.tgid = tgid, .fd = fd};
    struct conn_state* c = bpf_map_lookup_elem(&conns, &key);
    if (c && !c->ignored && dir == BOING_DIR_INGRESS)
      bpf_map_update_elem(&last_read_fd, &id, &fd, BPF_ANY);
    if (c && (c->ignored || c->tls || c->proto == BOING_PROTO_OTHER)) return;
  }
  struct syscall_args a = {};
  a.ptr = ptr;
  a.iovcnt = iovcnt;
  a.ts = bpf_ktime_get_ns();
  a.fd = fd;
  a.kind = kind;
  a.dir = dir;
  if (bpf_map_update_elem(&inflight, &id, &a, BPF_ANY)) count(BOING_CTR_DROP_ARGS_MAP_FULL, 1);
}

static __always_inline void handle_exit(long ret) {
  __u64 id = bpf_get_current_pid_tgid();
  struct syscall_args* ap = bpf_map_lookup_elem(&inflight, &id);
  if (!ap) return;
  struct syscall_args a = *ap;
  bpf_map_delete_elem(&inflight, &id);
  __u32 tgid = id >> 32;

  if (a.kind == ARGS_ACCEPT) {
    if (ret >= 0) conn_create(tgid, (__s32)ret, BOING_ROLE_SERVER);
    return;
  }
  if (a.kind == ARGS_CONNECT) {
    if (ret == 0 || ret == -EINPROGRESS) conn_create(tgid, a.fd, BOING_ROLE_CLIENT);
    return;
  }
  if (ret <= 0) return;

  struct conn_state* c = conn_get(tgid, a.fd);
  if (!c || c->ignored || c->tls) return;
  // Writes are stamped when they start, reads when their data arrived.
  __u64 ts = a.dir == BOING_DIR_EGRESS ? a.ts : bpf_ktime_get_ns();

  if (a.kind == ARGS_SENDFILE) {
    if (c->proto == BOING_PROTO_HTTP1)
      emit_data(tgid, a.fd, c, a.dir, BOING_DATA_SENDFILE, 0, 0, false, ret, ts);
    return;
  }

  const void* first = (const void*)a.ptr;
  __u64 first_len = ret;
  if (a.kind == ARGS_IOV) {
    struct iovec iov = {};
    if (a.iovcnt == 0 || bpf_probe_read_user(&iov, sizeof(iov), (const void*)a.ptr)) return;
    first = iov.iov_base;
    first_len = iov.iov_len < (__u64)ret ? iov.iov_len : (__u64)ret;
  }
  if (detect(&c->proto, first, first_len) != BOING_PROTO_HTTP1) return;
  emit_data(tgid, a.fd, c, a.dir, 0, a.ptr, a.iovcnt, a.kind == ARGS_IOV, ret, ts);
}

SEC("tracepoint/syscalls/sys_enter_accept")
int tp_enter_accept(struct trace_event_raw_sys_enter* ctx) {
  save_args(ARGS_ACCEPT, (__s32)ctx->args[0], 0, 0, 0);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}
SEC("tracepoint/syscalls/sys_enter_accept4")
int tp_enter_accept4(struct trace_event_raw_sys_enter* ctx) {
  save_args(ARGS_ACCEPT, (__s32)ctx->args[0], 0, 0, 0);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}
SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_connect(struct trace_event_raw_sys_enter* ctx) {
  save_args(ARGS_CONNECT, (__s32)ctx->args[0], 0, 0, 0);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_connect")
int tp_exit_connect(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}

#define BUF_SYSCALL(name, dir)                                      \
  SEC("tracepoint/syscalls/sys_enter_" #name)                       \
  int tp_enter_##name(struct trace_event_raw_sys_enter* ctx) {      \
    save_args(ARGS_BUF, (__s32)ctx->args[0], ctx->args[1], 0, dir); \
    return 0;                                                       \
  }                                                                 \
  SEC("tracepoint/syscalls/sys_exit_" #name)                        \
  int tp_exit_##name(struct trace_event_raw_sys_exit* ctx) {        \
    handle_exit(ctx->ret);                                          \
    return 0;                                                       \
  }

#define IOV_SYSCALL(name, dir)                                                 \
  SEC("tracepoint/syscalls/sys_enter_" #name)                                  \
  int tp_enter_##name(struct trace_event_raw_sys_enter* ctx) {                 \
    save_args(ARGS_IOV, (__s32)ctx->args[0], ctx->args[1], ctx->args[2], dir); \
    return 0;                                                                  \
  }                                                                            \
  SEC("tracepoint/syscalls/sys_exit_" #name)                                   \
  int tp_exit_##name(struct trace_event_raw_sys_exit* ctx) {                   \
    handle_exit(ctx->ret);                                                     \
    return 0;                                                                  \
  }

BUF_SYSCALL(read, BOING_DIR_INGRESS)
BUF_SYSCALL(write, BOING_DIR_EGRESS)
BUF_SYSCALL(sendto, BOING_DIR_EGRESS)
IOV_SYSCALL(readv, BOING_DIR_INGRESS)
IOV_SYSCALL(writev, BOING_DIR_EGRESS)

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int tp_enter_recvfrom(struct trace_event_raw_sys_enter* ctx) {
  if (ctx->args[3] & MSG_PEEK) return 0;  // the bytes will be read again
  save_args(ARGS_BUF, (__s32)ctx->args[0], ctx->args[1], 0, BOING_DIR_INGRESS);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int tp_exit_recvfrom(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}

static __always_inline void save_msg(struct trace_event_raw_sys_enter* ctx, __u32 dir) {
  struct user_msghdr msg = {};
  if (bpf_probe_read_user(&msg, sizeof(msg), (const void*)ctx->args[1])) return;
  save_args(ARGS_IOV, (__s32)ctx->args[0], (__u64)msg.msg_iov, msg.msg_iovlen, dir);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int tp_enter_recvmsg(struct trace_event_raw_sys_enter* ctx) {
  if (ctx->args[2] & MSG_PEEK) return 0;
  save_msg(ctx, BOING_DIR_INGRESS);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int tp_exit_recvmsg(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int tp_enter_sendmsg(struct trace_event_raw_sys_enter* ctx) {
  save_msg(ctx, BOING_DIR_EGRESS);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int tp_exit_sendmsg(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendfile64")
int tp_enter_sendfile64(struct trace_event_raw_sys_enter* ctx) {
  save_args(ARGS_SENDFILE, (__s32)ctx->args[0], 0, 0, BOING_DIR_EGRESS);
  return 0;
}
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int tp_exit_sendfile64(struct trace_event_raw_sys_exit* ctx) {
  handle_exit(ctx->ret);
  return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int tp_enter_close(struct trace_event_raw_sys_enter* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  struct conn_key key = {.tgid = id >> 32, .fd = (__s32)ctx->args[0]};
  struct conn_state* c = bpf_map_lookup_elem(&conns, &key);
  if (!c) return 0;
  if (c->open_sent) emit_conn(BOING_EV_CONN_CLOSE, key.tgid, key.fd, c);
  bpf_map_delete_elem(&conns, &key);
  return 0;
}

// ---- process tracking ----
SEC("tracepoint/sched/sched_process_fork")
int tp_sched_fork(struct trace_event_raw_sched_process_fork* ctx) {
  if (cfg_pid_mode != BOING_SCOPE_INCLUDE || !cfg_follow_children) return 0;
  __u32 parent = bpf_get_current_pid_tgid() >> 32;
  if (!bpf_map_lookup_elem(&scope_pids, &parent)) return 0;
  __u32 child = ctx->child_pid;
  __u8 one = 1;
  bpf_map_update_elem(&scope_pids, &child, &one, BPF_ANY);
  return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int tp_sched_exec(struct trace_event_raw_sched_process_exec* ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (task_in_scope(tgid)) emit_proc(BOING_EV_PROC_EXEC, tgid);
  return 0;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int tp_enter_mmap(struct trace_event_raw_sys_enter* ctx) {
  if (!(ctx->args[2] & PROT_EXEC) || (long)ctx->args[4] < 0) return 0;
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (task_in_scope(tgid)) emit_proc(BOING_EV_PROC_MMAP, tgid);
  return 0;
}

// ---- OpenSSL uprobes (attached per library file by the agent) ----
static __always_inline void ssl_enter(__u32 func, void* ssl, void* buf, void* len_ptr) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  if (!task_in_scope(tgid)) return;
  if (bpf_map_lookup_elem(&ssl_active, &id)) return;  // nested call: the outer one reports
  struct ssl_call call = {};
  call.ssl = (__u64)ssl;
  call.buf = (__u64)buf;
  call.len_ptr = (__u64)len_ptr;
  call.ts = bpf_ktime_get_ns();
  call.func = func;
  call.fd = -1;
  if (bpf_map_update_elem(&ssl_active, &id, &call, BPF_ANY)) count(BOING_CTR_DROP_SSL_MAP_FULL, 1);
}

static __always_inline void ssl_exit(__u32 func, long ret) {
  __u64 id = bpf_get_current_pid_tgid();
  struct ssl_call* cp = bpf_map_lookup_elem(&ssl_active, &id);
  if (!cp || cp->func != func) return;
  struct ssl_call call = *cp;
  bpf_map_delete_elem(&ssl_active, &id);
  __u32 tgid = id >> 32;

  __u64 bytes = 0;
  if (func == SSL_FN_READ_EX || func == SSL_FN_WRITE_EX) {
    if (ret != 1) return;
    size_t n = 0;
    if (bpf_probe_read_user(&n, sizeof(n), (const void*)call.len_ptr)) return;
    bytes = n;
  } else {
    if (ret <= 0) return;
    bytes = ret;
  }
  if (!bytes) return;

  struct ssl_key sk = {.ssl = call.ssl, .tgid = tgid};
  if (call.fd >= 0) {
    if (bpf_map_update_elem(&ssl_fds, &sk, &call.fd, BPF_ANY))
      count(BOING_CTR_DROP_SSL_MAP_FULL, 1);
  } else {
    // No syscall inside this call (data was already buffered): use what this SSL last used.
    __s32* fdp = bpf_map_lookup_elem(&ssl_fds, &sk);
    if (!fdp) fdp = bpf_map_lookup_elem(&last_read_fd, &id);
    if (!fdp) {
      count(BOING_CTR_SSL_NO_FD, 1);
      return;
    }
    call.fd = *fdp;
    bpf_map_update_elem(&ssl_fds, &sk, &call.fd, BPF_ANY);
  }

  struct conn_state* c = conn_get(tgid, call.fd);
  if (!c || c->ignored) return;
  c->tls = 1;
  __u32 dir =
      (func == SSL_FN_READ || func == SSL_FN_READ_EX) ? BOING_DIR_INGRESS : BOING_DIR_EGRESS;
  if (detect(&c->tls_proto, (const void*)call.buf, bytes) != BOING_PROTO_HTTP1) return;
  __u64 ts = dir == BOING_DIR_EGRESS ? call.ts : bpf_ktime_get_ns();
  emit_data(tgid, call.fd, c, dir, BOING_DATA_TLS, call.buf, 0, false, bytes, ts);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_read, void* ssl, void* buf, int num) {
  ssl_enter(SSL_FN_READ, ssl, buf, NULL);
  return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_read, int ret) {
  ssl_exit(SSL_FN_READ, ret);
  return 0;
}
SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_read_ex, void* ssl, void* buf, size_t num, size_t* readbytes) {
  ssl_enter(SSL_FN_READ_EX, ssl, buf, readbytes);
  return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_read_ex, int ret) {
  ssl_exit(SSL_FN_READ_EX, ret);
  return 0;
}
SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_write, void* ssl, const void* buf, int num) {
  ssl_enter(SSL_FN_WRITE, ssl, (void*)buf, NULL);
  return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_write, int ret) {
  ssl_exit(SSL_FN_WRITE, ret);
  return 0;
}
SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_write_ex, void* ssl, const void* buf, size_t num, size_t* written) {
  ssl_enter(SSL_FN_WRITE_EX, ssl, (void*)buf, written);
  return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_write_ex, int ret) {
  ssl_exit(SSL_FN_WRITE_EX, ret);
  return 0;
}
