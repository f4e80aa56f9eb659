// Streaming statistics used by the statistics stage.
//
// QuantileSketch is a logarithmic-bucket sketch (the DDSketch construction): every value falls in
// the bucket [g^(i-1), g^i) with g = (1+a)/(1-a), and a quantile is answered with the bucket's
// midpoint 2g^i/(g+1), so the answer is within a relative error `a` of the exact nearest-rank
// quantile whatever the distribution. RollingQuantiles keeps one sketch per sub-window and merges
// the live ones, so percentiles cover the last window only. Ewma is an exponentially weighted
// mean and variance for z-scores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace boing::detect {

class QuantileSketch {
 public:
  // Values <= min_value (including 0 and negatives) are counted in a zero bucket and reported as 0.
  explicit QuantileSketch(double relative_accuracy = 0.005, double min_value = 1e-6);
  void Add(double v);
  void Merge(const QuantileSketch& other);  // same accuracy required
  // q in [0, 1]: the nearest-rank quantile (smallest value with at least q of the data at or
  // below it). 0 when empty.
  double Quantile(double q) const;
  uint64_t Count() const { return count_; }
  void Clear();

 private:
  int Index(double v) const;
  // Grows counts_ so that bucket index i has a slot; returns that slot.
  std::size_t Slot(int i);
  double gamma_, log_gamma_, min_value_;
  uint64_t count_ = 0, zeros_ = 0;
  int offset_ = 0;                // bucket index of counts_[0]
  std::vector<uint32_t> counts_;  // grown to the observed range only
};

class RollingQuantiles {
 public:
  // Covers the last `window_s` seconds (in `slots` sub-windows; the oldest slot is partly
  // outside the window while it ages out).
  RollingQuantiles(double window_s = 3600, int slots = 6, double relative_accuracy = 0.005);
  void Add(double t, double v);
  double Quantile(double t, double q) const;
  uint64_t Count(double t) const;

 private:
  int64_t SlotOf(double t) const;
  double slot_s_;
  std::vector<QuantileSketch> sketches_;
  std::vector<int64_t> slot_ids_;
};

struct Ewma {
  double mean = 0, var = 0;
  uint64_t n = 0;
  // Exact running mean/variance for the first 1/alpha samples, then exponential forgetting.
  void Add(double x, double alpha) {
    ++n;
    double a = 1.0 / static_cast<double>(n);
    if (a < alpha) a = alpha;
    double d = x - mean;
    mean += a * d;
    var = (1 - a) * (var + a * d * d);
  }
  // The standard deviation used is at least `min_sd`, so a near-constant series does not turn
  // a tiny deviation into a huge score. 0 when that is still 0.
  double Z(double x, double min_sd = 0) const;
};

}  // namespace boing::detect
