#include "policy/adaptive_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "policy/dueling_policy.h"
#include "policy/gdsf_policy.h"

namespace kvcake::policy {
namespace {

constexpr uint64_t kBytes = 10;
constexpr uint64_t kCakeNs = 1;
constexpr uint64_t kExactNs = 2;
auto AnyKey = [](const BlockKey&) { return true; };

AdaptivePolicy MakeAdaptive() {
  return AdaptivePolicy(ClassicPolicyOptions{}, GdsfPolicyOptions{}, CakePolicyOptions{});
}

LayerSignal Signal() {
  LayerSignal s;
  s.layer = 0;
  s.preference = 1;
  s.block_hashes = {1, 2, 3, 4, 5};
  s.block_scores = {1, 5, 0.1, 4, 1};  // block 3 is the least attended
  return s;
}

std::vector<BlockKey> Sorted(std::vector<BlockKey> v) {
  std::sort(v.begin(), v.end(), [](const BlockKey& a, const BlockKey& b) {
    return std::tie(a.ns, a.hash, a.layer) < std::tie(b.ns, b.hash, b.layer);
  });
  return v;
}

TEST(AdaptivePolicy, BudgetedReportingNamespacesUseCakeOthersGdsf) {
  AdaptivePolicy p = MakeAdaptive();
  p.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  p.RegisterNamespace(kCakeNs, 1, kBytes);
  p.RegisterNamespace(kExactNs, 1, kBytes);
  p.SetServingMode(kCakeNs, ServingMode::kBudgeted);
  for (uint64_t h = 1; h <= 4; ++h) {
    p.OnInsert(BlockKey{kCakeNs, h, 0}, Tier::kDevice, kBytes, h);
    p.OnInsert(BlockKey{kExactNs, h, 0}, Tier::kDevice, kBytes, h);
  }
  // The exact namespace's blocks 3 and 4 are read again: GDSF keeps them.
  p.OnAccess(BlockKey{kExactNs, 3, 0}, Tier::kDevice, 5);
  p.OnAccess(BlockKey{kExactNs, 4, 0}, Tier::kDevice, 6);
  EXPECT_FALSE(p.UsesCake(kCakeNs));
  p.ReportLayerSignal(kCakeNs, Signal());
  p.ReportLayerSignal(kExactNs, Signal());  // ignored: exact serving
  EXPECT_TRUE(p.UsesCake(kCakeNs));
  EXPECT_FALSE(p.UsesCake(kExactNs));
  EXPECT_FALSE(p.LayerBudgets(kCakeNs, Tier::kDevice).empty());
  EXPECT_TRUE(p.LayerBudgets(kExactNs, Tier::kDevice).empty());
  // Each group holds half the tier: two victims each, by its own policy.
  auto v = p.SelectVictims(Tier::kDevice, 4 * kBytes, AnyKey);
  ASSERT_EQ(v.size(), 4u);
  std::vector<BlockKey> cake, exact;
  for (const BlockKey& k : v) (k.ns == kCakeNs ? cake : exact).push_back(k);
  EXPECT_EQ(Sorted(exact), (std::vector<BlockKey>{{kExactNs, 1, 0}, {kExactNs, 2, 0}}));
  EXPECT_EQ(cake, (std::vector<BlockKey>{{kCakeNs, 3, 0}, {kCakeNs, 4, 0}}));  // 1 is pinned
  // Admission: CAKE's cascade keeps what it can; the classic one wants a second hit.
  EXPECT_TRUE(p.Admit(BlockKey{kCakeNs, 3, 0}, Tier::kSsd));
  EXPECT_FALSE(p.Admit(BlockKey{kExactNs, 1, 0}, Tier::kSsd));
  EXPECT_TRUE(p.Admit(BlockKey{kExactNs, 3, 0}, Tier::kSsd));
  // When one group has nothing eligible the other frees the rest.
  auto only_exact = [](const BlockKey& k) { return k.ns == kExactNs; };
  v = p.SelectVictims(Tier::kDevice, 3 * kBytes, only_exact);
  EXPECT_EQ(v.size(), 3u);
  for (const BlockKey& k : v) EXPECT_EQ(k.ns, kExactNs);
}

// With every namespace in exact serving (the default) the policy decides
// exactly as its classic ranking (DuelingPolicy), whatever CAKE statistics
// the engines report.
TEST(AdaptivePolicy, ExactServingDecidesAsTheClassicRanking) {
  AdaptivePolicy adaptive = MakeAdaptive();
  DuelingPolicy classic({}, {});
  Policy* both[] = {&adaptive, &classic};
  for (Policy* p : both) {
    p->SetTierCapacity(Tier::kDevice, 16 * kBytes);
    p->SetTierCapacity(Tier::kHost, 64 * kBytes);
    p->RegisterNamespace(kCakeNs, 2, kBytes);
    p->RegisterNamespace(kExactNs, 2, kBytes);
  }
  std::mt19937_64 rng(7);
  std::vector<std::pair<BlockKey, Tier>> live;
  for (uint64_t tick = 1; tick <= 2000; ++tick) {
    const uint64_t op = rng() % 10;
    if (op < 4 || live.empty()) {
      const BlockKey k{1 + rng() % 2, rng() % 40, static_cast<uint32_t>(rng() % 2)};
      if (std::any_of(live.begin(), live.end(), [&](const auto& e) { return e.first == k; })) {
        continue;
      }
      for (Policy* p : both) p->OnInsert(k, Tier::kDevice, kBytes, tick);
      live.push_back({k, Tier::kDevice});
    } else if (op < 7) {
      const auto& [k, t] = live[rng() % live.size()];
      for (Policy* p : both) p->OnAccess(k, t, tick);
    } else if (op < 8) {
      LayerSignal s = Signal();
      s.layer = static_cast<uint32_t>(rng() % 2);
      adaptive.ReportLayerSignal(1 + rng() % 2, s);
    } else {
      const Tier tier = op == 8 ? Tier::kDevice : Tier::kHost;
      const auto a = adaptive.SelectVictims(tier, 3 * kBytes, AnyKey);
      ASSERT_EQ(a, classic.SelectVictims(tier, 3 * kBytes, AnyKey)) << "tick " << tick;
      ASSERT_EQ(adaptive.SelectPromotions(Tier::kDevice, 4 * kBytes),
                classic.SelectPromotions(Tier::kDevice, 4 * kBytes));
      for (const BlockKey& k : a) {
        auto it =
            std::find_if(live.begin(), live.end(), [&](const auto& e) { return e.first == k; });
        ASSERT_NE(it, live.end());
        if (tier == Tier::kDevice) {
          for (Policy* p : both) p->OnMove(k, Tier::kDevice, Tier::kHost, tick);
          it->second = Tier::kHost;
        } else {
          ASSERT_EQ(adaptive.Admit(k, Tier::kSsd), classic.Admit(k, Tier::kSsd));
          for (Policy* p : both) p->OnRemove(k, Tier::kHost);
          live.erase(it);
        }
      }
    }
  }
  EXPECT_FALSE(adaptive.UsesCake(kCakeNs));
  EXPECT_FALSE(adaptive.UsesCake(kExactNs));
}

TEST(AdaptivePolicy, ServingModeCanChangeWithBlocksHeld) {
  AdaptivePolicy p = MakeAdaptive();
  p.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  p.RegisterNamespace(kCakeNs, 1, kBytes);
  for (uint64_t h = 1; h <= 4; ++h) p.OnInsert(BlockKey{kCakeNs, h, 0}, Tier::kDevice, kBytes, h);
  p.SetServingMode(kCakeNs, ServingMode::kBudgeted);
  p.ReportLayerSignal(kCakeNs, Signal());
  ASSERT_TRUE(p.UsesCake(kCakeNs));
  // CAKE knows the blocks inserted before the switch: the least attended goes.
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, kBytes, AnyKey),
            (std::vector<BlockKey>{{kCakeNs, 3, 0}}));
  p.SetServingMode(kCakeNs, ServingMode::kExact);
  EXPECT_FALSE(p.UsesCake(kCakeNs));
  EXPECT_TRUE(p.LayerBudgets(kCakeNs, Tier::kDevice).empty());
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 4 * kBytes, AnyKey).size(), 4u);
}

TEST(AdaptivePolicy, TracksMovesAndRemovals) {
  AdaptivePolicy p = MakeAdaptive();
  const BlockKey k{kExactNs, 9, 0};
  p.OnInsert(k, Tier::kDevice, kBytes, 0);
  p.OnMove(k, Tier::kDevice, Tier::kHost, 1);
  EXPECT_TRUE(p.SelectVictims(Tier::kDevice, kBytes, AnyKey).empty());
  EXPECT_EQ(p.SelectVictims(Tier::kHost, kBytes, AnyKey), std::vector<BlockKey>{k});
  p.OnRemove(k, Tier::kHost);
  EXPECT_TRUE(p.SelectVictims(Tier::kHost, kBytes, AnyKey).empty());
}

TEST(ServingMode, ParsesAndNames) {
  ServingMode m = ServingMode::kBudgeted;
  EXPECT_TRUE(ParseServingMode("exact", &m));
  EXPECT_EQ(m, ServingMode::kExact);
  EXPECT_TRUE(ParseServingMode("budgeted", &m));
  EXPECT_EQ(m, ServingMode::kBudgeted);
  EXPECT_FALSE(ParseServingMode("Budgeted", &m));
  EXPECT_FALSE(ParseServingMode("", &m));
  EXPECT_EQ(m, ServingMode::kBudgeted);
  EXPECT_EQ(ServingModeName(ServingMode::kExact), "exact");
  EXPECT_EQ(ServingModeName(ServingMode::kBudgeted), "budgeted");
}

}  // namespace
}  // namespace kvcake::policy
