#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "policy/adaptive_policy.h"
#include "policy/policy_factory.h"
#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::K;

class ClassicPromotionsTest : public ::testing::TestWithParam<std::string> {};

// Every classic policy offers host blocks that were accessed again (twice
// since they entered host memory), and nothing else, for the GPU tier.
TEST_P(ClassicPromotionsTest, HostBlocksAccessedAgainGoToTheGpu) {
  auto made = MakePolicy(GetParam());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Policy& p = **made;
  for (uint64_t h = 1; h <= 4; ++h) p.OnInsert(K(h), Tier::kHost, 10, h);
  EXPECT_TRUE(p.SelectPromotions(Tier::kDevice, 100).empty());
  p.OnAccess(K(1), Tier::kHost, 5);  // once: not yet
  EXPECT_TRUE(p.SelectPromotions(Tier::kDevice, 100).empty());
  for (uint64_t t = 6; t <= 8; ++t) p.OnAccess(K(2), Tier::kHost, t);
  p.OnAccess(K(3), Tier::kHost, 9);
  p.OnAccess(K(3), Tier::kHost, 10);
  std::vector<BlockKey> up = p.SelectPromotions(Tier::kDevice, 100);
  ASSERT_EQ(up.size(), 2u);
  EXPECT_TRUE((up[0] == K(2) && up[1] == K(3)) || (up[0] == K(3) && up[1] == K(2)));
  // They must fit: room for one.
  EXPECT_EQ(p.SelectPromotions(Tier::kDevice, 15).size(), 1u);
  // Only the GPU tier is filled this way.
  EXPECT_TRUE(p.SelectPromotions(Tier::kHost, 100).empty());
  // A promoted block is no longer a candidate; one demoted again must be
  // reused again first.
  p.OnMove(K(2), Tier::kHost, Tier::kDevice, 11);
  EXPECT_EQ(p.SelectPromotions(Tier::kDevice, 100), std::vector<BlockKey>{K(3)});
  p.OnMove(K(2), Tier::kDevice, Tier::kHost, 12);
  EXPECT_EQ(p.SelectPromotions(Tier::kDevice, 100), std::vector<BlockKey>{K(3)});
  p.OnRemove(K(3), Tier::kHost);
  EXPECT_TRUE(p.SelectPromotions(Tier::kDevice, 100).empty());
}

INSTANTIATE_TEST_SUITE_P(Classic, ClassicPromotionsTest,
                         ::testing::Values("lru", "lfu", "arc", "s3fifo", "gdsf", "adaptive"));

class ClassicExchangesTest : public ::testing::TestWithParam<std::string> {};

// A full GPU tier: blocks 1..4 on the GPU, 5..8 in host. Exchanges pair the
// host blocks that got hot with GPU victims only while the candidate is
// worth strictly more, and only for the GPU tier.
TEST_P(ClassicExchangesTest, HotHostBlocksReplaceColdGpuBlocks) {
  auto made = MakePolicy(GetParam());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Policy& p = **made;
  p.SetTierCapacity(Tier::kDevice, 40);
  p.SetTierCapacity(Tier::kHost, 400);
  auto all = [](const BlockKey&) { return true; };
  uint64_t tick = 1;
  for (uint64_t h = 1; h <= 4; ++h) p.OnInsert(K(h), Tier::kDevice, 10, tick++);
  for (uint64_t h = 5; h <= 8; ++h) p.OnInsert(K(h), Tier::kHost, 10, tick++);
  // GPU residents read often; no host block is a candidate yet.
  for (int i = 0; i < 3; ++i) {
    for (uint64_t h = 1; h <= 4; ++h) p.OnAccess(K(h), Tier::kDevice, tick++);
  }
  EXPECT_TRUE(p.SelectExchanges(Tier::kDevice, 100, all).empty());
  // Blocks 5 and 6 get hotter, later, than the residents ever were.
  for (int i = 0; i < 6; ++i) {
    for (uint64_t h = 5; h <= 6; ++h) p.OnAccess(K(h), Tier::kHost, tick++);
  }
  std::vector<Exchange> x = p.SelectExchanges(Tier::kDevice, 100, all);
  ASSERT_EQ(x.size(), 2u);
  for (const Exchange& e : x) {
    EXPECT_TRUE(e.promote == K(5) || e.promote == K(6)) << e.promote.ToString();
    EXPECT_GE(e.demote.hash, 1u);
    EXPECT_LE(e.demote.hash, 4u);
  }
  EXPECT_NE(x[0].demote, x[1].demote);
  // Bounded by max_bytes, and only for the GPU tier.
  EXPECT_EQ(p.SelectExchanges(Tier::kDevice, 15, all).size(), 1u);
  EXPECT_TRUE(p.SelectExchanges(Tier::kHost, 100, all).empty());
  // Ineligible candidates are not offered.
  auto not5or6 = [](const BlockKey& k) { return k.hash != 5 && k.hash != 6; };
  EXPECT_TRUE(p.SelectExchanges(Tier::kDevice, 100, not5or6).empty());
  // Carried out: the demoted blocks are not candidates until reused again.
  for (const Exchange& e : x) {
    p.OnMove(e.demote, Tier::kDevice, Tier::kHost, tick);
    p.OnMove(e.promote, Tier::kHost, Tier::kDevice, tick++);
  }
  EXPECT_TRUE(p.SelectExchanges(Tier::kDevice, 100, all).empty());
}

// adaptive: every namespace here serves exactly, so GDSF's exchanges.
INSTANTIATE_TEST_SUITE_P(Classic, ClassicExchangesTest,
                         ::testing::Values("lru", "lfu", "arc", "s3fifo", "gdsf", "adaptive"));

// CAKE has no exchange rule: it keeps the default, none.
TEST(ClassicExchangesTest, CakeProposesNone) {
  auto made = MakePolicy("cake");
  ASSERT_TRUE(made.ok());
  Policy& p = **made;
  p.OnInsert(K(1), Tier::kDevice, 10, 1);
  p.OnInsert(K(2), Tier::kHost, 10, 2);
  for (uint64_t t = 3; t <= 8; ++t) p.OnAccess(K(2), Tier::kHost, t);
  EXPECT_TRUE(p.SelectExchanges(Tier::kDevice, 100, [](const BlockKey&) { return true; }).empty());
}

// adaptive exchanges only blocks of namespaces CAKE does not govern.
TEST(ClassicExchangesTest, AdaptiveLeavesCakeNamespacesOut) {
  AdaptivePolicy p(ClassicPolicyOptions{}, GdsfPolicyOptions{}, CakePolicyOptions{});
  p.SetTierCapacity(Tier::kDevice, 20);
  p.SetTierCapacity(Tier::kHost, 400);
  p.RegisterNamespace(2, 1, 10);
  p.SetServingMode(2, ServingMode::kBudgeted);
  auto all = [](const BlockKey&) { return true; };
  uint64_t tick = 1;
  for (uint64_t ns : {1, 2}) p.OnInsert(K(1, ns), Tier::kDevice, 10, tick++);
  for (uint64_t ns : {1, 2}) p.OnInsert(K(2, ns), Tier::kHost, 10, tick++);
  for (int i = 0; i < 6; ++i) {
    for (uint64_t ns : {1, 2}) p.OnAccess(K(2, ns), Tier::kHost, tick++);
  }
  // Before ns 2 reports statistics both namespaces are GDSF's.
  EXPECT_EQ(p.SelectExchanges(Tier::kDevice, 100, all).size(), 2u);
  LayerSignal s;
  s.block_hashes = {1, 2};
  s.block_scores = {1.0, 1.0};
  p.ReportLayerSignal(2, s);
  ASSERT_TRUE(p.UsesCake(2));
  std::vector<Exchange> x = p.SelectExchanges(Tier::kDevice, 100, all);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0].promote, K(2, 1));
  EXPECT_EQ(x[0].demote, K(1, 1));
}

TEST(ClassicPromotionsTest, MostValuableFirst) {
  // LFU: more hits first; LRU: more recent first.
  auto lfu = MakePolicy("lfu");
  auto lru = MakePolicy("lru");
  ASSERT_TRUE(lfu.ok() && lru.ok());
  for (Policy* p : {lfu->get(), lru->get()}) {
    p->OnInsert(K(1), Tier::kHost, 10, 1);
    p->OnInsert(K(2), Tier::kHost, 10, 2);
    for (uint64_t t = 3; t <= 6; ++t) p->OnAccess(K(1), Tier::kHost, t);
    p->OnAccess(K(2), Tier::kHost, 7);
    p->OnAccess(K(2), Tier::kHost, 8);
  }
  EXPECT_EQ((*lfu)->SelectPromotions(Tier::kDevice, 10), std::vector<BlockKey>{K(1)});
  EXPECT_EQ((*lru)->SelectPromotions(Tier::kDevice, 10), std::vector<BlockKey>{K(2)});
}

TEST(ClassicPromotionsTest, PromotionsCanBeTurnedOff) {
  PolicyOptions o;
  o.lru.promote_after_accesses = 0;
  auto p = MakePolicy("lru", o);
  ASSERT_TRUE(p.ok());
  (*p)->OnInsert(K(1), Tier::kHost, 10, 1);
  for (uint64_t t = 2; t <= 5; ++t) (*p)->OnAccess(K(1), Tier::kHost, t);
  EXPECT_TRUE((*p)->SelectPromotions(Tier::kDevice, 100).empty());
}

TEST(ClassicPromotionsTest, AdaptiveLeavesBudgetedNamespacesWithStatisticsToCake) {
  AdaptivePolicy p(ClassicPolicyOptions{}, GdsfPolicyOptions{}, CakePolicyOptions{});
  p.RegisterNamespace(2, 1, 10);
  p.SetServingMode(2, ServingMode::kBudgeted);
  for (uint64_t ns : {1, 2}) {
    p.OnInsert(K(7, ns), Tier::kHost, 10, 1);
    p.OnAccess(K(7, ns), Tier::kHost, 2);
    p.OnAccess(K(7, ns), Tier::kHost, 3);
  }
  LayerSignal s;
  s.block_hashes = {7};
  s.block_scores = {1.0};
  p.ReportLayerSignal(2, s);
  ASSERT_TRUE(p.UsesCake(2));
  ASSERT_FALSE(p.UsesCake(1));
  // No GPU capacity is set, so CAKE's budgets offer nothing: only ns 1's block.
  EXPECT_EQ(p.SelectPromotions(Tier::kDevice, 100), std::vector<BlockKey>{K(7, 1)});
}

TEST(PolicyFactoryTest, BuildsEveryBaselineAndRejectsBadOptions) {
  for (const char* name :
       {"lru", "lfu", "arc", "s3fifo", "gdsf", "cake", "cake_uniform", "adaptive"}) {
    auto p = MakePolicy(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), std::string(name));
  }
  EXPECT_EQ(MakePolicy("lirs").status().code(), StatusCode::kInvalidArgument);
  PolicyOptions o;
  o.s3fifo_small_fraction = 1.5;
  EXPECT_EQ(MakePolicy("s3fifo", o).status().code(), StatusCode::kInvalidArgument);
  o = PolicyOptions{};
  o.gdsf.host_to_gpu_gbps = -1;
  EXPECT_EQ(MakePolicy("gdsf", o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::policy
