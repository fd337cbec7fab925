#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/block_list.h"
#include "policy/ghost_set.h"
#include "policy/key_index.h"
#include "policy/policy.h"

namespace kvcake::policy {

// Options shared by the classic (statistics-free) policies.
struct ClassicPolicyOptions {
  // A block is admitted to SSD once it has been hit this many times in total
  // (the insert counts as the first hit): 2 = "second-hit admission", as
  // LruPolicy and CakePolicy for namespaces without statistics. 1 admits
  // everything (as CakePolicy for namespaces with statistics).
  uint32_t ssd_admission_hits = 2;
  // Keys dropped from the store are remembered (FIFO, this many) so that a
  // re-inserted key counts as a second hit.
  size_t ghost_entries = 65536;
  // A host block is offered for promotion to the GPU tier once it has been
  // accessed this many times since it entered host memory (0: never).
  uint32_t promote_after_accesses = 2;
};

// ClassicPolicy: what the classic baselines (LRU, LFU, ARC, S3-FIFO, GDSF)
// share — the block table (a dense pool of entries found through a
// KeyIndex), hit counting, SSD admission on the n-th hit with ghosts of
// dropped keys, and GPU promotions of host blocks that were accessed again,
// most valuable first by the subclass's PromotionValue. Subclasses keep their
// own per-tier order through the Enter / Leave / Touch hooks and choose
// victims.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class ClassicPolicy : public Policy {
 public:
  ClassicPolicy(const ClassicPolicy&) = delete;  // the indexes point into the pools
  ClassicPolicy& operator=(const ClassicPolicy&) = delete;

  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) final;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) final;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) final;
  void OnRemove(const BlockKey& key, Tier tier) final;
  bool Admit(const BlockKey& key, Tier to) final;
  // Host blocks accessed at least `promote_after_accesses` times since they
  // entered host memory, highest PromotionValue first, fitting in
  // `bytes_available`. Only for tier kDevice; none for the others.
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) final;
  // The same, restricted to keys for which `eligible(key)` is true.
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available,
                                         const std::function<bool(const BlockKey&)>& eligible);

  // For tier kDevice: the best promotion candidates (as SelectPromotions)
  // against the subclass's GPU victims (SelectVictims), while the candidate's
  // ExchangeValue is strictly above its victim's. None for the other tiers.
  std::vector<Exchange> SelectExchanges(Tier tier, uint64_t max_bytes,
                                        const std::function<bool(const BlockKey&)>& eligible) final;

  // Number of blocks tracked in `tier` (tests).
  size_t Size(Tier tier) const;

  // A tracked block's tier and bytes (as of its last OnInsert / OnMove).
  struct Held {
    Tier tier;
    uint64_t bytes;
  };
  // The tier and bytes of `key`; nullopt if it is not tracked.
  std::optional<Held> Lookup(const BlockKey& key) const;
  // Calls `fn` for every tracked block, in no particular order.
  void ForEachHeld(const std::function<void(const BlockKey&, const Held&)>& fn) const;

 protected:
  struct Entry {
    BlockKey key;
    uint64_t bytes = 0;
    uint64_t last_tick = 0;      // of the last insert or access
    double priority = 0;         // subclass use (GreedyDual priority)
    uint64_t seq = 0;            // subclass use (heap item generation)
    uint32_t hits = 0;           // insert + accesses (+1 if a ghost came back)
    uint32_t tier_accesses = 0;  // accesses since it entered its tier
    uint32_t prev = kNoEntry;    // subclass list links
    uint32_t next = kNoEntry;
    uint32_t hot_prev = kNoEntry;  // promotion candidates (host, accessed again)
    uint32_t hot_next = kNoEntry;
    uint32_t mark = 0;  // subclass use (selection round)
    uint8_t tier = 0;   // 0..2, kFree when unused
    uint8_t queue = 0;  // subclass use (ARC T1/T2, S3-FIFO small/main)
    uint8_t freq = 0;   // subclass use (S3-FIFO's 2-bit counter)
  };
  // Why an entry leaves its tier (Leave).
  enum class Exit { kDemoted, kPromoted, kRemoved, kReinserted };
  static constexpr uint8_t kFree = 0xff;

  explicit ClassicPolicy(ClassicPolicyOptions options);

  // Entry `id` has entered tier pool_[id].tier: `inserted` for OnInsert of a
  // key not tracked before, otherwise re-inserted or moved in.
  virtual void Enter(uint32_t id, bool inserted) = 0;
  // Entry `id` leaves tier pool_[id].tier (still set).
  virtual void Leave(uint32_t id, Exit why) = 0;
  // Entry `id` was accessed in its tier (hits already counted).
  virtual void Touch(uint32_t id) = 0;
  // Promotion order: higher first.
  virtual double PromotionValue(const Entry& e) const = 0;
  // The worth of keeping `e` on the GPU, comparable between a host
  // candidate and a GPU resident (SelectExchanges). Default: PromotionValue.
  virtual double ExchangeValue(const Entry& e) const { return PromotionValue(e); }

  // Capacity given by SetTierCapacity (0 if never given).
  uint64_t capacity(size_t t) const { return capacity_[t]; }
  size_t count(size_t t) const { return count_[t]; }
  // The pool index of `key`, or kNoEntry.
  uint32_t Find(const BlockKey& key) const { return entries_.Find(key); }
  uint64_t bytes(size_t t) const { return bytes_[t]; }

  std::vector<Entry> pool_;

 private:
  struct PoolKey {
    const std::vector<Entry>* pool;
    const BlockKey& operator()(uint32_t i) const { return (*pool)[i].key; }
  };
  using HotList = BlockList<Entry, &Entry::hot_prev, &Entry::hot_next>;
  void Attach(uint32_t id);  // counts entry id in its tier
  void Detach(uint32_t id);
  void UpdateHot(uint32_t id);

  ClassicPolicyOptions options_;
  std::array<uint64_t, kNumLocalTiers> capacity_{};
  std::array<size_t, kNumLocalTiers> count_{};
  std::array<uint64_t, kNumLocalTiers> bytes_{};
  std::vector<uint32_t> free_;
  KeyIndex<PoolKey> entries_{PoolKey{&pool_}};
  GhostSet ghosts_;
  HotList hot_;  // host entries accessed promote_after_accesses times, most recent first
};

}  // namespace kvcake::policy
