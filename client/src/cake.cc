// C++ API of the engine-side CAKE signals (client/include/kvcake/cake.h): thin
// wrappers over policy/cake_math.h.
#include "kvcake/cake.h"

#include <cmath>
#include <string>

#include "client/src/cake_stats_cuda.h"
#include "common/status.h"
#include "policy/cake_math.h"

namespace kvcake::cake {
namespace {

policy::CakeParams ToPolicyParams(const Params& p) {
  policy::CakeParams out;
  out.tau1 = p.tau1;
  out.tau2 = p.tau2;
  out.gamma = p.gamma;
  out.pool_kernel = p.pool_kernel;
  return out;
}

policy::AttentionShape ToPolicyShape(const Shape& s) {
  policy::AttentionShape out;
  out.num_query_heads = s.num_query_heads;
  out.num_kv_heads = s.num_kv_heads;
  out.window = s.window;
  out.seq_len = s.seq_len;
  return out;
}

}  // namespace

Status ComputeLayerStats(std::span<const float> attention, const Shape& shape, const Params& params,
                         LayerStats* out) {
  if (out == nullptr) return InvalidArgumentError("out is null");
  auto stats = policy::ComputeLayerStats(attention, ToPolicyShape(shape), ToPolicyParams(params));
  if (!stats.ok()) return stats.status();
  out->entropy = stats->entropy;
  out->variance = stats->variance;
  out->preference = stats->preference;
  out->indicator.assign(stats->indicator.begin(), stats->indicator.end());
  return Status::Ok();
}

Status ComputeBlockScores(std::span<const float> indicator, int num_kv_heads, int num_tokens,
                          int block_tokens, std::vector<double>* out) {
  if (out == nullptr) return InvalidArgumentError("out is null");
  out->assign(static_cast<size_t>(policy::NumBlocks(num_tokens, block_tokens)), 0.0);
  return policy::ComputeBlockScores<float>(indicator, num_kv_heads, num_tokens, block_tokens,
                                           std::span<double>(*out));
}

Status ComputeBudgets(std::span<const double> preference, std::span<const int64_t> caps,
                      int64_t total_blocks, std::vector<int64_t>* out) {
  if (out == nullptr) return InvalidArgumentError("out is null");
  out->assign(preference.size(), 0);
  return policy::WaterFillBudgets(preference, caps, total_blocks, std::span<int64_t>(*out));
}

Status ComputeLayerStatsOnDevice(const float* d_attention, const Shape& shape, const Params& params,
                                 void* stream, double* out_entropy, double* out_variance,
                                 double* out_preference, float* d_indicator) {
  if (d_attention == nullptr || d_indicator == nullptr || out_entropy == nullptr ||
      out_variance == nullptr || out_preference == nullptr) {
    return InvalidArgumentError("ComputeLayerStatsOnDevice: null pointer");
  }
  const policy::AttentionShape s = ToPolicyShape(shape);
  const policy::CakeParams p = ToPolicyParams(params);
  RETURN_IF_ERROR(s.Validate());
  RETURN_IF_ERROR(p.Validate());
#if defined(KVCAKE_HAVE_CUDA)
  if (!internal::HaveCudaDevice()) return UnavailableError("no CUDA device");
  double h = 0;
  double v = 0;
  const char* error = "";
  if (internal::LayerStatsOnDevice(d_attention, s.num_query_heads, s.num_kv_heads, s.window,
                                   s.seq_len, p.gamma, p.pool_kernel, stream, &h, &v, d_indicator,
                                   &error) != 0) {
    return UnavailableError(std::string("CUDA: ") + error);
  }
  *out_entropy = h;
  *out_variance = v;
  *out_preference = std::pow(h, 1.0 / p.tau1) * std::pow(v, 1.0 / p.tau2);
  return Status::Ok();
#else
  return UnimplementedError("built without CUDA");
#endif
}

}  // namespace kvcake::cake
