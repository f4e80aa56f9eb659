#include "boing/detect/classifier.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "boing/csv.h"
#include "boing/detect/text.h"
#include "model_io.h"

namespace boing::detect {

namespace {

using model_io::Cursor;
using model_io::Put;

constexpr char kMagic[8] = {'B', 'O', 'I', 'N', 'G', 'P', 'C', '1'};
constexpr size_t kMaxClasses = 64;
constexpr size_t kMaxClassName = 64;

uint32_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h);
}

// Appends the hashed n-gram buckets of "\x02" + text + "\x03" (unsorted, with repeats).
void Grams(std::string_view text, int min_n, int max_n, uint32_t mask, std::vector<uint32_t>& out) {
  out.clear();
  size_t len = std::min(text.size(), kMaxClassifiedBytes) + 2;
  auto at = [&](size_t i) -> unsigned char {
    if (i == 0) return 2;
    if (i == len - 1) return 3;
    return static_cast<unsigned char>(text[i - 1]);
  };
  for (size_t i = 0; i < len; ++i) {
    uint64_t h = 1469598103934665603ull;
    for (int n = 1; n <= max_n && i + static_cast<size_t>(n) <= len; ++n) {
      h ^= at(i + static_cast<size_t>(n) - 1);
      h *= 1099511628211ull;
      if (n >= min_n) out.push_back(Mix(h) & mask);
    }
  }
}

// Sorted (bucket, count) pairs.
void Count(std::vector<uint32_t>& grams, std::vector<std::pair<uint32_t, float>>& out) {
  std::sort(grams.begin(), grams.end());
  out.clear();
  for (size_t i = 0; i < grams.size();) {
    size_t j = i;
    while (j < grams.size() && grams[j] == grams[i]) ++j;
    out.emplace_back(grams[i], static_cast<float>(j - i));
    i = j;
  }
}

// TF-IDF with L2 normalisation; the idf of bucket b is table[b * stride].
void Weigh(std::vector<std::pair<uint32_t, float>>& f, const std::vector<float>& table,
           size_t stride) {
  double norm = 0;
  for (auto& [b, v] : f) {
    v = (1.0f + std::log(v)) * table[b * stride];
    norm += static_cast<double>(v) * v;
  }
  if (norm <= 0) return;
  float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (auto& [b, v] : f) v *= inv;
}

void Softmax(std::vector<double>& z) {
  double m = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double& v : z) sum += (v = std::exp(v - m));
  for (double& v : z) v /= sum;
}

}  // namespace

bool IsBenignLabel(std::string_view label) {
  for (std::string_view b : {"norm", "normal", "benign", "clean", "valid", "0"}) {
    if (label == b) return true;
  }
  return false;
}

bool ReadLabelledCsv(const std::string& path, const CsvOptions& o, LabelledValues* out,
                     std::string* error) {
  *out = LabelledValues{};
  if (o.rows != "all" && o.rows != "even" && o.rows != "odd") {
    *error = "rows must be all, even or odd";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  csv::Reader reader(in, o.max_value_bytes * 2 + 4096);
  std::vector<std::string> fields;
  auto fail = [&](size_t line, const std::string& msg) {
    *error = path + ":" + std::to_string(line) + ": " + msg;
    return false;
  };
  if (!reader.Next(fields)) {
    return fail(reader.line() ? reader.line() : 1,
                reader.error().empty() ? "empty file (expected a header row)" : reader.error());
  }
  if (!fields.empty() && fields[0].rfind("\xEF\xBB\xBF", 0) == 0) fields[0].erase(0, 3);
  size_t value_col = SIZE_MAX, label_col = SIZE_MAX;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i] == o.value_column) value_col = i;
    if (fields[i] == o.label_column) label_col = i;
  }
  if (value_col == SIZE_MAX || label_col == SIZE_MAX) {
    return fail(
        reader.line(), "header has no column '" +
                           (value_col == SIZE_MAX ? o.value_column : o.label_column) +
                           "' (columns: " +
                           [&] {
                             std::string s;
                             for (const auto& f : fields) s += (s.empty() ? "" : ",") + f;
                             return s;
                           }() +
                           ")");
  }
  const size_t columns = fields.size();
  size_t row = 0;
  while (reader.Next(fields)) {
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    ++row;
    if (fields.size() != columns) {
      return fail(reader.line(), "expected " + std::to_string(columns) + " fields, found " +
                                     std::to_string(fields.size()));
    }
    if (o.rows == "even" && row % 2 != 0) continue;
    if (o.rows == "odd" && row % 2 == 0) continue;
    if (out->values.size() >= o.max_rows) {
      return fail(reader.line(), "more than " + std::to_string(o.max_rows) + " rows");
    }
    const std::string& label = fields[label_col];
    if (label.empty()) return fail(reader.line(), "empty label");
    if (label.size() > kMaxClassName) {
      return fail(reader.line(), "label longer than " + std::to_string(kMaxClassName) + " bytes");
    }
    if (fields[value_col].size() > o.max_value_bytes) {
      return fail(reader.line(),
                  "value longer than " + std::to_string(o.max_value_bytes) + " bytes");
    }
    auto it = std::find(out->classes.begin(), out->classes.end(), label);
    if (it == out->classes.end()) {
      if (out->classes.size() >= kMaxClasses) {
        return fail(reader.line(), "more than " + std::to_string(kMaxClasses) + " labels");
      }
      out->classes.push_back(label);
      it = out->classes.end() - 1;
    }
    out->labels.push_back(static_cast<int>(it - out->classes.begin()));
    out->values.push_back(std::move(fields[value_col]));
  }
  if (!reader.error().empty()) return fail(reader.line(), reader.error());
  if (in.bad()) {
    *error = path + ": read error";
    return false;
  }
  if (out->values.empty()) {
    *error = path + ": no labelled rows";
    return false;
  }
  return true;
}

std::unique_ptr<PayloadClassifier> PayloadClassifier::Train(const LabelledValues& data,
                                                            const TrainOptions& o,
                                                            std::string* error) {
  const size_t K = data.classes.size();
  if (data.values.empty() || data.values.size() != data.labels.size()) {
    *error = "no labelled values";
    return nullptr;
  }
  if (K < 2 || K > kMaxClasses) {
    *error =
        "need between 2 and " + std::to_string(kMaxClasses) + " labels, found " + std::to_string(K);
    return nullptr;
  }
  if (o.min_n < 1 || o.max_n > 8 || o.min_n > o.max_n || o.hash_bits < 10 || o.hash_bits > 24 ||
      o.epochs < 1) {
    *error = "bad training options";
    return nullptr;
  }
  std::unique_ptr<PayloadClassifier> m(new PayloadClassifier());
  m->min_n_ = o.min_n;
  m->max_n_ = o.max_n;
  m->hash_bits_ = o.hash_bits;
  m->classes_ = data.classes;
  m->benign_ = -1;
  for (size_t k = 0; k < K; ++k) {
    if (IsBenignLabel(data.classes[k])) {
      if (m->benign_ >= 0) {
        *error = "two benign labels: " + data.classes[static_cast<size_t>(m->benign_)] + " and " +
                 data.classes[k];
        return nullptr;
      }
      m->benign_ = static_cast<int>(k);
    }
  }
  if (m->benign_ < 0) {
    *error = "no benign label (one of norm, normal, benign, clean, valid, 0)";
    return nullptr;
  }
  const size_t D = size_t{1} << o.hash_bits;
  const uint32_t mask = static_cast<uint32_t>(D - 1);
  const size_t N = data.values.size();

  // Term counts and document frequencies.
  std::vector<std::vector<std::pair<uint32_t, float>>> docs(N);
  std::vector<uint32_t> df(D, 0), grams;
  std::string norm;
  for (size_t i = 0; i < N; ++i) {
    Normalize(data.values[i], norm, false);
    Grams(norm, o.min_n, o.max_n, mask, grams);
    Count(grams, docs[i]);
    for (const auto& [b, c] : docs[i]) ++df[b];
  }
  const size_t S = K + 1;
  m->table_.assign(D * S, 0.0f);
  for (size_t b = 0; b < D; ++b) {
    m->table_[b * S] = df[b] ? static_cast<float>(std::log((1.0 + static_cast<double>(N)) /
                                                           (1.0 + static_cast<double>(df[b]))) +
                                                  1.0)
                             : 0.0f;
  }
  for (auto& d : docs) Weigh(d, m->table_, S);

  // Class weights: the square root of the balanced weights, so rare attack classes count more
  // without drowning the benign class.
  std::vector<double> count(K, 0), cw(K, 1);
  for (int l : data.labels) ++count[static_cast<size_t>(l)];
  for (size_t k = 0; k < K; ++k) {
    cw[k] = count[k] ? std::sqrt(static_cast<double>(N) / (static_cast<double>(K) * count[k])) : 0;
  }

  // Multinomial logistic regression by stochastic gradient descent.
  m->bias_.assign(K, 0.0);
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  std::vector<double> z(K);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    const double lr = o.learning_rate / std::sqrt(1.0 + epoch);
    for (size_t i : order) {
      const auto& x = docs[i];
      const size_t y = static_cast<size_t>(data.labels[i]);
      for (size_t k = 0; k < K; ++k) z[k] = m->bias_[k];
      for (const auto& [b, v] : x) {
        const float* w = &m->table_[b * S + 1];
        for (size_t k = 0; k < K; ++k) z[k] += static_cast<double>(w[k]) * v;
      }
      Softmax(z);
      for (size_t k = 0; k < K; ++k) z[k] = (z[k] - (k == y ? 1.0 : 0.0)) * cw[y];
      for (const auto& [b, v] : x) {
        float* w = &m->table_[b * S + 1];
        for (size_t k = 0; k < K; ++k) {
          w[k] -= static_cast<float>(lr * (z[k] * v + o.l2 * w[k]));
        }
      }
      for (size_t k = 0; k < K; ++k) m->bias_[k] -= lr * 0.1 * z[k];
    }
  }
  return m;
}

PayloadPrediction PayloadClassifier::Predict(std::string_view normalised) const {
  thread_local std::vector<uint32_t> grams;
  thread_local std::vector<std::pair<uint32_t, float>> f;
  thread_local std::vector<double> z;
  Grams(normalised, min_n_, max_n_, (1u << hash_bits_) - 1, grams);
  Count(grams, f);
  // TF-IDF and the dot products in one pass over the features (one table row per feature).
  const size_t K = classes_.size(), S = K + 1;
  z.assign(K, 0.0);
  double norm = 0;
  for (const auto& [b, count] : f) {
    const float* row = &table_[b * S];
    double v = (1.0 + std::log(static_cast<double>(count))) * row[0];
    norm += v * v;
    for (size_t k = 0; k < K; ++k) z[k] += static_cast<double>(row[k + 1]) * v;
  }
  double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0;
  for (size_t k = 0; k < K; ++k) z[k] = z[k] * inv + bias_[k];
  Softmax(z);
  PayloadPrediction p;
  p.cls = static_cast<int>(std::max_element(z.begin(), z.end()) - z.begin());
  p.attack_probability = 1.0 - z[static_cast<size_t>(benign_)];
  for (size_t k = 0; k < K; ++k) {
    if (static_cast<int>(k) == benign_) continue;
    if (p.attack_cls < 0 || z[k] > p.attack_cls_probability) {
      p.attack_cls = static_cast<int>(k);
      p.attack_cls_probability = z[k];
    }
  }
  return p;
}

PayloadPrediction PayloadClassifier::PredictRaw(std::string_view raw) const {
  std::string norm;
  Normalize(raw, norm, false);
  return Predict(norm);
}

size_t PayloadClassifier::FeatureCount() const {
  size_t n = 0;
  const size_t S = classes_.size() + 1;
  for (size_t b = 0; b * S < table_.size(); ++b) n += table_[b * S] != 0;
  return n;
}

std::string PayloadClassifier::Serialize() const {
  const size_t K = classes_.size();
  std::string out(kMagic, sizeof(kMagic));
  Put<uint32_t>(out, static_cast<uint32_t>(min_n_));
  Put<uint32_t>(out, static_cast<uint32_t>(max_n_));
  Put<uint32_t>(out, static_cast<uint32_t>(hash_bits_));
  Put<uint32_t>(out, static_cast<uint32_t>(K));
  for (const auto& c : classes_) {
    Put<uint32_t>(out, static_cast<uint32_t>(c.size()));
    out += c;
  }
  Put<uint32_t>(out, static_cast<uint32_t>(benign_));
  for (double b : bias_) Put<double>(out, b);
  Put<uint32_t>(out, static_cast<uint32_t>(FeatureCount()));
  for (size_t b = 0; b * (K + 1) < table_.size(); ++b) {
    const float* row = &table_[b * (K + 1)];
    if (row[0] == 0) continue;
    Put<uint32_t>(out, static_cast<uint32_t>(b));
    for (size_t k = 0; k <= K; ++k) Put<float>(out, row[k]);
  }
  model_io::Seal(out);
  return out;
}

bool PayloadClassifier::Save(const std::string& path, std::string* error) const {
  return model_io::WriteFileAtomic(path, Serialize(), error);
}

std::unique_ptr<PayloadClassifier> PayloadClassifier::Load(const std::string& path,
                                                           std::string* error) {
  std::string bytes;
  if (!model_io::ReadFile(path, &bytes, error)) return nullptr;
  auto m = Parse(bytes, error);
  if (!m) *error = path + ": " + *error;
  return m;
}

std::unique_ptr<PayloadClassifier> PayloadClassifier::Parse(std::string_view bytes,
                                                            std::string* error) {
  auto bad = [&](const std::string& why) -> std::unique_ptr<PayloadClassifier> {
    *error = "not a valid payload classifier model: " + why;
    return nullptr;
  };
  Cursor c;
  std::string why;
  if (!model_io::Open(bytes, kMagic, &c, &why)) return bad(why);
  uint32_t min_n, max_n, bits, K;
  if (!c.Get(&min_n) || !c.Get(&max_n) || !c.Get(&bits) || !c.Get(&K)) return bad("truncated");
  if (min_n < 1 || max_n > 8 || min_n > max_n) return bad("n-gram range");
  if (bits < 10 || bits > 24) return bad("hash bits");
  if (K < 2 || K > kMaxClasses) return bad("class count");
  std::unique_ptr<PayloadClassifier> m(new PayloadClassifier());
  m->min_n_ = static_cast<int>(min_n);
  m->max_n_ = static_cast<int>(max_n);
  m->hash_bits_ = static_cast<int>(bits);
  for (uint32_t k = 0; k < K; ++k) {
    uint32_t len;
    if (!c.Get(&len) || len == 0 || len > kMaxClassName || c.s.size() - c.pos < len)
      return bad("class name");
    m->classes_.emplace_back(c.s.substr(c.pos, len));
    c.pos += len;
  }
  uint32_t benign;
  if (!c.Get(&benign) || benign >= K) return bad("benign class");
  m->benign_ = static_cast<int>(benign);
  m->bias_.resize(K);
  for (auto& b : m->bias_) {
    if (!c.Get(&b) || !std::isfinite(b)) return bad("bias");
  }
  const size_t D = size_t{1} << bits;
  uint32_t nnz;
  if (!c.Get(&nnz) || nnz > D) return bad("feature count");
  if ((c.s.size() - c.pos) != static_cast<size_t>(nnz) * (8 + 4 * K)) return bad("size");
  m->table_.assign(D * (K + 1), 0.0f);
  int64_t last = -1;
  for (uint32_t i = 0; i < nnz; ++i) {
    uint32_t b = 0;
    float idf = 0;
    c.Get(&b);
    c.Get(&idf);
    if (static_cast<int64_t>(b) <= last || b >= D) return bad("feature index");
    if (!std::isfinite(idf) || idf <= 0) return bad("idf");
    last = b;
    m->table_[b * (K + 1)] = idf;
    for (uint32_t k = 0; k < K; ++k) {
      float w = 0;
      c.Get(&w);
      if (!std::isfinite(w)) return bad("weight");
      m->table_[b * (K + 1) + k + 1] = w;
    }
  }
  return m;
}

}  // namespace boing::detect
