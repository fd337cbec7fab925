// The daemon's default policy (adaptive) fills the GPU tier for namespaces
// that report no CAKE statistics: host blocks that are read again are
// promoted by the mover thread (ClassicPolicy::SelectPromotions).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "policy/policy_factory.h"
#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

constexpr uint64_t kSlot = 64 << 10;  // one block, one slot

BlockKey K(uint64_t h) { return BlockKey{42, h, 0}; }

Tier TierOf(TierManager& tm, const BlockKey& k) {
  for (const BlockInfo& b : tm.ListBlocks({})) {
    if (b.key == k) return b.tier;
  }
  return Tier::kRemote;  // not found
}

TEST(TierManagerPromotionTest, AdaptiveMovesRereadBlocksOfANamespaceWithoutStatisticsToTheGpu) {
  testing::TempDir dir;
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.host_capacity_bytes = 16 * kSlot;
  o.device_capacity_bytes = 8 * kSlot;  // emulated device (no CUDA)
  o.device_allow_cuda = false;
  o.host_huge_pages = false;
  o.ssd_path = dir.Sub("ssd");
  o.ssd_capacity_bytes = 1ull << 30;
  o.mover_interval_us = 2000;
  auto policy = policy::MakePolicy("adaptive");
  ASSERT_TRUE(policy.ok());
  auto opened = TierManager::Open(o, std::move(policy).value());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  TierManager& tm = **opened;
  ASSERT_TRUE(tm.has_device_tier());
  ASSERT_TRUE(tm.RegisterNamespace(testing::TestNamespace()).ok());
  for (uint64_t h = 1; h <= 8; ++h) {
    ASSERT_TRUE(tm.Put(K(h), testing::Payload(K(h), kSlot).data(), kSlot, Tier::kHost).ok());
  }
  for (uint64_t h = 1; h <= 8; ++h) ASSERT_EQ(TierOf(tm, K(h)), Tier::kHost);
  // Blocks 1..3 are read three times; 4 once; the rest never.
  std::vector<char> out(kSlot);
  for (int round = 0; round < 3; ++round) {
    for (uint64_t h = 1; h <= 3; ++h) ASSERT_TRUE(tm.Get(K(h), out.data(), out.size()).ok());
  }
  ASSERT_TRUE(tm.Get(K(4), out.data(), out.size()).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool promoted = false;
  while (!promoted && std::chrono::steady_clock::now() < deadline) {
    promoted = TierOf(tm, K(1)) == Tier::kDevice && TierOf(tm, K(2)) == Tier::kDevice &&
               TierOf(tm, K(3)) == Tier::kDevice;
    if (!promoted) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(promoted) << "re-read blocks did not reach the GPU tier";
  for (uint64_t h = 4; h <= 8; ++h) EXPECT_EQ(TierOf(tm, K(h)), Tier::kHost) << h;
  const StoreStats s = tm.GetStats();
  EXPECT_EQ(s.moves[1][0], 3u);  // host -> device
  // The promoted copies are served from the GPU tier, byte for byte.
  for (uint64_t h = 1; h <= 3; ++h) {
    auto n = tm.Get(K(h), out.data(), out.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_TRUE(out == testing::Payload(K(h), kSlot)) << h;
  }
  EXPECT_EQ(tm.GetStats().tiers[0].hits, s.tiers[0].hits + 3);
}

}  // namespace
}  // namespace kvcake::store
