#include "policy/arc_policy.h"

#include <algorithm>

namespace kvcake::policy {

ArcPolicy::ArcPolicy(ClassicPolicyOptions options)
    : ClassicPolicy(options), tiers_(options.ghost_entries) {}

bool ArcPolicy::InT2(const BlockKey& key) const {
  const uint32_t id = Find(key);
  return id != kNoEntry && pool_[id].queue == kT2;
}

void ArcPolicy::Enter(uint32_t id, bool inserted) {
  Entry& e = pool_[id];
  auto& pt = tiers_[e.tier];
  const double b1 = static_cast<double>(std::max<size_t>(1, pt.ghosts1.size()));
  const double b2 = static_cast<double>(std::max<size_t>(1, pt.ghosts2.size()));
  const double bytes = static_cast<double>(e.bytes);
  const double c =
      static_cast<double>(capacity(e.tier) > 0 ? capacity(e.tier) : ClassicPolicy::bytes(e.tier));
  if (pt.ghosts1.Erase(e.key)) {  // T1 was too small for it: grow T1's target
    pt.target = std::min(c, pt.target + std::max(1.0, b2 / b1) * bytes);
    e.queue = kT2;
  } else if (pt.ghosts2.Erase(e.key)) {  // T2 was too small for it: shrink T1's target
    pt.target = std::max(0.0, pt.target - std::max(1.0, b1 / b2) * bytes);
    e.queue = kT2;
  } else if (inserted) {
    e.queue = kT1;
  }  // moved in: keeps its class; re-inserted: T2 (Leave)
  tiers_.QueueOf(e).PushFront(pool_, id);
}

void ArcPolicy::Leave(uint32_t id, Exit why) {
  Entry& e = pool_[id];
  auto& pt = tiers_[e.tier];
  tiers_.QueueOf(e).Unlink(pool_, id);
  if (why == Exit::kReinserted) {
    e.queue = kT2;  // a second insert of a tracked key is a hit
    return;
  }
  if (why != Exit::kDemoted && why != Exit::kRemoved) return;
  GhostSet& ghost = e.queue == kT2 ? pt.ghosts2 : pt.ghosts1;
  ghost.Add(e.key);
  // The directory holds at most the tier's blocks in each ghost list.
  ghost.Trim(std::max<size_t>(1, count(e.tier)));
}

void ArcPolicy::Touch(uint32_t id) {
  Entry& e = pool_[id];
  tiers_.QueueOf(e).Unlink(pool_, id);
  e.queue = kT2;
  tiers_.QueueOf(e).PushFront(pool_, id);
}

double ArcPolicy::PromotionValue(const Entry& e) const {
  // T2 first, then recency (ticks are far below 2^52).
  return (e.queue == kT2 ? 4503599627370496.0 : 0.0) + static_cast<double>(e.last_tick);
}

std::vector<BlockKey> ArcPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  auto& pt = tiers_[TierIndex(tier)];
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  double t1_bytes = static_cast<double>(pt.queue1.bytes());
  uint32_t c1 = pt.queue1.tail();
  uint32_t c2 = pt.queue2.tail();
  // Skips ineligible blocks from cursor c towards the head.
  auto next_eligible = [&](uint32_t c) {
    while (c != kNoEntry && !eligible(pool_[c].key)) c = pool_[c].prev;
    return c;
  };
  c1 = next_eligible(c1);
  c2 = next_eligible(c2);
  while (freed < bytes_to_free && (c1 != kNoEntry || c2 != kNoEntry)) {
    // REPLACE: T1's LRU block while T1 exceeds its target, T2's otherwise.
    const bool from_t1 = c1 != kNoEntry && (t1_bytes > pt.target || c2 == kNoEntry);
    uint32_t& c = from_t1 ? c1 : c2;
    const Entry& e = pool_[c];
    victims.push_back(e.key);
    freed += e.bytes;
    if (from_t1) t1_bytes -= static_cast<double>(e.bytes);
    c = next_eligible(e.prev);
  }
  return victims;
}

}  // namespace kvcake::policy
