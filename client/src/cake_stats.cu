// CUDA kernels for the CAKE layer statistics (ComputeLayerStatsOnDevice in
// kvcake/cake.h): the same formulas as policy/cake_math.cc, one thread per
// (query head, prefix key) for the window moments and one per (KV head, key)
// for the pooled, GQA-averaged indicator. Entropy and variance are reduced in
// double precision with atomics.
#include <cuda_runtime.h>

#include "client/src/cake_stats_cuda.h"

namespace kvcake::cake::internal {
namespace {

__global__ void WindowMomentsKernel(const float* __restrict__ attention, int heads, int window,
                                    int seq_len, int prefix, double gamma, double* __restrict__ raw,
                                    double* __restrict__ sums) {
  const long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  double entropy = 0;
  double variance = 0;
  if (idx < static_cast<long long>(heads) * prefix) {
    const int h = static_cast<int>(idx / prefix);
    const int n = static_cast<int>(idx % prefix);
    const float* a = attention + static_cast<long long>(h) * window * seq_len + n;
    double sum = 0;
    for (int i = 0; i < window; ++i) {
      const double x = a[static_cast<long long>(i) * seq_len];
      sum += x;
      entropy -= x * log(x + 1e-10);
    }
    const double mean = sum / window;
    double var = 0;
    if (window > 1) {
      double ss = 0;
      for (int i = 0; i < window; ++i) {
        const double d = a[static_cast<long long>(i) * seq_len] - mean;
        ss += d * d;
      }
      var = ss / (window - 1);
    }
    variance = var;
    raw[idx] = mean + gamma * var;
  }
  // Warp reduction, then one atomic per warp.
  for (int off = 16; off > 0; off /= 2) {
    entropy += __shfl_down_sync(0xffffffffu, entropy, off);
    variance += __shfl_down_sync(0xffffffffu, variance, off);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(&sums[0], entropy);
    atomicAdd(&sums[1], variance);
  }
}

__global__ void PoolKernel(const double* __restrict__ raw, int kv_heads, int group, int prefix,
                           int pool_kernel, float* __restrict__ indicator) {
  const long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<long long>(kv_heads) * prefix) return;
  const int kv = static_cast<int>(idx / prefix);
  const int n = static_cast<int>(idx % prefix);
  const int half = pool_kernel / 2;
  const int lo = n - half < 0 ? 0 : n - half;
  const int hi = n + half > prefix - 1 ? prefix - 1 : n + half;
  double acc = 0;
  for (int g = 0; g < group; ++g) {
    const double* r = raw + static_cast<long long>(kv * group + g) * prefix;
    for (int j = lo; j <= hi; ++j) acc += r[j];
  }
  indicator[idx] = static_cast<float>(acc / (static_cast<double>(pool_kernel) * group));
}

}  // namespace

bool HaveCudaDevice() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls are not confused
    return false;
  }
  return devices > 0;
}

int LayerStatsOnDevice(const float* d_attention, int num_query_heads, int num_kv_heads, int window,
                       int seq_len, double gamma, int pool_kernel, void* stream_ptr,
                       double* out_entropy, double* out_variance, float* d_indicator,
                       const char** error) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int prefix = seq_len - window;
  const long long raw_count = static_cast<long long>(num_query_heads) * prefix;
  double* d_raw = nullptr;
  cudaError_t err =
      cudaMallocAsync(reinterpret_cast<void**>(&d_raw), sizeof(double) * (raw_count + 2), stream);
  if (err != cudaSuccess) {
    *error = cudaGetErrorString(err);
    return static_cast<int>(err);
  }
  double* d_sums = d_raw + raw_count;
  double sums[2] = {0, 0};
  err = cudaMemsetAsync(d_sums, 0, 2 * sizeof(double), stream);
  if (err == cudaSuccess) {
    constexpr int kThreads = 256;
    const unsigned blocks1 = static_cast<unsigned>((raw_count + kThreads - 1) / kThreads);
    WindowMomentsKernel<<<blocks1, kThreads, 0, stream>>>(d_attention, num_query_heads, window,
                                                          seq_len, prefix, gamma, d_raw, d_sums);
    const long long ind_count = static_cast<long long>(num_kv_heads) * prefix;
    const unsigned blocks2 = static_cast<unsigned>((ind_count + kThreads - 1) / kThreads);
    PoolKernel<<<blocks2, kThreads, 0, stream>>>(
        d_raw, num_kv_heads, num_query_heads / num_kv_heads, prefix, pool_kernel, d_indicator);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) {
    err = cudaMemcpyAsync(sums, d_sums, sizeof(sums), cudaMemcpyDeviceToHost, stream);
  }
  const cudaError_t free_err = cudaFreeAsync(d_raw, stream);
  if (err == cudaSuccess) err = free_err;
  const cudaError_t sync_err = cudaStreamSynchronize(stream);
  if (err == cudaSuccess) err = sync_err;
  if (err != cudaSuccess) {
    *error = cudaGetErrorString(err);
    return static_cast<int>(err);
  }
  *out_entropy = sums[0];
  *out_variance = sums[1];
  return 0;
}

}  // namespace kvcake::cake::internal
