#include "boing/csv.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace boing::csv
