// TierManager's admin operations (docs/design.md §6): delete, evict, admin pins,
// drain, flush, listings, stats, hot capacity changes and the segment
// descriptions (tier_manager_impl.h).
#include <algorithm>
#include <chrono>

#include "common/logging.h"
#include "store/tier_manager_impl.h"

namespace kvcake::store {

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

Status TierManager::Impl::Delete(const BlockKey& key) {
  MutexLock lock(&mu_);
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr) return NotFoundError(key.ToString() + " not found");
  if (rec->state == BlockState::kReserved) {
    return FailedPreconditionError(key.ToString() + " is being written");
  }
  RemoveRecordLocked(key, rec);
  ++stats_.deletes;
  return Status::Ok();
}

void TierManager::Impl::QueueForcedLocked(std::shared_ptr<ForcedRequest> req) {
  forced_.push_back(std::move(req));
  WakeMoverLocked();
}

Status TierManager::Impl::Evict(const BlockKey& key, Tier to) {
  if (to == Tier::kDevice) return InvalidArgumentError("Evict: target must be host, ssd or remote");
  if (to == Tier::kSsd && !ssd_) return UnavailableError("Evict: no SSD tier");
  auto req = std::make_shared<ForcedRequest>();
  req->keys.push_back(key);
  req->to = to;
  MutexLock lock(&mu_);
  if (stop_) return UnavailableError("store: shutting down");
  QueueForcedLocked(req);
  while (InlineMover() && !req->finished && !stop_) RunMoverInlineLocked(&lock);
  space_cv_.Wait(&lock, [&]() REQUIRES(mu_) { return req->finished; });
  return req->status;
}

Status TierManager::Impl::SetAdminPin(const BlockKey& key, bool pinned) {
  MutexLock lock(&mu_);
  BlockRecord* rec = index_.Find(key);
  if (rec == nullptr || !rec->readable()) return NotFoundError(key.ToString() + " not found");
  rec->admin_pinned = pinned;
  if (!pinned) WakeMoverLocked();
  return Status::Ok();
}

Status TierManager::Impl::Drain(const DrainProgress& progress) {
  if (!ssd_) return UnavailableError("Drain: no SSD tier");
  auto req = std::make_shared<ForcedRequest>();
  req->to = Tier::kSsd;
  req->skip_unmovable = true;
  uint64_t total = 0;
  {
    MutexLock lock(&mu_);
    index_.ForEach([&](const BlockKey& k, const BlockRecord& r) {
      if (r.readable() && r.slot >= 0) req->keys.push_back(k);
    });
    total = req->keys.size();
    QueueForcedLocked(req);
    while (InlineMover() && !req->finished && !stop_) RunMoverInlineLocked(&lock);
    while (!req->finished) {
      space_cv_.WaitFor(&lock, std::chrono::milliseconds(100));
      if (progress && !req->finished) {
        const uint64_t done = req->done;
        lock.Unlock();
        progress(done, total);
        lock.Lock();
      }
    }
  }
  if (progress) progress(total, total);
  return req->status;
}

Status TierManager::Impl::Flush() {
  {
    MutexLock lock(&mu_);
    WakeMoverLocked();
    if (InlineMover()) RunMoverInlineLocked(&lock);
    space_cv_.Wait(&lock, [&]() REQUIRES(mu_) {
      return stop_ || (!ssd_busy_ && forced_.empty() && (ssd_deletes_.empty() || ssd_error_));
    });
  }
  return ssd_ ? ssd_->FlushMemtables() : Status::Ok();
}

Result<BlockInfo> TierManager::Impl::Describe(const BlockKey& key) const {
  MutexLock lock(&mu_);
  const BlockRecord* r = index_.Find(key);
  if (r == nullptr || !r->readable()) return NotFoundError(key.ToString() + " not found");
  return MakeInfo(key, *r);
}

std::vector<BlockInfo> TierManager::Impl::ListBlocks(const BlockFilter& filter) const {
  std::vector<BlockInfo> out;
  {
    MutexLock lock(&mu_);
    index_.ForEach([&](const BlockKey& k, const BlockRecord& r) {
      if (out.size() >= filter.limit || !r.readable()) return;
      if (filter.ns && *filter.ns != k.ns) return;
      if (filter.layer && *filter.layer != k.layer) return;
      if (filter.tier && *filter.tier != r.tier && !(*filter.tier == Tier::kSsd && r.on_ssd)) {
        return;
      }
      out.push_back(MakeInfo(k, r));
    });
  }
  std::sort(out.begin(), out.end(),
            [](const BlockInfo& a, const BlockInfo& b) { return a.key < b.key; });
  return out;
}

StoreStats TierManager::Impl::GetStats() const {
  MutexLock lock(&mu_);
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
  MutexLock lock(&mu_);
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
  WakeMoverLocked();
  return Status::Ok();
}

void TierManager::Impl::ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal) {
  MutexLock lock(&mu_);
  policy_->ReportLayerSignal(ns, signal);
  WakeMoverLocked();
}

std::vector<int64_t> TierManager::Impl::LayerBudgets(uint64_t ns, Tier tier) const {
  MutexLock lock(&mu_);
  return policy_->LayerBudgets(ns, tier);
}

std::string TierManager::Impl::TierRanking(Tier tier) const {
  MutexLock lock(&mu_);
  return std::string(policy_->Ranking(tier));
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
  d.slot_bytes = opts_.slot_bytes;
  d.num_slots = 0;
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

}  // namespace kvcake::store
