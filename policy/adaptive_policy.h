#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "policy/cake_policy.h"
#include "policy/classic_policy.h"
#include "policy/dueling_policy.h"
#include "policy/gdsf_policy.h"
#include "policy/policy.h"

namespace kvcake::policy {

// AdaptivePolicy: the policy the daemon installs (docs/policy.md §3).
//
// Exact serving (the default ServingMode): the engine needs every block of a
// prefix, so the objective is reload cost. Tiers are ranked by GDSF, the
// host tier by LRU instead while LRU has been wrong less often lately
// (DuelingPolicy: neither wins on every part of the conversation trace),
// with the classic SSD admission and GPU promotions of host blocks read
// again. CAKE signals of such namespaces are ignored.
//
// Budgeted serving (SetServingMode(ns, kBudgeted)): once the namespace
// reports CAKE statistics it is governed by CakePolicy (layer budgets, block
// scores, cascade). Until then it is ranked like the others.
//
// CakePolicy sees only the events of budgeted namespaces; the classic
// ranking sees every event, so a budgeted namespace falls back with its full
// history, and its block table answers where each block is and how large it
// is.
// Victims are taken from the two groups in proportion to the bytes each
// holds in the tier. Promotions: CAKE's first, then the classic ranking's
// host blocks of the other namespaces that were accessed again (GPU tier
// only). A full GPU tier is refreshed by the classic ranking's exchanges
// among those namespaces' blocks.
//
// Thread-safety: not thread-safe; the owner serialises all calls.
class AdaptivePolicy final : public Policy {
 public:
  AdaptivePolicy(ClassicPolicyOptions classic, GdsfPolicyOptions costs, CakePolicyOptions cake);

  std::string_view name() const override { return "adaptive"; }
  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) override;
  void SetServingMode(uint64_t ns, ServingMode mode) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override;
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override;
  // The classic ranking's exchanges among the blocks of namespaces CAKE does not govern
  // (CAKE proposes none).
  std::vector<Exchange> SelectExchanges(
      Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) override;
  void ReportLayerSignal(uint64_t ns, const LayerSignal& signal) override;
  // The classic ranking's (that of the exact-serving namespaces).
  std::string_view Ranking(Tier tier) const override { return classic_.Ranking(tier); }
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const override;

  // True if `ns` is governed by CAKE: budgeted serving and statistics reported.
  bool UsesCake(uint64_t ns) const { return Budgeted(ns) && cake_.HasStatistics(ns); }

 private:
  bool Budgeted(uint64_t ns) const { return budgeted_.count(ns) != 0; }
  std::array<uint64_t, kNumLocalTiers> CakeBytes() const;
  // Bytes of a block the classic ranking tracks (every committed block).
  uint64_t BytesOf(const BlockKey& key) const { return classic_.Lookup(key)->bytes; }

  DuelingPolicy classic_;
  CakePolicy cake_;
  std::unordered_set<uint64_t> budgeted_;  // namespaces with ServingMode::kBudgeted
  // Bytes per tier per namespace, to split victims between the groups.
  std::unordered_map<uint64_t, std::array<uint64_t, kNumLocalTiers>> ns_bytes_;
};

}  // namespace kvcake::policy
