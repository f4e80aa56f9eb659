#include <gtest/gtest.h>

#include "app.h"

namespace boing {
namespace {

TEST(RateLimiter, AllowsUpToLimitThenReportsWait) {
  RateLimiter rl;
  const int64_t t = 1'000'000'000'000;  // at a window boundary
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rl.Hit("k", 5, 60, t + i), 0) << i;
  int wait = rl.Hit("k", 5, 60, t + 10);
  EXPECT_GT(wait, 0);
  EXPECT_LE(wait, 60);
  EXPECT_EQ(rl.Hit("other", 5, 60, t + 10), 0);
}

TEST(RateLimiter, SlidingWindowWeighsThePreviousWindow) {
  RateLimiter rl;
  const int64_t t = 1'000'000'020'000 - 1'000'000'020'000 % 60000;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(rl.Hit("k", 10, 60, t + i), 0);
  // A quarter into the next window, 75% of the previous 10 still count: only 2 more fit.
  const int64_t next = t + 60000 + 15000;
  EXPECT_EQ(rl.Hit("k", 10, 60, next), 0);
  EXPECT_EQ(rl.Hit("k", 10, 60, next), 0);
  EXPECT_GT(rl.Hit("k", 10, 60, next), 0);
  // Two windows later everything has expired.
  EXPECT_EQ(rl.Hit("k", 10, 60, t + 180000), 0);
}

TEST(RateLimiter, TableIsBounded) {
  RateLimiter rl(100);
  const int64_t t = 1'000'000'000'000;
  for (int i = 0; i < 10000; ++i) {
    rl.Hit("ip" + std::to_string(i), 5, 60, t);
    ASSERT_LE(rl.Size(), 100u);
  }
  // Still answers for new keys after heavy churn (evictions keep the table at its cap).
  EXPECT_EQ(rl.Hit("fresh", 5, 60, t), 0);
}

}  // namespace
}  // namespace boing
