#include "policy/gdsf_policy.h"

#include <gtest/gtest.h>

#include <vector>

#include "policy/lfu_policy.h"
#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::All;
using testing::K;

TEST(GdsfPolicyTest, EvictsLargeCheapBlocksBeforeSmallCostlyOnes) {
  GdsfPolicy p;
  constexpr uint64_t kLarge = 64 << 20, kSmall = 64 << 10;
  // The large block is hit more often, and more recently: LFU and LRU keep it.
  p.OnInsert(K(1), Tier::kHost, kSmall, 1);
  p.OnInsert(K(2), Tier::kHost, kLarge, 2);
  p.OnAccess(K(2), Tier::kHost, 3);
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 1, All()), std::vector<BlockKey>{K(2)});
  LfuPolicy lfu;
  lfu.OnInsert(K(1), Tier::kHost, kSmall, 1);
  lfu.OnInsert(K(2), Tier::kHost, kLarge, 2);
  lfu.OnAccess(K(2), Tier::kHost, 3);
  EXPECT_EQ(lfu.SelectVictims(Tier::kHost, 1, All()), std::vector<BlockKey>{K(1)});
}

TEST(GdsfPolicyTest, CostIsTheReloadPathOfTheTierBelow) {
  GdsfPolicy p;
  constexpr uint64_t kMiB = 1 << 20;
  // GPU <- host at 50 GB/s, host <- SSD at 7 GB/s, SSD <- recompute at 1 GB/s.
  EXPECT_NEAR(p.ReloadCostUs(0, kMiB), 10 + kMiB / 50e3, 1e-9);
  EXPECT_NEAR(p.ReloadCostUs(1, kMiB), 100 + kMiB / 7e3, 1e-9);
  EXPECT_NEAR(p.ReloadCostUs(2, kMiB), 1000 + kMiB / 1e3, 1e-9);
  EXPECT_LT(p.ReloadCostUs(0, kMiB), p.ReloadCostUs(1, kMiB));
}

TEST(GdsfPolicyTest, InvalidCostsAreRejected) {
  GdsfPolicyOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.ssd_to_host_gbps = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = GdsfPolicyOptions{};
  o.recompute_latency_us = -1;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::policy
