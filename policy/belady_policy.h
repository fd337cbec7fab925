#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/policy.h"

namespace kvcake::policy {

// BeladyPolicy: Belady's MIN oracle, for evaluation only (it needs the
// future). Given every tick at which each block hash will be accessed, each
// tier's victims are the blocks whose next access is farthest away (never:
// first); a block is admitted to SSD only if it is accessed again, and the
// blocks promoted into a tier are those whose next access is nearest. All layers
// of a block share its hash's access ticks; the namespace is ignored.
//
// Thread-safety: not thread-safe; the owner serialises all calls.
class BeladyPolicy final : public Policy {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // `access_ticks[hash]`: ascending ticks at which block `hash` is accessed.
  explicit BeladyPolicy(std::unordered_map<uint64_t, std::vector<uint64_t>> access_ticks);

  std::string_view name() const override { return "belady"; }
  void SetTierCapacity(Tier tier, uint64_t bytes) override {}
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override;
  // The blocks one tier down whose next access is nearest (never-again
  // blocks are not promoted), while they fit in `bytes_available`.
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override;

  // Next access tick of `hash` strictly after `tick` (kNever if none).
  uint64_t NextUse(uint64_t hash, uint64_t tick) const;

 private:
  struct Item {
    uint64_t next;
    BlockKey key;
    // Descending next use: begin() is the farthest (the first victim).
    friend bool operator<(const Item& a, const Item& b) {
      return a.next != b.next ? a.next > b.next : a.key < b.key;
    }
  };
  struct Entry {
    uint64_t next = kNever;
    uint64_t bytes = 0;
    Tier tier = Tier::kDevice;
  };
  void Place(const BlockKey& key, Entry& e, Tier tier, uint64_t tick);

  std::unordered_map<uint64_t, std::vector<uint64_t>> access_ticks_;
  std::unordered_map<BlockKey, Entry, BlockKeyHash> entries_;
  std::array<std::set<Item>, kNumLocalTiers> order_;
};

}  // namespace kvcake::policy
