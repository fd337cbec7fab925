#include "policy/lru_policy.h"

#include <gtest/gtest.h>

#include <vector>

namespace kvcake::policy {
namespace {

BlockKey K(uint64_t h, uint32_t layer = 0) { return BlockKey{1, h, layer}; }
auto All() {
  return [](const BlockKey&) { return true; };
}

TEST(LruPolicyTest, VictimsAreLeastRecentFirstAndAccessRefreshes) {
  LruPolicy p;
  for (uint64_t h = 1; h <= 4; ++h) p.OnInsert(K(h), Tier::kHost, 10, h);
  p.OnAccess(K(1), Tier::kHost, 5);  // 1 becomes the most recent
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 25, All()), (std::vector<BlockKey>{K(2), K(3), K(4)}));
  // Ineligible blocks are skipped, not counted.
  auto not3 = [](const BlockKey& k) { return k.hash != 3; };
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 20, not3), (std::vector<BlockKey>{K(2), K(4)}));
  EXPECT_EQ(p.Size(Tier::kHost), 4u);
}

TEST(LruPolicyTest, MovesEnterTheOtherTierAsMostRecent) {
  LruPolicy p;
  for (uint64_t h = 1; h <= 3; ++h) p.OnInsert(K(h), Tier::kHost, 10, h);
  p.OnInsert(K(9), Tier::kSsd, 10, 4);
  p.OnMove(K(1), Tier::kHost, Tier::kSsd, 5);
  EXPECT_EQ(p.Size(Tier::kHost), 2u);
  EXPECT_EQ(p.Size(Tier::kSsd), 2u);
  EXPECT_EQ(p.SelectVictims(Tier::kSsd, 10, All()), (std::vector<BlockKey>{K(9)}));
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 100, All()), (std::vector<BlockKey>{K(2), K(3)}));
  // A moved block is removed from the tier it moved to.
  p.OnRemove(K(1), Tier::kSsd);
  EXPECT_EQ(p.Size(Tier::kSsd), 1u);
  EXPECT_EQ(p.SelectVictims(Tier::kSsd, 100, All()), (std::vector<BlockKey>{K(9)}));
}

TEST(LruPolicyTest, VictimsComeOnlyFromTheAskedTier) {
  LruPolicy p;
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  p.OnInsert(K(2), Tier::kHost, 100, 2);
  p.OnInsert(K(3), Tier::kDevice, 100, 3);
  auto not1 = [](const BlockKey& k) { return k.hash != 1; };
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 1000, not1), (std::vector<BlockKey>{K(2)}));
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 1000, All()), (std::vector<BlockKey>{K(3)}));
  EXPECT_TRUE(p.SelectVictims(Tier::kSsd, 1000, All()).empty());
}

TEST(LruPolicyTest, SecondHitAdmissionAndGhosts) {
  LruPolicyOptions o;
  o.ghost_entries = 2;
  LruPolicy p(o);
  p.OnInsert(K(1), Tier::kHost, 10, 1);
  EXPECT_FALSE(p.Admit(K(1), Tier::kSsd));    // one hit so far
  EXPECT_TRUE(p.Admit(K(1), Tier::kDevice));  // memory tiers admit everything
  EXPECT_TRUE(p.Admit(K(1), Tier::kHost));
  p.OnAccess(K(1), Tier::kHost, 2);
  EXPECT_TRUE(p.Admit(K(1), Tier::kSsd));
  // A dropped key comes back as a second hit while it is remembered ...
  p.OnInsert(K(2), Tier::kHost, 10, 3);
  p.OnRemove(K(2), Tier::kHost);
  p.OnInsert(K(2), Tier::kHost, 10, 4);
  EXPECT_TRUE(p.Admit(K(2), Tier::kSsd));
  // ... and not once it has been pushed out of the FIFO of 2.
  for (uint64_t h : {3, 4, 5}) {
    p.OnInsert(K(h), Tier::kHost, 10, 5);
    p.OnRemove(K(h), Tier::kHost);
  }
  p.OnInsert(K(3), Tier::kHost, 10, 6);
  EXPECT_FALSE(p.Admit(K(3), Tier::kSsd));
  p.OnInsert(K(5), Tier::kHost, 10, 7);
  EXPECT_TRUE(p.Admit(K(5), Tier::kSsd));
  EXPECT_FALSE(p.Admit(K(42), Tier::kSsd));  // unknown
}

TEST(LruPolicyTest, AdmitAllOption) {
  LruPolicy p(LruPolicyOptions{.ssd_admission_hits = 1});
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  EXPECT_TRUE(p.Admit(K(1), Tier::kSsd));  // the first hit is enough
}

// Many inserts and removals (pool slots reused, index grown and shrunk) keep
// exact LRU order over the survivors.
TEST(LruPolicyTest, ChurnKeepsExactOrder) {
  LruPolicy p;
  std::vector<BlockKey> order;  // least recent first
  for (uint64_t h = 0; h < 5000; ++h) {
    p.OnInsert(K(h, h % 3), Tier::kHost, 1, h);
    order.push_back(K(h, h % 3));
    if (h % 3 == 0) {
      p.OnRemove(order[order.size() / 2], Tier::kHost);
      order.erase(order.begin() + static_cast<long>(order.size() / 2));
    }
  }
  EXPECT_EQ(p.Size(Tier::kHost), order.size());
  EXPECT_EQ(p.SelectVictims(Tier::kHost, order.size(), All()), order);
}

}  // namespace
}  // namespace kvcake::policy
