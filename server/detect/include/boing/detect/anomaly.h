// Unsupervised anomaly models over fixed-length feature vectors (the ml stage's per-actor window
// features): an Isolation Forest (Liu, Ting and Zhou 2008, scored as scikit-learn does) and a
// One-Class SVM (libsvm, RBF kernel, on standardised features).
//
// Both are trained on vectors believed normal and score new ones; higher scores are more
// anomalous. Models serialise to bytes with a checksum and parse back with every field checked,
// so a saved model scores exactly as before and a damaged file is refused with a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boing::detect {

struct IsolationForestOptions {
  int trees = 100;
  int sample_size = 256;  // rows per tree (all rows when fewer)
  uint64_t seed = 1;
};

class IsolationForest {
 public:
  // Rows of `d` values in `x` (row-major, n = x.size() / d). Needs at least 2 rows.
  static std::unique_ptr<IsolationForest> Fit(const std::vector<double>& x, size_t d,
                                              const IsolationForestOptions& o);
  // 2^(-E[h(x)] / c(sample_size)) in (0, 1]: about 0.5 for ordinary points, towards 1 for
  // points isolated in few splits (scikit-learn's score_samples, negated).
  double Score(const double* x) const;
  // Score() of n rows (row-major) into out[0..n).
  void ScoreBatch(const double* x, size_t n, double* out) const;
  // How much each feature drove the score: its share of the isolation along x's paths (each split
  // credited with log2 of the training points at the node over those on x's side). Sums to 1.
  std::vector<double> Explain(const double* x) const;

  std::string Serialize() const;
  static std::unique_ptr<IsolationForest> Parse(std::string_view bytes, std::string* error);
  size_t dims() const { return d_; }
  size_t trees() const { return roots_.size(); }

 private:
  struct Node {
    int32_t feature = -1;  // -1: leaf
    int32_t left = 0, right = 0;
    uint32_t size = 0;     // training rows that reached the node
    double threshold = 0;  // a leaf's: its depth + AveragePathLength(size)
  };
  IsolationForest() = default;
  int32_t Build(std::vector<uint32_t>& rows, size_t begin, size_t end, int depth, int max_depth,
                const std::vector<double>& x, uint64_t& rng);
  size_t d_ = 0;
  uint32_t sample_ = 0;
  std::vector<Node> nodes_;
  std::vector<int32_t> roots_;
  std::vector<uint32_t> scratch_;
  // The trees for scoring: leaves point to themselves, so each walk is max_depth_ steps.
  struct Step {
    uint32_t feature;
    int32_t child[2];
    double threshold;
  };
  void Prepare();
  std::vector<Step> walk_;
  int max_depth_ = 0;
};

// The average path length of an unsuccessful search in a binary search tree of n points.
double AveragePathLength(double n);

struct OneClassSvmOptions {
  double nu = 0.1;         // upper bound on the share of training vectors outside the boundary
  double gamma = 0;        // RBF width; 0 = 1 / dims
  size_t max_rows = 2000;  // training rows (a random subset beyond)
  uint64_t seed = 1;
};

class OneClassSvm {
 public:
  ~OneClassSvm();
  static std::unique_ptr<OneClassSvm> Fit(const std::vector<double>& x, size_t d,
                                          const OneClassSvmOptions& o, std::string* error);
  // The negated libsvm decision value: > 0 outside the learned boundary.
  double Score(const double* x) const;
  // |standardised value| per feature: how far each feature is from its training mean in sds.
  std::vector<double> Deviations(const double* x) const;
  std::string Serialize() const;
  static std::unique_ptr<OneClassSvm> Parse(std::string_view bytes, std::string* error);
  size_t dims() const { return d_; }

 private:
  OneClassSvm() = default;
  size_t d_ = 0;
  std::vector<double> mean_, sd_;
  struct Model;
  std::unique_ptr<Model> model_;
};

}  // namespace boing::detect
