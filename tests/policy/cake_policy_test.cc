#include "policy/cake_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <vector>

#include "policy/policy_factory.h"

namespace kvcake::policy {
namespace {

constexpr uint64_t kNs = 7;
constexpr uint64_t kBytes = 100;

auto AnyKey = [](const BlockKey&) { return true; };

BlockKey Key(uint64_t hash, uint32_t layer = 0) { return BlockKey{kNs, hash, layer}; }

LayerSignal Signal(uint32_t layer, double preference, std::vector<uint64_t> hashes,
                   std::vector<double> scores) {
  LayerSignal s;
  s.layer = layer;
  s.preference = preference;
  s.block_hashes = std::move(hashes);
  s.block_scores = std::move(scores);
  s.window_blocks = 1;
  return s;
}

TEST(CakePolicy, WithoutStatisticsItIsLruWithSecondHitAdmission) {
  CakePolicy p;
  p.SetTierCapacity(Tier::kDevice, 5 * kBytes);
  p.RegisterNamespace(kNs, 1, kBytes);
  for (uint64_t h = 1; h <= 5; ++h) p.OnInsert(Key(h), Tier::kDevice, kBytes, h);
  p.OnAccess(Key(1), Tier::kDevice, 6);
  EXPECT_FALSE(p.HasStatistics(kNs));
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 2 * kBytes, AnyKey),
            (std::vector<BlockKey>{Key(2), Key(3)}));
  // The eligibility filter is honoured.
  auto not_two = [](const BlockKey& k) { return k.hash != 2; };
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 2 * kBytes, not_two),
            (std::vector<BlockKey>{Key(3), Key(4)}));
  EXPECT_FALSE(p.Admit(Key(2), Tier::kSsd));  // one hit
  EXPECT_TRUE(p.Admit(Key(1), Tier::kSsd));   // two hits
  EXPECT_TRUE(p.Admit(Key(2), Tier::kHost));
  EXPECT_TRUE(p.LayerBudgets(kNs, Tier::kDevice) == std::vector<int64_t>{5});
}

TEST(CakePolicy, BudgetsFollowPreferenceAndSumToCapacity) {
  CakePolicy p;
  p.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  p.RegisterNamespace(kNs, 2, kBytes);
  std::vector<uint64_t> hashes = {1, 2, 3, 4, 5, 6};
  for (uint32_t l = 0; l < 2; ++l)
    for (uint64_t h : hashes) p.OnInsert(Key(h, l), Tier::kDevice, kBytes, 0);
  p.ReportLayerSignal(kNs, Signal(0, 3.0, hashes, {1, 1, 1, 1, 1, 1}));
  p.ReportLayerSignal(kNs, Signal(1, 1.0, hashes, {1, 1, 1, 1, 1, 1}));
  EXPECT_TRUE(p.HasStatistics(kNs));
  EXPECT_EQ(p.LayerBudgets(kNs, Tier::kDevice), (std::vector<int64_t>{6, 2}));
  // Layer 1 is 4 over its budget, layer 0 at it: all victims come from layer 1.
  auto v = p.SelectVictims(Tier::kDevice, 4 * kBytes, AnyKey);
  ASSERT_EQ(v.size(), 4u);
  for (const BlockKey& k : v) EXPECT_EQ(k.layer, 1u);

  CakePolicyOptions uniform;
  uniform.uniform_budgets = true;
  CakePolicy u(uniform);
  EXPECT_EQ(u.name(), "cake_uniform");
  u.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  u.RegisterNamespace(kNs, 2, kBytes);
  for (uint32_t l = 0; l < 2; ++l)
    for (uint64_t h : hashes) u.OnInsert(Key(h, l), Tier::kDevice, kBytes, 0);
  u.ReportLayerSignal(kNs, Signal(0, 3.0, hashes, {1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(u.LayerBudgets(kNs, Tier::kDevice), (std::vector<int64_t>{4, 4}));
}

TEST(CakePolicy, LowestScoresGoFirstAndPinnedBlocksStay) {
  CakePolicy p;
  p.SetTierCapacity(Tier::kDevice, 6 * kBytes);
  p.RegisterNamespace(kNs, 1, kBytes);
  std::vector<uint64_t> hashes = {10, 11, 12, 13, 14, 15};
  for (uint64_t h : hashes) p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  // Block 0 and the tail (window) block score low but are pinned.
  p.ReportLayerSignal(kNs, Signal(0, 1.0, hashes, {0.01, 0.2, 3.0, 0.1, 2.0, 0.01}));
  auto v = p.SelectVictims(Tier::kDevice, 3 * kBytes, AnyKey);
  EXPECT_EQ(v, (std::vector<BlockKey>{Key(13), Key(11), Key(14)}));
  v = p.SelectVictims(Tier::kDevice, 6 * kBytes, AnyKey);
  EXPECT_EQ(v.size(), 4u);  // 10 and 15 are pinned
  // The pin lasts until the layer's next report.
  p.OnInsert(Key(16), Tier::kDevice, kBytes, 1);
  p.ReportLayerSignal(kNs, Signal(0, 1.0, {12, 16}, {1.0, 1.0}));
  v = p.SelectVictims(Tier::kDevice, 7 * kBytes, AnyKey);
  EXPECT_EQ(v.size(), 5u);
  EXPECT_EQ(v.front(), Key(10));  // lowest rolling score, no longer pinned
  EXPECT_EQ(std::count(v.begin(), v.end(), Key(12)), 0);
  EXPECT_EQ(std::count(v.begin(), v.end(), Key(16)), 0);
}

TEST(CakePolicy, BoostedPinsTakeTheTopScore) {
  CakePolicyOptions o;
  o.boost_pinned = true;
  CakePolicy p(o);
  p.RegisterNamespace(kNs, 1, kBytes);
  std::vector<uint64_t> hashes = {10, 11, 12};
  for (uint64_t h : hashes) p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  p.ReportLayerSignal(kNs, Signal(0, 1.0, hashes, {0.01, 3.0, 0.01}));
  EXPECT_NEAR(p.Score(Key(10)), p.Score(Key(11)), 1e-6);
  EXPECT_NEAR(p.Score(Key(12)), p.Score(Key(11)), 1e-6);
}

TEST(CakePolicy, NeedleGuardProtectsTheTopTokenBlockWithinItsReserve) {
  CakePolicyOptions o;
  o.needle_reserve = 0.5;
  CakePolicy p(o);
  p.SetTierCapacity(Tier::kDevice, 4 * kBytes);
  p.RegisterNamespace(kNs, 1, kBytes);
  std::vector<uint64_t> hashes = {1, 2, 3, 4, 5, 6};
  for (uint64_t h : hashes) p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  LayerSignal s = Signal(0, 1.0, hashes, {1, 0.1, 0.2, 0.3, 0.4, 1});
  s.needle_blocks = {1};  // a single needle token diluted in block 1
  p.ReportLayerSignal(kNs, s);
  auto v = p.SelectVictims(Tier::kDevice, 2 * kBytes, AnyKey);
  EXPECT_EQ(v, (std::vector<BlockKey>{Key(3), Key(4)}));
}

TEST(CakePolicy, BlocksClimbBackWhenTheirScoreRises) {
  CakePolicy p;
  p.SetTierCapacity(Tier::kDevice, 3 * kBytes);
  p.SetTierCapacity(Tier::kHost, 10 * kBytes);
  p.RegisterNamespace(kNs, 1, kBytes);
  std::vector<uint64_t> hashes = {1, 2, 3, 4, 5};
  for (uint64_t h : {1, 2, 3}) p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  for (uint64_t h : {4, 5}) p.OnInsert(Key(h), Tier::kHost, kBytes, 0);
  p.ReportLayerSignal(kNs, Signal(0, 1.0, hashes, {1, 1, 1, 0.1, 5}));
  // The device tier is full: nothing to promote.
  EXPECT_TRUE(p.SelectPromotions(Tier::kDevice, 10 * kBytes).empty());
  // A device block is demoted: the best host block climbs back.
  p.OnMove(Key(2), Tier::kDevice, Tier::kHost, 1);
  EXPECT_EQ(p.SelectPromotions(Tier::kDevice, 10 * kBytes), (std::vector<BlockKey>{Key(5)}));
  EXPECT_TRUE(p.SelectPromotions(Tier::kDevice, kBytes / 2).empty());  // does not fit
}

TEST(CakePolicy, RemoveAndMoveKeepCountsConsistent) {
  CakePolicy p;
  p.RegisterNamespace(kNs, 2, kBytes);
  p.OnInsert(Key(1, 0), Tier::kDevice, kBytes, 0);
  p.OnInsert(Key(1, 1), Tier::kDevice, kBytes, 0);
  p.OnMove(Key(1, 0), Tier::kDevice, Tier::kHost, 1);
  p.OnMove(Key(1, 0), Tier::kHost, Tier::kSsd, 2);
  EXPECT_EQ(p.Size(Tier::kDevice), 1u);
  EXPECT_EQ(p.Size(Tier::kSsd), 1u);
  EXPECT_TRUE(p.Admit(Key(1, 0), Tier::kHost));
  p.OnRemove(Key(1, 0), Tier::kSsd);
  p.OnRemove(Key(1, 0), Tier::kSsd);  // unknown: ignored
  EXPECT_EQ(p.Size(Tier::kSsd), 0u);
  EXPECT_EQ(p.Score(Key(1, 0)), -1.0);
  EXPECT_EQ(p.SelectVictims(Tier::kSsd, kBytes, AnyKey), std::vector<BlockKey>{});
}

TEST(CakePolicy, AbsoluteScoresAreTheBlocksShareOfAttention) {
  CakePolicy p;  // absolute_scores is the default
  p.RegisterNamespace(kNs, 1, kBytes);
  for (uint64_t h : {1, 2, 3}) p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  EXPECT_EQ(p.Score(Key(1)), 0.0);  // never scored
  p.ReportLayerSignal(kNs, Signal(0, 1.0, {1, 2, 3}, {1, 3, 4}));
  EXPECT_NEAR(p.Score(Key(1)), 0.125, 1e-6);
  EXPECT_NEAR(p.Score(Key(2)), 0.375, 1e-6);
  // Rolling window: s = (1 - 0.2) * s_old + s_new.
  p.ReportLayerSignal(kNs, Signal(0, 1.0, {1, 2}, {1, 1}));
  EXPECT_NEAR(p.Score(Key(1)), 0.8 * 0.125 + 0.5, 1e-6);
  CakePolicyOptions o;
  o.absolute_scores = false;
  CakePolicy q(o);
  q.RegisterNamespace(kNs, 1, kBytes);
  for (uint64_t h : {1, 2, 3}) q.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
  EXPECT_EQ(q.Score(Key(1)), 1.0);
  q.ReportLayerSignal(kNs, Signal(0, 1.0, {1, 2, 3}, {1, 3, 4}));
  EXPECT_NEAR(q.Score(Key(1)), 0.8 + 1.0 / (8.0 / 3.0), 1e-6);
}

// A conversation: each turn reuses the previous turn's blocks and adds one
// new block and a new tail block (a partial block that never recurs). The
// policy learns that new non-tail blocks come back and tails do not, so of
// two fresh blocks with equal scores the tail goes first (without learning,
// the older queue entry, the non-tail block, would).
TEST(CakePolicy, LearnsThatTailBlocksDoNotComeBack) {
  for (bool gain : {true, false}) {
    for (bool learn : {true, false}) {
      CakePolicyOptions o;
      o.learn_reuse = learn;
      o.reuse_gain = gain;
      o.pin_reported = false;
      CakePolicy p(o);
      p.SetTierCapacity(Tier::kDevice, 1000 * kBytes);
      p.RegisterNamespace(kNs, 1, kBytes);
      std::vector<uint64_t> prompt = {100};
      uint64_t tick = 0;
      uint64_t fresh = 0;
      uint64_t tail = 0;
      for (uint64_t turn = 0; turn < 20; ++turn) {
        for (uint64_t h : prompt) p.OnAccess(Key(h), Tier::kDevice, ++tick);
        fresh = 1000 + turn;
        tail = 2000 + turn;
        std::vector<uint64_t> hashes = prompt;
        hashes.push_back(fresh);
        hashes.push_back(tail);
        p.OnInsert(Key(fresh), Tier::kDevice, kBytes, ++tick);
        p.OnInsert(Key(tail), Tier::kDevice, kBytes, tick);
        if (turn == 0) p.OnInsert(Key(100), Tier::kDevice, kBytes, tick);
        std::vector<double> scores(hashes.size(), 10.0);
        scores[scores.size() - 2] = 1.0;  // the fresh block
        scores.back() = 1.0;              // the tail block
        p.ReportLayerSignal(kNs, Signal(0, 1.0, hashes, scores));
        prompt.push_back(fresh);
      }
      auto v = p.SelectVictims(Tier::kDevice, kBytes, AnyKey);
      ASSERT_EQ(v.size(), 1u);
      EXPECT_EQ(v[0], Key(learn ? tail : fresh)) << "gain " << gain << " learn " << learn;
      if (learn) {
        EXPECT_GT(p.ReuseProbability(kNs, 1, 1), 2 * p.ReuseProbability(kNs, 1, 0));
      }
    }
  }
  CakePolicy q;  // before any report: every class at the prior
  EXPECT_EQ(q.ReuseProbability(kNs, 1, 0), q.ReuseProbability(kNs, 9, 3));
}

TEST(CakePolicy, UnmovedVictimsKeepTheirPlace) {
  CakePolicy p;
  p.SetTierCapacity(Tier::kDevice, 4 * kBytes);
  p.RegisterNamespace(kNs, 1, kBytes);
  for (uint64_t h = 1; h <= 4; ++h) p.OnInsert(Key(h), Tier::kDevice, kBytes, h);
  p.ReportLayerSignal(kNs, Signal(0, 1.0, {9, 1, 2, 3, 4, 9}, {1, 4, 1, 2, 3, 1}));
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 2 * kBytes, AnyKey),
            (std::vector<BlockKey>{Key(2), Key(3)}));
  // Nothing was moved: the same blocks come first again.
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 3 * kBytes, AnyKey),
            (std::vector<BlockKey>{Key(2), Key(3), Key(4)}));
}

// Many inserts, moves and removes (index growth, backward-shift deletion,
// heap compaction): sizes, scores and victim order stay those of a simple
// reference model (single layer, no statistics: LRU by last insert/move).
TEST(CakePolicy, IndexAndHeapsMatchAReferenceModelUnderChurn) {
  CakePolicy p;
  p.RegisterNamespace(kNs, 1, kBytes);
  std::map<uint64_t, int> tier_of;    // hash -> tier
  std::map<uint64_t, uint64_t> last;  // hash -> order of its last insert/move
  uint64_t clock = 0;
  uint64_t x = 12345;
  auto next = [&] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x >> 33;
  };
  for (int step = 0; step < 20000; ++step) {
    const uint64_t h = next() % 3000;
    const int op = static_cast<int>(next() % 4);
    auto it = tier_of.find(h);
    if (it == tier_of.end()) {
      p.OnInsert(Key(h), Tier::kDevice, kBytes, 0);
      tier_of[h] = 0;
      last[h] = clock++;
    } else if (op == 0) {
      p.OnRemove(Key(h), static_cast<Tier>(it->second));
      tier_of.erase(it);
      last.erase(h);
    } else if (op == 1 && it->second < 2) {
      p.OnMove(Key(h), static_cast<Tier>(it->second), static_cast<Tier>(it->second + 1), 0);
      ++it->second;
      last[h] = clock++;
    }
  }
  std::array<size_t, 3> sizes{};
  for (const auto& [h, t] : tier_of) ++sizes[t];
  for (int t = 0; t < 3; ++t) EXPECT_EQ(p.Size(static_cast<Tier>(t)), sizes[t]);
  for (uint64_t h = 0; h < 3000; ++h) {
    EXPECT_EQ(p.Score(Key(h)) >= 0, tier_of.count(h) == 1) << h;
  }
  // Victims of each tier: oldest insert/move first (all scores equal).
  for (int t = 0; t < 3; ++t) {
    std::vector<std::pair<uint64_t, uint64_t>> expect;  // (order, hash)
    for (const auto& [h, tt] : tier_of) {
      if (tt == t) expect.emplace_back(last[h], h);
    }
    std::sort(expect.begin(), expect.end());
    const size_t n = std::min<size_t>(expect.size(), 50);
    auto v = p.SelectVictims(static_cast<Tier>(t), n * kBytes, AnyKey);
    ASSERT_EQ(v.size(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(v[i], Key(expect[i].second)) << t << " " << i;
  }
}

TEST(CakePolicy, OptionsValidate) {
  EXPECT_TRUE(CakePolicyOptions{}.Validate().ok());
  CakePolicyOptions o;
  o.score_ema = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = {};
  o.needle_reserve = 1.5;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = {};
  o.score_weight = -1;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = {};
  o.reuse_buckets = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = {};
  o.reuse_buckets = 64;
  o.reuse_position_buckets = 4;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = {};
  o.reuse_prior = -1;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(PolicyFactory, MakesEveryNamedPolicy) {
  for (const char* name : {"lru", "cake", "cake_uniform", "adaptive"}) {
    auto p = MakePolicy(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
  EXPECT_EQ(MakePolicy("fifo").status().code(), StatusCode::kInvalidArgument);
  PolicyOptions bad;
  bad.cake.preference_ema = 2;
  EXPECT_EQ(MakePolicy("cake", bad).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::policy
