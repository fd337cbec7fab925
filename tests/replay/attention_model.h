#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "policy/cake_math.h"
#include "policy/policy.h"

namespace kvcake::replay {

// Parameters of the synthetic, seeded attention layer-profile model
// (docs/policy.md, "Replayer attention model"). Defaults are fixed a priori.
struct AttentionModelOptions {
  uint32_t num_layers = 32;
  uint64_t seed = 1;
  int heads = 2;                   // query heads sharing one KV head (GQA group)
  int window = 4;                  // observation queries (block granularity)
  double broad_fraction = 0.35;    // share of layers with broad attention
  int broad_first_layers = 2;      // the first layers are always broad
  double local_mass = 0.2;         // mass each query gives the window's own positions
  double sink_weight = 0.25;       // focus split: attention sink (block 0)
  double recent_weight = 0.25;     //   the last two prefix blocks
  double hot_weight = 0.5;         //   the prefix's hot blocks
  double hot_probability = 0.15;   // P(a block is hot in a layer group, per epoch)
  double shift_probability = 0.3;  // P(a block's hot set reshuffles on a turn)
  double query_hot_keep = 0.7;     // P(a query attends a given hot block)
  int layers_per_group = 4;        // hot sets are shared by groups of layers
  policy::CakeParams cake;         // CAKE params for the signals (pool_kernel 1)
  // Also fill RequestAttention's window statistics and the attention of
  // `window` further queries (the answer), for policy-eval's budgeted
  // objective. The other outputs do not change.
  bool observe_answer = false;
  Status Validate() const;
};

// Output for one request, compact ([layer][block] row-major, float): per
// layer, the attention mass of each prefix block (sums to 1; what a
// GPU-resident block is worth in gpu_attention_share), and the CAKE signal
// (P_l, block scores, needle blocks) computed from the synthetic attention by
// the real policy::ComputeLayerStats / ComputeBlockScores / NeedleBlocks.
struct RequestAttention {
  uint32_t layers = 0;
  uint32_t blocks = 0;
  std::vector<float> mass;                     // [layer][block]
  std::vector<float> scores;                   // [layer][block]
  std::vector<double> preference;              // [layer]
  std::vector<std::vector<uint32_t>> needles;  // [layer]
  // With observe_answer (else empty), for the one KV head: each block's
  // attention over the window queries, mean and unbiased variance (averaged
  // over the query heads of the group), and the answer queries' attention
  // per block (normalised over the prefix).
  std::vector<float> window_mean;  // [layer][block]
  std::vector<float> window_var;   // [layer][block]
  std::vector<float> answer_mass;  // [layer][block]
  double Mass(uint32_t l, uint32_t b) const { return mass[size_t{l} * blocks + b]; }
  // The LayerSignal an engine would report for layer `l`.
  void FillSignal(uint32_t l, const std::vector<uint64_t>& hashes, policy::LayerSignal* out) const;
};

// AttentionModel: seeded generator of per-request block-level attention.
// Deterministic for a given seed and request sequence.
// Thread-safety: not thread-safe (keeps per-block turn state).
class AttentionModel {
 public:
  explicit AttentionModel(AttentionModelOptions options);

  // Attention of one request over its prefix blocks `hashes` (in order).
  // Advances the blocks' turn state (hot sets may shift).
  RequestAttention Next(const std::vector<uint64_t>& hashes);

  // Whether layer `l` is broad (tests, docs).
  bool IsBroad(uint32_t layer) const { return broad_[layer]; }
  double Focus(uint32_t layer) const { return focus_[layer]; }

 private:
  double Hot(uint64_t hash, uint32_t layer, uint32_t epoch) const;
  // Fills layer l's window statistics and answer mass (observe_answer).
  void ObserveLayer(const std::vector<float>& att, const std::vector<double>& answer, uint32_t l,
                    RequestAttention* out) const;

  AttentionModelOptions options_;
  std::vector<bool> broad_;
  std::vector<double> focus_;  // kappa_l: share of mass on the focus set
  struct BlockState {
    uint32_t epoch = 0;
    uint32_t turns = 0;
  };
  std::unordered_map<uint64_t, BlockState> blocks_;
  uint64_t request_ = 0;
};

// SplitMix64: the model's hash / random source.
uint64_t Mix64(uint64_t x);
// Uniform double in [0, 1) from hashing the arguments.
double Unit(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0);

}  // namespace kvcake::replay
