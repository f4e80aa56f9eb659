// The scale-out bus (BUS_URL=nats://...): committed events go to a NATS JetStream stream on
// subjects partitioned by monitored API, and each server instance runs detection only for the
// partitions it holds under a lease in the database, so each API's detection state lives on one
// instance. docs/scaleout.md describes the design; the in-process path (no BUS_URL) never builds
// one of these.
//
// Invariants: ingest has already committed every event it hands to Publish (the 2xx promise is
// the database's, as without a bus); Publish never blocks the ingest writer — events wait in a
// bounded queue and are retried until JetStream acknowledges them (message id = event id, so a
// retry is never stored twice); what overflows the queue is counted in
// boing_bus_publish_dropped_total and logged with its ids. A partition is consumed only while
// its lease is valid; messages are acknowledged (explicitly, each) after detection processed them,
// so a dead instance's unacknowledged messages are redelivered to the next holder.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "boing/store.h"
#include "detection.h"

// nats.c's handle types (as <nats/nats.h> declares them), for the live relay's callback.
typedef struct __natsConnection natsConnection;
typedef struct __natsSubscription natsSubscription;
typedef struct __natsMsg natsMsg;

namespace boing {

struct BusOptions {
  std::string urls;  // comma-separated nats:// URLs
  std::string stream = "BOING_EVENTS";
  int partitions = 16;
  int lease_seconds = 10;
  std::string instance_id;
  size_t publish_queue_max = 100000;
  int fetch_batch = 256;
  int publish_timeout_ms = 2000;  // longest an ingest answer waits for JetStream's ack
  EventLimits limits;
};

// The partition of an API: FNV-1a of its decimal id, modulo `partitions`.
int BusPartition(int64_t api_id, int partitions);

class EventBus {
 public:
  EventBus(Store& store, DetectionWorker& detection, BusOptions options);
  ~EventBus();
  // Connects, creates or updates the stream, seeds the lease rows and starts the threads.
  bool Start(std::string* error);
  using Answer = std::function<void()>;
  // From the ingest writer after a commit: queues the inserted events for publishing; `answers`
  // (the ingest requests of the commit) run once JetStream acknowledged them, or after
  // publish_timeout_ms (counted in publish_late; the events stay queued and are retried).
  void Publish(const std::vector<Event>& events, const std::vector<InsertOutcome>& outcomes,
               std::vector<Answer>&& answers);
  // Stops consuming and hands the partitions back (leases released once detection processed
  // what was fetched, bounded by the lease TTL). Detection must still run.
  void StopConsuming();
  // Then (after detection stopped): publishes what is queued (bounded wait) and disconnects.
  void Stop();

  const std::string& instance_id() const { return opt_.instance_id; }

  // Live streams across instances (core NATS, not JetStream: at most once, nothing stored).
  // Detection runs on the instance holding an API's partition, so /ws/stream and /ws/alerts
  // clients of the other instances get its messages relayed — only while some other instance
  // announced subscribers of that topic (AnnounceInterest, each second), so nothing is relayed
  // when nobody watches. `topic` is a live Topic as int; `kind` as LiveHub::Publish.
  using LiveSink = std::function<void(int topic, int64_t api_id, char kind, std::string msg)>;
  // Subscribes to the other instances' live messages, handed to `sink` (on a NATS thread).
  bool StartLive(LiveSink sink, std::string* error);
  void AnnounceInterest(const std::vector<int>& topics);
  bool RemoteInterest(int topic) const;
  void RelayLive(int topic, int64_t api_id, char kind, const std::string& msg);
  std::atomic<uint64_t> live_relayed{0}, live_received{0};
  // The boing_bus_* series for /metrics (Prometheus text format).
  std::string MetricsText();
  std::vector<int> Held();
  size_t PublishQueueDepth() {
    std::lock_guard lock(pub_mu_);
    return pub_queue_.size();
  }

  std::atomic<uint64_t> published{0}, publish_failures{0}, publish_dropped{0}, publish_late{0};
  std::atomic<uint64_t> consumed{0}, acquired{0}, released{0}, lost{0}, decode_failures{0};
  std::atomic<uint64_t> outbox_spilled{0}, outbox_replayed{0};

 private:
  struct Consumer;
  void PublishLoop();
  // Publishes and waits for JetStream's acknowledgement of every event (bounded); false if any
  // was not acknowledged.
  bool SendBatch(const std::vector<Event>& batch);
  // Records committed events that are not on the bus in the outbox (false: not recorded, they
  // are counted as dropped and logged).
  bool Spill(const std::vector<int64_t>& ids, const char* why);
  // Publishes the oldest outbox run (one batch of it) and advances it; false when there was
  // nothing to publish or it failed.
  bool ReplayOutbox();
  void LeaseLoop();
  void ConsumeLoop(const std::shared_ptr<Consumer>& c);
  // Recreates the partition's consumer and consumes until `valid_until_ms` (moved on by renewals).
  bool StartConsumer(int part, int64_t valid_until_ms, std::string* error);
  // Stops these partitions' consumers together, waits for what they fetched to be acknowledged
  // and, when `release`, hands the leases back.
  void StopConsumers(const std::vector<int>& parts, bool release);

  Store& store_;
  DetectionWorker& detection_;
  BusOptions opt_;
  struct Nats;
  std::unique_ptr<Nats> nats_;
  static constexpr int kLiveTopics = 3;
  std::atomic<int64_t> remote_interest_ms_[kLiveTopics] = {};  // last announcement, wall ms
  LiveSink live_sink_;
  static void OnLive(natsConnection*, natsSubscription*, natsMsg* m, void* closure);
  int64_t started_ms_ = 0;

  std::mutex pub_mu_;
  std::condition_variable pub_cv_;
  std::deque<Event> pub_queue_;
  uint64_t enqueued_ = 0, passed_ = 0;  // events ever queued / ever out (acknowledged, dropped)
  struct Pending {
    uint64_t end;  // answer once passed_ reaches this
    int64_t deadline_ms;
    Answer answer;
  };
  std::deque<Pending> answers_;
  bool pub_stop_ = false;
  std::atomic<bool> outbox_pending_{false};  // spilled by this instance since the last replay
  std::thread pub_thread_;

  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  bool lease_stop_ = false;
  std::thread lease_thread_;
  std::mutex held_mu_;
  std::map<int, std::shared_ptr<Consumer>> held_;  // partition -> its consumer
};

}  // namespace boing
