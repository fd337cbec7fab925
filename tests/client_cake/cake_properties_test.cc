// Property tests of the CAKE signal helpers (C ABI + C++ API + policy math).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kvcake/cake.h"
#include "kvcake/kvcake_c.h"
#include "policy/cake_math.h"
#include "tests/client_cake/random_attention.h"

namespace {

using kvcake::testing::RandomAttention;

TEST(CakeProperties, BlockSizeOneEqualsTokenLevelCake) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int kvh = 1 + trial % 2;
    const int qh = kvh * (1 + trial % 3);
    const int window = 2 + trial % 5;
    const int seq_len = window + 10 + trial * 3;
    const int prefix = seq_len - window;
    auto att = RandomAttention(rng, qh, window, seq_len);
    kvcake::cake::LayerStats stats;
    ASSERT_EQ(
        kvcake::cake::ComputeLayerStats(att, {qh, kvh, window, seq_len}, {}, &stats).ToString(),
        "OK");
    std::vector<double> scores;
    ASSERT_EQ(kvcake::cake::ComputeBlockScores(stats.indicator, kvh, prefix, 1, &scores).ToString(),
              "OK");
    ASSERT_EQ(static_cast<int>(scores.size()), prefix);
    // Token-level CAKE scores each token by its indicator summed over KV heads.
    std::vector<double> token(static_cast<size_t>(prefix), 0.0);
    for (int kv = 0; kv < kvh; ++kv)
      for (int n = 0; n < prefix; ++n) token[n] += stats.indicator[kv * prefix + n];
    for (int n = 0; n < prefix; ++n) EXPECT_DOUBLE_EQ(scores[n], token[n]);
    // ...so keeping the top-k blocks keeps exactly CAKE's top-k tokens.
    const int k = prefix / 3 + 1;
    std::vector<int> by_block(prefix), by_token(prefix);
    std::iota(by_block.begin(), by_block.end(), 0);
    std::iota(by_token.begin(), by_token.end(), 0);
    std::stable_sort(by_block.begin(), by_block.end(),
                     [&](int a, int b) { return scores[a] > scores[b]; });
    std::stable_sort(by_token.begin(), by_token.end(),
                     [&](int a, int b) { return token[a] > token[b]; });
    std::vector<int> kb(by_block.begin(), by_block.begin() + k);
    std::vector<int> kt(by_token.begin(), by_token.begin() + k);
    EXPECT_EQ(kb, kt);
  }
}

TEST(CakeProperties, LargerBlocksSumTheirTokens) {
  std::mt19937_64 rng(11);
  auto att = RandomAttention(rng, 4, 4, 70);
  kvcake::cake::LayerStats stats;
  ASSERT_EQ(kvcake::cake::ComputeLayerStats(att, {4, 2, 4, 70}, {}, &stats).ToString(), "OK");
  std::vector<double> tok, blk;
  ASSERT_EQ(kvcake::cake::ComputeBlockScores(stats.indicator, 2, 66, 1, &tok).ToString(), "OK");
  ASSERT_EQ(kvcake::cake::ComputeBlockScores(stats.indicator, 2, 66, 16, &blk).ToString(), "OK");
  ASSERT_EQ(blk.size(), 5u);  // 66 tokens: 4 full blocks + a partial one
  for (size_t b = 0; b < blk.size(); ++b) {
    double sum = 0;
    for (size_t n = b * 16; n < std::min<size_t>(66, (b + 1) * 16); ++n) sum += tok[n];
    EXPECT_NEAR(blk[b], sum, 1e-9 * std::max(1.0, sum));
  }
}

TEST(CakeProperties, BudgetsSumToTotalAndRespectCaps) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> pref(0.0, 10.0);
  std::uniform_int_distribution<int64_t> cap(0, 40);
  for (int trial = 0; trial < 500; ++trial) {
    const int layers = 1 + trial % 40;
    std::vector<double> p(layers);
    std::vector<int64_t> c(layers);
    int64_t active = 0, cap_sum = 0;
    for (int l = 0; l < layers; ++l) {
      p[l] = trial % 7 == 0 && l % 3 == 0 ? 0.0 : pref(rng);
      c[l] = cap(rng);
      active += c[l] > 0;
      cap_sum += c[l];
    }
    const int64_t total = active + static_cast<int64_t>(rng() % (cap_sum + 5));
    std::vector<int64_t> b;
    ASSERT_EQ(kvcake::cake::ComputeBudgets(p, c, total, &b).ToString(), "OK");
    EXPECT_EQ(std::accumulate(b.begin(), b.end(), int64_t{0}), std::min(total, cap_sum));
    for (int l = 0; l < layers; ++l) {
      EXPECT_LE(b[l], c[l]);
      if (c[l] > 0)
        EXPECT_GE(b[l], 1);
      else
        EXPECT_EQ(b[l], 0);
    }
  }
}

// CAKE's Theorem 1: adding a layer never raises an earlier layer's budget, so
// the cascade never has to bring back what it already demoted. With integer
// budgets this holds exactly for the water level and the floored allocation;
// the leftover blocks handed out by fractional part can move one block.
TEST(CakeProperties, WaterFillingIsMonotoneAsLayersAreAdded) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> pref(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    const int layers = 2 + trial % 30;
    const int64_t cap = 4 + static_cast<int64_t>(rng() % 60);
    const int64_t total = layers + static_cast<int64_t>(rng() % (layers * cap));
    std::vector<double> p;
    std::vector<int64_t> prev;
    double prev_lam = std::numeric_limits<double>::infinity();
    for (int m = 1; m <= layers; ++m) {
      p.push_back(pref(rng));
      std::vector<int64_t> caps(static_cast<size_t>(m), cap);
      std::vector<int64_t> b;
      ASSERT_EQ(kvcake::cake::ComputeBudgets(p, caps, total, &b).ToString(), "OK");
      auto lam = kvcake::policy::WaterLevel(p, caps, total);
      ASSERT_TRUE(lam.ok());
      if (m > 1) {
        EXPECT_LE(*lam, prev_lam);
      }
      for (int l = 0; l + 1 < m; ++l) {
        EXPECT_LE(b[l], prev[l] + 1) << "trial " << trial << " m " << m << " layer " << l;
        const auto floored = [&](double x) {
          return std::clamp<int64_t>(static_cast<int64_t>(std::floor(std::min(x, 1e18))), 1, cap);
        };
        EXPECT_LE(floored(*lam * p[l]), floored(prev_lam * p[l]));
      }
      int64_t earlier = 0, earlier_prev = 0;
      for (int l = 0; l + 1 < m; ++l) {
        earlier += b[l];
        earlier_prev += prev[l];
      }
      if (m > 1 && std::isfinite(prev_lam)) {
        EXPECT_LT(earlier, earlier_prev);  // the new layer's blocks come from the others
      }
      prev = b;
      prev_lam = *lam;
    }
  }
}

TEST(CakeProperties, BadArgumentsReturnErrors) {
  std::vector<float> att(2 * 4 * 20, 0.05f);
  std::vector<float> ind(2 * 16);
  double h, v, p;
  const int kInvalid = -KVCAKE_E_INVALID_ARGUMENT;
  auto stats = [&](const float* a, int qh, int kvh, int w, int s, double t1, double t2, double g,
                   int pool, float* out) {
    return kvcake_cake_layer_stats(a, qh, kvh, w, s, t1, t2, g, pool, &h, &v, &p, out);
  };
  ASSERT_EQ(stats(att.data(), 2, 1, 4, 20, 1, 1, 200, 5, ind.data()), 0) << kvcake_last_error();
  EXPECT_EQ(stats(nullptr, 2, 1, 4, 20, 1, 1, 200, 5, ind.data()), kInvalid);
  EXPECT_NE(std::strlen(kvcake_last_error()), 0u);
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 1, 1, 200, 5, nullptr), kInvalid);
  EXPECT_EQ(
      kvcake_cake_layer_stats(att.data(), 2, 1, 4, 20, 1, 1, 200, 5, nullptr, &v, &p, ind.data()),
      kInvalid);
  EXPECT_EQ(stats(att.data(), 2, 1, 20, 20, 1, 1, 200, 5, ind.data()), kInvalid);  // window
  EXPECT_EQ(stats(att.data(), 2, 1, 21, 20, 1, 1, 200, 5, ind.data()), kInvalid);
  EXPECT_EQ(stats(att.data(), 2, 1, 0, 20, 1, 1, 200, 5, ind.data()), kInvalid);
  EXPECT_EQ(stats(att.data(), 3, 2, 4, 20, 1, 1, 200, 5, ind.data()), kInvalid);  // GQA
  EXPECT_EQ(stats(att.data(), 2, 0, 4, 20, 1, 1, 200, 5, ind.data()), kInvalid);
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 1, 1, 200, 4, ind.data()), kInvalid);  // even pool
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 1, 1, 200, 0, ind.data()), kInvalid);
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 0, 1, 200, 5, ind.data()), kInvalid);  // tau
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 1, -1, 200, 5, ind.data()), kInvalid);
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, 1, 1, -1, 5, ind.data()), kInvalid);  // gamma
  EXPECT_EQ(stats(att.data(), 2, 1, 4, 20, NAN, 1, 200, 5, ind.data()), kInvalid);

  double scores[4];
  EXPECT_EQ(kvcake_cake_block_scores(ind.data(), 1, 16, 4, scores), 0);
  EXPECT_EQ(kvcake_cake_block_scores(nullptr, 1, 16, 4, scores), kInvalid);
  EXPECT_EQ(kvcake_cake_block_scores(ind.data(), 1, 16, 4, nullptr), kInvalid);
  EXPECT_EQ(kvcake_cake_block_scores(ind.data(), 1, 16, 0, scores), kInvalid);
  EXPECT_EQ(kvcake_cake_block_scores(ind.data(), 0, 16, 4, scores), kInvalid);
  EXPECT_EQ(kvcake_cake_block_scores(ind.data(), 1, 0, 4, scores), kInvalid);

  double pref[3] = {1, 2, 3};
  int64_t caps[3] = {4, 4, 4};
  int64_t out[3];
  EXPECT_EQ(kvcake_cake_budgets(pref, caps, 3, 6, out), 0);
  EXPECT_EQ(kvcake_cake_budgets(nullptr, caps, 3, 6, out), kInvalid);
  EXPECT_EQ(kvcake_cake_budgets(pref, nullptr, 3, 6, out), kInvalid);
  EXPECT_EQ(kvcake_cake_budgets(pref, caps, 3, 6, nullptr), kInvalid);
  EXPECT_EQ(kvcake_cake_budgets(pref, caps, 0, 6, out), kInvalid);
  EXPECT_EQ(kvcake_cake_budgets(pref, caps, 3, 2, out), kInvalid);  // < 1 per layer
  EXPECT_EQ(kvcake_cake_budgets(pref, caps, 3, -1, out), kInvalid);
  double bad_pref[3] = {1, -2, 3};
  EXPECT_EQ(kvcake_cake_budgets(bad_pref, caps, 3, 6, out), kInvalid);
  bad_pref[1] = INFINITY;
  EXPECT_EQ(kvcake_cake_budgets(bad_pref, caps, 3, 6, out), kInvalid);

  kvcake::cake::LayerStats ls;
  EXPECT_EQ(kvcake::cake::ComputeLayerStats(att, {2, 1, 4, 20}, {}, nullptr).code(),
            kvcake::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      kvcake::cake::ComputeLayerStats(std::span<const float>(att).first(10), {2, 1, 4, 20}, {}, &ls)
          .code(),
      kvcake::StatusCode::kInvalidArgument);  // short span
}

TEST(CakeProperties, ErrorMessagesAreThreadLocal) {
  EXPECT_EQ(kvcake_cake_budgets(nullptr, nullptr, 1, 1, nullptr), -KVCAKE_E_INVALID_ARGUMENT);
  const std::string mine = kvcake_last_error();
  EXPECT_NE(mine.find("kvcake_cake_budgets"), std::string::npos);
}

}  // namespace
