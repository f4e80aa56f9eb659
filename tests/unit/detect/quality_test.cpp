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
#include <sstream>

#include "boing/detect/pipeline.h"

namespace boing::detect {
namespace {

// RFC 4180 records (quoted fields may hold commas, doubled quotes and newlines).
std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
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
  EXPECT_GE(recall("cmdi"), 0.70);
  EXPECT_LE(static_cast<double>(held["norm"].detected) / held["norm"].total, 0.001);
}

}  // namespace
}  // namespace boing::detect
