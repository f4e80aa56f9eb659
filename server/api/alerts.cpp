#include "alerts.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "boing/crypto.h"
#include "boing/log.h"

namespace boing {

using Json = nlohmann::json;

namespace {
int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::string AlertFingerprint(const std::string& detector, const std::string& actor, int64_t api_id,
                             const std::string& endpoint_template) {
  std::string key;
  key.reserve(detector.size() + actor.size() + endpoint_template.size() + 24);
  // NUL separators: no part can contain one, so distinct tuples never collide.
  key.append(detector).push_back('\0');
  key.append(actor).push_back('\0');
  key.append(std::to_string(api_id)).push_back('\0');
  key.append(endpoint_template);
  return crypto::Hex(crypto::Sha256(key));
}

bool MuteMatches(const MuteRecord& m, const AlertRecord& a) {
  return (m.detector.empty() || m.detector == a.detector) &&
         (m.actor.empty() || m.actor == a.actor) && (m.api_id == 0 || m.api_id == a.api_id);
}

Json AlertJson(const AlertRecord& a, const std::string& api_name, int64_t now) {
  Json evidence = Json::parse(a.evidence_json, nullptr, false);
  auto opt = [](int64_t v) { return v ? Json(v) : Json(nullptr); };
  auto opt_s = [](const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); };
  return {{"id", a.id},
          {"fingerprint", a.fingerprint},
          {"api_id", a.api_id},
          {"api_name", api_name},
          {"detector", a.detector},
          {"severity", a.severity},
          {"status", a.status},
          {"actor", a.actor},
          {"endpoint_template", a.endpoint_template},
          {"count", a.count},
          {"first_seen", a.first_seen},
          {"last_seen", a.last_seen},
          {"message", a.message},
          {"evidence", evidence.is_discarded() ? Json::object() : evidence},
          {"muted", a.muted_until > now},
          {"muted_until", a.muted_until > now ? Json(a.muted_until) : Json(nullptr)},
          {"acknowledged_by", opt_s(a.acknowledged_by)},
          {"acknowledged_at", opt(a.acknowledged_at)},
          {"ack_comment", opt_s(a.ack_comment)},
          {"resolved_at", opt(a.resolved_at)},
          {"resolved_by", opt_s(a.resolved_by)},
          {"created_at", a.created_at}};
}

Json MuteJson(const MuteRecord& m) {
  return {{"id", m.id},
          {"detector", m.detector.empty() ? Json(nullptr) : Json(m.detector)},
          {"actor", m.actor.empty() ? Json(nullptr) : Json(m.actor)},
          {"api_id", m.api_id ? Json(m.api_id) : Json(nullptr)},
          {"expires_at", m.expires_at},
          {"comment", m.comment},
          {"created_by", m.created_by},
          {"created_at", m.created_at}};
}

AlertManager::AlertManager(Store& store, AlertSettings settings, std::function<int64_t()> now)
    : store_(store), settings_(settings), now_(now ? std::move(now) : WallSeconds) {}

Status AlertManager::Load() {
  std::lock_guard lock(mu_);
  active_.clear();
  for (auto& a : store_.ActiveAlerts()) {
    std::string fp = a.fingerprint;
    active_[fp] = std::move(a);
  }
  mutes_ = store_.ListMutes();
  return Status::Ok();
}

bool AlertManager::IsMuted(const AlertRecord& a, int64_t now) {
  if (a.muted_until > now) return true;
  std::lock_guard lock(mu_);
  for (const auto& m : mutes_) {
    if (m.expires_at > now && MuteMatches(m, a)) return true;
  }
  return false;
}

void AlertManager::OnFindings(const std::vector<FindingRecord>& findings) {
  if (findings.empty()) return;
  OnFindingsOnce(findings, !shared_);
}

void AlertManager::OnFindingsOnce(const std::vector<FindingRecord>& findings, bool last_try) {
  const int64_t now = now_();
  std::vector<std::string> fps;
  std::vector<AlertRecord> stored;
  if (shared_) {
    for (const auto& f : findings) {
      fps.push_back(AlertFingerprint(f.detector, f.actor, f.api_id, f.endpoint_template));
    }
    std::sort(fps.begin(), fps.end());
    fps.erase(std::unique(fps.begin(), fps.end()), fps.end());
    stored = store_.ActiveAlertsByFingerprint(fps);
  }
  std::vector<AlertRecord> resolved;                   // superseded alerts
  std::vector<std::string> created, updated;           // fingerprints, in first-touch order
  std::vector<std::pair<std::string, int>> escalated;  // alerts whose severity rose, prior rank
  std::vector<std::pair<std::string, AlertRecord>> emit;
  struct Notify {
    AlertRecord a;
    bool muted, autoblock;
  };
  std::vector<Notify> notify;
  bool retry = false;
  {
    std::lock_guard lock(mu_);
    if (shared_) {
      for (const auto& fp : fps) active_.erase(fp);
      for (auto& a : stored) {
        std::string fp = a.fingerprint;
        active_[fp] = std::move(a);
      }
    }
    for (const auto& f : findings) {
      std::string fp = AlertFingerprint(f.detector, f.actor, f.api_id, f.endpoint_template);
      auto it = active_.find(fp);
      if (it != active_.end() && f.ts > it->second.last_seen + settings_.group_window_s) {
        // Quiet for longer than the grouping window: the old alert ends, a new one starts.
        AlertRecord old = std::move(it->second);
        active_.erase(it);
        old.status = "resolved";
        old.resolved_at = now;
        old.resolved_by = "auto";
        resolved.push_back(std::move(old));
        std::erase(updated, fp);
        std::erase_if(escalated, [&](const auto& e) { return e.first == fp; });
        it = active_.end();
      }
      if (it == active_.end()) {
        AlertRecord a;
        a.fingerprint = fp;
        a.api_id = f.api_id;
        a.detector = f.detector;
        a.severity = f.severity;
        a.severity_rank = f.severity_rank;
        a.actor = f.actor;
        a.endpoint_template = f.endpoint_template;
        a.count = 1;
        a.first_seen = a.last_seen = f.ts;
        a.touched_at = now;
        a.message = f.message;
        a.evidence_json = f.evidence_json;
        a.created_at = now;
        active_.emplace(fp, std::move(a));
        created.push_back(fp);
        continue;
      }
      AlertRecord& a = it->second;
      ++a.count;
      a.first_seen = std::min(a.first_seen, f.ts);
      a.last_seen = std::max(a.last_seen, f.ts);
      a.touched_at = now;
      if (f.severity_rank > a.severity_rank) {
        // Notified again (at most once per level and batch): an alert people saw as low may now
        // be critical. A new alert of this batch is notified once, at its final severity.
        if (std::find(created.begin(), created.end(), fp) == created.end() &&
            std::none_of(escalated.begin(), escalated.end(),
                         [&](const auto& e) { return e.first == fp; })) {
          escalated.emplace_back(fp, a.severity_rank);
        }
        a.severity_rank = f.severity_rank;
        a.severity = f.severity;
      }
      a.message = f.message;  // the latest finding describes the alert best
      a.evidence_json = f.evidence_json;
      if (std::find(created.begin(), created.end(), fp) == created.end() &&
          std::find(updated.begin(), updated.end(), fp) == updated.end()) {
        updated.push_back(fp);
      }
    }
    std::vector<AlertRecord*> save;
    for (auto& r : resolved) save.push_back(&r);
    for (const auto* list : {&created, &updated}) {
      for (const auto& fp : *list) save.push_back(&active_.at(fp));
    }
    Status st = store_.SaveAlerts(save);
    if (!st.ok) {
      // Nothing of this batch is stored: forget the new alerts so the next finding recreates them.
      for (const auto& fp : created) active_.erase(fp);
      if (st.conflict && !last_try) {
        // Another instance opened one of these alerts meanwhile: redo the batch on the stored one.
        log::Info("alert opened by another instance; batch redone", {{"alerts", save.size()}});
        retry = true;
      } else {
        log::Error("storing alerts failed", {{"alerts", save.size()}, {"error", st.message}});
        return;
      }
    }
    if (!retry) {
      for (auto& r : resolved) emit.emplace_back("resolved", std::move(r));
      auto muted = [&](const AlertRecord& a) {
        bool m = a.muted_until > now;
        for (const auto& mute : mutes_) m = m || (mute.expires_at > now && MuteMatches(mute, a));
        return m;
      };
      for (const auto& fp : created) {
        const AlertRecord& a = active_.at(fp);
        emit.emplace_back("created", a);
        notify.push_back({a, muted(a), true});
        ++created_;
      }
      for (const auto& [fp, prior_rank] : escalated) {
        const AlertRecord& a = active_.at(fp);
        // An actor blocked when the alert opened is not blocked again (that would double its
        // time).
        notify.push_back({a, muted(a), prior_rank < settings_.autoblock_min_rank});
        ++escalated_;
      }
      for (const auto& fp : updated) emit.emplace_back("updated", active_.at(fp));
    }
  }
  if (retry) {
    OnFindingsOnce(findings, true);
    return;
  }
  for (const auto& [action, a] : emit) Emit(action, a);
  for (const auto& n : notify) {
    if (notifier_) notifier_(n.a, n.muted);
    if (n.autoblock) AutoBlock(n.a);
  }
}

void AlertManager::AutoBlock(const AlertRecord& a) {
  if (settings_.autoblock_s <= 0 || a.severity_rank < settings_.autoblock_min_rank) return;
  if (a.actor.rfind("ip:", 0) != 0 || a.detector == "blacklist") return;
  const std::string ip = a.actor.substr(3);
  const int64_t now = now_();
  // Repeat offenders: every earlier automatic block of this IP doubles the duration.
  int earlier = 0;
  for (const auto& e : store_.ListEntries("blacklist")) {
    if (e.kind != "ip" || e.value != ip || e.reason.rfind("auto:", 0) != 0) continue;
    if (e.expires_at == 0 || e.expires_at > now) return;  // still blocked
    ++earlier;
  }
  int64_t ttl = settings_.autoblock_s;
  for (int i = 0; i < earlier && ttl < settings_.autoblock_max_s; ++i) ttl *= 2;
  ttl = std::min<int64_t>(ttl, settings_.autoblock_max_s);
  ListEntry e;
  e.list = "blacklist";
  e.kind = "ip";
  e.value = ip;
  e.api_id = a.api_id;
  e.reason = "auto: alert " + std::to_string(a.id) + " (" + a.detector + "), block " +
             std::to_string(earlier + 1);
  e.created_at = now;
  e.expires_at = now + ttl;
  Status st = store_.AddListEntry(e);
  if (!st.ok) {
    log::Error("automatic blacklist entry failed", {{"alert_id", a.id}, {"error", st.message}});
    return;
  }
  AuditEntry au;
  au.ts_ms = now * 1000;
  au.username = "system";
  au.action = "blacklist.auto";
  au.target = "list_entry:" + std::to_string(e.id);
  au.details_json = Json{{"alert_id", a.id}, {"ip", ip}, {"ttl_seconds", ttl}}.dump();
  store_.AddAudit(au);
  log::Info("actor blacklisted by alert rule",
            {{"alert_id", a.id}, {"ip", ip}, {"ttl_seconds", ttl}, {"block", earlier + 1}});
  if (lists_changed_) lists_changed_();
}

void AlertManager::Sweep() {
  const int64_t now = now_();
  std::vector<AlertRecord> done;
  std::optional<std::vector<AlertRecord>> fresh;
  if (shared_) fresh = store_.ActiveAlerts();
  {
    std::lock_guard lock(mu_);
    if (fresh) {
      active_.clear();
      for (auto& a : *fresh) {
        std::string fp = a.fingerprint;
        active_[fp] = std::move(a);
      }
    }
    std::vector<AlertRecord*> save;
    for (auto& [fp, a] : active_) {
      if (now - a.touched_at < settings_.resolve_after_s) continue;
      a.status = "resolved";
      a.resolved_at = now;
      a.resolved_by = "auto";
      save.push_back(&a);
    }
    if (save.empty()) return;
    Status st = store_.SaveAlerts(save);
    if (!st.ok) {
      log::Error("auto-resolving alerts failed", {{"error", st.message}});
      for (auto* a : save) {
        a->status = a->acknowledged_at ? "acknowledged" : "open";
        a->resolved_at = 0;
        a->resolved_by.clear();
      }
      return;
    }
    for (auto* a : save) done.push_back(*a);
    for (const auto& a : done) active_.erase(a.fingerprint);
  }
  for (const auto& a : done) Emit("resolved", a);
}

std::optional<AlertRecord> AlertManager::Change(
    int64_t id, Status* st, const std::function<std::string(AlertRecord&)>& apply) {
  *st = Status::Ok();
  AlertRecord changed;
  std::string action;
  {
    std::lock_guard lock(mu_);
    AlertRecord* live = nullptr;
    for (auto& [fp, a] : active_) {
      if (a.id == id) live = &a;
    }
    std::optional<AlertRecord> stored;
    if (!live || shared_) {
      stored = store_.GetAlert(id);
      if (!stored) return std::nullopt;
    }
    AlertRecord copy = stored ? *stored : *live;
    action = apply(copy);
    if (action.empty()) return copy;  // nothing changes
    if (action == "conflict") {
      *st = Status::Conflict("the alert is resolved");
      return std::nullopt;
    }
    std::vector<AlertRecord*> save{&copy};
    *st = store_.SaveAlerts(save);
    if (!st->ok) return std::nullopt;
    if (live) {
      if (copy.status == "resolved") {
        active_.erase(copy.fingerprint);
      } else {
        *live = copy;
      }
    }
    changed = std::move(copy);
  }
  Emit(action, changed);
  return changed;
}

std::optional<AlertRecord> AlertManager::Acknowledge(int64_t id, const std::string& who,
                                                     const std::string& comment, Status* st) {
  const int64_t now = now_();
  return Change(id, st, [&](AlertRecord& a) -> std::string {
    if (a.status == "resolved") return "conflict";
    a.status = "acknowledged";
    a.acknowledged_by = who;
    a.acknowledged_at = now;
    a.ack_comment = comment;
    return "acknowledged";
  });
}

std::optional<AlertRecord> AlertManager::Resolve(int64_t id, const std::string& who,
                                                 const std::string& comment, Status* st) {
  const int64_t now = now_();
  return Change(id, st, [&](AlertRecord& a) -> std::string {
    if (a.status == "resolved") return "";
    a.status = "resolved";
    a.resolved_at = now;
    a.resolved_by = who;
    if (!comment.empty()) a.ack_comment = comment;
    return "resolved";
  });
}

std::optional<AlertRecord> AlertManager::Mute(int64_t id, int64_t until, Status* st) {
  return Change(id, st, [&](AlertRecord& a) -> std::string {
    a.muted_until = until;
    return "muted";
  });
}

Status AlertManager::AddMute(MuteRecord& m) {
  Status st = store_.AddMute(m);
  if (!st.ok) return st;
  std::lock_guard lock(mu_);
  mutes_.push_back(m);
  return st;
}

Status AlertManager::ReloadMutes() {
  auto mutes = store_.ListMutes();
  // An unreadable table reads as empty: keep the mutes unless the database answers.
  if (Status st = store_.Ping(); !st.ok) return st;
  std::lock_guard lock(mu_);
  mutes_ = std::move(mutes);
  return Status::Ok();
}

Status AlertManager::DeleteMute(int64_t id) {
  Status st = store_.DeleteMute(id);
  if (!st.ok) return st;
  std::lock_guard lock(mu_);
  std::erase_if(mutes_, [&](const MuteRecord& m) { return m.id == id; });
  return st;
}

}  // namespace boing
