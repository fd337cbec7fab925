#pragma once

#include <cstdint>
#include <string_view>

namespace kvcake::policy {

// How a namespace's engine serves from the GPU tier (docs/policy.md §3).
//   kExact     the engine needs every block of a prefix on the GPU before it
//              computes: the objective is reload cost, and the default policy
//              orders every tier by a classic ranking (GDSF).
//   kBudgeted  the engine attends over a per-layer GPU budget (CAKE's
//              setting): the default policy uses CAKE's layer budgets and
//              block scores once the namespace reports statistics.
// The wire value is the enumerator's value; unknown values are rejected.
enum class ServingMode : uint8_t { kExact = 0, kBudgeted = 1 };

inline constexpr uint8_t kMaxServingMode = 1;

// "exact" or "budgeted".
constexpr std::string_view ServingModeName(ServingMode mode) {
  return mode == ServingMode::kBudgeted ? "budgeted" : "exact";
}

// Parses "exact" or "budgeted"; false (and `*out` untouched) otherwise.
constexpr bool ParseServingMode(std::string_view text, ServingMode* out) {
  if (text == "exact") {
    *out = ServingMode::kExact;
    return true;
  }
  if (text == "budgeted") {
    *out = ServingMode::kBudgeted;
    return true;
  }
  return false;
}

}  // namespace kvcake::policy
