#pragma once

#include <array>
#include <cstdint>

#include "common/tier.h"

namespace kvcake::store {

// Counters and gauges of one local tier. Plain value type.
struct TierStats {
  uint64_t capacity_bytes = 0;  // current (hot-settable) capacity
  uint64_t used_bytes = 0;      // bytes of blocks resident (payload sizes)
  uint64_t used_slots = 0;      // slots in use (device/host; 0 for ssd)
  uint64_t total_slots = 0;     // physical slots (device/host; 0 for ssd)
  uint64_t blocks = 0;          // blocks resident in this tier
  uint64_t hits = 0;            // gets served from this tier
  // Gets that looked in this tier and did not find the block there: tiers are
  // searched GPU -> host -> SSD (a block lives in one), so a get served from
  // SSD is a miss in the GPU and host tiers, and a get found nowhere is a
  // miss in every tier. hits / (hits + misses) is the tier's hit ratio.
  uint64_t misses = 0;
};

// Snapshot of the store's counters (TierManager::GetStats). Paths are indexed
// [from][to] with the Tier enum value (0 device, 1 host, 2 ssd). Plain value.
struct StoreStats {
  std::array<TierStats, kNumLocalTiers> tiers{};
  uint64_t misses = 0;  // gets / pins of keys not found (or corrupt / layout mismatch)
  std::array<std::array<uint64_t, kNumLocalTiers>, kNumLocalTiers> moves{};        // [from][to]
  std::array<std::array<uint64_t, kNumLocalTiers>, kNumLocalTiers> bytes_moved{};  // [from][to]
  std::array<uint64_t, kNumLocalTiers> drops{};  // blocks dropped out of the store, per tier
  uint64_t puts = 0;                             // commits
  uint64_t put_rejected = 0;                     // reserves refused (full, quota, bad input)
  uint64_t deletes = 0;
  uint64_t leases_expired = 0;      // pins + reservations whose lease ran out
  uint64_t quarantined_slots = 0;   // gauge: slots waiting out a quarantine
  uint64_t checksum_failures = 0;   // SSD reads / commits whose checksum did not match
  uint64_t layout_mismatches = 0;   // loads refused because of a fingerprint mismatch
  uint64_t ssd_write_errors = 0;    // failed SSD batch writes (e.g. disk full)
  uint64_t ssd_pending_writes = 0;  // gauge: blocks queued for demotion to SSD
  uint64_t ssd_quarantines = 0;     // corrupt SSD directories moved aside at open
  uint64_t tick = 0;                // logical clock
};

}  // namespace kvcake::store
