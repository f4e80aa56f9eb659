#include "live.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "app.h"

namespace boing {

namespace asio = boost::asio;

namespace {
constexpr size_t kMaxLatencySamples = 20000;  // per API and second
constexpr size_t kMaxTopKeys = 10000;         // distinct IPs / endpoints per API and second
constexpr size_t kTopN = 10;
}  // namespace

bool LiveHub::Client::Sees(int64_t api_id) const {
  if (!apis) return true;
  return std::find(apis->begin(), apis->end(), api_id) != apis->end();
}

void LiveHub::Push(const std::shared_ptr<Client>& c,
                   const std::shared_ptr<const std::string>& msg) {
  bool wake = false, drop = false;
  {
    std::lock_guard lock(c->mu);
    if (c->overflow || c->closed || !c->ex) return;
    if (c->queue.size() >= queue_max_) {
      c->overflow = true;
      c->queue.clear();
      drop = true;
    } else {
      c->queue.push_back(msg);
    }
    if (!c->wake_pending) wake = c->wake_pending = true;
    if (drop) wake = true;
    if (wake) {
      // The connection's own executor closes or wakes it: nothing here waits for its I/O.
      asio::post(c->ex, [c, drop] {
        if (drop && c->conn) c->conn->Abort();
        if (c->timer) c->timer->cancel();
      });
    }
  }
  if (drop) ++dropped;
}

void LiveHub::Publish(Topic topic, int64_t api_id, std::shared_ptr<const std::string> msg,
                      char kind) {
  std::shared_lock lock(mu_);
  for (const auto& c : clients_) {
    if (c->topic != topic || !c->Sees(api_id)) continue;
    if (kind == 'e' && !c->events) continue;
    if (kind == 'f' && !c->findings) continue;
    Push(c, msg);
  }
}

void LiveHub::Send(const std::shared_ptr<Client>& c, std::shared_ptr<const std::string> msg) {
  Push(c, msg);
}

std::vector<std::shared_ptr<LiveHub::Client>> LiveHub::Clients(Topic t) {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<Client>> out;
  for (const auto& c : clients_) {
    if (c->topic == t) out.push_back(c);
  }
  return out;
}

asio::awaitable<void> LiveHub::Serve(std::shared_ptr<Client> c, http::WsConnection& ws) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  c->timer = timer;
  c->conn = &ws;
  // Without a cap the kernel absorbs megabytes (thousands of messages, each built and written)
  // before the writes to a peer that never reads block and its queue can overflow: that
  // streaming costs CPU the ingest path shares. 64 KiB still covers bursts for a reading client.
  ws.LimitSendBuffer(64 * 1024);
  {
    std::lock_guard lock(c->mu);
    c->ex = ex;
  }
  {
    std::unique_lock lock(mu_);
    clients_.push_back(c);
  }
  ++counts_[static_cast<int>(c->topic)];
  ++connected;

  // The reader notices the peer closing (and answers pings through Beast); clients send nothing
  // we act on.
  auto reader_done = std::make_shared<bool>(false);
  asio::co_spawn(
      ex,
      [&ws, c, timer, reader_done]() -> asio::awaitable<void> {
        while (co_await ws.Read()) {
        }
        {
          std::lock_guard lock(c->mu);
          c->closed = true;
        }
        *reader_done = true;
        timer->cancel();
      },
      asio::detached);

  std::deque<std::shared_ptr<const std::string>> batch;
  bool overflow = false;
  for (;;) {
    {
      std::lock_guard lock(c->mu);
      batch.swap(c->queue);
      c->wake_pending = false;
      overflow = c->overflow;
      if (c->closed) break;
    }
    if (overflow) break;
    if (batch.empty()) {
      boost::system::error_code ec;
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    bool ok = true;
    for (auto& m : batch) {
      if (!(ok = co_await ws.Write(*m))) break;
      ++sent;
    }
    batch.clear();
    if (!ok) break;
  }

  {
    std::unique_lock lock(mu_);
    std::erase(clients_, c);
  }
  --counts_[static_cast<int>(c->topic)];
  {
    std::lock_guard lock(c->mu);
    c->closed = true;
    c->queue.clear();
  }
  if (overflow) {
    ws.Abort();  // the peer is not reading: a close frame could not be written
  } else if (!*reader_done) {
    co_await ws.Close(1000, "");
  }
  // The reader references `ws`: wait for it (an aborted or closed socket ends its read quickly).
  for (int i = 0; !*reader_done; ++i) {
    if (i == 20) ws.Abort();
    timer->expires_after(std::chrono::milliseconds(100));
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  c->conn = nullptr;
  c->timer.reset();
}

// --- LiveMetrics -----------------------------------------------------------------------------

void LiveMetrics::Add(const std::vector<Event>& events) {
  std::lock_guard lock(mu_);
  for (const auto& e : events) {
    Second& s = current_[e.api_id];
    ++s.requests;
    if (e.status_code >= 400) ++s.errors;  // as /api/metrics counts them
    if (s.latencies.size() < kMaxLatencySamples) s.latencies.push_back(e.latency_ms);
    if (s.ips.size() < kMaxTopKeys || s.ips.count(e.client_ip)) ++s.ips[e.client_ip];
    if (s.endpoints.size() < kMaxTopKeys || s.endpoints.count(e.endpoint)) {
      ++s.endpoints[e.endpoint];
    }
  }
}

std::map<int64_t, LiveMetrics::Second> LiveMetrics::Take() {
  std::lock_guard lock(mu_);
  std::map<int64_t, Second> out;
  out.swap(current_);
  return out;
}

std::string LiveMetrics::Message(const std::map<int64_t, Second>& per_api,
                                 const std::optional<std::vector<int64_t>>& apis, int64_t ts,
                                 const std::string& alerts_by_severity_json) {
  int64_t requests = 0, errors = 0;
  std::vector<double> lat;
  std::unordered_map<std::string, int64_t> ips, endpoints;
  for (const auto& [api_id, s] : per_api) {
    if (apis && std::find(apis->begin(), apis->end(), api_id) == apis->end()) continue;
    requests += s.requests;
    errors += s.errors;
    lat.insert(lat.end(), s.latencies.begin(), s.latencies.end());
    for (const auto& [k, v] : s.ips) ips[k] += v;
    for (const auto& [k, v] : s.endpoints) endpoints[k] += v;
  }
  Json j = {{"type", "metrics"},
            {"ts", ts},
            {"requests", requests},
            {"errors", errors},
            {"error_rate", requests ? static_cast<double>(errors) / requests : 0.0}};
  j["latency_ms"] = {{"p50", Percentile(lat, 0.50)},
                     {"p95", Percentile(lat, 0.95)},
                     {"p99", Percentile(lat, 0.99)}};
  j["top_ips"] = TopN(ips, kTopN, "ip");
  j["top_endpoints"] = TopN(endpoints, kTopN, "endpoint");
  Json sev = Json::parse(alerts_by_severity_json, nullptr, false);
  j["alerts_open_by_severity"] = sev.is_discarded() ? Json::object() : sev;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace boing
