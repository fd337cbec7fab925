#include "policy/belady_policy.h"

#include <algorithm>

namespace kvcake::policy {

BeladyPolicy::BeladyPolicy(std::unordered_map<uint64_t, std::vector<uint64_t>> access_ticks)
    : access_ticks_(std::move(access_ticks)) {
  for (auto& [hash, ticks] : access_ticks_) std::sort(ticks.begin(), ticks.end());
}

uint64_t BeladyPolicy::NextUse(uint64_t hash, uint64_t tick) const {
  auto it = access_ticks_.find(hash);
  if (it == access_ticks_.end()) return kNever;
  auto next = std::upper_bound(it->second.begin(), it->second.end(), tick);
  return next == it->second.end() ? kNever : *next;
}

void BeladyPolicy::Place(const BlockKey& key, Entry& e, Tier tier, uint64_t tick) {
  e.tier = tier;
  e.next = NextUse(key.hash, tick);
  order_[TierIndex(tier)].insert(Item{e.next, key});
}

void BeladyPolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  auto [it, inserted] = entries_.try_emplace(key);
  if (!inserted) order_[TierIndex(it->second.tier)].erase(Item{it->second.next, key});
  it->second.bytes = bytes;
  Place(key, it->second, tier, tick);
}

void BeladyPolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_[TierIndex(it->second.tier)].erase(Item{it->second.next, key});
  Place(key, it->second, it->second.tier, tick);
}

void BeladyPolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  order_[TierIndex(e.tier)].erase(Item{e.next, key});
  e.tier = to;
  order_[TierIndex(to)].insert(Item{e.next, key});  // the next use does not change on a move
}

void BeladyPolicy::OnRemove(const BlockKey& key, Tier tier) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_[TierIndex(it->second.tier)].erase(Item{it->second.next, key});
  entries_.erase(it);
}

std::vector<BlockKey> BeladyPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  const auto& order = order_[TierIndex(tier)];
  for (auto it = order.begin(); it != order.end() && freed < bytes_to_free; ++it) {
    if (!eligible(it->key)) continue;
    victims.push_back(it->key);
    freed += entries_.at(it->key).bytes;
  }
  return victims;
}

std::vector<BlockKey> BeladyPolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  std::vector<BlockKey> out;
  if (tier == Tier::kSsd || tier == Tier::kRemote) return out;
  const auto& below = order_[TierIndex(tier) + 1];
  uint64_t used = 0;
  // order_ is by descending next use: the nearest is at the end.
  for (auto it = below.rbegin(); it != below.rend() && it->next != kNever; ++it) {
    const uint64_t bytes = entries_.at(it->key).bytes;
    if (used + bytes > bytes_available) break;
    used += bytes;
    out.push_back(it->key);
  }
  return out;
}

bool BeladyPolicy::Admit(const BlockKey& key, Tier to) {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.next != kNever;
}

}  // namespace kvcake::policy
