#pragma once

// Internal bridge between cake.cc (C++20) and the CUDA kernels in
// cake_stats.cu (compiled as C++17 by nvcc): plain types only. Only built
// when KVCAKE_HAVE_CUDA. Thread-safe (stateless; uses the caller's stream).

namespace kvcake::cake::internal {

// True when at least one CUDA device is usable.
bool HaveCudaDevice();

// Computes H, V into *out_entropy / *out_variance and the pooled GQA-averaged
// indicator into device memory d_indicator ([num_kv_heads][seq_len-window]).
// Arguments must already be validated. Synchronises `stream`
// (a cudaStream_t). Returns 0, or a cudaError_t value with *error set to a
// static message.
int LayerStatsOnDevice(const float* d_attention, int num_query_heads, int num_kv_heads, int window,
                       int seq_len, double gamma, int pool_kernel, void* stream,
                       double* out_entropy, double* out_variance, float* d_indicator,
                       const char** error);

}  // namespace kvcake::cake::internal
