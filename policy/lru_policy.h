#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/block_list.h"
#include "policy/classic_policy.h"

namespace kvcake::policy {

using LruPolicyOptions = ClassicPolicyOptions;

// LRU baseline (docs/design.md §4 "without statistics"): per tier, victims are the
// least recently inserted/accessed blocks; Admit(key, kSsd) is true from a
// block's second hit on (ClassicPolicyOptions). The TierManager asks it only
// while the SSD tier is under pressure (with room, every block leaving host
// memory goes to SSD). Promotions to the GPU tier: host blocks accessed again
// since they entered host memory, most recently accessed first.
//
// Layout: entries live in ClassicPolicy's dense pool, linked into one
// intrusive doubly-linked list per tier (no per-key heap nodes: the store's
// block tables hold millions of layer-blocks).
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class LruPolicy final : public ClassicPolicy {
 public:
  explicit LruPolicy(LruPolicyOptions options = {}) : ClassicPolicy(options) {}

  std::string_view name() const override { return "lru"; }
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;

 private:
  void Enter(uint32_t id, bool inserted) override;
  void Leave(uint32_t id, Exit why) override;
  void Touch(uint32_t id) override;
  double PromotionValue(const Entry& e) const override;

  std::array<BlockList<Entry>, kNumLocalTiers> lru_;
};

}  // namespace kvcake::policy
