#include "boing/detect/classifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "boing/detect/pipeline.h"

namespace boing::detect {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("boing-classifier-" + std::to_string(getpid()) + "-" + name))
      .string();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// A small labelled set: benign words and numbers, SQL and markup attacks.
LabelledValues Toy() {
  LabelledValues d;
  d.classes = {"norm", "sqli", "xss"};
  const char* benign[] = {"john",       "smith",       "madrid",  "28001",         "blue shirt",
                          "42",         "hello world", "a@b.com", "calle mayor 5", "true",
                          "2024-01-01", "order-77",    "visa",    "espana",        "Maria Lopez"};
  const char* sqli[] = {"1' or '1'='1",
                        "' union select password from users--",
                        "1; drop table x",
                        "admin'--",
                        "1 and 1=1",
                        "' or 1=1 --",
                        "x' union all select null,null--"};
  const char* xss[] = {"<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
                       "javascript:alert(document.cookie)", "<svg onload=alert(1)>",
                       "\"><script>prompt(1)</script>"};
  for (int rep = 0; rep < 4; ++rep) {
    for (auto* v : benign) d.values.push_back(v), d.labels.push_back(0);
    for (auto* v : sqli) d.values.push_back(v), d.labels.push_back(1);
    for (auto* v : xss) d.values.push_back(v), d.labels.push_back(2);
  }
  return d;
}

TEST(PayloadClassifier, LearnsAndSeparatesClasses) {
  std::string error;
  auto m = PayloadClassifier::Train(Toy(), TrainOptions{}, &error);
  ASSERT_TRUE(m) << error;
  EXPECT_EQ(m->classes()[static_cast<size_t>(m->benign_class())], "norm");
  auto sql = m->PredictRaw("2' OR '2'='2");
  EXPECT_GT(sql.attack_probability, 0.5);
  EXPECT_EQ(m->classes()[static_cast<size_t>(sql.attack_cls)], "sqli");
  auto xss = m->PredictRaw("<script>alert('x')</script>");
  EXPECT_GT(xss.attack_probability, 0.5);
  EXPECT_EQ(m->classes()[static_cast<size_t>(xss.attack_cls)], "xss");
  EXPECT_LT(m->PredictRaw("barcelona").attack_probability, 0.5);
  EXPECT_LT(m->PredictRaw("peter").attack_probability, 0.5);
}

TEST(PayloadClassifier, SaveAndLoadGiveIdenticalPredictions) {
  std::string error;
  auto m = PayloadClassifier::Train(Toy(), TrainOptions{}, &error);
  ASSERT_TRUE(m) << error;
  std::string path = TempPath("model");
  ASSERT_TRUE(m->Save(path, &error)) << error;
  auto loaded = PayloadClassifier::Load(path, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->classes(), m->classes());
  EXPECT_EQ(loaded->Serialize(), m->Serialize());
  for (const char* v : {"1' or 1=1--", "<b onmouseover=x>", "hello", "../../etc/passwd"}) {
    EXPECT_EQ(loaded->PredictRaw(v).attack_probability, m->PredictRaw(v).attack_probability) << v;
  }
  std::filesystem::remove(path);
}

TEST(PayloadClassifier, RefusesDamagedModels) {
  std::string error;
  auto m = PayloadClassifier::Train(Toy(), TrainOptions{}, &error);
  ASSERT_TRUE(m);
  std::string bytes = m->Serialize();
  EXPECT_FALSE(PayloadClassifier::Parse("", &error));
  EXPECT_NE(error.find("magic"), std::string::npos) << error;
  EXPECT_FALSE(PayloadClassifier::Parse(bytes.substr(0, bytes.size() / 2), &error));
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  EXPECT_FALSE(PayloadClassifier::Parse(flipped, &error));
  EXPECT_NE(error.find("checksum"), std::string::npos) << error;
  // Every truncation is refused without reading out of bounds (run under ASan).
  for (size_t n = 0; n < bytes.size(); n += 97) {
    EXPECT_FALSE(PayloadClassifier::Parse(bytes.substr(0, n), &error)) << n;
  }
  EXPECT_FALSE(PayloadClassifier::Load(TempPath("missing"), &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  EXPECT_TRUE(PayloadClassifier::Parse(bytes, &error)) << error;
}

TEST(PayloadClassifier, TrainingNeedsABenignLabel) {
  LabelledValues d = Toy();
  d.classes[0] = "good";
  std::string error;
  EXPECT_FALSE(PayloadClassifier::Train(d, TrainOptions{}, &error));
  EXPECT_NE(error.find("no benign label"), std::string::npos) << error;
  d.classes = {"norm"};
  for (auto& l : d.labels) l = 0;
  EXPECT_FALSE(PayloadClassifier::Train(d, TrainOptions{}, &error));
}

TEST(LabelledCsv, ReadsColumnsAndRows) {
  std::string path = TempPath("ok.csv");
  WriteFile(path,
            "id,payload,label\r\n1,hello,norm\r\n2,\"1' or '1'='1\",sqli\r\n\r\n"
            "3,\"a,b\",norm\r\n4,<script>,xss\r\n");
  LabelledValues d;
  std::string error;
  ASSERT_TRUE(ReadLabelledCsv(path, CsvOptions{}, &d, &error)) << error;
  EXPECT_EQ(d.values, (std::vector<std::string>{"hello", "1' or '1'='1", "a,b", "<script>"}));
  EXPECT_EQ(d.labels, (std::vector<int>{0, 1, 0, 2}));
  EXPECT_EQ(d.classes, (std::vector<std::string>{"norm", "sqli", "xss"}));
  CsvOptions even;
  even.rows = "even";
  ASSERT_TRUE(ReadLabelledCsv(path, even, &d, &error)) << error;
  EXPECT_EQ(d.values, (std::vector<std::string>{"1' or '1'='1", "<script>"}));
  std::filesystem::remove(path);
}

TEST(LabelledCsv, ErrorsNameTheFileAndLine) {
  std::string path = TempPath("bad.csv");
  LabelledValues d;
  std::string error;
  auto expect = [&](const std::string& text, const std::string& want) {
    WriteFile(path, text);
    EXPECT_FALSE(ReadLabelledCsv(path, CsvOptions{}, &d, &error));
    EXPECT_NE(error.find(want), std::string::npos) << "got: " << error << " want: " << want;
  };
  expect("value,label\nx,norm\n", path + ":1: header has no column 'payload'");
  expect("payload,label\nx,norm\ny\n", path + ":3: expected 2 fields, found 1");
  expect("payload,label\nx,norm\n\"open,norm\n", path + ":3: unterminated quoted field");
  expect("payload,label\nx,\n", path + ":2: empty label");
  expect("payload,label\n", path + ": no labelled rows");
  expect("", path + ":1: empty file");
  CsvOptions small;
  small.max_value_bytes = 4;
  WriteFile(path, "payload,label\nabc,norm\nabcdef,norm\n");
  EXPECT_FALSE(ReadLabelledCsv(path, small, &d, &error));
  EXPECT_NE(error.find(path + ":3: value longer than 4 bytes"), std::string::npos) << error;
  EXPECT_FALSE(ReadLabelledCsv(TempPath("nope.csv"), CsvOptions{}, &d, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  std::filesystem::remove(path);
}

TEST(PayloadClassifierStage, FindingNamesLocationAndScore) {
  std::string error;
  std::shared_ptr<const PayloadClassifier> m =
      PayloadClassifier::Train(Toy(), TrainOptions{}, &error);
  ASSERT_TRUE(m) << error;
  Pipeline p;
  // Rules off, so the finding comes from the classifier.
  std::vector<DetectorSettings> off;
  for (const char* id : {"sqli", "xss", "path_traversal", "cmdi", "ldapi", "nosqli"}) {
    off.push_back({id, false, Severity::kHigh, {}});
  }
  p.Configure(off);
  p.SetPayloadClassifier(m);
  Event e;
  e.api_id = 3;
  e.timestamp = 1000;
  e.method = "GET";
  e.endpoint = "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&page=2";
  e.client_ip = "10.0.0.1";
  e.status_code = 200;
  std::vector<Finding> out;
  p.Process(e, out);
  const Finding* f = nullptr;
  for (const auto& x : out)
    if (x.detector == "payload_classifier") f = &x;
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->evidence["location"], "query");
  EXPECT_EQ(f->evidence["class"], "xss");
  EXPECT_GT(f->evidence["probability"].get<double>(), 0.5);
  EXPECT_GT(f->score, 1.0);
  EXPECT_EQ(f->severity, Severity::kHigh);
  EXPECT_EQ(f->actor, "ip:10.0.0.1");
  double probability = f->evidence["probability"].get<double>();
  // A benign request raises nothing.
  e.endpoint = "/search?q=madrid&page=2";
  out.clear();
  p.Process(e, out);
  EXPECT_TRUE(out.empty());
  // A threshold above the score: no finding; disabled: nothing runs.
  ASSERT_LT(probability, 0.999);
  p.Configure({{"payload_classifier", true, Severity::kHigh, {{"threshold", 0.999}}}});
  e.endpoint = "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
  out.clear();
  p.Process(e, out);
  EXPECT_TRUE(out.empty());
  p.Configure({{"payload_classifier", false, Severity::kHigh, {}}});
  out.clear();
  p.Process(e, out);
  EXPECT_TRUE(out.empty());
  // Values mode (analyze --values) too.
  p.Configure({{"payload_classifier", true, Severity::kLow, {}}});
  out.clear();
  p.ProcessValue("1' or '1'='1", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].detector, "payload_classifier");
  EXPECT_EQ(out[0].evidence["location"], "value");
  EXPECT_EQ(out[0].severity, Severity::kLow);
}

}  // namespace
}  // namespace boing::detect
