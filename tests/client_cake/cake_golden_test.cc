// Reproduces every case of ../shared/golden/cake_vectors.json (computed
// independently of this code base) through the C ABI and the C++ API.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kvcake/cake.h"
#include "kvcake/kvcake_c.h"

namespace {

using nlohmann::json;

std::filesystem::path GoldenPath() {
  const char* src = std::getenv("KVCAKE_SOURCE_DIR");
  std::filesystem::path base = src ? std::filesystem::path(src) : std::filesystem::current_path();
  return base / ".." / "shared" / "golden" / "cake_vectors.json";
}

json LoadGolden() {
  const auto path = GoldenPath();
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "GOLDEN FILE MISSING: " << path << " — the CAKE golden vectors are required";
    return json();
  }
  return json::parse(in);
}

// Relative tolerance from the golden spec (float32 input), with an absolute
// floor relative to the vector's scale for values that are ~0.
constexpr double kRelTol = 1e-4;

void ExpectClose(double actual, double expected, double scale, const std::string& what) {
  const double tol = kRelTol * std::max(std::abs(expected), 1e-3 * scale);
  EXPECT_NEAR(actual, expected, tol) << what;
}

struct Case {
  int num_layers, qh, kvh, window, seq_len, block_tokens, pool_kernel;
  double tau1, tau2, gamma;
  int64_t total;
};

Case ReadCase(const json& c) {
  return Case{c.at("num_layers").get<int>(),
              c.at("num_query_heads").get<int>(),
              c.at("num_kv_heads").get<int>(),
              c.at("window").get<int>(),
              c.at("seq_len").get<int>(),
              c.at("block_tokens").get<int>(),
              c.at("pool_kernel").get<int>(),
              c.at("tau1").get<double>(),
              c.at("tau2").get<double>(),
              c.at("gamma").get<double>(),
              c.at("budget_total_blocks").get<int64_t>()};
}

std::vector<float> FlattenAttention(const json& a) {
  std::vector<float> out;
  for (const auto& head : a)
    for (const auto& row : head)
      for (const auto& v : row) out.push_back(static_cast<float>(v.get<double>()));
  return out;
}

std::vector<double> Flatten2(const json& a) {
  std::vector<double> out;
  for (const auto& row : a)
    for (const auto& v : row) out.push_back(v.get<double>());
  return out;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// Expects the layer's statistics to match golden layer `L`: H, V and P, the
// token indicator and the block scores, each within tolerance.
void ExpectLayerMatches(const json& L, double h, double v, double p,
                        const std::vector<float>& indicator, const std::vector<double>& scores) {
  ExpectClose(h, L["H"].get<double>(), 0, "H");
  ExpectClose(v, L["V"].get<double>(), 0, "V");
  ExpectClose(p, L["P"].get<double>(), 0, "P");
  const std::vector<double> want_ind = Flatten2(L["indicator"]);
  ASSERT_EQ(want_ind.size(), indicator.size());
  const double ind_scale = MaxAbs(want_ind);
  for (size_t i = 0; i < indicator.size(); ++i) {
    ExpectClose(indicator[i], want_ind[i], ind_scale, "indicator[" + std::to_string(i) + "]");
  }
  const std::vector<double> want_scores = L["block_scores"].get<std::vector<double>>();
  ASSERT_EQ(want_scores.size(), scores.size());
  const double score_scale = MaxAbs(want_scores);
  for (size_t b = 0; b < scores.size(); ++b) {
    ExpectClose(scores[b], want_scores[b], score_scale, "block_scores[" + std::to_string(b) + "]");
  }
}

// Runs `check` on every golden case (traced by its number) with its prefix
// length (seq_len - window) and the prefix's block count; stops at the first
// fatal failure.
void ForEachCase(
    const std::function<void(const json& c, const Case& k, int prefix, int blocks)>& check) {
  const json g = LoadGolden();
  ASSERT_TRUE(g.is_object() && g.contains("cases"));
  int case_no = 0;
  for (const auto& c : g["cases"]) {
    SCOPED_TRACE("case " + std::to_string(case_no++));
    const Case k = ReadCase(c);
    const int prefix = k.seq_len - k.window;
    const int blocks = (prefix + k.block_tokens - 1) / k.block_tokens;
    check(c, k, prefix, blocks);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(CakeGolden, FileIsPresentAndHasCases) {
  const json g = LoadGolden();
  ASSERT_TRUE(g.is_object());
  ASSERT_TRUE(g.contains("cases"));
  EXPECT_GE(g["cases"].size(), 1u);
}

TEST(CakeGolden, CAbiReproducesEveryCase) {
  ForEachCase([](const json& c, const Case& k, int prefix, int blocks) {
    std::vector<double> prefs;
    ASSERT_EQ(static_cast<int>(c["layers"].size()), k.num_layers);
    for (int l = 0; l < k.num_layers; ++l) {
      SCOPED_TRACE("layer " + std::to_string(l));
      const json& L = c["layers"][l];
      const std::vector<float> att = FlattenAttention(L["attention"]);
      ASSERT_EQ(att.size(), static_cast<size_t>(k.qh) * k.window * k.seq_len);
      double h = -1, v = -1, p = -1;
      std::vector<float> ind(static_cast<size_t>(k.kvh) * prefix, -1.0f);
      ASSERT_EQ(kvcake_cake_layer_stats(att.data(), k.qh, k.kvh, k.window, k.seq_len, k.tau1,
                                        k.tau2, k.gamma, k.pool_kernel, &h, &v, &p, ind.data()),
                0)
          << kvcake_last_error();
      std::vector<double> scores(static_cast<size_t>(blocks), -1);
      ASSERT_EQ(kvcake_cake_block_scores(ind.data(), k.kvh, prefix, k.block_tokens, scores.data()),
                0)
          << kvcake_last_error();
      ASSERT_NO_FATAL_FAILURE(ExpectLayerMatches(L, h, v, p, ind, scores));
      prefs.push_back(L["P"].get<double>());
    }
    // Budgets are exact given the golden P; caps are each layer's block count.
    std::vector<int64_t> caps(static_cast<size_t>(k.num_layers), blocks);
    std::vector<int64_t> budgets(static_cast<size_t>(k.num_layers), -1);
    ASSERT_EQ(kvcake_cake_budgets(prefs.data(), caps.data(), k.num_layers, k.total, budgets.data()),
              0)
        << kvcake_last_error();
    EXPECT_EQ(budgets, c["budgets"].get<std::vector<int64_t>>());
  });
}

TEST(CakeGolden, CppApiReproducesEveryCase) {
  ForEachCase([](const json& c, const Case& k, int prefix, int blocks) {
    kvcake::cake::Params params{k.tau1, k.tau2, k.gamma, k.pool_kernel};
    kvcake::cake::Shape shape{k.qh, k.kvh, k.window, k.seq_len};
    std::vector<double> our_prefs;
    for (int l = 0; l < k.num_layers; ++l) {
      SCOPED_TRACE("layer " + std::to_string(l));
      const json& L = c["layers"][l];
      const std::vector<float> att = FlattenAttention(L["attention"]);
      kvcake::cake::LayerStats stats;
      ASSERT_EQ(kvcake::cake::ComputeLayerStats(att, shape, params, &stats).ToString(), "OK");
      std::vector<double> scores;
      ASSERT_EQ(
          kvcake::cake::ComputeBlockScores(stats.indicator, k.kvh, prefix, k.block_tokens, &scores)
              .ToString(),
          "OK");
      ASSERT_EQ(static_cast<int>(scores.size()), blocks);
      ASSERT_NO_FATAL_FAILURE(ExpectLayerMatches(L, stats.entropy, stats.variance, stats.preference,
                                                 stats.indicator, scores));
      our_prefs.push_back(stats.preference);
    }
    std::vector<int64_t> caps(static_cast<size_t>(k.num_layers), blocks);
    std::vector<int64_t> budgets;
    // From our own P (within 1e-4 of the golden P) the budgets match as well.
    ASSERT_EQ(kvcake::cake::ComputeBudgets(our_prefs, caps, k.total, &budgets).ToString(), "OK");
    EXPECT_EQ(budgets, c["budgets"].get<std::vector<int64_t>>());
  });
}

}  // namespace
