#include "boing/detect/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace boing::detect {
namespace {

double Exact(std::vector<double> v, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  size_t k = rank == 0 ? 0 : rank - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

void ExpectWithinOnePercent(const std::vector<double>& v, double accuracy) {
  QuantileSketch s(accuracy);
  for (double x : v) s.Add(x);
  for (double q : {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    double exact = Exact(v, q);
    double est = s.Quantile(q);
    EXPECT_LE(std::abs(est - exact), 0.01 * exact)
        << "q=" << q << " exact=" << exact << " est=" << est;
  }
}

TEST(QuantileSketch, WithinOnePercentOnSkewedAndFlatDistributions) {
  std::mt19937_64 rng(7);
  std::vector<double> lognormal, exponential, uniform, bimodal;
  std::lognormal_distribution<double> ln(3.0, 1.2);
  std::exponential_distribution<double> ex(0.05);
  std::uniform_real_distribution<double> un(1, 5000);
  std::normal_distribution<double> fast(20, 3), slow(900, 80);
  for (int i = 0; i < 200000; ++i) {
    lognormal.push_back(ln(rng));
    exponential.push_back(ex(rng) + 0.01);
    uniform.push_back(un(rng));
    bimodal.push_back(std::max(0.5, i % 10 == 0 ? slow(rng) : fast(rng)));
  }
  for (double accuracy : {0.005, 0.009}) {
    ExpectWithinOnePercent(lognormal, accuracy);
    ExpectWithinOnePercent(exponential, accuracy);
    ExpectWithinOnePercent(uniform, accuracy);
    ExpectWithinOnePercent(bimodal, accuracy);
  }
}

TEST(QuantileSketch, ZerosAndMerge) {
  QuantileSketch a, b;
  for (int i = 0; i < 50; ++i) a.Add(0);
  for (int i = 1; i <= 50; ++i) b.Add(i);
  a.Merge(b);
  EXPECT_EQ(a.Count(), 100u);
  EXPECT_EQ(a.Quantile(0.5), 0);
  EXPECT_NEAR(a.Quantile(1.0), 50, 0.5);
  EXPECT_NEAR(a.Quantile(0.75), 25, 0.25);
}

TEST(RollingQuantiles, ForgetsValuesOlderThanTheWindow) {
  RollingQuantiles r(600, 6);
  for (int i = 0; i < 1000; ++i) r.Add(1000 + i * 0.1, 1000.0);  // an hour-old slow period
  for (int i = 0; i < 1000; ++i) r.Add(5000 + i * 0.1, 10.0);
  EXPECT_NEAR(r.Quantile(5100, 0.99), 10, 0.1);
  EXPECT_EQ(r.Count(5100), 1000u);
  // Within the window both are seen.
  RollingQuantiles w(600, 6);
  for (int i = 0; i < 100; ++i) w.Add(1000, 1000.0);
  for (int i = 0; i < 100; ++i) w.Add(1300, 10.0);
  EXPECT_NEAR(w.Quantile(1300, 0.99), 1000, 10);
}

TEST(Ewma, ZScoreOfAnOutlier) {
  Ewma e;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> d(100, 10);
  for (int i = 0; i < 5000; ++i) e.Add(d(rng), 0.01);
  EXPECT_NEAR(e.mean, 100, 3);
  EXPECT_NEAR(std::sqrt(e.var), 10, 2);
  EXPECT_GT(e.Z(200), 7);
  EXPECT_LT(std::abs(e.Z(105)), 1);
}

}  // namespace
}  // namespace boing::detect
