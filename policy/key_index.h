#pragma once

// KeyIndex: an open-addressing index from BlockKey to a dense id (uint32_t)
// whose key the caller keeps (e.g. in a pool of entries): the table holds
// only ids, 4 bytes a slot, and asks `KeyOf` for an id's key. Linear probing,
// at most half full, backward-shift deletion (no tombstones). The policies'
// block tables hold millions of layer-blocks, where node-based hash maps cost
// a cache miss per node and 40+ bytes per key. Thread-compatible (the owner
// serialises calls).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/block_key.h"

namespace kvcake::policy {

// KeyOf: a functor `const BlockKey& (uint32_t id) const`.
template <typename KeyOf>
class KeyIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  explicit KeyIndex(KeyOf key_of) : key_of_(std::move(key_of)) {}

  // The id of `key`, or kNone.
  uint32_t Find(const BlockKey& key) const {
    if (table_.empty()) return kNone;
    const size_t mask = table_.size() - 1;
    for (size_t i = Home(key);; i = (i + 1) & mask) {
      const uint32_t id = table_[i];
      if (id == kNone || key_of_(id) == key) return id;
    }
  }

  // Adds `key` -> `id`; `key` must not be present and key_of(id) == key.
  void Insert(const BlockKey& key, uint32_t id) {
    if (2 * (size_ + 1) > table_.size()) Grow();
    const size_t mask = table_.size() - 1;
    size_t i = Home(key);
    while (table_[i] != kNone) i = (i + 1) & mask;
    table_[i] = id;
    ++size_;
  }

  // Removes `key`, which must be present.
  void Erase(const BlockKey& key) { (void)EraseIfPresent(key); }

  // Removes `key` if present (one probe run); returns whether it was.
  bool EraseIfPresent(const BlockKey& key) {
    if (table_.empty()) return false;
    const size_t mask = table_.size() - 1;
    size_t i = Home(key);
    for (;; i = (i + 1) & mask) {
      if (table_[i] == kNone) return false;
      if (key_of_(table_[i]) == key) break;
    }
    // Backward shift: move later members of the probe run into the hole.
    for (size_t j = (i + 1) & mask; table_[j] != kNone; j = (j + 1) & mask) {
      const size_t home = Home(key_of_(table_[j]));
      // table_[j] may fill hole i if its home is not in the cyclic range (i, j].
      const bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
      if (movable) {
        table_[i] = table_[j];
        i = j;
      }
    }
    table_[i] = kNone;
    --size_;
    return true;
  }

  size_t size() const { return size_; }

 private:
  size_t Home(const BlockKey& key) const {
    uint64_t h = BlockKeyHash{}(key);
    h ^= h >> 33;  // finaliser: the low bits pick the slot
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return static_cast<size_t>(h) & (table_.size() - 1);
  }
  void Grow() {
    std::vector<uint32_t> old = std::move(table_);
    table_.assign(std::max<size_t>(64, 2 * old.size()), kNone);
    const size_t mask = table_.size() - 1;
    for (uint32_t id : old) {
      if (id == kNone) continue;
      size_t i = Home(key_of_(id));
      while (table_[i] != kNone) i = (i + 1) & mask;
      table_[i] = id;
    }
  }

  KeyOf key_of_;
  std::vector<uint32_t> table_;
  size_t size_ = 0;
};

}  // namespace kvcake::policy
