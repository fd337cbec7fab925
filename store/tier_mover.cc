// TierManager's mover thread: leases swept, forced moves (Evict, Drain),
// demotion device -> host -> SSD -> drop above the watermarks, promotion
// below them, GPU refresh (exchanges) once the GPU tier is full, and the SSD
// writes. Each phase runs under mu_ and releases it only around payload
// copies and SSD I/O (tier_manager_impl.h).
#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/logging.h"
#include "store/checksum.h"
#include "store/tier_manager_impl.h"

namespace kvcake::store {

void TierManager::Impl::MoverLoop() {
  MutexLock lock(&mu_);
  while (!stop_) {
    if (!mover_work_) {
      mover_cv_.WaitFor(&lock, std::chrono::microseconds(opts_.mover_interval_us),
                        [&]() REQUIRES(mu_) { return stop_ || mover_work_; });
      ssd_error_ = false;  // retry SSD writes after a backoff interval
    }
    if (stop_) break;
    mover_work_ = false;
    if (MoverPassLocked()) mover_work_ = true;
    space_cv_.NotifyAll();
  }
}

void TierManager::Impl::RunMoverInlineLocked(MutexLock* lock) {
  // Passes drop mu_ around copies and SSD I/O: one inline run at a time.
  space_cv_.Wait(lock, [&]() REQUIRES(mu_) { return !inline_mover_running_; });
  inline_mover_running_ = true;
  mover_work_ = false;
  while (!stop_ && MoverPassLocked()) {
  }
  mover_work_ = false;
  inline_mover_running_ = false;
  space_cv_.NotifyAll();
}

uint64_t TierManager::Impl::MoverActivityLocked() const {
  uint64_t n = 0;
  for (size_t t = 0; t < kNumLocalTiers; ++t) {
    n += stats_.drops[t];
    for (size_t u = 0; u < kNumLocalTiers; ++u) n += stats_.moves[t][u];
  }
  return n;
}

bool TierManager::Impl::RunMoverOnce(bool only_if_woken) {
  MutexLock lock(&mu_);
  if (!InlineMover() || stop_ || (only_if_woken && !mover_work_)) return false;
  const uint64_t before = MoverActivityLocked();
  ssd_error_ = false;  // an interval has passed: SSD writes are retried
  RunMoverInlineLocked(&lock);
  return MoverActivityLocked() != before;
}

bool TierManager::Impl::MoverPassLocked() {
  bool again = false;
  SweepLocked(Now());
  // Explicit requests first (Evict, Drain).
  if (!forced_.empty()) {
    ProcessForcedLocked();
    if (!forced_.empty()) again = true;
  }
  DropSsdExcessLocked();
  if (device_pool_ && DemoteDeviceLocked()) again = true;
  if (DemoteHostLocked()) again = true;
  if (!again && !stop_) {
    PromoteLocked();
    if (device_pool_ && !stop_ && RefreshDeviceLocked()) again = true;
  }
  if (!ssd_deletes_.empty() && ssd_ && !ssd_error_) {
    std::vector<MoveItem> none;
    WriteToSsdLocked(none).IgnoreError();  // retried next pass
  }
  return again && !stop_;
}

// --- demotion -----------------------------------------------------------------

void TierManager::Impl::DropSsdExcessLocked() {
  if (!ssd_ || !(tier_bytes_[Idx(Tier::kSsd)] > ssd_capacity_ * opts_.high_watermark)) return;
  const uint64_t excess =
      tier_bytes_[Idx(Tier::kSsd)] - static_cast<uint64_t>(ssd_capacity_ * opts_.low_watermark);
  auto eligible = [&](const BlockKey& k)
                      REQUIRES(mu_) { return EligibleVictim(index_.Find(k), Tier::kSsd); };
  for (const BlockKey& k : policy_->SelectVictims(Tier::kSsd, excess, eligible)) {
    BlockRecord* r = index_.Find(k);
    if (!EligibleVictim(r, Tier::kSsd)) continue;
    RemoveRecordLocked(k, r);
    CountDropLocked(Tier::kSsd, DropReason::kCapacity);
  }
}

TierManager::Impl::DemotionTarget TierManager::Impl::DemotionTargetLocked(Tier t, bool also) const {
  const ExtentPool* p = Pool(t);
  const uint64_t want = p->used_bytes() + waiting_bytes_[Idx(t)];
  const uint64_t high = static_cast<uint64_t>(opts_.high_watermark * p->usable_bytes());
  DemotionTarget target;
  if (!(want > high || waiting_[Idx(t)] > 0 || also)) return target;
  const uint64_t low = static_cast<uint64_t>(opts_.low_watermark * p->usable_bytes());
  target.needed = true;
  target.to_free = want > low ? want - low : p->page_bytes();
  return target;
}

uint64_t TierManager::Impl::BatchBytesLocked(Tier t, uint64_t to_free) const {
  const ExtentPool* p = Pool(t);
  const uint64_t mean =
      p->used_extents() == 0 ? p->page_bytes() : p->used_bytes() / p->used_extents();
  return std::min(to_free, uint64_t{opts_.mover_batch_blocks} * std::max<uint64_t>(mean, 1));
}

bool TierManager::Impl::DemoteDeviceLocked() {
  const DemotionTarget target = DemotionTargetLocked(Tier::kDevice, /*also=*/false);
  if (!target.needed) return false;
  auto eligible = [&](const BlockKey& k)
                      REQUIRES(mu_) { return EligibleVictim(index_.Find(k), Tier::kDevice); };
  std::vector<MoveItem> items;
  std::vector<int32_t> host_slots;
  uint64_t freed = 0;
  for (const BlockKey& k : policy_->SelectVictims(
           Tier::kDevice, BatchBytesLocked(Tier::kDevice, target.to_free), eligible)) {
    BlockRecord* r = index_.Find(k);
    if (!EligibleVictim(r, Tier::kDevice)) continue;
    if (!policy_->Admit(k, Tier::kHost)) {
      RemoveRecordLocked(k, r);
      CountDropLocked(Tier::kDevice, DropReason::kAdmission);
      continue;
    }
    const int32_t hs = AllocateLocked(Tier::kHost, r->size);
    if (hs < 0) break;  // host must drain first (DemoteHostLocked sees the device blocked)
    freed += device_pool_->extent_bytes(r->slot);
    items.push_back(StartMoveLocked(k, r, nullptr));
    host_slots.push_back(hs);
    if (freed >= target.to_free || items.size() >= opts_.mover_batch_blocks) break;
  }
  const bool moved = !items.empty();
  MoveDeviceToHostLocked(items, host_slots);
  return moved;
}

bool TierManager::Impl::DemoteHostLocked() {
  const bool device_blocked =
      device_pool_ && (waiting_[Idx(Tier::kDevice)] > 0 || OverHighWatermarkLocked(Tier::kDevice));
  const DemotionTarget target = DemotionTargetLocked(Tier::kHost, device_blocked);
  if (!target.needed) return false;
  auto eligible = [&](const BlockKey& k)
                      REQUIRES(mu_) { return EligibleVictim(index_.Find(k), Tier::kHost); };
  std::vector<MoveItem> items;
  uint64_t freed = 0, victims = 0;
  uint64_t batch_bytes = 0;  // queued for SSD in this pass, not yet in tier_bytes_
  if (!ssd_error_) {
    for (const BlockKey& k : policy_->SelectVictims(
             Tier::kHost, BatchBytesLocked(Tier::kHost, target.to_free), eligible)) {
      BlockRecord* r = index_.Find(k);
      if (!EligibleVictim(r, Tier::kHost)) continue;
      freed += host_pool_->extent_bytes(r->slot);
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
      if (freed >= target.to_free || ++victims >= opts_.mover_batch_blocks) break;
    }
  }
  // On a failed SSD write the mover backs off for an interval (ssd_error_).
  return WriteToSsdLocked(items).ok() && freed > 0;
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

// --- SSD writes -----------------------------------------------------------------

Status TierManager::Impl::WriteToSsdLocked(std::vector<MoveItem>& items) {
  std::vector<BlockKey> deletes;
  deletes.swap(ssd_deletes_);
  if (items.empty() && deletes.empty()) return Status::Ok();
  ssd_busy_ = true;
  mu_.Unlock();
  std::vector<SsdTier::WriteItem> writes;
  Status s = PrepareSsdWrites(items, &writes);
  if (s.ok()) s = ssd_->Write(writes, deletes);
  if (!s.ok() && s.code() != StatusCode::kResourceExhausted) {
    KVCAKE_LOG(WARNING) << "ssd tier: write failed: " << s.ToString();
  }
  if (!s.ok()) {
    // Try to clear RocksDB's background error so a later batch can succeed.
    ssd_->Resume().IgnoreError();
  }
  mu_.Lock();
  ssd_busy_ = false;
  if (!s.ok()) {
    ++stats_.ssd_write_errors;
    ssd_error_ = true;
    // Nothing of the batch was applied: blocks stay committed in memory.
    ssd_deletes_.insert(ssd_deletes_.end(), deletes.begin(), deletes.end());
  }
  for (MoveItem& it : items) FinishSsdWriteLocked(it, s);
  return s;
}

Status TierManager::Impl::PrepareSsdWrites(std::vector<MoveItem>& items,
                                           std::vector<SsdTier::WriteItem>* writes) {
  writes->reserve(items.size());
  for (MoveItem& it : items) {
    const void* data = SlotPtr(it.from, it.slot);
    if (it.from == Tier::kDevice && device_->is_cuda()) {
      it.staging.resize(it.size);
      RETURN_IF_ERROR(CopyFromSlot(Tier::kDevice, it.slot, it.staging.data(), it.size));
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
    writes->push_back({it.key, data, it.size, it.checksum, it.fingerprint});
  }
  return Status::Ok();
}

void TierManager::Impl::FinishSsdWriteLocked(MoveItem& it, const Status& s) {
  BlockRecord* rec = index_.Find(it.key);
  const bool same = IsUnchanged(rec, it.generation, BlockState::kDemoting);
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
    CountMoveLocked(it.from, Tier::kSsd, rec->size);
    if (rec->pins == 0 && !rec->admin_pinned) DropCleanCopyLocked(it.key, rec);
  } else {
    // Deleted or replaced while being written: remove the stale SSD copy.
    if (rec == nullptr || !rec->on_ssd) ssd_deletes_.push_back(it.key);
  }
  if (it.req != nullptr) ++it.req->done;
  UnrefSlotLocked(it.from, it.slot);  // the mover's reference
}

// --- device -> host -------------------------------------------------------------

void TierManager::Impl::MoveDeviceToHostLocked(std::vector<MoveItem>& items,
                                               std::vector<int32_t>& host_slots) {
  if (items.empty()) return;
  mu_.Unlock();
  std::vector<Status> results(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    results[i] = CopyFromSlot(Tier::kDevice, items[i].slot, SlotPtr(Tier::kHost, host_slots[i]),
                              items[i].size);
  }
  mu_.Lock();
  const uint64_t tick = tick_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < items.size(); ++i) {
    MoveItem& it = items[i];
    BlockRecord* rec = index_.Find(it.key);
    const bool same = IsUnchanged(rec, it.generation, BlockState::kDemoting);
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
      CountMoveLocked(Tier::kDevice, Tier::kHost, rec->size);
      policy_->OnMove(it.key, Tier::kDevice, Tier::kHost, tick);
    }
    if (it.req != nullptr) ++it.req->done;
    UnrefSlotLocked(Tier::kDevice, it.slot);  // the mover's reference
  }
}

// --- forced moves (Evict, Drain) ------------------------------------------------

void TierManager::Impl::ProcessForcedLocked() {
  while (!forced_.empty() && !stop_) {
    std::shared_ptr<ForcedRequest> req = forced_.front();
    std::vector<MoveItem> to_ssd, to_host;
    std::vector<int32_t> host_slots;
    while (req->next < req->keys.size() &&
           to_ssd.size() + to_host.size() < opts_.mover_batch_blocks) {
      const BlockKey& key = req->keys[req->next++];
      BlockRecord* rec = index_.Find(key);
      Status err = ForcedKeyErrorLocked(key, rec);
      if (!err.ok()) {
        if (!req->skip_unmovable) FailRequest(req.get(), err);
        ++req->done;
        continue;
      }
      ForceOneLocked(req.get(), key, rec, &to_ssd, &to_host, &host_slots);
    }
    MoveDeviceToHostLocked(to_host, host_slots);
    if (!to_ssd.empty()) WriteToSsdLocked(to_ssd).IgnoreError();  // reported per request
    if (req->next < req->keys.size()) return;  // one batch per pass; the loop runs again at once
    req->finished = true;
    // The lock was dropped for the copies and the SSD write: shutdown may
    // have cleared the queue meanwhile.
    if (!forced_.empty() && forced_.front() == req) forced_.pop_front();
    space_cv_.NotifyAll();
  }
}

Status TierManager::Impl::ForcedKeyErrorLocked(const BlockKey& key, const BlockRecord* rec) const {
  if (rec == nullptr || !rec->readable()) return NotFoundError(key.ToString() + " not found");
  if (rec->admin_pinned || rec->pins > 0) {
    return FailedPreconditionError(key.ToString() + " is pinned");
  }
  if (rec->in_flight()) return AbortedError(key.ToString() + " is being moved");
  return Status::Ok();
}

void TierManager::Impl::ForceOneLocked(ForcedRequest* req, const BlockKey& key, BlockRecord* rec,
                                       std::vector<MoveItem>* to_ssd,
                                       std::vector<MoveItem>* to_host,
                                       std::vector<int32_t>* host_slots) {
  if (req->to == Tier::kRemote) {
    CountDropLocked(rec->tier, DropReason::kEvict);
    RemoveRecordLocked(key, rec);
    ++req->done;
  } else if (req->to == Tier::kHost) {
    if (rec->tier != Tier::kDevice) {
      ++req->done;
      return;
    }
    const int32_t hs = AllocateLocked(Tier::kHost, rec->size);
    if (hs < 0) {
      FailRequest(req, ResourceExhaustedError("Evict: host tier full"));
      ++req->done;
      return;
    }
    to_host->push_back(StartMoveLocked(key, rec, req));
    host_slots->push_back(hs);
  } else if (rec->slot < 0) {  // to SSD, and only on SSD already
    ++req->done;
  } else if (rec->on_ssd) {
    DropCleanCopyLocked(key, rec);
    ++req->done;
  } else {
    to_ssd->push_back(StartMoveLocked(key, rec, req));
  }
}

// --- promotion ------------------------------------------------------------------

void TierManager::Impl::PromoteLocked() {
  for (Tier to : {Tier::kHost, Tier::kDevice}) {
    ExtentPool* pool = Pool(to);
    if (pool == nullptr || (to == Tier::kHost && !ssd_)) continue;
    const uint64_t low = static_cast<uint64_t>(opts_.low_watermark * pool->usable_bytes());
    if (pool->used_bytes() >= low) continue;
    std::vector<Promotion> work =
        StartPromotionsLocked(to, policy_->SelectPromotions(to, low - pool->used_bytes()), low);
    RunPromotionsLocked(to, work);
  }
}

std::vector<TierManager::Impl::Promotion> TierManager::Impl::StartPromotionsLocked(
    Tier to, const std::vector<BlockKey>& keys, uint64_t limit) {
  ExtentPool* pool = Pool(to);
  const Tier from = to == Tier::kHost ? Tier::kSsd : Tier::kHost;
  std::vector<Promotion> work;
  for (const BlockKey& k : keys) {
    if (work.size() >= opts_.mover_batch_blocks) break;
    BlockRecord* rec = index_.Find(k);
    if (!EligibleVictim(rec, from)) continue;  // committed in `from`, not pinned
    if (pool->used_bytes() + pool->ClassBytes(rec->size) > limit) break;
    const int32_t slot = pool->Allocate(rec->size);
    if (slot < 0) break;
    rec->state = BlockState::kPromoting;
    if (from == Tier::kHost) Pool(from)->Ref(rec->slot);  // the mover's reference
    work.push_back({k, from == Tier::kHost ? rec->slot : -1, slot, rec->generation, rec->checksum,
                    rec->size, Status::Ok()});
  }
  return work;
}

void TierManager::Impl::RunPromotionsLocked(Tier to, std::vector<Promotion>& work) {
  if (work.empty()) return;
  mu_.Unlock();
  CopyPromotions(to, work);
  mu_.Lock();
  FinishPromotionsLocked(to, work);
}

bool TierManager::Impl::RefreshDeviceLocked() {
  if (device_pool_->used_extents() == 0) return false;
  auto eligible = [&](const BlockKey& k) REQUIRES(mu_) {
    const BlockRecord* r = index_.Find(k);
    return EligibleVictim(r, Tier::kDevice) || EligibleVictim(r, Tier::kHost);
  };
  const std::vector<policy::Exchange> exchanges = policy_->SelectExchanges(
      Tier::kDevice, BatchBytesLocked(Tier::kDevice, ~uint64_t{0}), eligible);
  if (exchanges.empty()) return false;
  const uint64_t low = static_cast<uint64_t>(opts_.low_watermark * device_pool_->usable_bytes());
  const uint64_t limit = std::max(device_pool_->used_bytes(), low);
  std::vector<MoveItem> items;
  std::vector<int32_t> host_slots;
  std::vector<BlockKey> promote;
  for (const policy::Exchange& x : exchanges) {
    if (items.size() >= opts_.mover_batch_blocks) break;
    BlockRecord* victim = index_.Find(x.demote);
    // An exchange never drops: a victim the host tier would not admit stays.
    if (!EligibleVictim(victim, Tier::kDevice) ||
        !EligibleVictim(index_.Find(x.promote), Tier::kHost) ||
        !policy_->Admit(x.demote, Tier::kHost)) {
      continue;
    }
    const int32_t hs = AllocateLocked(Tier::kHost, victim->size);
    if (hs < 0) break;  // host must drain first
    items.push_back(StartMoveLocked(x.demote, victim, nullptr));
    host_slots.push_back(hs);
    promote.push_back(x.promote);
  }
  if (items.empty()) return false;
  const uint64_t before = MoverActivityLocked();
  MoveDeviceToHostLocked(items, host_slots);
  std::vector<Promotion> work = StartPromotionsLocked(Tier::kDevice, promote, limit);
  RunPromotionsLocked(Tier::kDevice, work);
  return MoverActivityLocked() != before;
}

void TierManager::Impl::CopyPromotions(Tier to, std::vector<Promotion>& work) {
  for (Promotion& w : work) {
    if (to == Tier::kHost) {
      Result<SsdHeader> h =
          ssd_->Read(w.key, SlotPtr(Tier::kHost, w.to_slot), host_pool_->extent_bytes(w.to_slot));
      if (h.ok() && h->checksum != w.checksum) {
        h = DataLossError("promotion of " + w.key.ToString() + ": SSD copy does not match");
      }
      w.status = h.status();
    } else {
      w.status = CopyToSlot(Tier::kDevice, w.to_slot, SlotPtr(Tier::kHost, w.from_slot), w.size);
    }
  }
}

void TierManager::Impl::FinishPromotionsLocked(Tier to, std::vector<Promotion>& work) {
  const Tier from = to == Tier::kHost ? Tier::kSsd : Tier::kHost;
  const uint64_t tick = tick_.load(std::memory_order_relaxed);
  for (Promotion& w : work) {
    BlockRecord* rec = index_.Find(w.key);
    const bool same = IsUnchanged(rec, w.generation, BlockState::kPromoting);
    if (same) rec->state = BlockState::kCommitted;
    if (!w.status.ok() || !same) {
      UnrefSlotLocked(to, w.to_slot);
      if (!w.status.ok() && to == Tier::kHost) {
        OnSsdReadErrorLocked(w.key, w.generation, w.status);
      }
    } else {
      if (from == Tier::kHost) {
        RemoveFromTierLocked(Tier::kHost, rec->size);
        UnrefSlotLocked(Tier::kHost, rec->slot);  // the index's host reference
      }
      rec->tier = to;
      rec->slot = w.to_slot;
      AddToTierLocked(to, rec->size);
      CountMoveLocked(from, to, rec->size);
      policy_->OnMove(w.key, from, to, tick);
    }
    if (w.from_slot >= 0) UnrefSlotLocked(Tier::kHost, w.from_slot);  // the mover's
  }
}

}  // namespace kvcake::store
