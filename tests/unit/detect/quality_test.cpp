// Payload detection quality on the HttpParams dataset (tests/data/http-params, MIT): every value
// goes through Pipeline::ProcessValue (what `boing-server analyze --values` runs). Rows are split
// by position: even rows are the development half the signatures were tuned on, odd rows a
// held-out half looked at only for these figures. Prints recall per class and the false-positive
// rate on benign values for both halves; asserts the held-out figures.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "boing/csv.h"
#include "boing/detect/classifier.h"
#include "boing/detect/pipeline.h"
#include "boing/url.h"

namespace boing::detect {
namespace {

std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  csv::Reader reader(in);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  while (reader.Next(row)) rows.push_back(row);
  EXPECT_EQ(reader.error(), "") << path << ":" << reader.line();
  return rows;
}

// The payload classifier built with the server (nullptr, with the reason printed, when absent).
std::shared_ptr<const PayloadClassifier> ShippedModel() {
  std::string error;
  auto model = PayloadClassifier::Load(BOING_PAYLOAD_MODEL, &error);
  EXPECT_TRUE(model) << error;
  return model;
}

struct Tally {
  int total = 0, detected = 0, own_class = 0;
};

TEST(PayloadQuality, HttpParamsRecallAndFalsePositives) {
  auto rows = ReadCsv(BOING_HTTP_PARAMS_CSV);
  ASSERT_GT(rows.size(), 20000u);
  ASSERT_EQ(rows[0][0], "payload");
  Pipeline p;
  std::map<std::string, Tally> halves[2];
  std::vector<Finding> out;
  std::vector<std::string> missed_dev, fp_dev;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    ASSERT_EQ(r.size(), 4u) << "row " << i;
    std::string cls = r[2] == "path-traversal" ? "path_traversal" : r[2];
    out.clear();
    p.ProcessValue(r[0], out);
    Tally& t = halves[i % 2][cls];
    ++t.total;
    if (!out.empty()) ++t.detected;
    for (const auto& f : out) {
      if (f.detector == cls) ++t.own_class;
    }
    if (i % 2 == 0 && cls != "norm" && out.empty() && missed_dev.size() < 400)
      missed_dev.push_back(cls + " " + r[0]);
    if (i % 2 == 0 && cls == "norm" && !out.empty() && fp_dev.size() < 100) {
      fp_dev.push_back(out[0].detector + " " + out[0].evidence.value("rule", "") + " " + r[0]);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("values/s: %.0f (%zu values)\n", static_cast<double>(rows.size() - 1) / secs,
              rows.size() - 1);
  const char* names[2] = {"development (even rows)", "held-out (odd rows)"};
  for (int h : {1, 0}) {
    std::printf("%s:\n", names[h]);
    for (const auto& [cls, t] : halves[h]) {
      if (cls == "norm") {
        std::printf("  benign          %5d values, false positives %d (%.3f%%)\n", t.total,
                    t.detected, 100.0 * t.detected / t.total);
      } else {
        std::printf("  %-15s %5d values, recall %.2f%% (as its own class %.2f%%)\n", cls.c_str(),
                    t.total, 100.0 * t.detected / t.total, 100.0 * t.own_class / t.total);
      }
    }
  }
  if (std::getenv("BOING_QUALITY_VERBOSE")) {
    for (const auto& m : missed_dev) std::printf("missed: %s\n", m.c_str());
    for (const auto& m : fp_dev) std::printf("false positive: %s\n", m.c_str());
  }
  auto& held = halves[1];
  auto recall = [&](const char* c) {
    return static_cast<double>(held[c].detected) / held[c].total;
  };
  // Held-out figures measured when the signatures were written (bench/detect/README.md), less a
  // small margin: a regression of a rule or of the normaliser fails here.
  EXPECT_GE(recall("sqli"), 0.995);
  EXPECT_GE(recall("xss"), 0.94);
  EXPECT_GE(recall("path_traversal"), 0.78);
  EXPECT_GE(recall("cmdi"), 0.83);  // 86.67% since the netstat / exec_call / `false` rules
  EXPECT_LE(static_cast<double>(held["norm"].detected) / held["norm"].total, 0.001);
}

// The payload classifier shipped with the server (trained at build time by `boing-server train
// --rows even`, so on the even rows only) on the odd rows, which training never saw: alone, and
// combined with the signature and tokenizer detectors (the pipeline as it runs).
TEST(PayloadQuality, ClassifierOnHeldOutRows) {
  std::shared_ptr<const PayloadClassifier> model = ShippedModel();
  ASSERT_TRUE(model);
  auto rows = ReadCsv(BOING_HTTP_PARAMS_CSV);
  ASSERT_GT(rows.size(), 20000u);
  Pipeline p;
  p.SetPayloadClassifier(model);
  struct Counts {
    int total = 0, rules = 0, ml = 0, combined = 0;
  };
  std::map<std::string, Counts> held;
  std::vector<Finding> out;
  std::vector<std::string> notes;
  for (size_t i = 1; i < rows.size(); i += 2) {  // odd data rows only
    const auto& r = rows[i];
    ASSERT_EQ(r.size(), 4u) << "row " << i;
    std::string cls = r[2] == "path-traversal" ? "path_traversal" : r[2];
    out.clear();
    p.ProcessValue(r[0], out);
    bool ml = false, rules = false;
    for (const auto& f : out) (f.detector == "payload_classifier" ? ml : rules) = true;
    Counts& c = held[cls];
    ++c.total;
    c.rules += rules;
    c.ml += ml;
    c.combined += ml || rules;
    if (std::getenv("BOING_QUALITY_VERBOSE") && (cls == "norm") == (ml || rules)) {
      notes.push_back(cls + (ml || rules ? " flagged: " : " missed: ") + r[0]);
    }
  }
  // Speed of the classifier alone (normalisation, features and the model).
  auto t0 = std::chrono::steady_clock::now();
  double sink = 0;
  size_t n = 0;
  for (size_t i = 1; i < rows.size(); ++i, ++n)
    sink += model->PredictRaw(rows[i][0]).attack_probability;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("classifier alone: %.0f values/s (%zu values, %zu features, sum %.1f)\n",
              static_cast<double>(n) / secs, n, model->FeatureCount(), sink);
  std::printf("held-out (odd rows): class, values, rules, classifier, combined\n");
  for (const auto& [cls, c] : held) {
    std::printf("  %-15s %5d  %7.3f%%  %7.3f%%  %7.3f%%\n", cls.c_str(), c.total,
                100.0 * c.rules / c.total, 100.0 * c.ml / c.total, 100.0 * c.combined / c.total);
  }
  for (const auto& s : notes) std::printf("%s\n", s.c_str());
  auto rate = [&](const char* cls, int Counts::*m) {
    return static_cast<double>(held[cls].*m) / held[cls].total;
  };
  // Figures measured when the classifier was trained (docs/benchmarks.md), less a small margin.
  EXPECT_GE(rate("sqli", &Counts::ml), 0.995);
  EXPECT_GE(rate("xss", &Counts::ml), 0.94);
  EXPECT_GE(rate("path_traversal", &Counts::ml), 0.97);
  EXPECT_GE(rate("cmdi", &Counts::ml), 0.73);
  EXPECT_LE(rate("norm", &Counts::ml), 0.001);
  // Combined with the rules: the targets.
  EXPECT_GE(rate("sqli", &Counts::combined), 0.99);
  EXPECT_GE(rate("xss", &Counts::combined), 0.97);
  EXPECT_LE(rate("norm", &Counts::combined), 0.001);
}

// The scan memo (PipelineLimits::scan_memo_entries) reuses the verdict on a value seen before; it
// must never change a finding. Every dataset value, attack or benign, in the path, the query, a
// header and a JSON body, each event sent twice, through the payload classifier too: the findings
// with the memo, with a two-entry memo (constant collisions and replacements) and without it are
// the same, field by field.
TEST(PayloadQuality, ScanMemoNeverChangesAFinding) {
  std::shared_ptr<const PayloadClassifier> model = ShippedModel();
  ASSERT_TRUE(model);
  auto rows = ReadCsv(BOING_HTTP_PARAMS_CSV);
  ASSERT_GT(rows.size(), 20000u);
  PipelineLimits off, tiny;
  off.scan_memo_entries = 0;
  tiny.scan_memo_entries = 2;
  Pipeline with_memo, with_tiny(tiny), without(off);
  for (Pipeline* p : {&with_memo, &with_tiny, &without}) p->SetPayloadClassifier(model);
  auto dump = [](const std::vector<Finding>& f) {
    std::string s;
    for (const auto& x : f) {
      s += x.detector + "|" + std::to_string(static_cast<int>(x.severity)) + "|" +
           std::to_string(x.score) + "|" + x.actor + "|" + x.message + "|" + x.evidence.dump() +
           "\n";
    }
    return s;
  };
  size_t events = 0, with_findings = 0;
  for (size_t i = 1; i < rows.size(); i += 3) {
    const std::string& v = rows[i][0];
    for (int repeat = 0; repeat < 2; ++repeat) {
      Event e;
      e.api_id = 1;
      e.timestamp = 1000 + static_cast<double>(events) * 0.01;
      e.method = "POST";
      e.client_ip = "198.51.100." + std::to_string(events % 200);
      e.endpoint = "/items/" + PercentEncode(v.substr(0, 40)) + "?q=" + PercentEncode(v) +
                   "&page=" + std::to_string(repeat);
      e.status_code = 200;
      e.latency_ms = 20;
      e.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0";
      e.headers = {{"Content-Type", "application/json"}, {"X-Search", v}};
      e.payload = nlohmann::json({{"comment", v}, {"n", repeat}}).dump();
      std::vector<Finding> a, b, c;
      with_memo.Process(e, a);
      with_tiny.Process(e, b);
      without.Process(e, c);
      ASSERT_EQ(dump(a), dump(c)) << "value: " << v;
      ASSERT_EQ(dump(b), dump(c)) << "value: " << v;
      ++events;
      with_findings += !c.empty();
    }
  }
  EXPECT_GT(with_findings, events / 4) << "too few attacks to compare";
  EXPECT_GT(with_memo.Counters().scan_memo_hits, events);
  EXPECT_EQ(without.Counters().scan_memo_hits, 0u);
  std::printf("scan memo: %zu events (%zu with findings), %llu values reused\n", events,
              with_findings, static_cast<unsigned long long>(with_memo.Counters().scan_memo_hits));
}

}  // namespace
}  // namespace boing::detect
