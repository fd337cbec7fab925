// GPU refresh: once the GPU tier is full, the mover exchanges its least
// valuable blocks for more valuable host blocks (Policy::SelectExchanges),
// so the tier follows the workload instead of keeping what filled it.
// Inline mover (mover_interval_us = 0): the test runs every pass itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy_factory.h"
#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

constexpr uint64_t kValue = 256;     // bytes per block; extents of 256 bytes
constexpr uint64_t kGpuBlocks = 16;  // one 4 KiB page
// The GPU tier fills by promotion up to its low watermark (0.85).
constexpr uint64_t kGpuFull = kGpuBlocks * 85 / 100;

BlockKey K(uint64_t h) { return BlockKey{42, h, 0}; }

// GPU tier of 16 blocks (emulated device), host tier of 64, SSD, policy
// `name`, no mover thread.
std::unique_ptr<TierManager> Open(const testing::TempDir& dir, const std::string& name) {
  TierManagerOptions o;
  o.slot_bytes = 4096;
  o.extent_granule_bytes = kValue;
  o.device_capacity_bytes = kGpuBlocks * kValue;
  o.host_capacity_bytes = 64 * kValue;
  o.device_allow_cuda = false;
  o.host_huge_pages = false;
  o.ssd_path = dir.Sub("ssd");
  o.ssd_capacity_bytes = 1 << 20;
  o.mover_interval_us = 0;
  o.reserve_wait_us = 60'000'000;
  policy::PolicyOptions po;
  po.lru.ssd_admission_hits = 1;
  auto policy = policy::MakePolicy(name, po);
  EXPECT_TRUE(policy.ok()) << name;
  if (!policy.ok()) return nullptr;
  auto tm = TierManager::Open(o, std::move(policy).value());
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  if (!tm.ok()) return nullptr;
  EXPECT_TRUE((*tm)->RegisterNamespace(testing::TestNamespace(42, kValue)).ok());
  return std::move(*tm);
}

// Runs the mover until a pass moves nothing; returns the number of runs that
// moved something.
int Settle(TierManager& tm) {
  int runs = 0;
  while (tm.RunMoverOnce()) {
    if (++runs > 1000) break;  // a mover that never settles fails the caller
  }
  return runs;
}

std::vector<uint64_t> OnGpu(TierManager& tm) {
  std::vector<uint64_t> out;
  for (const BlockInfo& b : tm.ListBlocks({})) {
    if (b.tier == Tier::kDevice) out.push_back(b.key.hash);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t h = first; h <= last; ++h) v.push_back(h);
  return v;
}

void Read(TierManager& tm, uint64_t first, uint64_t last, int times) {
  std::vector<char> out(kValue);
  for (int i = 0; i < times; ++i) {
    for (uint64_t h = first; h <= last; ++h) {
      auto n = tm.Get(K(h), out.data(), out.size());
      ASSERT_TRUE(n.ok()) << h << ": " << n.status().ToString();
      ASSERT_TRUE(out == testing::Payload(K(h), kValue)) << h;
    }
  }
}

class TierManagerRefreshTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Puts blocks 1..48 into host memory and makes 1..13 hot: the mover fills
  // the GPU tier with them.
  void FillGpu() {
    tm_ = Open(dir_, GetParam());
    ASSERT_TRUE(tm_);
    for (uint64_t h = 1; h <= 48; ++h) {
      ASSERT_TRUE(tm_->Put(K(h), testing::Payload(K(h), kValue).data(), kValue, Tier::kHost).ok());
    }
    Read(*tm_, 1, kGpuFull, 3);
    Settle(*tm_);
    ASSERT_EQ(OnGpu(*tm_), Range(1, kGpuFull));
  }

  testing::TempDir dir_;
  std::unique_ptr<TierManager> tm_;
};

TEST_P(TierManagerRefreshTest, AFullGpuTierTakesTheBlocksThatGotHot) {
  FillGpu();
  const StoreStats before = tm_->GetStats();
  // The GPU residents go cold; host blocks 21..33 get hotter than they were.
  Read(*tm_, 21, 20 + kGpuFull, 6);
  Settle(*tm_);
  EXPECT_EQ(OnGpu(*tm_), Range(21, 20 + kGpuFull));
  const StoreStats after = tm_->GetStats();
  EXPECT_EQ(after.moves[0][1] - before.moves[0][1], kGpuFull);  // GPU -> host
  EXPECT_EQ(after.moves[1][0] - before.moves[1][0], kGpuFull);  // host -> GPU
  EXPECT_EQ(after.drops[0] + after.drops[1] + after.drops[2], 0u);
  // Every block reads back byte for byte, the swapped ones from their new
  // tiers (GPU hits for the new residents).
  Read(*tm_, 1, 48, 1);
  EXPECT_EQ(tm_->GetStats().tiers[0].hits - after.tiers[0].hits, kGpuFull);
}

TEST_P(TierManagerRefreshTest, ASteadyAccessPatternStopsMovingBlocks) {
  FillGpu();
  // Each round reads the GPU residents twice and a few host blocks once: the
  // residents stay the more valuable, so after the first pass nothing moves.
  for (int round = 0; round < 8; ++round) {
    Read(*tm_, 30, 33, 1);
    Read(*tm_, 1, kGpuFull, 2);
    const StoreStats before = tm_->GetStats();
    Settle(*tm_);
    const StoreStats after = tm_->GetStats();
    EXPECT_EQ(after.moves[0][1], before.moves[0][1]) << "round " << round;
    EXPECT_EQ(after.moves[1][0], before.moves[1][0]) << "round " << round;
  }
  EXPECT_EQ(OnGpu(*tm_), Range(1, kGpuFull));
}

TEST_P(TierManagerRefreshTest, DemotedBlocksDoNotComeStraightBack) {
  FillGpu();
  Read(*tm_, 21, 20 + kGpuFull, 6);
  Settle(*tm_);
  ASSERT_EQ(OnGpu(*tm_), Range(21, 20 + kGpuFull));
  // The demoted blocks are read once more each (not enough to be candidates
  // again), the residents not at all: no block moves back.
  const StoreStats before = tm_->GetStats();
  Read(*tm_, 1, kGpuFull, 1);
  EXPECT_EQ(Settle(*tm_), 0);
  EXPECT_EQ(tm_->GetStats().moves[1][0], before.moves[1][0]);
  EXPECT_EQ(OnGpu(*tm_), Range(21, 20 + kGpuFull));
}

INSTANTIATE_TEST_SUITE_P(Policies, TierManagerRefreshTest,
                         ::testing::Values("lru", "lfu", "arc", "s3fifo", "gdsf", "adaptive"));

}  // namespace
}  // namespace kvcake::store
