// Delivery of alert notifications: email (SMTP through libcurl, STARTTLS or implicit TLS, AUTH,
// multipart text + HTML), webhook (JSON signed with HMAC-SHA256 over "timestamp.body") and Slack
// incoming webhooks (Block Kit).
//
// Invariants: Notify never blocks on a channel — it records one delivery row per routed channel
// and queues it; worker threads send with a time limit per attempt and retry with exponential
// backoff and jitter up to a bounded number of attempts; a channel is attempted by at most one
// worker at a time, so a failing or slow channel holds at most one worker and never delays the
// others (there are at least two). Every attempt's outcome is written to the delivery row.
// Secrets (SMTP password, webhook secrets and URLs) never reach the log.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "boing/crypto.h"
#include "boing/store.h"

namespace boing {

struct NotifySettings {
  std::string smtp_host;
  int smtp_port = 587;
  std::string smtp_user, smtp_password;
  std::string smtp_tls = "auto";  // auto | starttls | smtps | none
  std::string smtp_ca_file;
  std::string email_from = "alerts@boing.local";
  std::string public_url;  // links to /alerts/:id
  int max_attempts = 5;
  int backoff_ms = 2000;
  int timeout_s = 10;
  int workers = 4;
  size_t queue_max = 10000;
  bool allow_private_targets = true;
};

// A channel's configuration: {"recipients":[...]} | {"url","secret"?} | {"url"}. Returns an error
// message naming the field, or "" when valid. `allow_private`: URLs may name loopback/private
// hosts.
std::string ValidateChannelConfig(const std::string& kind, const nlohmann::json& config);
// The configuration as shown in answers: webhook/Slack URLs reduced to scheme and host, secrets
// replaced by "has_secret".
nlohmann::json MaskChannelConfig(const std::string& kind, const nlohmann::json& config);
// Whether a channel receives an alert (enabled, severity at least min_severity, API listed or
// none).
bool ChannelRoutes(const ChannelRecord& c, const AlertRecord& a);

// The messages, exposed for tests.
std::string WebhookBody(const AlertRecord& a, const std::string& api_name, const std::string& link,
                        bool test);
std::string WebhookSignature(const std::string& secret, const std::string& timestamp,
                             const std::string& body);  // "sha256=<hex>"
std::string SlackBody(const AlertRecord& a, const std::string& api_name, const std::string& link,
                      bool test);
std::string EmailSubject(const AlertRecord& a, const std::string& api_name, bool test);
std::string EmailText(const AlertRecord& a, const std::string& api_name, const std::string& link);
std::string EmailHtml(const AlertRecord& a, const std::string& api_name, const std::string& link);
// Delay before retry `attempt` (1 = after the first failure): base × 2^(attempt-1), ±50% jitter.
int64_t BackoffMillis(int base_ms, int attempt, std::mt19937_64& rng);

class Notifier {
 public:
  Notifier(Store& store, const crypto::MultiFernet& fernet, NotifySettings settings);
  ~Notifier();
  void Stop();  // waits for attempts in flight; queued retries are left pending (see Resume)
  // Records and queues a delivery for every channel routing the alert (status "muted" and nothing
  // sent when `muted`). Returns at once: the deliveries are recorded by the notifier's intake
  // thread (database writes never hold up the caller, the detection worker); when the intake is
  // full (ALERT_DELIVERY_QUEUE_MAX) they are recorded here instead. Stop records what is taken in.
  void Notify(const AlertRecord& a, const std::string& api_name, bool muted);
  // Queues again the deliveries left "pending" by an earlier run (stopped with attempts queued or
  // waiting for a retry) created at or after `since`; those created before are marked failed.
  // Returns how many were queued.
  size_t Resume(int64_t since, const std::function<std::string(int64_t api_id)>& api_name);
  // Queues a test notification to one channel (no delivery row). False when the queue is full.
  bool Test(const ChannelRecord& c);
  // Decrypts a stored channel configuration (nullopt when no key opens it).
  std::optional<nlohmann::json> Config(const ChannelRecord& c) const;

  std::atomic<uint64_t> sent{0}, failed{0}, retried{0}, muted{0}, queue_full{0};
  size_t QueueDepth() {  // alerts taken in but not yet recorded + deliveries queued
    size_t n = 0;
    {
      std::lock_guard lock(intake_mu_);
      n = intake_.size();
    }
    std::lock_guard lock(mu_);
    return n + jobs_.size();
  }

 private:
  struct Job {
    DeliveryRecord d;  // id 0 for a test
    AlertRecord alert;
    std::string api_name;
    std::string kind;
    nlohmann::json config;
    int64_t due_ms = 0;
  };
  struct Intake {
    AlertRecord alert;
    std::string api_name;
    bool muted;
  };
  void Loop();
  void IntakeLoop();
  // Records the deliveries of one alert to the routing channels among `channels` and queues them.
  void Record(const std::vector<ChannelRecord>& channels, const Intake& in);
  bool Enqueue(Job job);
  // One attempt; "" on success, else the error (free of secrets).
  std::string Attempt(const Job& j);
  std::string SendEmail(const Job& j);
  std::string Post(const std::string& url, const std::string& body,
                   const std::vector<std::string>& headers);

  Store& store_;
  const crypto::MultiFernet& fernet_;
  NotifySettings s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job> jobs_;
  std::unordered_set<int64_t> busy_;  // channel ids with an attempt in flight
  bool stopping_ = false;
  std::mt19937_64 rng_;
  std::vector<std::thread> threads_;
  std::mutex intake_mu_;
  std::condition_variable intake_cv_;
  std::deque<Intake> intake_;
  bool intake_stopping_ = false;
  std::thread intake_thread_;
};

}  // namespace boing
