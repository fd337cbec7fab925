// Private to the store: the TierManager's implementation, shared by
//   tier_manager.cc  the index and reservation core (namespaces, put, get,
//                    leases, removal) and the public forwarding,
//   tier_mover.cc    the mover thread (demotion, promotion, forced moves,
//                    SSD writes),
//   tier_admin.cc    the admin operations (delete, evict, pin, drain, flush,
//                    listings, stats, capacity, segment descriptions).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "store/block_index.h"
#include "store/device_tier.h"
#include "store/extent_pool.h"
#include "store/host_tier.h"
#include "store/ssd_tier.h"
#include "store/tier_manager.h"

namespace kvcake::store {

constexpr size_t Idx(Tier t) { return static_cast<size_t>(t); }

inline bool IsMemoryTier(Tier t) { return t == Tier::kDevice || t == Tier::kHost; }

// True when `rec` is still the record instance `generation` in `state`: a
// copy made with the lock released may be installed.
inline bool IsUnchanged(const BlockRecord* rec, uint64_t generation, BlockState state) {
  return rec != nullptr && rec->generation == generation && rec->state == state;
}

// Thread-safety: every public method is thread-safe and takes mu_ itself
// (EXCLUDES); every ...Locked method and every GUARDED_BY member needs mu_.
// Payload copies, hashing and SSD I/O run with mu_ released; the slots they
// touch are kept alive by an extent reference taken under mu_. The tiers
// (DeviceTier, HostTier, SsdTier) are thread-safe; the ExtentPools are not:
// they are changed only under mu_, and the offset / size of an extent that a
// reference keeps alive is read without it.
class TierManager::Impl {
 public:
  Impl(TierManagerOptions options, std::unique_ptr<policy::Policy> policy);
  // Stops the mover; pending forced requests end with ABORTED.
  ~Impl() EXCLUDES(mu_);

  Status Init() EXCLUDES(mu_);

  // --- namespaces (tier_manager.cc) ---
  Status RegisterNamespace(const NamespaceConfig& config) EXCLUDES(mu_);
  Result<NamespaceConfig> GetNamespace(uint64_t ns) const EXCLUDES(mu_);
  std::vector<NamespaceConfig> ListNamespaces() const EXCLUDES(mu_);
  uint64_t NamespaceUsedBytes(uint64_t ns) const EXCLUDES(mu_);

  // --- data path (tier_manager.cc) ---
  Result<Reservation> Reserve(const BlockKey& key, uint64_t size, Tier tier) EXCLUDES(mu_);
  Status Commit(const Reservation& r, std::optional<uint64_t> checksum,
                std::optional<uint64_t> trusted_checksum = std::nullopt) EXCLUDES(mu_);
  Status Abort(const Reservation& r) EXCLUDES(mu_);
  Status Put(const BlockKey& key, const void* src, uint64_t size, Tier tier) EXCLUDES(mu_);
  Result<PinnedBlock> Pin(const BlockKey& key) EXCLUDES(mu_);
  Status Release(const PinnedBlock& p) EXCLUDES(mu_);
  Result<uint64_t> Get(const BlockKey& key, void* dst, uint64_t dst_size) EXCLUDES(mu_);
  Status VerifyPinned(const PinnedBlock& p) EXCLUDES(mu_);
  bool Contains(const BlockKey& key) const EXCLUDES(mu_);
  size_t LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes, uint32_t layer,
                      std::vector<Tier>* tiers) const EXCLUDES(mu_);

  // --- admin (tier_admin.cc) ---
  Status Delete(const BlockKey& key) EXCLUDES(mu_);
  Status Evict(const BlockKey& key, Tier to) EXCLUDES(mu_);
  Status SetAdminPin(const BlockKey& key, bool pinned) EXCLUDES(mu_);
  Status Drain(const DrainProgress& progress) EXCLUDES(mu_);
  Status Flush() EXCLUDES(mu_);
  std::vector<BlockInfo> ListBlocks(const BlockFilter& filter) const EXCLUDES(mu_);
  Result<BlockInfo> Describe(const BlockKey& key) const EXCLUDES(mu_);
  StoreStats GetStats() const EXCLUDES(mu_);
  Status SetCapacity(Tier tier, uint64_t bytes) EXCLUDES(mu_);
  void ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal) EXCLUDES(mu_);
  bool RunMoverOnce(bool only_if_woken) EXCLUDES(mu_);
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const EXCLUDES(mu_);
  std::string TierRanking(Tier tier) const EXCLUDES(mu_);
  HostSegmentInfo host_segment() const;
  DeviceSegmentInfo device_segment() const;

  const TierManagerOptions& options() const { return opts_; }
  bool device_is_cuda() const { return device_ && device_->is_cuda(); }
  bool has_device_tier() const { return device_ != nullptr; }
  bool has_ssd_tier() const { return ssd_ != nullptr; }
  std::string_view policy_name() const { return policy_name_; }

 private:
  struct NamespaceEntry {
    NamespaceConfig config;
    uint64_t fingerprint;
  };
  struct PinEntry {
    BlockKey key;
    Tier tier;
    int32_t slot;
    uint64_t expiry_us;
    uint64_t generation;
    bool installed;  // counted in the record's pins
  };
  struct Quarantined {
    Tier tier;
    int32_t slot;
    uint64_t until_us;
  };
  // A request to move specific blocks down now (Evict, Drain). Its fields are
  // guarded by mu_.
  struct ForcedRequest {
    std::vector<BlockKey> keys;
    Tier to = Tier::kSsd;
    bool skip_unmovable = false;  // Drain: skip pinned / missing blocks silently
    size_t next = 0;
    uint64_t done = 0;
    Status status;
    bool finished = false;
  };
  // One block being moved by the mover (slot referenced by the mover).
  struct MoveItem {
    BlockKey key;
    Tier from;
    int32_t slot;
    uint64_t size;
    uint64_t checksum;
    bool checksum_known;  // else computed from the slot before the SSD write
    uint64_t fingerprint;
    uint64_t generation;
    ForcedRequest* req;         // nullable
    std::vector<char> staging;  // device (CUDA) payload copied to host
    bool corrupt = false;       // the slot no longer matches its checksum
  };
  // One block being promoted by the mover: SSD -> host or host -> device.
  struct Promotion {
    BlockKey key;
    int32_t from_slot;  // host slot (host -> device, referenced); -1 for SSD
    int32_t to_slot;
    uint64_t generation;
    uint64_t checksum;
    uint64_t size;
    Status status;
  };
  // The demotion a memory tier needs now (DemotionTargetLocked).
  struct DemotionTarget {
    bool needed = false;
    uint64_t to_free = 0;  // extent bytes to free
  };

  uint64_t Now() const { return clock_->NowMicros(); }
  uint64_t NextTick() { return tick_.fetch_add(1, std::memory_order_relaxed) + 1; }

  // --- slots (tier_manager.cc) ---
  ExtentPool* Pool(Tier t) const {
    return t == Tier::kDevice ? device_pool_.get() : t == Tier::kHost ? host_pool_.get() : nullptr;
  }
  char* SlotPtr(Tier t, int32_t slot) const {
    return t == Tier::kDevice ? device_->PtrAt(device_pool_->offset(slot))
                              : host_base_ + host_pool_->offset(slot);
  }
  uint64_t SlotOffset(Tier t, int32_t slot) const { return Pool(t)->offset(slot); }
  Status CopyToSlot(Tier t, int32_t slot, const void* src, uint64_t n) const;
  Status CopyFromSlot(Tier t, int32_t slot, void* dst, uint64_t n) const;
  Result<uint64_t> ChecksumSlot(Tier t, int32_t slot, uint64_t n) const;
  void UnrefSlotLocked(Tier t, int32_t slot) REQUIRES(mu_) {
    if (Pool(t)->Unref(slot)) space_cv_.NotifyAll();
  }
  // An extent for a value of `size` bytes in memory tier `t` (clean copies
  // dropped to make room if needed), or -1.
  int32_t AllocateLocked(Tier t, uint64_t size) REQUIRES(mu_);
  // True when a memory tier is above its high watermark (bytes of extents).
  bool OverHighWatermarkLocked(Tier t) const REQUIRES(mu_);
  // Asks the mover for a pass now.
  void WakeMoverLocked() REQUIRES(mu_) {
    mover_work_ = true;
    mover_cv_.NotifyOne();
  }

  // --- accounting (tier_manager.cc) ---
  void AddToTierLocked(Tier t, uint64_t size) REQUIRES(mu_) {
    tier_bytes_[Idx(t)] += size;
    tier_blocks_[Idx(t)] += 1;
  }
  void RemoveFromTierLocked(Tier t, uint64_t size) REQUIRES(mu_) {
    tier_bytes_[Idx(t)] -= size;
    tier_blocks_[Idx(t)] -= 1;
  }
  // Counts a block dropped out of the store from `t`.
  void CountDropLocked(Tier t, DropReason reason) REQUIRES(mu_) {
    ++stats_.drops[Idx(t)];
    ++stats_.drop_reasons[Idx(t)][static_cast<size_t>(reason)];
  }
  // Counts a block moved from `from` to `to` (a move on SSD counts its bytes).
  void CountMoveLocked(Tier from, Tier to, uint64_t size) REQUIRES(mu_) {
    ++stats_.moves[Idx(from)][Idx(to)];
    stats_.bytes_moved[Idx(from)][Idx(to)] += size;
  }
  // Counts a get served from tier `t`: a hit there, a miss in each tier above
  // it that exists.
  void CountHitLocked(Tier t) REQUIRES(mu_);
  // Counts a get found nowhere: a miss in every tier that exists.
  void CountMissLocked() REQUIRES(mu_);
  bool HasTier(Tier t) const {
    return t == Tier::kHost || (t == Tier::kDevice && device_) || (t == Tier::kSsd && ssd_);
  }
  bool EligibleVictim(const BlockRecord* rec, Tier tier) const {
    return rec != nullptr && rec->state == BlockState::kCommitted && rec->tier == tier &&
           rec->pins == 0 && !rec->admin_pinned;
  }
  // True when `extra` more bytes on SSD would take the SSD tier above its
  // high watermark (it would then have to drop blocks to take them). Only
  // then does the policy's admission control decide whether a block leaving
  // host memory is written to SSD; with room, it always is.
  bool SsdUnderPressureLocked(uint64_t extra) const REQUIRES(mu_);

  // --- index (tier_manager.cc) ---
  Status ValidateKeyLocked(const BlockKey& key, const NamespaceEntry** ns_out) const REQUIRES(mu_);
  // Validates `key` and finds its readable, layout-matching record (which
  // `on_ssd_only` also requires to have an SSD copy); counts a miss (and a
  // layout mismatch) otherwise.
  Result<BlockRecord*> FindReadableLocked(const BlockKey& key, bool on_ssd_only = false)
      REQUIRES(mu_);
  // Removes a readable record from every tier (slot unref'd, SSD copy queued
  // for deletion, policy told). The caller counts it as delete or drop.
  void RemoveRecordLocked(const BlockKey& key, BlockRecord* rec) REQUIRES(mu_);
  // Erases a reservation's record and frees its slot.
  void EraseReservationLocked(const BlockKey& key, BlockRecord* rec) REQUIRES(mu_);
  // A memory copy failed its checksum: counts it and drops the block if its
  // record still names `slot` of `tier`.
  void DropCorruptLocked(const BlockKey& key, Tier tier, int32_t slot) REQUIRES(mu_);
  // Drops the (clean) memory copy of an on_ssd record: it becomes SSD-only.
  void DropCleanCopyLocked(const BlockKey& key, BlockRecord* rec) REQUIRES(mu_);
  // Frees up to `want` bytes of `tier` by dropping clean copies (blocks also
  // on SSD): cheap, no I/O. Returns the extent bytes freed.
  uint64_t FreeCleanLocked(Tier tier, uint64_t want) REQUIRES(mu_);
  // Handles an SSD read failure for `key` (generation `gen`).
  void OnSsdReadErrorLocked(const BlockKey& key, uint64_t gen, const Status& s) REQUIRES(mu_);

  // --- put / get steps (tier_manager.cc) ---
  // The error that refuses a reservation of `key` (size, quota, existing
  // record), or OK; an expired reservation of `key` is reclaimed (*retry).
  Status CheckReserveLocked(const BlockKey& key, uint64_t size, const NamespaceEntry* ns,
                            bool* retry) REQUIRES(mu_);
  // Records a reservation of `slot` in `tier` and describes it.
  Reservation InsertReservationLocked(const BlockKey& key, uint64_t size, Tier tier, int32_t slot,
                                      uint64_t fingerprint) REQUIRES(mu_);
  // Waits (bounded by `deadline`) for the mover to free an extent of `size`
  // bytes in `tier`; false when the wait timed out and none can be allocated.
  bool WaitForSpaceLocked(MutexLock* lock, Tier tier, uint64_t size,
                          std::chrono::steady_clock::time_point deadline) REQUIRES(mu_);
  // Publishes a reservation whose slot hashed to `checksum`.
  void PublishLocked(const BlockKey& key, BlockRecord* rec, uint64_t checksum, uint64_t tick)
      REQUIRES(mu_);
  // A pin of `rec` (lease from now; id, tier and slot left to the caller).
  PinnedBlock NewPinLocked(const BlockKey& key, const BlockRecord& rec) REQUIRES(mu_);
  // Pins a record that is in a memory tier.
  PinnedBlock PinInMemoryLocked(const BlockKey& key, BlockRecord* rec, uint64_t tick) REQUIRES(mu_);
  // Pins an SSD-only record: reads it (verified) into a host slot, which
  // becomes the block's host copy when nothing changed meanwhile.
  Result<PinnedBlock> PinFromSsdLocked(const BlockKey& key, BlockRecord* rec, uint64_t tick)
      REQUIRES(mu_);
  Result<uint64_t> ReadSsdDirect(const BlockKey& key, void* dst, uint64_t dst_size) EXCLUDES(mu_);
  // Expiry of leases and quarantined slots.
  void SweepLocked(uint64_t now) REQUIRES(mu_);
  void ExpireReservationLocked(const BlockKey& key, BlockRecord* rec, uint64_t now) REQUIRES(mu_);
  // Opening the tiers (Init).
  Status OpenDeviceTier();
  Status OpenHostTier();
  // Opens RocksDB and rebuilds the index from its headers (no payload reads).
  Status OpenSsdTierLocked() REQUIRES(mu_);
  // Queues a forced request (Evict, Drain) for the mover and wakes it.
  void QueueForcedLocked(std::shared_ptr<ForcedRequest> req) REQUIRES(mu_);

  // --- mover (tier_mover.cc) ---
  // True when no mover thread runs (mover_interval_us == 0): callers run
  // the mover themselves (RunMoverOnce, RunMoverInlineLocked).
  bool InlineMover() const { return opts_.mover_interval_us == 0; }
  void MoverLoop() EXCLUDES(mu_);
  // Inline mover: one wake-up's passes in the calling thread (after any
  // other thread's inline run has finished).
  void RunMoverInlineLocked(MutexLock* lock) REQUIRES(mu_);
  // Blocks moved, promoted or dropped so far (RunMoverOnce's progress).
  uint64_t MoverActivityLocked() const REQUIRES(mu_);
  // One pass; returns true if it made progress and should run again at once.
  bool MoverPassLocked() REQUIRES(mu_);
  // Drops the policy's SSD victims while the SSD is above its high watermark.
  void DropSsdExcessLocked() REQUIRES(mu_);
  // How much a memory tier must free: above its high watermark (counting
  // what reservers wait for), a reserver waiting, or `also`.
  DemotionTarget DemotionTargetLocked(Tier t, bool also) const REQUIRES(mu_);
  // The bytes of victims to ask the policy for in one pass: `to_free`, at
  // most one batch (mover_batch_blocks extents of the tier's mean size; a
  // pass takes no more, and the policies pick greedily, so the batch is the
  // same first victims a larger request would start with).
  uint64_t BatchBytesLocked(Tier t, uint64_t to_free) const REQUIRES(mu_);
  // Device over its watermark: demotes victims to host. True if it moved any.
  bool DemoteDeviceLocked() REQUIRES(mu_);
  // Host over its watermark: clean copies dropped, dirty ones written to SSD
  // (see SsdUnderPressureLocked) or dropped. True if it freed space.
  bool DemoteHostLocked() REQUIRES(mu_);
  // Writes items (+ queued deletes) to SSD with the lock released, then
  // completes them. Returns the write status.
  Status WriteToSsdLocked(std::vector<MoveItem>& items) REQUIRES(mu_);
  // The SSD writes for `items` (checksums verified or computed; corrupt
  // items marked). Runs without mu_.
  Status PrepareSsdWrites(std::vector<MoveItem>& items, std::vector<SsdTier::WriteItem>* writes)
      EXCLUDES(mu_);
  // Completes one item after its SSD write finished with `s`.
  void FinishSsdWriteLocked(MoveItem& item, const Status& s) REQUIRES(mu_);
  // Copies device items into the host slots allocated for them (lock
  // released), then moves the records to host.
  void MoveDeviceToHostLocked(std::vector<MoveItem>& items, std::vector<int32_t>& host_slots)
      REQUIRES(mu_);
  // Prepares a committed memory-tier record for a move: state demoting, mover ref.
  MoveItem StartMoveLocked(const BlockKey& key, BlockRecord* rec, ForcedRequest* req) REQUIRES(mu_);
  // Carries out the front forced request, one batch per pass.
  void ProcessForcedLocked() REQUIRES(mu_);
  // Why the next key of a forced request cannot move (OK if it can).
  Status ForcedKeyErrorLocked(const BlockKey& key, const BlockRecord* rec) const REQUIRES(mu_);
  // Carries out one key of a forced request, or queues it in to_ssd / to_host.
  void ForceOneLocked(ForcedRequest* req, const BlockKey& key, BlockRecord* rec,
                      std::vector<MoveItem>* to_ssd, std::vector<MoveItem>* to_host,
                      std::vector<int32_t>* host_slots) REQUIRES(mu_);
  // Carries out Policy::SelectPromotions while a tier is below its low
  // watermark: SSD -> host (verified read) and host -> device.
  void PromoteLocked() REQUIRES(mu_);
  // Starts promotions of `keys` into `to` (at most one batch) while the
  // tier stays at or below `limit` bytes, and allocates their slots.
  std::vector<Promotion> StartPromotionsLocked(Tier to, const std::vector<BlockKey>& keys,
                                               uint64_t limit) REQUIRES(mu_);
  // Copies and completes started promotions into `to` (lock released for the
  // copies).
  void RunPromotionsLocked(Tier to, std::vector<Promotion>& work) REQUIRES(mu_);
  // GPU refresh: carries out Policy::SelectExchanges for the device tier,
  // one batch per pass: the victims move to host (as DemoteDeviceLocked's),
  // then the candidates are promoted into the room they left, the tier
  // growing no fuller than it was or its low watermark. True if it moved any.
  bool RefreshDeviceLocked() REQUIRES(mu_);
  // Copies promoted blocks into their new slots. Runs without mu_.
  void CopyPromotions(Tier to, std::vector<Promotion>& work) EXCLUDES(mu_);
  // Moves the records of copied promotions to `to`; frees slots of failed ones.
  void FinishPromotionsLocked(Tier to, std::vector<Promotion>& work) REQUIRES(mu_);
  static void FailRequest(ForcedRequest* req, const Status& s) {
    if (req != nullptr && req->status.ok() && !s.ok()) req->status = s;
  }

  // Immutable after Init.
  const TierManagerOptions opts_;
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<policy::Policy> policy_ PT_GUARDED_BY(mu_);
  std::string_view policy_name_;
  std::unique_ptr<DeviceTier> device_;
  std::unique_ptr<ExtentPool> device_pool_;  // changed under mu_ (see the class comment)
  std::unique_ptr<HostTier> host_;
  std::unique_ptr<ExtentPool> host_pool_;  // changed under mu_ (see the class comment)
  char* host_base_ = nullptr;
  std::unique_ptr<SsdTier> ssd_;

  mutable Mutex mu_;
  CondVar mover_cv_;  // wakes the mover
  CondVar space_cv_;  // slots freed, moves completed, requests finished
  BlockIndex index_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, NamespaceEntry> namespaces_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, PinEntry> pins_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, BlockKey> reservations_ GUARDED_BY(mu_);  // id -> key
  std::vector<Quarantined> quarantine_ GUARDED_BY(mu_);
  std::vector<BlockKey> ssd_deletes_ GUARDED_BY(mu_);
  std::deque<std::shared_ptr<ForcedRequest>> forced_ GUARDED_BY(mu_);
  // Reservers waiting for a device / host extent, and the extent bytes they wait for.
  std::array<uint32_t, 2> waiting_ GUARDED_BY(mu_) = {};
  std::array<uint64_t, 2> waiting_bytes_ GUARDED_BY(mu_) = {};
  std::array<uint64_t, kNumLocalTiers> tier_bytes_ GUARDED_BY(mu_) = {};
  std::array<uint64_t, kNumLocalTiers> tier_blocks_ GUARDED_BY(mu_) = {};
  uint64_t ssd_capacity_ GUARDED_BY(mu_) = 0;
  StoreStats stats_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  bool mover_work_ GUARDED_BY(mu_) = false;
  bool ssd_busy_ GUARDED_BY(mu_) = false;
  // The last SSD write failed: back off until the next interval.
  bool ssd_error_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  // An inline mover run is in progress (InlineMover).
  bool inline_mover_running_ GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> tick_{0};
  std::thread mover_;
};

}  // namespace kvcake::store
