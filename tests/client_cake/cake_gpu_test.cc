// Checks the CUDA layer-statistics kernel against the CPU reference. Skips
// cleanly when no CUDA device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kvcake/cake.h"
#include "tests/client_cake/random_attention.h"
#include "tests/common/cuda_device.h"

namespace {

using kvcake::testing::HaveCudaDevice;

using kvcake::testing::RandomAttention;

TEST(CakeGpu, KernelMatchesCpuReference) {
  if (!HaveCudaDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(42);
  const kvcake::cake::Shape shapes[] = {{8, 2, 32, 2080}, {4, 4, 8, 300}, {32, 8, 32, 4096}};
  for (const auto& shape : shapes) {
    const auto att = RandomAttention(rng, shape.num_query_heads, shape.window, shape.seq_len);
    kvcake::cake::Params params;
    params.tau1 = 1.3;
    params.tau2 = 0.7;
    kvcake::cake::LayerStats cpu;
    ASSERT_EQ(kvcake::cake::ComputeLayerStats(att, shape, params, &cpu).ToString(), "OK");
    float* d_att = nullptr;
    float* d_ind = nullptr;
    ASSERT_EQ(cudaMalloc(&d_att, att.size() * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_ind, cpu.indicator.size() * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_att, att.data(), att.size() * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
    double h = 0, v = 0, p = 0;
    ASSERT_EQ(
        kvcake::cake::ComputeLayerStatsOnDevice(d_att, shape, params, nullptr, &h, &v, &p, d_ind)
            .ToString(),
        "OK");
    std::vector<float> ind(cpu.indicator.size());
    ASSERT_EQ(cudaMemcpy(ind.data(), d_ind, ind.size() * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    cudaFree(d_att);
    cudaFree(d_ind);
    EXPECT_NEAR(h, cpu.entropy, 1e-9 * cpu.entropy);
    EXPECT_NEAR(v, cpu.variance, 1e-9 * cpu.variance);
    EXPECT_NEAR(p, cpu.preference, 1e-8 * cpu.preference);
    for (size_t i = 0; i < ind.size(); ++i) {
      ASSERT_NEAR(ind[i], cpu.indicator[i], 1e-6 * std::abs(cpu.indicator[i]) + 1e-12) << i;
    }
  }
}

TEST(CakeGpu, RejectsBadArguments) {
  double h, v, p;
  float dummy;
  EXPECT_EQ(kvcake::cake::ComputeLayerStatsOnDevice(nullptr, {2, 1, 4, 20}, {}, nullptr, &h, &v, &p,
                                                    &dummy)
                .code(),
            kvcake::StatusCode::kInvalidArgument);
  EXPECT_EQ(kvcake::cake::ComputeLayerStatsOnDevice(&dummy, {3, 2, 4, 20}, {}, nullptr, &h, &v, &p,
                                                    &dummy)
                .code(),
            kvcake::StatusCode::kInvalidArgument);
}

}  // namespace
