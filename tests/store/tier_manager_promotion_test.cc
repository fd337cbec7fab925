// The daemon's default policy (adaptive) fills the GPU tier for namespaces
// that report no CAKE statistics, and so does every classic policy: host
// blocks that are read again are promoted by the mover thread
// (ClassicPolicy::SelectPromotions).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
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

class TierManagerPromotionTest : public ::testing::TestWithParam<std::string> {};

// 8-slot GPU tier (emulated device), 16-slot host tier, SSD, policy `name`
// policy with SSD admission of every block.
std::unique_ptr<TierManager> Open(const testing::TempDir& dir, const std::string& name) {
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.host_capacity_bytes = 16 * kSlot;
  o.device_capacity_bytes = 8 * kSlot;  // emulated device (no CUDA)
  o.device_allow_cuda = false;
  o.host_huge_pages = false;
  o.ssd_path = dir.Sub("ssd");
  o.ssd_capacity_bytes = 1ull << 30;
  o.mover_interval_us = 2000;
  policy::PolicyOptions po;
  po.lru.ssd_admission_hits = 1;
  auto policy = policy::MakePolicy(name, po);
  EXPECT_TRUE(policy.ok()) << name;
  if (!policy.ok()) return nullptr;
  auto opened = TierManager::Open(o, std::move(policy).value());
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return nullptr;
  EXPECT_TRUE((*opened)->RegisterNamespace(testing::TestNamespace()).ok());
  return std::move(*opened);
}

TEST_P(TierManagerPromotionTest, RereadBlocksOfANamespaceWithoutStatisticsReachTheGpu) {
  testing::TempDir dir;
  auto opened = Open(dir, GetParam());
  ASSERT_TRUE(opened);
  TierManager& tm = *opened;
  ASSERT_TRUE(tm.has_device_tier());
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

// Each policy's victims cascade a full GPU tier down to host and SSD without
// losing a block.
TEST_P(TierManagerPromotionTest, DeviceOverflowCascadesWithoutLoss) {
  testing::TempDir dir;
  auto tm = Open(dir, GetParam());
  ASSERT_TRUE(tm);
  for (uint64_t h = 1; h <= 40; ++h) {
    ASSERT_TRUE(tm->Put(K(h), testing::Payload(K(h), kSlot).data(), kSlot, Tier::kDevice).ok())
        << h;
  }
  std::vector<char> out(kSlot);
  for (uint64_t h = 1; h <= 40; ++h) {
    auto n = tm->Get(K(h), out.data(), out.size());
    ASSERT_TRUE(n.ok()) << h << ": " << n.status().ToString();
    EXPECT_TRUE(out == testing::Payload(K(h), kSlot)) << h;
  }
  const StoreStats s = tm->GetStats();
  EXPECT_GT(s.moves[0][1], 0u);  // device -> host
  EXPECT_GT(s.moves[1][2], 0u);  // host -> ssd
  EXPECT_EQ(s.drops[0] + s.drops[1] + s.drops[2], 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, TierManagerPromotionTest,
                         ::testing::Values("adaptive", "lru", "lfu", "arc", "s3fifo", "gdsf"));

}  // namespace
}  // namespace kvcake::store
