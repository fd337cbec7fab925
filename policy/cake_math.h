#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::policy {

// CAKE's layer statistics, block scores and budget water-filling (docs/design.md §4;
// exact formulas in ../shared/golden/cake_vectors.json "spec"). Pure
// functions: no state, thread-safe, all arithmetic in double precision.

// Tunables of the CAKE statistics.
struct CakeParams {
  double tau1 = 1.0;     // entropy temperature in P = H^(1/tau1) * V^(1/tau2); > 0
  double tau2 = 1.0;     // variance temperature; > 0
  double gamma = 200.0;  // weight of the variance in the token indicator; >= 0
  int pool_kernel = 5;   // average-pool width over tokens; odd, >= 1
  // INVALID_ARGUMENT when a field is out of range (non-finite, tau <= 0, ...).
  Status Validate() const;
};

// Geometry of one layer's observation-window attention.
// attention is float32 [num_query_heads][window][seq_len] row-major: the
// softmax probabilities of the last `window` queries over all seq_len keys.
// Statistics cover the prefix keys n < seq_len - window.
struct AttentionShape {
  int num_query_heads = 0;  // >= 1, a multiple of num_kv_heads
  int num_kv_heads = 0;     // >= 1
  int window = 0;           // >= 1, < seq_len
  int seq_len = 0;
  int prefix_len() const { return seq_len - window; }
  // INVALID_ARGUMENT when the shape is inconsistent.
  Status Validate() const;
};

// Statistics of one layer.
struct LayerStats {
  double entropy = 0;     // H
  double variance = 0;    // V
  double preference = 0;  // P
  // [num_kv_heads][prefix_len]: pooled, GQA-averaged token indicator.
  std::vector<double> indicator;
};

// Computes H, V, P and the indicator for one layer. `attention` must hold
// num_query_heads * window * seq_len values. INVALID_ARGUMENT on a bad shape,
// bad params or a too-short span.
Result<LayerStats> ComputeLayerStats(std::span<const float> attention, const AttentionShape& shape,
                                     const CakeParams& params);

// Block scores: out[b] = sum over KV heads and tokens n in [b*block_tokens,
// (b+1)*block_tokens) of indicator[kv][n]; the last block may be partial.
// `indicator` is [num_kv_heads][num_tokens]. `out` gets ceil(num_tokens /
// block_tokens) entries. INVALID_ARGUMENT on non-positive sizes or short spans.
template <typename T>
Status ComputeBlockScores(std::span<const T> indicator, int num_kv_heads, int num_tokens,
                          int block_tokens, std::span<double> out);
int64_t NumBlocks(int64_t num_tokens, int64_t block_tokens);

// Blocks holding each KV head's highest-indicator token (the needle guard):
// sorted, unique block indices. Same layout as ComputeBlockScores.
std::vector<uint32_t> NeedleBlocks(std::span<const double> indicator, int num_kv_heads,
                                   int num_tokens, int block_tokens);

// Integer water-filling of `total` blocks over layers by preference: layers
// with caps[l] <= 0 get 0; the others b_l = clamp(floor(lam * P_l), 1, cap_l)
// with lam the largest such that sum clamp(lam * P_l, 1, cap_l) <= total, then
// the leftover one block each to the layers with 1 <= lam*P_l < cap_l by
// descending fractional part of lam * P_l (ties: lower layer). If total >=
// sum(caps) every layer gets its cap. The budgets sum to min(total,
// sum(caps)). INVALID_ARGUMENT on mismatched spans, negative or non-finite
// preferences, negative total, or total smaller than the number of layers with
// a positive cap (the one-block minimum cannot be met).
Status WaterFillBudgets(std::span<const double> preference, std::span<const int64_t> caps,
                        int64_t total, std::span<int64_t> out);

// The water level lam of WaterFillBudgets (+infinity when total >= sum(caps)).
// Adding a layer never raises it, so the real-valued allocation
// clamp(lam * P_l, 1, cap_l) and its floor are monotone as layers are added
// (CAKE's Theorem 1). The integer leftover (< one block per layer) is handed
// out by fractional part and can move by one block; see docs/policy.md.
Result<double> WaterLevel(std::span<const double> preference, std::span<const int64_t> caps,
                          int64_t total);
Result<std::vector<int64_t>> WaterFillBudgets(std::span<const double> preference,
                                              std::span<const int64_t> caps, int64_t total);

}  // namespace kvcake::policy
