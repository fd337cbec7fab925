#pragma once

#include <cstdint>
#include <string_view>

namespace kvcake {

// Storage tiers, fastest first (docs/design.md §3). kRemote is a peer daemon.
enum class Tier : uint8_t { kDevice = 0, kHost = 1, kSsd = 2, kRemote = 3 };
inline constexpr int kNumLocalTiers = 3;

// Index of `t` into an array of kNumLocalTiers per-tier entries: a peer's
// blocks (kRemote) count as the slowest local tier's.
constexpr int TierIndex(Tier t) {
  const int i = static_cast<int>(t);
  return i < kNumLocalTiers ? i : kNumLocalTiers - 1;
}

constexpr std::string_view TierName(Tier t) {
  switch (t) {
    case Tier::kDevice:
      return "gpu";
    case Tier::kHost:
      return "host";
    case Tier::kSsd:
      return "ssd";
    case Tier::kRemote:
      return "remote";
  }
  return "unknown";
}

}  // namespace kvcake
