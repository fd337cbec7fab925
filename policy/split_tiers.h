#pragma once

// SplitTiers: per local tier, two intrusive queues and two ghost sets, for
// the policies that split a tier in two (ARC: T1/T2 and B1/B2; S3-FIFO:
// small/main and its ghost). An entry's `queue` member (1 or 2) says which
// queue of its `tier` holds it. Ghost sets allocate on first use, so an
// unused one costs nothing. Thread-compatible (the owner serialises calls).

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/tier.h"
#include "policy/block_list.h"
#include "policy/ghost_set.h"

namespace kvcake::policy {

template <typename Entry>
class SplitTiers {
 public:
  struct PerTier {
    explicit PerTier(size_t ghost_entries) : ghosts1(ghost_entries), ghosts2(ghost_entries) {}
    BlockList<Entry> queue1, queue2;
    GhostSet ghosts1, ghosts2;
    double target = 0;  // a policy's target size, bytes (ARC's p)
  };

  explicit SplitTiers(size_t ghost_entries) {
    for (auto& t : tiers_) t = std::make_unique<PerTier>(ghost_entries);
  }
  PerTier& operator[](size_t t) { return *tiers_[t]; }
  const PerTier& operator[](size_t t) const { return *tiers_[t]; }
  // The queue holding `e` (by e.tier and e.queue).
  BlockList<Entry>& QueueOf(const Entry& e) {
    PerTier& t = *tiers_[e.tier];
    return e.queue == 2 ? t.queue2 : t.queue1;
  }

 private:
  std::array<std::unique_ptr<PerTier>, kNumLocalTiers> tiers_;
};

}  // namespace kvcake::policy
