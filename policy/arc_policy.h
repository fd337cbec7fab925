#pragma once

#include <cstdint>
#include <vector>

#include "policy/classic_policy.h"
#include "policy/split_tiers.h"

namespace kvcake::policy {

// ARC (Megiddo & Modha, FAST'03), per tier: T1 holds blocks seen once in
// the tier, T2 blocks hit again (accessed, re-inserted, or returning from a
// ghost list); B1 / B2 remember the keys that left T1 / T2 downwards (at
// most as many as the tier holds). A block entering the tier from B1 raises
// the target size p of T1 (by max(1, |B2|/|B1|) × its bytes), one from B2
// lowers it; victims come from T1's LRU end while T1 holds more than p
// bytes, from T2's otherwise. A one-time scan stays in T1 and evicts itself;
// the reused blocks in T2 survive it. Blocks moved between tiers keep their
// T1/T2 class. SSD admission as ClassicPolicyOptions. Promotions: host
// blocks accessed again, T2 before T1, most recent first.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class ArcPolicy final : public ClassicPolicy {
 public:
  explicit ArcPolicy(ClassicPolicyOptions options = {});

  std::string_view name() const override { return "arc"; }
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;

  // ARC's adaptive target for T1 of `tier`, bytes (tests).
  double TargetT1Bytes(Tier tier) const { return tiers_[TierIndex(tier)].target; }
  // Whether `key` is in T2 (hit again) of its tier (tests).
  bool InT2(const BlockKey& key) const;

 private:
  // queue1 / ghosts1: T1 / B1; queue2 / ghosts2: T2 / B2; target: p.
  enum : uint8_t { kT1 = 1, kT2 = 2 };
  void Enter(uint32_t id, bool inserted) override;
  void Leave(uint32_t id, Exit why) override;
  void Touch(uint32_t id) override;
  double PromotionValue(const Entry& e) const override;

  SplitTiers<Entry> tiers_;
};

}  // namespace kvcake::policy
