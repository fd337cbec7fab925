#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/block_key.h"
#include "common/result.h"
#include "common/status.h"
#include "common/tier.h"
#include "policy/policy.h"
#include "store/clock.h"
#include "store/namespace_config.h"
#include "store/store_stats.h"

namespace kvcake::store {

// Options of the TierManager. Defaults are usable for a small single node.
struct TierManagerOptions {
  // Capacities in bytes. The host and device tiers give each value an extent
  // of about its own size (ExtentPool size classes in pages of 1-4 x
  // slot_bytes). Both are fixed at Open; SetCapacity can later lower or
  // restore the usable part. 0 disables a tier (host must be > 0).
  uint64_t device_capacity_bytes = 0;           // default: no device tier
  uint64_t host_capacity_bytes = 256ull << 20;  // 256 MiB
  uint64_t ssd_capacity_bytes = 16ull << 30;    // 16 GiB (logical; payload bytes)
  uint64_t slot_bytes = 1ull << 20;             // 1 MiB; largest value the store holds

  // SSD tier: RocksDB directory; empty disables the SSD tier (host overflow drops).
  std::string ssd_path;
  bool ssd_sync = false;  // fsync the WAL on every batch (power-loss safety)
  // false: the SSD tier skips RocksDB's write-ahead log, so blocks not yet
  // flushed are lost in a crash (SsdTier::Options::write_ahead_log). For a
  // scratch store that is never reopened (kvcake-replay); not with ssd_sync.
  bool ssd_write_ahead_log = true;
  uint64_t ssd_min_blob_size = 4096;  // values >= this go to blob files
  uint64_t ssd_write_buffer_bytes = 64ull << 20;
  // A corrupt SSD directory is moved to `<ssd_path>.corrupt-<UTC time>` and
  // the tier starts empty (SsdTier::Options::quarantine_corrupt); false: Open
  // fails instead.
  bool ssd_quarantine_corrupt = true;

  // Host segment: memfd name, and whether to try MAP_HUGETLB (falls back, logged).
  std::string host_segment_name = "kvcake-host";
  bool host_huge_pages = true;
  // Extents of the host and device tiers are multiples of this (a power of
  // two in [64, 4096]); values start aligned to it in their segment. 4096
  // (page-aligned values) is what same-node clients expect; smaller values
  // let a replay with scaled-down payloads keep capacities in proportion.
  uint64_t extent_granule_bytes = 4096;

  // Device tier: use a real CUDA arena when built with CUDA and a device is
  // present; otherwise (or when false) the emulated device on host memory.
  bool device_allow_cuda = true;
  int cuda_device = 0;

  // Leases (microseconds of `clock`).
  uint64_t pin_lease_us = 30'000'000;          // Pin() lease
  uint64_t reservation_lease_us = 30'000'000;  // Reserve() lease
  uint64_t quarantine_us = 1'000'000;          // expired slot kept unused this long

  // Mover: demotes when a tier is above high_watermark * capacity, down to
  // low_watermark * capacity; batches up to mover_batch_blocks per SSD write.
  // A block pushed out of host memory is always written to SSD while that
  // keeps the SSD at or below high_watermark * ssd capacity; past that (SSD
  // under pressure) Policy::Admit decides, and a refused block is dropped
  // (StoreStats::drop_reasons, DropReason::kAdmission).
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  uint32_t mover_batch_blocks = 16;
  // Periodic sweep (leases, watermarks) of the mover thread. 0: no mover
  // thread; the owner runs the mover with RunMoverOnce at points of its
  // choosing, and a call that would wait for the mover (Reserve with the tier
  // full, Evict, Drain, Flush) runs it in the calling thread instead. For
  // deterministic replays and tests; the daemon keeps the thread.
  uint64_t mover_interval_us = 20'000;
  uint64_t reserve_wait_us = 5'000'000;  // Reserve waits this long for space

  // Lease clock; null = SteadyClock.
  std::shared_ptr<Clock> clock;

  // INVALID_ARGUMENT on inconsistent values.
  Status Validate() const;
};

// A reserved, writable slot (two-phase put). The writer copies exactly `size`
// bytes to `data` (or, same node, to `offset` of the host segment it mapped)
// and then calls Commit or Abort before `lease_expiry_us`. `data` is a device
// pointer when tier == kDevice and the device is a CUDA arena.
struct Reservation {
  uint64_t id = 0;
  BlockKey key;
  Tier tier = Tier::kHost;
  void* data = nullptr;
  uint64_t offset = 0;  // byte offset of the slot in its tier's segment
  uint64_t size = 0;
  uint64_t lease_expiry_us = 0;
};

// A pinned, readable committed block. Valid until Release or lease expiry;
// readers must not write through `data`.
struct PinnedBlock {
  uint64_t id = 0;
  BlockKey key;
  Tier tier = Tier::kHost;  // kDevice or kHost (SSD blocks are promoted to host)
  const void* data = nullptr;
  uint64_t offset = 0;  // byte offset of the slot in its tier's segment
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t lease_expiry_us = 0;
};

// Per-block description for ListBlocks (admin API).
struct BlockInfo {
  BlockKey key;
  Tier tier = Tier::kHost;  // fastest tier holding it
  bool on_ssd = false;      // an SSD copy exists
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint32_t pins = 0;  // lease pins + admin pin
  bool admin_pinned = false;
  uint64_t last_access_tick = 0;
};

struct BlockFilter {
  std::optional<uint64_t> ns;
  std::optional<uint32_t> layer;
  std::optional<Tier> tier;
  size_t limit = 1000;
};

// Shared-memory segment of the host tier, for same-node clients.
// Layout: a value lives at its Reservation / PinnedBlock `offset` (aligned to
// TierManagerOptions::extent_granule_bytes, 4 KiB by default) for `size` bytes (no header); offsets
// + sizes are the whole contract. The fd is a memfd owned by the HostTier; dup/send it (SCM_RIGHTS)
// and mmap `size` bytes MAP_SHARED.
struct HostSegmentInfo {
  int fd = -1;
  std::string name;
  uint64_t size = 0;
  uint64_t slot_bytes = 0;  // the largest value
  uint64_t num_slots = 0;   // 0: values are not in fixed slots
  bool huge_pages = false;
};

// The device tier's arena, for same-node engines. Same layout as the host
// segment: a value lives at its Reservation / PinnedBlock `offset` for `size`
// bytes (num_slots 0: no fixed slots). `ipc_handle` holds the
// cudaIpcMemHandle_t bytes when `cuda`; empty for the emulated device.
struct DeviceSegmentInfo {
  bool present = false;
  bool cuda = false;
  int cuda_device = 0;
  uint64_t size = 0;
  uint64_t slot_bytes = 0;
  uint64_t num_slots = 0;
  std::string ipc_handle;  // CUDA arena: cudaIpcMemHandle_t bytes
  int emulated_fd = -1;    // emulated arena: its memfd (owned by the store), or -1
};

// Progress of Drain(): blocks done out of total.
using DrainProgress = std::function<void(uint64_t done, uint64_t total)>;

// TierManager: the three-tier block store (docs/design.md §2-3). Owns the device,
// host and SSD tiers, the block index and a mover thread that carries out the
// policy's decisions (demote GPU -> host -> SSD -> drop, promote on access,
// exchange a full GPU tier's victims for more valuable host blocks).
// Demote, don't drop: while the SSD tier has room, a block leaving host memory
// goes to SSD whatever the policy's admission control would say; every block
// the store does drop is counted with its DropReason.
//
// Guarantees: readers only see committed data; a get never waits for a
// demotion (demoting blocks stay readable in their source slot); every SSD
// read is checksum-verified (mismatch: miss + counter, never bytes); a slot is
// never reused while a pin or reservation may still touch it (expired leases
// are quarantined first).
//
// Thread-safety: all methods are thread-safe. Payload copies happen outside
// the internal lock; the policy is called under it.
class TierManager {
 public:
  // Opens the tiers (SSD index rebuilt from RocksDB) and starts the mover.
  // `policy` null = LruPolicy with defaults.
  static Result<std::unique_ptr<TierManager>> Open(TierManagerOptions options,
                                                   std::unique_ptr<policy::Policy> policy);
  // Stops the mover; waits for in-flight SSD writes. Outstanding pins and
  // reservations become invalid.
  ~TierManager();
  TierManager(const TierManager&) = delete;
  TierManager& operator=(const TierManager&) = delete;

  // --- namespaces -------------------------------------------------------
  // Registers (or re-registers identically) a namespace. FAILED_PRECONDITION
  // if the id is registered with another fingerprint; INVALID_ARGUMENT if the
  // config is invalid or layer_block_bytes > slot_bytes. Quota may change.
  Status RegisterNamespace(const NamespaceConfig& config);
  // NOT_FOUND if unknown.
  Result<NamespaceConfig> GetNamespace(uint64_t ns) const;
  std::vector<NamespaceConfig> ListNamespaces() const;
  // Bytes of committed + reserved blocks of `ns` (all tiers, each block once).
  uint64_t NamespaceUsedBytes(uint64_t ns) const;

  // --- put ---------------------------------------------------------------
  // Reserves a slot for `key` of `size` bytes in `tier` (kDevice falls back
  // to kHost when there is no device tier). Errors: NOT_FOUND unknown
  // namespace; INVALID_ARGUMENT size 0 / > layer_block_bytes / bad layer;
  // ALREADY_EXISTS key committed; ABORTED key reserved by another writer;
  // RESOURCE_EXHAUSTED quota or no slot freed within reserve_wait_us.
  Result<Reservation> Reserve(const BlockKey& key, uint64_t size, Tier tier = Tier::kHost);
  // Publishes the written block and records its checksum (XXH3-64), which
  // every later read through the store and every move to SSD verifies (a
  // mismatch drops the block and counts in checksum_failures: never wrong
  // bytes). With `checksum` (computed by a writer from its source bytes), it
  // is verified against the slot (mismatch: DATA_LOSS, reservation aborted,
  // counter); with `trusted_checksum` (computed by the caller from the very
  // bytes it copied into the slot, e.g. by CopyAndHash) it is recorded as
  // is; with neither it is computed from the slot now. ABORTED if the
  // reservation's lease expired (nothing published).
  Status Commit(const Reservation& reservation, std::optional<uint64_t> checksum = std::nullopt,
                std::optional<uint64_t> trusted_checksum = std::nullopt);
  // Commit with the checksum a sender took of the value (a same-node
  // client's copy, another member's stored block): verified against the slot
  // when `verify`, else recorded as is.
  Status CommitSent(const Reservation& reservation, uint64_t checksum, bool verify) {
    return verify ? Commit(reservation, checksum) : Commit(reservation, std::nullopt, checksum);
  }
  // Drops a reservation. NOT_FOUND if unknown/expired.
  Status Abort(const Reservation& reservation);
  // Convenience: Reserve + memcpy + Commit.
  Status Put(const BlockKey& key, const void* src, uint64_t size, Tier tier = Tier::kHost);

  // --- get ---------------------------------------------------------------
  // Pins a committed block. An SSD-only block is read (verified) into a host
  // slot first (promotion). NOT_FOUND miss; DATA_LOSS corrupt on SSD;
  // FAILED_PRECONDITION fingerprint mismatch with the registered namespace;
  // RESOURCE_EXHAUSTED no host slot to promote into (retry later).
  Result<PinnedBlock> Pin(const BlockKey& key);
  // Ends a pin. ABORTED if its lease had expired (the caller must discard
  // what it read), NOT_FOUND if unknown.
  Status Release(const PinnedBlock& pinned);
  // Hashes a pinned host-memory block and compares it with the checksum
  // recorded at commit: OK, or DATA_LOSS after dropping the block from the
  // store (counted in checksum_failures; the pin stays valid until
  // released). Device blocks in CUDA memory are not checked (OK).
  Status VerifyPinned(const PinnedBlock& pinned);
  // Convenience: copies the block into `dst` (capacity `dst_size`) with one
  // memcpy (or cudaMemcpy) from its slot, or a verified SSD read. Returns the
  // size. OUT_OF_RANGE if dst_size is too small; other errors as Pin.
  Result<uint64_t> Get(const BlockKey& key, void* dst, uint64_t dst_size);
  // True if `key` is committed in any tier (no pin, no stats).
  bool Contains(const BlockKey& key) const;

  // Longest prefix of `hashes` (a namespace's chained hashes, in order) whose
  // blocks are committed for `layer` in some tier. Optionally reports the
  // tier of each matched block. No allocation per key; one lock.
  size_t LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes, uint32_t layer,
                      std::vector<Tier>* tiers = nullptr) const;

  // --- admin ---------------------------------------------------------------
  // Removes the block from every tier. NOT_FOUND if absent. Live pins keep
  // their slot until released.
  Status Delete(const BlockKey& key);
  // Moves the block down to `to` (kHost or kSsd) now, bypassing admission;
  // `to` = kRemote drops it from the store. Waits for the SSD write.
  // FAILED_PRECONDITION if pinned by an admin pin; UNAVAILABLE if no SSD tier.
  Status Evict(const BlockKey& key, Tier to = Tier::kSsd);
  // Admin pin: the block is never demoted/evicted until AdminUnpin.
  Status AdminPin(const BlockKey& key);
  Status AdminUnpin(const BlockKey& key);
  // Demotes every unpinned block in device/host to SSD and waits (progress
  // callback optional). UNAVAILABLE without SSD tier; first error otherwise.
  Status Drain(const DrainProgress& progress = nullptr);
  // Waits until queued SSD writes are done (does not demote anything), then
  // flushes RocksDB memtables to SST/blob files. Returns the flush status.
  Status Flush();

  // Blocks matching `filter`, sorted by key, at most filter.limit.
  std::vector<BlockInfo> ListBlocks(const BlockFilter& filter) const;
  // One block's description; NOT_FOUND unless committed.
  Result<BlockInfo> Describe(const BlockKey& key) const;
  StoreStats GetStats() const;
  // Hot capacity change. For device/host, bytes are rounded down to pages and
  // clamped to the physical segment (INVALID_ARGUMENT above it); lowering
  // triggers demotion by the mover. For SSD, a logical byte limit.
  Status SetCapacity(Tier tier, uint64_t bytes);
  // With mover_interval_us == 0: does in the calling thread what the mover
  // thread does on one wake-up (lease sweep, forced moves, demotion by the
  // watermarks, one batch of promotions, GPU exchanges, SSD writes), passes
  // until none asks for another. `only_if_woken`: only if something would
  // have woken the thread since the last run (a tier above its high
  // watermark after a put or promotion, CAKE signals, an admin change);
  // calling it so after every store call reacts as promptly as the thread.
  // Returns true if it moved, promoted or dropped any block. With a mover
  // thread it does nothing and returns false.
  bool RunMoverOnce(bool only_if_woken = false);

  // CAKE signals, forwarded to the policy under the lock; wakes the mover.
  void ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal);
  // The policy's current per-layer budgets in blocks of `ns` in `tier`
  // (Policy::LayerBudgets); empty when the policy keeps none (LRU, or a
  // namespace that reported no statistics).
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const;
  // The ranking `tier`'s victims follow now, for a policy that switches
  // (Policy::Ranking, e.g. "lru" or "gdsf"); empty otherwise.
  std::string TierRanking(Tier tier) const;

  // Shared host segment (see HostSegmentInfo for the slot layout).
  HostSegmentInfo host_segment() const;
  // Device arena description (present = false without a device tier).
  DeviceSegmentInfo device_segment() const;
  // True when the device tier is a real CUDA arena (false: emulated/absent).
  bool device_is_cuda() const;
  bool has_device_tier() const;
  bool has_ssd_tier() const;
  const TierManagerOptions& options() const;
  std::string_view policy_name() const;

  class Impl;

 private:
  explicit TierManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::store
