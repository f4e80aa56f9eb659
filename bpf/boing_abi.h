// The kernel/user ABI of the Boing sensor: the records boing.bpf.c writes into its ring buffer,
// the keys and values of the maps user space reads, and the counter indexes.
//
// Invariants: fixed-width types only, every struct is 8-byte aligned and padded explicitly, and
// BOING_ABI_VERSION is bumped whenever any layout here changes. Every record starts with
// `struct boing_event_header`, whose `type` says which struct follows.
#pragma once

#ifdef __BPF__
// vmlinux.h provides __u8.. __u64 and __s32.
#else
#include <linux/types.h>
#endif

#define BOING_ABI_VERSION 1

#define BOING_COMM_LEN 16
// Largest payload prefix a single data record can carry; the run-time cap (cfg_max_payload) is
// at most this. Data records are variable-length: only `captured` bytes follow the header.
#define BOING_MAX_PAYLOAD 8192
#define BOING_MAX_IOV 8
// Cgroup v2 hierarchy levels the scope check looks at (root = level 0).
#define BOING_MAX_CGROUP_LEVELS 32

enum boing_event_type {
  BOING_EV_CONN_OPEN = 1,   // struct boing_conn_event
  BOING_EV_DATA = 2,        // struct boing_data_event
  BOING_EV_CONN_CLOSE = 3,  // struct boing_conn_event
  BOING_EV_PROC_EXEC = 4,   // struct boing_proc_event: a process in scope called exec
  BOING_EV_PROC_MMAP = 5,   // struct boing_proc_event: a process in scope mapped an executable file
};

enum boing_direction {
  BOING_DIR_INGRESS = 0,  // the process read it (read/recv/SSL_read)
  BOING_DIR_EGRESS = 1,   // the process wrote it (write/send/SSL_write/sendfile)
};

enum boing_role {
  BOING_ROLE_UNKNOWN = 0,  // the connection existed before tracking started
  BOING_ROLE_SERVER = 1,   // the fd came from accept
  BOING_ROLE_CLIENT = 2,   // the fd was connected by this process
};

enum boing_data_flags {
  BOING_DATA_TLS = 1u << 0,        // plaintext taken from SSL_read/SSL_write
  BOING_DATA_TRUNCATED = 1u << 1,  // captured < len: the rest is a gap in the stream
  BOING_DATA_SENDFILE = 1u << 2,   // bytes sent from a file: never captured, only counted
  // Records of this connection and direction were lost just before this one (ring buffer full):
  // the stream has a gap of unknown length here, and user space must resynchronise.
  BOING_DATA_AFTER_LOSS = 1u << 3,
  // The other direction's latest records were lost and nothing of it was delivered since.
  BOING_DATA_PEER_LOST = 1u << 4,
};

enum boing_proto {
  BOING_PROTO_UNKNOWN = 0,
  BOING_PROTO_HTTP1 = 1,
  BOING_PROTO_OTHER = 2,  // detection failed on the first bytes: nothing more is copied
};

// Per-CPU counters (array map `counters`), summed by user space.
enum boing_counter {
  BOING_CTR_EVENTS = 0,          // records submitted to the ring buffer
  BOING_CTR_DATA_EVENTS,         // of which data records
  BOING_CTR_DATA_BYTES,          // payload bytes copied
  BOING_CTR_DROP_RINGBUF_FULL,   // bpf_ringbuf_reserve failed
  BOING_CTR_DROP_CONN_MAP_FULL,  // connection map update failed
  BOING_CTR_DROP_ARGS_MAP_FULL,  // in-flight syscall map update failed
  BOING_CTR_DROP_SSL_MAP_FULL,   // in-flight SSL call / SSL->fd map update failed
  BOING_CTR_DROP_RATE_MAP_FULL,  // per-IP / per-endpoint rate map update failed
  BOING_CTR_DROP_READ_FAILED,    // bpf_probe_read_user of a payload failed
  BOING_CTR_TRUNCATED,           // data records that carried only a prefix (not a drop)
  BOING_CTR_NOT_HTTP,            // connections whose first bytes were not HTTP/1.x
  BOING_CTR_SSL_NO_FD,           // SSL calls whose socket could not be found
  BOING_CTR_LOST_REQUESTS,       // lost data records that started an HTTP request (ring full)
  BOING_CTR_MAX,
};

struct boing_conn_id {
  __u32 tgid;
  __s32 fd;
  __u64 generation;  // bpf_ktime_get_ns() when tracking began: a reused fd is a new connection
};

struct boing_event_header {
  __u32 type;  // enum boing_event_type
  __u32 abi_version;
  __u64 ts_ns;  // CLOCK_MONOTONIC (bpf_ktime_get_ns)
  struct boing_conn_id conn;
  __u64 cgroup_id;
  __u32 tid;
  __u32 pad;
  char comm[BOING_COMM_LEN];
};

struct boing_conn_event {
  struct boing_event_header hdr;
  __u16 family;  // AF_INET or AF_INET6
  __u16 role;    // enum boing_role
  __u16 local_port;
  __u16 remote_port;
  __u8 local_addr[16];  // IPv4 in the first 4 bytes
  __u8 remote_addr[16];
};

struct boing_data_event {
  struct boing_event_header hdr;
  __u32 direction;  // enum boing_direction
  __u32 flags;      // enum boing_data_flags
  __u32 len;        // bytes the syscall transferred
  __u32 captured;   // bytes of data[] that are valid (<= len)
  char data[];      // sized by its size class
};

struct boing_proc_event {
  struct boing_event_header hdr;
};

// Rate maps (LRU hash): requests seen per client IP, and per (client IP, endpoint hash).
struct boing_ip_key {
  __u8 addr[16];  // IPv4 as ::ffff:a.b.c.d
};
struct boing_ip_endpoint_key {
  __u8 addr[16];
  __u64 endpoint_hash;  // FNV-1a of the request target up to '?' or ' ', at most 64 bytes
};
struct boing_rate_value {
  __u64 requests;
  __u64 last_ns;
};

// Scope modes (const volatile cfg_*_mode).
enum boing_scope_mode {
  BOING_SCOPE_ALL = 0,
  BOING_SCOPE_INCLUDE = 1,
  BOING_SCOPE_EXCLUDE = 2,
};
