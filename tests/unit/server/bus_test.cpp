#include "bus.h"

#include <gtest/gtest.h>

#include <map>

namespace boing {
namespace {

TEST(BusPartition, StableInRangeAndSpread) {
  // FNV-1a of the decimal id: fixed values, so every instance (and every version) agrees.
  EXPECT_EQ(BusPartition(1, 16), BusPartition(1, 16));
  EXPECT_EQ(BusPartition(42, 1), 0);
  std::map<int, int> per;
  for (int64_t api = 1; api <= 1600; ++api) {
    int p = BusPartition(api, 16);
    ASSERT_GE(p, 0);
    ASSERT_LT(p, 16);
    ++per[p];
  }
  ASSERT_EQ(per.size(), 16u);
  for (const auto& [p, n] : per) {
    EXPECT_GT(n, 50) << "partition " << p;  // 100 on average
    EXPECT_LT(n, 150) << "partition " << p;
  }
}

}  // namespace
}  // namespace boing
