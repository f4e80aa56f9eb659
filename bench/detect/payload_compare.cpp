// Payload detection side by side: Boing's pipeline and ModSecurity v3 + OWASP CRS 3.3.4 at paranoia
// level 1 judge the same HTTP requests, one per labelled value of the HttpParams CSV.
//
// Each value becomes the value of one parameter `q`, percent-encoded (every byte outside
// [A-Za-z0-9-._~]) so that the decoded parameter is the value byte for byte:
//   query mode: GET /search?q=<value> HTTP/1.1
//   body mode:  POST /search HTTP/1.1, application/x-www-form-urlencoded, body q=<value>
// with the same Host, User-Agent, Accept and client address for both engines.
//
//   --engine boing: Pipeline::Process on the request as an event, with the detectors that judge a
//     request on its own (sqli, xss, path_traversal, cmdi, ldapi, nosqli, malformed and, given
//     --model, payload_classifier); the stateful ones (rates, brute force, statistics, ml windows)
//     are off, as one client sending 10,000 requests would otherwise trip them. Detected = any
//     finding. Without --model it reports as "boing-rules" (signatures and tokenizers only).
//   --engine crs: libmodsecurity with the settings of modsecurity.conf-recommended (SecRuleEngine
//     On, request body access, body limits, the request-body parse-error rules), audit and debug
//     logs off, CRS's crs-setup.conf with paranoia level 1 and inbound anomaly threshold 5 (CRS's
//     defaults, set explicitly), then every rules/*.conf in name order. Detected = a disruptive
//     intervention (rule 949110 denies when the inbound anomaly score reaches 5; 920/921 protocol
//     rules count too).
//
// --rows odd (default) takes the odd data rows: the half Boing's signatures were not tuned on and
// its classifier was not trained on (tests/unit/detect/quality_test.cpp uses the same split).
// Prints one `result` line per class and a `speed` line (values/s over the engine calls only; run
// it pinned to one core). --show-misses N prints up to N missed values per class and N false
// positives to stdout, for reading, never to a file.
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "boing/csv.h"
#include "boing/detect/classifier.h"
#include "boing/detect/pipeline.h"
#include "boing/url.h"

// In C++ the library's C API (msc_*) and its types live in namespace modsecurity.
using namespace modsecurity;  // NOLINT(google-build-using-namespace)

namespace {

struct Options {
  std::string engine, csv, mode = "query", rows = "odd", model;
  std::string crs_setup = "/etc/modsecurity/crs/crs-setup.conf";
  std::string crs_rules = "/usr/share/modsecurity-crs/rules";
  int show_misses = 0;
};

struct Sample {
  std::string cls, value, encoded;
};

constexpr const char* kHost = "shop.example.com";
constexpr const char* kUserAgent =
    "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0";
constexpr const char* kAccept = "text/html,application/xhtml+xml,*/*;q=0.8";
constexpr const char* kClientIp = "198.51.100.7";
constexpr const char* kFormType = "application/x-www-form-urlencoded";

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "payload_compare: %s\nusage: payload_compare --engine boing|crs --csv FILE "
               "[--mode query|body] [--rows odd|even|all] [--model FILE] [--crs-setup FILE] "
               "[--crs-rules DIR] [--show-misses N]\n",
               why);
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    if (a == "--engine")
      o.engine = v;
    else if (a == "--csv")
      o.csv = v;
    else if (a == "--mode")
      o.mode = v;
    else if (a == "--rows")
      o.rows = v;
    else if (a == "--model")
      o.model = v;
    else if (a == "--crs-setup")
      o.crs_setup = v;
    else if (a == "--crs-rules")
      o.crs_rules = v;
    else if (a == "--show-misses")
      o.show_misses = std::atoi(v.c_str());
    else
      Usage(("unknown option " + a).c_str());
  }
  if (o.engine != "boing" && o.engine != "crs") Usage("--engine must be boing or crs");
  if (o.csv.empty()) Usage("--csv is required");
  if (o.mode != "query" && o.mode != "body") Usage("--mode must be query or body");
  if (o.rows != "odd" && o.rows != "even" && o.rows != "all") Usage("--rows must be odd|even|all");
  return o;
}

std::vector<Sample> ReadSamples(const Options& o) {
  std::ifstream in(o.csv, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "payload_compare: cannot open %s\n", o.csv.c_str());
    std::exit(1);
  }
  boing::csv::Reader reader(in);
  std::vector<std::string> row;
  std::vector<Sample> out;
  size_t i = 0;
  while (reader.Next(row)) {
    if (i++ == 0) {
      if (row.empty() || row[0] != "payload") {
        std::fprintf(stderr, "payload_compare: %s:1: expected the header payload,...\n",
                     o.csv.c_str());
        std::exit(1);
      }
      continue;
    }
    size_t data_row = i - 1;  // 1-based data row, as in quality_test.cpp
    if (row.size() != 4) {
      std::fprintf(stderr, "payload_compare: %s:%zu: expected 4 fields, got %zu\n", o.csv.c_str(),
                   reader.line(), row.size());
      std::exit(1);
    }
    bool odd = data_row % 2 == 1;
    if ((o.rows == "odd" && !odd) || (o.rows == "even" && odd)) continue;
    std::string cls = row[2] == "path-traversal" ? "path_traversal" : row[2];
    out.push_back({cls, row[0], boing::PercentEncode(row[0])});
  }
  if (!reader.error().empty()) {
    std::fprintf(stderr, "payload_compare: %s:%zu: %s\n", o.csv.c_str(), reader.line(),
                 reader.error().c_str());
    std::exit(1);
  }
  return out;
}

// --- Boing -------------------------------------------------------------------------------------

class BoingEngine {
 public:
  explicit BoingEngine(const Options& o) {
    std::vector<boing::detect::DetectorSettings> settings;
    const std::vector<std::string> per_request = {
        "sqli",  "xss",    "path_traversal", "cmdi",
        "ldapi", "nosqli", "malformed",      "payload_classifier"};
    for (const auto& id : boing::detect::ImplementedDetectors()) {
      boing::detect::DetectorSettings s;
      s.id = id;
      s.enabled = std::find(per_request.begin(), per_request.end(), id) != per_request.end();
      settings.push_back(s);
    }
    pipeline_.Configure(settings);
    if (!o.model.empty()) {
      std::string error;
      auto model = boing::detect::PayloadClassifier::Load(o.model, &error);
      if (!model) {
        std::fprintf(stderr, "payload_compare: %s: %s\n", o.model.c_str(), error.c_str());
        std::exit(1);
      }
      pipeline_.SetPayloadClassifier(std::move(model));
    }
    body_ = o.mode == "body";
  }
  void Prepare(const std::vector<Sample>& samples) {
    events_.reserve(samples.size());
    double ts = 1.7e9;
    for (const auto& s : samples) {
      boing::Event e;
      e.api_id = 1;
      e.timestamp = (ts += 0.001);
      e.method = body_ ? "POST" : "GET";
      e.endpoint = "/search";
      e.client_ip = kClientIp;
      e.status_code = 200;
      e.host = kHost;
      e.user_agent = kUserAgent;
      e.headers = {{"Host", kHost}, {"User-Agent", kUserAgent}, {"Accept", kAccept}};
      if (body_) {
        e.payload = "q=" + s.encoded;
        e.body_size = static_cast<int64_t>(e.payload.size());
        e.headers.emplace_back("Content-Type", kFormType);
        e.headers.emplace_back("Content-Length", std::to_string(e.payload.size()));
      } else {
        e.query = "q=" + s.encoded;
      }
      events_.push_back(std::move(e));
    }
  }
  bool Detect(size_t i, std::string* why) {
    out_.clear();
    pipeline_.Process(events_[i], out_);
    if (why && !out_.empty()) *why = out_[0].detector;
    return !out_.empty();
  }

 private:
  boing::detect::Pipeline pipeline_;
  std::vector<boing::Event> events_;
  std::vector<boing::detect::Finding> out_;
  bool body_ = false;
};

// --- ModSecurity + CRS -------------------------------------------------------------------------

// The request-handling settings of ModSecurity's modsecurity.conf-recommended (v3), with the
// audit and debug logs off (a benchmark writes no logs; both are slower with them) and no
// unicode.mapping (Debian does not ship it).
constexpr const char* kRecommended = R"(
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRequestBodyJsonDepthLimit 512
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecRule TX:/^MSC_/ "!@streq 0" "id:200005,phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'"
SecResponseBodyAccess Off
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
SecStatusEngine Off
)";

// CRS's documented knobs (crs-setup.conf leaves them commented out): paranoia level 1 and the
// inbound anomaly threshold 5, CRS's defaults, stated rather than implied.
constexpr const char* kCrsLevel = R"(
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"
SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4"
)";

class CrsEngine {
 public:
  explicit CrsEngine(const Options& o) : body_(o.mode == "body") {
    msc_ = msc_init();
    msc_set_connector_info(msc_, "boing payload_compare");
    // A server would log each rule match; here the messages are dropped (without a callback the
    // library prints a notice per match).
    msc_set_log_cb(msc_, [](void*, const void*) {});
    rules_ = msc_create_rules_set();
    Add(kRecommended, "modsecurity.conf-recommended settings");
    AddFile(o.crs_setup);
    Add(kCrsLevel, "paranoia level / anomaly threshold");
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(o.crs_rules, ec)) {
      if (entry.path().extension() == ".conf") files.push_back(entry.path().string());
    }
    if (ec || files.empty()) {
      std::fprintf(stderr, "payload_compare: no CRS rules (*.conf) in %s\n", o.crs_rules.c_str());
      std::exit(1);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) rule_count_ += AddFile(f);
    std::fprintf(stderr, "crs: %s, %zu rule files, %d rules\n", msc_who_am_i(msc_), files.size(),
                 rule_count_);
  }
  ~CrsEngine() {
    msc_rules_cleanup(rules_);
    msc_cleanup(msc_);
  }
  void Prepare(const std::vector<Sample>& samples) {
    targets_.reserve(samples.size());
    for (const auto& s : samples) {
      targets_.push_back(body_ ? "/search" : "/search?q=" + s.encoded);
      if (body_) bodies_.push_back("q=" + s.encoded);
    }
  }
  bool Detect(size_t i, std::string* why) {
    Transaction* t = msc_new_transaction(msc_, rules_, nullptr);
    msc_process_connection(t, kClientIp, 40000, "127.0.0.1", 80);
    msc_process_uri(t, targets_[i].c_str(), body_ ? "POST" : "GET", "1.1");
    Header(t, "Host", kHost);
    Header(t, "User-Agent", kUserAgent);
    Header(t, "Accept", kAccept);
    if (body_) {
      Header(t, "Content-Type", kFormType);
      Header(t, "Content-Length", std::to_string(bodies_[i].size()));
    }
    msc_process_request_headers(t);
    if (body_) {
      msc_append_request_body(t, reinterpret_cast<const unsigned char*>(bodies_[i].data()),
                              bodies_[i].size());
    }
    msc_process_request_body(t);
    ModSecurityIntervention it;
    it.status = 200;
    it.pause = 0;
    it.url = nullptr;
    it.log = nullptr;
    it.disruptive = 0;
    bool blocked = msc_intervention(t, &it) != 0 && it.disruptive;
    if (why && blocked) *why = "status " + std::to_string(it.status);
    std::free(it.url);
    std::free(it.log);
    msc_process_logging(t);
    msc_transaction_cleanup(t);
    return blocked;
  }

 private:
  static void Header(Transaction* t, const char* k, const std::string& v) {
    msc_add_n_request_header(t, reinterpret_cast<const unsigned char*>(k), std::strlen(k),
                             reinterpret_cast<const unsigned char*>(v.data()), v.size());
  }
  void Add(const char* text, const char* what) {
    const char* error = nullptr;
    if (msc_rules_add(rules_, text, &error) < 0) {
      std::fprintf(stderr, "payload_compare: %s: %s\n", what, error ? error : "error");
      std::exit(1);
    }
  }
  int AddFile(const std::string& path) {
    const char* error = nullptr;
    int n = msc_rules_add_file(rules_, path.c_str(), &error);
    if (n < 0) {
      std::fprintf(stderr, "payload_compare: %s: %s\n", path.c_str(), error ? error : "error");
      std::exit(1);
    }
    return n;
  }

  ModSecurity* msc_ = nullptr;
  RulesSet* rules_ = nullptr;
  int rule_count_ = 0;
  bool body_ = false;
  std::vector<std::string> targets_, bodies_;
};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Tally {
  int total = 0, detected = 0;
  std::vector<std::string> shown;
};

template <class Engine>
int Run(Engine& engine, const Options& o, const std::vector<Sample>& samples) {
  engine.Prepare(samples);
  std::vector<char> detected(samples.size());
  // Wall time and this thread's CPU time: on a shared machine the second is the one to compare.
  auto t0 = std::chrono::steady_clock::now();
  double c0 = ThreadCpuSeconds();
  for (size_t i = 0; i < samples.size(); ++i) detected[i] = engine.Detect(i, nullptr);
  double cpu = ThreadCpuSeconds() - c0;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // "boing-rules": Boing without a classifier model (signatures and tokenizers only).
  const std::string label = o.engine == "boing" && o.model.empty() ? "boing-rules" : o.engine;
  std::map<std::string, Tally> tally;
  for (size_t i = 0; i < samples.size(); ++i) {
    Tally& t = tally[samples[i].cls];
    ++t.total;
    t.detected += detected[i];
    bool wrong = (samples[i].cls == "norm") == static_cast<bool>(detected[i]);
    if (wrong && static_cast<int>(t.shown.size()) < o.show_misses) {
      std::string why;
      if (detected[i]) engine.Detect(i, &why);  // runs again only for the few shown
      t.shown.push_back(why.empty() ? samples[i].value : why + ": " + samples[i].value);
    }
  }
  for (const auto& [cls, t] : tally) {
    std::printf("result engine=%s mode=%s rows=%s class=%s values=%d detected=%d\n", label.c_str(),
                o.mode.c_str(), o.rows.c_str(), cls.c_str(), t.total, t.detected);
  }
  const double n = static_cast<double>(samples.size());
  std::printf(
      "speed engine=%s mode=%s values=%zu seconds=%.4f cpu_seconds=%.4f values_per_s=%.0f "
      "values_per_cpu_s=%.0f\n",
      label.c_str(), o.mode.c_str(), samples.size(), secs, cpu, n / secs, n / cpu);
  for (const auto& [cls, t] : tally) {
    for (const auto& s : t.shown) {
      std::printf("%s %s %s\n", label.c_str(),
                  cls == "norm" ? "false-positive" : ("missed-" + cls).c_str(), s.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  std::vector<Sample> samples = ReadSamples(o);
  if (o.engine == "boing") {
    BoingEngine e(o);
    return Run(e, o, samples);
  }
  CrsEngine e(o);
  return Run(e, o, samples);
}
