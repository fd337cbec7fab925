#pragma once

// Shared by store_crash_test and its child process.
#include <string>

#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store::crash {

inline constexpr uint64_t kSlot = 64 << 10;
inline constexpr uint64_t kNs = 77;

inline TierManagerOptions Options(const std::string& ssd_dir) {
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.host_capacity_bytes = 8 * kSlot;
  o.ssd_path = ssd_dir;
  o.host_huge_pages = false;
  o.device_allow_cuda = false;
  o.mover_interval_us = 1000;
  o.mover_batch_blocks = 4;
  o.ssd_write_buffer_bytes = 2 << 20;  // small: flushes to SST/blob files happen often
  return o;
}

inline NamespaceConfig Namespace() { return testing::TestNamespace(kNs, kSlot, 1); }

inline BlockKey Key(uint64_t round, uint64_t i) { return BlockKey{kNs, round << 32 | i, 0}; }

inline size_t SizeOf(const BlockKey& k) { return 4096 + (k.hash * 7919) % (kSlot - 4096); }

inline void Fill(const BlockKey& k, char* out, size_t size) {
  testing::FillPayload(k, 0, out, size);
}

}  // namespace kvcake::store::crash
