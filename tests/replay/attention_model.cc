#include "tests/replay/attention_model.h"

#include <algorithm>
#include <cmath>

namespace kvcake::replay {

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double Unit(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  const uint64_t h = Mix64(Mix64(Mix64(Mix64(a) ^ b) ^ c) ^ d);
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

Status AttentionModelOptions::Validate() const {
  if (num_layers < 1) return InvalidArgumentError("num_layers must be >= 1");
  if (heads < 1 || window < 2) return InvalidArgumentError("heads >= 1 and window >= 2");
  if (layers_per_group < 1) return InvalidArgumentError("layers_per_group must be >= 1");
  for (double p :
       {broad_fraction, local_mass, hot_probability, shift_probability, query_hot_keep}) {
    if (!(p >= 0 && p <= 1)) return InvalidArgumentError("probabilities must be in [0, 1]");
  }
  if (local_mass >= 1) return InvalidArgumentError("local_mass must be < 1");
  return cake.Validate();
}

AttentionModel::AttentionModel(AttentionModelOptions options) : options_(options) {
  broad_.resize(options_.num_layers);
  focus_.resize(options_.num_layers);
  for (uint32_t l = 0; l < options_.num_layers; ++l) {
    const bool broad = static_cast<int>(l) < options_.broad_first_layers ||
                       Unit(options_.seed, 0xb0adULL, l) < options_.broad_fraction;
    broad_[l] = broad;
    const double u = Unit(options_.seed, 0xf0c5ULL, l);
    focus_[l] = broad ? 0.05 + 0.20 * u : 0.60 + 0.30 * u;
  }
}

double AttentionModel::Hot(uint64_t hash, uint32_t layer, uint32_t epoch) const {
  const uint64_t group = layer / static_cast<uint32_t>(options_.layers_per_group);
  if (Unit(options_.seed, hash, group, 0x407ULL + (uint64_t{epoch} << 8)) >=
      options_.hot_probability) {
    return 0.0;
  }
  return 0.5 + Unit(options_.seed, hash, group, 0x3a9ULL + (uint64_t{epoch} << 8));
}

RequestAttention AttentionModel::Next(const std::vector<uint64_t>& hashes) {
  const uint64_t req = request_++;
  const int n = static_cast<int>(hashes.size());
  const int heads = options_.heads;
  const int w = options_.window;
  const int seq = n + w;
  RequestAttention out;
  out.layers = options_.num_layers;
  out.blocks = static_cast<uint32_t>(n);
  out.mass.assign(size_t{out.layers} * n, 0.0f);
  out.scores.assign(size_t{out.layers} * n, 0.0f);
  out.preference.assign(out.layers, 0.0);
  out.needles.resize(out.layers);
  if (options_.observe_answer) {
    out.window_mean.assign(size_t{out.layers} * n, 0.0f);
    out.window_var.assign(size_t{out.layers} * n, 0.0f);
    out.answer_mass.assign(size_t{out.layers} * n, 0.0f);
  }
  if (n == 0) return out;
  std::vector<double> answer(static_cast<size_t>(n));
  const int queries = options_.observe_answer ? 2 * w : w;  // window, then the answer
  std::vector<double> m(static_cast<size_t>(n));
  std::vector<double> block_scores(static_cast<size_t>(n));
  // Turn state: a block's hot set reshuffles with shift_probability per turn.
  std::vector<uint32_t> epoch(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    BlockState& b = blocks_[hashes[j]];
    if (b.turns > 0 &&
        Unit(options_.seed, hashes[j], b.turns, 0x5f1ULL) < options_.shift_probability) {
      ++b.epoch;
    }
    ++b.turns;
    epoch[j] = b.epoch;
  }
  std::vector<float> att(static_cast<size_t>(heads) * w * seq);
  std::vector<double> row(static_cast<size_t>(n));
  std::vector<double> hot(static_cast<size_t>(n));
  policy::AttentionShape shape;
  shape.num_query_heads = heads;
  shape.num_kv_heads = 1;
  shape.window = w;
  shape.seq_len = seq;
  for (uint32_t l = 0; l < options_.num_layers; ++l) {
    const double kappa = focus_[l];
    for (int j = 0; j < n; ++j) hot[j] = Hot(hashes[j], l, epoch[j]);
    std::fill(att.begin(), att.end(), 0.0f);
    std::fill(answer.begin(), answer.end(), 0.0);
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < queries; ++i) {
        // Background: near-uniform, with a per-(head, block) tilt that
        // persists across turns and per-query noise (every query's
        // distribution differs a little, as real attention rows do).
        double bg_sum = 0;
        for (int j = 0; j < n; ++j) {
          row[j] =
              (0.6 + 0.8 * Unit(options_.seed, hashes[j], l, 0xb9ULL + h)) *
              (0.5 + Unit(options_.seed, req, (uint64_t{l} << 32) | j, 0xc1ULL + (h << 8) + i));
          bg_sum += row[j];
        }
        for (int j = 0; j < n; ++j) row[j] *= (1 - kappa) / bg_sum;
        // Focus: sink, recent blocks, and the hot blocks this query attends.
        double f_sink = options_.sink_weight;
        double f_recent = n > 1 ? options_.recent_weight : 0.0;
        double hot_sum = 0;
        std::vector<double>& f_hot = hot;  // weights, masked per query below
        std::vector<double> keep(static_cast<size_t>(n), 0.0);
        for (int j = 0; j < n; ++j) {
          if (f_hot[j] > 0 && Unit(options_.seed, req, (uint64_t{l} << 32) | j,
                                   (uint64_t(h) << 16) | i) < options_.query_hot_keep) {
            keep[j] = f_hot[j];
            hot_sum += keep[j];
          }
        }
        const double f_hotw = hot_sum > 0 ? options_.hot_weight : 0.0;
        const double f_total = f_sink + f_recent + f_hotw;
        row[0] += kappa * f_sink / f_total;
        if (n > 1) {
          row[n - 1] += kappa * 0.5 * f_recent / f_total;
          row[n - 2] += kappa * 0.5 * f_recent / f_total;
        }
        if (hot_sum > 0) {
          for (int j = 0; j < n; ++j) row[j] += kappa * (f_hotw / f_total) * keep[j] / hot_sum;
        }
        if (i >= w) {  // an answer query: only its prefix distribution is kept
          for (int j = 0; j < n; ++j) answer[j] += row[j];
          continue;
        }
        // Prefix gets 1 - local_mass; the window's own (causal) positions the rest.
        float* a = att.data() + (static_cast<size_t>(h) * w + i) * seq;
        for (int j = 0; j < n; ++j) a[j] = static_cast<float>((1 - options_.local_mass) * row[j]);
        for (int k = 0; k <= i; ++k) a[n + k] = static_cast<float>(options_.local_mass / (i + 1));
      }
    }
    // True per-block mass: mean over heads and queries, normalised.
    std::fill(m.begin(), m.end(), 0.0);
    double total = 0;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < w; ++i)
        for (int j = 0; j < n; ++j) m[j] += att[(static_cast<size_t>(h) * w + i) * seq + j];
    for (double x : m) total += x;
    for (int j = 0; j < n; ++j) out.mass[size_t{l} * n + j] = static_cast<float>(m[j] / total);
    if (options_.observe_answer) ObserveLayer(att, answer, l, &out);
    // The engine-side signal, from the real CAKE statistics code.
    auto stats = policy::ComputeLayerStats(att, shape, options_.cake);
    if (!stats.ok()) continue;  // options are validated up front; defensive
    out.preference[l] = stats->preference;
    policy::ComputeBlockScores<double>(stats->indicator, 1, n, 1, block_scores).IgnoreError();
    for (int j = 0; j < n; ++j) out.scores[size_t{l} * n + j] = static_cast<float>(block_scores[j]);
    out.needles[l] = policy::NeedleBlocks(stats->indicator, 1, n, 1);
  }
  return out;
}

void AttentionModel::ObserveLayer(const std::vector<float>& att, const std::vector<double>& answer,
                                  uint32_t l, RequestAttention* out) const {
  const int n = static_cast<int>(out->blocks);
  const int w = options_.window;
  const int seq = n + w;
  double answer_total = 0;
  for (double x : answer) answer_total += x;
  for (int j = 0; j < n; ++j) {
    double mean = 0, var = 0;
    for (int h = 0; h < options_.heads; ++h) {
      double s = 0, s2 = 0;
      for (int i = 0; i < w; ++i) {
        const double a = att[(static_cast<size_t>(h) * w + i) * seq + j];
        s += a;
        s2 += a * a;
      }
      const double mu = s / w;
      mean += mu / options_.heads;
      var += std::max(0.0, (s2 - w * mu * mu) / (w - 1)) / options_.heads;
    }
    const size_t at = size_t{l} * n + j;
    out->window_mean[at] = static_cast<float>(mean);
    out->window_var[at] = static_cast<float>(var);
    out->answer_mass[at] = static_cast<float>(answer_total > 0 ? answer[j] / answer_total : 0);
  }
}

void RequestAttention::FillSignal(uint32_t l, const std::vector<uint64_t>& hashes,
                                  policy::LayerSignal* out) const {
  out->layer = l;
  out->preference = preference[l];
  out->block_hashes = hashes;
  out->block_scores.assign(scores.begin() + size_t{l} * blocks,
                           scores.begin() + size_t{l + 1} * blocks);
  out->window_blocks = 1;
  out->needle_blocks = needles[l];
}

}  // namespace kvcake::replay
