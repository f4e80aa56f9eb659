// Alert lifecycle: findings of the detection worker become alerts, deduplicated by fingerprint
// (detector + actor + API + endpoint template) and grouped over ALERT_GROUP_WINDOW_SECONDS;
// alerts quiet for ALERT_RESOLVE_AFTER_SECONDS are resolved automatically.
//
// Invariants: at most one active (open or acknowledged) alert per fingerprint; every state change
// is written to the store before listeners hear of it; a new alert is notified exactly once,
// unless it is muted (per-alert mute or a matcher mute), in which case it is still recorded and
// the notifier is told it is muted. Thread-safe: OnFindings runs on the detection thread, the
// route operations on HTTP threads, Sweep on a timer; one mutex orders them.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "boing/store.h"

namespace boing {

struct AlertSettings {
  int group_window_s = 300;
  int resolve_after_s = 3600;
  // Automatic response (0 = off): blacklist the IP actor of a new alert of at least
  // autoblock_min_rank for autoblock_s, doubling per earlier automatic block, up to
  // autoblock_max_s.
  int autoblock_s = 0;
  int autoblock_max_s = 86400;
  int autoblock_min_rank = 3;
};

// hex SHA-256 of detector, actor, API and endpoint template.
std::string AlertFingerprint(const std::string& detector, const std::string& actor, int64_t api_id,
                             const std::string& endpoint_template);
// True when the mute matches the alert (empty detector/actor and api_id 0 match anything).
bool MuteMatches(const MuteRecord& m, const AlertRecord& a);
nlohmann::json AlertJson(const AlertRecord& a, const std::string& api_name, int64_t now);
nlohmann::json MuteJson(const MuteRecord& m);

class AlertManager {
 public:
  // action: "created" | "updated" | "acknowledged" | "resolved" | "muted".
  using Listener = std::function<void(const std::string& action, const AlertRecord& a)>;
  // A new alert to notify; `muted` = record deliveries as muted instead of sending.
  using Notifier = std::function<void(const AlertRecord& a, bool muted)>;
  // Called after the automatic response added a blacklist entry (detection reloads its lists).
  using ListsChanged = std::function<void()>;

  AlertManager(Store& store, AlertSettings settings, std::function<int64_t()> now = nullptr);
  void SetListener(Listener l) { listener_ = std::move(l); }
  void SetNotifier(Notifier n) { notifier_ = std::move(n); }
  void SetListsChanged(ListsChanged f) { lists_changed_ = std::move(f); }
  // Several server instances write alerts (BUS_URL): the database is the source of truth. Each
  // batch of findings first re-reads the active alerts of its fingerprints (another instance may
  // have created, updated, acknowledged or resolved them), a second active alert for a fingerprint
  // is refused by a unique key (the batch is then redone on the stored one), route operations
  // start from the stored alert and Sweep re-reads the active alerts.
  void SetShared(bool shared) { shared_ = shared; }

  // Reads active alerts and mutes from the store.
  Status Load();
  // Findings as stored (with ids), in order. Returns the alerts created or updated.
  void OnFindings(const std::vector<FindingRecord>& findings);
  // Resolves alerts without a finding for resolve_after_s (resolved_by "auto").
  void Sweep();

  // Route operations on one alert; nullopt with `st` set when the store failed, nullopt with `st`
  // ok when the alert is unknown.
  std::optional<AlertRecord> Acknowledge(int64_t id, const std::string& who,
                                         const std::string& comment, Status* st);
  std::optional<AlertRecord> Resolve(int64_t id, const std::string& who, const std::string& comment,
                                     Status* st);
  // until 0 = unmute.
  std::optional<AlertRecord> Mute(int64_t id, int64_t until, Status* st);

  // Matcher mutes go through here so the cache follows.
  Status AddMute(MuteRecord& m);
  Status DeleteMute(int64_t id);
  // Re-reads the matcher mutes (changed through another instance).
  Status ReloadMutes();
  bool IsMuted(const AlertRecord& a, int64_t now);

  size_t ActiveCount() {
    std::lock_guard lock(mu_);
    return active_.size();
  }
  uint64_t created_total() const { return created_; }
  uint64_t escalated_total() const { return escalated_; }

 private:
  std::optional<AlertRecord> Change(int64_t id, Status* st,
                                    const std::function<std::string(AlertRecord&)>& apply);
  void AutoBlock(const AlertRecord& a);
  void OnFindingsOnce(const std::vector<FindingRecord>& findings, bool last_try);
  void Emit(const std::string& action, const AlertRecord& a) {
    if (listener_) listener_(action, a);
  }

  Store& store_;
  AlertSettings settings_;
  std::function<int64_t()> now_;
  Listener listener_;
  Notifier notifier_;
  ListsChanged lists_changed_;
  std::mutex mu_;
  std::unordered_map<std::string, AlertRecord> active_;  // fingerprint -> open/acknowledged alert
  std::vector<MuteRecord> mutes_;
  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> escalated_{0};  // alerts notified again because their severity rose
  bool shared_ = false;
};

}  // namespace boing
