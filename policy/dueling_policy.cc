#include "policy/dueling_policy.h"

#include <unordered_set>

namespace kvcake::policy {

DuelingPolicy::DuelingPolicy(ClassicPolicyOptions classic, GdsfPolicyOptions costs,
                             DuelingPolicyOptions options)
    : gdsf_(classic, costs), lru_(classic), options_(options) {
  for (auto& per_tier : blame_) {
    for (std::optional<GhostSet>& g : per_tier) g.emplace(classic.ghost_entries);
  }
}

void DuelingPolicy::SetTierCapacity(Tier tier, uint64_t bytes) {
  gdsf_.SetTierCapacity(tier, bytes);
  lru_.SetTierCapacity(tier, bytes);
}

void DuelingPolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  Used(key);  // a block put again after it was dropped
  gdsf_.OnInsert(key, tier, bytes, tick);
  lru_.OnInsert(key, tier, bytes, tick);
}

void DuelingPolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  Used(key);
  gdsf_.OnAccess(key, tier, tick);
  lru_.OnAccess(key, tier, tick);
}

void DuelingPolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  gdsf_.OnMove(key, from, to, tick);
  lru_.OnMove(key, from, to, tick);
}

void DuelingPolicy::OnRemove(const BlockKey& key, Tier tier) {
  gdsf_.OnRemove(key, tier);
  lru_.OnRemove(key, tier);
}

void DuelingPolicy::Used(const BlockKey& key) {
  for (size_t t = 0; t < kNumLocalTiers; ++t) {
    if (!options_.duel[t]) continue;  // nothing remembered there
    for (Expert e : {kGdsf, kLru}) {
      if (blame_[t][e]->Erase(key)) ChargeExpert(t, e);
    }
  }
}

void DuelingPolicy::ChargeExpert(size_t t, Expert e) {
  charge_[t][kGdsf] *= options_.decay;
  charge_[t][kLru] *= options_.decay;
  charge_[t][e] += 1;
  leader_[t] = charge_[t][kLru] < charge_[t][kGdsf] ? kLru : kGdsf;
}

std::vector<BlockKey> DuelingPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  const size_t t = TierIndex(tier);
  const Expert leader = leader_[t];
  const Expert other = leader == kGdsf ? kLru : kGdsf;
  std::vector<BlockKey> victims = expert(leader).SelectVictims(tier, bytes_to_free, eligible);
  if (!options_.duel[t]) return victims;
  const std::vector<BlockKey> alternative =
      expert(other).SelectVictims(tier, bytes_to_free, eligible);
  const std::unordered_set<BlockKey> chosen(victims.begin(), victims.end());
  const std::unordered_set<BlockKey> instead(alternative.begin(), alternative.end());
  for (const BlockKey& k : victims) {
    // Leaving now: whatever the other expert was blamed for keeping it is settled.
    blame_[t][other]->Erase(k);
    if (instead.count(k) == 0) blame_[t][leader]->Add(k);
  }
  for (const BlockKey& k : alternative) {
    if (chosen.count(k) == 0) blame_[t][other]->Add(k);
  }
  return victims;
}

std::string_view DuelingPolicy::Ranking(Tier tier) const {
  return leader_[TierIndex(tier)] == kLru ? lru_.name() : gdsf_.name();
}

std::vector<BlockKey> DuelingPolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  return expert(leader_[TierIndex(Tier::kDevice)]).SelectPromotions(tier, bytes_available);
}

std::vector<BlockKey> DuelingPolicy::SelectPromotions(
    Tier tier, uint64_t bytes_available, const std::function<bool(const BlockKey&)>& eligible) {
  return expert(leader_[TierIndex(Tier::kDevice)])
      .SelectPromotions(tier, bytes_available, eligible);
}

std::vector<Exchange> DuelingPolicy::SelectExchanges(
    Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) {
  return expert(leader_[TierIndex(tier)]).SelectExchanges(tier, max_bytes, eligible);
}

}  // namespace kvcake::policy
