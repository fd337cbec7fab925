#include "policy/cake_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace kvcake::policy {
namespace {

bool Finite(double x) { return std::isfinite(x); }

}  // namespace

Status CakeParams::Validate() const {
  if (!Finite(tau1) || tau1 <= 0) return InvalidArgumentError("tau1 must be finite and > 0");
  if (!Finite(tau2) || tau2 <= 0) return InvalidArgumentError("tau2 must be finite and > 0");
  if (!Finite(gamma) || gamma < 0) return InvalidArgumentError("gamma must be finite and >= 0");
  if (pool_kernel < 1 || pool_kernel % 2 == 0) {
    return InvalidArgumentError("pool_kernel must be odd and >= 1");
  }
  return Status::Ok();
}

Status AttentionShape::Validate() const {
  if (num_query_heads < 1 || num_kv_heads < 1) {
    return InvalidArgumentError("num_query_heads and num_kv_heads must be >= 1");
  }
  if (num_query_heads % num_kv_heads != 0) {
    return InvalidArgumentError("num_query_heads must be a multiple of num_kv_heads");
  }
  if (window < 1) return InvalidArgumentError("window must be >= 1");
  if (window >= seq_len) return InvalidArgumentError("window must be < seq_len");
  return Status::Ok();
}

Result<LayerStats> ComputeLayerStats(std::span<const float> attention, const AttentionShape& shape,
                                     const CakeParams& params) {
  RETURN_IF_ERROR(shape.Validate());
  RETURN_IF_ERROR(params.Validate());
  const int64_t heads = shape.num_query_heads;
  const int64_t w = shape.window;
  const int64_t s = shape.seq_len;
  const int64_t n_prefix = shape.prefix_len();
  if (static_cast<int64_t>(attention.size()) < heads * w * s) {
    return InvalidArgumentError("attention holds fewer than heads * window * seq_len values");
  }
  const int64_t group = shape.num_query_heads / shape.num_kv_heads;
  LayerStats out;
  out.indicator.assign(static_cast<size_t>(shape.num_kv_heads * n_prefix), 0.0);
  std::vector<double> raw(static_cast<size_t>(n_prefix));
  double entropy = 0;
  double variance = 0;
  const int half = params.pool_kernel / 2;
  for (int64_t h = 0; h < heads; ++h) {
    const float* a = attention.data() + h * w * s;
    for (int64_t n = 0; n < n_prefix; ++n) {
      double sum = 0;
      for (int64_t i = 0; i < w; ++i) {
        const double x = a[i * s + n];
        sum += x;
        entropy -= x * std::log(x + 1e-10);
      }
      const double mean = sum / static_cast<double>(w);
      double var = 0;
      if (w > 1) {
        double ss = 0;
        for (int64_t i = 0; i < w; ++i) {
          const double d = a[i * s + n] - mean;
          ss += d * d;
        }
        var = ss / static_cast<double>(w - 1);
      }
      variance += var;
      raw[static_cast<size_t>(n)] = mean + params.gamma * var;
    }
    // Average pool (zero padding, divide by the kernel), then GQA mean.
    double* ind = out.indicator.data() + (h / group) * n_prefix;
    const double scale = 1.0 / (static_cast<double>(params.pool_kernel) * group);
    for (int64_t n = 0; n < n_prefix; ++n) {
      double acc = 0;
      const int64_t lo = std::max<int64_t>(0, n - half);
      const int64_t hi = std::min<int64_t>(n_prefix - 1, n + half);
      for (int64_t j = lo; j <= hi; ++j) acc += raw[static_cast<size_t>(j)];
      ind[n] += acc * scale;
    }
  }
  out.entropy = entropy;
  out.variance = variance;
  out.preference = std::pow(entropy, 1.0 / params.tau1) * std::pow(variance, 1.0 / params.tau2);
  return out;
}

int64_t NumBlocks(int64_t num_tokens, int64_t block_tokens) {
  if (block_tokens <= 0 || num_tokens <= 0) return 0;
  return (num_tokens + block_tokens - 1) / block_tokens;
}

template <typename T>
Status ComputeBlockScores(std::span<const T> indicator, int num_kv_heads, int num_tokens,
                          int block_tokens, std::span<double> out) {
  if (num_kv_heads < 1 || num_tokens < 1 || block_tokens < 1) {
    return InvalidArgumentError("num_kv_heads, num_tokens and block_tokens must be >= 1");
  }
  const int64_t blocks = NumBlocks(num_tokens, block_tokens);
  if (static_cast<int64_t>(indicator.size()) < int64_t{num_kv_heads} * num_tokens) {
    return InvalidArgumentError("indicator holds fewer than num_kv_heads * num_tokens values");
  }
  if (static_cast<int64_t>(out.size()) < blocks) {
    return InvalidArgumentError("output holds fewer than ceil(num_tokens / block_tokens) values");
  }
  std::fill(out.begin(), out.begin() + blocks, 0.0);
  for (int64_t kv = 0; kv < num_kv_heads; ++kv) {
    const T* ind = indicator.data() + kv * num_tokens;
    for (int64_t n = 0; n < num_tokens; ++n) {
      out[static_cast<size_t>(n / block_tokens)] += static_cast<double>(ind[n]);
    }
  }
  return Status::Ok();
}

template Status ComputeBlockScores<float>(std::span<const float>, int, int, int, std::span<double>);
template Status ComputeBlockScores<double>(std::span<const double>, int, int, int,
                                           std::span<double>);

std::vector<uint32_t> NeedleBlocks(std::span<const double> indicator, int num_kv_heads,
                                   int num_tokens, int block_tokens) {
  std::vector<uint32_t> out;
  if (num_kv_heads < 1 || num_tokens < 1 || block_tokens < 1 ||
      static_cast<int64_t>(indicator.size()) < int64_t{num_kv_heads} * num_tokens) {
    return out;
  }
  for (int64_t kv = 0; kv < num_kv_heads; ++kv) {
    const double* ind = indicator.data() + kv * num_tokens;
    const int64_t top = std::max_element(ind, ind + num_tokens) - ind;
    out.push_back(static_cast<uint32_t>(top / block_tokens));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<double> WaterLevel(std::span<const double> preference, std::span<const int64_t> caps,
                          int64_t total) {
  const size_t n = preference.size();
  if (caps.size() != n) return InvalidArgumentError("preference and caps differ in length");
  int64_t cap_sum = 0;
  for (size_t l = 0; l < n; ++l) {
    if (!Finite(preference[l]) || preference[l] < 0) {
      return InvalidArgumentError("preference " + std::to_string(l) + " must be finite and >= 0");
    }
    if (caps[l] > 0) cap_sum += caps[l];
  }
  if (total >= cap_sum) return std::numeric_limits<double>::infinity();
  // f(lam) = sum_l clamp(lam * P_l, 1, cap_l) is continuous, piecewise linear
  // and non-decreasing; its breakpoints are 1/P_l and cap_l/P_l. Walk the
  // segments in order and solve f(lam) = total on the one that crosses it.
  std::vector<double> points;
  for (size_t l = 0; l < n; ++l) {
    if (caps[l] > 0 && preference[l] > 0) {
      points.push_back(1.0 / preference[l]);
      points.push_back(static_cast<double>(caps[l]) / preference[l]);
    }
  }
  std::sort(points.begin(), points.end());
  auto f_at = [&](double lam, double* slope) {
    double f = 0;
    double sl = 0;
    for (size_t l = 0; l < n; ++l) {
      if (caps[l] <= 0) continue;
      const double x = lam * preference[l];
      const double c = static_cast<double>(caps[l]);
      if (x <= 1.0) {
        f += 1.0;
      } else if (x >= c) {
        f += c;
      } else {
        f += x;
      }
      if (x > 1.0 && x < c) sl += preference[l];
    }
    if (slope) *slope = sl;
    return f;
  };
  const double target = static_cast<double>(total);
  double lam = 0;
  double prev = 0;
  bool found = false;
  for (double p : points) {
    double slope = 0;
    const double f_prev = f_at(prev, nullptr);
    f_at(0.5 * (prev + p), &slope);
    const double f_p = f_at(p, nullptr);
    if (f_p > target) {
      // Crossing inside (prev, p]: f is linear there with the slope right of prev.
      lam = slope > 0 ? prev + (target - f_prev) / slope : prev;
      found = true;
      break;
    }
    prev = p;
  }
  if (!found) lam = prev;  // f(prev) == cap_sum > total cannot happen; defensive.
  return lam;
}

Status WaterFillBudgets(std::span<const double> preference, std::span<const int64_t> caps,
                        int64_t total, std::span<int64_t> out) {
  const size_t n = preference.size();
  if (caps.size() != n || out.size() != n) {
    return InvalidArgumentError("preference, caps and budgets must have the same length");
  }
  if (total < 0) return InvalidArgumentError("total must be >= 0");
  int64_t active = 0;
  int64_t cap_sum = 0;
  for (size_t l = 0; l < n; ++l) {
    if (!Finite(preference[l]) || preference[l] < 0) {
      return InvalidArgumentError("preference " + std::to_string(l) + " must be finite and >= 0");
    }
    if (caps[l] > 0) {
      ++active;
      cap_sum += caps[l];
    }
  }
  if (total < active) {
    return InvalidArgumentError("total (" + std::to_string(total) +
                                ") is less than one block per layer (" + std::to_string(active) +
                                ")");
  }
  if (total >= cap_sum) {
    for (size_t l = 0; l < n; ++l) out[l] = std::max<int64_t>(caps[l], 0);
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(const double lam, WaterLevel(preference, caps, total));
  int64_t assigned = 0;
  std::vector<size_t> candidates;
  for (size_t l = 0; l < n; ++l) {
    if (caps[l] <= 0) {
      out[l] = 0;
      continue;
    }
    const double x = lam * preference[l];
    const double fl = std::floor(x);
    out[l] = std::clamp<int64_t>(static_cast<int64_t>(std::min(fl, 9.0e18)), 1, caps[l]);
    assigned += out[l];
    if (x >= 1.0 && out[l] < caps[l]) candidates.push_back(l);
  }
  std::stable_sort(candidates.begin(), candidates.end(), [&](size_t a, size_t b) {
    const double xa = lam * preference[a];
    const double xb = lam * preference[b];
    return (xa - std::floor(xa)) > (xb - std::floor(xb));
  });
  int64_t leftover = total - assigned;
  // Rounding can leave more than one pass's worth only through floating-point
  // error; keep cycling over layers with room so the sum is always exact.
  while (leftover > 0) {
    bool progressed = false;
    for (size_t l : candidates) {
      if (leftover == 0) break;
      if (out[l] < caps[l]) {
        ++out[l];
        --leftover;
        progressed = true;
      }
    }
    if (!progressed) {
      for (size_t l = 0; l < n && leftover > 0; ++l) {
        if (caps[l] > 0 && out[l] < caps[l]) {
          ++out[l];
          --leftover;
          progressed = true;
        }
      }
    }
    if (!progressed) break;
  }
  while (leftover < 0) {  // Only reachable through floating-point error.
    bool progressed = false;
    for (size_t i = candidates.size(); i-- > 0 && leftover < 0;) {
      if (out[candidates[i]] > 1) {
        --out[candidates[i]];
        ++leftover;
        progressed = true;
      }
    }
    if (!progressed) break;
  }
  return Status::Ok();
}

Result<std::vector<int64_t>> WaterFillBudgets(std::span<const double> preference,
                                              std::span<const int64_t> caps, int64_t total) {
  std::vector<int64_t> out(preference.size());
  RETURN_IF_ERROR(WaterFillBudgets(preference, caps, total, std::span<int64_t>(out)));
  return out;
}

}  // namespace kvcake::policy
