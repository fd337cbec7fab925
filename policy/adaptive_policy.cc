#include "policy/adaptive_policy.h"

#include <string>

namespace kvcake::policy {

AdaptivePolicy::AdaptivePolicy(ClassicPolicyOptions classic, GdsfPolicyOptions costs,
                               CakePolicyOptions cake)
    : classic_(classic, costs), cake_(cake) {}

void AdaptivePolicy::SetTierCapacity(Tier tier, uint64_t bytes) {
  classic_.SetTierCapacity(tier, bytes);
  cake_.SetTierCapacity(tier, bytes);
}

void AdaptivePolicy::RegisterNamespace(uint64_t ns, uint32_t num_layers,
                                       uint64_t layer_block_bytes) {
  classic_.RegisterNamespace(ns, num_layers, layer_block_bytes);
  cake_.RegisterNamespace(ns, num_layers, layer_block_bytes);
}

void AdaptivePolicy::SetServingMode(uint64_t ns, ServingMode mode) {
  const bool budgeted = mode == ServingMode::kBudgeted;
  if (budgeted == Budgeted(ns)) return;
  // CakePolicy tracks only budgeted namespaces: hand it the blocks the
  // namespace already holds, or take them back.
  classic_.ForEachHeld([&](const BlockKey& key, const ClassicPolicy::Held& held) {
    if (key.ns != ns) return;
    if (budgeted) {
      cake_.OnInsert(key, held.tier, held.bytes, 0);
    } else {
      cake_.OnRemove(key, held.tier);
    }
  });
  if (budgeted) {
    budgeted_.insert(ns);
  } else {
    budgeted_.erase(ns);
  }
}

void AdaptivePolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  auto& per_ns = ns_bytes_[key.ns];
  if (const auto old = classic_.Lookup(key)) per_ns[TierIndex(old->tier)] -= old->bytes;
  per_ns[TierIndex(tier)] += bytes;
  classic_.OnInsert(key, tier, bytes, tick);
  if (Budgeted(key.ns)) cake_.OnInsert(key, tier, bytes, tick);
}

void AdaptivePolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  classic_.OnAccess(key, tier, tick);
  if (Budgeted(key.ns)) cake_.OnAccess(key, tier, tick);
}

void AdaptivePolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  if (const auto held = classic_.Lookup(key)) {
    auto& per_ns = ns_bytes_[key.ns];
    per_ns[TierIndex(held->tier)] -= held->bytes;
    per_ns[TierIndex(to)] += held->bytes;
  }
  classic_.OnMove(key, from, to, tick);
  if (Budgeted(key.ns)) cake_.OnMove(key, from, to, tick);
}

void AdaptivePolicy::OnRemove(const BlockKey& key, Tier tier) {
  if (const auto held = classic_.Lookup(key)) {
    ns_bytes_[key.ns][TierIndex(held->tier)] -= held->bytes;
  }
  classic_.OnRemove(key, tier);
  if (Budgeted(key.ns)) cake_.OnRemove(key, tier);
}

std::array<uint64_t, kNumLocalTiers> AdaptivePolicy::CakeBytes() const {
  std::array<uint64_t, kNumLocalTiers> out{};
  for (const auto& [ns, bytes] : ns_bytes_) {
    if (!UsesCake(ns)) continue;
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
  auto cake_ok = [&](const BlockKey& k) { return UsesCake(k.ns) && eligible(k); };
  auto classic_ok = [&](const BlockKey& k) { return !UsesCake(k.ns) && eligible(k); };
  std::vector<BlockKey> victims;
  if (cake_share > 0) victims = cake_.SelectVictims(tier, cake_share, cake_ok);
  uint64_t freed = 0;
  for (const BlockKey& k : victims) freed += BytesOf(k);
  if (freed < bytes_to_free) {
    for (const BlockKey& k : classic_.SelectVictims(tier, bytes_to_free - freed, classic_ok)) {
      victims.push_back(k);
      freed += BytesOf(k);
    }
  }
  if (freed < bytes_to_free) {  // the classic group ran short: CAKE gives the rest
    std::unordered_map<BlockKey, bool, BlockKeyHash> taken;
    for (const BlockKey& k : victims) taken[k] = true;
    auto more_ok = [&](const BlockKey& k) { return cake_ok(k) && !taken.count(k); };
    for (const BlockKey& k : cake_.SelectVictims(tier, bytes_to_free - freed, more_ok)) {
      victims.push_back(k);
      freed += BytesOf(k);
    }
  }
  return victims;
}

bool AdaptivePolicy::Admit(const BlockKey& key, Tier to) {
  return UsesCake(key.ns) ? cake_.Admit(key, to) : classic_.Admit(key, to);
}

std::vector<BlockKey> AdaptivePolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  // CAKE's picks first, then the classic group's hot blocks in what is left.
  std::vector<BlockKey> out = cake_.SelectPromotions(tier, bytes_available);
  uint64_t used = 0;
  for (const BlockKey& k : out) used += BytesOf(k);
  if (used >= bytes_available) return out;
  auto classic_ok = [&](const BlockKey& k) { return !UsesCake(k.ns); };
  for (const BlockKey& k : classic_.SelectPromotions(tier, bytes_available - used, classic_ok)) {
    out.push_back(k);
  }
  return out;
}

std::vector<Exchange> AdaptivePolicy::SelectExchanges(
    Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) {
  auto classic_ok = [&](const BlockKey& k) { return !UsesCake(k.ns) && eligible(k); };
  return classic_.SelectExchanges(tier, max_bytes, classic_ok);
}

void AdaptivePolicy::ReportLayerSignal(uint64_t ns, const LayerSignal& signal) {
  // Exact-serving namespaces are ranked by the classic ranking alone
  // (docs/policy.md §6).
  if (Budgeted(ns)) cake_.ReportLayerSignal(ns, signal);
}

std::vector<int64_t> AdaptivePolicy::LayerBudgets(uint64_t ns, Tier tier) const {
  return UsesCake(ns) ? cake_.LayerBudgets(ns, tier) : std::vector<int64_t>{};
}

}  // namespace kvcake::policy
