#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/key_index.h"
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
// least recently inserted/accessed blocks; Admit(key, kSsd) is true from a
// block's second hit on. The TierManager asks it only while the SSD tier is
// under pressure (with room, every block leaving host memory goes to SSD).
//
// Layout: entries live in a dense pool, linked into one intrusive
// doubly-linked list per tier and found through an open-addressing KeyIndex;
// the ghost keys are a ring buffer indexed the same way (no per-key heap
// nodes: the store's block tables hold millions of layer-blocks).
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class LruPolicy final : public Policy {
 public:
  explicit LruPolicy(LruPolicyOptions options = {});
  LruPolicy(const LruPolicy&) = delete;  // the indexes point into the pools
  LruPolicy& operator=(const LruPolicy&) = delete;

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
  static constexpr uint32_t kNil = 0xffffffffu;
  struct Entry {
    BlockKey key;
    uint64_t bytes = 0;
    uint32_t hits = 0;
    uint32_t prev = kNil;  // towards the list's head (more recent)
    uint32_t next = kNil;  // towards its tail (less recent)
    uint8_t tier = 0;
  };
  struct List {
    uint32_t head = kNil;  // most recent
    uint32_t tail = kNil;  // least recent
    size_t size = 0;
  };
  struct PoolKey {
    const std::vector<Entry>* pool;
    const BlockKey& operator()(uint32_t i) const { return (*pool)[i].key; }
  };
  struct RingKey {
    const std::vector<BlockKey>* ring;
    const BlockKey& operator()(uint32_t i) const { return (*ring)[i]; }
  };

  void PushFront(List& l, uint32_t i);
  void Unlink(List& l, uint32_t i);
  void Remember(const BlockKey& key);

  LruPolicyOptions options_;
  std::array<List, kNumLocalTiers> lru_;
  std::vector<Entry> pool_;
  std::vector<uint32_t> free_;
  KeyIndex<PoolKey> entries_{PoolKey{&pool_}};
  // Ghosts: a set of keys (index into ghost_ring_) plus their FIFO order; a
  // key leaving the set early (re-inserted) keeps its place in the order,
  // and popping that place drops whatever entry the key has then.
  std::vector<BlockKey> ghost_ring_;  // ghost_entries + 1 slots
  size_t ghost_front_ = 0, ghost_count_ = 0;
  KeyIndex<RingKey> ghosts_{RingKey{&ghost_ring_}};
};

}  // namespace kvcake::policy
