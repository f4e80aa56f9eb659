#include "boing/detect/anomaly.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "boing/detect/pipeline.h"

namespace boing::detect {
namespace {

// n points of a 4-dimensional Gaussian cluster.
std::vector<double> Cluster(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0, 1);
  std::vector<double> x(n * 4);
  for (auto& v : x) v = g(rng);
  return x;
}

TEST(IsolationForest, OutliersScoreHigher) {
  auto x = Cluster(2000, 1);
  auto m = IsolationForest::Fit(x, 4, IsolationForestOptions{});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->trees(), 100u);
  double inlier[4] = {0.1, -0.2, 0.0, 0.3};
  double outlier[4] = {6, -5, 0, 7};
  EXPECT_LT(m->Score(inlier), 0.5);
  EXPECT_GT(m->Score(outlier), 0.65);
  // The drivers of an outlier that is extreme in feature 2 only.
  double one[4] = {0, 0, 9, 0};
  auto w = m->Explain(one);
  EXPECT_EQ(std::max_element(w.begin(), w.end()) - w.begin(), 2);
  EXPECT_NEAR(w[0] + w[1] + w[2] + w[3], 1.0, 1e-9);
  EXPECT_DOUBLE_EQ(AveragePathLength(256),
                   2.0 * (std::log(255.0) + 0.5772156649015329) - 2.0 * 255.0 / 256.0);
}

TEST(IsolationForest, IdenticalScoresAfterSaveAndReload) {
  auto x = Cluster(1000, 2);
  auto m = IsolationForest::Fit(x, 4, IsolationForestOptions{});
  ASSERT_TRUE(m);
  std::string bytes = m->Serialize(), error;
  auto back = IsolationForest::Parse(bytes, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->Serialize(), bytes);
  auto probe = Cluster(500, 3);
  for (auto& v : probe) v *= 3;
  for (size_t i = 0; i < 500; ++i) {
    ASSERT_EQ(back->Score(&probe[i * 4]), m->Score(&probe[i * 4])) << i;
    ASSERT_EQ(back->Explain(&probe[i * 4]), m->Explain(&probe[i * 4])) << i;
  }
}

TEST(IsolationForest, RefusesDamagedModels) {
  auto m = IsolationForest::Fit(Cluster(300, 4), 4, IsolationForestOptions{});
  std::string bytes = m->Serialize(), error;
  for (size_t n = 0; n < bytes.size(); n += bytes.size() / 40 + 1) {
    EXPECT_FALSE(IsolationForest::Parse(bytes.substr(0, n), &error)) << n;
  }
  std::string flipped = bytes;
  flipped[100] ^= 1;
  EXPECT_FALSE(IsolationForest::Parse(flipped, &error));
  EXPECT_EQ(error, "checksum mismatch");
  EXPECT_FALSE(IsolationForest::Fit({1, 2, 3}, 3, IsolationForestOptions{}));  // one row
}

TEST(OneClassSvm, BoundaryAndReload) {
  auto x = Cluster(800, 5);
  OneClassSvmOptions o;
  o.nu = 0.05;
  std::string error;
  auto m = OneClassSvm::Fit(x, 4, o, &error);
  ASSERT_TRUE(m) << error;
  double inlier[4] = {0.1, 0.2, -0.1, 0};
  double outlier[4] = {8, 8, -8, 8};
  EXPECT_LT(m->Score(inlier), 0);
  EXPECT_GT(m->Score(outlier), 0);
  // About nu of the training points fall outside.
  int outside = 0;
  for (size_t i = 0; i < 800; ++i) outside += m->Score(&x[i * 4]) > 0;
  EXPECT_LT(outside, 800 * 0.12);
  auto back = OneClassSvm::Parse(m->Serialize(), &error);
  ASSERT_TRUE(back) << error;
  for (size_t i = 0; i < 800; ++i) ASSERT_EQ(back->Score(&x[i * 4]), m->Score(&x[i * 4]));
  std::string bytes = m->Serialize();
  for (size_t n = 0; n < bytes.size(); n += bytes.size() / 40 + 1)
    EXPECT_FALSE(OneClassSvm::Parse(bytes.substr(0, n), &error));
  o.nu = 0;
  EXPECT_FALSE(OneClassSvm::Fit(x, 4, o, &error));
}

// Traffic for the ml stage: many ordinary actors, each a few requests per minute over a few
// endpoints, answered 200.
void Ordinary(Pipeline& p, double t0, int minutes, int actors, std::vector<Finding>& out) {
  std::mt19937_64 rng(7);
  for (int m = 0; m < minutes; ++m) {
    for (int a = 0; a < actors; ++a) {
      int n = 5 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) {
        Event e;
        e.api_id = 1;
        e.timestamp = t0 + m * 60 + k * 7 + static_cast<double>(rng() % 5);
        e.method = k % 4 == 0 ? "POST" : "GET";
        e.endpoint = "/items/" + std::to_string(rng() % 50 + 1) + (k % 2 ? "/reviews" : "");
        e.client_ip = "10.1." + std::to_string(a / 200) + "." + std::to_string(a % 200);
        e.status_code = rng() % 20 == 0 ? 404 : 200;
        e.latency_ms = 20 + static_cast<double>(rng() % 10);
        e.response_size = 1000 + static_cast<int64_t>(rng() % 200);
        p.Process(e, out);
      }
    }
  }
}

std::vector<Finding> Abuse(Pipeline& p, double t0) {
  std::vector<Finding> out;
  // 200 requests in a minute, nearly all answered 404, then one more request to close the window.
  for (int k = 0; k <= 200; ++k) {
    Event e;
    e.api_id = 1;
    e.timestamp = t0 + (k < 200 ? k * 0.3 : 61);
    e.method = "GET";
    e.endpoint = "/items/" + std::to_string(100000 + k);
    e.client_ip = "203.0.113.9";
    e.status_code = 404;
    e.latency_ms = 22;
    e.response_size = 50;
    p.Process(e, out);
  }
  return out;
}

TEST(MlStage, TrainsOnCleanWindowsFlagsAnUnusualActorAndReloads) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("boing-ml-" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(dir);
  std::vector<DetectorSettings> cfg;
  for (const char* id : {"isolation_forest", "one_class_svm"}) {
    cfg.push_back(
        {id, true, Severity::kLow, {{"contamination", 0.02}, {"min_training_windows", 200}}});
  }
  cfg.push_back({"enumeration", false, Severity::kMedium, {}});
  cfg.push_back({"rate_limit", false, Severity::kMedium, {}});
  cfg.push_back({"scraping", false, Severity::kMedium, {}});
  Pipeline p;
  p.Configure(cfg);
  p.SetModelDir(dir);
  std::vector<Finding> benign;
  Ordinary(p, 1'000'000, 10, 60, benign);
  EXPECT_GE(p.Counters().ml_trainings, 1u);
  EXPECT_GE(p.Counters().ml_windows, 400u);
  // Ordinary actors are rarely flagged (about the contamination share, with a cool-down).
  size_t ml_benign = 0;
  for (const auto& f : benign) ml_benign += f.detector == "isolation_forest";
  EXPECT_LE(ml_benign, 60u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/api-1.iforest"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/api-1.ocsvm"));

  auto check = [](const std::vector<Finding>& out) {
    const Finding* forest = nullptr;
    const Finding* svm = nullptr;
    for (const auto& f : out) {
      if (f.detector == "isolation_forest") forest = &f;
      if (f.detector == "one_class_svm") svm = &f;
    }
    ASSERT_NE(forest, nullptr);
    ASSERT_NE(svm, nullptr);
    EXPECT_EQ(forest->actor, "ip:203.0.113.9");
    EXPECT_EQ(forest->severity, Severity::kLow);
    EXPECT_GT(forest->score, 1);
    EXPECT_EQ(forest->evidence["features"]["requests"], std::log1p(200.0));
    ASSERT_EQ(forest->evidence["drivers"].size(), 3u);
    std::set<std::string> drivers;
    for (const auto& d : forest->evidence["drivers"]) drivers.insert(d["feature"]);
    EXPECT_TRUE(drivers.count("requests") || drivers.count("not_found_ratio") ||
                drivers.count("distinct_templates"))
        << forest->evidence.dump();
    EXPECT_GT(svm->evidence["score"].get<double>(), 0);
  };
  auto first = Abuse(p, 1'000'000 + 11 * 60);
  check(first);

  // A new pipeline (a restarted server) reads the saved models instead of training: the same
  // traffic gives the same windows and the same scores.
  Pipeline q;
  q.Configure(cfg);
  q.SetModelDir(dir);
  std::vector<Finding> again;
  Ordinary(q, 1'000'000, 10, 60, again);
  auto second = Abuse(q, 1'000'000 + 11 * 60);
  check(second);
  auto score = [](const std::vector<Finding>& v, const char* d) {
    for (const auto& f : v)
      if (f.detector == d) return f.evidence["score"].get<double>();
    return -1.0;
  };
  EXPECT_EQ(score(first, "isolation_forest"), score(second, "isolation_forest"));
  EXPECT_EQ(score(first, "one_class_svm"), score(second, "one_class_svm"));
  for (const auto* d : {"isolation_forest", "one_class_svm"}) {
    for (const auto& f : first) {
      if (f.detector != d) continue;
      for (const auto& g : second) {
        if (g.detector == d) {
          EXPECT_EQ(f.evidence, g.evidence);
        }
      }
    }
  }
  EXPECT_EQ(q.Counters().ml_trainings, 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace boing::detect
