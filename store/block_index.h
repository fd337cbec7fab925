#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>

#include "common/block_key.h"
#include "common/tier.h"

namespace kvcake::store {

// Lifecycle of a block (docs/design.md §2). Readers only see kCommitted,
// kDemoting and kPromoting (the data is complete in `slot` / on SSD).
enum class BlockState : uint8_t {
  kReserved = 0,   // a writer holds the slot; invisible to readers
  kCommitted = 1,  // complete and readable
  kDemoting = 2,   // committed; being copied one tier down (still readable in place)
  kPromoting = 3,  // committed on SSD; being read into a host slot
};

const char* BlockStateName(BlockState s);

// Location record of one block (index entry).
struct BlockRecord {
  BlockState state = BlockState::kReserved;
  Tier tier = Tier::kHost;  // fastest tier holding the data: kDevice, kHost or kSsd
  int32_t slot = -1;        // slot in `tier` when kDevice/kHost; -1 when SSD-only
  bool on_ssd = false;      // a verified copy exists on SSD (clean in memory)
  bool admin_pinned = false;
  // False after a commit without a caller checksum: `checksum` is computed
  // off the request path, when the block is first written to SSD.
  bool checksum_known = true;
  uint32_t pins = 0;  // live lease pins
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t fingerprint = 0;  // namespace fingerprint at write time
  uint64_t generation = 0;   // unique per record instance (detects delete + re-put)
  uint64_t reservation_id = 0;
  uint64_t lease_expiry_us = 0;  // reservation lease (kReserved only)
  uint64_t last_access_tick = 0;
  double score = 0;  // policy score, for listings

  bool readable() const { return state != BlockState::kReserved; }
  bool in_flight() const {
    return state == BlockState::kDemoting || state == BlockState::kPromoting;
  }
};

// BlockIndex: key -> BlockRecord, with per-namespace byte accounting (each
// block counted once, whatever tiers hold it; reserved blocks included).
//
// Thread-safety: not thread-safe; the TierManager calls it under its lock.
class BlockIndex {
 public:
  BlockIndex() { map_.reserve(1 << 16); }

  BlockRecord* Find(const BlockKey& key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  const BlockRecord* Find(const BlockKey& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  // Inserts a new record (key must be absent); assigns its generation.
  BlockRecord* Insert(const BlockKey& key, const BlockRecord& record);
  // Removes the record; false if absent.
  bool Erase(const BlockKey& key);

  size_t size() const { return map_.size(); }
  uint64_t NamespaceBytes(uint64_t ns) const;
  void ForEach(const std::function<void(const BlockKey&, const BlockRecord&)>& fn) const;

 private:
  std::unordered_map<BlockKey, BlockRecord, BlockKeyHash> map_;
  std::unordered_map<uint64_t, uint64_t> ns_bytes_;
  uint64_t next_generation_ = 1;
};

}  // namespace kvcake::store
