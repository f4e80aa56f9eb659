// Live WebSocket streams (/ws/alerts, /ws/stream, /ws/metrics): a hub that fans messages out to
// subscribers, and the per-second traffic aggregates of /ws/metrics.
//
// Invariants: Publish never blocks on a client and never waits for I/O — each client has a bounded
// queue (WS_SEND_QUEUE_MAX messages); a client whose queue is full is dropped (its socket is
// closed on its own executor) and counted, so a client that stops reading can never slow the
// ingest or detection threads that publish. Messages are serialised once per publish and shared.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "boing/event.h"
#include "boing/http.h"

namespace boing {

enum class Topic { kAlerts = 0, kStream = 1, kMetrics = 2 };

class LiveHub {
 public:
  struct Client {
    Topic topic = Topic::kAlerts;
    std::optional<std::vector<int64_t>> apis;  // nullopt = every API (admin without api_id)
    bool events = true, findings = true;       // /ws/stream kinds
    bool Sees(int64_t api_id) const;

   private:
    friend class LiveHub;
    std::mutex mu;
    std::deque<std::shared_ptr<const std::string>> queue;
    bool overflow = false;
    bool wake_pending = false;
    bool closed = false;
    // Set and cleared on the connection's executor only.
    boost::asio::any_io_executor ex;
    std::shared_ptr<boost::asio::steady_timer> timer;
    http::WsConnection* conn = nullptr;
  };

  explicit LiveHub(size_t queue_max) : queue_max_(queue_max ? queue_max : 1) {}
  // Whether anyone listens (callers skip building messages otherwise).
  bool HasSubscribers(Topic t) const { return Subscribers(t) > 0; }
  int Subscribers(Topic t) const { return counts_[static_cast<int>(t)].load(); }
  // Queues `msg` for every client of `topic` that sees `api_id` (and, for the stream, wants `kind`:
  // 'e' events, 'f' findings).
  void Publish(Topic topic, int64_t api_id, std::shared_ptr<const std::string> msg, char kind = 0);
  // Queues `msg` for one client.
  void Send(const std::shared_ptr<Client>& c, std::shared_ptr<const std::string> msg);
  std::vector<std::shared_ptr<Client>> Clients(Topic t);
  // Serves a subscriber until it closes, fails or falls behind. Runs on the connection's executor.
  boost::asio::awaitable<void> Serve(std::shared_ptr<Client> c, http::WsConnection& ws);

  std::atomic<uint64_t> dropped{0}, sent{0}, connected{0};

 private:
  void Push(const std::shared_ptr<Client>& c, const std::shared_ptr<const std::string>& msg);
  size_t queue_max_;
  std::shared_mutex mu_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::atomic<int> counts_[3] = {};
};

// Per-second aggregates of committed events for /ws/metrics, per API.
class LiveMetrics {
 public:
  struct Second {
    int64_t requests = 0, errors = 0;
    std::vector<double> latencies;                            // bounded sample
    std::unordered_map<std::string, int64_t> ips, endpoints;  // bounded
  };
  void Add(const std::vector<Event>& events);
  // Takes the aggregates gathered since the last call.
  std::map<int64_t, Second> Take();
  // The JSON message for the APIs `apis` sees (nullopt = all).
  static std::string Message(const std::map<int64_t, Second>& per_api,
                             const std::optional<std::vector<int64_t>>& apis, int64_t ts,
                             const std::string& alerts_by_severity_json);

 private:
  std::mutex mu_;
  std::map<int64_t, Second> current_;
};

}  // namespace boing
