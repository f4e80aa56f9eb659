#include "boing/detect/anomaly.h"

#include <libsvm/svm.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "model_io.h"

namespace boing::detect {

namespace {

using model_io::Cursor;
using model_io::Put;

constexpr char kForestMagic[8] = {'B', 'O', 'I', 'N', 'G', 'I', 'F', '1'};
constexpr char kSvmMagic[8] = {'B', 'O', 'I', 'N', 'G', 'S', 'V', '1'};
constexpr size_t kMaxDims = 256;

uint64_t Next(uint64_t& s) {  // splitmix64
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
double Uniform(uint64_t& s) { return static_cast<double>(Next(s) >> 11) * 0x1.0p-53; }
size_t Below(uint64_t& s, size_t n) { return static_cast<size_t>(Next(s) % n); }

}  // namespace

double AveragePathLength(double n) {
  if (n <= 1) return 0;
  if (n <= 2) return 1;
  return 2.0 * (std::log(n - 1.0) + 0.5772156649015329) - 2.0 * (n - 1.0) / n;
}

// --- Isolation Forest --------------------------------------------------------------------------

int32_t IsolationForest::Build(std::vector<uint32_t>& rows, size_t begin, size_t end, int depth,
                               int max_depth, const std::vector<double>& x, uint64_t& rng) {
  const int32_t id = static_cast<int32_t>(nodes_.size());
  nodes_.emplace_back();
  const size_t n = end - begin;
  nodes_[static_cast<size_t>(id)].size = static_cast<uint32_t>(n);
  if (depth < max_depth && n > 1) {
    // A random feature that is not constant here (as scikit-learn's random splitter), and a
    // threshold drawn uniformly between its minimum and maximum.
    // (The scratch list is not used after the recursion below, so one list serves every node.)
    std::vector<uint32_t>& features = scratch_;
    features.resize(d_);
    std::iota(features.begin(), features.end(), 0u);
    for (size_t left = d_; left > 0; --left) {
      size_t pick = Below(rng, left);
      uint32_t f = features[pick];
      std::swap(features[pick], features[left - 1]);
      double lo = x[rows[begin] * d_ + f], hi = lo;
      for (size_t i = begin + 1; i < end; ++i) {
        double v = x[rows[i] * d_ + f];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      if (!(hi > lo)) continue;
      double t = lo + Uniform(rng) * (hi - lo);
      if (t >= hi) t = lo;  // keep both sides non-empty
      auto mid = std::partition(rows.begin() + static_cast<std::ptrdiff_t>(begin),
                                rows.begin() + static_cast<std::ptrdiff_t>(end),
                                [&](uint32_t r) { return x[r * d_ + f] <= t; });
      size_t m = static_cast<size_t>(mid - rows.begin());
      nodes_[static_cast<size_t>(id)].feature = static_cast<int32_t>(f);
      nodes_[static_cast<size_t>(id)].threshold = t;
      int32_t l = Build(rows, begin, m, depth + 1, max_depth, x, rng);
      int32_t r = Build(rows, m, end, depth + 1, max_depth, x, rng);
      nodes_[static_cast<size_t>(id)].left = l;
      nodes_[static_cast<size_t>(id)].right = r;
      return id;
    }
  }
  // A leaf holds its whole path length: its depth plus the expected depth of the subtree its
  // rows would have grown (so scoring only walks and adds).
  nodes_[static_cast<size_t>(id)].threshold = depth + AveragePathLength(static_cast<double>(n));
  return id;
}

std::unique_ptr<IsolationForest> IsolationForest::Fit(const std::vector<double>& x, size_t d,
                                                      const IsolationForestOptions& o) {
  if (d == 0 || d > kMaxDims || x.size() % d != 0 || x.size() / d < 2 || o.trees < 1 ||
      o.sample_size < 2)
    return nullptr;
  const size_t n = x.size() / d;
  std::unique_ptr<IsolationForest> m(new IsolationForest());
  m->d_ = d;
  m->sample_ = static_cast<uint32_t>(std::min<size_t>(n, static_cast<size_t>(o.sample_size)));
  const int max_depth = static_cast<int>(std::ceil(std::log2(std::max<double>(m->sample_, 2.0))));
  uint64_t rng = o.seed;
  std::vector<uint32_t> all(n), rows(m->sample_);
  std::iota(all.begin(), all.end(), 0u);
  m->nodes_.reserve(static_cast<size_t>(o.trees) * m->sample_ * 2);
  for (int t = 0; t < o.trees; ++t) {
    // A sample without replacement (partial Fisher-Yates).
    for (size_t i = 0; i < m->sample_; ++i) {
      size_t j = i + Below(rng, n - i);
      std::swap(all[i], all[j]);
      rows[i] = all[i];
    }
    m->roots_.push_back(m->Build(rows, 0, rows.size(), 0, max_depth, x, rng));
  }
  m->Prepare();
  return m;
}

double IsolationForest::Score(const double* x) const {
  double out;
  ScoreBatch(x, 1, &out);
  return out;
}

void IsolationForest::Prepare() {
  // Leaves loop to themselves, so every walk takes exactly max_depth_ steps without a branch on
  // the node kind, and several rows can walk a tree side by side.
  walk_.resize(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    Step& w = walk_[i];
    if (n.feature >= 0) {
      w = {static_cast<uint32_t>(n.feature), {n.left, n.right}, n.threshold};
    } else {
      w = {0, {static_cast<int32_t>(i), static_cast<int32_t>(i)}, 0};
    }
  }
  max_depth_ = static_cast<int>(std::ceil(std::log2(std::max<double>(sample_, 2.0))));
}

void IsolationForest::ScoreBatch(const double* x, size_t n, double* out) const {
  // Tree by tree (one tree's nodes stay in cache), eight rows at a time (their walks overlap).
  constexpr size_t kLanes = 8;
  std::fill(out, out + n, 0.0);
  const Step* walk = walk_.data();
  for (int32_t root : roots_) {
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      int32_t cur[kLanes];
      const double* row[kLanes];
      for (size_t j = 0; j < kLanes; ++j) {
        cur[j] = root;
        row[j] = x + (i + j) * d_;
      }
      for (int step = 0; step < max_depth_; ++step) {
        for (size_t j = 0; j < kLanes; ++j) {
          const Step& s = walk[cur[j]];
          cur[j] = s.child[!(row[j][s.feature] <= s.threshold)];
        }
      }
      for (size_t j = 0; j < kLanes; ++j)
        out[i + j] += nodes_[static_cast<size_t>(cur[j])].threshold;
    }
    for (; i < n; ++i) {
      const double* r = x + i * d_;
      int32_t cur = root;
      for (int step = 0; step < max_depth_; ++step) {
        const Step& s = walk[cur];
        cur = s.child[!(r[s.feature] <= s.threshold)];
      }
      out[i] += nodes_[static_cast<size_t>(cur)].threshold;
    }
  }
  const double norm = static_cast<double>(roots_.size()) * AveragePathLength(sample_);
  for (size_t i = 0; i < n; ++i) out[i] = std::exp2(-out[i] / norm);
}

std::vector<double> IsolationForest::Explain(const double* x) const {
  // Each split on x's path is credited with the information it took to isolate x there:
  // log2(points at the node / points on x's side). A split that cuts x off from almost all
  // training points counts for much; one that halves the crowd counts for one bit.
  std::vector<double> w(d_, 0.0);
  double sum = 0;
  for (int32_t root : roots_) {
    const Node* nd = &nodes_[static_cast<size_t>(root)];
    while (nd->feature >= 0) {
      const Node* next =
          &nodes_[static_cast<size_t>(x[nd->feature] <= nd->threshold ? nd->left : nd->right)];
      double v = std::log2(std::max<double>(nd->size, 1) / std::max<double>(next->size, 1));
      w[static_cast<size_t>(nd->feature)] += v;
      sum += v;
      nd = next;
    }
  }
  if (sum > 0)
    for (double& v : w) v /= sum;
  return w;
}

std::string IsolationForest::Serialize() const {
  std::string out(kForestMagic, 8);
  Put<uint32_t>(out, static_cast<uint32_t>(d_));
  Put<uint32_t>(out, sample_);
  Put<uint32_t>(out, static_cast<uint32_t>(roots_.size()));
  Put<uint32_t>(out, static_cast<uint32_t>(nodes_.size()));
  for (int32_t r : roots_) Put<int32_t>(out, r);
  for (const Node& n : nodes_) {
    Put<int32_t>(out, n.feature);
    Put<int32_t>(out, n.left);
    Put<int32_t>(out, n.right);
    Put<uint32_t>(out, n.size);
    Put<double>(out, n.threshold);
  }
  model_io::Seal(out);
  return out;
}

std::unique_ptr<IsolationForest> IsolationForest::Parse(std::string_view bytes,
                                                        std::string* error) {
  Cursor c;
  if (!model_io::Open(bytes, kForestMagic, &c, error)) return nullptr;
  auto bad = [&](const char* why) -> std::unique_ptr<IsolationForest> {
    *error = std::string("not a valid Isolation Forest model: ") + why;
    return nullptr;
  };
  uint32_t d, sample, trees, count;
  if (!c.Get(&d) || !c.Get(&sample) || !c.Get(&trees) || !c.Get(&count)) return bad("truncated");
  if (d == 0 || d > kMaxDims) return bad("dimensions");
  if (sample < 2 || sample > (1u << 24)) return bad("sample size");
  if (trees == 0 || trees > 10000) return bad("tree count");
  if (count > (c.s.size() - c.pos) / 24 || count < trees) return bad("node count");
  if (c.s.size() - c.pos != size_t{trees} * 4 + size_t{count} * 24) return bad("size");
  std::unique_ptr<IsolationForest> m(new IsolationForest());
  m->d_ = d;
  m->sample_ = sample;
  m->roots_.resize(trees);
  for (auto& r : m->roots_) {
    c.Get(&r);
    if (r < 0 || static_cast<uint32_t>(r) >= count) return bad("root index");
  }
  m->nodes_.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    Node& n = m->nodes_[i];
    c.Get(&n.feature);
    c.Get(&n.left);
    c.Get(&n.right);
    c.Get(&n.size);
    c.Get(&n.threshold);
    if (n.feature >= 0) {
      // Children come after their parent, so every path ends (no cycles).
      if (static_cast<uint32_t>(n.feature) >= d || n.left <= static_cast<int32_t>(i) ||
          n.right <= static_cast<int32_t>(i) || static_cast<uint32_t>(n.left) >= count ||
          static_cast<uint32_t>(n.right) >= count || !std::isfinite(n.threshold))
        return bad("split node");
    } else if (n.feature != -1 || !std::isfinite(n.threshold) || n.threshold < 0 ||
               n.threshold > 64) {
      return bad("leaf node");
    }
    if (n.size > sample) return bad("node size");
  }
  m->Prepare();
  // Every leaf must lie within max_depth_ of its root (scoring walks exactly that many steps).
  std::vector<int> depth(count, -1);
  for (int32_t r : m->roots_) depth[static_cast<size_t>(r)] = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const Node& n = m->nodes_[i];
    if (depth[i] < 0) return bad("node outside every tree");
    if (n.feature < 0) continue;
    if (depth[i] + 1 > m->max_depth_) return bad("tree deeper than its sample allows");
    depth[static_cast<size_t>(n.left)] = depth[i] + 1;
    depth[static_cast<size_t>(n.right)] = depth[i] + 1;
  }
  return m;
}

// --- One-Class SVM -----------------------------------------------------------------------------

struct OneClassSvm::Model {
  double gamma = 0, rho = 0;
  std::vector<double> coef;  // per support vector
  std::vector<double> sv;    // support vectors, standardised, row-major
};

OneClassSvm::~OneClassSvm() = default;

std::unique_ptr<OneClassSvm> OneClassSvm::Fit(const std::vector<double>& x, size_t d,
                                              const OneClassSvmOptions& o, std::string* error) {
  if (d == 0 || d > kMaxDims || x.size() % d != 0 || x.size() / d < 2) {
    *error = "need at least two rows";
    return nullptr;
  }
  if (!(o.nu > 0 && o.nu <= 1)) {
    *error = "nu must be in (0, 1]";
    return nullptr;
  }
  size_t n = x.size() / d;
  std::vector<size_t> rows(n);
  std::iota(rows.begin(), rows.end(), size_t{0});
  uint64_t rng = o.seed;
  if (n > o.max_rows && o.max_rows >= 2) {
    for (size_t i = 0; i < o.max_rows; ++i) std::swap(rows[i], rows[i + Below(rng, n - i)]);
    rows.resize(o.max_rows);
    n = rows.size();
  }
  std::unique_ptr<OneClassSvm> m(new OneClassSvm());
  m->d_ = d;
  m->mean_.assign(d, 0);
  m->sd_.assign(d, 0);
  for (size_t r : rows)
    for (size_t j = 0; j < d; ++j) m->mean_[j] += x[r * d + j] / static_cast<double>(n);
  for (size_t r : rows)
    for (size_t j = 0; j < d; ++j) {
      double v = x[r * d + j] - m->mean_[j];
      m->sd_[j] += v * v / static_cast<double>(n);
    }
  for (double& s : m->sd_) s = s > 1e-12 ? std::sqrt(s) : 1.0;

  // libsvm's sparse rows: d (index, value) pairs and a -1 terminator per row.
  std::vector<svm_node> nodes(n * (d + 1));
  std::vector<svm_node*> xs(n);
  std::vector<double> ys(n, 1.0);
  for (size_t i = 0; i < n; ++i) {
    svm_node* row = &nodes[i * (d + 1)];
    for (size_t j = 0; j < d; ++j) {
      row[j].index = static_cast<int>(j + 1);
      row[j].value = (x[rows[i] * d + j] - m->mean_[j]) / m->sd_[j];
    }
    row[d].index = -1;
    xs[i] = row;
  }
  svm_problem prob{};
  prob.l = static_cast<int>(n);
  prob.y = ys.data();
  prob.x = xs.data();
  svm_parameter param{};
  param.svm_type = ONE_CLASS;
  param.kernel_type = RBF;
  param.gamma = o.gamma > 0 ? o.gamma : 1.0 / static_cast<double>(d);
  param.nu = o.nu;
  param.cache_size = 64;
  param.eps = 1e-3;
  param.shrinking = 1;
  if (const char* err = svm_check_parameter(&prob, &param)) {
    *error = err;
    return nullptr;
  }
  svm_set_print_string_function([](const char*) {});
  svm_model* sm = svm_train(&prob, &param);
  auto model = std::make_unique<Model>();
  model->gamma = param.gamma;
  model->rho = sm->rho[0];
  for (int i = 0; i < sm->l; ++i) {
    model->coef.push_back(sm->sv_coef[0][i]);
    std::vector<double> v(d, 0.0);
    for (const svm_node* p = sm->SV[i]; p->index != -1; ++p) {
      if (p->index >= 1 && static_cast<size_t>(p->index) <= d)
        v[static_cast<size_t>(p->index - 1)] = p->value;
    }
    model->sv.insert(model->sv.end(), v.begin(), v.end());
  }
  svm_free_and_destroy_model(&sm);
  m->model_ = std::move(model);
  return m;
}

double OneClassSvm::Score(const double* x) const {
  // libsvm's decision value for one class: sum coef_i K(sv_i, x) - rho (> 0 inside).
  std::vector<double> z(d_);
  for (size_t j = 0; j < d_; ++j) z[j] = (x[j] - mean_[j]) / sd_[j];
  double sum = 0;
  const size_t n = model_->coef.size();
  for (size_t i = 0; i < n; ++i) {
    const double* sv = &model_->sv[i * d_];
    double dist = 0;
    for (size_t j = 0; j < d_; ++j) dist += (sv[j] - z[j]) * (sv[j] - z[j]);
    sum += model_->coef[i] * std::exp(-model_->gamma * dist);
  }
  return -(sum - model_->rho);
}

std::vector<double> OneClassSvm::Deviations(const double* x) const {
  std::vector<double> out(d_);
  for (size_t j = 0; j < d_; ++j) out[j] = std::abs((x[j] - mean_[j]) / sd_[j]);
  return out;
}

std::string OneClassSvm::Serialize() const {
  std::string out(kSvmMagic, 8);
  Put<uint32_t>(out, static_cast<uint32_t>(d_));
  Put<uint32_t>(out, static_cast<uint32_t>(model_->coef.size()));
  Put<double>(out, model_->gamma);
  Put<double>(out, model_->rho);
  for (size_t j = 0; j < d_; ++j) {
    Put<double>(out, mean_[j]);
    Put<double>(out, sd_[j]);
  }
  for (double c : model_->coef) Put<double>(out, c);
  for (double v : model_->sv) Put<double>(out, v);
  model_io::Seal(out);
  return out;
}

std::unique_ptr<OneClassSvm> OneClassSvm::Parse(std::string_view bytes, std::string* error) {
  Cursor c;
  if (!model_io::Open(bytes, kSvmMagic, &c, error)) return nullptr;
  auto bad = [&](const char* why) -> std::unique_ptr<OneClassSvm> {
    *error = std::string("not a valid One-Class SVM model: ") + why;
    return nullptr;
  };
  uint32_t d, n;
  std::unique_ptr<OneClassSvm> m(new OneClassSvm());
  m->model_ = std::make_unique<Model>();
  if (!c.Get(&d) || !c.Get(&n) || !c.Get(&m->model_->gamma) || !c.Get(&m->model_->rho))
    return bad("truncated");
  if (d == 0 || d > kMaxDims) return bad("dimensions");
  if (size_t{n} > (c.s.size() - c.pos) / 8 ||
      c.s.size() - c.pos != (size_t{d} * 2 + size_t{n} * (1 + d)) * 8)
    return bad("size");
  if (!std::isfinite(m->model_->gamma) || m->model_->gamma <= 0 || !std::isfinite(m->model_->rho))
    return bad("kernel parameters");
  m->d_ = d;
  m->mean_.resize(d);
  m->sd_.resize(d);
  for (uint32_t j = 0; j < d; ++j) {
    c.Get(&m->mean_[j]);
    c.Get(&m->sd_[j]);
    if (!std::isfinite(m->mean_[j]) || !std::isfinite(m->sd_[j]) || m->sd_[j] <= 0)
      return bad("scaler");
  }
  m->model_->coef.resize(n);
  for (double& v : m->model_->coef) {
    c.Get(&v);
    if (!std::isfinite(v)) return bad("coefficient");
  }
  m->model_->sv.resize(size_t{n} * d);
  for (double& v : m->model_->sv) {
    c.Get(&v);
    if (!std::isfinite(v)) return bad("support vector");
  }
  return m;
}

}  // namespace boing::detect
