#include "boing/agent/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace boing::agent {

void AgentMetrics::SetKernelCounters(std::vector<std::pair<std::string, uint64_t>> counters) {
  std::lock_guard<std::mutex> lock(mu_);
  kernel_ = std::move(counters);
}

void AgentMetrics::SetTrackerCounters(std::vector<std::pair<std::string, uint64_t>> counters) {
  std::lock_guard<std::mutex> lock(mu_);
  tracker_ = std::move(counters);
}

void AgentMetrics::SetSpool(uint64_t bytes, uint64_t pending, uint64_t dropped, uint64_t disk_full,
                            uint64_t cap_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  spool_bytes_ = bytes;
  spool_pending_ = pending;
  spool_dropped_ = dropped;
  spool_disk_full_ = disk_full;
  spool_cap_bytes_ = cap_bytes;
}

std::string AgentMetrics::RenderPrometheus() const {
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  metric("boing_agent_events_captured_total", "counter", "Events built from captured traffic.",
         captured.load());
  metric("boing_agent_events_spooled_total", "counter", "Events written to the on-disk spool.",
         spooled.load());
  metric("boing_agent_events_sent_total", "counter", "Events the server accepted.", sent.load());
  metric("boing_agent_events_duplicate_total", "counter", "Resent events the server already had.",
         duplicates.load());
  metric("boing_agent_uplink_batches_total", "counter", "Batches the server acknowledged.",
         batches.load());
  metric("boing_agent_uplink_errors_total", "counter",
         "Batch sends that failed and will be retried.", uplink_errors.load());
  metric("boing_agent_heartbeats_total", "counter", "Heartbeats the server accepted.",
         heartbeats.load());
  metric("boing_agent_heartbeat_errors_total", "counter", "Heartbeats that failed.",
         heartbeat_errors.load());
  std::lock_guard<std::mutex> lock(mu_);
  out +=
      "# HELP boing_agent_events_dropped_total Events lost in the agent, by cause.\n"
      "# TYPE boing_agent_events_dropped_total counter\n";
  out += "boing_agent_events_dropped_total{cause=\"spool_full\"} " +
         std::to_string(spool_dropped_) + "\n";
  out += "boing_agent_events_dropped_total{cause=\"spool_error\"} " +
         std::to_string(spool_errors.load()) + "\n";
  out += "boing_agent_events_dropped_total{cause=\"rejected_by_server\"} " +
         std::to_string(rejected.load()) + "\n";
  out += "boing_agent_events_dropped_total{cause=\"replay_bad_line\"} " +
         std::to_string(replay_bad_lines.load()) + "\n";
  metric("boing_agent_spool_bytes", "gauge", "Bytes of the spool's segment files.", spool_bytes_);
  metric("boing_agent_spool_pending_events", "gauge", "Events waiting for the server's ack.",
         spool_pending_);
  metric("boing_agent_spool_disk_full_total", "counter",
         "Spool appends the filesystem refused for lack of space (oldest segments dropped).",
         spool_disk_full_);
  metric("boing_agent_spool_limit_bytes", "gauge",
         "The spool's size bound now: spool.max_bytes, or what fit after the disk was full.",
         spool_cap_bytes_);
  if (!kernel_.empty()) {
    out +=
        "# HELP boing_agent_kernel_drops_total Records the kernel side could not deliver, by "
        "cause.\n# TYPE boing_agent_kernel_drops_total counter\n";
    for (const auto& [name, v] : kernel_) {
      if (name.rfind("drop_", 0) == 0)
        out += "boing_agent_kernel_drops_total{cause=\"" + name.substr(5) + "\"} " +
               std::to_string(v) + "\n";
    }
    out +=
        "# HELP boing_agent_kernel_counter_total The sensor's other per-CPU counters, summed.\n"
        "# TYPE boing_agent_kernel_counter_total counter\n";
    for (const auto& [name, v] : kernel_) {
      if (name.rfind("drop_", 0) != 0)
        out +=
            "boing_agent_kernel_counter_total{name=\"" + name + "\"} " + std::to_string(v) + "\n";
    }
  }
  if (!tracker_.empty()) {
    out +=
        "# HELP boing_agent_tracker_total Connection tracker and HTTP parser counters.\n"
        "# TYPE boing_agent_tracker_total counter\n";
    for (const auto& [name, v] : tracker_)
      out += "boing_agent_tracker_total{name=\"" + name + "\"} " + std::to_string(v) + "\n";
  }
  return out;
}

namespace {

// "127.0.0.1:PORT" or "[::1]:PORT" → socket address; false with *error for anything else.
bool ParseLoopbackListen(const std::string& listen, sockaddr_storage& ss, socklen_t& len,
                         int& family, std::string* error) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    *error = "metrics listen address must be HOST:PORT, got " + listen;
    return false;
  }
  std::string host = listen.substr(0, colon), port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port > 65535) {
    *error = "metrics listen address: bad port in " + listen;
    return false;
  }
  ss = {};
  len = 0;
  family = AF_INET;
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    if ((ntohl(a4.s_addr) >> 24) != 127) {
      *error = "metrics listen address must be loopback (127.0.0.0/8 or ::1), got " + host;
      return false;
    }
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_addr = a4;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*sin);
  } else if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&a6)) {
      *error = "metrics listen address must be loopback (127.0.0.0/8 or ::1), got " + host;
      return false;
    }
    family = AF_INET6;
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = a6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*sin6);
  } else {
    *error = "metrics listen address must be a loopback IP, got " + host;
    return false;
  }
  return true;
}

}  // namespace

bool ValidMetricsListen(const std::string& listen, std::string* error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = 0;
  return ParseLoopbackListen(listen, ss, len, family, error);
}

std::unique_ptr<MetricsServer> MetricsServer::Start(const std::string& listen,
                                                    const AgentMetrics* metrics,
                                                    std::string* error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (!ParseLoopbackListen(listen, ss, len, family, error)) return nullptr;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    *error = "metrics: cannot listen on " + listen + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return nullptr;
  }
  socklen_t sl = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->metrics_ = metrics;
  s->fd_ = fd;
  s->port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  s->thread_ = std::thread([p = s.get()] { p->Run(); });
  return s;
}

MetricsServer::~MetricsServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

void MetricsServer::Run() {
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string req;
    char buf[2048];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
      ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    std::string status = "200 OK", type = "text/plain; version=0.0.4", body;
    if (req.rfind("GET /metrics ", 0) == 0 || req.rfind("GET /metrics?", 0) == 0) {
      body = metrics_->RenderPrometheus();
    } else {
      status = "404 Not Found";
      type = "text/plain";
      body = "not found: GET /metrics\n";
    }
    std::string resp = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                       "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
    size_t off = 0;
    while (off < resp.size()) {
      ssize_t n = send(c, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(c);
  }
}

}  // namespace boing::agent
