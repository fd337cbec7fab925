#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/block_key.h"
#include "common/tier.h"
#include "policy/serving_mode.h"

namespace kvcake::policy {

// CAKE signals an engine reports for one layer of one prompt (docs/design.md §4).
struct LayerSignal {
  uint32_t layer = 0;
  double preference = 0;               // P_l = H^(1/tau1) * V^(1/tau2)
  std::vector<uint64_t> block_hashes;  // the prompt's chained block hashes, in order
  std::vector<double> block_scores;    // same length: sum of token indicators per block
  uint32_t window_blocks = 1;          // trailing blocks covering the last S_w tokens (pinned)
  // Optional needle guard: indices of the blocks holding each KV head's top
  // token (NeedleBlocks in policy/cake_math.h). Empty: none reported.
  std::vector<uint32_t> needle_blocks;
};

// One exchange SelectExchanges proposes: `promote` (in the tier below) moves
// up into the tier in place of `demote`, which moves one tier down.
struct Exchange {
  BlockKey promote;
  BlockKey demote;
};

// Policy decides *which* blocks move between tiers; the TierManager (store/)
// carries the decisions out. Implementations are pure: no I/O, no threads, no
// clocks of their own — time arrives as a logical `tick` from the caller.
//
// Thread-safety: not thread-safe. The owner serialises all calls (the
// TierManager calls it under its own mutex).
class Policy {
 public:
  virtual ~Policy() = default;

  virtual std::string_view name() const = 0;

  // Capacity of `tier` in bytes; called at start and on config changes.
  virtual void SetTierCapacity(Tier tier, uint64_t bytes) = 0;
  // Geometry of a namespace, needed for per-layer budgets. Idempotent.
  virtual void RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) {}
  // How the namespace's engine serves (policy/serving_mode.h); kExact until
  // set. Policies that treat every namespace alike ignore it.
  virtual void SetServingMode(uint64_t ns, ServingMode mode) {}

  // Lifecycle events for committed blocks.
  virtual void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) = 0;
  virtual void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) = 0;
  virtual void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) = 0;
  virtual void OnRemove(const BlockKey& key, Tier tier) = 0;

  // Chooses blocks to move out of `tier` (demote one tier down; from kSsd:
  // drop), least valuable first, until at least `bytes_to_free` bytes would be
  // freed or no eligible block remains. Only keys for which `eligible(key)` is
  // true (committed, unpinned, not in flight) may be returned.
  virtual std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) = 0;

  // Whether a block leaving tier `to - 1` should be admitted into `to`
  // (false: drop it instead). LRU admits to SSD on a second hit only.
  virtual bool Admit(const BlockKey& key, Tier to) = 0;

  // Blocks currently in a lower tier that deserve to move up into `tier`,
  // most valuable first, fitting in `bytes_available`. Default: none.
  virtual std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) { return {}; }

  // For a full `tier`: blocks of the tier below that the policy values more
  // than blocks of `tier` it would evict, paired best candidate with least
  // valuable victim first, promotions totalling at most `max_bytes`. Only
  // keys for which `eligible(key)` is true may be returned. A candidate must
  // be strictly more valuable than its victim, and a block demoted by an
  // exchange must earn its place among the candidates again, so a steady
  // access pattern stops exchanging. Default: none (a full tier keeps its
  // blocks until demotions above its high watermark make room).
  virtual std::vector<Exchange> SelectExchanges(
      Tier tier, uint64_t max_bytes, const std::function<bool(const BlockKey&)>& eligible) {
    return {};
  }

  // CAKE signals from an engine. Policies without statistics ignore them.
  virtual void ReportLayerSignal(uint64_t ns, const LayerSignal& signal) {}

  // Per-layer budgets in blocks of `ns` in `tier` (for /metrics); empty when
  // the policy has none.
  virtual std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const { return {}; }
  // For policies that switch between rankings: the one `tier`'s victims
  // follow now (e.g. "lru", "gdsf"; for /v1/status). Empty: the policy's own.
  virtual std::string_view Ranking(Tier tier) const { return {}; }
};

}  // namespace kvcake::policy
