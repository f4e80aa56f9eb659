#include "boing/detect/stats.h"

#include <algorithm>
#include <cmath>

namespace boing::detect {

QuantileSketch::QuantileSketch(double relative_accuracy, double min_value)
    : gamma_((1 + relative_accuracy) / (1 - relative_accuracy)),
      log_gamma_(std::log(gamma_)),
      min_value_(min_value) {}

int QuantileSketch::Index(double v) const {
  return static_cast<int>(std::ceil(std::log(v) / log_gamma_));
}

void QuantileSketch::Add(double v) {
  ++count_;
  if (!(v > min_value_)) {  // also catches NaN
    ++zeros_;
    return;
  }
  int i = Index(v);
  ++counts_[Slot(i)];
}

size_t QuantileSketch::Slot(int i) {
  if (counts_.empty()) {
    offset_ = i;
    counts_.push_back(0);
  } else if (i < offset_) {
    counts_.insert(counts_.begin(), static_cast<size_t>(offset_ - i), 0);
    offset_ = i;
  } else if (i >= offset_ + static_cast<int>(counts_.size())) {
    counts_.resize(static_cast<size_t>(i - offset_ + 1), 0);
  }
  return static_cast<size_t>(i - offset_);
}

void QuantileSketch::Merge(const QuantileSketch& o) {
  count_ += o.count_;
  zeros_ += o.zeros_;
  for (size_t k = 0; k < o.counts_.size(); ++k) {
    if (o.counts_[k] == 0) continue;
    counts_[Slot(o.offset_ + static_cast<int>(k))] += o.counts_[k];
  }
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank, 1-based.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  if (rank <= zeros_) return 0;
  uint64_t seen = zeros_;
  for (size_t k = 0; k < counts_.size(); ++k) {
    seen += counts_[k];
    if (seen >= rank) {
      int i = offset_ + static_cast<int>(k);
      return 2 * std::pow(gamma_, i) / (gamma_ + 1);
    }
  }
  return 2 * std::pow(gamma_, offset_ + static_cast<int>(counts_.size()) - 1) / (gamma_ + 1);
}

void QuantileSketch::Clear() {
  count_ = zeros_ = 0;
  counts_.clear();
  offset_ = 0;
}

RollingQuantiles::RollingQuantiles(double window_s, int slots, double relative_accuracy)
    : slot_s_(window_s / std::max(1, slots)),
      sketches_(static_cast<size_t>(std::max(1, slots)) + 1, QuantileSketch(relative_accuracy)),
      slot_ids_(sketches_.size(), INT64_MIN) {}

int64_t RollingQuantiles::SlotOf(double t) const {
  return static_cast<int64_t>(std::floor(t / slot_s_));
}

void RollingQuantiles::Add(double t, double v) {
  int64_t id = SlotOf(t);
  size_t k = static_cast<size_t>(
      ((id % static_cast<int64_t>(sketches_.size())) + static_cast<int64_t>(sketches_.size())) %
      static_cast<int64_t>(sketches_.size()));
  if (slot_ids_[k] != id) {
    // A late event for a slot already recycled is counted in the current one.
    if (slot_ids_[k] < id) {
      sketches_[k].Clear();
      slot_ids_[k] = id;
    }
  }
  sketches_[k].Add(v);
}

double RollingQuantiles::Quantile(double t, double q) const {
  int64_t now = SlotOf(t);
  const int64_t live = static_cast<int64_t>(sketches_.size()) - 1;
  QuantileSketch merged = sketches_[0];
  merged.Clear();
  for (size_t k = 0; k < sketches_.size(); ++k) {
    if (slot_ids_[k] <= now && slot_ids_[k] >= now - live) merged.Merge(sketches_[k]);
  }
  return merged.Quantile(q);
}

uint64_t RollingQuantiles::Count(double t) const {
  int64_t now = SlotOf(t);
  const int64_t live = static_cast<int64_t>(sketches_.size()) - 1;
  uint64_t n = 0;
  for (size_t k = 0; k < sketches_.size(); ++k) {
    if (slot_ids_[k] <= now && slot_ids_[k] >= now - live) n += sketches_[k].Count();
  }
  return n;
}

double Ewma::Z(double x, double min_sd) const {
  double sd = std::max(std::sqrt(std::max(var, 0.0)), min_sd);
  return sd > 0 ? (x - mean) / sd : 0;
}

}  // namespace boing::detect
