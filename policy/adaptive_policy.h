#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "policy/cake_policy.h"
#include "policy/lru_policy.h"
#include "policy/policy.h"

namespace kvcake::policy {

// AdaptivePolicy: the policy the daemon installs. Namespaces that reported
// CAKE statistics are governed by CakePolicy, all others by LruPolicy
// (docs/design.md §4 "without statistics"). Both inner policies see every event,
// so a namespace switches to CAKE with its full history the moment its first
// signal arrives. Victims are taken from the two groups in proportion to the
// bytes each holds in the tier. Promotions: CAKE's first, then the LRU
// group's host blocks that were accessed again (GPU tier only).
//
// Thread-safety: not thread-safe; the owner serialises all calls.
class AdaptivePolicy final : public Policy {
 public:
  AdaptivePolicy(LruPolicyOptions lru, CakePolicyOptions cake);

  std::string_view name() const override { return "adaptive"; }
  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override;
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override;
  void ReportLayerSignal(uint64_t ns, const LayerSignal& signal) override;
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const override;

  // True if `ns` is governed by CAKE.
  bool UsesCake(uint64_t ns) const { return cake_.HasStatistics(ns); }

 private:
  struct Held {
    Tier tier;
    uint64_t bytes;
  };
  std::array<uint64_t, kNumLocalTiers> CakeBytes() const;

  LruPolicy lru_;
  CakePolicy cake_;
  std::unordered_map<BlockKey, Held, BlockKeyHash> held_;
  // Bytes per tier per namespace, to split victims between the groups.
  std::unordered_map<uint64_t, std::array<uint64_t, kNumLocalTiers>> ns_bytes_;
};

}  // namespace kvcake::policy
