#include "policy/lru_policy.h"

namespace kvcake::policy {

namespace {
size_t TierIndex(Tier t) {
  return static_cast<size_t>(t) < kNumLocalTiers ? static_cast<size_t>(t) : 2;
}
}  // namespace

LruPolicy::LruPolicy(LruPolicyOptions options) : options_(options) {}

void LruPolicy::SetTierCapacity(Tier tier, uint64_t bytes) {}

void LruPolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  auto it = entries_.find(key);
  uint32_t hits = 1;
  if (it != entries_.end()) {
    hits = it->second.hits + 1;
    lru_[TierIndex(it->second.tier)].erase(it->second.pos);
    entries_.erase(it);
  } else if (ghosts_.erase(key) > 0) {
    hits = 2;  // seen before: this is at least its second hit
  }
  auto& list = lru_[TierIndex(tier)];
  list.push_front(key);
  entries_.emplace(key, Entry{tier, bytes, hits, list.begin()});
}

void LruPolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  ++e.hits;
  auto& list = lru_[TierIndex(e.tier)];
  list.splice(list.begin(), list, e.pos);
}

void LruPolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  auto& old_list = lru_[TierIndex(e.tier)];
  auto& new_list = lru_[TierIndex(to)];
  // Demoted blocks enter the lower tier as its most recent ones; promoted too.
  new_list.splice(new_list.begin(), old_list, e.pos);
  e.tier = to;
}

void LruPolicy::OnRemove(const BlockKey& key, Tier tier) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  lru_[TierIndex(it->second.tier)].erase(it->second.pos);
  entries_.erase(it);
  Remember(key);
}

void LruPolicy::Remember(const BlockKey& key) {
  if (options_.ghost_entries == 0) return;
  if (ghosts_.insert(key).second) ghost_order_.push_back(key);
  while (ghost_order_.size() > options_.ghost_entries) {
    ghosts_.erase(ghost_order_.front());
    ghost_order_.pop_front();
  }
}

std::vector<BlockKey> LruPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  auto& list = lru_[TierIndex(tier)];
  for (auto it = list.rbegin(); it != list.rend() && freed < bytes_to_free; ++it) {
    if (!eligible(*it)) continue;
    victims.push_back(*it);
    freed += entries_.at(*it).bytes;
  }
  return victims;
}

bool LruPolicy::Admit(const BlockKey& key, Tier to) {
  if (to != Tier::kSsd) return true;
  auto it = entries_.find(key);
  uint32_t hits = it == entries_.end() ? 0 : it->second.hits;
  return hits >= options_.ssd_admission_hits;
}

size_t LruPolicy::Size(Tier tier) const { return lru_[TierIndex(tier)].size(); }

}  // namespace kvcake::policy
