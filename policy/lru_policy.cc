#include "policy/lru_policy.h"

namespace kvcake::policy {

namespace {
size_t TierIndex(Tier t) {
  return static_cast<size_t>(t) < kNumLocalTiers ? static_cast<size_t>(t) : 2;
}
}  // namespace

LruPolicy::LruPolicy(LruPolicyOptions options)
    : options_(options), ghost_ring_(options.ghost_entries + 1) {}

void LruPolicy::SetTierCapacity(Tier tier, uint64_t bytes) {}

void LruPolicy::PushFront(List& l, uint32_t i) {
  Entry& e = pool_[i];
  e.prev = kNil;
  e.next = l.head;
  if (l.head != kNil) pool_[l.head].prev = i;
  l.head = i;
  if (l.tail == kNil) l.tail = i;
  ++l.size;
}

void LruPolicy::Unlink(List& l, uint32_t i) {
  Entry& e = pool_[i];
  (e.prev != kNil ? pool_[e.prev].next : l.head) = e.next;
  (e.next != kNil ? pool_[e.next].prev : l.tail) = e.prev;
  e.prev = e.next = kNil;
  --l.size;
}

void LruPolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  uint32_t i = entries_.Find(key);
  uint32_t hits = 1;
  if (i != kNil) {
    hits = pool_[i].hits + 1;
    Unlink(lru_[pool_[i].tier], i);
  } else {
    if (ghosts_.EraseIfPresent(key)) hits = 2;  // seen before: at least its second hit
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
    } else {
      i = static_cast<uint32_t>(pool_.size());
      pool_.emplace_back();
    }
    pool_[i].key = key;
    entries_.Insert(key, i);
  }
  Entry& e = pool_[i];
  e.bytes = bytes;
  e.hits = hits;
  e.tier = static_cast<uint8_t>(TierIndex(tier));
  PushFront(lru_[e.tier], i);
}

void LruPolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  const uint32_t i = entries_.Find(key);
  if (i == kNil) return;
  Entry& e = pool_[i];
  ++e.hits;
  Unlink(lru_[e.tier], i);
  PushFront(lru_[e.tier], i);
}

void LruPolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  const uint32_t i = entries_.Find(key);
  if (i == kNil) return;
  Entry& e = pool_[i];
  // Demoted blocks enter the lower tier as its most recent ones; promoted too.
  Unlink(lru_[e.tier], i);
  e.tier = static_cast<uint8_t>(TierIndex(to));
  PushFront(lru_[e.tier], i);
}

void LruPolicy::OnRemove(const BlockKey& key, Tier tier) {
  const uint32_t i = entries_.Find(key);
  if (i == kNil) return;
  Unlink(lru_[pool_[i].tier], i);
  entries_.Erase(key);
  free_.push_back(i);
  Remember(key);
}

void LruPolicy::Remember(const BlockKey& key) {
  if (options_.ghost_entries == 0) return;
  if (ghosts_.Find(key) == kNil) {
    const size_t slot = (ghost_front_ + ghost_count_) % ghost_ring_.size();
    ghost_ring_[slot] = key;
    ++ghost_count_;
    ghosts_.Insert(key, static_cast<uint32_t>(slot));
  }
  while (ghost_count_ > options_.ghost_entries) {
    ghosts_.EraseIfPresent(ghost_ring_[ghost_front_]);
    ghost_front_ = (ghost_front_ + 1) % ghost_ring_.size();
    --ghost_count_;
  }
}

std::vector<BlockKey> LruPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  const List& l = lru_[TierIndex(tier)];
  for (uint32_t i = l.tail; i != kNil && freed < bytes_to_free; i = pool_[i].prev) {
    const Entry& e = pool_[i];
    if (!eligible(e.key)) continue;
    victims.push_back(e.key);
    freed += e.bytes;
  }
  return victims;
}

bool LruPolicy::Admit(const BlockKey& key, Tier to) {
  if (to != Tier::kSsd) return true;
  const uint32_t i = entries_.Find(key);
  const uint32_t hits = i == kNil ? 0 : pool_[i].hits;
  return hits >= options_.ssd_admission_hits;
}

size_t LruPolicy::Size(Tier tier) const { return lru_[TierIndex(tier)].size; }

}  // namespace kvcake::policy
