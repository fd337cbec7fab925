// kvcake engine-side CAKE signals, C++ API (docs/design.md §4). The same code as
// the kvcake_cake_* C functions in kvcake_c.h. All functions are pure and
// thread-safe; they return a Status like the rest of the C++ API
// (INVALID_ARGUMENT for bad input, with a message that says which).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvcake/export.h"
#include "kvcake/status.h"

namespace kvcake::cake {

// Tunables (CAKE defaults). Plain value type, like Shape and LayerStats.
struct Params {
  double tau1 = 1.0;     // entropy temperature, > 0
  double tau2 = 1.0;     // variance temperature, > 0
  double gamma = 200.0;  // variance weight in the token indicator, >= 0
  int pool_kernel = 5;   // odd, >= 1
};

// Geometry of the observation-window attention of one layer:
// float32 [num_query_heads][window][seq_len], row-major softmax probabilities
// of the last `window` queries over all seq_len keys.
struct Shape {
  int num_query_heads = 0;
  int num_kv_heads = 0;
  int window = 0;
  int seq_len = 0;
};

// One layer's statistics: entropy H, variance V, preference P and the
// indicator [num_kv_heads][seq_len - window].
struct LayerStats {
  double entropy = 0;
  double variance = 0;
  double preference = 0;
  std::vector<float> indicator;
};

// CPU reference. `attention` must hold num_query_heads*window*seq_len values.
KVCAKE_API Status ComputeLayerStats(std::span<const float> attention, const Shape& shape,
                                    const Params& params, LayerStats* out);

// Same statistics computed on the GPU from device memory. `d_attention` and
// `d_indicator` ([num_kv_heads][seq_len - window] floats) are device
// pointers; `stream` is a cudaStream_t (nullptr: the legacy default stream).
// Synchronises with `stream` before returning. UNIMPLEMENTED in builds
// without CUDA, UNAVAILABLE when no device is usable.
KVCAKE_API Status ComputeLayerStatsOnDevice(const float* d_attention, const Shape& shape,
                                            const Params& params, void* stream, double* out_entropy,
                                            double* out_variance, double* out_preference,
                                            float* d_indicator);

// Block scores: sum over KV heads and each block's tokens of `indicator`
// ([num_kv_heads][num_tokens]); resizes *out to ceil(num_tokens/block_tokens).
KVCAKE_API Status ComputeBlockScores(std::span<const float> indicator, int num_kv_heads,
                                     int num_tokens, int block_tokens, std::vector<double>* out);

// Integer water-filling of `total_blocks` over layers by preference, capped by
// caps[l], at least one block per layer whose cap is > 0. Resizes *out.
KVCAKE_API Status ComputeBudgets(std::span<const double> preference, std::span<const int64_t> caps,
                                 int64_t total_blocks, std::vector<int64_t>* out);

}  // namespace kvcake::cake
