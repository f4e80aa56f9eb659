#include "boing/csv.h"

#include <gtest/gtest.h>

#include <sstream>

namespace boing::csv {
namespace {

std::string Field(std::string_view v) {
  std::string out;
  AppendField(out, v);
  return out;
}

TEST(Csv, QuotesPerRfc4180) {
  EXPECT_EQ(Field("plain"), "plain");
  EXPECT_EQ(Field("a,b"), "\"a,b\"");
  EXPECT_EQ(Field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(Field("line1\nline2"), "\"line1\nline2\"");
  EXPECT_EQ(Field(" padded"), "\" padded\"");
  EXPECT_EQ(Field(""), "");
}

TEST(Csv, NeutralisesFormulas) {
  EXPECT_EQ(Field("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
  EXPECT_EQ(Field("+1+2"), "\"'+1+2\"");
  EXPECT_EQ(Field("@SUM(A1)"), "\"'@SUM(A1)\"");
  EXPECT_EQ(Field("-2+3"), "\"'-2+3\"");
  EXPECT_EQ(Field("\tcmd"), "\"'\tcmd\"");
  EXPECT_EQ(Field("-12.5"), "-12.5");
}

TEST(Csv, RecordsEndWithCrlf) {
  std::string out;
  AppendRecord(out, {"a", "b,c", "=1"});
  EXPECT_EQ(out, "a,\"b,c\",\"'=1\"\r\n");
}

std::vector<std::vector<std::string>> ReadAll(const std::string& text, std::string* error = nullptr,
                                              size_t* error_line = nullptr, size_t max = 1 << 20) {
  std::istringstream in(text);
  Reader r(in, max);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> f;
  while (r.Next(f)) rows.push_back(f);
  if (error) *error = r.error();
  if (error_line) *error_line = r.line();
  return rows;
}

TEST(CsvReader, ReadsRfc4180Records) {
  auto rows = ReadAll("a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\n\"two\nlines\",\nlast,row");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"x,y", "say \"hi\""}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"two\nlines", ""}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"last", "row"}));
  // A round trip through the writer.
  std::string out;
  AppendRecord(out, {"p,q", "r\"s", "t\nu"});
  EXPECT_EQ(ReadAll(out), (std::vector<std::vector<std::string>>{{"p,q", "r\"s", "t\nu"}}));
}

TEST(CsvReader, ReportsErrorsWithTheLine) {
  std::string err;
  size_t line = 0;
  auto rows = ReadAll("ok,1\nok,2\n\"never closed,3\n", &err, &line);
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_NE(err.find("unterminated"), std::string::npos) << err;
  EXPECT_EQ(line, 3u);
  rows = ReadAll("a,b\n\"q\"x,1\n", &err, &line);
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_NE(err.find("after a closing quote"), std::string::npos) << err;
  EXPECT_EQ(line, 2u);
  rows = ReadAll("short\n" + std::string(100, 'x') + "\n", &err, &line, 50);
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_NE(err.find("longer than 50 bytes"), std::string::npos) << err;
  EXPECT_EQ(line, 2u);
  rows = ReadAll("", &err);
  EXPECT_TRUE(rows.empty());
  EXPECT_TRUE(err.empty());
}

}  // namespace
}  // namespace boing::csv
