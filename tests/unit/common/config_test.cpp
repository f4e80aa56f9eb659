#include "boing/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace boing {
namespace {

std::string WriteTemp(const std::string& text) {
  std::string path = ::testing::TempDir() + "boing_cfg_" + std::to_string(::getpid()) + ".env";
  std::ofstream(path) << text;
  return path;
}

TEST(Settings, ParsesEnvFile) {
  Settings s;
  std::string err;
  ASSERT_TRUE(s.LoadEnvFile(WriteTemp("# c\nDB_HOST=localhost\nexport A='x y'\nB=\"q#r\"\n"
                                      "C=plain # comment\n\n"),
                            &err))
      << err;
  EXPECT_EQ(s.GetString("DB_HOST"), "localhost");
  EXPECT_EQ(s.GetString("A"), "x y");
  EXPECT_EQ(s.GetString("B"), "q#r");
  EXPECT_EQ(s.GetString("C"), "plain");
}

TEST(Settings, ErrorNamesFileAndLine) {
  Settings s;
  std::string err;
  std::string path = WriteTemp("A=1\nnot a pair\n");
  ASSERT_FALSE(s.LoadEnvFile(path, &err));
  EXPECT_NE(err.find(path + ":2"), std::string::npos) << err;
}

TEST(Settings, TypedGettersValidate) {
  Settings s;
  s.Set("N", "12");
  s.Set("BAD", "12x");
  s.Set("BIG", "1000");
  s.Set("D", "2.5");
  s.Set("B", "yes");
  s.Set("L", " a, b ,,c ");
  std::vector<std::string> errors;
  int64_t n = 0, bad = 7, big = 7;
  double d = 0;
  bool b = false;
  s.GetInt("N", 0, 100, &n, errors);
  s.GetInt("BAD", 0, 100, &bad, errors);
  s.GetInt("BIG", 0, 100, &big, errors);
  s.GetDouble("D", 0, 10, &d, errors);
  s.GetBool("B", &b, errors);
  EXPECT_EQ(n, 12);
  EXPECT_EQ(bad, 7);
  EXPECT_EQ(big, 7);
  EXPECT_EQ(d, 2.5);
  EXPECT_TRUE(b);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("BAD:", 0), 0u);
  EXPECT_EQ(errors[1].rfind("BIG:", 0), 0u);
  EXPECT_EQ(s.GetList("L"), (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace boing
