#include "policy/adaptive_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace kvcake::policy {
namespace {

constexpr uint64_t kBytes = 10;
constexpr uint64_t kCakeNs = 1;
constexpr uint64_t kLruNs = 2;
auto AnyKey = [](const BlockKey&) { return true; };

TEST(AdaptivePolicy, ReportingNamespacesUseCakeOthersLru) {
  AdaptivePolicy p(LruPolicyOptions{}, CakePolicyOptions{});
  p.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  p.RegisterNamespace(kCakeNs, 1, kBytes);
  p.RegisterNamespace(kLruNs, 1, kBytes);
  for (uint64_t h = 1; h <= 4; ++h) {
    p.OnInsert(BlockKey{kCakeNs, h, 0}, Tier::kDevice, kBytes, h);
    p.OnInsert(BlockKey{kLruNs, h, 0}, Tier::kDevice, kBytes, h);
  }
  EXPECT_FALSE(p.UsesCake(kCakeNs));
  LayerSignal s;
  s.layer = 0;
  s.preference = 1;
  s.block_hashes = {1, 2, 3, 4, 5};
  s.block_scores = {1, 5, 0.1, 4, 1};  // block 3 is the least attended
  p.ReportLayerSignal(kCakeNs, s);
  EXPECT_TRUE(p.UsesCake(kCakeNs));
  EXPECT_FALSE(p.UsesCake(kLruNs));
  EXPECT_FALSE(p.LayerBudgets(kCakeNs, Tier::kDevice).empty());
  EXPECT_TRUE(p.LayerBudgets(kLruNs, Tier::kDevice).empty());
  // Each group holds half the tier: two victims each, by its own policy.
  auto v = p.SelectVictims(Tier::kDevice, 4 * kBytes, AnyKey);
  ASSERT_EQ(v.size(), 4u);
  std::vector<BlockKey> cake, lru;
  for (const BlockKey& k : v) (k.ns == kCakeNs ? cake : lru).push_back(k);
  EXPECT_EQ(lru, (std::vector<BlockKey>{{kLruNs, 1, 0}, {kLruNs, 2, 0}}));     // oldest
  EXPECT_EQ(cake, (std::vector<BlockKey>{{kCakeNs, 3, 0}, {kCakeNs, 4, 0}}));  // 1 is pinned
  // Admission: CAKE's cascade keeps what it can; LRU wants a second hit.
  EXPECT_TRUE(p.Admit(BlockKey{kCakeNs, 3, 0}, Tier::kSsd));
  EXPECT_FALSE(p.Admit(BlockKey{kLruNs, 3, 0}, Tier::kSsd));
  // When one group has nothing eligible the other frees the rest.
  auto only_lru = [](const BlockKey& k) { return k.ns == kLruNs; };
  v = p.SelectVictims(Tier::kDevice, 3 * kBytes, only_lru);
  EXPECT_EQ(v.size(), 3u);
  for (const BlockKey& k : v) EXPECT_EQ(k.ns, kLruNs);
}

TEST(AdaptivePolicy, TracksMovesAndRemovals) {
  AdaptivePolicy p(LruPolicyOptions{}, CakePolicyOptions{});
  const BlockKey k{kLruNs, 9, 0};
  p.OnInsert(k, Tier::kDevice, kBytes, 0);
  p.OnMove(k, Tier::kDevice, Tier::kHost, 1);
  EXPECT_TRUE(p.SelectVictims(Tier::kDevice, kBytes, AnyKey).empty());
  EXPECT_EQ(p.SelectVictims(Tier::kHost, kBytes, AnyKey), std::vector<BlockKey>{k});
  p.OnRemove(k, Tier::kHost);
  EXPECT_TRUE(p.SelectVictims(Tier::kHost, kBytes, AnyKey).empty());
}

}  // namespace
}  // namespace kvcake::policy
