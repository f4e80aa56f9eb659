// The C++ Isolation Forest (boing::detect::IsolationForest, the isolation_forest detector's model)
// on the benchmark data: fit on train.csv (100 trees, 256 rows each, as scikit-learn's defaults),
// score every row of test.csv, time both (loading the files is not timed), compute the ROC AUC,
// and write the scores (one per line) for the cross-check in sklearn_iforest.py.
//
// Runs RUNS times (default 5) with different seeds, as the AUC of one forest varies with its seed
// by about ±0.006 on this data.
//
// usage: iforest_bench DATADIR SCORES_OUT [RUNS]   (prints one JSON line; times and AUCs per run)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "boing/detect/anomaly.h"

namespace {

// Comma-separated numbers, one row per line; returns the column count.
size_t Load(const std::string& path, std::vector<double>& out) {
  std::ifstream f(path);
  std::string line;
  size_t cols = 0;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    size_t n = 0;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      out.push_back(std::stod(cell));
      ++n;
    }
    if (cols && n != cols) {
      std::fprintf(stderr, "%s: ragged row\n", path.c_str());
      std::exit(2);
    }
    cols = n;
  }
  return cols;
}

// ROC AUC by ranks (ties share their average rank): the Mann-Whitney U statistic.
double Auc(const std::vector<double>& score, const std::vector<int>& label) {
  std::vector<size_t> idx(score.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  double pos = 0, rank_sum = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && score[idx[j]] == score[idx[i]]) ++j;
    double avg = (static_cast<double>(i + j + 1)) / 2.0;  // 1-based ranks i+1..j
    for (size_t k = i; k < j; ++k) {
      if (label[idx[k]]) {
        rank_sum += avg;
        ++pos;
      }
    }
    i = j;
  }
  double neg = static_cast<double>(score.size()) - pos;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: iforest_bench DATADIR SCORES_OUT [RUNS]\n");
    return 2;
  }
  const int runs = argc == 4 ? std::max(1, std::atoi(argv[3])) : 5;
  std::string dir = argv[1];
  std::vector<double> train, test;
  size_t d = Load(dir + "/train.csv", train);
  size_t td = Load(dir + "/test.csv", test);
  if (d == 0 || td != d + 1) {
    std::fprintf(stderr, "bad data in %s\n", dir.c_str());
    return 2;
  }
  const size_t n = test.size() / td;
  std::vector<double> x(n * d);
  std::vector<int> label(n);
  for (size_t i = 0; i < n; ++i) {
    std::copy(&test[i * td], &test[i * td] + d, &x[i * d]);
    label[i] = test[i * td + d] > 0.5;
  }
  using Clock = std::chrono::steady_clock;
  // One fit + score per seed; the scores of the first seed are written for the cross-check.
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::vector<double> fit_s, score_s, auc;
  std::vector<double> scores(n);
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(runs); ++seed) {
    auto t0 = Clock::now();
    boing::detect::IsolationForestOptions o;
    o.seed = seed + 1;
    auto forest = boing::detect::IsolationForest::Fit(train, d, o);
    auto t1 = Clock::now();
    forest->ScoreBatch(x.data(), n, scores.data());
    auto t2 = Clock::now();
    fit_s.push_back(secs(t0, t1));
    score_s.push_back(secs(t1, t2));
    auc.push_back(Auc(scores, label));
    if (seed == 0) {
      std::ofstream out(argv[2]);
      char buf[64];
      for (double s : scores) {
        std::snprintf(buf, sizeof buf, "%.17g\n", s);
        out << buf;
      }
    }
  }
  auto list = [](const std::vector<double>& v) {
    std::string s = "[";
    char buf[32];
    for (size_t i = 0; i < v.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", v[i]);
      s += buf;
    }
    return s + "]";
  };
  std::printf(
      "{\"train_rows\":%zu,\"test_rows\":%zu,\"dims\":%zu,\"fit_s\":%s,\"score_s\":%s,"
      "\"auc\":%s}\n",
      train.size() / d, n, d, list(fit_s).c_str(), list(score_s).c_str(), list(auc).c_str());
  return 0;
}
