#include "policy/greedy_dual_policy.h"

#include <algorithm>

#include "policy/dary_heap.h"

namespace kvcake::policy {
namespace {

struct ItemAfter {
  template <typename Item>
  bool operator()(const Item& a, const Item& b) const {
    return a.priority != b.priority ? a.priority > b.priority : a.seq > b.seq;
  }
};

}  // namespace

bool GreedyDualPolicy::Valid(const Item& item, size_t t) const {
  const Entry& e = pool_[item.id];
  return e.tier == t && e.seq == item.seq;
}

void GreedyDualPolicy::Queue(uint32_t id) {
  Entry& e = pool_[id];
  const size_t t = e.tier;
  e.priority = inflation_[t] + e.hits * Credit(e, t);
  e.seq = next_seq_++;
  std::vector<Item>& heap = heaps_[t];
  HeapPush(heap, Item{e.priority, e.seq, id}, ItemAfter{});
  if (heap.size() > 2 * count(t) + 64) {  // mostly stale: rebuild
    std::erase_if(heap, [&](const Item& item) { return !Valid(item, t); });
    HeapMake(heap, ItemAfter{});
  }
}

void GreedyDualPolicy::Leave(uint32_t id, Exit why) {
  Entry& e = pool_[id];
  if (why == Exit::kDemoted || why == Exit::kRemoved) {
    inflation_[e.tier] = std::max(inflation_[e.tier], e.priority);
  }
  e.seq = 0;  // its heap item is stale now
}

std::vector<BlockKey> GreedyDualPolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  const size_t t = TierIndex(tier);
  std::vector<Item>& heap = heaps_[t];
  std::vector<BlockKey> victims;
  std::vector<Item> popped;  // valid items, pushed back: they leave when moved
  uint64_t freed = 0;
  while (freed < bytes_to_free && !heap.empty()) {
    const Item top = heap.front();
    HeapPop(heap, ItemAfter{});
    if (!Valid(top, t)) continue;
    popped.push_back(top);
    const Entry& e = pool_[top.id];
    if (!eligible(e.key)) continue;
    victims.push_back(e.key);
    freed += e.bytes;
  }
  for (const Item& item : popped) HeapPush(heap, item, ItemAfter{});
  return victims;
}

}  // namespace kvcake::policy
