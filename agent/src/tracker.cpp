#include "boing/agent/tracker.h"

#include <arpa/inet.h>
#include <time.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "boing_abi.h"

namespace boing::agent {
namespace {

constexpr uint16_t kAfInet = 2;
constexpr uint16_t kAfInet6 = 10;

int64_t NowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool ToMapped(std::string_view text, uint8_t out[16]) {
  // inet_pton reads a C string: an embedded NUL would let "1.2.3.4\0<anything>" pass.
  if (text.find('\0') != std::string_view::npos) return false;
  std::string s(text);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &v4, 4);
    return true;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out, &v6, 16);
    return true;
  }
  return false;
}

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "for=192.0.2.1", "for=\"[2001:db8::1]:4711\"" -> the address.
std::string ForwardedFor(std::string_view element) {
  size_t p = Lower(element).find("for=");
  if (p == std::string::npos) return {};
  std::string_view v = element.substr(p + 4);
  v = v.substr(0, v.find(';'));
  v = Trim(v);
  if (!v.empty() && v.front() == '"') v.remove_prefix(1);
  if (!v.empty() && v.back() == '"') v.remove_suffix(1);
  if (!v.empty() && v.front() == '[') {
    size_t close = v.find(']');
    return std::string(v.substr(1, close == std::string_view::npos ? v.size() - 1 : close - 1));
  }
  if (std::count(v.begin(), v.end(), ':') == 1) v = v.substr(0, v.find(':'));
  return std::string(v);
}

}  // namespace

bool Cidr::Parse(std::string_view text, Cidr& out) {
  size_t slash = text.find('/');
  std::string_view ip = text.substr(0, slash);
  Cidr c;
  if (!ToMapped(ip, c.addr)) return false;
  bool v4 = ip.find(':') == std::string_view::npos;
  int max = v4 ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string p(text.substr(slash + 1));
    if (p.empty() || p.size() > 3) return false;
    for (char ch : p)
      if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
    prefix = std::stoi(p);
    if (prefix > max) return false;
  }
  c.prefix = v4 ? prefix + 96 : prefix;
  out = c;
  return true;
}

bool Cidr::Contains(std::string_view ip_text) const {
  uint8_t a[16];
  if (!ToMapped(ip_text, a)) return false;
  int bits = prefix;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (addr[i] & mask)) return false;
  }
  return true;
}

std::string AddressToString(uint16_t family, const uint8_t addr[16]) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == kAfInet) {
    inet_ntop(AF_INET, addr, buf, sizeof(buf));
    return buf;
  }
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(addr, kMapped, 12) == 0) {
    inet_ntop(AF_INET, addr + 12, buf, sizeof(buf));
    return buf;
  }
  inet_ntop(AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

std::string RealClientIp(std::string_view peer, const HeaderList& headers,
                         const std::vector<Cidr>& trusted) {
  auto is_trusted = [&](std::string_view ip) {
    for (const Cidr& c : trusted)
      if (c.Contains(ip)) return true;
    return false;
  };
  if (trusted.empty() || !is_trusted(peer)) return std::string(peer);
  std::vector<std::string> hops;
  std::string_view xff = FindHeader(headers, "x-forwarded-for");
  if (!xff.empty()) {
    size_t start = 0;
    while (start <= xff.size()) {
      size_t comma = xff.find(',', start);
      std::string_view item = Trim(xff.substr(start, comma - start));
      if (!item.empty()) hops.emplace_back(item);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  } else {
    std::string_view fwd = FindHeader(headers, "forwarded");
    size_t start = 0;
    while (!fwd.empty() && start <= fwd.size()) {
      size_t comma = fwd.find(',', start);
      std::string ip = ForwardedFor(fwd.substr(start, comma - start));
      if (!ip.empty()) hops.push_back(ip);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    uint8_t tmp[16];
    if (!ToMapped(*it, tmp)) break;  // not an address: stop trusting the chain here
    if (!is_trusted(*it)) return *it;
  }
  return std::string(peer);
}

struct Tracker::Conn {
  ConnKey key;
  uint16_t family = 0;
  int role = 0;
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  uint8_t local_addr[16] = {};
  uint8_t remote_addr[16] = {};
  bool have_addresses = false;
  bool tls = false;
  uint64_t cgroup_id = 0;
  std::string comm;
  uint64_t last_ns = 0;
  std::unique_ptr<HttpConnection> http;
  ConnectionStats reported;
};

size_t Tracker::ConnKeyHash::operator()(const ConnKey& k) const {
  uint64_t h = (static_cast<uint64_t>(k.tgid) << 32) ^ static_cast<uint32_t>(k.fd);
  h ^= k.generation + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return std::hash<uint64_t>()(h);
}

Tracker::Tracker(TrackerOptions options, EventSink sink)
    : options_(std::move(options)), sink_(std::move(sink)), pods_(options_.pods) {
  realtime_offset_ns_ = NowNs(CLOCK_REALTIME) - NowNs(CLOCK_MONOTONIC);
}

Tracker::~Tracker() = default;

Tracker::Conn* Tracker::Find(const ConnKey& key, bool create, const void* header) {
  auto it = conns_.find(key);
  if (it != conns_.end()) return it->second.get();
  if (!create) return nullptr;
  if (conns_.size() >= options_.max_connections) {
    // Evict the least recently active connection.
    auto victim = conns_.begin();
    for (auto i = conns_.begin(); i != conns_.end(); ++i)
      if (i->second->last_ns < victim->second->last_ns) victim = i;
    Retire(*victim->second);
    conns_.erase(victim);
    ++stats_.connections_evicted;
  }
  auto c = std::make_unique<Conn>();
  c->key = key;
  const auto* h = static_cast<const boing_event_header*>(header);
  c->cgroup_id = h->cgroup_id;
  c->comm.assign(h->comm, strnlen(h->comm, BOING_COMM_LEN));
  Conn* raw = c.get();
  conns_.emplace(key, std::move(c));
  ++stats_.connections_opened;
  return raw;
}

bool Tracker::OnRecord(std::span<const uint8_t> record) {
  ++stats_.records;
  boing_event_header h{};
  if (record.size() < sizeof(h)) {
    ++stats_.bad_records;
    return false;
  }
  std::memcpy(&h, record.data(), sizeof(h));
  if (h.abi_version != BOING_ABI_VERSION) {
    ++stats_.bad_records;
    return false;
  }
  ConnKey key{h.conn.tgid, h.conn.fd, h.conn.generation};

  switch (h.type) {
    case BOING_EV_CONN_OPEN: {
      boing_conn_event e{};
      if (record.size() < sizeof(e)) break;
      std::memcpy(&e, record.data(), sizeof(e));
      Conn* c = Find(key, true, &h);
      c->family = e.family;
      c->role = e.role;
      c->local_port = e.local_port;
      c->remote_port = e.remote_port;
      std::memcpy(c->local_addr, e.local_addr, 16);
      std::memcpy(c->remote_addr, e.remote_addr, 16);
      c->have_addresses = e.family == kAfInet || e.family == kAfInet6;
      c->last_ns = h.ts_ns;
      return true;
    }
    case BOING_EV_DATA: {
      boing_data_event e{};
      if (record.size() < sizeof(e)) break;
      std::memcpy(&e, record.data(), sizeof(e));
      if (e.captured > e.len || sizeof(e) + e.captured > record.size()) break;
      Conn* c = Find(key, true, &h);
      c->last_ns = h.ts_ns;
      if (e.flags & BOING_DATA_TLS) c->tls = true;
      if (!c->http) c->http = std::make_unique<HttpConnection>(c->role, options_.limits);
      std::string_view bytes(reinterpret_cast<const char*>(record.data() + sizeof(e)), e.captured);
      std::vector<Transaction> txs;
      c->http->OnData(e.direction == BOING_DIR_INGRESS, bytes, e.len - e.captured, h.ts_ns, txs,
                      (e.flags & BOING_DATA_AFTER_LOSS) != 0,
                      (e.flags & BOING_DATA_PEER_LOST) != 0);
      Emit(*c, txs);
      return true;
    }
    case BOING_EV_CONN_CLOSE: {
      auto it = conns_.find(key);
      if (it != conns_.end()) {
        Retire(*it->second);
        conns_.erase(it);
        ++stats_.connections_closed;
      }
      places_.erase(h.conn.tgid);
      return true;
    }
    case BOING_EV_PROC_EXEC:
    case BOING_EV_PROC_MMAP:
      if (h.type == BOING_EV_PROC_EXEC) places_.erase(h.conn.tgid);
      if (process_sink_) process_sink_(h.type, h.conn.tgid);
      return true;
    default:
      break;
  }
  ++stats_.bad_records;
  return false;
}

void ApplyHeaderPolicy(Event& e, const HeaderList& request_headers, const TrackerOptions& options) {
  // The identity comes from the full request headers, before the allowlist trims them (what
  // ScrubSecrets on a copy of them would set, without the copy).
  if (e.identity.empty())
    e.identity =
        IdentityFromHeaders(request_headers, options.identity_key, options.extra_secret_headers);
  e.headers.clear();
  auto allowed = [&options](std::string_view name) {
    for (const std::string& a : options.header_allowlist) {
      if (a.size() != name.size()) continue;
      size_t i = 0;
      while (i < a.size() &&
             static_cast<char>(std::tolower(static_cast<unsigned char>(name[i]))) == a[i])
        ++i;
      if (i == a.size()) return true;
    }
    return false;
  };
  for (const auto& [name, value] : request_headers) {
    if (allowed(name)) e.headers.emplace_back(name, value);
  }
  ScrubSecrets(e, options.identity_key, options.extra_secret_headers);
}

void Tracker::Retire(Conn& c) {
  if (!c.http) return;
  std::vector<Transaction> txs;
  c.http->OnClose(txs);
  Emit(c, txs);
}

void Tracker::Emit(Conn& c, std::vector<Transaction>& txs) {
  const ConnectionStats& s = c.http->stats();
  stats_.parse_errors += s.parse_errors - c.reported.parse_errors;
  stats_.orphan_responses += s.orphan_responses - c.reported.orphan_responses;
  stats_.unanswered_requests += s.unanswered_requests - c.reported.unanswered_requests;
  stats_.lost_requests += s.lost_requests - c.reported.lost_requests;
  c.reported = s;
  if (txs.empty()) return;

  bool server = c.http->is_server();
  std::string local = c.have_addresses ? AddressToString(c.family, c.local_addr) : "";
  std::string remote = c.have_addresses ? AddressToString(c.family, c.remote_addr) : "";
  for (Transaction& t : txs) {
    Event e;
    e.timestamp =
        static_cast<double>(static_cast<int64_t>(t.request_ns) + realtime_offset_ns_) / 1e9;
    e.method = t.request.method;
    e.endpoint = t.request.target;
    std::string peer = server ? remote : local;
    e.client_ip =
        RealClientIp(peer.empty() ? "0.0.0.0" : peer, t.request.headers, options_.trusted_proxies);
    e.status_code = t.response.status;
    double latency = t.response_ns > t.request_ns ? (t.response_ns - t.request_ns) / 1e6 : 0.0;
    e.latency_ms = latency;
    e.body_size = static_cast<int64_t>(t.request_body_bytes);
    e.response_size = static_cast<int64_t>(t.response_body_bytes);
    size_t q = e.endpoint.find('?');
    if (q != std::string::npos) e.query = e.endpoint.substr(q + 1);
    e.payload = std::move(t.request_body_excerpt);
    e.user_agent = std::string(FindHeader(t.request.headers, "user-agent"));
    e.host = std::string(FindHeader(t.request.headers, "host"));
    ApplyHeaderPolicy(e, t.request.headers, options_);
    e.server_ip = server ? local : remote;
    if (c.have_addresses) e.server_port = server ? c.local_port : c.remote_port;
    e.tls = c.tls;
    e.protocol = t.request.version;
    e.agent_id = options_.agent_id;
    e.seq = ++seq_;
    e.host_name = options_.host_name;
    e.pid = c.key.tgid;
    e.comm = c.comm;
    e.cgroup_id = c.cgroup_id;
    const Place& place = PlaceOf(c.key.tgid);
    e.container_id = place.container_id;
    e.pod = place.pod;
    e.k8s_namespace = place.k8s_namespace;
    ++stats_.events;
    sink_(std::move(e));
  }
}

const Tracker::Place& Tracker::PlaceOf(uint32_t tgid) {
  auto it = places_.find(tgid);
  if (it != places_.end()) return it->second;
  if (places_.size() > 4096) places_.clear();
  std::ifstream f(options_.proc_root + "/" + std::to_string(tgid) + "/cgroup");
  std::string contents((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CgroupContainer c = ParseProcCgroup(contents);
  Place p;
  p.container_id = c.container_id;
  if (!c.pod_uid.empty() || !c.container_id.empty()) {
    PodInfo pod = pods_.Resolve(c);
    p.pod = pod.name.empty() ? pod.uid : pod.name;
    p.k8s_namespace = pod.k8s_namespace;
  }
  return places_[tgid] = std::move(p);
}

void Tracker::Sweep(uint64_t now_mono_ns, uint64_t idle_ns) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (now_mono_ns > it->second->last_ns + idle_ns) {
      Retire(*it->second);
      it = conns_.erase(it);
      ++stats_.connections_evicted;
    } else {
      ++it;
    }
  }
}

TrackerStats Tracker::stats() const { return stats_; }

}  // namespace boing::agent
