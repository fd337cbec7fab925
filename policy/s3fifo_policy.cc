#include "policy/s3fifo_policy.h"

#include <algorithm>

namespace kvcake::policy {

S3FifoPolicy::S3FifoPolicy(ClassicPolicyOptions options, double small_fraction)
    : ClassicPolicy(options), small_fraction_(small_fraction), tiers_(options.ghost_entries) {}

bool S3FifoPolicy::InMain(const BlockKey& key) const {
  const uint32_t id = Find(key);
  return id != kNoEntry && pool_[id].queue == kMain;
}

void S3FifoPolicy::Enter(uint32_t id, bool inserted) {
  Entry& e = pool_[id];
  if (inserted || e.queue == 0) {
    e.queue = kSmall;
    e.freq = 0;
  }
  if (tiers_[e.tier].ghosts1.Erase(e.key)) e.queue = kMain;
  tiers_.QueueOf(e).PushFront(pool_, id);
}

void S3FifoPolicy::Leave(uint32_t id, Exit why) {
  Entry& e = pool_[id];
  tiers_.QueueOf(e).Unlink(pool_, id);
  if (why == Exit::kReinserted) {  // a second insert is an access
    e.freq = static_cast<uint8_t>(std::min<int>(kMaxFreq, e.freq + 1));
    return;
  }
  if (e.queue == kSmall && (why == Exit::kDemoted || why == Exit::kRemoved)) {
    GhostSet& ghost = tiers_[e.tier].ghosts1;
    ghost.Add(e.key);
    ghost.Trim(std::max<size_t>(1, count(e.tier)));
  }
  if (why != Exit::kRemoved) e.queue = kSmall;  // enters the next tier's S
}

void S3FifoPolicy::Touch(uint32_t id) {
  Entry& e = pool_[id];
  e.freq = static_cast<uint8_t>(std::min<int>(kMaxFreq, e.freq + 1));
}

double S3FifoPolicy::PromotionValue(const Entry& e) const {
  return e.freq * 4503599627370496.0 + static_cast<double>(e.last_tick);
}

std::vector<BlockKey> S3FifoPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  const size_t t = TierIndex(tier);
  auto& pt = tiers_[t];
  const uint64_t size = capacity(t) > 0 ? capacity(t) : bytes(t);
  const double small_target = small_fraction_ * static_cast<double>(size);
  ++round_;
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  double small_bytes = static_cast<double>(pt.queue1.bytes());
  uint32_t cs = pt.queue1.tail();
  uint32_t cm = pt.queue2.tail();
  // Every wrap of the M cursor has decremented the counters it met, so after
  // 1 + kMaxFreq wraps M yields no more; `steps` bounds the walk regardless.
  size_t steps = (kMaxFreq + 3) * (pt.queue1.size() + pt.queue2.size()) + 4;
  int main_wraps = 0;
  bool main_done = false;
  while (freed < bytes_to_free && steps-- > 0) {
    if (cs != kNoEntry && (small_bytes > small_target || pt.queue2.empty() || main_done)) {
      const uint32_t i = cs;
      cs = pool_[i].prev;
      Entry& e = pool_[i];
      if (!eligible(e.key)) continue;
      small_bytes -= static_cast<double>(e.bytes);
      if (e.freq > 0) {  // accessed in S: on to M
        pt.queue1.Unlink(pool_, i);
        e.queue = kMain;
        e.freq = 0;
        pt.queue2.PushFront(pool_, i);
        continue;
      }
      e.mark = round_;  // a one-hit wonder: out
      victims.push_back(e.key);
      freed += e.bytes;
      continue;
    }
    if (cm == kNoEntry) {
      if (main_done || ++main_wraps > kMaxFreq + 1) {
        main_done = true;
        if (cs == kNoEntry) break;
        continue;
      }
      cm = pt.queue2.tail();
      continue;
    }
    const uint32_t i = cm;
    cm = pool_[i].prev;
    Entry& e = pool_[i];
    if (e.mark == round_ || !eligible(e.key)) continue;
    if (e.freq > 0) {  // reused: reinsert at M's head
      --e.freq;
      pt.queue2.MoveToFront(pool_, i);
      continue;
    }
    e.mark = round_;
    victims.push_back(e.key);
    freed += e.bytes;
  }
  return victims;
}

}  // namespace kvcake::policy
