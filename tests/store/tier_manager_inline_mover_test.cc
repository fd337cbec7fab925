// TierManagerOptions::mover_interval_us = 0: no mover thread; the owner runs
// the mover (RunMoverOnce), and a put into a full tier runs it itself.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

#include "policy/lru_policy.h"
#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

constexpr uint64_t kValue = 256;  // bytes per block; extents of 256 bytes

BlockKey K(uint64_t h) { return BlockKey{42, h, 0}; }

// GPU and host tiers of 16 blocks of 256 bytes each, SSD, no mover thread.
std::unique_ptr<TierManager> Open(const testing::TempDir& dir) {
  TierManagerOptions o;
  o.slot_bytes = 4096;
  o.extent_granule_bytes = kValue;
  o.device_capacity_bytes = 16 * kValue;
  o.host_capacity_bytes = 16 * kValue;
  o.device_allow_cuda = false;
  o.host_huge_pages = false;
  o.ssd_path = dir.Sub("ssd");
  o.ssd_capacity_bytes = 1 << 20;
  o.mover_interval_us = 0;
  o.reserve_wait_us = 60'000'000;  // a wait for a mover thread would show
  policy::ClassicPolicyOptions lru;
  lru.ssd_admission_hits = 1;
  auto tm = TierManager::Open(o, std::make_unique<policy::LruPolicy>(lru));
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  if (!tm.ok()) return nullptr;
  EXPECT_TRUE((*tm)->RegisterNamespace(testing::TestNamespace(42, kValue)).ok());
  return std::move(*tm);
}

TEST(TierManagerInlineMover, NothingMovesUntilTheOwnerRunsTheMover) {
  testing::TempDir dir;
  auto tm = Open(dir);
  ASSERT_TRUE(tm);
  for (uint64_t h = 1; h <= 4; ++h) {
    ASSERT_TRUE(tm->Put(K(h), testing::Payload(K(h), kValue).data(), kValue).ok());
  }
  std::vector<char> out(kValue);
  for (int round = 0; round < 3; ++round) {
    for (uint64_t h = 1; h <= 2; ++h) ASSERT_TRUE(tm->Get(K(h), out.data(), out.size()).ok());
  }
  // No thread: the re-read blocks stay in host memory...
  EXPECT_EQ(tm->GetStats().moves[1][0], 0u);
  // ...until the owner runs the mover; nothing woke it since (below the
  // watermarks), so only an unconditional run promotes.
  EXPECT_FALSE(tm->RunMoverOnce(/*only_if_woken=*/true));
  EXPECT_TRUE(tm->RunMoverOnce());
  EXPECT_GT(tm->GetStats().moves[1][0], 0u);
  EXPECT_FALSE(tm->RunMoverOnce(/*only_if_woken=*/true));
}

TEST(TierManagerInlineMover, APutIntoAFullTierDemotesInline) {
  testing::TempDir dir;
  auto tm = Open(dir);
  ASSERT_TRUE(tm);
  const auto start = std::chrono::steady_clock::now();
  // Twice the host tier, never running the mover: each put that finds the
  // tier full runs it (no 60 s wait for a thread that is not there).
  for (uint64_t h = 1; h <= 32; ++h) {
    ASSERT_TRUE(tm->Put(K(h), testing::Payload(K(h), kValue).data(), kValue).ok()) << h;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  const StoreStats s = tm->GetStats();
  EXPECT_GT(s.moves[1][2], 0u);  // host -> SSD
  EXPECT_EQ(s.drops[1] + s.drops[2], 0u);
  std::vector<char> out(kValue);
  for (uint64_t h = 1; h <= 32; ++h) {
    auto n = tm->Get(K(h), out.data(), out.size());
    ASSERT_TRUE(n.ok()) << h << ": " << n.status().ToString();
    EXPECT_TRUE(out == testing::Payload(K(h), kValue)) << h;
  }
  // Evict and Flush run the mover themselves too.
  EXPECT_TRUE(tm->Evict(K(32), Tier::kSsd).ok());
  EXPECT_TRUE(tm->Flush().ok());
}

TEST(TierManagerInlineMover, ExtentGranuleMustBeAPowerOfTwoUpToAPage) {
  for (uint64_t g : {0ull, 32ull, 100ull, 8192ull}) {
    TierManagerOptions o;
    o.extent_granule_bytes = g;
    o.host_huge_pages = false;
    EXPECT_EQ(TierManager::Open(o, nullptr).status().code(), StatusCode::kInvalidArgument) << g;
  }
}

// With a mover thread, RunMoverOnce does nothing.
TEST(TierManagerInlineMover, RunMoverOnceIsANoOpWithAThread) {
  TierManagerOptions o;
  o.host_capacity_bytes = 1 << 20;
  o.host_huge_pages = false;
  auto tm = TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  EXPECT_FALSE((*tm)->RunMoverOnce());
}

}  // namespace
}  // namespace kvcake::store
