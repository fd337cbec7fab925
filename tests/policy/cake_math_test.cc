#include "policy/cake_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

namespace kvcake::policy {
namespace {

TEST(CakeMath, UniformAttentionHasMaximalEntropyAndNoVariance) {
  // 1 head, window 3, seq 7: every query spreads evenly over the 4 prefix keys
  // (the window keys get nothing), so H = 3 * 4 * -(1/4 ln 1/4), V = 0.
  const int w = 3, s = 7;
  std::vector<float> a(static_cast<size_t>(w) * s, 0.0f);
  for (int i = 0; i < w; ++i)
    for (int n = 0; n < 4; ++n) a[i * s + n] = 0.25f;
  AttentionShape shape{1, 1, w, s};
  CakeParams params;
  params.pool_kernel = 1;
  auto st = ComputeLayerStats(a, shape, params);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_NEAR(st->entropy, -12 * 0.25 * std::log(0.25 + 1e-10), 1e-9);
  EXPECT_DOUBLE_EQ(st->variance, 0.0);
  EXPECT_DOUBLE_EQ(st->preference, 0.0);
  ASSERT_EQ(st->indicator.size(), 4u);
  for (double x : st->indicator) EXPECT_NEAR(x, 0.25, 1e-7);
}

TEST(CakeMath, PoolingUsesZeroPaddingAndDividesByKernel) {
  // One query head, window 2 with identical rows: indicator = mean = the row.
  const int w = 2, s = 7;
  std::vector<float> a(static_cast<size_t>(w) * s, 0.0f);
  const float row[5] = {0.5f, 0.0f, 0.0f, 0.0f, 0.5f};
  for (int i = 0; i < w; ++i)
    for (int n = 0; n < 5; ++n) a[i * s + n] = row[n];
  CakeParams params;
  params.pool_kernel = 3;
  auto st = ComputeLayerStats(a, AttentionShape{1, 1, w, s}, params);
  ASSERT_TRUE(st.ok());
  const std::vector<double> want = {0.5 / 3, 0.5 / 3, 0.0, 0.5 / 3, 0.5 / 3};
  ASSERT_EQ(st->indicator.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(st->indicator[i], want[i], 1e-8) << i;
}

TEST(CakeMath, GqaAveragesQueryHeadsOfAGroup) {
  // 2 query heads, 1 KV head: head 0 attends key 0, head 1 key 1.
  const int w = 2, s = 4;
  std::vector<float> a(static_cast<size_t>(2) * w * s, 0.0f);
  for (int i = 0; i < w; ++i) {
    a[(0 * w + i) * s + 0] = 1.0f;
    a[(1 * w + i) * s + 1] = 1.0f;
  }
  CakeParams params;
  params.pool_kernel = 1;
  auto st = ComputeLayerStats(a, AttentionShape{2, 1, w, s}, params);
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->indicator.size(), 2u);
  EXPECT_NEAR(st->indicator[0], 0.5, 1e-9);
  EXPECT_NEAR(st->indicator[1], 0.5, 1e-9);
}

TEST(CakeMath, NeedleBlocksFindEachHeadsTopToken) {
  // 2 KV heads x 8 tokens, blocks of 4: head 0 peaks at token 6, head 1 at 1.
  std::vector<double> ind(16, 0.01);
  ind[6] = 0.9;
  ind[8 + 1] = 0.8;
  EXPECT_EQ(NeedleBlocks(ind, 2, 8, 4), (std::vector<uint32_t>{0, 1}));
  ind[8 + 1] = 0.0;
  ind[8 + 7] = 0.8;
  EXPECT_EQ(NeedleBlocks(ind, 2, 8, 4), (std::vector<uint32_t>{1}));
}

TEST(CakeMath, WaterFillingExamples) {
  // Plenty: everyone gets the cap.
  auto b = WaterFillBudgets(std::vector<double>{1, 2, 3}, std::vector<int64_t>{2, 2, 2}, 10);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{2, 2, 2}));
  // Proportional: P = 1:3, total 8 -> 2:6.
  b = WaterFillBudgets(std::vector<double>{1, 3}, std::vector<int64_t>{100, 100}, 8);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{2, 6}));
  // Cap binds and the rest flows to the others; the zero-preference layer gets 1.
  b = WaterFillBudgets(std::vector<double>{10, 1, 0}, std::vector<int64_t>{3, 100, 100}, 12);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{3, 8, 1}));
  // A layer with cap 0 gets nothing.
  b = WaterFillBudgets(std::vector<double>{1, 1}, std::vector<int64_t>{0, 5}, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{0, 3}));
  // Leftover by fractional part, ties to the lower layer: 3 over equal P.
  b = WaterFillBudgets(std::vector<double>{1, 1}, std::vector<int64_t>{5, 5}, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{2, 1}));
}

TEST(CakeMath, ParamsAndShapeValidation) {
  EXPECT_TRUE(CakeParams{}.Validate().ok());
  CakeParams p;
  p.pool_kernel = 2;
  EXPECT_EQ(p.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((AttentionShape{4, 3, 2, 10}).Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((AttentionShape{4, 2, 10, 10}).Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((AttentionShape{4, 2, 9, 10}).Validate().ok());
}

}  // namespace
}  // namespace kvcake::policy
