#include "notify.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "boing/detect/pipeline.h"
#include "boing/log.h"
#include "boing/net.h"

namespace boing {

using Json = nlohmann::json;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int SeverityRank(const std::string& s) {
  detect::Severity v;
  return detect::ParseSeverity(s, &v) ? static_cast<int>(v) : 0;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Header values and error texts: no control characters (no header injection), ASCII only (a
// byte cut can never leave invalid UTF-8 for the database), bounded.
std::string HeaderSafe(std::string s, size_t max = 200) {
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
    if (u >= 0x80) c = '?';
  }
  if (s.size() > max) s.resize(max);
  return s;
}

// Control characters (CR/LF: header injection) replaced by spaces; UTF-8 kept.
std::string NoControls(std::string s) {
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return s;
}

// RFC 2047 encoded-words for a non-ASCII header value (each ≤ 45 bytes of text, split on UTF-8
// character boundaries; decoders join adjacent encoded-words).
std::string EncodeHeader(const std::string& s) {
  bool ascii =
      std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t n = std::min<size_t>(45, s.size() - i);
    while (i + n < s.size() && n > 1 && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) --n;
    if (!out.empty()) out += ' ';
    out += "=?UTF-8?B?" + crypto::Base64(s.substr(i, n)) + "?=";
    i += n;
  }
  return out;
}

std::string TimeText(double t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string ApiLabel(const AlertRecord& a, const std::string& api_name) {
  return api_name.empty() ? "API " + std::to_string(a.api_id) : api_name;
}

size_t KeepHead(char* data, size_t size, size_t n, void* userdata) {
  auto* body = static_cast<std::string*>(userdata);
  if (body->size() < 300) body->append(data, std::min(size * n, 300 - body->size()));
  return size * n;
}

struct CurlHandle {
  CURL* h = curl_easy_init();
  curl_slist* headers = nullptr;
  curl_slist* rcpt = nullptr;
  curl_slist* resolve = nullptr;
  curl_mime* mime = nullptr;
  ~CurlHandle() {
    if (mime) curl_mime_free(mime);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpt);
    curl_slist_free_all(resolve);
    if (h) curl_easy_cleanup(h);
  }
};

}  // namespace

std::string ValidateChannelConfig(const std::string& kind, const Json& config) {
  if (!config.is_object()) return "config must be an object";
  if (kind == "email") {
    if (!config.contains("recipients") || !config["recipients"].is_array() ||
        config["recipients"].empty() || config["recipients"].size() > 100) {
      return "config.recipients must be a list of 1 to 100 addresses";
    }
    for (const auto& r : config["recipients"]) {
      if (!r.is_string()) return "config.recipients must hold strings";
      const auto& s = r.get_ref<const std::string&>();
      size_t at = s.find('@');
      if (s.size() > 254 || at == std::string::npos || at == 0 || at + 1 >= s.size() ||
          s.find_first_of(" \t\r\n<>,;\"") != std::string::npos) {
        return "config.recipients: '" + HeaderSafe(s, 80) + "' is not an email address";
      }
    }
    return "";
  }
  if (kind == "webhook" || kind == "slack") {
    if (!config.contains("url") || !config["url"].is_string()) return "config.url is required";
    const auto& url = config["url"].get_ref<const std::string&>();
    if (url.size() > 2048 || !(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0)) {
      return "config.url must be an http:// or https:// URL";
    }
    CURLU* u = curl_url();
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
    curl_url_cleanup(u);
    if (rc != CURLUE_OK) return "config.url is not a valid URL";
    if (config.contains("secret") && !config["secret"].is_null()) {
      if (kind != "webhook" || !config["secret"].is_string() ||
          config["secret"].get_ref<const std::string&>().size() > 1024) {
        return "config.secret must be a string (webhook channels only)";
      }
    }
    return "";
  }
  return "kind must be email, webhook or slack";
}

Json MaskChannelConfig(const std::string& kind, const Json& config) {
  if (kind == "email") return {{"recipients", config.value("recipients", Json::array())}};
  Json out = Json::object();
  std::string url = config.value("url", "");
  std::string shown = "****";
  CURLU* u = curl_url();
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      shown = std::string(scheme) + "://" + host + "/****";
    }
    curl_free(scheme);
    curl_free(host);
  }
  curl_url_cleanup(u);
  out["url"] = shown;
  if (kind == "webhook") {
    out["has_secret"] = config.contains("secret") && config["secret"].is_string() &&
                        !config["secret"].get_ref<const std::string&>().empty();
  }
  return out;
}

bool ChannelRoutes(const ChannelRecord& c, const AlertRecord& a) {
  if (!c.enabled || a.severity_rank < SeverityRank(c.min_severity)) return false;
  Json ids = Json::parse(c.api_ids_json, nullptr, false);
  if (!ids.is_array() || ids.empty()) return true;
  for (const auto& id : ids) {
    if (id.is_number_integer() && id.get<int64_t>() == a.api_id) return true;
  }
  return false;
}

std::string WebhookBody(const AlertRecord& a, const std::string& api_name, const std::string& link,
                        bool test) {
  Json evidence = Json::parse(a.evidence_json, nullptr, false);
  Json j = {{"type", test ? "test" : "alert"},
            {"alert",
             {{"id", a.id},
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
              {"evidence", evidence.is_discarded() ? Json::object() : evidence}}},
            {"url", link}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string WebhookSignature(const std::string& secret, const std::string& timestamp,
                             const std::string& body) {
  return "sha256=" + crypto::Hex(crypto::HmacSha256(secret, timestamp + "." + body));
}

std::string SlackBody(const AlertRecord& a, const std::string& api_name, const std::string& link,
                      bool test) {
  // Slack mrkdwn: &, < and > must be escaped in text.
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '&')
        o += "&amp;";
      else if (c == '<')
        o += "&lt;";
      else if (c == '>')
        o += "&gt;";
      else
        o += c;
    }
    return o;
  };
  std::string title = std::string(test ? "[test] " : "") + "[" + a.severity + "] " + a.detector +
                      " on " + ApiLabel(a, api_name);
  Json fields = Json::array();
  auto field = [&](const std::string& k, const std::string& v) {
    fields.push_back({{"type", "mrkdwn"}, {"text", "*" + k + "*\n" + esc(v)}});
  };
  field("Actor", a.actor);
  field("Endpoint", a.endpoint_template.empty() ? "-" : a.endpoint_template);
  field("Count", std::to_string(a.count));
  field("First seen", TimeText(a.first_seen));
  Json blocks = Json::array();
  blocks.push_back(
      {{"type", "header"}, {"text", {{"type", "plain_text"}, {"text", title.substr(0, 150)}}}});
  blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", esc(a.message)}}}});
  blocks.push_back({{"type", "section"}, {"fields", fields}});
  Json link_text = {{"type", "mrkdwn"},
                    {"text", "<" + link + "|Open alert " + std::to_string(a.id) + " in Boing>"}};
  blocks.push_back({{"type", "context"}, {"elements", Json::array({link_text})}});
  Json j = {{"text", title}, {"blocks", blocks}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string EmailSubject(const AlertRecord& a, const std::string& api_name, bool test) {
  std::string subject =
      NoControls(std::string(test ? "[Boing test] " : "[Boing] ") + "[" + a.severity + "] " +
                 a.detector + " on " + ApiLabel(a, api_name) + " from " + a.actor);
  if (subject.size() > 200) {
    size_t n = 200;
    while (n > 0 && (static_cast<unsigned char>(subject[n]) & 0xC0) == 0x80) --n;
    subject.resize(n);
  }
  return subject;
}

std::string EmailText(const AlertRecord& a, const std::string& api_name, const std::string& link) {
  std::string t;
  t += "Boing alert " + std::to_string(a.id) + "\n\n";
  t += a.message + "\n\n";
  t += "Severity:  " + a.severity + "\n";
  t += "Detector:  " + a.detector + "\n";
  t += "API:       " + ApiLabel(a, api_name) + "\n";
  t += "Actor:     " + a.actor + "\n";
  t += "Endpoint:  " + a.endpoint_template + "\n";
  t += "Count:     " + std::to_string(a.count) + "\n";
  t += "First seen: " + TimeText(a.first_seen) + "\n\n";
  t += "Open the alert: " + link + "\n";
  return t;
}

std::string EmailHtml(const AlertRecord& a, const std::string& api_name, const std::string& link) {
  std::string h = "<html><body>";
  h += "<h2>Boing alert " + std::to_string(a.id) + ": " + HtmlEscape(a.severity) + " " +
       HtmlEscape(a.detector) + "</h2>";
  h += "<p>" + HtmlEscape(a.message) + "</p><table>";
  auto row = [&](const char* k, const std::string& v) {
    h += std::string("<tr><th align=\"left\">") + k + "</th><td>" + HtmlEscape(v) + "</td></tr>";
  };
  row("Severity", a.severity);
  row("Detector", a.detector);
  row("API", ApiLabel(a, api_name));
  row("Actor", a.actor);
  row("Endpoint", a.endpoint_template);
  row("Count", std::to_string(a.count));
  row("First seen", TimeText(a.first_seen));
  h += "</table><p><a href=\"" + HtmlEscape(link) + "\">Open the alert in Boing</a></p>";
  h += "</body></html>";
  return h;
}

int64_t BackoffMillis(int base_ms, int attempt, std::mt19937_64& rng) {
  double d = static_cast<double>(base_ms) * std::pow(2.0, std::min(attempt - 1, 20));
  d = std::min(d, 3600.0 * 1000);
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  return static_cast<int64_t>(d * jitter(rng));
}

// --- Notifier ---------------------------------------------------------------------------------

Notifier::Notifier(Store& store, const crypto::MultiFernet& fernet, NotifySettings settings)
    : store_(store), fernet_(fernet), s_(std::move(settings)), rng_(std::random_device{}()) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  for (int i = 0; i < std::max(2, s_.workers); ++i) threads_.emplace_back([this] { Loop(); });
  intake_thread_ = std::thread([this] { IntakeLoop(); });
}

Notifier::~Notifier() { Stop(); }

void Notifier::Stop() {
  // First every alert taken in gets its deliveries recorded (pending ones are resumed at the next
  // start), then the senders stop.
  {
    std::lock_guard lock(intake_mu_);
    intake_stopping_ = true;
  }
  intake_cv_.notify_all();
  if (intake_thread_.joinable()) intake_thread_.join();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::optional<Json> Notifier::Config(const ChannelRecord& c) const {
  auto plain = fernet_.Decrypt(c.config_enc);
  if (!plain) return std::nullopt;
  Json j = Json::parse(*plain, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

void Notifier::Notify(const AlertRecord& a, const std::string& api_name, bool is_muted) {
  Intake in{a, api_name, is_muted};
  {
    std::lock_guard lock(intake_mu_);
    if (!intake_stopping_ && intake_.size() < s_.queue_max) {
      intake_.push_back(std::move(in));
      intake_cv_.notify_one();
      return;
    }
  }
  Record(store_.ListChannels(), in);
}

void Notifier::IntakeLoop() {
  std::vector<Intake> taken;
  std::unique_lock lock(intake_mu_);
  for (;;) {
    intake_cv_.wait(lock, [&] { return intake_stopping_ || !intake_.empty(); });
    if (intake_.empty()) return;  // stopping and drained
    taken.assign(std::make_move_iterator(intake_.begin()), std::make_move_iterator(intake_.end()));
    intake_.clear();
    lock.unlock();
    const std::vector<ChannelRecord> channels = store_.ListChannels();  // once per group
    for (const Intake& in : taken) Record(channels, in);
    taken.clear();
    lock.lock();
  }
}

void Notifier::Record(const std::vector<ChannelRecord>& channels, const Intake& in) {
  const AlertRecord& a = in.alert;
  const std::string& api_name = in.api_name;
  const bool is_muted = in.muted;
  const int64_t now = NowMs() / 1000;
  for (const auto& c : channels) {
    if (!ChannelRoutes(c, a)) continue;
    Job j;
    j.d.alert_id = a.id;
    j.d.channel_id = c.id;
    j.d.channel_name = c.name;
    j.d.kind = c.kind;
    j.d.status = is_muted ? "muted" : "pending";
    j.d.created_at = j.d.updated_at = now;
    auto config = is_muted ? std::optional<Json>(Json::object()) : Config(c);
    if (!config) {
      j.d.status = "failed";
      j.d.last_error = "channel configuration cannot be decrypted with ENCRYPTION_KEY";
    }
    Status st = store_.InsertDelivery(j.d);
    if (!st.ok) {
      log::Error("recording a delivery failed", {{"alert_id", a.id}, {"error", st.message}});
      continue;
    }
    if (is_muted) {
      ++muted;
      continue;
    }
    if (!config) {
      ++failed;
      continue;
    }
    j.alert = a;
    j.api_name = api_name;
    j.kind = c.kind;
    j.config = std::move(*config);
    j.due_ms = 0;
    DeliveryRecord d = j.d;
    if (!Enqueue(std::move(j))) {
      d.status = "failed";
      d.last_error = "delivery queue full (ALERT_DELIVERY_QUEUE_MAX)";
      store_.UpdateDelivery(d);
      ++queue_full;
      ++failed;
    }
  }
}

size_t Notifier::Resume(int64_t since, const std::function<std::string(int64_t api_id)>& api_name) {
  const int64_t now = NowMs() / 1000;
  Status st = store_.FailPendingDeliveries(
      since, now, "not resumed: the server restarted after ALERT_DELIVERY_RESUME_HOURS");
  if (!st.ok) log::Error("expiring old pending deliveries failed", {{"error", st.message}});
  size_t resumed = 0;
  std::unordered_map<int64_t, std::optional<ChannelRecord>> channels;
  for (DeliveryRecord& d : store_.ListPendingDeliveries(since, s_.queue_max)) {
    auto fail = [&](const char* why) {
      d.status = "failed";
      d.last_error = why;
      d.updated_at = now;
      if (Status u = store_.UpdateDelivery(d); !u.ok) {
        log::Error("updating a delivery failed", {{"error", u.message}});
      }
      ++failed;
    };
    auto alert = store_.GetAlert(d.alert_id);
    if (!alert) {
      fail("the alert no longer exists");
      continue;
    }
    auto [ch, inserted] = channels.try_emplace(d.channel_id);
    if (inserted) ch->second = store_.GetChannel(d.channel_id);
    if (!ch->second || !ch->second->enabled) {
      fail("the channel was deleted or disabled before the delivery could be resumed");
      continue;
    }
    auto config = Config(*ch->second);
    if (!config) {
      fail("channel configuration cannot be decrypted with ENCRYPTION_KEY");
      continue;
    }
    Job j;
    j.d = d;
    j.alert = std::move(*alert);
    j.api_name = api_name(j.alert.api_id);
    j.kind = ch->second->kind;
    j.config = std::move(*config);
    // A delivery that already failed waits one base backoff; one never attempted goes now.
    j.due_ms = d.attempts > 0 ? NowMs() + s_.backoff_ms : 0;
    if (!Enqueue(std::move(j))) {
      fail("delivery queue full (ALERT_DELIVERY_QUEUE_MAX)");
      ++queue_full;
      continue;
    }
    ++resumed;
  }
  return resumed;
}

bool Notifier::Test(const ChannelRecord& c) {
  auto config = Config(c);
  if (!config) return false;
  Job j;
  j.d.channel_id = c.id;
  j.d.channel_name = c.name;
  j.d.kind = c.kind;
  j.kind = c.kind;
  j.config = std::move(*config);
  j.alert.detector = "test";
  j.alert.severity = "info";
  j.alert.status = "open";
  j.alert.actor = "ip:192.0.2.1";
  j.alert.endpoint_template = "/test";
  j.alert.count = 1;
  j.alert.first_seen = j.alert.last_seen = static_cast<double>(NowMs()) / 1000;
  j.alert.message = "Test notification from Boing: channel '" + c.name + "' works.";
  return Enqueue(std::move(j));
}

bool Notifier::Enqueue(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || jobs_.size() >= s_.queue_max) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void Notifier::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return;
    // The earliest due job whose channel has no attempt in flight.
    const int64_t now = NowMs();
    size_t pick = jobs_.size();
    int64_t next_due = INT64_MAX;
    for (size_t i = 0; i < jobs_.size(); ++i) {
      if (busy_.count(jobs_[i].d.channel_id)) continue;
      if (jobs_[i].due_ms < next_due) {
        next_due = jobs_[i].due_ms;
        pick = i;
      }
    }
    if (pick == jobs_.size() || next_due > now) {
      if (next_due == INT64_MAX) {
        cv_.wait(lock);
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(next_due - now));
      }
      continue;
    }
    Job job = std::move(jobs_[pick]);
    jobs_.erase(jobs_.begin() + static_cast<ptrdiff_t>(pick));
    busy_.insert(job.d.channel_id);
    lock.unlock();

    std::string err = Attempt(job);
    ++job.d.attempts;
    job.d.updated_at = NowMs() / 1000;
    bool retry = false;
    if (err.empty()) {
      job.d.status = "sent";
      job.d.last_error.clear();
      ++sent;
    } else {
      job.d.last_error = err.substr(0, 1000);
      retry = job.d.attempts < s_.max_attempts;
      job.d.status = retry ? "pending" : "failed";
      (retry ? retried : failed)++;
      log::Warn("notification attempt failed", {{"channel", job.d.channel_name},
                                                {"kind", job.kind},
                                                {"alert_id", job.d.alert_id},
                                                {"attempt", job.d.attempts},
                                                {"error", job.d.last_error}});
    }
    if (job.d.id > 0) {
      Status st = store_.UpdateDelivery(job.d);
      if (!st.ok) log::Error("updating a delivery failed", {{"error", st.message}});
    }

    lock.lock();
    busy_.erase(job.d.channel_id);
    if (retry && !stopping_) {
      job.due_ms = NowMs() + BackoffMillis(s_.backoff_ms, job.d.attempts, rng_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }
}

std::string Notifier::Attempt(const Job& j) {
  std::string link = s_.public_url + "/alerts/" + std::to_string(j.alert.id);
  const bool test = j.d.id == 0;
  if (j.kind == "email") return SendEmail(j);
  if (j.kind == "webhook") {
    std::string body = WebhookBody(j.alert, j.api_name, link, test);
    std::string ts = std::to_string(NowMs() / 1000);
    std::vector<std::string> headers = {"Content-Type: application/json",
                                        "X-Boing-Timestamp: " + ts,
                                        "X-Boing-Delivery: " + std::to_string(j.d.id),
                                        "X-Boing-Attempt: " + std::to_string(j.d.attempts + 1)};
    std::string secret = j.config.value("secret", "");
    if (!secret.empty())
      headers.push_back("X-Boing-Signature: " + WebhookSignature(secret, ts, body));
    return Post(j.config.value("url", ""), body, headers);
  }
  if (j.kind == "slack") {
    return Post(j.config.value("url", ""), SlackBody(j.alert, j.api_name, link, test),
                {"Content-Type: application/json"});
  }
  return "unknown channel kind " + j.kind;
}

std::string Notifier::Post(const std::string& url, const std::string& body,
                           const std::vector<std::string>& headers) {
  CurlHandle c;
  if (!c.h) return "cannot create an HTTP client";
  // Resolve once, check the addresses, and pin the connection to them (no DNS rebinding between
  // the check and the connect).
  CURLU* u = curl_url();
  char *host = nullptr, *port = nullptr;
  std::string host_s, port_s;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    host_s = host;
    port_s = port;
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  if (host_s.empty()) return "the channel URL is not valid";
  std::string bare = host_s;
  if (bare.size() > 2 && bare.front() == '[') bare = bare.substr(1, bare.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(bare.c_str(), port_s.c_str(), &hints, &res) != 0 || !res) {
    return "cannot resolve " + host_s;
  }
  std::string addrs;
  bool refused = false;
  for (addrinfo* p = res; p; p = p->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* src =
        p->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr);
    if (!inet_ntop(p->ai_family, src, buf, sizeof buf)) continue;
    std::string ip = buf;
    if (!s_.allow_private_targets && IsPrivateAddress(ip)) refused = true;
    if (addrs.find(ip) != std::string::npos) continue;
    if (!addrs.empty()) addrs += ',';
    addrs += p->ai_family == AF_INET6 ? "[" + ip + "]" : ip;
  }
  freeaddrinfo(res);
  if (refused) {
    return host_s +
           " resolves to a private or loopback address (ALERT_ALLOW_PRIVATE_TARGETS=false)";
  }
  if (addrs.empty()) return "cannot resolve " + host_s;
  c.resolve = curl_slist_append(nullptr, (bare + ":" + port_s + ":" + addrs).c_str());
  for (const auto& h : headers) c.headers = curl_slist_append(c.headers, h.c_str());
  std::string reply;
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.h, CURLOPT_RESOLVE, c.resolve);
  curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);
  curl_easy_setopt(c.h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c.h, CURLOPT_TIMEOUT, static_cast<long>(s_.timeout_s));
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(s_.timeout_s));
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c.h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.h, CURLOPT_USERAGENT, "boing-server");
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, KeepHead);
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &reply);
  CURLcode rc = curl_easy_perform(c.h);
  if (rc != CURLE_OK) return std::string("HTTP request failed: ") + curl_easy_strerror(rc);
  long code = 0;
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code >= 300) {
    return "HTTP " + std::to_string(code) + (reply.empty() ? "" : ": " + HeaderSafe(reply, 200));
  }
  return "";
}

std::string Notifier::SendEmail(const Job& j) {
  if (s_.smtp_host.empty()) return "SMTP_HOST is not set";
  std::vector<std::string> rcpts;
  for (const auto& r : j.config.value("recipients", Json::array())) {
    if (r.is_string()) rcpts.push_back(r.get<std::string>());
  }
  if (rcpts.empty()) return "the channel has no recipients";
  std::string mode = s_.smtp_tls;
  if (mode == "auto") mode = s_.smtp_port == 465 ? "smtps" : "starttls";
  std::string url = (mode == "smtps" ? "smtps://" : "smtp://") + s_.smtp_host + ":" +
                    std::to_string(s_.smtp_port);
  const std::string link = s_.public_url + "/alerts/" + std::to_string(j.alert.id);
  const bool test = j.d.id == 0;

  CurlHandle c;
  if (!c.h) return "cannot create an SMTP client";
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  if (mode == "starttls") curl_easy_setopt(c.h, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  if (!s_.smtp_ca_file.empty()) curl_easy_setopt(c.h, CURLOPT_CAINFO, s_.smtp_ca_file.c_str());
  if (!s_.smtp_user.empty()) {
    curl_easy_setopt(c.h, CURLOPT_USERNAME, s_.smtp_user.c_str());
    curl_easy_setopt(c.h, CURLOPT_PASSWORD, s_.smtp_password.c_str());
  }
  std::string from = "<" + HeaderSafe(s_.email_from) + ">";
  curl_easy_setopt(c.h, CURLOPT_MAIL_FROM, from.c_str());
  std::string to_header = "To: ";
  for (size_t i = 0; i < rcpts.size(); ++i) {
    c.rcpt = curl_slist_append(c.rcpt, ("<" + rcpts[i] + ">").c_str());
    to_header += (i ? ", " : "") + rcpts[i];
  }
  curl_easy_setopt(c.h, CURLOPT_MAIL_RCPT, c.rcpt);

  char date[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S +0000", &tm);
  c.headers = curl_slist_append(c.headers, date);
  c.headers = curl_slist_append(c.headers, to_header.c_str());
  c.headers =
      curl_slist_append(c.headers, ("From: Boing <" + HeaderSafe(s_.email_from) + ">").c_str());
  c.headers = curl_slist_append(
      c.headers, ("Subject: " + EncodeHeader(EmailSubject(j.alert, j.api_name, test))).c_str());
  std::string domain = s_.email_from.substr(s_.email_from.find('@') + 1);
  c.headers =
      curl_slist_append(c.headers, ("Message-ID: <boing-alert-" + std::to_string(j.alert.id) + "-" +
                                    std::to_string(j.d.id) + "-" + crypto::RandomToken(8) + "@" +
                                    HeaderSafe(domain) + ">")
                                       .c_str());
  curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);

  // multipart/alternative: text, then HTML (the preferred part last).
  c.mime = curl_mime_init(c.h);
  curl_mime* alt = curl_mime_init(c.h);
  std::string text = EmailText(j.alert, j.api_name, link);
  std::string html = EmailHtml(j.alert, j.api_name, link);
  curl_mimepart* part = curl_mime_addpart(alt);
  curl_mime_data(part, text.data(), text.size());
  curl_mime_type(part, "text/plain; charset=utf-8");
  curl_mime_encoder(part, "quoted-printable");
  part = curl_mime_addpart(alt);
  curl_mime_data(part, html.data(), html.size());
  curl_mime_type(part, "text/html; charset=utf-8");
  curl_mime_encoder(part, "quoted-printable");
  part = curl_mime_addpart(c.mime);
  curl_mime_subparts(part, alt);
  curl_mime_type(part, "multipart/alternative");
  curl_slist* part_headers = curl_slist_append(nullptr, "Content-Disposition: inline");
  curl_mime_headers(part, part_headers, 1);
  curl_easy_setopt(c.h, CURLOPT_MIMEPOST, c.mime);

  curl_easy_setopt(c.h, CURLOPT_TIMEOUT, static_cast<long>(s_.timeout_s));
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(s_.timeout_s));
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c.h);
  if (rc != CURLE_OK) return std::string("SMTP failed: ") + curl_easy_strerror(rc);
  return "";
}

}  // namespace boing
