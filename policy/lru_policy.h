#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <unordered_map>
#include <unordered_set>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/policy.h"

namespace kvcake::policy {

struct LruPolicyOptions {
  // A block is admitted to SSD once it has been hit this many times in total
  // (the insert counts as the first hit): 2 = "second-hit admission".
  // 1 admits everything.
  uint32_t ssd_admission_hits = 2;
  // Keys dropped from the store are remembered (FIFO, this many) so that a
  // re-inserted key counts as a second hit.
  size_t ghost_entries = 65536;
};

// LRU baseline (DESIGN.md §4 "without statistics"): per tier, victims are the
// least recently inserted/accessed blocks; a block leaving host memory is
// admitted to SSD only on its second hit, otherwise dropped.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class LruPolicy final : public Policy {
 public:
  explicit LruPolicy(LruPolicyOptions options = {});

  std::string_view name() const override { return "lru"; }
  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override;

  // Number of blocks tracked in `tier` (tests).
  size_t Size(Tier tier) const;

 private:
  struct Entry {
    Tier tier;
    uint64_t bytes;
    uint32_t hits;
    std::list<BlockKey>::iterator pos;  // in lru_[tier]; front = most recent
  };
  void Remember(const BlockKey& key);

  LruPolicyOptions options_;
  std::array<std::list<BlockKey>, kNumLocalTiers> lru_;
  std::unordered_map<BlockKey, Entry, BlockKeyHash> entries_;
  std::unordered_set<BlockKey, BlockKeyHash> ghosts_;
  std::deque<BlockKey> ghost_order_;
};

}  // namespace kvcake::policy
