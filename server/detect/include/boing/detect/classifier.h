// The payload classifier: TF-IDF over hashed character n-grams of a normalised value, and a
// multinomial logistic regression over those features. One class is benign ("norm", "normal",
// "benign" or "clean"); the others are attack classes, and a value's attack score is the
// probability that it is not benign.
//
// Features: every n-gram of 1..5 bytes of "\x02" + value + "\x03" (the markers let n-grams see
// where a value starts and ends), hashed into 2^hash_bits buckets; term frequency 1 + ln(count),
// times the bucket's inverse document frequency ln((1 + N) / (1 + df)) + 1, L2-normalised. Only
// the first kMaxClassifiedBytes of a value are read.
//
// Models are trained in-process (Train) and stored as a small binary file (Save/Load); Load
// checks every field and a checksum, so a damaged or foreign file is refused with a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boing::detect {

constexpr size_t kMaxClassifiedBytes = 4096;

struct LabelledValues {
  std::vector<std::string> values;   // raw values (Train normalises them)
  std::vector<int> labels;           // index into classes
  std::vector<std::string> classes;  // in order of first appearance
};

// Reads a CSV with a header row naming at least `value_column` and `label_column`. `rows` selects
// data rows by their 1-based position: "all", "even" or "odd" (the shipped model is trained on the
// even rows of the HttpParams data; the odd rows stay held out). Returns false with a message
// naming the file and line on any error (missing column, short record, bad quoting, empty value
// set, too many classes, a value longer than max_value_bytes).
struct CsvOptions {
  std::string value_column = "payload";
  std::string label_column = "label";
  std::string rows = "all";
  size_t max_rows = 5'000'000;
  size_t max_value_bytes = 1 << 16;
};
bool ReadLabelledCsv(const std::string& path, const CsvOptions& options, LabelledValues* out,
                     std::string* error);

struct PayloadPrediction {
  int cls = 0;                    // most probable class
  double attack_probability = 0;  // 1 - P(benign)
  int attack_cls = -1;            // most probable attack class
  double attack_cls_probability = 0;
};

struct TrainOptions {
  int min_n = 1, max_n = 5;
  int hash_bits = 18;
  int epochs = 8;
  double learning_rate = 0.5;
  double l2 = 1e-6;
  uint64_t seed = 1;
};

class PayloadClassifier {
 public:
  // Trains on `data`; fails (message in *error) when there is no benign class, fewer than two
  // classes, or no values.
  static std::unique_ptr<PayloadClassifier> Train(const LabelledValues& data,
                                                  const TrainOptions& options, std::string* error);
  static std::unique_ptr<PayloadClassifier> Load(const std::string& path, std::string* error);
  // Parses a model from memory (Load reads the file and calls this).
  static std::unique_ptr<PayloadClassifier> Parse(std::string_view bytes, std::string* error);
  bool Save(const std::string& path, std::string* error) const;
  std::string Serialize() const;

  // `normalised` must already be Normalize()d. Thread-safe (no shared scratch).
  PayloadPrediction Predict(std::string_view normalised) const;
  // Normalises `raw` (as the pipeline does) and predicts.
  PayloadPrediction PredictRaw(std::string_view raw) const;

  const std::vector<std::string>& classes() const { return classes_; }
  int benign_class() const { return benign_; }
  size_t FeatureCount() const;  // buckets with a non-zero weight or idf

 private:
  PayloadClassifier() = default;
  int min_n_ = 1, max_n_ = 5, hash_bits_ = 18;
  std::vector<std::string> classes_;
  int benign_ = 0;
  // Per bucket b, classes + 1 floats from b * (classes + 1): the idf, then one weight per class.
  std::vector<float> table_;
  std::vector<double> bias_;  // [class]
};

// True for the label names taken as benign.
bool IsBenignLabel(std::string_view label);

}  // namespace boing::detect
