#include "daemon/handoff_registry.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace kvcake::daemon {

HandoffRegistry::HandoffRegistry(size_t max_handoffs, std::chrono::milliseconds stale_after)
    : max_handoffs_(max_handoffs == 0 ? 1 : max_handoffs), stale_after_(stale_after) {
  waiter_ = std::thread([this] { WaiterLoop(); });
}

HandoffRegistry::~HandoffRegistry() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (waiter_.joinable()) waiter_.join();
  std::list<Parked> left;
  {
    MutexLock lock(&mu_);
    left.swap(parked_);
  }
  for (Parked& p : left) p.run(false);
}

HandoffRegistry::Handoff& HandoffRegistry::EntryLocked(uint64_t id, bool* inserted) {
  auto [it, added] = handoffs_.try_emplace(id);
  *inserted = added;
  if (added) {
    order_.push_back(id);
    while (handoffs_.size() > max_handoffs_ && !order_.empty()) {
      if (order_.front() == id) break;
      handoffs_.erase(order_.front());
      order_.pop_front();
    }
  }
  return handoffs_.at(id);
}

void HandoffRegistry::Announce(uint64_t id, uint64_t ns_id, uint32_t expected,
                               std::span<const transport::BlockRef> keys,
                               const std::string& source) {
  {
    MutexLock lock(&mu_);
    bool inserted = false;
    Handoff& h = EntryLocked(id, &inserted);
    if (inserted) {
      h.ns_id = ns_id;
      h.expected = expected;
      ++stats_.announced;
    }
    if (h.source.empty()) h.source = source;
    h.last = Clock::now();
    for (const transport::BlockRef& k : keys) h.hashes.insert(k.hash);
    ++generation_;
  }
  cv_.NotifyAll();
}

void HandoffRegistry::FailLocked(Handoff& h, const Status& why) {
  if (!h.failure.ok() || (h.expected > 0 && h.arrived >= h.expected)) return;
  h.failure = why;  // its hashes stay, for FailureOf
  ++stats_.failed;
  if (why.code() == StatusCode::kAborted) ++stats_.aborted;
  if (why.code() == StatusCode::kUnavailable) ++stats_.unavailable;
  ++generation_;
}

void HandoffRegistry::Fail(uint64_t id, const Status& why) {
  {
    MutexLock lock(&mu_);
    bool inserted = false;
    Handoff& h = EntryLocked(id, &inserted);
    if (inserted) h.last = Clock::now();
    FailLocked(h, why);
  }
  cv_.NotifyAll();
}

void HandoffRegistry::FailSourcesNotIn(std::span<const std::string> live) {
  {
    MutexLock lock(&mu_);
    for (auto& [id, h] : handoffs_) {
      if (h.source.empty() || std::binary_search(live.begin(), live.end(), h.source)) continue;
      FailLocked(h, UnavailableError("hand-off " + std::to_string(id) + ": prefill member '" +
                                     h.source + "' left the cluster"));
    }
  }
  cv_.NotifyAll();
}

std::optional<Status> HandoffRegistry::FailureOf(uint64_t ns_id, uint64_t hash) const {
  MutexLock lock(&mu_);
  for (const auto& [id, h] : handoffs_) {
    if (h.ns_id == ns_id && !h.failure.ok() && h.hashes.contains(hash)) return h.failure;
  }
  return std::nullopt;
}

void HandoffRegistry::Arrived(uint64_t id, uint32_t n) {
  {
    MutexLock lock(&mu_);
    stats_.received_blocks += n;
    auto it = handoffs_.find(id);
    if (it != handoffs_.end()) {
      Handoff& h = it->second;
      const bool was_done = h.arrived >= h.expected;
      h.arrived += n;
      h.last = Clock::now();
      if (!was_done && h.arrived >= h.expected) {
        ++stats_.completed;
        h.hashes.clear();  // nothing to wait for any more
      }
    }
    ++generation_;
  }
  cv_.NotifyAll();
}

bool HandoffRegistry::InFlightLocked(const Handoff& h, Clock::time_point now) const {
  return h.failure.ok() && h.arrived < h.expected && now - h.last < stale_after_;
}

bool HandoffRegistry::Expecting(uint64_t ns_id, uint64_t hash) const {
  const Clock::time_point now = Clock::now();
  MutexLock lock(&mu_);
  for (const auto& [id, h] : handoffs_) {
    if (h.ns_id == ns_id && InFlightLocked(h, now) && h.hashes.contains(hash)) return true;
  }
  return false;
}

std::optional<Status> HandoffRegistry::Outcome(uint64_t id) const {
  MutexLock lock(&mu_);
  auto it = handoffs_.find(id);
  if (it == handoffs_.end()) return std::nullopt;
  if (!it->second.failure.ok()) return it->second.failure;
  if (it->second.expected == 0 || it->second.arrived < it->second.expected) return std::nullopt;
  return Status::Ok();
}

void HandoffRegistry::Park(Clock::time_point deadline, std::function<bool()> ready,
                           std::function<void(bool)> run) {
  {
    MutexLock lock(&mu_);
    ++stats_.parked;
    if (!stop_) {
      parked_.push_back(Parked{deadline, std::move(ready), std::move(run)});
      ++generation_;
      cv_.NotifyAll();
      return;
    }
  }
  run(false);  // shutting down: answer now
}

void HandoffRegistry::WaiterLoop() {
  MutexLock lock(&mu_);
  uint64_t seen = generation_;
  while (!stop_) {
    if (parked_.empty()) {
      cv_.Wait(&lock, [&]() REQUIRES(mu_) { return stop_ || !parked_.empty(); });
      continue;
    }
    // Check every parked request against the store: take them out, test them
    // without the lock, put back those still waiting.
    seen = generation_;
    std::list<Parked> batch;
    batch.swap(parked_);
    lock.Unlock();
    const Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    uint64_t expired = 0;
    for (auto it = batch.begin(); it != batch.end();) {
      const bool ready = it->ready();
      if (ready || now >= it->deadline) {
        if (!ready) ++expired;
        it->run(ready);
        it = batch.erase(it);
      } else {
        next = std::min(next, it->deadline);
        ++it;
      }
    }
    lock.Lock();
    stats_.parked_expired += expired;
    parked_.splice(parked_.end(), batch);
    if (stop_) break;
    // Sleep until something arrives (or is parked) or the earliest deadline;
    // wake at least every 50 ms so a block stored outside a hand-off is seen.
    next = std::min(next, Clock::now() + std::chrono::milliseconds(50));
    cv_.WaitUntil(&lock, next, [&]() REQUIRES(mu_) { return stop_ || generation_ != seen; });
  }
}

HandoffRegistryStats HandoffRegistry::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace kvcake::daemon
