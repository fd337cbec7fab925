#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "policy/classic_policy.h"
#include "policy/gdsf_policy.h"
#include "policy/ghost_set.h"
#include "policy/lru_policy.h"
#include "policy/policy.h"

namespace kvcake::policy {

struct DuelingPolicyOptions {
  // Weight of earlier charges at each new one (half-life about 140 charges).
  double decay = 0.995;
  // Tiers that duel (indexed by TierIndex); the others follow GDSF.
  std::array<bool, kNumLocalTiers> duel = {false, true, false};
};

// DuelingPolicy: recency against frequency, decided by the workload. Two
// experts track every block: LRU (LruPolicy) and GDSF (GdsfPolicy, LFU with
// dynamic aging for equal sizes). The victims of a dueling tier (by default
// the host tier, whose victims go to SSD) come from that tier's leader; the
// other tiers, the GPU tier's promotions and exchanges included, follow
// GDSF. In a dueling tier the other expert's choice is computed alongside
// and only the difference is remembered:
//
//  - a block the leader evicted that the other would have kept; if it is
//    used again while remembered, the leader paid a reload the other would
//    not have: the leader is charged;
//  - a block the other would have evicted that the leader kept; used again
//    while remembered, the other expert is charged.
//
// Charges decay (each new charge in a tier scales that tier's earlier ones
// by `decay`), and a tier follows the expert with the smaller charge (GDSF
// on a tie, so it starts as GDSF). On workloads where one ranking is
// clearly better the tier settles on it; where the better one changes over
// time the tier follows. SSD admission is the classic second-hit rule
// (ClassicPolicyOptions), the same for both experts.
//
// Why only the host tier by default: on the conversation trace's tuning
// half the host tier's duel is where the gain is (docs/policy.md §6); a
// duel in the GPU tier changed nothing on the daemon's store and cost 7 %
// on the tier model, where switching rankings back and forth left the GPU
// holding neither expert's set.
//
// Thread-safety: not thread-safe; the owner serialises all calls.
class DuelingPolicy final : public Policy {
 public:
  enum Expert : uint8_t { kGdsf = 0, kLru = 1 };
  DuelingPolicy(ClassicPolicyOptions classic, GdsfPolicyOptions costs,
                DuelingPolicyOptions options = {});

  std::string_view name() const override { return "dueling"; }
  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override { return gdsf_.Admit(key, to); }
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override;
  // The same, restricted to keys for which `eligible(key)` is true.
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available,
                                         const std::function<bool(const BlockKey&)>& eligible);
  std::vector<Exchange> SelectExchanges(
      Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) override;
  // "lru" or "gdsf": the tier's leader.
  std::string_view Ranking(Tier tier) const override;

  // The tier and bytes of a tracked block (ClassicPolicy::Lookup).
  std::optional<ClassicPolicy::Held> Lookup(const BlockKey& key) const { return gdsf_.Lookup(key); }
  void ForEachHeld(
      const std::function<void(const BlockKey&, const ClassicPolicy::Held&)>& fn) const {
    gdsf_.ForEachHeld(fn);
  }

  // The expert `tier` follows now, and its decayed charges (tests).
  Expert Leader(Tier tier) const { return leader_[TierIndex(tier)]; }
  double Charge(Tier tier, Expert expert) const { return charge_[TierIndex(tier)][expert]; }

 private:
  ClassicPolicy& expert(Expert e) {
    return e == kGdsf ? static_cast<ClassicPolicy&>(gdsf_) : static_cast<ClassicPolicy&>(lru_);
  }
  // `key` is in use again: charges the expert whose choice it contradicts.
  void Used(const BlockKey& key);
  void ChargeExpert(size_t tier, Expert e);

  GdsfPolicy gdsf_;
  LruPolicy lru_;
  const DuelingPolicyOptions options_;
  std::array<Expert, kNumLocalTiers> leader_{};
  std::array<std::array<double, 2>, kNumLocalTiers> charge_{};
  // Per tier and expert: blocks whose next use charges that expert.
  std::array<std::array<std::optional<GhostSet>, 2>, kNumLocalTiers> blame_;
};

}  // namespace kvcake::policy
