// TierManager: options, opening the tiers, namespaces, the put / get data
// path, leases and removal from the index. The mover is in tier_mover.cc,
// the admin operations in tier_admin.cc (tier_manager_impl.h).
#include "store/tier_manager.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/copy_and_hash.h"
#include "common/logging.h"
#include "policy/lru_policy.h"
#include "store/checksum.h"
#include "store/tier_manager_impl.h"

namespace kvcake::store {

namespace {

// Pages of a memory tier's ExtentPool: slot_bytes (the largest value) times
// 1 to 4. Larger pages lose less to a page's tail when a class does not
// divide it; smaller ones less to the one partly filled page per class.
// Segments of 64 slot_bytes or more get pages of 2 slot_bytes, of 256 or more
// of 4.
uint64_t PageBytes(uint64_t capacity_bytes, uint64_t slot_bytes) {
  return std::clamp<uint64_t>(capacity_bytes / (64 * slot_bytes), 1, 4) * slot_bytes;
}

// True when `rec` is still the reservation `r` made.
bool HoldsReservation(const BlockRecord* rec, const Reservation& r) {
  return rec != nullptr && rec->state == BlockState::kReserved && rec->reservation_id == r.id;
}

}  // namespace

Status TierManagerOptions::Validate() const {
  if (slot_bytes == 0 || slot_bytes % 4096 != 0) {
    return InvalidArgumentError("store: slot_bytes must be a positive multiple of 4096");
  }
  if (extent_granule_bytes < 64 || extent_granule_bytes > 4096 ||
      (extent_granule_bytes & (extent_granule_bytes - 1)) != 0) {
    return InvalidArgumentError("store: extent_granule_bytes must be a power of two in [64, 4096]");
  }
  if (host_capacity_bytes / extent_granule_bytes >= (1ull << 31)) {
    return InvalidArgumentError("store: host_capacity_bytes must be below 2^31 extent granules");
  }
  if (host_capacity_bytes < slot_bytes) {
    return InvalidArgumentError("store: host_capacity_bytes must hold at least one slot");
  }
  if (device_capacity_bytes / extent_granule_bytes >= (1ull << 31)) {
    return InvalidArgumentError("store: device_capacity_bytes must be below 2^31 extent granules");
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
  if (!ssd_path.empty() && ssd_capacity_bytes == 0) {
    return InvalidArgumentError("store: ssd_capacity_bytes is 0 with an ssd_path");
  }
  return Status::Ok();
}

// --- opening ------------------------------------------------------------------

TierManager::Impl::Impl(TierManagerOptions options, std::unique_ptr<policy::Policy> policy)
    : opts_(std::move(options)), policy_(std::move(policy)) {
  clock_ = opts_.clock ? opts_.clock : std::make_shared<SteadyClock>();
}

TierManager::Impl::~Impl() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    for (auto& req : forced_) {
      if (req->status.ok()) req->status = AbortedError("store: shutting down");
      req->finished = true;
    }
    forced_.clear();
  }
  mover_cv_.NotifyAll();
  space_cv_.NotifyAll();
  if (mover_.joinable()) mover_.join();
}

Status TierManager::Impl::Init() {
  RETURN_IF_ERROR(opts_.Validate());
  RETURN_IF_ERROR(OpenDeviceTier());
  RETURN_IF_ERROR(OpenHostTier());
  MutexLock lock(&mu_);
  if (!policy_) policy_ = std::make_unique<policy::LruPolicy>();
  policy_name_ = policy_->name();
  ssd_capacity_ = opts_.ssd_capacity_bytes;
  if (!opts_.ssd_path.empty()) RETURN_IF_ERROR(OpenSsdTierLocked());
  if (device_) policy_->SetTierCapacity(Tier::kDevice, opts_.device_capacity_bytes);
  policy_->SetTierCapacity(Tier::kHost, opts_.host_capacity_bytes);
  if (ssd_) policy_->SetTierCapacity(Tier::kSsd, ssd_capacity_);
  KVCAKE_LOG(INFO) << "store: policy " << policy_->name() << ", device "
                   << (device_ ? (device_->is_cuda() ? "cuda" : "emulated") : "none") << ", host "
                   << host_->num_slots() << " slots, ssd " << (ssd_ ? opts_.ssd_path : "none");
  if (!InlineMover()) mover_ = std::thread([this] { MoverLoop(); });
  return Status::Ok();
}

Status TierManager::Impl::OpenDeviceTier() {
  if (opts_.device_capacity_bytes == 0) return Status::Ok();
  // The arena's slots are the pages of its ExtentPool: a value takes an
  // extent of about its own size, as in the host segment.
  const uint64_t page = PageBytes(opts_.device_capacity_bytes, opts_.slot_bytes);
  DeviceTier::Options d;
  d.num_slots = opts_.device_capacity_bytes / page;
  d.slot_bytes = page;
  d.allow_cuda = opts_.device_allow_cuda;
  d.cuda_device = opts_.cuda_device;
  ASSIGN_OR_RETURN(device_, DeviceTier::Open(d));
  device_pool_ = std::make_unique<ExtentPool>(static_cast<uint32_t>(d.num_slots), page,
                                              opts_.extent_granule_bytes);
  return Status::Ok();
}

Status TierManager::Impl::OpenHostTier() {
  HostTier::Options h;
  h.name = opts_.host_segment_name;
  const uint64_t page = PageBytes(opts_.host_capacity_bytes, opts_.slot_bytes);
  h.num_slots = opts_.host_capacity_bytes / page;
  h.slot_bytes = page;
  h.huge_pages = opts_.host_huge_pages;
  ASSIGN_OR_RETURN(host_, HostTier::Open(h));
  host_pool_ = std::make_unique<ExtentPool>(static_cast<uint32_t>(h.num_slots), page,
                                            opts_.extent_granule_bytes);
  host_base_ = host_->SlotPtr(0);
  return Status::Ok();
}

Status TierManager::Impl::OpenSsdTierLocked() {
  SsdTier::Options s;
  s.path = opts_.ssd_path;
  s.sync = opts_.ssd_sync;
  s.write_ahead_log = opts_.ssd_write_ahead_log;
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
      [&](const BlockKey& key, const SsdHeader& hdr) REQUIRES(mu_) {
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
  return Status::Ok();
}

// --- slots and accounting -----------------------------------------------------

Status TierManager::Impl::CopyToSlot(Tier t, int32_t slot, const void* src, uint64_t n) const {
  if (t == Tier::kDevice) return device_->CopyInAt(SlotOffset(t, slot), src, n);
  std::memcpy(SlotPtr(t, slot), src, n);
  return Status::Ok();
}

Status TierManager::Impl::CopyFromSlot(Tier t, int32_t slot, void* dst, uint64_t n) const {
  if (t == Tier::kDevice) return device_->CopyOutAt(SlotOffset(t, slot), dst, n);
  std::memcpy(dst, SlotPtr(t, slot), n);
  return Status::Ok();
}

Result<uint64_t> TierManager::Impl::ChecksumSlot(Tier t, int32_t slot, uint64_t n) const {
  if (t == Tier::kDevice && device_->is_cuda()) {
    std::vector<char> tmp(n);
    RETURN_IF_ERROR(CopyFromSlot(t, slot, tmp.data(), n));
    return BlockChecksum(tmp.data(), n);
  }
  return BlockChecksum(SlotPtr(t, slot), n);
}

int32_t TierManager::Impl::AllocateLocked(Tier t, uint64_t size) {
  ExtentPool* pool = Pool(t);
  int32_t slot = pool->Allocate(size);
  if (slot < 0 && FreeCleanLocked(t, pool->ClassBytes(size)) > 0) slot = pool->Allocate(size);
  return slot;
}

bool TierManager::Impl::OverHighWatermarkLocked(Tier t) const {
  const ExtentPool* pool = Pool(t);
  return static_cast<double>(pool->used_bytes()) >
         opts_.high_watermark * static_cast<double>(pool->usable_bytes());
}

bool TierManager::Impl::SsdUnderPressureLocked(uint64_t extra) const {
  return static_cast<double>(tier_bytes_[Idx(Tier::kSsd)] + extra) >
         opts_.high_watermark * static_cast<double>(ssd_capacity_);
}

void TierManager::Impl::CountHitLocked(Tier t) {
  ++stats_.tiers[Idx(t)].hits;
  for (size_t u = 0; u < Idx(t); ++u) {
    if (HasTier(static_cast<Tier>(u))) ++stats_.tiers[u].misses;
  }
}

void TierManager::Impl::CountMissLocked() {
  ++stats_.misses;
  for (int u = 0; u < kNumLocalTiers; ++u) {
    if (HasTier(static_cast<Tier>(u))) ++stats_.tiers[u].misses;
  }
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
  MutexLock lock(&mu_);
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
  policy_->SetServingMode(config.id, config.serving);
  return Status::Ok();
}

Result<NamespaceConfig> TierManager::Impl::GetNamespace(uint64_t ns) const {
  MutexLock lock(&mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return NotFoundError("unknown namespace " + std::to_string(ns));
  return it->second.config;
}

std::vector<NamespaceConfig> TierManager::Impl::ListNamespaces() const {
  MutexLock lock(&mu_);
  std::vector<NamespaceConfig> out;
  for (const auto& [id, e] : namespaces_) out.push_back(e.config);
  std::sort(out.begin(), out.end(),
            [](const NamespaceConfig& a, const NamespaceConfig& b) { return a.id < b.id; });
  return out;
}

uint64_t TierManager::Impl::NamespaceUsedBytes(uint64_t ns) const {
  MutexLock lock(&mu_);
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
  MutexLock lock(&mu_);
  while (true) {
    if (stop_) return UnavailableError("store: shutting down");
    const NamespaceEntry* ns = nullptr;
    bool retry = false;
    Status s = ValidateKeyLocked(key, &ns);
    if (s.ok()) s = CheckReserveLocked(key, size, ns, &retry);
    if (retry) continue;
    if (!s.ok()) {
      ++stats_.put_rejected;
      return s;
    }
    const int32_t slot = AllocateLocked(tier, size);
    if (slot >= 0) return InsertReservationLocked(key, size, tier, slot, ns->fingerprint);
    // No slot: let the mover demote, and wait (bounded).
    if (!WaitForSpaceLocked(&lock, tier, size, deadline)) {
      ++stats_.put_rejected;
      return ResourceExhaustedError(std::string("store: no free ") + std::string(TierName(tier)) +
                                    " slot (tier full and nothing could be demoted in time)");
    }
  }
}

Status TierManager::Impl::CheckReserveLocked(const BlockKey& key, uint64_t size,
                                             const NamespaceEntry* ns, bool* retry) {
  if (size == 0 || size > ns->config.layer_block_bytes) {
    return InvalidArgumentError("Reserve " + key.ToString() + ": size " + std::to_string(size) +
                                " not in [1, " + std::to_string(ns->config.layer_block_bytes) +
                                "]");
  }
  if (ns->config.quota_bytes != 0 &&
      index_.NamespaceBytes(key.ns) + size > ns->config.quota_bytes) {
    return ResourceExhaustedError("namespace " + ns->config.name + " is over its quota of " +
                                  std::to_string(ns->config.quota_bytes) + " bytes");
  }
  BlockRecord* existing = index_.Find(key);
  if (existing == nullptr) return Status::Ok();
  if (existing->readable()) return AlreadyExistsError(key.ToString() + " is already committed");
  if (existing->lease_expiry_us < Now()) {
    ExpireReservationLocked(key, existing, Now());
    *retry = true;
    return Status::Ok();
  }
  return AbortedError(key.ToString() + " is being written by another writer");
}

Reservation TierManager::Impl::InsertReservationLocked(const BlockKey& key, uint64_t size,
                                                       Tier tier, int32_t slot,
                                                       uint64_t fingerprint) {
  BlockRecord rec;
  rec.state = BlockState::kReserved;
  rec.tier = tier;
  rec.slot = slot;
  rec.size = size;
  rec.fingerprint = fingerprint;
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
  if (OverHighWatermarkLocked(tier)) WakeMoverLocked();
  return out;
}

bool TierManager::Impl::WaitForSpaceLocked(MutexLock* lock, Tier tier, uint64_t size,
                                           std::chrono::steady_clock::time_point deadline) {
  const uint64_t want = Pool(tier)->ClassBytes(size);
  ++waiting_[Idx(tier)];
  waiting_bytes_[Idx(tier)] += want;
  if (InlineMover()) {
    // No mover thread: demote for this reserver here and now.
    RunMoverInlineLocked(lock);
    --waiting_[Idx(tier)];
    waiting_bytes_[Idx(tier)] -= want;
    return Pool(tier)->CanAllocate(size);
  }
  WakeMoverLocked();
  const bool timed_out = !space_cv_.WaitFor(lock, deadline - std::chrono::steady_clock::now());
  --waiting_[Idx(tier)];
  waiting_bytes_[Idx(tier)] -= want;
  return !timed_out || Pool(tier)->CanAllocate(size);
}

Status TierManager::Impl::Commit(const Reservation& r, std::optional<uint64_t> checksum,
                                 std::optional<uint64_t> trusted_checksum) {
  // Hash outside the lock: the slot belongs to this reservation.
  Tier tier;
  int32_t slot;
  uint64_t size;
  {
    MutexLock lock(&mu_);
    const BlockRecord* rec = index_.Find(r.key);
    if (!HoldsReservation(rec, r)) {
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
  MutexLock lock(&mu_);
  BlockRecord* rec = index_.Find(r.key);
  if (!HoldsReservation(rec, r)) {
    return AbortedError("Commit " + r.key.ToString() + ": reservation lost (lease expired?)");
  }
  const uint64_t now = Now();
  if (rec->lease_expiry_us < now) {
    ExpireReservationLocked(r.key, rec, now);
    return AbortedError("Commit " + r.key.ToString() + ": reservation lease expired");
  }
  if (checksum.has_value() && *checksum != *actual) {
    ++stats_.checksum_failures;
    EraseReservationLocked(r.key, rec);
    return DataLossError("Commit " + r.key.ToString() + ": checksum mismatch, block discarded");
  }
  PublishLocked(r.key, rec, *actual, tick);
  return Status::Ok();
}

void TierManager::Impl::PublishLocked(const BlockKey& key, BlockRecord* rec, uint64_t checksum,
                                      uint64_t tick) {
  reservations_.erase(rec->reservation_id);
  rec->state = BlockState::kCommitted;
  rec->checksum = checksum;
  rec->checksum_known = true;
  rec->reservation_id = 0;
  rec->last_access_tick = tick;
  AddToTierLocked(rec->tier, rec->size);
  policy_->OnInsert(key, rec->tier, rec->size, tick);
  ++stats_.puts;
  if (OverHighWatermarkLocked(rec->tier)) WakeMoverLocked();
}

Status TierManager::Impl::Abort(const Reservation& r) {
  MutexLock lock(&mu_);
  BlockRecord* rec = index_.Find(r.key);
  if (!HoldsReservation(rec, r)) {
    return NotFoundError("Abort " + r.key.ToString() + ": no such reservation");
  }
  EraseReservationLocked(r.key, rec);
  return Status::Ok();
}

void TierManager::Impl::EraseReservationLocked(const BlockKey& key, BlockRecord* rec) {
  reservations_.erase(rec->reservation_id);
  const Tier t = rec->tier;
  const int32_t slot = rec->slot;
  index_.Erase(key);
  UnrefSlotLocked(t, slot);
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

Result<BlockRecord*> TierManager::Impl::FindReadableLocked(const BlockKey& key, bool on_ssd_only) {
  const NamespaceEntry* ns = nullptr;
  Status s = ValidateKeyLocked(key, &ns);
  if (!s.ok()) {
    CountMissLocked();
    return s;
  }
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr || !rec->readable() || (on_ssd_only && !rec->on_ssd)) {
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
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(BlockRecord * rec, FindReadableLocked(key));
  rec->last_access_tick = tick;
  if (rec->slot >= 0) return PinInMemoryLocked(key, rec, tick);
  return PinFromSsdLocked(key, rec, tick);
}

PinnedBlock TierManager::Impl::NewPinLocked(const BlockKey& key, const BlockRecord& rec) {
  PinnedBlock out;
  out.key = key;
  out.size = rec.size;
  out.checksum = rec.checksum;
  out.lease_expiry_us = Now() + opts_.pin_lease_us;
  return out;
}

PinnedBlock TierManager::Impl::PinInMemoryLocked(const BlockKey& key, BlockRecord* rec,
                                                 uint64_t tick) {
  PinnedBlock out = NewPinLocked(key, *rec);
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

Result<PinnedBlock> TierManager::Impl::PinFromSsdLocked(const BlockKey& key, BlockRecord* rec,
                                                        uint64_t tick) {
  // Promote into a host slot (never waits for a demotion).
  PinnedBlock out = NewPinLocked(key, *rec);
  const int32_t slot = AllocateLocked(Tier::kHost, rec->size);
  if (slot < 0) {
    WakeMoverLocked();
    return ResourceExhaustedError("Pin " + key.ToString() + ": no free host slot to promote into");
  }
  const bool install = rec->state == BlockState::kCommitted;
  if (install) rec->state = BlockState::kPromoting;
  const uint64_t gen = rec->generation;
  const uint64_t expect_checksum = rec->checksum;
  mu_.Unlock();
  Result<SsdHeader> hdr =
      ssd_->Read(key, SlotPtr(Tier::kHost, slot), host_pool_->extent_bytes(slot));
  if (hdr.ok() && hdr->checksum != expect_checksum) {
    hdr = DataLossError("Pin " + key.ToString() + ": SSD copy does not match the index");
  }
  mu_.Lock();
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
  if (install && IsUnchanged(rec, gen, BlockState::kPromoting)) {
    rec->state = BlockState::kCommitted;
    rec->tier = Tier::kHost;
    rec->slot = slot;       // the allocation's reference is the index's
    host_pool_->Ref(slot);  // the pin's
    ++rec->pins;
    AddToTierLocked(Tier::kHost, rec->size);
    CountMoveLocked(Tier::kSsd, Tier::kHost, rec->size);
    policy_->OnMove(key, Tier::kSsd, Tier::kHost, tick);
    policy_->OnAccess(key, Tier::kHost, tick);
    pins_.emplace(out.id, PinEntry{key, Tier::kHost, slot, out.lease_expiry_us, gen, true});
  } else {
    // Private copy (concurrent promotion, or the block changed meanwhile).
    pins_.emplace(out.id, PinEntry{key, Tier::kHost, slot, out.lease_expiry_us, gen, false});
  }
  if (OverHighWatermarkLocked(Tier::kHost)) WakeMoverLocked();
  return out;
}

Status TierManager::Impl::Release(const PinnedBlock& p) {
  MutexLock lock(&mu_);
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
    MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(BlockRecord * rec, FindReadableLocked(key, /*on_ssd_only=*/true));
    gen = rec->generation;
    expect_checksum = rec->checksum;
  }
  Result<SsdHeader> hdr = ssd_->Read(key, dst, dst_size);
  if (hdr.ok() && hdr->checksum != expect_checksum) {
    hdr = DataLossError("Get " + key.ToString() + ": SSD copy does not match the index");
  }
  MutexLock lock(&mu_);
  if (!hdr.ok()) {
    if (hdr.status().code() != StatusCode::kOutOfRange) {
      OnSsdReadErrorLocked(key, gen, hdr.status());
    }
    return hdr.status();
  }
  CountHitLocked(Tier::kSsd);
  return hdr->size;
}

Result<uint64_t> TierManager::Impl::Get(const BlockKey& key, void* dst, uint64_t dst_size) {
  const uint64_t tick = NextTick();
  Tier tier = Tier::kSsd;
  int32_t slot = -1;
  uint64_t size = 0, expect = 0;
  bool known = false;
  {
    MutexLock lock(&mu_);
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
    }
  }
  if (slot < 0) {
    // SSD-resident: promote through a pin when a host slot is free, else read directly.
    Result<PinnedBlock> p = Pin(key);
    if (!p.ok()) {
      if (p.status().code() != StatusCode::kResourceExhausted) return p.status();
      return ReadSsdDirect(key, dst, dst_size);
    }
    std::memcpy(dst, p->data, p->size);
    RETURN_IF_ERROR(Release(*p));
    return p->size;
  }
  Status cs = CopyFromSlot(tier, slot, dst, size);
  const bool corrupt = cs.ok() && known && BlockChecksum(dst, size) != expect;
  MutexLock lock(&mu_);
  if (corrupt) {
    cs = DataLossError("Get " + key.ToString() + ": checksum mismatch in memory");
    DropCorruptLocked(key, tier, slot);
  }
  UnrefSlotLocked(tier, slot);
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
  MutexLock lock(&mu_);
  DropCorruptLocked(p.key, p.tier, Pool(p.tier)->HandleAt(p.offset));
  return DataLossError(p.key.ToString() + ": checksum mismatch in memory");
}

bool TierManager::Impl::Contains(const BlockKey& key) const {
  MutexLock lock(&mu_);
  const BlockRecord* rec = index_.Find(key);
  return rec != nullptr && rec->readable();
}

size_t TierManager::Impl::LookupPrefix(uint64_t ns, std::span<const uint64_t> hashes,
                                       uint32_t layer, std::vector<Tier>* tiers) const {
  if (tiers != nullptr) {
    tiers->clear();
    tiers->reserve(hashes.size());
  }
  MutexLock lock(&mu_);
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
    WakeMoverLocked();
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
  auto eligible = [&](const BlockKey& k) REQUIRES(mu_) {
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
bool TierManager::RunMoverOnce(bool only_if_woken) { return impl_->RunMoverOnce(only_if_woken); }
std::vector<int64_t> TierManager::LayerBudgets(uint64_t ns, Tier tier) const {
  return impl_->LayerBudgets(ns, tier);
}

std::string TierManager::TierRanking(Tier tier) const { return impl_->TierRanking(tier); }
HostSegmentInfo TierManager::host_segment() const { return impl_->host_segment(); }
DeviceSegmentInfo TierManager::device_segment() const { return impl_->device_segment(); }
bool TierManager::device_is_cuda() const { return impl_->device_is_cuda(); }
bool TierManager::has_device_tier() const { return impl_->has_device_tier(); }
bool TierManager::has_ssd_tier() const { return impl_->has_ssd_tier(); }
const TierManagerOptions& TierManager::options() const { return impl_->options(); }
std::string_view TierManager::policy_name() const { return impl_->policy_name(); }

}  // namespace kvcake::store
