#include "boing/agent/uplink.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "boing/crypto.h"

namespace boing::agent {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  // Answers are small JSON documents; a runaway one is cut (and then fails to parse).
  if (out->size() < (4u << 20)) out->append(data, size * n);
  return size * n;
}

std::string TrimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)global;
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResult HttpClient::Post(const std::string& url, std::string_view body,
                            const std::string& bearer, bool gzipped) {
  HttpResult r;
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) {
    r.error = "libcurl could not be initialised";
    return r;
  }
  curl_easy_reset(c);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  if (gzipped) headers = curl_slist_append(headers, "Content-Encoding: gzip");
  std::string auth;
  if (!bearer.empty()) {
    auth = "Authorization: Bearer " + bearer;
    headers = curl_slist_append(headers, auth.c_str());
  }
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "boing-agent/" BOING_VERSION);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  return r;
}

bool LoadCredentials(const std::string& state_dir, Credentials& out, std::string* error) {
  std::string path = state_dir + "/agent.json";
  std::ifstream f(path);
  if (!f) {
    if (errno != ENOENT) *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, false);
  auto str = [&j](const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  Credentials c{str("server"), str("agent_id"), str("agent_token"), ""};
  auto key = crypto::Unhex(str("identity_key"));
  if (c.agent_id.empty() || c.agent_token.empty() || !key || key->size() != 32) {
    *error = path + " is not a valid agent state file (remove it to enrol again)";
    return false;
  }
  c.identity_key = *key;
  out = std::move(c);
  return true;
}

bool SaveCredentials(const std::string& state_dir, const Credentials& c, std::string* error) {
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = "cannot create " + state_dir + ": " + std::strerror(errno);
    return false;
  }
  Json j = {{"server", c.server},
            {"agent_id", c.agent_id},
            {"agent_token", c.agent_token},
            {"identity_key", crypto::Hex(c.identity_key)}};
  std::string text = j.dump(2) + "\n";
  std::string tmp = state_dir + "/agent.json.tmp", path = state_dir + "/agent.json";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot write " + tmp + ": " + std::strerror(errno);
    return false;
  }
  fchmod(fd, 0600);
  bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    unlink(tmp.c_str());
    return false;
  }
  int dfd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return true;
}

bool Enroll(HttpClient& http, const std::string& server, const std::string& enroll_token,
            const std::string& hostname, Credentials& out, std::string* error, bool* fatal) {
  *fatal = false;
  Json body = {
      {"enrollment_token", enroll_token}, {"hostname", hostname}, {"version", BOING_VERSION}};
  HttpResult r = http.Post(TrimSlash(server) + "/api/agents/enroll", body.dump(), "", false);
  if (r.status == 0) {
    *error = "enrolment at " + server + " failed: " + r.error;
    return false;
  }
  if (r.status != 201 && r.status != 200) {
    Json e = Json::parse(r.body, nullptr, false);
    std::string msg = e.is_object() && e.contains("error") && e["error"].is_string()
                          ? e["error"].get<std::string>()
                          : "";
    *error = "enrolment at " + server + " refused: HTTP " + std::to_string(r.status) +
             (msg.empty() ? "" : " (" + msg + ")");
    *fatal = r.status == 400 || r.status == 401 || r.status == 403 || r.status == 404;
    return false;
  }
  Json j = Json::parse(r.body, nullptr, false);
  auto str = [&j](const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  auto key = crypto::Unhex(str("identity_key"));
  if (str("agent_id").empty() || str("agent_token").empty() || !key || key->size() != 32) {
    *error =
        "enrolment at " + server + ": unexpected answer (no agent_id/agent_token/identity_key)";
    *fatal = true;
    return false;
  }
  out = Credentials{server, str("agent_id"), str("agent_token"), *key};
  return true;
}

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed)
    : initial_(initial), max_(std::max(max, initial)), rng_(seed ? seed : std::random_device{}()) {}

std::chrono::milliseconds Backoff::Next() {
  int64_t d = initial_.count();
  for (int i = 0; i < attempt_ && d < max_.count(); ++i) d *= 2;
  d = std::min<int64_t>(d, max_.count());
  if (attempt_ < 62) ++attempt_;
  std::uniform_int_distribution<int64_t> jitter(d / 2, d);
  return std::chrono::milliseconds(jitter(rng_));
}

std::string BatchBody(std::span<const SpoolRecord> records) {
  size_t n = 2;
  for (const SpoolRecord& r : records) n += r.payload.size() + 1;
  std::string out;
  out.reserve(n);
  out += '[';
  for (size_t i = 0; i < records.size(); ++i) {
    if (i) out += ',';
    out += records[i].payload;
  }
  out += ']';
  return out;
}

std::string Gzip(std::string_view data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return {};
  out.resize(produced);
  return out;
}

BatchOutcome ClassifyBatchAnswer(const HttpResult& r, size_t n) {
  BatchOutcome o;
  if (r.status == 0) {
    o.detail = r.error;
    return o;
  }
  if (r.status == 200) {
    Json j = Json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("results") || !j["results"].is_array() ||
        j["results"].size() != n) {
      o.detail = "unexpected batch answer";
      return o;  // retried: the server dedups whatever it did commit
    }
    for (const Json& item : j["results"]) {
      std::string st = item.is_object() && item.contains("status") && item["status"].is_string()
                           ? item["status"].get<std::string>()
                           : "";
      if (st == "accepted") {
        ++o.accepted;
      } else if (st == "duplicate") {
        ++o.duplicates;
      } else {
        if (o.detail.empty() && item.is_object()) {
          o.detail = "rejected: field " + item.value("field", std::string("?")) + ": " +
                     item.value("error", std::string("?"));
        }
        ++o.rejected;
      }
    }
    o.kind = BatchOutcome::Kind::kAcked;
    return o;
  }
  o.detail = "HTTP " + std::to_string(r.status);
  if (r.status == 400 || r.status == 413) {
    o.kind = n > 1 ? BatchOutcome::Kind::kSplit : BatchOutcome::Kind::kPoison;
    if (o.kind == BatchOutcome::Kind::kPoison) o.rejected = 1;
  }
  return o;
}

std::vector<RateWindow::Rate> RateWindow::Update(const std::vector<RateSample>& totals,
                                                 double now_s, size_t max_ips) {
  std::vector<std::pair<std::string, uint64_t>> cur;
  for (const RateSample& s : totals)
    if (s.endpoint_hash == 0) cur.emplace_back(s.client_ip, s.requests);
  std::sort(cur.begin(), cur.end());
  std::vector<Rate> out;
  double window = last_s_ < 0 ? 0 : now_s - last_s_;
  for (const auto& [ip, n] : cur) {
    auto it = std::lower_bound(last_.begin(), last_.end(), std::make_pair(ip, uint64_t{0}));
    // An LRU eviction makes a counter start again: count what is there as new.
    uint64_t before = it != last_.end() && it->first == ip && it->second <= n ? it->second : 0;
    if (last_s_ >= 0 && n > before && window > 0) {
      out.push_back(Rate{ip, static_cast<double>(n - before) / window, n});
    }
  }
  std::sort(out.begin(), out.end(), [](const Rate& a, const Rate& b) { return a.rps > b.rps; });
  if (out.size() > max_ips) out.resize(max_ips);
  last_ = std::move(cur);
  last_s_ = now_s;
  return out;
}

std::string HeartbeatBody(const std::string& version,
                          const std::vector<std::pair<std::string, uint64_t>>& counters,
                          const std::vector<RateWindow::Rate>& rates) {
  Json c = Json::object();
  for (const auto& [k, v] : counters) c[k] = v;
  Json r = Json::array();
  for (const RateWindow::Rate& x : rates)
    r.push_back({{"ip", x.ip}, {"rps", std::round(x.rps * 1000) / 1000}, {"requests", x.requests}});
  Json j = {{"version", version}, {"counters", c}, {"rates", r}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Uplink::Uplink(UplinkOptions options, Credentials credentials, Spool* spool, AgentMetrics* metrics)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      spool_(spool),
      metrics_(metrics) {
  options_.server = TrimSlash(options_.server);
  options_.max_in_flight = std::clamp<size_t>(options_.max_in_flight, 1, 64);
  batch_limit_ = std::max<size_t>(1, options_.batch.max_events);
  // Whatever a previous run left in the spool is sent without waiting for the interval.
  if (spool_->stats().pending > 0) {
    have_oldest_ = true;
    oldest_ = Clock::time_point::min();
  }
}

Uplink::~Uplink() { Stop(std::chrono::milliseconds(0)); }

void Uplink::Start() {
  for (size_t i = 0; i < options_.max_in_flight; ++i) workers_.emplace_back([this] { Worker(); });
  thread_ = std::thread([this] { Run(); });
}

void Uplink::Stop(std::chrono::milliseconds drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    drain_until_ = Clock::now() + drain;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    abort_ = true;
  }
  work_cv_.notify_all();
  cv_.notify_all();
  for (std::thread& w : workers_)
    if (w.joinable()) w.join();
  workers_.clear();
  AckCompleted();  // batches that got through while the dispatcher was leaving
}

void Uplink::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    if (!have_oldest_) {
      have_oldest_ = true;
      oldest_ = Clock::now();
    }
  }
  cv_.notify_all();
}

void Uplink::QueueHeartbeat(std::string body) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    heartbeat_ = std::move(body);
  }
  cv_.notify_all();
}

void Uplink::SendHeartbeat(HttpClient& http) {
  std::string body;
  {
    std::lock_guard<std::mutex> lock(mu_);
    body.swap(heartbeat_);
  }
  if (body.empty()) return;
  HttpResult r =
      http.Post(options_.server + "/api/agents/heartbeat", body, credentials_.agent_token, false);
  if (r.status == 200) {
    ++metrics_->heartbeats;
  } else {
    ++metrics_->heartbeat_errors;
  }
}

bool Uplink::SendRecords(HttpClient& http, const SpoolRecord* records, size_t n) {
  std::string body = Gzip(BatchBody({records, n}), kBatchGzipLevel);
  HttpResult r =
      http.Post(options_.server + "/api/ingest/batch", body, credentials_.agent_token, true);
  BatchOutcome o = ClassifyBatchAnswer(r, n);
  switch (o.kind) {
    case BatchOutcome::Kind::kSplit: {
      size_t half = n / 2;
      size_t limit = batch_limit_.load();
      while (half < limit && !batch_limit_.compare_exchange_weak(limit, half)) {
      }
      std::fprintf(stderr, "boing-agent: server refused a batch of %zu (%s): batches of %zu now\n",
                   n, o.detail.c_str(), half);
      return SendRecords(http, records, half) && SendRecords(http, records + half, n - half);
    }
    case BatchOutcome::Kind::kRetry:
      ++metrics_->uplink_errors;
      if (r.status == 401 || r.status == 403)
        std::fprintf(stderr, "boing-agent: server refused the agent token (revoked?)\n");
      return false;
    case BatchOutcome::Kind::kPoison:
    case BatchOutcome::Kind::kAcked:
      break;
  }
  metrics_->sent += o.accepted;
  metrics_->duplicates += o.duplicates;
  metrics_->rejected += o.rejected;
  ++metrics_->batches;
  if (o.rejected > 0) {
    std::fprintf(stderr, "boing-agent: server rejected %zu event(s) of a batch: %s\n", o.rejected,
                 o.detail.c_str());
  }
  return true;
}

void Uplink::Worker() {
  HttpClient http(options_.http);
  Backoff backoff(options_.backoff_initial, options_.backoff_max);
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return abort_ || !queue_.empty(); });
      if (abort_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    while (!SendRecords(http, job->records.data(), job->records.size())) {
      std::unique_lock<std::mutex> lock(mu_);
      ++failing_;
      // Retrying while stopping only makes sense inside the drain time.
      auto until = Clock::now() + backoff.Next();
      if (stop_) until = std::min(until, drain_until_);
      cv_.wait_until(lock, until, [this] { return abort_; });
      --failing_;
      if (abort_ || (stop_ && Clock::now() >= drain_until_)) return;  // the spool keeps it
    }
    backoff.Reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->done = true;
    }
    cv_.notify_all();
  }
}

void Uplink::AckCompleted() {
  uint64_t ack = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!in_flight_.empty() && in_flight_.front()->done) {
      ack = in_flight_.front()->records.back().seq;
      in_flight_.pop_front();
    }
  }
  std::string error;
  if (ack && !spool_->Ack(ack, &error)) {
    // The batches were delivered; a failed ack file only means they are sent again (duplicates).
    std::fprintf(stderr, "boing-agent: %s\n", error.c_str());
  }
}

void Uplink::Run() {
  HttpClient http(options_.http);
  uint64_t sync_errors = 0;
  for (;;) {
    bool stopping, hb, have_oldest;
    Clock::time_point oldest, drain_until;
    size_t in_flight;
    int failing;
    AckCompleted();
    // Segments the capture thread closed are synced here, not there (also while the server is
    // down and nothing is read for sending).
    std::string sync_error;
    if (!spool_->SyncClosed(&sync_error) && sync_errors++ < 10)
      std::fprintf(stderr, "boing-agent: %s\n", sync_error.c_str());
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stop_;
      drain_until = drain_until_;
      hb = !heartbeat_.empty();
      oldest = oldest_;
      have_oldest = have_oldest_;
      notified_ = false;
      in_flight = in_flight_.size();
      failing = failing_;
    }
    Clock::time_point now = Clock::now();
    if (stopping && now >= drain_until) return;
    if (hb) SendHeartbeat(http);

    uint64_t acked = spool_->stats().acked_seq;
    uint64_t last = spool_->NextSeq() - 1;
    uint64_t base = std::max(dispatched_, acked);
    uint64_t waiting = last > base ? last - base : 0;  // appended, not yet handed to a worker
    if (waiting > 0 && !have_oldest) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!have_oldest_) {
        have_oldest_ = true;
        oldest_ = now;
      }
      have_oldest = true;
      oldest = oldest_;
    }
    if (stopping && waiting == 0 && in_flight == 0) return;
    auto age = !have_oldest ? std::chrono::milliseconds(0)
               : oldest == Clock::time_point::min()
                   ? std::chrono::milliseconds::max()
                   : std::chrono::duration_cast<std::chrono::milliseconds>(now - oldest);
    // While a batch is failing, nothing new goes out: the failing one probes the server.
    bool dispatched = false, read_failed = false;
    if (waiting > 0 && failing == 0 && in_flight < options_.max_in_flight &&
        (stopping || options_.batch.ShouldSend(waiting, 0, age) || waiting >= batch_limit_)) {
      auto job = std::make_shared<Job>();
      std::string error;
      if (!spool_->ReadAfter(base, batch_limit_, options_.batch.max_bytes, job->records, &error)) {
        std::fprintf(stderr, "boing-agent: %s\n", error.c_str());
        ++metrics_->uplink_errors;
        read_failed = true;
      } else if (!job->records.empty()) {
        dispatched_ = job->records.back().seq;
        {
          std::lock_guard<std::mutex> lock(mu_);
          in_flight_.push_back(job);
          queue_.push_back(job);
          if (spool_->NextSeq() - 1 <= dispatched_) have_oldest_ = false;
        }
        work_cv_.notify_one();
        dispatched = true;
      } else {
        dispatched_ = last;  // only dropped records were left
      }
    }
    if (dispatched) continue;
    Clock::time_point wake = now + std::chrono::milliseconds(1000);
    // Waking for the interval only helps when a batch could go out; otherwise a finished
    // batch (or a notification) wakes us.
    bool can_dispatch = failing == 0 && in_flight < options_.max_in_flight && !read_failed;
    if (can_dispatch && waiting > 0 && have_oldest && oldest != Clock::time_point::min())
      wake = std::min(wake, oldest + options_.batch.interval);
    if (stopping) wake = std::min(wake, drain_until);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, wake, [this, stopping] {
      return (stop_ && !stopping) || !heartbeat_.empty() || notified_ ||
             (!in_flight_.empty() && in_flight_.front()->done);
    });
  }
}

}  // namespace boing::agent
