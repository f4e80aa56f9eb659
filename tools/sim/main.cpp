// boing-sim: replays benign and abusive API traffic as events, to stdout (NDJSON, the ingest
// format: pipe it into `boing-server analyze`) or into a running server's /api/ingest/batch.
#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "sim.h"

namespace {

const char* kUsage = R"(usage: boing-sim [options]
  --scenario LIST   abusive scenarios mixed into the background, comma-separated, or "all"
                    (see --list); default none
  --events N        benign background events (default 10000; 0: the scenarios alone)
  --rate R          background events per simulated second (default 20)
  --users N         distinct benign callers (default 2000)
  --seed S          random seed (default 1): the same seed gives the same events
  --start UNIX      timestamp of the first event (default: so that the run ends now)
  --realtime        send each event when its time comes, stamped with the current time
  --out FILE        write NDJSON events to FILE ("-": stdout, the default without --server)
  --labels FILE     write each event's scenario name ("benign" for the background) to FILE,
                    one line per event in the same order: ground truth for evaluations
  --server URL      send to URL/api/ingest/batch (needs --api-key)
  --api-key KEY     the monitored API's ingest key (or BOING_API_KEY)
  --batch N         events per request (default 500)
  --list            print the scenarios and the detector each should trigger, as JSON
A summary line (JSON) goes to stderr at the end.
)";

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct Sender {
  CURL* curl = nullptr;
  std::string url, key_header;
  uint64_t accepted = 0, duplicates = 0, rejected = 0, requests = 0, retries = 0;
  std::string first_rejection;

  Sender(const std::string& server, const std::string& key) {
    curl = curl_easy_init();
    url = server;
    while (!url.empty() && url.back() == '/') url.pop_back();
    url += "/api/ingest/batch";
    key_header = "X-Api-Key: " + key;
  }
  ~Sender() { curl_easy_cleanup(curl); }

  // Sends one NDJSON batch; retries 429/5xx/network errors with backoff. False on a fatal error.
  bool Send(const std::string& body, size_t count, std::string* error) {
    for (int attempt = 0;; ++attempt) {
      std::string answer;
      curl_slist* headers = nullptr;
      headers = curl_slist_append(headers, key_header.c_str());
      headers = curl_slist_append(headers, "Content-Type: application/x-ndjson");
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
      curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
      CURLcode rc = curl_easy_perform(curl);
      curl_slist_free_all(headers);
      long status = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      ++requests;
      if (rc == CURLE_OK && status == 200) {
        auto j = nlohmann::json::parse(answer, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          *error = "unreadable answer from the server: " + answer.substr(0, 200);
          return false;
        }
        accepted += j.value("accepted", 0ull);
        duplicates += j.value("duplicates", 0ull);
        uint64_t rej = j.value("rejected", 0ull);
        rejected += rej;
        if (rej && first_rejection.empty() && j.contains("results")) {
          for (const auto& r : j["results"]) {
            if (r.value("status", "") == "rejected") {
              first_rejection = r.dump();
              break;
            }
          }
        }
        (void)count;
        return true;
      }
      bool retry = rc != CURLE_OK || status == 429 || status >= 500;
      if (!retry || attempt >= 8) {
        *error = rc != CURLE_OK
                     ? std::string("request failed: ") + curl_easy_strerror(rc)
                     : "server answered " + std::to_string(status) + ": " + answer.substr(0, 300);
        return false;
      }
      ++retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << std::min(attempt, 6)));
    }
  }
};

bool ParseNumber(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return end && *end == '\0' && end != text && std::isfinite(out) && out >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  using boing::sim::SimOptions;
  SimOptions o;
  bool realtime = false, start_given = false;
  std::string out_path, labels_path, server, api_key;
  if (const char* k = std::getenv("BOING_API_KEY")) api_key = k;
  size_t batch = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](double& v) {
      if (i + 1 >= argc || !ParseNumber(argv[i + 1], v)) {
        std::fprintf(stderr, "boing-sim: %s needs a non-negative number\n", a.c_str());
        std::exit(2);
      }
      ++i;
    };
    auto text = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "boing-sim: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    double v = 0;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--list") {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& s : boing::sim::Scenarios())
        list.push_back({{"name", s.name},
                        {"description", s.description},
                        {"expected_detector", s.expected_detector}});
      std::cout << list.dump(2) << "\n";
      return 0;
    } else if (a == "--scenario") {
      std::string list = text();
      if (list == "all") {
        for (const auto& s : boing::sim::Scenarios()) o.scenarios.push_back(s.name);
      } else {
        std::stringstream ss(list);
        for (std::string item; std::getline(ss, item, ',');)
          if (!item.empty()) o.scenarios.push_back(item);
      }
    } else if (a == "--events") {
      value(v);
      o.benign_events = static_cast<uint64_t>(v);
    } else if (a == "--rate") {
      value(v);
      if (v <= 0) {
        std::fprintf(stderr, "boing-sim: --rate must be positive\n");
        return 2;
      }
      o.rate = v;
    } else if (a == "--users") {
      value(v);
      if (v < 1 || v > 10'000'000) {
        std::fprintf(stderr, "boing-sim: --users must be 1..10000000\n");
        return 2;
      }
      o.users = static_cast<size_t>(v);
    } else if (a == "--seed") {
      value(v);
      o.seed = static_cast<uint64_t>(v);
    } else if (a == "--start") {
      value(v);
      o.start = v;
      start_given = true;
    } else if (a == "--realtime") {
      realtime = true;
    } else if (a == "--out") {
      out_path = text();
    } else if (a == "--labels") {
      labels_path = text();
    } else if (a == "--server") {
      server = text();
    } else if (a == "--api-key") {
      api_key = text();
    } else if (a == "--batch") {
      value(v);
      if (v < 1 || v > 100000) {
        std::fprintf(stderr, "boing-sim: --batch must be 1..100000\n");
        return 2;
      }
      batch = static_cast<size_t>(v);
    } else {
      std::fprintf(stderr, "boing-sim: unknown option %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (!server.empty() && api_key.empty()) {
    std::fprintf(stderr, "boing-sim: --server needs --api-key (or BOING_API_KEY)\n");
    return 2;
  }
  if (server.empty() && out_path.empty()) out_path = "-";

  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!start_given) {
    o.start = now - (o.rate > 0 ? o.benign_events / o.rate : 0);
    if (realtime) o.start = now;
  }

  std::unique_ptr<boing::sim::Simulator> sim;
  try {
    sim = std::make_unique<boing::sim::Simulator>(o);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "boing-sim: %s (see --list)\n", e.what());
    return 2;
  }

  std::ofstream file;
  std::ostream* out = nullptr;
  if (out_path == "-") {
    out = &std::cout;
  } else if (!out_path.empty()) {
    file.open(out_path, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::fprintf(stderr, "boing-sim: cannot write %s\n", out_path.c_str());
      return 1;
    }
    out = &file;
  }
  std::ofstream labels;
  if (!labels_path.empty()) {
    labels.open(labels_path, std::ios::trunc);
    if (!labels) {
      std::fprintf(stderr, "boing-sim: cannot write %s\n", labels_path.c_str());
      return 1;
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::unique_ptr<Sender> sender;
  if (!server.empty()) sender = std::make_unique<Sender>(server, api_key);

  auto t0 = std::chrono::steady_clock::now();
  uint64_t events = 0;
  std::string pending;
  size_t in_batch = 0;
  std::string error;
  auto flush = [&]() {
    if (!sender || in_batch == 0) return true;
    bool ok = sender->Send(pending, in_batch, &error);
    pending.clear();
    in_batch = 0;
    return ok;
  };
  bool ok = true;
  std::string label;
  while (auto e = sim->Next(&label)) {
    if (labels.is_open()) labels << label << '\n';
    if (realtime) {
      double wait = e->timestamp - std::chrono::duration<double>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
      if (wait > 0) {
        if (!(ok = flush())) break;
        std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      }
    }
    std::string line = boing::EventToJson(*e);
    line += '\n';
    if (out) out->write(line.data(), static_cast<std::streamsize>(line.size()));
    if (sender) {
      pending += line;
      if (++in_batch >= batch && !(ok = flush())) break;
    }
    ++events;
  }
  if (ok) ok = flush();
  if (out) out->flush();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json summary = {{"events", events},
                            {"simulated_seconds", sim->duration()},
                            {"seconds", secs},
                            {"events_per_second", secs > 0 ? events / secs : 0.0}};
  if (sender) {
    summary["accepted"] = sender->accepted;
    summary["duplicates"] = sender->duplicates;
    summary["rejected"] = sender->rejected;
    summary["requests"] = sender->requests;
    summary["retries"] = sender->retries;
    if (!sender->first_rejection.empty()) summary["first_rejection"] = sender->first_rejection;
  }
  if (!ok) summary["error"] = error;
  std::cerr << summary.dump() << "\n";
  bool rejected = sender && sender->rejected > 0;
  sender.reset();
  curl_global_cleanup();
  return ok && !rejected ? 0 : 1;
}
