#include "policy/lru_policy.h"

namespace kvcake::policy {

// Inserted, moved (demoted or promoted) and accessed blocks all become their
// tier's most recent ones.
void LruPolicy::Enter(uint32_t id, bool inserted) { lru_[pool_[id].tier].PushFront(pool_, id); }

void LruPolicy::Leave(uint32_t id, Exit why) { lru_[pool_[id].tier].Unlink(pool_, id); }

void LruPolicy::Touch(uint32_t id) { lru_[pool_[id].tier].MoveToFront(pool_, id); }

double LruPolicy::PromotionValue(const Entry& e) const { return static_cast<double>(e.last_tick); }

std::vector<BlockKey> LruPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> victims;
  uint64_t freed = 0;
  const BlockList<Entry>& l = lru_[TierIndex(tier)];
  for (uint32_t i = l.tail(); i != kNoEntry && freed < bytes_to_free; i = pool_[i].prev) {
    const Entry& e = pool_[i];
    if (!eligible(e.key)) continue;
    victims.push_back(e.key);
    freed += e.bytes;
  }
  return victims;
}

}  // namespace kvcake::policy
