#pragma once

#include <cstddef>
#include <vector>

#include "common/block_key.h"
#include "policy/key_index.h"

namespace kvcake::policy {

// GhostSet: the keys of blocks that recently left a cache (no payload, no
// metadata), bounded FIFO: adding beyond `capacity` forgets the oldest. A
// key erased early (readmitted) keeps its place in the FIFO order, and
// popping that place forgets whatever entry the key has by then. Keys live in
// a ring buffer (allocated on the first Add) found through a KeyIndex, so a
// ghost costs one key and one 4-byte slot.
//
// Thread-safety: not thread-safe (the owning policy serialises calls).
class GhostSet {
 public:
  explicit GhostSet(size_t capacity) : capacity_(capacity) {}
  GhostSet(const GhostSet&) = delete;  // the index points into the ring
  GhostSet& operator=(const GhostSet&) = delete;

  // Remembers `key` (no-op if remembered or capacity is 0).
  void Add(const BlockKey& key);
  bool Contains(const BlockKey& key) const { return index_.Find(key) != kNone; }
  // Forgets `key`; returns whether it was remembered.
  bool Erase(const BlockKey& key) { return index_.EraseIfPresent(key); }
  // Forgets the oldest keys until at most `max_size` are remembered.
  void Trim(size_t max_size);
  size_t size() const { return index_.size(); }

 private:
  struct RingKey {
    const std::vector<BlockKey>* ring;
    const BlockKey& operator()(uint32_t i) const { return (*ring)[i]; }
  };
  static constexpr uint32_t kNone = KeyIndex<RingKey>::kNone;
  void PopFront();

  size_t capacity_;
  std::vector<BlockKey> ring_;  // capacity_ + 1 slots once used
  size_t front_ = 0, count_ = 0;
  KeyIndex<RingKey> index_{RingKey{&ring_}};
};

}  // namespace kvcake::policy
