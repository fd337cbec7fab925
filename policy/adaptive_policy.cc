#include "policy/adaptive_policy.h"

#include <string>

namespace kvcake::policy {

AdaptivePolicy::AdaptivePolicy(LruPolicyOptions lru, CakePolicyOptions cake)
    : lru_(lru), cake_(cake) {}

void AdaptivePolicy::SetTierCapacity(Tier tier, uint64_t bytes) {
  lru_.SetTierCapacity(tier, bytes);
  cake_.SetTierCapacity(tier, bytes);
}

void AdaptivePolicy::RegisterNamespace(uint64_t ns, uint32_t num_layers,
                                       uint64_t layer_block_bytes) {
  lru_.RegisterNamespace(ns, num_layers, layer_block_bytes);
  cake_.RegisterNamespace(ns, num_layers, layer_block_bytes);
}

void AdaptivePolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  auto [it, inserted] = held_.try_emplace(key, Held{tier, bytes});
  auto& per_ns = ns_bytes_[key.ns];
  if (!inserted) per_ns[TierIndex(it->second.tier)] -= it->second.bytes;
  it->second = Held{tier, bytes};
  per_ns[TierIndex(tier)] += bytes;
  lru_.OnInsert(key, tier, bytes, tick);
  cake_.OnInsert(key, tier, bytes, tick);
}

void AdaptivePolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  lru_.OnAccess(key, tier, tick);
  cake_.OnAccess(key, tier, tick);
}

void AdaptivePolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  auto it = held_.find(key);
  if (it != held_.end()) {
    auto& per_ns = ns_bytes_[key.ns];
    per_ns[TierIndex(it->second.tier)] -= it->second.bytes;
    per_ns[TierIndex(to)] += it->second.bytes;
    it->second.tier = to;
  }
  lru_.OnMove(key, from, to, tick);
  cake_.OnMove(key, from, to, tick);
}

void AdaptivePolicy::OnRemove(const BlockKey& key, Tier tier) {
  auto it = held_.find(key);
  if (it != held_.end()) {
    ns_bytes_[key.ns][TierIndex(it->second.tier)] -= it->second.bytes;
    held_.erase(it);
  }
  lru_.OnRemove(key, tier);
  cake_.OnRemove(key, tier);
}

std::array<uint64_t, kNumLocalTiers> AdaptivePolicy::CakeBytes() const {
  std::array<uint64_t, kNumLocalTiers> out{};
  for (const auto& [ns, bytes] : ns_bytes_) {
    if (!cake_.HasStatistics(ns)) continue;
    for (int t = 0; t < kNumLocalTiers; ++t) out[t] += bytes[t];
  }
  return out;
}

std::vector<BlockKey> AdaptivePolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  const int t = TierIndex(tier);
  uint64_t total = 0;
  for (const auto& [ns, bytes] : ns_bytes_) total += bytes[t];
  const uint64_t cake_bytes = CakeBytes()[t];
  // Each group frees in proportion to what it holds (rounded up for CAKE).
  const uint64_t cake_share =
      total == 0 ? 0
                 : static_cast<uint64_t>(
                       static_cast<long double>(bytes_to_free) * cake_bytes / total + 0.999);
  auto cake_ok = [&](const BlockKey& k) { return cake_.HasStatistics(k.ns) && eligible(k); };
  auto lru_ok = [&](const BlockKey& k) { return !cake_.HasStatistics(k.ns) && eligible(k); };
  std::vector<BlockKey> victims;
  if (cake_share > 0) victims = cake_.SelectVictims(tier, cake_share, cake_ok);
  uint64_t freed = 0;
  for (const BlockKey& k : victims) freed += held_.at(k).bytes;
  if (freed < bytes_to_free) {
    for (const BlockKey& k : lru_.SelectVictims(tier, bytes_to_free - freed, lru_ok)) {
      victims.push_back(k);
      freed += held_.at(k).bytes;
    }
  }
  if (freed < bytes_to_free) {  // the LRU group ran short: CAKE gives the rest
    std::unordered_map<BlockKey, bool, BlockKeyHash> taken;
    for (const BlockKey& k : victims) taken[k] = true;
    auto more_ok = [&](const BlockKey& k) { return cake_ok(k) && !taken.count(k); };
    for (const BlockKey& k : cake_.SelectVictims(tier, bytes_to_free - freed, more_ok)) {
      victims.push_back(k);
      freed += held_.at(k).bytes;
    }
  }
  return victims;
}

bool AdaptivePolicy::Admit(const BlockKey& key, Tier to) {
  return cake_.HasStatistics(key.ns) ? cake_.Admit(key, to) : lru_.Admit(key, to);
}

std::vector<BlockKey> AdaptivePolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  // CAKE's picks first, then the LRU group's hot blocks in what is left.
  std::vector<BlockKey> out = cake_.SelectPromotions(tier, bytes_available);
  uint64_t used = 0;
  for (const BlockKey& k : out) used += held_.at(k).bytes;
  if (used >= bytes_available) return out;
  auto lru_ok = [&](const BlockKey& k) { return !cake_.HasStatistics(k.ns); };
  for (const BlockKey& k : lru_.SelectPromotions(tier, bytes_available - used, lru_ok)) {
    out.push_back(k);
  }
  return out;
}

void AdaptivePolicy::ReportLayerSignal(uint64_t ns, const LayerSignal& signal) {
  cake_.ReportLayerSignal(ns, signal);
}

std::vector<int64_t> AdaptivePolicy::LayerBudgets(uint64_t ns, Tier tier) const {
  return cake_.HasStatistics(ns) ? cake_.LayerBudgets(ns, tier) : std::vector<int64_t>{};
}

}  // namespace kvcake::policy
