#include "store/tier_manager.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/copy_and_hash.h"
#include "common/logging.h"
#include "policy/lru_policy.h"
#include "store/block_index.h"
#include "store/checksum.h"
#include "store/device_tier.h"
#include "store/extent_pool.h"
#include "store/host_tier.h"
#include "store/ssd_tier.h"

namespace kvcake::store {

namespace {

constexpr size_t Idx(Tier t) { return static_cast<size_t>(t); }

bool IsMemoryTier(Tier t) { return t == Tier::kDevice || t == Tier::kHost; }

// Extents are multiples of 4 KiB, so every value starts page-aligned in its
// segment.
constexpr uint64_t kExtentGranule = 4096;

// Pages of the host segment's ExtentPool: slot_bytes (the largest value)
// times 1 to 4. Larger pages lose less to a page's tail when a class does
// not divide it; smaller ones less to the one partly filled page per class.
// Segments of 64 slot_bytes or more get pages of 2 slot_bytes, of 256 or more
// of 4.
uint64_t HostPageBytes(const TierManagerOptions& o) {
  return std::clamp<uint64_t>(o.host_capacity_bytes / (64 * o.slot_bytes), 1, 4) * o.slot_bytes;
}

}  // namespace

Status TierManagerOptions::Validate() const {
  if (slot_bytes == 0 || slot_bytes % 4096 != 0) {
    return InvalidArgumentError("store: slot_bytes must be a positive multiple of 4096");
  }
  if (host_capacity_bytes / kExtentGranule >= (1ull << 31)) {
    return InvalidArgumentError("store: host_capacity_bytes must be below 8 TiB");
  }
  if (host_capacity_bytes < slot_bytes) {
    return InvalidArgumentError("store: host_capacity_bytes must hold at least one slot");
  }
  if (device_capacity_bytes != 0 && device_capacity_bytes < slot_bytes) {
    return InvalidArgumentError("store: device_capacity_bytes must be 0 or hold a slot");
  }
  if (!(low_watermark > 0 && low_watermark <= high_watermark && high_watermark <= 1.0)) {
    return InvalidArgumentError("store: need 0 < low_watermark <= high_watermark <= 1");
  }
  if (mover_batch_blocks == 0) return InvalidArgumentError("store: mover_batch_blocks is 0");
  if (pin_lease_us == 0 || reservation_lease_us == 0) {
    return InvalidArgumentError("store: lease durations must be > 0");
  }
  if (mover_interval_us == 0) return InvalidArgumentError("store: mover_interval_us is 0");
  if (!ssd_path.empty() && ssd_capacity_bytes == 0) {
    return InvalidArgumentError("store: ssd_capacity_bytes is 0 with an ssd_path");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Impl
// ---------------------------------------------------------------------------

class TierManager::Impl {
 public:
  Impl(TierManagerOptions options, std::unique_ptr<policy::Policy> policy)
      : opts_(std::move(options)), policy_(std::move(policy)) {
    clock_ = opts_.clock ? opts_.clock : std::make_shared<SteadyClock>();
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      for (auto& req : forced_) {
        if (req->status.ok()) req->status = AbortedError("store: shutting down");
        req->finished = true;
      }
      forced_.clear();
    }
    mover_cv_.notify_all();
    space_cv_.notify_all();
    if (mover_.joinable()) mover_.join();
  }

  Status Init();

  // --- namespaces ---
  Status RegisterNamespace(const NamespaceConfig& config);
  Result<NamespaceConfig> GetNamespace(uint64_t ns) const;
  std::vector<NamespaceConfig> ListNamespaces() const;
  uint64_t NamespaceUsedBytes(uint64_t ns) const;

  // --- data path ---
  Result<Reservation> Reserve(const BlockKey& key, uint64_t size, Tier tier);
  Status Commit(const Reservation& r, std::optional<uint64_t> checksum,
                std::optional<uint64_t> trusted_checksum = std::nullopt);
  Status Abort(const Reservation& r);
  Status Put(const BlockKey& key, const void* src, uint64_t size, Tier tier);
  Result<PinnedBlock> Pin(const BlockKey& key);
  Status Release(const PinnedBlock& p);
  Result<uint64_t> Get(const BlockKey& key, void* dst, uint64_t dst_size);
  Status VerifyPinned(const PinnedBlock& p);
  bool Contains(const BlockKey& key) const;
  size_t LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes, uint32_t layer,
                      std::vector<Tier>* tiers) const;

  // --- admin ---
  Status Delete(const BlockKey& key);
  Status Evict(const BlockKey& key, Tier to);
  Status SetAdminPin(const BlockKey& key, bool pinned);
  Status Drain(const DrainProgress& progress);
  Status Flush();
  std::vector<BlockInfo> ListBlocks(const BlockFilter& filter) const;
  Result<BlockInfo> Describe(const BlockKey& key) const;
  StoreStats GetStats() const;
  Status SetCapacity(Tier tier, uint64_t bytes);
  void ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal);
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const;
  HostSegmentInfo host_segment() const;
  DeviceSegmentInfo device_segment() const;

  const TierManagerOptions& options() const { return opts_; }
  bool device_is_cuda() const { return device_ && device_->is_cuda(); }
  bool has_device_tier() const { return device_ != nullptr; }
  bool has_ssd_tier() const { return ssd_ != nullptr; }
  std::string_view policy_name() const { return policy_->name(); }

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
  // A request to move specific blocks down now (Evict, Drain).
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

  uint64_t Now() const { return clock_->NowMicros(); }
  uint64_t NextTick() { return tick_.fetch_add(1, std::memory_order_relaxed) + 1; }

  ExtentPool* Pool(Tier t) const {
    return t == Tier::kDevice ? device_pool_.get() : t == Tier::kHost ? host_pool_.get() : nullptr;
  }
  char* SlotPtr(Tier t, int32_t slot) const {
    return t == Tier::kDevice ? device_->SlotPtr(slot) : host_base_ + host_pool_->offset(slot);
  }
  uint64_t SlotOffset(Tier t, int32_t slot) const { return Pool(t)->offset(slot); }
  Status CopyToSlot(Tier t, int32_t slot, const void* src, uint64_t n) const {
    if (t == Tier::kDevice) return device_->CopyIn(slot, src, n);
    std::memcpy(SlotPtr(t, slot), src, n);
    return Status::Ok();
  }
  Status CopyFromSlot(Tier t, int32_t slot, void* dst, uint64_t n) const {
    if (t == Tier::kDevice) return device_->CopyOut(slot, dst, n);
    std::memcpy(dst, SlotPtr(t, slot), n);
    return Status::Ok();
  }
  Result<uint64_t> ChecksumSlot(Tier t, int32_t slot, uint64_t n) const {
    if (t == Tier::kDevice && device_->is_cuda()) {
      std::vector<char> tmp(n);
      RETURN_IF_ERROR(device_->CopyOut(slot, tmp.data(), n));
      return BlockChecksum(tmp.data(), n);
    }
    return BlockChecksum(SlotPtr(t, slot), n);
  }

  // All *Locked helpers require mu_.
  void UnrefSlotLocked(Tier t, int32_t slot) {
    if (Pool(t)->Unref(slot)) space_cv_.notify_all();
  }
  void AddToTierLocked(Tier t, uint64_t size) {
    tier_bytes_[Idx(t)] += size;
    tier_blocks_[Idx(t)] += 1;
  }
  void RemoveFromTierLocked(Tier t, uint64_t size) {
    tier_bytes_[Idx(t)] -= size;
    tier_blocks_[Idx(t)] -= 1;
  }
  // Removes a readable record from every tier (slot unref'd, SSD copy queued
  // for deletion, policy told). The caller counts it as delete or drop.
  void RemoveRecordLocked(const BlockKey& key, BlockRecord* rec);
  // A memory copy failed its checksum: counts it and drops the block if its
  // record still names `slot` of `tier`.
  void DropCorruptLocked(const BlockKey& key, Tier tier, int32_t slot);
  // Drops the (clean) memory copy of an on_ssd record: it becomes SSD-only.
  void DropCleanCopyLocked(const BlockKey& key, BlockRecord* rec);
  // Frees up to `want` slots of `tier` by dropping clean copies (blocks also
  // on SSD): cheap, no I/O. Returns slots freed.
  uint64_t FreeCleanLocked(Tier tier, uint64_t want);
  // An extent for a value of `size` bytes in memory tier `t` (clean copies
  // dropped to make room if needed), or -1. Requires mu_.
  int32_t AllocateLocked(Tier t, uint64_t size) {
    ExtentPool* pool = Pool(t);
    int32_t slot = pool->Allocate(size);
    if (slot < 0 && FreeCleanLocked(t, pool->ClassBytes(size)) > 0) slot = pool->Allocate(size);
    return slot;
  }
  // True when a memory tier is above its high watermark (bytes of extents).
  bool OverHighWatermarkLocked(Tier t) const {
    const ExtentPool* pool = Pool(t);
    return static_cast<double>(pool->used_bytes()) >
           opts_.high_watermark * static_cast<double>(pool->usable_bytes());
  }
  bool EligibleVictim(const BlockRecord* rec, Tier tier) const {
    return rec != nullptr && rec->state == BlockState::kCommitted && rec->tier == tier &&
           rec->pins == 0 && !rec->admin_pinned;
  }
  // Counts a block dropped out of the store from `t`.
  void CountDropLocked(Tier t, DropReason reason) {
    ++stats_.drops[Idx(t)];
    ++stats_.drop_reasons[Idx(t)][static_cast<size_t>(reason)];
  }
  // True when `extra` more bytes on SSD would take the SSD tier above its
  // high watermark (it would then have to drop blocks to take them). Only
  // then does the policy's admission control decide whether a block leaving
  // host memory is written to SSD; with room, it always is.
  bool SsdUnderPressureLocked(uint64_t extra) const {
    return static_cast<double>(tier_bytes_[Idx(Tier::kSsd)] + extra) >
           opts_.high_watermark * static_cast<double>(ssd_capacity_);
  }
  // Pins a readable record in place (memory tier): no lease, for in-process copies.
  void SweepLocked(uint64_t now);
  void ExpireReservationLocked(const BlockKey& key, BlockRecord* rec, uint64_t now);
  Status ValidateKeyLocked(const BlockKey& key, const NamespaceEntry** ns_out) const;
  // Counts a get served from tier `t`: a hit there, a miss in each tier above
  // it that exists. Requires mu_.
  void CountHitLocked(Tier t) {
    ++stats_.tiers[Idx(t)].hits;
    for (size_t u = 0; u < Idx(t); ++u) {
      if (HasTier(static_cast<Tier>(u))) ++stats_.tiers[u].misses;
    }
  }
  // Counts a get found nowhere: a miss in every tier that exists. Requires mu_.
  void CountMissLocked() {
    ++stats_.misses;
    for (int u = 0; u < kNumLocalTiers; ++u) {
      if (HasTier(static_cast<Tier>(u))) ++stats_.tiers[u].misses;
    }
  }
  bool HasTier(Tier t) const {
    return t == Tier::kHost || (t == Tier::kDevice && device_) || (t == Tier::kSsd && ssd_);
  }
  // Validates `key` and finds its readable, layout-matching record; counts a
  // miss (and a layout mismatch) otherwise. Requires mu_.
  Result<BlockRecord*> FindReadableLocked(const BlockKey& key);
  // Handles an SSD read failure for `key` (generation `gen`).
  void OnSsdReadErrorLocked(const BlockKey& key, uint64_t gen, const Status& s);
  Result<uint64_t> ReadSsdDirect(const BlockKey& key, void* dst, uint64_t dst_size);

  // Mover.
  void MoverLoop();
  // One pass; returns true if it made progress and should run again at once.
  bool MoverPassLocked(std::unique_lock<std::mutex>& lk);
  // Writes items (+ queued deletes) to SSD with the lock released, then
  // completes them. Returns the write status.
  Status WriteToSsdLocked(std::vector<MoveItem>& items, std::unique_lock<std::mutex>& lk);
  // Copies device items into freshly allocated host slots (lock released).
  void MoveDeviceToHostLocked(std::vector<MoveItem>& items, std::vector<int32_t>& host_slots,
                              std::unique_lock<std::mutex>& lk);
  // Prepares a committed memory-tier record for a move: state demoting, mover ref.
  MoveItem StartMoveLocked(const BlockKey& key, BlockRecord* rec, ForcedRequest* req);
  void ProcessForcedLocked(std::unique_lock<std::mutex>& lk);
  // Carries out Policy::SelectPromotions while a tier is below its low
  // watermark: SSD -> host (verified read) and host -> device.
  void PromoteLocked(std::unique_lock<std::mutex>& lk);
  static void FailRequest(ForcedRequest* req, const Status& s) {
    if (req != nullptr && req->status.ok() && !s.ok()) req->status = s;
  }

  TierManagerOptions opts_;
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<policy::Policy> policy_;
  std::unique_ptr<DeviceTier> device_;
  std::unique_ptr<ExtentPool> device_pool_;
  std::unique_ptr<HostTier> host_;
  std::unique_ptr<ExtentPool> host_pool_;
  char* host_base_ = nullptr;
  std::unique_ptr<SsdTier> ssd_;

  mutable std::mutex mu_;
  std::condition_variable mover_cv_;  // wakes the mover
  std::condition_variable space_cv_;  // slots freed, moves completed, requests finished
  BlockIndex index_;
  std::unordered_map<uint64_t, NamespaceEntry> namespaces_;
  std::unordered_map<uint64_t, PinEntry> pins_;
  std::unordered_map<uint64_t, BlockKey> reservations_;  // id -> key
  std::vector<Quarantined> quarantine_;
  std::vector<BlockKey> ssd_deletes_;
  std::deque<std::shared_ptr<ForcedRequest>> forced_;
  std::array<uint32_t, 2> waiting_{};        // reservers waiting for a device / host extent
  std::array<uint64_t, 2> waiting_bytes_{};  // the extent bytes they wait for
  std::array<uint64_t, kNumLocalTiers> tier_bytes_{};
  std::array<uint64_t, kNumLocalTiers> tier_blocks_{};
  uint64_t ssd_capacity_ = 0;
  StoreStats stats_;
  uint64_t next_id_ = 1;
  bool mover_work_ = false;
  bool ssd_busy_ = false;
  bool ssd_error_ = false;  // last SSD write failed: back off until the next interval
  bool stop_ = false;
  std::atomic<uint64_t> tick_{0};
  std::thread mover_;
};

Status TierManager::Impl::Init() {
  RETURN_IF_ERROR(opts_.Validate());
  if (!policy_) policy_ = std::make_unique<policy::LruPolicy>();
  if (opts_.device_capacity_bytes > 0) {
    DeviceTier::Options d;
    d.num_slots = opts_.device_capacity_bytes / opts_.slot_bytes;
    d.slot_bytes = opts_.slot_bytes;
    d.allow_cuda = opts_.device_allow_cuda;
    d.cuda_device = opts_.cuda_device;
    ASSIGN_OR_RETURN(device_, DeviceTier::Open(d));
    // The device arena keeps whole slots (DeviceTier addresses slot indexes).
    device_pool_ = std::make_unique<ExtentPool>(static_cast<uint32_t>(d.num_slots),
                                                opts_.slot_bytes, kExtentGranule, /*fixed=*/true);
  }
  HostTier::Options h;
  h.name = opts_.host_segment_name;
  const uint64_t page = HostPageBytes(opts_);
  h.num_slots = opts_.host_capacity_bytes / page;
  h.slot_bytes = page;
  h.huge_pages = opts_.host_huge_pages;
  ASSIGN_OR_RETURN(host_, HostTier::Open(h));
  host_pool_ = std::make_unique<ExtentPool>(static_cast<uint32_t>(h.num_slots), page,
                                            kExtentGranule, /*fixed=*/false);
  host_base_ = host_->SlotPtr(0);
  ssd_capacity_ = opts_.ssd_capacity_bytes;
  if (!opts_.ssd_path.empty()) {
    SsdTier::Options s;
    s.path = opts_.ssd_path;
    s.sync = opts_.ssd_sync;
    s.min_blob_size = opts_.ssd_min_blob_size;
    s.write_buffer_bytes = opts_.ssd_write_buffer_bytes;
    s.quarantine_corrupt = opts_.ssd_quarantine_corrupt;
    ASSIGN_OR_RETURN(ssd_, SsdTier::Open(s));
    // A quarantined tier is a fresh, empty directory: the scan below finds nothing.
    if (ssd_->quarantined()) ++stats_.ssd_quarantines;
    // Rebuild the index from the headers (no payload reads).
    uint64_t tick = NextTick();
    uint64_t bad = 0;
    RETURN_IF_ERROR(ssd_->ForEachHeader(
        [&](const BlockKey& key, const SsdHeader& hdr) {
          BlockRecord rec;
          rec.state = BlockState::kCommitted;
          rec.tier = Tier::kSsd;
          rec.on_ssd = true;
          rec.size = hdr.size;
          rec.checksum = hdr.checksum;
          rec.fingerprint = hdr.fingerprint;
          rec.last_access_tick = tick;
          if (index_.Insert(key, rec) != nullptr) {
            AddToTierLocked(Tier::kSsd, hdr.size);
            policy_->OnInsert(key, Tier::kSsd, hdr.size, tick);
          }
        },
        [&](std::string_view) { ++bad; }));
    stats_.checksum_failures += bad;
    KVCAKE_LOG(INFO) << "ssd tier: " << opts_.ssd_path << " reopened with "
                     << tier_blocks_[Idx(Tier::kSsd)] << " blocks (" << tier_bytes_[Idx(Tier::kSsd)]
                     << " bytes), " << bad << " bad headers";
  }
  if (device_) policy_->SetTierCapacity(Tier::kDevice, opts_.device_capacity_bytes);
  policy_->SetTierCapacity(Tier::kHost, opts_.host_capacity_bytes);
  if (ssd_) policy_->SetTierCapacity(Tier::kSsd, ssd_capacity_);
  KVCAKE_LOG(INFO) << "store: policy " << policy_->name() << ", device "
                   << (device_ ? (device_->is_cuda() ? "cuda" : "emulated") : "none") << ", host "
                   << host_->num_slots() << " slots, ssd " << (ssd_ ? opts_.ssd_path : "none");
  mover_ = std::thread([this] { MoverLoop(); });
  return Status::Ok();
}

// --- namespaces ---------------------------------------------------------------

Status TierManager::Impl::RegisterNamespace(const NamespaceConfig& config) {
  RETURN_IF_ERROR(config.Validate());
  if (config.layer_block_bytes > opts_.slot_bytes) {
    return InvalidArgumentError("namespace " + config.name + ": layer_block_bytes " +
                                std::to_string(config.layer_block_bytes) + " > slot_bytes " +
                                std::to_string(opts_.slot_bytes));
  }
  uint64_t fp = config.Fingerprint();
  std::lock_guard<std::mutex> lk(mu_);
  auto it = namespaces_.find(config.id);
  if (it != namespaces_.end()) {
    if (it->second.fingerprint != fp) {
      return FailedPreconditionError("namespace " + config.name + " is registered with " +
                                     it->second.config.GeometryText() +
                                     "; this registration asks for " + config.GeometryText() +
                                     " (a namespace's geometry cannot change: use another name)");
    }
    // The quota stays as the first registration set it: a later one (maybe
    // another tenant's) must not change it.
    return Status::Ok();
  }
  namespaces_.emplace(config.id, NamespaceEntry{config, fp});
  policy_->RegisterNamespace(config.id, config.num_layers, config.layer_block_bytes);
  return Status::Ok();
}

Result<NamespaceConfig> TierManager::Impl::GetNamespace(uint64_t ns) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return NotFoundError("unknown namespace " + std::to_string(ns));
  return it->second.config;
}

std::vector<NamespaceConfig> TierManager::Impl::ListNamespaces() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<NamespaceConfig> out;
  for (const auto& [id, e] : namespaces_) out.push_back(e.config);
  std::sort(out.begin(), out.end(),
            [](const NamespaceConfig& a, const NamespaceConfig& b) { return a.id < b.id; });
  return out;
}

uint64_t TierManager::Impl::NamespaceUsedBytes(uint64_t ns) const {
  std::lock_guard<std::mutex> lk(mu_);
  return index_.NamespaceBytes(ns);
}

Status TierManager::Impl::ValidateKeyLocked(const BlockKey& key,
                                            const NamespaceEntry** ns_out) const {
  auto it = namespaces_.find(key.ns);
  if (it == namespaces_.end()) {
    return NotFoundError("namespace of " + key.ToString() + " is not registered");
  }
  if (key.layer >= it->second.config.num_layers) {
    return InvalidArgumentError("layer " + std::to_string(key.layer) + " out of range for " +
                                it->second.config.name);
  }
  *ns_out = &it->second;
  return Status::Ok();
}

// --- put --------------------------------------------------------------------

Result<Reservation> TierManager::Impl::Reserve(const BlockKey& key, uint64_t size, Tier tier) {
  if (tier == Tier::kDevice && !device_) tier = Tier::kHost;
  if (!IsMemoryTier(tier)) return InvalidArgumentError("Reserve: tier must be device or host");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::microseconds(opts_.reserve_wait_us);
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    if (stop_) return UnavailableError("store: shutting down");
    const NamespaceEntry* ns = nullptr;
    Status s = ValidateKeyLocked(key, &ns);
    if (s.ok() && (size == 0 || size > ns->config.layer_block_bytes)) {
      s = InvalidArgumentError("Reserve " + key.ToString() + ": size " + std::to_string(size) +
                               " not in [1, " + std::to_string(ns->config.layer_block_bytes) + "]");
    }
    if (s.ok() && ns->config.quota_bytes != 0 &&
        index_.NamespaceBytes(key.ns) + size > ns->config.quota_bytes) {
      s = ResourceExhaustedError("namespace " + ns->config.name + " is over its quota of " +
                                 std::to_string(ns->config.quota_bytes) + " bytes");
    }
    BlockRecord* existing = s.ok() ? index_.Find(key) : nullptr;
    if (existing != nullptr) {
      if (existing->readable()) {
        s = AlreadyExistsError(key.ToString() + " is already committed");
      } else if (existing->lease_expiry_us < Now()) {
        ExpireReservationLocked(key, existing, Now());
        continue;
      } else {
        s = AbortedError(key.ToString() + " is being written by another writer");
      }
    }
    if (!s.ok()) {
      ++stats_.put_rejected;
      return s;
    }
    int32_t slot = AllocateLocked(tier, size);
    if (slot >= 0) {
      BlockRecord rec;
      rec.state = BlockState::kReserved;
      rec.tier = tier;
      rec.slot = slot;
      rec.size = size;
      rec.fingerprint = ns->fingerprint;
      rec.reservation_id = next_id_++;
      rec.lease_expiry_us = Now() + opts_.reservation_lease_us;
      BlockRecord* r = index_.Insert(key, rec);
      reservations_.emplace(r->reservation_id, key);
      Reservation out;
      out.id = r->reservation_id;
      out.key = key;
      out.tier = tier;
      out.data = SlotPtr(tier, slot);
      out.offset = SlotOffset(tier, slot);
      out.size = size;
      out.lease_expiry_us = r->lease_expiry_us;
      if (OverHighWatermarkLocked(tier)) {
        mover_work_ = true;
        mover_cv_.notify_one();
      }
      return out;
    }
    // No slot: let the mover demote, and wait (bounded).
    const uint64_t want = Pool(tier)->ClassBytes(size);
    ++waiting_[Idx(tier)];
    waiting_bytes_[Idx(tier)] += want;
    mover_work_ = true;
    mover_cv_.notify_one();
    bool timed_out = space_cv_.wait_until(lk, deadline) == std::cv_status::timeout;
    --waiting_[Idx(tier)];
    waiting_bytes_[Idx(tier)] -= want;
    if (timed_out && !Pool(tier)->CanAllocate(size)) {
      ++stats_.put_rejected;
      return ResourceExhaustedError(std::string("store: no free ") + std::string(TierName(tier)) +
                                    " slot (tier full and nothing could be demoted in time)");
    }
  }
}

Status TierManager::Impl::Commit(const Reservation& r, std::optional<uint64_t> checksum,
                                 std::optional<uint64_t> trusted_checksum) {
  // Hash outside the lock: the slot belongs to this reservation.
  Tier tier;
  int32_t slot;
  uint64_t size;
  {
    std::lock_guard<std::mutex> lk(mu_);
    BlockRecord* rec = index_.Find(r.key);
    if (rec == nullptr || rec->state != BlockState::kReserved || rec->reservation_id != r.id) {
      return AbortedError("Commit " + r.key.ToString() + ": reservation lost (lease expired?)");
    }
    tier = rec->tier;
    slot = rec->slot;
    size = rec->size;
  }
  // The block's checksum is taken now, from the bytes the writer put in the
  // slot, and checked on every later read and tier move (a slot scribbled
  // afterwards is never served or persisted as valid). A caller's own
  // checksum (computed from its source bytes) is verified against the slot.
  Result<uint64_t> actual = trusted_checksum.has_value() ? Result<uint64_t>(*trusted_checksum)
                                                         : ChecksumSlot(tier, slot, size);
  if (!actual.ok()) return actual.status();
  const uint64_t tick = NextTick();
  std::lock_guard<std::mutex> lk(mu_);
  BlockRecord* rec = index_.Find(r.key);
  if (rec == nullptr || rec->state != BlockState::kReserved || rec->reservation_id != r.id) {
    return AbortedError("Commit " + r.key.ToString() + ": reservation lost (lease expired?)");
  }
  const uint64_t now = Now();
  if (rec->lease_expiry_us < now) {
    ExpireReservationLocked(r.key, rec, now);
    return AbortedError("Commit " + r.key.ToString() + ": reservation lease expired");
  }
  if (checksum.has_value() && *checksum != *actual) {
    ++stats_.checksum_failures;
    reservations_.erase(rec->reservation_id);
    Tier t = rec->tier;
    int32_t slot = rec->slot;
    index_.Erase(r.key);
    UnrefSlotLocked(t, slot);
    return DataLossError("Commit " + r.key.ToString() + ": checksum mismatch, block discarded");
  }
  reservations_.erase(rec->reservation_id);
  rec->state = BlockState::kCommitted;
  rec->checksum = *actual;
  rec->checksum_known = true;
  rec->reservation_id = 0;
  rec->last_access_tick = tick;
  AddToTierLocked(rec->tier, rec->size);
  policy_->OnInsert(r.key, rec->tier, rec->size, tick);
  ++stats_.puts;
  if (OverHighWatermarkLocked(rec->tier)) {
    mover_work_ = true;
    mover_cv_.notify_one();
  }
  return Status::Ok();
}

Status TierManager::Impl::Abort(const Reservation& r) {
  std::lock_guard<std::mutex> lk(mu_);
  BlockRecord* rec = index_.Find(r.key);
  if (rec == nullptr || rec->state != BlockState::kReserved || rec->reservation_id != r.id) {
    return NotFoundError("Abort " + r.key.ToString() + ": no such reservation");
  }
  reservations_.erase(rec->reservation_id);
  Tier t = rec->tier;
  int32_t slot = rec->slot;
  index_.Erase(r.key);
  UnrefSlotLocked(t, slot);
  return Status::Ok();
}

Status TierManager::Impl::Put(const BlockKey& key, const void* src, uint64_t size, Tier tier) {
  ASSIGN_OR_RETURN(Reservation r, Reserve(key, size, tier));
  if (r.tier == Tier::kHost || (r.tier == Tier::kDevice && !device_->is_cuda())) {
    // Host memory: copy and hash in one pass.
    const uint64_t sum = CopyAndHash(r.data, src, size);
    return Commit(r, std::nullopt, sum);
  }
  Status s = CopyToSlot(r.tier, Pool(r.tier)->HandleAt(r.offset), src, size);
  if (!s.ok()) {
    Abort(r).IgnoreError();
    return s;
  }
  return Commit(r, std::nullopt);
}

// --- get --------------------------------------------------------------------

void TierManager::Impl::OnSsdReadErrorLocked(const BlockKey& key, uint64_t gen, const Status& s) {
  CountMissLocked();
  if (s.code() == StatusCode::kDataLoss) ++stats_.checksum_failures;
  if (s.code() != StatusCode::kDataLoss && s.code() != StatusCode::kNotFound) return;
  // The SSD copy is corrupt or gone: forget the block (a miss from now on).
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr || rec->generation != gen) return;
  if (rec->state == BlockState::kPromoting) rec->state = BlockState::kCommitted;
  if (rec->slot >= 0) {
    // A memory copy is still good; only the SSD copy is lost.
    if (rec->on_ssd) {
      rec->on_ssd = false;
      RemoveFromTierLocked(Tier::kSsd, rec->size);
      ssd_deletes_.push_back(key);
    }
    return;
  }
  RemoveRecordLocked(key, rec);
  CountDropLocked(Tier::kSsd, DropReason::kCorrupt);
}

Result<BlockRecord*> TierManager::Impl::FindReadableLocked(const BlockKey& key) {
  const NamespaceEntry* ns = nullptr;
  Status s = ValidateKeyLocked(key, &ns);
  if (!s.ok()) {
    CountMissLocked();
    return s;
  }
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr || !rec->readable()) {
    CountMissLocked();
    return NotFoundError(key.ToString() + " not found");
  }
  if (rec->fingerprint != ns->fingerprint) {
    CountMissLocked();
    ++stats_.layout_mismatches;
    return FailedPreconditionError(key.ToString() +
                                   ": stored with another namespace geometry/layout");
  }
  return rec;
}

Result<PinnedBlock> TierManager::Impl::Pin(const BlockKey& key) {
  const uint64_t tick = NextTick();
  std::unique_lock<std::mutex> lk(mu_);
  ASSIGN_OR_RETURN(BlockRecord * rec, FindReadableLocked(key));
  const uint64_t now = Now();
  PinnedBlock out;
  out.key = key;
  out.size = rec->size;
  out.checksum = rec->checksum;
  out.lease_expiry_us = now + opts_.pin_lease_us;
  rec->last_access_tick = tick;
  if (rec->slot >= 0) {
    Pool(rec->tier)->Ref(rec->slot);
    ++rec->pins;
    out.id = next_id_++;
    out.tier = rec->tier;
    out.data = SlotPtr(rec->tier, rec->slot);
    out.offset = SlotOffset(rec->tier, rec->slot);
    pins_.emplace(out.id,
                  PinEntry{key, rec->tier, rec->slot, out.lease_expiry_us, rec->generation, true});
    CountHitLocked(rec->tier);
    policy_->OnAccess(key, rec->tier, tick);
    return out;
  }
  // SSD-only: promote into a host slot (never waits for a demotion).
  int32_t slot = AllocateLocked(Tier::kHost, rec->size);
  if (slot < 0) {
    mover_work_ = true;
    mover_cv_.notify_one();
    return ResourceExhaustedError("Pin " + key.ToString() + ": no free host slot to promote into");
  }
  const bool install = rec->state == BlockState::kCommitted;
  if (install) rec->state = BlockState::kPromoting;
  const uint64_t gen = rec->generation;
  const uint64_t expect_checksum = rec->checksum;
  lk.unlock();
  Result<SsdHeader> hdr =
      ssd_->Read(key, SlotPtr(Tier::kHost, slot), host_pool_->extent_bytes(slot));
  if (hdr.ok() && hdr->checksum != expect_checksum) {
    hdr = DataLossError("Pin " + key.ToString() + ": SSD copy does not match the index");
  }
  lk.lock();
  if (!hdr.ok()) {
    UnrefSlotLocked(Tier::kHost, slot);
    OnSsdReadErrorLocked(key, gen, hdr.status());
    return hdr.status();
  }
  rec = index_.Find(key);
  out.id = next_id_++;
  out.tier = Tier::kHost;
  out.data = SlotPtr(Tier::kHost, slot);
  out.offset = SlotOffset(Tier::kHost, slot);
  CountHitLocked(Tier::kSsd);
  if (install && rec != nullptr && rec->generation == gen && rec->state == BlockState::kPromoting) {
    rec->state = BlockState::kCommitted;
    rec->tier = Tier::kHost;
    rec->slot = slot;       // the allocation's reference is the index's
    host_pool_->Ref(slot);  // the pin's
    ++rec->pins;
    AddToTierLocked(Tier::kHost, rec->size);
    ++stats_.moves[Idx(Tier::kSsd)][Idx(Tier::kHost)];
    stats_.bytes_moved[Idx(Tier::kSsd)][Idx(Tier::kHost)] += rec->size;
    policy_->OnMove(key, Tier::kSsd, Tier::kHost, tick);
    policy_->OnAccess(key, Tier::kHost, tick);
    pins_.emplace(out.id, PinEntry{key, Tier::kHost, slot, out.lease_expiry_us, gen, true});
  } else {
    // Private copy (concurrent promotion, or the block changed meanwhile).
    if (install && rec != nullptr && rec->generation == gen &&
        rec->state == BlockState::kPromoting) {
      rec->state = BlockState::kCommitted;
    }
    pins_.emplace(out.id, PinEntry{key, Tier::kHost, slot, out.lease_expiry_us, gen, false});
  }
  if (OverHighWatermarkLocked(Tier::kHost)) {
    mover_work_ = true;
    mover_cv_.notify_one();
  }
  return out;
}

Status TierManager::Impl::Release(const PinnedBlock& p) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pins_.find(p.id);
  if (it == pins_.end()) {
    return AbortedError("Release " + p.key.ToString() + ": pin lease expired or unknown");
  }
  PinEntry e = it->second;
  pins_.erase(it);
  if (e.installed) {
    BlockRecord* rec = index_.Find(e.key);
    if (rec != nullptr && rec->generation == e.generation && rec->pins > 0) --rec->pins;
  }
  const uint64_t now = Now();
  if (e.expiry_us < now) {
    // Expired but not yet swept: the data may already be stale for the caller.
    ++stats_.leases_expired;
    quarantine_.push_back({e.tier, e.slot, now + opts_.quarantine_us});
    return AbortedError("Release " + p.key.ToString() + ": pin lease expired");
  }
  UnrefSlotLocked(e.tier, e.slot);
  return Status::Ok();
}

Result<uint64_t> TierManager::Impl::ReadSsdDirect(const BlockKey& key, void* dst,
                                                  uint64_t dst_size) {
  uint64_t gen = 0, expect_checksum = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    const NamespaceEntry* ns = nullptr;
    RETURN_IF_ERROR(ValidateKeyLocked(key, &ns));
    BlockRecord* rec = index_.Find(key);
    if (rec == nullptr || !rec->readable() || !rec->on_ssd) {
      CountMissLocked();
      return NotFoundError(key.ToString() + " not found");
    }
    if (rec->fingerprint != ns->fingerprint) {
      CountMissLocked();
      ++stats_.layout_mismatches;
      return FailedPreconditionError(key.ToString() +
                                     ": stored with another namespace geometry/layout");
    }
    gen = rec->generation;
    expect_checksum = rec->checksum;
  }
  Result<SsdHeader> hdr = ssd_->Read(key, dst, dst_size);
  if (hdr.ok() && hdr->checksum != expect_checksum) {
    hdr = DataLossError("Get " + key.ToString() + ": SSD copy does not match the index");
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (!hdr.ok()) {
    if (hdr.status().code() != StatusCode::kOutOfRange)
      OnSsdReadErrorLocked(key, gen, hdr.status());
    return hdr.status();
  }
  CountHitLocked(Tier::kSsd);
  return hdr->size;
}

Result<uint64_t> TierManager::Impl::Get(const BlockKey& key, void* dst, uint64_t dst_size) {
  const uint64_t tick = NextTick();
  Tier tier;
  int32_t slot;
  uint64_t size;
  uint64_t expect = 0;
  bool known = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ASSIGN_OR_RETURN(BlockRecord * rec, FindReadableLocked(key));
    if (rec->size > dst_size) {
      return OutOfRangeError("Get " + key.ToString() + ": block of " + std::to_string(rec->size) +
                             " bytes does not fit in " + std::to_string(dst_size));
    }
    if (rec->slot >= 0) {
      // In-process pin without a lease: a slot reference keeps the bytes
      // alive even if the block is demoted or deleted during the copy.
      tier = rec->tier;
      slot = rec->slot;
      size = rec->size;
      expect = rec->checksum;
      known = rec->checksum_known;
      Pool(tier)->Ref(slot);
      rec->last_access_tick = tick;
      CountHitLocked(tier);
      policy_->OnAccess(key, tier, tick);
    } else {
      slot = -1;
    }
  }
  if (slot < 0) {
    // SSD-resident: promote through a pin when a host slot is free, else read directly.
    Result<PinnedBlock> p = Pin(key);
    if (p.ok()) {
      std::memcpy(dst, p->data, p->size);
      uint64_t n = p->size;
      RETURN_IF_ERROR(Release(*p));
      return n;
    }
    if (p.status().code() != StatusCode::kResourceExhausted) return p.status();
    return ReadSsdDirect(key, dst, dst_size);
  }
  Status cs = CopyFromSlot(tier, slot, dst, size);
  if (cs.ok() && known && BlockChecksum(dst, size) != expect) {
    cs = DataLossError("Get " + key.ToString() + ": checksum mismatch in memory");
    std::lock_guard<std::mutex> lk(mu_);
    DropCorruptLocked(key, tier, slot);
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    UnrefSlotLocked(tier, slot);
  }
  if (!cs.ok()) return cs;
  return size;
}

void TierManager::Impl::DropCorruptLocked(const BlockKey& key, Tier tier, int32_t slot) {
  ++stats_.checksum_failures;
  BlockRecord* rec = index_.Find(key);
  // Only if the record still names the slot that was found corrupt.
  if (rec == nullptr || rec->slot != slot || rec->tier != tier ||
      rec->state == BlockState::kReserved) {
    return;
  }
  KVCAKE_LOG(ERROR) << "store: " << key.ToString() << " in the " << TierName(tier)
                    << " tier no longer matches its checksum; dropped";
  CountDropLocked(tier, DropReason::kCorrupt);
  RemoveRecordLocked(key, rec);
}

Status TierManager::Impl::VerifyPinned(const PinnedBlock& p) {
  if (p.tier == Tier::kDevice && device_->is_cuda()) return Status::Ok();  // not host-readable
  if (BlockChecksum(p.data, p.size) == p.checksum) return Status::Ok();
  std::lock_guard<std::mutex> lk(mu_);
  DropCorruptLocked(p.key, p.tier, Pool(p.tier)->HandleAt(p.offset));
  return DataLossError(p.key.ToString() + ": checksum mismatch in memory");
}

bool TierManager::Impl::Contains(const BlockKey& key) const {
  std::lock_guard<std::mutex> lk(mu_);
  const BlockRecord* rec = index_.Find(key);
  return rec != nullptr && rec->readable();
}

size_t TierManager::Impl::LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes,
                                       uint32_t layer, std::vector<Tier>* tiers) const {
  if (tiers != nullptr) {
    tiers->clear();
    tiers->reserve(hashes.size());
  }
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (; n < hashes.size(); ++n) {
    const BlockRecord* rec = index_.Find(BlockKey{ns, hashes[n], layer});
    if (rec == nullptr || !rec->readable()) break;
    if (tiers != nullptr) tiers->push_back(rec->tier);
  }
  return n;
}

// --- removal / leases -------------------------------------------------------

void TierManager::Impl::RemoveRecordLocked(const BlockKey& key, BlockRecord* rec) {
  if (rec->state != BlockState::kReserved) {
    if (IsMemoryTier(rec->tier)) RemoveFromTierLocked(rec->tier, rec->size);
    if (rec->on_ssd) RemoveFromTierLocked(Tier::kSsd, rec->size);
    policy_->OnRemove(key, rec->tier);
  } else {
    reservations_.erase(rec->reservation_id);
  }
  // A demoting block's SSD write may still land: the mover deletes it then.
  if (rec->on_ssd) {
    ssd_deletes_.push_back(key);
    mover_work_ = true;
    mover_cv_.notify_one();
  }
  Tier t = rec->tier;
  int32_t slot = rec->slot;
  index_.Erase(key);
  if (slot >= 0) UnrefSlotLocked(t, slot);
}

void TierManager::Impl::DropCleanCopyLocked(const BlockKey& key, BlockRecord* rec) {
  Tier from = rec->tier;
  RemoveFromTierLocked(from, rec->size);
  int32_t slot = rec->slot;
  rec->slot = -1;
  rec->tier = Tier::kSsd;
  UnrefSlotLocked(from, slot);
  policy_->OnMove(key, from, Tier::kSsd, tick_.load(std::memory_order_relaxed));
}

uint64_t TierManager::Impl::FreeCleanLocked(Tier tier, uint64_t want) {
  if (!ssd_) return 0;
  uint64_t freed = 0;
  auto eligible = [&](const BlockKey& k) {
    const BlockRecord* r = index_.Find(k);
    return EligibleVictim(r, tier) && r->on_ssd;
  };
  std::vector<BlockKey> victims = policy_->SelectVictims(tier, want, eligible);
  for (const BlockKey& k : victims) {
    BlockRecord* r = index_.Find(k);
    if (!eligible(k)) continue;
    freed += Pool(tier)->extent_bytes(r->slot);
    DropCleanCopyLocked(k, r);
    if (freed >= want) break;
  }
  return freed;
}

void TierManager::Impl::ExpireReservationLocked(const BlockKey& key, BlockRecord* rec,
                                                uint64_t now) {
  ++stats_.leases_expired;
  reservations_.erase(rec->reservation_id);
  // The writer may still be copying into the slot: quarantine it.
  quarantine_.push_back({rec->tier, rec->slot, now + opts_.quarantine_us});
  index_.Erase(key);
}

void TierManager::Impl::SweepLocked(uint64_t now) {
  for (auto it = pins_.begin(); it != pins_.end();) {
    if (it->second.expiry_us >= now) {
      ++it;
      continue;
    }
    const PinEntry& e = it->second;
    if (e.installed) {
      BlockRecord* rec = index_.Find(e.key);
      if (rec != nullptr && rec->generation == e.generation && rec->pins > 0) --rec->pins;
    }
    ++stats_.leases_expired;
    quarantine_.push_back({e.tier, e.slot, now + opts_.quarantine_us});
    it = pins_.erase(it);
  }
  std::vector<BlockKey> expired;
  for (const auto& [id, key] : reservations_) {
    BlockRecord* rec = index_.Find(key);
    if (rec != nullptr && rec->lease_expiry_us < now) expired.push_back(key);
  }
  for (const BlockKey& key : expired) ExpireReservationLocked(key, index_.Find(key), now);
  for (size_t i = 0; i < quarantine_.size();) {
    if (quarantine_[i].until_us <= now) {
      UnrefSlotLocked(quarantine_[i].tier, quarantine_[i].slot);
      quarantine_[i] = quarantine_.back();
      quarantine_.pop_back();
    } else {
      ++i;
    }
  }
}

// --- admin ------------------------------------------------------------------

Status TierManager::Impl::Delete(const BlockKey& key) {
  std::lock_guard<std::mutex> lk(mu_);
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr) return NotFoundError(key.ToString() + " not found");
  if (rec->state == BlockState::kReserved) {
    return FailedPreconditionError(key.ToString() + " is being written");
  }
  RemoveRecordLocked(key, rec);
  ++stats_.deletes;
  return Status::Ok();
}

Status TierManager::Impl::Evict(const BlockKey& key, Tier to) {
  if (to == Tier::kDevice) return InvalidArgumentError("Evict: target must be host, ssd or remote");
  if (to == Tier::kSsd && !ssd_) return UnavailableError("Evict: no SSD tier");
  auto req = std::make_shared<ForcedRequest>();
  req->keys.push_back(key);
  req->to = to;
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_) return UnavailableError("store: shutting down");
  forced_.push_back(req);
  mover_work_ = true;
  mover_cv_.notify_one();
  space_cv_.wait(lk, [&] { return req->finished; });
  return req->status;
}

Status TierManager::Impl::SetAdminPin(const BlockKey& key, bool pinned) {
  std::lock_guard<std::mutex> lk(mu_);
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr || !rec->readable()) return NotFoundError(key.ToString() + " not found");
  rec->admin_pinned = pinned;
  if (!pinned) {
    mover_work_ = true;
    mover_cv_.notify_one();
  }
  return Status::Ok();
}

Status TierManager::Impl::Drain(const DrainProgress& progress) {
  if (!ssd_) return UnavailableError("Drain: no SSD tier");
  auto req = std::make_shared<ForcedRequest>();
  req->to = Tier::kSsd;
  req->skip_unmovable = true;
  std::unique_lock<std::mutex> lk(mu_);
  index_.ForEach([&](const BlockKey& k, const BlockRecord& r) {
    if (r.readable() && r.slot >= 0) req->keys.push_back(k);
  });
  const uint64_t total = req->keys.size();
  forced_.push_back(req);
  mover_work_ = true;
  mover_cv_.notify_one();
  while (!req->finished) {
    space_cv_.wait_for(lk, std::chrono::milliseconds(100));
    if (progress && !req->finished) {
      uint64_t done = req->done;
      lk.unlock();
      progress(done, total);
      lk.lock();
    }
  }
  lk.unlock();
  if (progress) progress(total, total);
  return req->status;
}

Status TierManager::Impl::Flush() {
  std::unique_lock<std::mutex> lk(mu_);
  mover_work_ = true;
  mover_cv_.notify_one();
  space_cv_.wait(lk, [&] {
    return stop_ || (!ssd_busy_ && forced_.empty() && (ssd_deletes_.empty() || ssd_error_));
  });
  lk.unlock();
  return ssd_ ? ssd_->FlushMemtables() : Status::Ok();
}

namespace {
BlockInfo MakeInfo(const BlockKey& k, const BlockRecord& r) {
  BlockInfo b;
  b.key = k;
  b.tier = r.tier;
  b.on_ssd = r.on_ssd;
  b.size = r.size;
  b.checksum = r.checksum;
  b.pins = r.pins + (r.admin_pinned ? 1 : 0);
  b.admin_pinned = r.admin_pinned;
  b.last_access_tick = r.last_access_tick;
  return b;
}
}  // namespace

Result<BlockInfo> TierManager::Impl::Describe(const BlockKey& key) const {
  std::lock_guard<std::mutex> lk(mu_);
  const BlockRecord* r = index_.Find(key);
  if (r == nullptr || !r->readable()) return NotFoundError(key.ToString() + " not found");
  return MakeInfo(key, *r);
}

std::vector<BlockInfo> TierManager::Impl::ListBlocks(const BlockFilter& filter) const {
  std::vector<BlockInfo> out;
  std::lock_guard<std::mutex> lk(mu_);
  index_.ForEach([&](const BlockKey& k, const BlockRecord& r) {
    if (out.size() >= filter.limit || !r.readable()) return;
    if (filter.ns && *filter.ns != k.ns) return;
    if (filter.layer && *filter.layer != k.layer) return;
    if (filter.tier && *filter.tier != r.tier && !(*filter.tier == Tier::kSsd && r.on_ssd)) return;
    out.push_back(MakeInfo(k, r));
  });
  std::sort(out.begin(), out.end(),
            [](const BlockInfo& a, const BlockInfo& b) { return a.key < b.key; });
  return out;
}

StoreStats TierManager::Impl::GetStats() const {
  std::lock_guard<std::mutex> lk(mu_);
  StoreStats s = stats_;
  for (Tier t : {Tier::kDevice, Tier::kHost, Tier::kSsd}) {
    TierStats& ts = s.tiers[Idx(t)];
    ts.used_bytes = tier_bytes_[Idx(t)];
    ts.blocks = tier_blocks_[Idx(t)];
    if (const ExtentPool* p = Pool(t)) {
      ts.capacity_bytes = p->usable_bytes();
      ts.used_slots = p->used_extents();
      ts.total_slots = t == Tier::kDevice ? p->num_pages() : 0;
      ts.allocated_bytes = p->used_bytes();
      ts.segment_bytes = p->segment_bytes();
    } else if (t == Tier::kSsd && ssd_) {
      ts.capacity_bytes = ssd_capacity_;
    }
  }
  s.quarantined_slots = quarantine_.size();
  s.ssd_pending_writes = ssd_deletes_.size();
  for (const auto& r : forced_) s.ssd_pending_writes += r->keys.size() - r->next;
  s.tick = tick_.load(std::memory_order_relaxed);
  return s;
}

Status TierManager::Impl::SetCapacity(Tier tier, uint64_t bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  if (tier == Tier::kSsd) {
    if (!ssd_) return UnavailableError("SetCapacity: no SSD tier");
    ssd_capacity_ = bytes;
  } else if (IsMemoryTier(tier)) {
    ExtentPool* pool = Pool(tier);
    if (pool == nullptr) return UnavailableError("SetCapacity: no device tier");
    uint64_t pages = bytes / pool->page_bytes();
    if (pages > pool->num_pages()) {
      return InvalidArgumentError("SetCapacity: " + std::to_string(bytes) +
                                  " bytes exceeds the segment of " +
                                  std::to_string(pool->segment_bytes()));
    }
    pool->set_usable_pages(static_cast<uint32_t>(pages));
  } else {
    return InvalidArgumentError("SetCapacity: not a local tier");
  }
  policy_->SetTierCapacity(tier, bytes);
  mover_work_ = true;
  mover_cv_.notify_one();
  return Status::Ok();
}

void TierManager::Impl::ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal) {
  std::lock_guard<std::mutex> lk(mu_);
  policy_->ReportLayerSignal(ns, signal);
  mover_work_ = true;
  mover_cv_.notify_one();
}

std::vector<int64_t> TierManager::Impl::LayerBudgets(uint64_t ns, Tier tier) const {
  std::lock_guard<std::mutex> lk(mu_);
  return policy_->LayerBudgets(ns, tier);
}

HostSegmentInfo TierManager::Impl::host_segment() const {
  HostSegmentInfo h;
  h.fd = host_->fd();
  h.name = host_->name();
  h.size = host_->size();
  h.slot_bytes = opts_.slot_bytes;
  h.num_slots = 0;
  h.huge_pages = host_->huge_pages();
  return h;
}

DeviceSegmentInfo TierManager::Impl::device_segment() const {
  DeviceSegmentInfo d;
  if (!device_) return d;
  d.present = true;
  d.cuda = device_->is_cuda();
  d.cuda_device = device_->cuda_device();
  d.size = device_->size();
  d.slot_bytes = device_->slot_bytes();
  d.num_slots = device_->num_slots();
  d.emulated_fd = device_->emulated_fd();
  if (d.cuda) {
    Result<std::string> h = device_->IpcHandle();
    if (h.ok()) {
      d.ipc_handle = *h;
    } else {
      KVCAKE_LOG(WARNING) << h.status().ToString();
    }
  }
  return d;
}

// --- mover ------------------------------------------------------------------

void TierManager::Impl::MoverLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    if (!mover_work_) {
      mover_cv_.wait_for(lk, std::chrono::microseconds(opts_.mover_interval_us),
                         [&] { return stop_ || mover_work_; });
      ssd_error_ = false;  // retry SSD writes after a backoff interval
    }
    if (stop_) break;
    mover_work_ = false;
    bool again = MoverPassLocked(lk);
    if (again) mover_work_ = true;
    space_cv_.notify_all();
  }
}

TierManager::Impl::MoveItem TierManager::Impl::StartMoveLocked(const BlockKey& key,
                                                               BlockRecord* rec,
                                                               ForcedRequest* req) {
  rec->state = BlockState::kDemoting;
  Pool(rec->tier)->Ref(rec->slot);
  return MoveItem{key,
                  rec->tier,
                  rec->slot,
                  rec->size,
                  rec->checksum,
                  rec->checksum_known,
                  rec->fingerprint,
                  rec->generation,
                  req,
                  {}};
}

Status TierManager::Impl::WriteToSsdLocked(std::vector<MoveItem>& items,
                                           std::unique_lock<std::mutex>& lk) {
  std::vector<BlockKey> deletes;
  deletes.swap(ssd_deletes_);
  if (items.empty() && deletes.empty()) return Status::Ok();
  ssd_busy_ = true;
  lk.unlock();
  Status s;
  std::vector<SsdTier::WriteItem> writes;
  writes.reserve(items.size());
  for (MoveItem& it : items) {
    const void* data = SlotPtr(it.from, it.slot);
    if (it.from == Tier::kDevice && device_->is_cuda()) {
      it.staging.resize(it.size);
      s = device_->CopyOut(it.slot, it.staging.data(), it.size);
      if (!s.ok()) break;
      data = it.staging.data();
    }
    if (!it.checksum_known) {
      it.checksum = BlockChecksum(data, it.size);
      it.checksum_known = true;
    } else if (BlockChecksum(data, it.size) != it.checksum) {
      // Scribbled since it was committed: never persisted as valid.
      it.corrupt = true;
      continue;
    }
    writes.push_back({it.key, data, it.size, it.checksum, it.fingerprint});
  }
  if (s.ok()) s = ssd_->Write(writes, deletes);
  if (!s.ok() && s.code() != StatusCode::kResourceExhausted) {
    KVCAKE_LOG(WARNING) << "ssd tier: write failed: " << s.ToString();
  }
  if (!s.ok()) {
    // Try to clear RocksDB's background error so a later batch can succeed.
    ssd_->Resume().IgnoreError();
  }
  lk.lock();
  ssd_busy_ = false;
  const uint64_t tick = tick_.load(std::memory_order_relaxed);
  if (!s.ok()) {
    ++stats_.ssd_write_errors;
    ssd_error_ = true;
    // Nothing of the batch was applied: blocks stay committed in memory.
    ssd_deletes_.insert(ssd_deletes_.end(), deletes.begin(), deletes.end());
  }
  for (MoveItem& it : items) {
    BlockRecord* rec = index_.Find(it.key);
    const bool same =
        rec != nullptr && rec->generation == it.generation && rec->state == BlockState::kDemoting;
    if (it.corrupt) {
      if (same) rec->state = BlockState::kCommitted;
      DropCorruptLocked(it.key, it.from, it.slot);
      FailRequest(it.req, DataLossError(it.key.ToString() + ": checksum mismatch in memory"));
    } else if (!s.ok()) {
      if (same) rec->state = BlockState::kCommitted;
      FailRequest(it.req, s);
    } else if (same) {
      rec->state = BlockState::kCommitted;
      rec->on_ssd = true;
      rec->checksum = it.checksum;
      rec->checksum_known = true;
      AddToTierLocked(Tier::kSsd, rec->size);
      ++stats_.moves[Idx(it.from)][Idx(Tier::kSsd)];
      stats_.bytes_moved[Idx(it.from)][Idx(Tier::kSsd)] += rec->size;
      if (rec->pins == 0 && !rec->admin_pinned) {
        DropCleanCopyLocked(it.key, rec);
      }
    } else {
      // Deleted or replaced while being written: remove the stale SSD copy.
      if (rec == nullptr || !rec->on_ssd) ssd_deletes_.push_back(it.key);
    }
    if (it.req != nullptr) ++it.req->done;
    UnrefSlotLocked(it.from, it.slot);  // the mover's reference
  }
  (void)tick;
  return s;
}

void TierManager::Impl::MoveDeviceToHostLocked(std::vector<MoveItem>& items,
                                               std::vector<int32_t>& host_slots,
                                               std::unique_lock<std::mutex>& lk) {
  if (items.empty()) return;
  lk.unlock();
  std::vector<Status> results(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    results[i] =
        device_->CopyOut(items[i].slot, SlotPtr(Tier::kHost, host_slots[i]), items[i].size);
  }
  lk.lock();
  const uint64_t tick = tick_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < items.size(); ++i) {
    MoveItem& it = items[i];
    BlockRecord* rec = index_.Find(it.key);
    const bool same =
        rec != nullptr && rec->generation == it.generation && rec->state == BlockState::kDemoting;
    if (same) rec->state = BlockState::kCommitted;
    if (!results[i].ok() || !same) {
      FailRequest(it.req, results[i]);
      UnrefSlotLocked(Tier::kHost, host_slots[i]);
    } else {
      RemoveFromTierLocked(Tier::kDevice, rec->size);
      AddToTierLocked(Tier::kHost, rec->size);
      UnrefSlotLocked(Tier::kDevice, rec->slot);  // the index's device reference
      rec->tier = Tier::kHost;
      rec->slot = host_slots[i];
      ++stats_.moves[Idx(Tier::kDevice)][Idx(Tier::kHost)];
      stats_.bytes_moved[Idx(Tier::kDevice)][Idx(Tier::kHost)] += rec->size;
      policy_->OnMove(it.key, Tier::kDevice, Tier::kHost, tick);
    }
    if (it.req != nullptr) ++it.req->done;
    UnrefSlotLocked(Tier::kDevice, it.slot);  // the mover's reference
  }
}

void TierManager::Impl::ProcessForcedLocked(std::unique_lock<std::mutex>& lk) {
  while (!forced_.empty() && !stop_) {
    std::shared_ptr<ForcedRequest> req = forced_.front();
    std::vector<MoveItem> to_ssd, to_host;
    std::vector<int32_t> host_slots;
    while (req->next < req->keys.size() &&
           to_ssd.size() + to_host.size() < opts_.mover_batch_blocks) {
      const BlockKey& key = req->keys[req->next++];
      BlockRecord* rec = index_.Find(key);
      Status err;
      if (rec == nullptr || !rec->readable()) {
        err = NotFoundError(key.ToString() + " not found");
      } else if (rec->admin_pinned || rec->pins > 0) {
        err = FailedPreconditionError(key.ToString() + " is pinned");
      } else if (rec->in_flight()) {
        err = AbortedError(key.ToString() + " is being moved");
      }
      if (!err.ok()) {
        if (!req->skip_unmovable) FailRequest(req.get(), err);
        ++req->done;
        continue;
      }
      if (req->to == Tier::kRemote) {
        CountDropLocked(rec->tier, DropReason::kEvict);
        RemoveRecordLocked(key, rec);
        ++req->done;
      } else if (req->to == Tier::kHost) {
        if (rec->tier != Tier::kDevice) {
          ++req->done;
          continue;
        }
        int32_t hs = AllocateLocked(Tier::kHost, rec->size);
        if (hs < 0) {
          FailRequest(req.get(), ResourceExhaustedError("Evict: host tier full"));
          ++req->done;
          continue;
        }
        to_host.push_back(StartMoveLocked(key, rec, req.get()));
        host_slots.push_back(hs);
      } else {  // kSsd
        if (rec->slot < 0) {
          ++req->done;
        } else if (rec->on_ssd) {
          DropCleanCopyLocked(key, rec);
          ++req->done;
        } else {
          to_ssd.push_back(StartMoveLocked(key, rec, req.get()));
        }
      }
    }
    MoveDeviceToHostLocked(to_host, host_slots, lk);
    if (!to_ssd.empty()) WriteToSsdLocked(to_ssd, lk).IgnoreError();  // reported per request
    if (req->next >= req->keys.size()) {
      req->finished = true;
      forced_.pop_front();
      space_cv_.notify_all();
    } else {
      return;  // one batch per pass; the loop runs again at once
    }
  }
}

void TierManager::Impl::PromoteLocked(std::unique_lock<std::mutex>& lk) {
  struct Promo {
    BlockKey key;
    int32_t from_slot;  // host slot (host -> device); -1 for SSD
    int32_t to_slot;
    uint64_t generation;
    uint64_t checksum;
    uint64_t size;
    Status status;
  };
  for (Tier to : {Tier::kHost, Tier::kDevice}) {
    ExtentPool* pool = Pool(to);
    if (pool == nullptr || (to == Tier::kHost && !ssd_)) continue;
    const uint64_t low = static_cast<uint64_t>(opts_.low_watermark * pool->usable_bytes());
    if (pool->used_bytes() >= low) continue;
    const uint64_t room = opts_.mover_batch_blocks;
    std::vector<BlockKey> keys = policy_->SelectPromotions(to, low - pool->used_bytes());
    const Tier from = to == Tier::kHost ? Tier::kSsd : Tier::kHost;
    std::vector<Promo> work;
    for (const BlockKey& k : keys) {
      if (work.size() >= room) break;
      BlockRecord* rec = index_.Find(k);
      if (rec == nullptr || rec->state != BlockState::kCommitted || rec->tier != from ||
          rec->pins > 0 || rec->admin_pinned) {
        continue;
      }
      if (pool->used_bytes() + pool->ClassBytes(rec->size) > low) break;
      int32_t slot = pool->Allocate(rec->size);
      if (slot < 0) break;
      rec->state = BlockState::kPromoting;
      if (from == Tier::kHost) Pool(from)->Ref(rec->slot);  // the mover's reference
      work.push_back({k, from == Tier::kHost ? rec->slot : -1, slot, rec->generation, rec->checksum,
                      rec->size, Status::Ok()});
    }
    if (work.empty()) continue;
    lk.unlock();
    for (Promo& w : work) {
      if (to == Tier::kHost) {
        Result<SsdHeader> h =
            ssd_->Read(w.key, SlotPtr(Tier::kHost, w.to_slot), host_pool_->extent_bytes(w.to_slot));
        if (h.ok() && h->checksum != w.checksum) {
          h = DataLossError("promotion of " + w.key.ToString() + ": SSD copy does not match");
        }
        w.status = h.status();
      } else {
        w.status = device_->CopyIn(w.to_slot, SlotPtr(Tier::kHost, w.from_slot), w.size);
      }
    }
    lk.lock();
    const uint64_t tick = tick_.load(std::memory_order_relaxed);
    for (Promo& w : work) {
      BlockRecord* rec = index_.Find(w.key);
      const bool same =
          rec != nullptr && rec->generation == w.generation && rec->state == BlockState::kPromoting;
      if (same) rec->state = BlockState::kCommitted;
      if (!w.status.ok() || !same) {
        UnrefSlotLocked(to, w.to_slot);
        if (!w.status.ok() && to == Tier::kHost)
          OnSsdReadErrorLocked(w.key, w.generation, w.status);
      } else {
        if (from == Tier::kHost) {
          RemoveFromTierLocked(Tier::kHost, rec->size);
          UnrefSlotLocked(Tier::kHost, rec->slot);  // the index's host reference
        }
        rec->tier = to;
        rec->slot = w.to_slot;
        AddToTierLocked(to, rec->size);
        ++stats_.moves[Idx(from)][Idx(to)];
        stats_.bytes_moved[Idx(from)][Idx(to)] += rec->size;
        policy_->OnMove(w.key, from, to, tick);
      }
      if (w.from_slot >= 0) UnrefSlotLocked(Tier::kHost, w.from_slot);  // the mover's
    }
  }
}

bool TierManager::Impl::MoverPassLocked(std::unique_lock<std::mutex>& lk) {
  bool again = false;
  SweepLocked(Now());
  // Explicit requests first (Evict, Drain).
  if (!forced_.empty()) {
    ProcessForcedLocked(lk);
    if (!forced_.empty()) again = true;
  }
  // SSD over capacity: drop the policy's victims.
  if (ssd_ && tier_bytes_[Idx(Tier::kSsd)] > ssd_capacity_ * opts_.high_watermark) {
    uint64_t excess =
        tier_bytes_[Idx(Tier::kSsd)] - static_cast<uint64_t>(ssd_capacity_ * opts_.low_watermark);
    auto eligible = [&](const BlockKey& k) { return EligibleVictim(index_.Find(k), Tier::kSsd); };
    for (const BlockKey& k : policy_->SelectVictims(Tier::kSsd, excess, eligible)) {
      BlockRecord* r = index_.Find(k);
      if (!EligibleVictim(r, Tier::kSsd)) continue;
      RemoveRecordLocked(k, r);
      CountDropLocked(Tier::kSsd, DropReason::kCapacity);
    }
  }
  // Device over its watermark: demote to host (needs free host slots).
  if (device_pool_) {
    ExtentPool* p = device_pool_.get();
    uint64_t want = p->used_bytes() + waiting_bytes_[0];
    uint64_t high = static_cast<uint64_t>(opts_.high_watermark * p->usable_bytes());
    if (want > high || waiting_[0] > 0) {
      uint64_t low = static_cast<uint64_t>(opts_.low_watermark * p->usable_bytes());
      uint64_t to_free = want > low ? want - low : p->page_bytes();
      uint64_t freed = 0;
      auto eligible = [&](const BlockKey& k) {
        return EligibleVictim(index_.Find(k), Tier::kDevice);
      };
      std::vector<MoveItem> items;
      std::vector<int32_t> host_slots;
      for (const BlockKey& k : policy_->SelectVictims(Tier::kDevice, to_free, eligible)) {
        BlockRecord* r = index_.Find(k);
        if (!EligibleVictim(r, Tier::kDevice)) continue;
        if (!policy_->Admit(k, Tier::kHost)) {
          RemoveRecordLocked(k, r);
          CountDropLocked(Tier::kDevice, DropReason::kAdmission);
          continue;
        }
        int32_t hs = AllocateLocked(Tier::kHost, r->size);
        if (hs < 0) {
          break;  // host must drain first; it is handled below
        }
        freed += p->extent_bytes(r->slot);
        items.push_back(StartMoveLocked(k, r, nullptr));
        host_slots.push_back(hs);
        if (freed >= to_free || items.size() >= opts_.mover_batch_blocks) break;
      }
      if (!items.empty()) again = true;
      MoveDeviceToHostLocked(items, host_slots, lk);
    }
  }
  // Host over its watermark: clean copies are dropped, dirty ones written to
  // SSD — always while the SSD has room, through the policy's admission
  // control while it is under pressure — else dropped.
  {
    ExtentPool* p = host_pool_.get();
    uint64_t want = p->used_bytes() + waiting_bytes_[1];
    uint64_t high = static_cast<uint64_t>(opts_.high_watermark * p->usable_bytes());
    bool device_blocked =
        device_pool_ && (waiting_[0] > 0 || OverHighWatermarkLocked(Tier::kDevice));
    if (want > high || waiting_[1] > 0 || device_blocked) {
      uint64_t low = static_cast<uint64_t>(opts_.low_watermark * p->usable_bytes());
      uint64_t to_free = want > low ? want - low : p->page_bytes();
      auto eligible = [&](const BlockKey& k) {
        return EligibleVictim(index_.Find(k), Tier::kHost);
      };
      std::vector<MoveItem> items;
      uint64_t freed = 0, victims = 0;
      uint64_t batch_bytes = 0;  // queued for SSD in this pass, not yet in tier_bytes_
      if (!ssd_error_) {
        for (const BlockKey& k : policy_->SelectVictims(Tier::kHost, to_free, eligible)) {
          BlockRecord* r = index_.Find(k);
          if (!EligibleVictim(r, Tier::kHost)) continue;
          freed += p->extent_bytes(r->slot);
          if (r->on_ssd) {
            DropCleanCopyLocked(k, r);
          } else if (ssd_ && (!SsdUnderPressureLocked(batch_bytes + r->size) ||
                              policy_->Admit(k, Tier::kSsd))) {
            batch_bytes += r->size;
            items.push_back(StartMoveLocked(k, r, nullptr));
          } else {
            RemoveRecordLocked(k, r);
            CountDropLocked(Tier::kHost, ssd_ ? DropReason::kAdmission : DropReason::kNoSsd);
          }
          if (freed >= to_free || ++victims >= opts_.mover_batch_blocks) break;
        }
      }
      // On a failed SSD write the mover backs off for an interval (ssd_error_).
      if (WriteToSsdLocked(items, lk).ok() && freed > 0) again = true;
    }
  }
  if (!again && !stop_) PromoteLocked(lk);
  if (!ssd_deletes_.empty() && ssd_ && !ssd_error_) {
    std::vector<MoveItem> none;
    WriteToSsdLocked(none, lk).IgnoreError();  // retried next pass
  }
  return again && !stop_;
}

// ---------------------------------------------------------------------------
// TierManager (forwarding)
// ---------------------------------------------------------------------------

Result<std::unique_ptr<TierManager>> TierManager::Open(TierManagerOptions options,
                                                       std::unique_ptr<policy::Policy> policy) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(policy));
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<TierManager>(new TierManager(std::move(impl)));
}

TierManager::TierManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TierManager::~TierManager() = default;

Status TierManager::RegisterNamespace(const NamespaceConfig& c) {
  return impl_->RegisterNamespace(c);
}
Result<NamespaceConfig> TierManager::GetNamespace(uint64_t ns) const {
  return impl_->GetNamespace(ns);
}
std::vector<NamespaceConfig> TierManager::ListNamespaces() const { return impl_->ListNamespaces(); }
uint64_t TierManager::NamespaceUsedBytes(uint64_t ns) const {
  return impl_->NamespaceUsedBytes(ns);
}
Result<Reservation> TierManager::Reserve(const BlockKey& key, uint64_t size, Tier tier) {
  return impl_->Reserve(key, size, tier);
}
Status TierManager::Commit(const Reservation& r, std::optional<uint64_t> checksum,
                           std::optional<uint64_t> trusted_checksum) {
  return impl_->Commit(r, checksum, trusted_checksum);
}
Status TierManager::Abort(const Reservation& r) { return impl_->Abort(r); }
Status TierManager::Put(const BlockKey& key, const void* src, uint64_t size, Tier tier) {
  return impl_->Put(key, src, size, tier);
}
Result<PinnedBlock> TierManager::Pin(const BlockKey& key) { return impl_->Pin(key); }
Status TierManager::Release(const PinnedBlock& p) { return impl_->Release(p); }
Result<uint64_t> TierManager::Get(const BlockKey& key, void* dst, uint64_t dst_size) {
  return impl_->Get(key, dst, dst_size);
}
Status TierManager::VerifyPinned(const PinnedBlock& pinned) { return impl_->VerifyPinned(pinned); }
bool TierManager::Contains(const BlockKey& key) const { return impl_->Contains(key); }
size_t TierManager::LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes, uint32_t layer,
                                 std::vector<Tier>* tiers) const {
  return impl_->LookupPrefix(ns, hashes, layer, tiers);
}
Status TierManager::Delete(const BlockKey& key) { return impl_->Delete(key); }
Status TierManager::Evict(const BlockKey& key, Tier to) { return impl_->Evict(key, to); }
Status TierManager::AdminPin(const BlockKey& key) { return impl_->SetAdminPin(key, true); }
Status TierManager::AdminUnpin(const BlockKey& key) { return impl_->SetAdminPin(key, false); }
Status TierManager::Drain(const DrainProgress& progress) { return impl_->Drain(progress); }
Status TierManager::Flush() { return impl_->Flush(); }
std::vector<BlockInfo> TierManager::ListBlocks(const BlockFilter& filter) const {
  return impl_->ListBlocks(filter);
}
Result<BlockInfo> TierManager::Describe(const BlockKey& key) const { return impl_->Describe(key); }
StoreStats TierManager::GetStats() const { return impl_->GetStats(); }
Status TierManager::SetCapacity(Tier tier, uint64_t bytes) {
  return impl_->SetCapacity(tier, bytes);
}
void TierManager::ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal) {
  impl_->ReportLayerSignal(ns, signal);
}
std::vector<int64_t> TierManager::LayerBudgets(uint64_t ns, Tier tier) const {
  return impl_->LayerBudgets(ns, tier);
}
HostSegmentInfo TierManager::host_segment() const { return impl_->host_segment(); }
DeviceSegmentInfo TierManager::device_segment() const { return impl_->device_segment(); }
bool TierManager::device_is_cuda() const { return impl_->device_is_cuda(); }
bool TierManager::has_device_tier() const { return impl_->has_device_tier(); }
bool TierManager::has_ssd_tier() const { return impl_->has_ssd_tier(); }
const TierManagerOptions& TierManager::options() const { return impl_->options(); }
std::string_view TierManager::policy_name() const { return impl_->policy_name(); }

}  // namespace kvcake::store
