#pragma once

// Random causal softmax attention for the CAKE tests (header-only).

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace kvcake::testing {

// Softmax attention of the last `window` queries over `seq_len` keys with a
// causal mask (query i sits at position seq_len - window + i), for `heads`
// heads: [heads][window][seq_len], zero where masked; logits ~ N(0, 2).
inline std::vector<float> RandomAttention(std::mt19937_64& rng, int heads, int window,
                                          int seq_len) {
  std::normal_distribution<double> logit(0.0, 2.0);
  std::vector<float> a(static_cast<size_t>(heads) * window * seq_len, 0.0f);
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < window; ++i) {
      const int limit = seq_len - window + i + 1;
      std::vector<double> e(static_cast<size_t>(limit));
      double sum = 0;
      for (int n = 0; n < limit; ++n) sum += (e[n] = std::exp(logit(rng)));
      float* row = a.data() + (static_cast<size_t>(h) * window + i) * seq_len;
      for (int n = 0; n < limit; ++n) row[n] = static_cast<float>(e[n] / sum);
    }
  }
  return a;
}

}  // namespace kvcake::testing
