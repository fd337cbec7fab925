// The kvcake_cake_* functions of the C ABI (kvcake_c.h) over policy/cake_math.h.
#include <cstdint>
#include <span>

#include "client/src/c_error.h"
#include "kvcake/kvcake_c.h"
#include "policy/cake_math.h"

namespace {

using kvcake::InvalidArgumentError;
using kvcake::StatusToCError;

}  // namespace

extern "C" int kvcake_cake_layer_stats(const float* attention, int num_query_heads,
                                       int num_kv_heads, int window, int seq_len, double tau1,
                                       double tau2, double gamma, int pool_kernel,
                                       double* out_entropy, double* out_variance,
                                       double* out_preference, float* out_indicator) {
  return kvcake::CatchAll("kvcake_cake_layer_stats", [&] {
    if (attention == nullptr || out_entropy == nullptr || out_variance == nullptr ||
        out_preference == nullptr || out_indicator == nullptr) {
      return StatusToCError(InvalidArgumentError("kvcake_cake_layer_stats: null pointer argument"));
    }
    kvcake::policy::AttentionShape shape;
    shape.num_query_heads = num_query_heads;
    shape.num_kv_heads = num_kv_heads;
    shape.window = window;
    shape.seq_len = seq_len;
    if (auto st = shape.Validate(); !st.ok()) {
      return StatusToCError(st.WithContext("kvcake_cake_layer_stats"));
    }
    kvcake::policy::CakeParams params;
    params.tau1 = tau1;
    params.tau2 = tau2;
    params.gamma = gamma;
    params.pool_kernel = pool_kernel;
    const size_t n = static_cast<size_t>(num_query_heads) * static_cast<size_t>(window) *
                     static_cast<size_t>(seq_len);
    auto stats =
        kvcake::policy::ComputeLayerStats(std::span<const float>(attention, n), shape, params);
    if (!stats.ok()) return StatusToCError(stats.status().WithContext("kvcake_cake_layer_stats"));
    *out_entropy = stats->entropy;
    *out_variance = stats->variance;
    *out_preference = stats->preference;
    for (size_t i = 0; i < stats->indicator.size(); ++i) {
      out_indicator[i] = static_cast<float>(stats->indicator[i]);
    }
    return 0;
  });
}

extern "C" int kvcake_cake_block_scores(const float* indicator, int num_kv_heads, int num_tokens,
                                        int block_tokens, double* out_scores) {
  return kvcake::CatchAll("kvcake_cake_block_scores", [&] {
    if (indicator == nullptr || out_scores == nullptr) {
      return StatusToCError(
          InvalidArgumentError("kvcake_cake_block_scores: null pointer argument"));
    }
    if (num_kv_heads < 1 || num_tokens < 1 || block_tokens < 1) {
      return StatusToCError(InvalidArgumentError(
          "kvcake_cake_block_scores: num_kv_heads, num_tokens and block_tokens must be >= 1"));
    }
    const size_t n = static_cast<size_t>(num_kv_heads) * static_cast<size_t>(num_tokens);
    const size_t blocks = static_cast<size_t>(kvcake::policy::NumBlocks(num_tokens, block_tokens));
    return StatusToCError(kvcake::policy::ComputeBlockScores<float>(
        std::span<const float>(indicator, n), num_kv_heads, num_tokens, block_tokens,
        std::span<double>(out_scores, blocks)));
  });
}

extern "C" int kvcake_cake_budgets(const double* preference, const int64_t* caps, int num_layers,
                                   int64_t total_blocks, int64_t* out_budgets) {
  return kvcake::CatchAll("kvcake_cake_budgets", [&] {
    if (preference == nullptr || caps == nullptr || out_budgets == nullptr) {
      return StatusToCError(InvalidArgumentError("kvcake_cake_budgets: null pointer argument"));
    }
    if (num_layers < 1) {
      return StatusToCError(InvalidArgumentError("kvcake_cake_budgets: num_layers must be >= 1"));
    }
    const size_t n = static_cast<size_t>(num_layers);
    auto st = kvcake::policy::WaterFillBudgets(std::span<const double>(preference, n),
                                               std::span<const int64_t>(caps, n), total_blocks,
                                               std::span<int64_t>(out_budgets, n));
    return StatusToCError(st.WithContext("kvcake_cake_budgets"));
  });
}
