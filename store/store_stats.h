#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/tier.h"

namespace kvcake::store {

// Why a block left the store (StoreStats::drop_reasons). A block pushed out of
// host memory is written to SSD whenever the SSD tier has room; the other
// reasons are the only ways a committed block is lost.
enum class DropReason : uint8_t {
  // The SSD tier was over its high watermark: the policy's least valuable
  // SSD blocks were dropped (down to the low watermark).
  kCapacity = 0,
  // Refused by the policy's admission control. Applies to a block leaving
  // host memory only while the SSD tier is under pressure (writing it would
  // take the SSD above its high watermark), and to a block leaving the GPU
  // tier that the policy does not admit to host memory.
  kAdmission = 1,
  // Pushed out of host memory with no SSD tier configured.
  kNoSsd = 2,
  // An operator's evict to nowhere (TierManager::Evict to kRemote).
  kEvict = 3,
  // Its bytes no longer matched the checksum (memory or SSD), or its SSD
  // copy could not be read back.
  kCorrupt = 4,
};
inline constexpr int kNumDropReasons = 5;

// The label kvcake_drops_total{reason} and the admin API use.
constexpr std::string_view DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kCapacity:
      return "capacity";
    case DropReason::kAdmission:
      return "admission";
    case DropReason::kNoSsd:
      return "no_ssd";
    case DropReason::kEvict:
      return "evict";
    case DropReason::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

// Counters and gauges of one local tier. Plain value type.
struct TierStats {
  uint64_t capacity_bytes = 0;  // current (hot-settable) capacity
  uint64_t used_bytes = 0;      // bytes of blocks resident (payload sizes)
  uint64_t used_slots = 0;      // extents (slots) in use (device/host; 0 for ssd)
  uint64_t total_slots = 0;     // pages of the device arena (0 for host and ssd)
  // Device/host: bytes of the extents in use (values take their size class:
  // used_bytes / allocated_bytes is the packing, used_bytes / capacity_bytes
  // the tier's value utilisation), and the physical segment size.
  uint64_t allocated_bytes = 0;
  uint64_t segment_bytes = 0;
  uint64_t blocks = 0;  // blocks resident in this tier
  uint64_t hits = 0;    // gets served from this tier
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
  // The same drops by reason: drop_reasons[tier][DropReason]; each row sums to drops[tier].
  std::array<std::array<uint64_t, kNumDropReasons>, kNumLocalTiers> drop_reasons{};
  uint64_t puts = 0;          // commits
  uint64_t put_rejected = 0;  // reserves refused (full, quota, bad input)
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
