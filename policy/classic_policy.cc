#include "policy/classic_policy.h"

#include <algorithm>

namespace kvcake::policy {

ClassicPolicy::ClassicPolicy(ClassicPolicyOptions options)
    : options_(options), ghosts_(options.ghost_entries) {}

void ClassicPolicy::SetTierCapacity(Tier tier, uint64_t bytes) {
  capacity_[TierIndex(tier)] = bytes;
}

void ClassicPolicy::Attach(uint32_t id) {
  const Entry& e = pool_[id];
  ++count_[e.tier];
  bytes_[e.tier] += e.bytes;
}

void ClassicPolicy::Detach(uint32_t id) {
  Entry& e = pool_[id];
  if (e.hot_prev != kNoEntry || hot_.head() == id) hot_.Unlink(pool_, id);
  --count_[e.tier];
  bytes_[e.tier] -= e.bytes;
}

void ClassicPolicy::UpdateHot(uint32_t id) {
  const Entry& e = pool_[id];
  const bool hot = options_.promote_after_accesses > 0 && e.tier == TierIndex(Tier::kHost) &&
                   e.tier_accesses >= options_.promote_after_accesses;
  const bool listed = e.hot_prev != kNoEntry || hot_.head() == id;
  if (listed) hot_.Unlink(pool_, id);
  if (hot) hot_.PushFront(pool_, id);
}

void ClassicPolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  uint32_t id = entries_.Find(key);
  const bool inserted = id == kNoEntry;
  uint32_t hits = 1;
  if (!inserted) {
    hits = pool_[id].hits + 1;
    Leave(id, Exit::kReinserted);
    Detach(id);
  } else {
    if (ghosts_.Erase(key)) hits = 2;  // seen before: at least its second hit
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      id = static_cast<uint32_t>(pool_.size());
      pool_.emplace_back();
    }
    pool_[id] = Entry{};
    pool_[id].key = key;
    entries_.Insert(key, id);
  }
  Entry& e = pool_[id];
  e.bytes = bytes;
  e.hits = hits;
  e.tier = static_cast<uint8_t>(TierIndex(tier));
  e.tier_accesses = 0;
  e.last_tick = tick;
  Attach(id);
  Enter(id, inserted);
}

void ClassicPolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  const uint32_t id = entries_.Find(key);
  if (id == kNoEntry) return;
  Entry& e = pool_[id];
  ++e.hits;
  ++e.tier_accesses;
  e.last_tick = tick;
  Touch(id);
  UpdateHot(id);
}

void ClassicPolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  const uint32_t id = entries_.Find(key);
  if (id == kNoEntry) return;
  const size_t t = TierIndex(to);
  Leave(id, t > pool_[id].tier ? Exit::kDemoted : Exit::kPromoted);
  Detach(id);
  Entry& e = pool_[id];
  e.tier = static_cast<uint8_t>(t);
  e.tier_accesses = 0;
  Attach(id);
  Enter(id, false);
}

void ClassicPolicy::OnRemove(const BlockKey& key, Tier tier) {
  const uint32_t id = entries_.Find(key);
  if (id == kNoEntry) return;
  Leave(id, Exit::kRemoved);
  Detach(id);
  pool_[id].tier = kFree;
  entries_.Erase(key);
  free_.push_back(id);
  ghosts_.Add(key);
}

bool ClassicPolicy::Admit(const BlockKey& key, Tier to) {
  if (to != Tier::kSsd) return true;
  const uint32_t id = entries_.Find(key);
  const uint32_t hits = id == kNoEntry ? 0 : pool_[id].hits;
  return hits >= options_.ssd_admission_hits;
}

std::vector<BlockKey> ClassicPolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  return SelectPromotions(tier, bytes_available, [](const BlockKey&) { return true; });
}

std::vector<BlockKey> ClassicPolicy::SelectPromotions(
    Tier tier, uint64_t bytes_available, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> out;
  if (tier != Tier::kDevice || bytes_available == 0 || hot_.empty()) return out;
  struct Candidate {
    double value;
    uint32_t rank;  // position in the hot list (most recently accessed first)
    uint32_t id;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(hot_.size());
  uint64_t min_bytes = ~uint64_t{0};
  for (uint32_t i = hot_.head(); i != kNoEntry; i = pool_[i].hot_next) {
    if (!eligible(pool_[i].key)) continue;
    candidates.push_back({PromotionValue(pool_[i]), static_cast<uint32_t>(candidates.size()), i});
    min_bytes = std::min(min_bytes, std::max<uint64_t>(1, pool_[i].bytes));
  }
  // Only the best few can fit: sort just those (the hot list can be long
  // while the GPU tier has room for a batch).
  const size_t k = std::min<uint64_t>(candidates.size(), bytes_available / min_bytes + 1);
  std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end(),
                    [](const Candidate& a, const Candidate& b) {
                      return a.value != b.value ? a.value > b.value : a.rank < b.rank;
                    });
  candidates.resize(k);
  uint64_t used = 0;
  for (const Candidate& c : candidates) {
    const Entry& e = pool_[c.id];
    if (used + e.bytes > bytes_available) continue;
    used += e.bytes;
    out.push_back(e.key);
  }
  return out;
}

std::vector<Exchange> ClassicPolicy::SelectExchanges(
    Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<Exchange> out;
  if (tier != Tier::kDevice || max_bytes == 0 || hot_.empty() || count(TierIndex(tier)) == 0) {
    return out;
  }
  const std::vector<BlockKey> up = SelectPromotions(tier, max_bytes, eligible);
  if (up.empty()) return out;
  uint64_t up_bytes = 0;
  for (const BlockKey& k : up) up_bytes += pool_[Find(k)].bytes;
  const std::vector<BlockKey> down = SelectVictims(tier, up_bytes, eligible);
  // Best candidate against least valuable victim: once a candidate is not
  // worth more than its victim, the later (lesser) ones are not either.
  for (size_t i = 0; i < up.size() && i < down.size(); ++i) {
    const uint32_t c = Find(up[i]);
    const uint32_t v = Find(down[i]);
    if (v == kNoEntry || !(ExchangeValue(pool_[c]) > ExchangeValue(pool_[v]))) break;
    out.push_back({up[i], down[i]});
  }
  return out;
}

size_t ClassicPolicy::Size(Tier tier) const { return count_[TierIndex(tier)]; }

std::optional<ClassicPolicy::Held> ClassicPolicy::Lookup(const BlockKey& key) const {
  const uint32_t id = entries_.Find(key);
  if (id == kNoEntry) return std::nullopt;
  return Held{static_cast<Tier>(pool_[id].tier), pool_[id].bytes};
}

void ClassicPolicy::ForEachHeld(const std::function<void(const BlockKey&, const Held&)>& fn) const {
  for (const Entry& e : pool_) {
    if (e.tier != kFree) fn(e.key, Held{static_cast<Tier>(e.tier), e.bytes});
  }
}

}  // namespace kvcake::policy
