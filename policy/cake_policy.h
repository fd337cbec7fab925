#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/block_key.h"
#include "common/status.h"
#include "common/tier.h"
#include "policy/key_index.h"
#include "policy/policy.h"

namespace kvcake::policy {

struct CakePolicyOptions {
  // Priority of a block in its (namespace, layer, tier) queue is
  // GreedyDual's L + score_weight * s, with s its rolling normalised score
  // (1.0 = an average block of its prompt; blocks never scored count as 1.0).
  // 0 turns the queue into plain LRU; any positive value orders the same
  // (GreedyDual is scale-invariant), so it is an on/off switch. >= 0.
  double score_weight = 1.0;
  // Weight a of the newest report in a block's rolling score (the decode-time
  // score window; see accumulate_scores). In (0, 1].
  double score_ema = 0.2;
  // true: rolling-window sum s = (1 - a) * s_old + s_new, so a block that
  // keeps drawing attention turn after turn accumulates credit
  // (GreedyDual-Size-Frequency style, up to s_new / a); false: rolling
  // average s = a * s_new + (1 - a) * s_old.
  bool accumulate_scores = true;
  // Pinned blocks of the latest report of a layer (block 0, the tail block,
  // the window blocks) are never victims until the layer's next report. With
  // boost_pinned they also get the prompt's top score (they then outlive the
  // pin); without, they keep their own score.
  bool boost_pinned = false;
  // false: no report pins at all (the owner's eligibility filter already
  // protects the blocks of requests in flight).
  bool pin_reported = true;
  // Weight of the newest report in a layer's rolling preference P_l. (0, 1].
  double preference_ema = 0.2;
  // Share of each layer's budget reserved for needle blocks (the block that
  // holds a KV head's top token): up to this many are raised to the prompt's
  // top score. [0, 1].
  double needle_reserve = 0.1;
  // Ablation "cake_uniform": CAKE scores, but equal layer preferences.
  bool uniform_budgets = false;
  // Score meaning. false: a report's block scores are divided by the prompt's
  // mean (1.0 = an average block of its prompt; unscored blocks count 1.0).
  // true: divided by their sum, so a block's score is its share of the
  // layer's prefix attention, i.e. the attention mass it serves when its
  // prefix is reused (blocks of short prompts are worth more per block);
  // unscored blocks count 0.
  bool absolute_scores = true;
  // true: victims of a tier are the lowest-priority blocks over all layers of
  // a namespace (one GreedyDual L per namespace and tier), so the layers'
  // shares follow the blocks' values; the water-filled budgets are then only
  // exported (LayerBudgets) and steer promotions. false: the layer most over
  // its budget gives up its lowest-priority block first (hard budgets).
  bool global_ranking = false;
  // Tier-cache adaptation of CAKE's indicator: a block's score says how much
  // attention it draws *if its prefix is used again*; what it is worth in a
  // tier is that times the chance that the prefix comes back. With
  // learn_reuse, each namespace learns online, per class (the block's access
  // count 1..reuse_buckets, the last bucket meaning "or more", times its
  // distance from its prompt's end, 0..reuse_position_buckets - 1, the last
  // meaning "or more": the tail block is usually partial and never recurs),
  // and a block's priority uses score * estimate(class):
  //  - reuse_gain (default): the share reported at the blocks' next access
  //    per unit of rolling score at their report (0 when never accessed
  //    again), i.e. the expected attention served per unit of score;
  //  - otherwise: the fraction of the class's blocks that were accessed again.
  // Classes start at (and sparse classes shrink towards) the namespace's
  // pooled estimate with weight reuse_prior (in reports).
  bool learn_reuse = true;
  uint32_t reuse_buckets = 8;           // >= 1
  uint32_t reuse_position_buckets = 2;  // >= 1; buckets * position buckets <= 255
  bool reuse_gain = true;
  double reuse_prior = 16;  // >= 0
  // Namespaces that never reported statistics: a block leaving host memory is
  // admitted to SSD after this many hits (2 = second-hit admission). >= 1.
  uint32_t ssd_admission_hits = 2;

  // INVALID_ARGUMENT when a field is out of range.
  Status Validate() const;
};

// CakePolicy: CAKE-guided cascading tier policy (docs/design.md §4).
//
// Per namespace and tier, the tier's capacity in layer-blocks is water-filled
// over the layers by their rolling preference P_l (WaterFillBudgets; equal
// preferences for namespaces without statistics or with uniform_budgets).
// SelectVictims takes blocks from the layers most over their budget, lowest
// priority first; SelectPromotions offers the best blocks of the tier below
// to layers under their budget (blocks climb back when their rolling score
// rises). Within a layer, blocks are ordered by GreedyDual priority
// L + w * s: recency through the inflation value L (raised to the priority
// of each demoted block), importance through the normalised score s from
// ReportLayerSignal. Pinned blocks of a layer's latest report (block 0, the
// tail block and the window blocks) are not victims until its next report;
// needle-guard blocks get the prompt's top score.
// A namespace that never reported statistics behaves as LRU with second-hit
// SSD admission.
//
// Thread-safety: not thread-safe; the owner serialises all calls.
class CakePolicy final : public Policy {
 public:
  explicit CakePolicy(CakePolicyOptions options = {});
  CakePolicy(const CakePolicy&) = delete;  // index_ points into pool_
  CakePolicy& operator=(const CakePolicy&) = delete;

  std::string_view name() const override;
  void SetTierCapacity(Tier tier, uint64_t bytes) override;
  void RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) override;
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) override;
  void OnAccess(const BlockKey& key, Tier tier, uint64_t tick) override;
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) override;
  void OnRemove(const BlockKey& key, Tier tier) override;
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;
  bool Admit(const BlockKey& key, Tier to) override;
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override;
  void ReportLayerSignal(uint64_t ns, const LayerSignal& signal) override;
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const override;

  // True once `ns` reported statistics.
  bool HasStatistics(uint64_t ns) const;
  // Number of blocks tracked in `tier` (all namespaces).
  size_t Size(Tier tier) const;
  // Rolling normalised score of `key` (1.0 if never scored, -1 if unknown).
  double Score(const BlockKey& key) const;
  // The learned estimate (see learn_reuse) for a block of `ns` reported with
  // `hits` accesses so far, `from_end` blocks before its prompt's last one.
  double ReuseProbability(uint64_t ns, uint32_t hits, uint32_t from_end) const;

 private:
  // A queue entry; stale (lazily deleted) when the entry's seq moved on.
  struct Item {
    double priority;
    uint64_t seq;
    uint32_t idx;  // into pool_
  };
  // Min-heap order: lowest priority (then oldest) on top.
  struct ItemAfter {
    bool operator()(const Item& a, const Item& b) const {
      return a.priority != b.priority ? a.priority > b.priority : a.seq > b.seq;
    }
  };
  // Max-heap order: highest priority (then newest) on top.
  struct ItemBefore {
    bool operator()(const Item& a, const Item& b) const { return ItemAfter{}(b, a); }
  };
  struct Entry {
    BlockKey key;
    double priority = 0;
    uint64_t seq = 0;
    uint64_t bytes = 0;
    float score = 1.0f;
    uint32_t hits = 0;
    Tier tier = Tier::kDevice;
    bool live = false;    // slot in use
    bool queued = false;  // in its queue; false: in pending_ (not (re-)queued yet)
    // Its queue's `best` heap holds an item with its current seq (at most one).
    bool in_best = false;
    // Returned by SelectVictims (taken off its queue, in pending_ in case the
    // owner does not move it); a later Dequeue still applies its priority to L.
    bool selected = false;
    uint32_t pend = 0xffffffffu;  // index of its latest push in pending_
    uint32_t reported_hits = 0;   // hits at its latest report
    float reuse = 1.0f;           // learned P(reuse) of its class at its latest report
    uint8_t reuse_class = 0xff;   // class of its latest report (0xff: none)
  };
  // Online reuse statistics per class (learn_reuse).
  struct ReuseStats {
    std::vector<double> trials;  // blocks reported in the class
    std::vector<double> reused;  // ... of which were accessed again later
    std::vector<double> basis;   // sum of their rolling scores when reported
    std::vector<double> served;  // sum of the shares reported at their next access
    double total_trials = 0;
    double total_reused = 0;
    double total_basis = 0;
    double total_served = 0;
  };
  struct LayerTier {
    std::vector<Item> heap;  // lazy-deletion 8-ary min-heap (ItemAfter): victims
    // The same items, lazy-deletion 8-ary max-heap (ItemBefore): promotion
    // candidates of the tier above, best first.
    std::vector<Item> best;
    int64_t queued = 0;    // live items in heap
    double inflation = 0;  // GreedyDual L (per layer unless global_ranking)
    int64_t count = 0;     // blocks of this layer in this tier (queued or pending)
  };
  struct NsState {
    uint64_t layer_block_bytes = 0;
    bool has_stats = false;
    std::vector<double> preference;  // rolling P_l; < 0: not reported yet
    std::vector<std::array<LayerTier, kNumLocalTiers>> layers;
    std::array<double, kNumLocalTiers> tier_inflation{};  // L with global_ranking
    std::array<std::vector<int64_t>, kNumLocalTiers> budgets;
    std::vector<std::vector<uint64_t>> pinned;  // [layer]: hashes pinned by the latest report
    bool budgets_dirty = true;
    ReuseStats reuse;
  };

  bool Valid(const Item& item) const {
    const Entry& e = pool_[item.idx];
    return e.queued && e.seq == item.seq;
  }
  // Pops stale items off the top of `lt`'s heap.
  void PruneTop(LayerTier& lt);
  // Drops a stale item of a `best` heap.
  void DropBest(const Item& item) {
    Entry& e = pool_[item.idx];
    if (e.seq == item.seq) e.in_best = false;
  }
  double& Inflation(NsState& st, uint32_t layer, int tier);
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr uint8_t kNoClass = 0xff;
  // Pool slot of `key`, or kNone.
  uint32_t Lookup(const BlockKey& key) const { return index_.Find(key); }
  Entry* Find(const BlockKey& key);
  const Entry* Find(const BlockKey& key) const;
  NsState& Ns(uint64_t ns, uint32_t min_layers);
  const NsState* FindNs(uint64_t ns) const;
  bool IsPinned(const BlockKey& key) const;
  // Queues pool_[idx] at L + w * score, or at its previous (priority, seq) when
  // keep_priority (a victim the owner did not move goes back where it was).
  void Enqueue(NsState& st, uint32_t idx, bool keep_priority = false);
  void Dequeue(NsState& st, Entry& e, bool inflate);
  // Defers the (re-)queueing of pool_[idx] (not queued) to the next Flush, at
  // the end of pending_: inserts, reloads and accesses are usually followed by
  // their prompt's report, which queues the block once.
  void Defer(uint32_t idx);
  void ComputeBudgets(NsState& st) const;
  // Re-queues blocks accessed since the last decision (OnAccess defers the
  // re-queue so that an access followed by its prompt's report costs one
  // queue insertion, not two).
  void Flush();
  std::vector<int64_t> BudgetsFor(const NsState& st, int tier) const;
  uint8_t ReuseClass(uint32_t hits, uint32_t from_end) const;
  double ReuseEstimate(const ReuseStats& rs, uint8_t cls) const;
  // On a report of `e` (new share `share`, rolling score `rolled`): if it was
  // accessed since its previous report, that report's class scores a reuse
  // that served `share`; then `e` enters its new class.
  void LearnReuse(ReuseStats& rs, Entry& e, uint32_t from_end, double share, double rolled);

  CakePolicyOptions options_;
  std::array<uint64_t, kNumLocalTiers> capacity_{};
  std::array<size_t, kNumLocalTiers> size_{};
  std::vector<Entry> pool_;     // dense entries
  std::vector<uint32_t> free_;  // free pool_ slots
  // key -> pool_ slot.
  struct PoolKey {
    const std::vector<Entry>* pool;
    const BlockKey& operator()(uint32_t idx) const { return (*pool)[idx].key; }
  };
  KeyIndex<PoolKey> index_{PoolKey{&pool_}};
  std::unordered_map<uint64_t, NsState> ns_;
  uint64_t next_seq_ = 0;
  std::vector<uint32_t> pending_;       // pool_ slots to (re-)queue at the next Flush
  std::vector<uint32_t> report_slots_;  // ReportLayerSignal's scratch
};

}  // namespace kvcake::policy
