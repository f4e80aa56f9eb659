#include "bus.h"

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "boing/crypto.h"
#include "boing/log.h"

namespace boing {

namespace {

constexpr const char* kSubjectPrefix = "boing.events.";
constexpr int64_t kNsPerMs = 1000000;
constexpr size_t kPublishBatch = 1024;
constexpr int kInflightBatches = 2;  // fetched batches of one partition in detection at once
// A holder stops fetching this long before its lease expires (covers clock differences between
// instances and the last fetch in flight), so two instances never consume one partition at once.
constexpr int64_t kLeaseSafetyMs = 1000;
// Of BUS_LEASE_SECONDS, kept for the survivors to notice an expired lease and take it: a lease
// is written to expire this much before the TTL after its renewal.
constexpr int64_t kTakeOverMs = 200;
constexpr int64_t kFetchWaitMs = 500;    // longest a fetch waits for messages
constexpr int64_t kOutboxLookMs = 2000;  // how often an idle publisher looks at the outbox

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Subject(int part) { return kSubjectPrefix + std::to_string(part); }
std::string Durable(int part) { return "boing-p" + std::to_string(part); }

std::string NatsError(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string m = natsStatus_GetText(s);
  if (const char* last = nats_GetLastError(nullptr); last && *last) m += std::string(": ") + last;
  if (jerr) m += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return m;
}

bool ParseInt(const char* text, int64_t* out) {
  if (!text || !*text) return false;
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (*end) return false;
  *out = v;
  return true;
}

// Runs of consecutive ids (the outbox stores these rather than one row per event).
std::vector<BusOutboxRun> Runs(const std::vector<int64_t>& ids, int64_t now_ms) {
  std::vector<BusOutboxRun> runs;
  for (int64_t id : ids) {
    if (!runs.empty() && runs.back().last_id + 1 == id) {
      runs.back().last_id = id;
    } else {
      runs.push_back({id, id, now_ms});
    }
  }
  return runs;
}

}  // namespace

int BusPartition(int64_t api_id, int partitions) {
  uint32_t h = 2166136261u;
  for (char c : std::to_string(api_id)) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return static_cast<int>(h % static_cast<uint32_t>(std::max(1, partitions)));
}

struct EventBus::Nats {
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* live = nullptr;
  std::atomic<uint64_t> async_errors{0};
  ~Nats() {
    if (live) {
      natsSubscription_Unsubscribe(live);
      natsSubscription_Destroy(live);
    }
    if (js) jsCtx_Destroy(js);
    if (nc) {
      natsConnection_Close(nc);
      natsConnection_Destroy(nc);
    }
    if (opts) natsOptions_Destroy(opts);
  }
};

struct EventBus::Consumer {
  int part = 0;
  natsSubscription* sub = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<int> inflight{0};
  std::atomic<int64_t> valid_until_ms{0};  // fetch only before this (lease renewed in time)
  std::thread thread;
  ~Consumer() {
    if (sub) natsSubscription_Destroy(sub);  // bound to a durable: the consumer stays on the server
  }
};

EventBus::EventBus(Store& store, DetectionWorker& detection, BusOptions options)
    : store_(store), detection_(detection), opt_(std::move(options)) {
  if (opt_.instance_id.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    opt_.instance_id = std::string(host) + ":" + std::to_string(::getpid()) + ":" +
                       crypto::Hex(crypto::RandomBytes(4));
  }
}

EventBus::~EventBus() {
  StopConsuming();
  Stop();
}

static void OnAsyncPublishError(jsCtx*, jsPubAckErr* pae, void* closure) {
  auto* errors = static_cast<std::atomic<uint64_t>*>(closure);
  ++*errors;
  log::Warn("bus publish not acknowledged",
            {{"error", pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err)}});
}

bool EventBus::Start(std::string* error) {
  nats_ = std::make_unique<Nats>();
  natsStatus s = natsOptions_Create(&nats_->opts);
  if (s == NATS_OK) s = natsOptions_SetURL(nats_->opts, opt_.urls.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(nats_->opts, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_->opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(nats_->opts, 500);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(nats_->opts, false, nullptr, nullptr);
  if (s == NATS_OK) s = natsConnection_Connect(&nats_->nc, nats_->opts);
  if (s != NATS_OK) {
    *error = "BUS_URL: cannot connect to " + opt_.urls + ": " + NatsError(s);
    return false;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  jo.PublishAsync.MaxPending = static_cast<int64_t>(kPublishBatch) * 2;
  jo.PublishAsync.ErrHandler = OnAsyncPublishError;
  jo.PublishAsync.ErrHandlerClosure = &nats_->async_errors;
  s = natsConnection_JetStream(&nats_->js, nats_->nc, &jo);
  if (s != NATS_OK) {
    *error = "BUS_URL: no JetStream context: " + NatsError(s);
    return false;
  }
  // The stream: file storage, work-queue retention (a message goes once its partition's consumer
  // acknowledged it), two minutes of duplicate detection by message id (= event id).
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&si, nats_->js, opt_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) {
    const std::string wildcard = std::string(kSubjectPrefix) + "*";
    const char* subjects[] = {wildcard.c_str()};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = opt_.stream.c_str();
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_WorkQueuePolicy;
    sc.Duplicates = int64_t{120} * 1000 * kNsPerMs;
    s = js_AddStream(&si, nats_->js, &sc, nullptr, &jerr);
    if (s != NATS_OK) {  // another instance may have created it meanwhile
      s = js_GetStreamInfo(&si, nats_->js, opt_.stream.c_str(), nullptr, &jerr);
    }
  }
  if (s != NATS_OK) {
    *error = "BUS_URL: cannot create or read the JetStream stream " + opt_.stream + " (is " +
             "JetStream enabled on the server?): " + NatsError(s, jerr);
    return false;
  }
  jsStreamInfo_Destroy(si);
  if (Status st = store_.SeedBusPartitions(opt_.partitions); !st.ok) {
    *error = "cannot create the bus partition leases: " + st.message;
    return false;
  }
  started_ms_ = WallMillis();
  pub_thread_ = std::thread([this] { PublishLoop(); });
  lease_thread_ = std::thread([this] { LeaseLoop(); });
  log::Info("bus connected", {{"url", opt_.urls},
                              {"stream", opt_.stream},
                              {"partitions", opt_.partitions},
                              {"lease_seconds", opt_.lease_seconds},
                              {"instance", opt_.instance_id}});
  return true;
}

void EventBus::Publish(const std::vector<Event>& events, const std::vector<InsertOutcome>& outcomes,
                       std::vector<Answer>&& answers) {
  size_t n = 0;
  std::vector<int64_t> overflow;
  const int64_t deadline = WallMillis() + opt_.publish_timeout_ms;
  {
    std::lock_guard lock(pub_mu_);
    for (size_t i = 0; i < events.size(); ++i) {
      if (i < outcomes.size() && outcomes[i] != InsertOutcome::kInserted) continue;
      if (pub_stop_ || pub_queue_.size() >= opt_.publish_queue_max) {
        overflow.push_back(events[i].id);
        continue;
      }
      pub_queue_.push_back(events[i]);
      ++n;
    }
    enqueued_ += n;
    for (auto& a : answers) answers_.push_back({enqueued_, deadline, std::move(a)});
  }
  // What does not fit in the queue (BUS_PUBLISH_QUEUE_MAX) goes to the outbox in the database, to
  // be published once JetStream takes messages again.
  if (!overflow.empty()) Spill(overflow, "publish queue full (BUS_PUBLISH_QUEUE_MAX)");
  pub_cv_.notify_one();
}

bool EventBus::Spill(const std::vector<int64_t>& ids, const char* why) {
  Status st = store_.AddBusOutbox(Runs(ids, WallMillis()));
  if (st.ok) {
    outbox_spilled += ids.size();
    outbox_pending_ = true;
    log::Warn("bus: committed events recorded in the publish outbox (republished later)",
              {{"why", why},
               {"events", static_cast<int64_t>(ids.size())},
               {"first_event_id", ids.front()},
               {"last_event_id", ids.back()}});
    return true;
  }
  publish_dropped += ids.size();
  log::Error(
      "bus: committed events neither published nor recorded in the outbox (they skip "
      "detection)",
      {{"why", why},
       {"error", st.message},
       {"events", static_cast<int64_t>(ids.size())},
       {"first_event_id", ids.front()},
       {"last_event_id", ids.back()}});
  return false;
}

bool EventBus::SendBatch(const std::vector<Event>& batch) {
  const uint64_t errors_before = nats_->async_errors.load();
  bool ok = true;
  for (const auto& e : batch) {
    natsMsg* m = nullptr;
    const std::string body = EventToJson(e);
    const std::string subject = Subject(BusPartition(e.api_id, opt_.partitions));
    const std::string id = std::to_string(e.id), api = std::to_string(e.api_id);
    natsStatus s =
        natsMsg_Create(&m, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Event-Id", id.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Api-Id", api.c_str());
    if (s == NATS_OK) s = js_PublishMsgAsync(nats_->js, &m, nullptr);
    if (m) natsMsg_Destroy(m);  // still ours when the publish did not take it
    if (s != NATS_OK) {
      ok = false;
      log::Warn("bus publish failed", {{"error", NatsError(s)}});
      break;
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 1000;
  natsStatus s = js_PublishAsyncComplete(nats_->js, &po);
  if (s != NATS_OK) {
    ok = false;
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, nats_->js) == NATS_OK) {
      natsMsgList_Destroy(&pending);  // sent again by the caller
    }
  }
  return ok && nats_->async_errors.load() == errors_before;
}

bool EventBus::ReplayOutbox() {
  const auto runs = store_.ListBusOutbox(1);
  if (runs.empty()) return false;
  const auto& run = runs.front();
  auto events = store_.EventsByIdRange(run.first_id, run.last_id, static_cast<int>(kPublishBatch));
  // Fewer than asked: the rest of the run is gone (removed by retention) or this is its end.
  const int64_t to = events.size() < kPublishBatch ? run.last_id : events.back().id;
  if (!events.empty() && !SendBatch(events)) {
    ++publish_failures;
    return false;
  }
  if (Status st = store_.AdvanceBusOutbox(run.first_id, to); !st.ok) {
    log::Warn("bus outbox not advanced (its events are published again)", {{"error", st.message}});
    return false;
  }
  outbox_replayed += events.size();
  published += events.size();
  log::Info("bus: outbox events published", {{"first_event_id", run.first_id},
                                             {"last_event_id", to},
                                             {"events", static_cast<int64_t>(events.size())}});
  return true;
}

void EventBus::PublishLoop() {
  std::vector<Event> batch;
  std::vector<Answer> run;
  bool stop_deadline_set = false;
  std::chrono::steady_clock::time_point stop_deadline;
  bool retry_pause = false;
  int64_t next_outbox_look = 0;  // wall ms
  for (;;) {
    bool done = false, stopping = false;
    std::vector<int64_t> spill;
    const char* spill_why = nullptr;
    {
      std::unique_lock lock(pub_mu_);
      auto ready = [&] {
        return !answers_.empty() &&
               (answers_.front().end <= passed_ || answers_.front().deadline_ms <= WallMillis());
      };
      if (retry_pause) {
        pub_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return pub_stop_; });
        retry_pause = false;
      } else {
        pub_cv_.wait_for(lock, std::chrono::milliseconds(50),
                         [&] { return pub_stop_ || !pub_queue_.empty() || ready(); });
      }
      if (pub_stop_ && !stop_deadline_set) {
        stop_deadline_set = true;
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      }
      const int64_t now = WallMillis();
      // An answer is due but JetStream has not taken its events: they go to the outbox first (so
      // every 2xx is on the bus or in the outbox), and so does what is left at shutdown.
      if (!pub_queue_.empty() &&
          ((!answers_.empty() && answers_.front().end > passed_ &&
            answers_.front().deadline_ms <= now) ||
           (pub_stop_ && std::chrono::steady_clock::now() > stop_deadline))) {
        spill_why = pub_stop_ ? "stopping"
                              : "not acknowledged by JetStream in time "
                                "(BUS_PUBLISH_TIMEOUT_MS)";
        for (const auto& e : pub_queue_) spill.push_back(e.id);
      }
    }
    if (!spill.empty()) {
      const bool recorded = Spill(spill, spill_why);
      std::lock_guard lock(pub_mu_);
      if (recorded || pub_stop_) {  // stopping: dropped (counted by Spill) if not recorded
        // The spilled events are the queue's first ones: the queue only grows at its back.
        pub_queue_.erase(pub_queue_.begin(),
                         pub_queue_.begin() + static_cast<ptrdiff_t>(spill.size()));
        passed_ += spill.size();
      } else {
        retry_pause = true;  // the database refused too: the answers go late, retried later
      }
    }
    {
      std::lock_guard lock(pub_mu_);
      const int64_t now = WallMillis();
      while (!answers_.empty() &&
             (answers_.front().end <= passed_ || answers_.front().deadline_ms <= now)) {
        if (answers_.front().end > passed_) ++publish_late;
        run.push_back(std::move(answers_.front().answer));
        answers_.pop_front();
      }
      while (!pub_queue_.empty() && batch.size() < kPublishBatch) {
        batch.push_back(std::move(pub_queue_.front()));
        pub_queue_.pop_front();
      }
      stopping = pub_stop_;
      done = pub_stop_ && batch.empty() && pub_queue_.empty() && answers_.empty();
    }
    for (auto& a : run) a();
    run.clear();
    if (done) return;
    bool backlog = false;
    if (!batch.empty()) {
      const bool ok = SendBatch(batch);
      std::lock_guard lock(pub_mu_);
      if (ok) {
        published += batch.size();
        passed_ += batch.size();
      } else {
        // Not all acknowledged: the whole batch goes again, first (JetStream drops the ones it
        // already stored by message id), after a pause.
        ++publish_failures;
        for (auto it = batch.rbegin(); it != batch.rend(); ++it)
          pub_queue_.push_front(std::move(*it));
        retry_pause = true;
      }
      backlog = pub_queue_.size() >= kPublishBatch;
      batch.clear();
    }
    // Between batches, while new events are not backlogged: republish the outbox (this
    // instance's spills or any other's), one batch at a time so new events are not held up.
    const int64_t now = WallMillis();
    if (!stopping && !retry_pause && !backlog && (outbox_pending_ || now >= next_outbox_look)) {
      outbox_pending_ = false;
      next_outbox_look = now + kOutboxLookMs;
      if (ReplayOutbox()) {
        outbox_pending_ = true;  // there may be more
      } else if (store_.BusOutboxEvents() > 0) {
        retry_pause = true;  // JetStream (or the database) not taking them yet
      }
    }
  }
}

bool EventBus::StartConsumer(int part, int64_t valid_until_ms, std::string* error) {
  const std::string subject = Subject(part), durable = Durable(part);
  // A new holder starts the partition's consumer afresh: the previous holder's consumer is
  // deleted and created again. In a work-queue stream a message stays until it is acknowledged
  // (deleting a consumer removes none), and the new consumer (deliver all) starts at the first
  // message still stored for the partition, so the messages a dead holder had fetched but not
  // acknowledged come at once, instead of after their AckWait on the old consumer. After a
  // graceful hand-over nothing is outstanding and the new consumer simply goes on.
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteConsumer(nats_->js, opt_.stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
    *error = "consumer " + durable + " not deleted: " + NatsError(s, jerr);
    return false;
  }
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.FilterSubject = subject.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  // Redelivery to the holder itself (an acknowledgement lost on the way); a dead holder's
  // messages come back through the new holder's fresh consumer, not through this.
  cc.AckWait = int64_t{opt_.lease_seconds} * 1000 * kNsPerMs;
  cc.MaxAckPending = int64_t{opt_.fetch_batch} * (kInflightBatches + 2);
  jsConsumerInfo* ci = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddConsumer(&ci, nats_->js, opt_.stream.c_str(), &cc, nullptr, &jerr);
  if (s != NATS_OK) {
    *error = "consumer " + durable + ": " + NatsError(s, jerr);
    return false;
  }
  jsConsumerInfo_Destroy(ci);
  auto c = std::make_shared<Consumer>();
  c->part = part;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = opt_.stream.c_str();
  so.Consumer = durable.c_str();
  s = js_PullSubscribe(&c->sub, nats_->js, subject.c_str(), durable.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    *error = "pull subscription " + durable + ": " + NatsError(s, jerr);
    return false;
  }
  c->valid_until_ms = valid_until_ms;
  c->thread = std::thread([this, c] { ConsumeLoop(c); });
  std::lock_guard lock(held_mu_);
  held_[part] = std::move(c);
  return true;
}

void EventBus::ConsumeLoop(const std::shared_ptr<Consumer>& c) {
  while (!c->stop) {
    const int64_t left = c->valid_until_ms - WallMillis();
    if (left <= 0 || c->inflight >= kInflightBatches) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    natsMsgList list{};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    // The fetch ends before the lease's safe end, so nothing is fetched after it.
    natsStatus s = natsSubscription_Fetch(&list, c->sub, opt_.fetch_batch,
                                          std::min(kFetchWaitMs, left), &jerr);
    if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
      natsMsgList_Destroy(&list);
      continue;
    }
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      log::Warn("bus fetch failed", {{"partition", c->part}, {"error", NatsError(s, jerr)}});
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    std::vector<Event> events;
    events.reserve(static_cast<size_t>(list.Count));
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      const char* id_text = nullptr;
      const char* api_text = nullptr;
      natsMsgHeader_Get(m, "Boing-Event-Id", &id_text);
      natsMsgHeader_Get(m, "Boing-Api-Id", &api_text);
      Event e;
      int64_t id = 0, api = 0;
      auto err = ParseEvent(
          std::string_view(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))),
          opt_.limits, e);
      if (err || !ParseInt(id_text, &id) || !ParseInt(api_text, &api)) {
        ++decode_failures;
        log::Error("bus message not decodable (acknowledged, skipped)",
                   {{"partition", c->part},
                    {"error", err ? err->field + ": " + err->message : "missing ids"}});
        continue;
      }
      e.id = id;
      e.api_id = api;
      events.push_back(std::move(e));
    }
    // Each message is acknowledged (a work-queue stream needs explicit acks, and then removes it)
    // once the batch went through detection.
    auto msgs = std::shared_ptr<natsMsgList>(new natsMsgList(list), [](natsMsgList* l) {
      natsMsgList_Destroy(l);
      delete l;
    });
    const size_t n = events.size();
    ++c->inflight;
    bool queued = detection_.SubmitAcked(std::move(events), [this, c, msgs, n] {
      natsStatus failed = NATS_OK;
      for (int i = 0; i < msgs->Count; ++i) {
        natsStatus as = natsMsg_Ack(msgs->Msgs[i], nullptr);
        if (as != NATS_OK) failed = as;
      }
      if (failed != NATS_OK) {
        log::Warn("bus acknowledgement failed (redelivered after the lease TTL)",
                  {{"partition", c->part}, {"error", NatsError(failed)}});
      }
      consumed += n;
      --c->inflight;
    });
    if (!queued) {
      --c->inflight;
      return;
    }
  }
}

void EventBus::StopConsumers(const std::vector<int>& parts, bool release) {
  std::vector<std::shared_ptr<Consumer>> stopping;
  {
    std::lock_guard lock(held_mu_);
    for (int part : parts) {
      auto it = held_.find(part);
      if (it == held_.end()) continue;
      it->second->stop = true;  // all at once: each fetch ends within its 500 ms wait
      stopping.push_back(it->second);
      held_.erase(it);
    }
  }
  for (auto& c : stopping) {
    if (c->thread.joinable()) c->thread.join();
  }
  // What was fetched goes through detection and is acknowledged before another instance may take
  // the partition (bounded: past the TTL the lease would have expired anyway).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(opt_.lease_seconds) * 2 / 3;
  for (auto& c : stopping) {
    while (c->inflight > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // The acknowledgements reached the server before the next holder may recreate the consumer.
  if (release && !stopping.empty() && nats_ && nats_->nc)
    natsConnection_FlushTimeout(nats_->nc, 1000);
  for (auto& c : stopping) {
    if (release) {
      Status st = store_.ReleaseBusLease(c->part, opt_.instance_id);
      if (!st.ok) {
        log::Warn("bus lease not released", {{"partition", c->part}, {"error", st.message}});
      }
      ++released;
    }
    log::Info("bus partition handed over", {{"partition", c->part}, {"released", release}});
  }
}

std::string EventBus::MetricsText() {
  std::string out;
  auto series = [&out](const char* name, const char* type, const char* help,
                       std::vector<std::pair<std::string, double>> values) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, v] : values) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.17g\n", v);
      out += name + labels + buf;
    }
  };
  auto n = [](const std::atomic<uint64_t>& a) { return static_cast<double>(a.load()); };
  series("boing_bus_published_total", "counter",
         "Committed events acknowledged by JetStream (BUS_URL).", {{"", n(published)}});
  series("boing_bus_publish_failures_total", "counter",
         "Publish batches not fully acknowledged (retried).", {{"", n(publish_failures)}});
  series("boing_bus_publish_late_total", "counter",
         "Ingest answers sent after BUS_PUBLISH_TIMEOUT_MS with their events neither acknowledged "
         "by JetStream nor recorded in the outbox (the database refused; the publish is "
         "retried).",
         {{"", n(publish_late)}});
  series("boing_bus_publish_dropped_total", "counter",
         "Committed events neither published nor recorded in the publish outbox (the database "
         "refused the outbox too): stored, but they skipped detection.",
         {{"", n(publish_dropped)}});
  series("boing_bus_outbox_spilled_total", "counter",
         "Committed events recorded in the publish outbox by this instance (queue full, answer "
         "due before JetStream's acknowledgement, shutdown).",
         {{"", n(outbox_spilled)}});
  series("boing_bus_outbox_replayed_total", "counter",
         "Outbox events this instance published once JetStream took messages again.",
         {{"", n(outbox_replayed)}});
  series("boing_bus_outbox_events", "gauge",
         "Committed events in the publish outbox (all instances), waiting to be published.",
         {{"", static_cast<double>(store_.BusOutboxEvents())}});
  series("boing_bus_publish_queue_events", "gauge", "Committed events waiting to be published.",
         {{"", static_cast<double>(PublishQueueDepth())}});
  series("boing_bus_consumed_total", "counter",
         "Events of held partitions run through detection and acknowledged.", {{"", n(consumed)}});
  series("boing_bus_decode_failures_total", "counter", "Bus messages that could not be decoded.",
         {{"", n(decode_failures)}});
  series("boing_bus_live_messages_total", "counter",
         "Live stream messages relayed to / received from the other instances (core NATS).",
         {{"{direction=\"relayed\"}", n(live_relayed)},
          {"{direction=\"received\"}", n(live_received)}});
  series("boing_bus_partitions_held", "gauge", "Partitions this instance holds.",
         {{"", static_cast<double>(Held().size())}});
  series("boing_bus_lease_changes_total", "counter", "Partition leases by change.",
         {{"{change=\"acquired\"}", n(acquired)},
          {"{change=\"released\"}", n(released)},
          {"{change=\"lost\"}", n(lost)}});
  return out;
}

std::vector<int> EventBus::Held() {
  std::lock_guard lock(held_mu_);
  std::vector<int> out;
  for (const auto& [p, c] : held_) out.push_back(p);
  return out;
}

void EventBus::LeaseLoop() {
  const int64_t ttl_ms = int64_t{opt_.lease_seconds} * 1000;
  const int64_t renew_every = ttl_ms / 3;
  // What a renewal writes: the TTL less the time reserved for the take-over, so that a dead
  // holder's partitions are held by a survivor within the TTL of its last renewal.
  const int64_t lease_ms = ttl_ms - kTakeOverMs;
  // Released leases and new members are looked for at least this often; expiries (a dead
  // instance's leases and heartbeat) are waited for exactly (see the end of the loop).
  const int64_t look_every = std::min<int64_t>(1000, renew_every);
  int64_t last_renew = 0, wake_at = 0;
  for (;;) {
    {
      std::unique_lock lock(lease_mu_);
      const int64_t delay = wake_at - WallMillis();
      if (delay > 0) {
        lease_cv_.wait_for(lock, std::chrono::milliseconds(delay), [&] { return lease_stop_; });
      }
      if (lease_stop_) return;
    }
    int64_t now = WallMillis();
    wake_at = now + look_every;
    if (now - last_renew >= renew_every) {
      // The heartbeat and the leases are renewed with the same `now`, so this instance's
      // membership never outlives its leases: when it dies, both expire together, at most the
      // TTL after its death.
      Status hb = store_.BusHeartbeat(opt_.instance_id, now, now + lease_ms, started_ms_);
      if (!hb.ok) {
        log::Warn("bus heartbeat failed", {{"error", hb.message}});
        continue;  // consumers pause on their own once their lease is no longer renewed
      }
      last_renew = now;
      for (int p : Held()) {
        bool got = false;
        Status st = store_.TakeBusLease(p, opt_.instance_id, now, now + lease_ms, &got);
        if (!st.ok) continue;
        if (got) {
          std::lock_guard lock(held_mu_);
          if (auto it = held_.find(p); it != held_.end()) {
            it->second->valid_until_ms = now + ttl_ms - kLeaseSafetyMs;
          }
        } else {
          ++lost;
          log::Warn("bus lease lost", {{"partition", p}});
          StopConsumers({p}, false);
        }
      }
    }
    wake_at = std::min(wake_at, last_renew + renew_every);
    const auto members = store_.BusMembers(now);
    const int n = std::max<int>(1, static_cast<int>(members.size()));
    const size_t target = static_cast<size_t>((opt_.partitions + n - 1) / n);
    if (auto held = Held(); held.size() > target) {
      StopConsumers(std::vector<int>(held.begin() + static_cast<ptrdiff_t>(target), held.end()),
                    true);
    }
    auto held = Held();
    const auto leases = store_.ListBusLeases();
    for (const auto& l : leases) {
      if (held.size() >= target) break;
      if (l.part >= opt_.partitions || std::count(held.begin(), held.end(), l.part)) continue;
      if (!l.holder.empty() && l.expires_at_ms >= now) continue;
      bool got = false;
      const int64_t take_now = WallMillis();
      Status st =
          store_.TakeBusLease(l.part, opt_.instance_id, take_now, take_now + lease_ms, &got);
      if (!st.ok || !got) continue;
      std::string error;
      if (!StartConsumer(l.part, take_now + ttl_ms - kLeaseSafetyMs, &error)) {
        log::Error("bus partition not consumed", {{"partition", l.part}, {"error", error}});
        store_.ReleaseBusLease(l.part, opt_.instance_id);
        continue;
      }
      ++acquired;
      held.push_back(l.part);
      log::Info("bus partition acquired",
                {{"partition", l.part},
                 {"previous_holder", l.holder},
                 {"epoch", l.epoch + 1},
                 {"expired_ms_ago", l.holder.empty() ? int64_t{0} : take_now - l.expires_at_ms}});
    }
    // A dead instance's partitions are taken the moment both its leases and its heartbeat
    // expired (its membership counts in the share until then): wake just after the earliest
    // expiry of another instance's lease or heartbeat instead of at the next periodic look.
    for (const auto& l : leases) {
      if (!l.holder.empty() && l.holder != opt_.instance_id && l.expires_at_ms >= now) {
        wake_at = std::min(wake_at, l.expires_at_ms + 1);
      }
    }
    for (const auto& m : members) {
      if (m.instance_id != opt_.instance_id) wake_at = std::min(wake_at, m.expires_at_ms + 1);
    }
  }
}

// Live relay subjects, per stream (deployments sharing a NATS server stay apart).
static std::string LiveSubject(const std::string& stream, const char* what) {
  return std::string("boing.live.") + stream + "." + what;
}

bool EventBus::StartLive(LiveSink sink, std::string* error) {
  live_sink_ = std::move(sink);
  const std::string subject = LiveSubject(opt_.stream, "*");
  natsStatus s =
      natsConnection_Subscribe(&nats_->live, nats_->nc, subject.c_str(), &EventBus::OnLive, this);
  if (s != NATS_OK) {
    *error = "BUS_URL: cannot subscribe to " + subject + ": " + NatsError(s);
    return false;
  }
  // Live messages are expendable: a slow reader drops them rather than growing without bound.
  natsSubscription_SetPendingLimits(nats_->live, 10000, 64 * 1024 * 1024);
  return true;
}

void EventBus::OnLive(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  auto* bus = static_cast<EventBus*>(closure);
  const char* origin = nullptr;
  const char* topic_text = nullptr;
  natsMsgHeader_Get(m, "Boing-Origin", &origin);
  natsMsgHeader_Get(m, "Boing-Topic", &topic_text);
  int64_t topic = -1;
  if (origin && bus->opt_.instance_id != origin && ParseInt(topic_text, &topic) && topic >= 0 &&
      topic < kLiveTopics) {
    const std::string subject = natsMsg_GetSubject(m);
    if (subject == LiveSubject(bus->opt_.stream, "interest")) {
      bus->remote_interest_ms_[topic] = WallMillis();
    } else {
      const char* api_text = nullptr;
      const char* kind_text = nullptr;
      natsMsgHeader_Get(m, "Boing-Api-Id", &api_text);
      natsMsgHeader_Get(m, "Boing-Kind", &kind_text);
      int64_t api = 0;
      if (ParseInt(api_text, &api) && bus->live_sink_) {
        ++bus->live_received;
        bus->live_sink_(
            static_cast<int>(topic), api, kind_text && *kind_text ? kind_text[0] : 0,
            std::string(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))));
      }
    }
  }
  natsMsg_Destroy(m);
}

void EventBus::AnnounceInterest(const std::vector<int>& topics) {
  if (!nats_ || !nats_->nc) return;
  const std::string subject = LiveSubject(opt_.stream, "interest");
  for (int t : topics) {
    natsMsg* m = nullptr;
    const std::string topic = std::to_string(t);
    natsStatus s = natsMsg_Create(&m, subject.c_str(), nullptr, nullptr, 0);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Origin", opt_.instance_id.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Topic", topic.c_str());
    if (s == NATS_OK) natsConnection_PublishMsg(nats_->nc, m);
    if (m) natsMsg_Destroy(m);
  }
}

bool EventBus::RemoteInterest(int topic) const {
  // Announced each second; three seconds without one: nobody elsewhere watches any more.
  return topic >= 0 && topic < kLiveTopics &&
         WallMillis() - remote_interest_ms_[topic].load() < 3000;
}

void EventBus::RelayLive(int topic, int64_t api_id, char kind, const std::string& msg) {
  if (!nats_ || !nats_->nc) return;
  const std::string subject = LiveSubject(opt_.stream, "msg");
  const std::string t = std::to_string(topic), api = std::to_string(api_id);
  const char k[2] = {kind, 0};
  natsMsg* m = nullptr;
  natsStatus s =
      natsMsg_Create(&m, subject.c_str(), nullptr, msg.data(), static_cast<int>(msg.size()));
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Origin", opt_.instance_id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Topic", t.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Boing-Api-Id", api.c_str());
  if (s == NATS_OK && kind) s = natsMsgHeader_Set(m, "Boing-Kind", k);
  if (s == NATS_OK) s = natsConnection_PublishMsg(nats_->nc, m);
  if (s == NATS_OK) ++live_relayed;
  if (m) natsMsg_Destroy(m);
}

void EventBus::StopConsuming() {
  {
    std::lock_guard lock(lease_mu_);
    if (lease_stop_) return;
    lease_stop_ = true;
  }
  lease_cv_.notify_all();
  if (lease_thread_.joinable()) lease_thread_.join();
  StopConsumers(Held(), true);
  if (nats_) store_.BusLeave(opt_.instance_id);
}

void EventBus::Stop() {
  {
    std::lock_guard lock(pub_mu_);
    if (pub_stop_ && !pub_thread_.joinable()) return;
    pub_stop_ = true;
  }
  pub_cv_.notify_all();
  if (pub_thread_.joinable()) pub_thread_.join();
  nats_.reset();
}

}  // namespace boing
