#include "policy/cake_policy.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <tuple>

#include "policy/cake_math.h"
#include "policy/dary_heap.h"

namespace kvcake::policy {

Status CakePolicyOptions::Validate() const {
  if (!std::isfinite(score_weight) || score_weight < 0) {
    return InvalidArgumentError("score_weight must be finite and >= 0");
  }
  if (!(score_ema > 0 && score_ema <= 1))
    return InvalidArgumentError("score_ema must be in (0, 1]");
  if (!(preference_ema > 0 && preference_ema <= 1)) {
    return InvalidArgumentError("preference_ema must be in (0, 1]");
  }
  if (!(needle_reserve >= 0 && needle_reserve <= 1)) {
    return InvalidArgumentError("needle_reserve must be in [0, 1]");
  }
  if (ssd_admission_hits < 1) return InvalidArgumentError("ssd_admission_hits must be >= 1");
  if (reuse_buckets < 1 || reuse_position_buckets < 1 ||
      reuse_buckets * reuse_position_buckets > 255) {
    return InvalidArgumentError(
        "reuse_buckets and reuse_position_buckets must be >= 1, their product <= 255");
  }
  if (!std::isfinite(reuse_prior) || reuse_prior < 0) {
    return InvalidArgumentError("reuse_prior must be finite and >= 0");
  }
  return Status::Ok();
}

CakePolicy::CakePolicy(CakePolicyOptions options) : options_(options) {}

std::string_view CakePolicy::name() const {
  return options_.uniform_budgets ? "cake_uniform" : "cake";
}

void CakePolicy::SetTierCapacity(Tier tier, uint64_t bytes) {
  capacity_[TierIndex(tier)] = bytes;
  for (auto& [id, st] : ns_) st.budgets_dirty = true;
}

CakePolicy::NsState& CakePolicy::Ns(uint64_t ns, uint32_t min_layers) {
  NsState& st = ns_[ns];
  if (st.layers.size() < min_layers) {
    st.layers.resize(min_layers);
    st.preference.resize(min_layers, -1.0);
    st.pinned.resize(min_layers);
    st.budgets_dirty = true;
  }
  return st;
}

const CakePolicy::NsState* CakePolicy::FindNs(uint64_t ns) const {
  auto it = ns_.find(ns);
  return it == ns_.end() ? nullptr : &it->second;
}

void CakePolicy::RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) {
  NsState& st = Ns(ns, num_layers);
  st.layer_block_bytes = layer_block_bytes;
  st.budgets_dirty = true;
}

CakePolicy::Entry* CakePolicy::Find(const BlockKey& key) {
  const uint32_t idx = Lookup(key);
  return idx == kNone ? nullptr : &pool_[idx];
}

const CakePolicy::Entry* CakePolicy::Find(const BlockKey& key) const {
  const uint32_t idx = Lookup(key);
  return idx == kNone ? nullptr : &pool_[idx];
}

double& CakePolicy::Inflation(NsState& st, uint32_t layer, int tier) {
  return options_.global_ranking ? st.tier_inflation[tier] : st.layers[layer][tier].inflation;
}

void CakePolicy::PruneTop(LayerTier& lt) {
  while (!lt.heap.empty() && !Valid(lt.heap.front())) {
    HeapPop(lt.heap, ItemAfter{});
  }
}

void CakePolicy::Enqueue(NsState& st, uint32_t idx, bool keep_priority) {
  Entry& e = pool_[idx];
  const int t = TierIndex(e.tier);
  LayerTier& lt = st.layers[e.key.layer][t];
  if (!keep_priority) {
    e.priority = Inflation(st, e.key.layer, t) + options_.score_weight *
                                                     static_cast<double>(e.score) *
                                                     static_cast<double>(e.reuse);
    e.seq = next_seq_++;
  }
  e.queued = true;
  e.selected = false;
  ++lt.queued;
  // Compact when stale items dominate (keeps the heap O(live)).
  if (lt.heap.size() >= 64 && lt.heap.size() > 2 * static_cast<size_t>(lt.queued)) {
    std::erase_if(lt.heap, [&](const Item& item) { return !Valid(item); });
    HeapMake(lt.heap, ItemAfter{});
  }
  HeapPush(lt.heap, Item{e.priority, e.seq, idx}, ItemAfter{});
  // A victim the owner did not move comes back with its old item, which
  // `best` may still hold.
  if (!keep_priority) e.in_best = false;
  if (e.in_best) return;
  if (lt.best.size() >= 64 && lt.best.size() > 2 * static_cast<size_t>(lt.queued)) {
    std::erase_if(lt.best, [&](const Item& item) {
      if (Valid(item)) return false;
      DropBest(item);
      return true;
    });
    HeapMake(lt.best, ItemBefore{});
  }
  HeapPush(lt.best, Item{e.priority, e.seq, idx}, ItemBefore{});
  e.in_best = true;
}

void CakePolicy::Dequeue(NsState& st, Entry& e, bool inflate) {
  if (!e.queued && !e.selected) return;
  const int t = TierIndex(e.tier);
  if (e.queued) {
    e.queued = false;  // its heap item is now stale
    --st.layers[e.key.layer][t].queued;
  }
  e.selected = false;
  if (inflate) {
    double& l = Inflation(st, e.key.layer, t);
    l = std::max(l, e.priority);
  }
}

void CakePolicy::Defer(uint32_t idx) {
  pool_[idx].pend = static_cast<uint32_t>(pending_.size());
  pending_.push_back(idx);
}

void CakePolicy::Flush() {
  for (size_t i = 0; i < pending_.size(); ++i) {
    const uint32_t idx = pending_[i];
    Entry& e = pool_[idx];
    // Only an entry's latest push counts (it was accessed again later).
    if (!e.live || e.queued || e.pend != i) continue;
    Enqueue(ns_[e.key.ns], idx, /*keep_priority=*/e.selected);
  }
  for (uint32_t idx : pending_) pool_[idx].pend = kNone;
  pending_.clear();
}

void CakePolicy::OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t tick) {
  NsState& st = Ns(key.ns, key.layer + 1);
  if (st.layer_block_bytes == 0) st.layer_block_bytes = bytes;
  uint32_t idx = Lookup(key);
  if (idx == kNone) {
    if (free_.empty()) {
      idx = static_cast<uint32_t>(pool_.size());
      pool_.emplace_back();
    } else {
      idx = free_.back();
      free_.pop_back();
    }
    Entry& e = pool_[idx];
    e = Entry{};
    e.key = key;
    e.live = true;
    e.score = options_.absolute_scores ? 0.0f : 1.0f;
    index_.Insert(key, idx);
  } else {
    Entry& e = pool_[idx];
    Dequeue(st, e, /*inflate=*/false);
    --size_[TierIndex(e.tier)];
    --st.layers[key.layer][TierIndex(e.tier)].count;
  }
  Entry& e = pool_[idx];
  e.bytes = bytes;
  e.tier = tier;
  ++e.hits;
  ++size_[TierIndex(tier)];
  ++st.layers[key.layer][TierIndex(tier)].count;
  Defer(idx);
  st.budgets_dirty = true;
}

void CakePolicy::OnAccess(const BlockKey& key, Tier tier, uint64_t tick) {
  const uint32_t idx = Lookup(key);
  if (idx == kNone) return;
  Entry& e = pool_[idx];
  Dequeue(ns_[key.ns], e, /*inflate=*/false);  // also clears `selected`
  Defer(idx);
  ++e.hits;
}

void CakePolicy::OnMove(const BlockKey& key, Tier from, Tier to, uint64_t tick) {
  const uint32_t idx = Lookup(key);
  if (idx == kNone) return;
  NsState& st = ns_[key.ns];
  Entry& e = pool_[idx];
  const Tier from_tier = e.tier;
  // Leaving downwards is GreedyDual's eviction: it raises that queue's L.
  Dequeue(st, e, /*inflate=*/TierIndex(to) > TierIndex(e.tier));
  --size_[TierIndex(e.tier)];
  --st.layers[key.layer][TierIndex(e.tier)].count;
  e.tier = to;
  ++size_[TierIndex(to)];
  ++st.layers[key.layer][TierIndex(to)].count;
  if (TierIndex(to) < TierIndex(from_tier)) {
    Defer(idx);  // a reload: its access and report follow
  } else {
    Enqueue(st, idx);
  }
  st.budgets_dirty = true;
}

void CakePolicy::OnRemove(const BlockKey& key, Tier tier) {
  const uint32_t idx = Lookup(key);
  if (idx == kNone) return;
  NsState& st = ns_[key.ns];
  Entry& e = pool_[idx];
  Dequeue(st, e, /*inflate=*/true);
  --size_[TierIndex(e.tier)];
  --st.layers[key.layer][TierIndex(e.tier)].count;
  e.live = false;
  index_.Erase(key);
  free_.push_back(idx);
  st.budgets_dirty = true;
}

uint8_t CakePolicy::ReuseClass(uint32_t hits, uint32_t from_end) const {
  const uint32_t k = std::clamp<uint32_t>(hits, 1, options_.reuse_buckets);
  const uint32_t d = std::min<uint32_t>(from_end, options_.reuse_position_buckets - 1);
  return static_cast<uint8_t>(d * options_.reuse_buckets + (k - 1));
}

double CakePolicy::ReuseEstimate(const ReuseStats& rs, uint8_t cls) const {
  const double w = options_.reuse_prior;
  const double trials = cls < rs.trials.size() ? rs.trials[cls] : 0.0;
  if (options_.reuse_gain) {
    // Served score at the next access per unit of reported score. The pooled
    // ratio starts at 1 (scores taken at face value), the classes at the
    // pooled ratio, each prior weighing w reports of the mean reported score.
    const double mean_basis =
        rs.total_trials > 0 && rs.total_basis > 0 ? rs.total_basis / rs.total_trials : 1.0;
    const double pooled_den = rs.total_basis + w * mean_basis;
    const double pooled = pooled_den > 0 ? (rs.total_served + w * mean_basis) / pooled_den : 1.0;
    const double basis = cls < rs.basis.size() ? rs.basis[cls] : 0.0;
    const double served = cls < rs.served.size() ? rs.served[cls] : 0.0;
    const double den = basis + w * mean_basis;
    return den > 0 ? (served + w * mean_basis * pooled) / den : pooled;
  }
  // Pooled rate with a uniform Beta(1, 1) prior, then the class's rate shrunk
  // towards it with reuse_prior pseudo-trials.
  const double pooled = (rs.total_reused + 1) / (rs.total_trials + 2);
  const double reused = cls < rs.reused.size() ? rs.reused[cls] : 0.0;
  return trials + w > 0 ? (reused + w * pooled) / (trials + w) : pooled;
}

void CakePolicy::LearnReuse(ReuseStats& rs, Entry& e, uint32_t from_end, double share,
                            double rolled) {
  if (rs.trials.empty()) {
    const size_t classes = size_t{options_.reuse_buckets} * options_.reuse_position_buckets;
    rs.trials.assign(classes, 0.0);
    rs.reused.assign(classes, 0.0);
    rs.basis.assign(classes, 0.0);
    rs.served.assign(classes, 0.0);
  }
  if (e.reuse_class == kNoClass || e.hits != e.reported_hits) {
    // Accessed since its previous report: that report's class was right to
    // expect it back, and this report's share is what it served.
    if (e.reuse_class != kNoClass) {
      rs.reused[e.reuse_class] += 1;
      rs.total_reused += 1;
      rs.served[e.reuse_class] += share;
      rs.total_served += share;
    }
    e.reuse_class = ReuseClass(e.hits, from_end);
    e.reported_hits = e.hits;
    rs.trials[e.reuse_class] += 1;
    rs.total_trials += 1;
    rs.basis[e.reuse_class] += rolled;
    rs.total_basis += rolled;
  }
}

double CakePolicy::ReuseProbability(uint64_t ns, uint32_t hits, uint32_t from_end) const {
  const NsState* st = FindNs(ns);
  const ReuseStats empty;
  return ReuseEstimate(st != nullptr ? st->reuse : empty, ReuseClass(hits, from_end));
}

std::vector<int64_t> CakePolicy::BudgetsFor(const NsState& st, int tier) const {
  const size_t n = st.layers.size();
  if (n == 0 || st.layer_block_bytes == 0 || capacity_[tier] == 0) return {};
  const int64_t total = static_cast<int64_t>(capacity_[tier] / st.layer_block_bytes);
  // A layer can hold at most the blocks it has in this tier and below.
  std::vector<int64_t> caps(n, 0);
  for (size_t l = 0; l < n; ++l) {
    for (int t = tier; t < kNumLocalTiers; ++t) {
      caps[l] += st.layers[l][t].count;
    }
  }
  std::vector<double> pref(n, 1.0);
  if (st.has_stats && !options_.uniform_budgets) {
    double sum = 0;
    int seen = 0;
    for (double p : st.preference) {
      if (p >= 0) {
        sum += p;
        ++seen;
      }
    }
    const double fill = seen > 0 ? sum / seen : 1.0;  // layers not reported yet
    for (size_t l = 0; l < n; ++l) pref[l] = st.preference[l] >= 0 ? st.preference[l] : fill;
  }
  auto budgets = WaterFillBudgets(pref, caps, total);
  if (budgets.ok()) return *std::move(budgets);
  // Fewer blocks than layers with data: share equally (some layers get 0).
  std::vector<int64_t> out(n, 0);
  int64_t left = total;
  for (size_t l = 0; l < n && left > 0; ++l) {
    if (caps[l] > 0) {
      out[l] = 1;
      --left;
    }
  }
  return out;
}

void CakePolicy::ComputeBudgets(NsState& st) const {
  if (!st.budgets_dirty) return;
  for (int t = 0; t < kNumLocalTiers; ++t) st.budgets[t] = BudgetsFor(st, t);
  st.budgets_dirty = false;
}

std::vector<BlockKey> CakePolicy::SelectVictims(
    Tier tier, uint64_t bytes_to_free, const std::function<bool(const BlockKey&)>& eligible) {
  std::vector<BlockKey> victims;
  if (bytes_to_free == 0) return victims;
  Flush();
  const int t = TierIndex(tier);
  // One cursor per (namespace, layer) queue; a max-heap picks the queue most
  // over its budget (ties, and always with global_ranking: the lower front
  // priority, i.e. the older block). Ineligible items taken off a queue's
  // heap while walking it are pushed back afterwards.
  struct Cursor {
    int64_t over;
    double front;
    LayerTier* lt;
  };
  std::vector<Cursor> cursors;
  for (auto& [id, st] : ns_) {
    ComputeBudgets(st);
    const std::vector<int64_t>& budgets = st.budgets[t];
    for (size_t l = 0; l < st.layers.size(); ++l) {
      LayerTier& lt = st.layers[l][t];
      PruneTop(lt);
      if (lt.heap.empty()) continue;
      // Without budgets (capacity unknown) every queue competes on priority.
      const int64_t over = budgets.empty() || options_.global_ranking ? 0 : lt.count - budgets[l];
      cursors.push_back(Cursor{over, lt.heap.front().priority, &lt});
    }
  }
  auto worse = [&](size_t a, size_t b) {
    const Cursor& x = cursors[a];
    const Cursor& y = cursors[b];
    return std::tie(x.over, y.front) < std::tie(y.over, x.front);
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(worse)> heap(worse);
  for (size_t i = 0; i < cursors.size(); ++i) heap.push(i);
  std::vector<std::pair<LayerTier*, Item>> taken;
  auto take = [&](LayerTier& lt) {
    taken.emplace_back(&lt, lt.heap.front());
    HeapPop(lt.heap, ItemAfter{});
    PruneTop(lt);
  };
  uint64_t freed = 0;
  while (freed < bytes_to_free && !heap.empty()) {
    const size_t i = heap.top();
    heap.pop();
    Cursor& c = cursors[i];
    LayerTier& lt = *c.lt;
    while (!lt.heap.empty()) {
      const Entry& e = pool_[lt.heap.front().idx];
      if (eligible(e.key) && !IsPinned(e.key)) break;
      take(lt);
    }
    if (lt.heap.empty()) continue;
    // The victim leaves its queue now (the caller normally moves or removes
    // it next); if it is not moved, the next Flush re-queues it.
    const uint32_t idx = lt.heap.front().idx;
    Entry& e = pool_[idx];
    victims.push_back(e.key);
    freed += e.bytes;
    HeapPop(lt.heap, ItemAfter{});
    e.queued = false;
    e.selected = true;
    --lt.queued;
    Defer(idx);
    PruneTop(lt);
    --c.over;
    if (!lt.heap.empty()) {
      c.front = lt.heap.front().priority;
      heap.push(i);
    }
  }
  for (auto& [lt, item] : taken) {
    HeapPush(lt->heap, item, ItemAfter{});
  }
  return victims;
}

bool CakePolicy::IsPinned(const BlockKey& key) const {
  const NsState* st = FindNs(key.ns);
  if (st == nullptr || key.layer >= st->pinned.size()) return false;
  const auto& p = st->pinned[key.layer];
  return std::find(p.begin(), p.end(), key.hash) != p.end();
}

bool CakePolicy::Admit(const BlockKey& key, Tier to) {
  if (to != Tier::kSsd) return true;
  const NsState* st = FindNs(key.ns);
  if (st != nullptr && st->has_stats) return true;  // the cascade keeps everything it can
  const Entry* e = Find(key);
  return e != nullptr && e->hits >= options_.ssd_admission_hits;
}

std::vector<BlockKey> CakePolicy::SelectPromotions(Tier tier, uint64_t bytes_available) {
  std::vector<BlockKey> out;
  const int t = TierIndex(tier);
  if (t + 1 >= kNumLocalTiers || bytes_available == 0) return out;
  Flush();
  struct Candidate {
    float score;
    uint64_t seq;
    BlockKey key;
    uint64_t bytes;
  };
  std::vector<Candidate> candidates;
  std::vector<Item> below;  // one layer's candidates, off its `best` heap
  uint64_t min_bytes = ~uint64_t{0};
  for (auto& [id, st] : ns_) {
    if (!st.has_stats) continue;
    ComputeBudgets(st);
    const std::vector<int64_t>& budgets = st.budgets[t];
    if (budgets.empty()) continue;
    for (size_t l = 0; l < st.layers.size(); ++l) {
      int64_t room = budgets[l] - st.layers[l][t].count;
      if (room <= 0) continue;
      // The layer's `room` highest-priority blocks of the tier below (they
      // are ranked by score next), popped and pushed back.
      std::vector<Item>& best = st.layers[l][t + 1].best;
      below.clear();
      while (below.size() < static_cast<uint64_t>(room) && !best.empty()) {
        const Item top = best.front();
        HeapPop(best, ItemBefore{});
        if (Valid(top)) {
          below.push_back(top);
        } else {
          DropBest(top);
        }
      }
      for (const Item& item : below) {
        const Entry& e = pool_[item.idx];
        candidates.push_back(Candidate{e.score, e.seq, e.key, e.bytes});
        min_bytes = std::min(min_bytes, e.bytes);
        HeapPush(best, item, ItemBefore{});
      }
    }
  }
  // Highest score (then newest) first, each that still fits; only the best
  // few can, so they come off a heap instead of a sort of all candidates.
  auto lower = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.seq < b.seq;
  };
  std::make_heap(candidates.begin(), candidates.end(), lower);
  uint64_t used = 0;
  for (auto end = candidates.end();
       end != candidates.begin() && bytes_available - used >= min_bytes; --end) {
    std::pop_heap(candidates.begin(), end, lower);
    const Candidate& c = *(end - 1);
    if (used + c.bytes > bytes_available) continue;
    used += c.bytes;
    out.push_back(c.key);
  }
  return out;
}

void CakePolicy::ReportLayerSignal(uint64_t ns, const LayerSignal& signal) {
  const size_t n = std::min(signal.block_hashes.size(), signal.block_scores.size());
  NsState& st = Ns(ns, signal.layer + 1);
  st.has_stats = true;
  if (std::isfinite(signal.preference) && signal.preference >= 0) {
    double& p = st.preference[signal.layer];
    p = p < 0 ? signal.preference
              : options_.preference_ema * signal.preference + (1 - options_.preference_ema) * p;
  }
  st.budgets_dirty = true;
  if (n == 0) return;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::max(0.0, signal.block_scores[i]);
  if (!(sum > 0) || !std::isfinite(sum)) return;
  const double norm = options_.absolute_scores ? sum : sum / static_cast<double>(n);
  double top = 0;
  for (size_t i = 0; i < n; ++i) top = std::max(top, signal.block_scores[i] / norm);
  // Needle guard: up to needle_reserve of the layer's device budget (as of
  // the last victim selection; computed now only if there is none yet).
  if (!signal.needle_blocks.empty() && st.budgets[0].size() <= signal.layer) ComputeBudgets(st);
  const auto& dev = st.budgets[0];
  const size_t needle_cap =
      dev.size() <= signal.layer
          ? signal.needle_blocks.size()
          : static_cast<size_t>(options_.needle_reserve * static_cast<double>(dev[signal.layer]));
  std::vector<bool> guarded(n, false);
  for (size_t j = 0; j < signal.needle_blocks.size() && j < needle_cap; ++j) {
    if (signal.needle_blocks[j] < n) guarded[signal.needle_blocks[j]] = true;
  }
  const size_t window = std::min<size_t>(n, std::max<uint32_t>(signal.window_blocks, 1));
  std::vector<uint64_t>& pinned = st.pinned[signal.layer];
  pinned.clear();
  if (options_.pin_reported) {
    pinned.push_back(signal.block_hashes[0]);
    for (size_t i = n - window; i < n; ++i) pinned.push_back(signal.block_hashes[i]);
  }
  if (options_.boost_pinned) {
    guarded[0] = true;
    for (size_t i = n - window; i < n; ++i) guarded[i] = true;
  }
  const double a = options_.score_ema;
  // Pass 1: roll the scores and update the reuse statistics; pass 2 prices
  // every block of the report with the same estimates and queues it.
  report_slots_.clear();
  for (size_t i = 0; i < n; ++i) {
    const BlockKey key{ns, signal.block_hashes[i], signal.layer};
    const uint32_t idx = Lookup(key);
    if (idx == kNone) continue;
    Entry& e = pool_[idx];
    double s = std::max(0.0, signal.block_scores[i]) / norm;
    if (guarded[i]) s = top;
    const double old = static_cast<double>(e.score);
    const double rolled = options_.accumulate_scores ? (1 - a) * old + s : a * s + (1 - a) * old;
    if (options_.learn_reuse) {
      LearnReuse(st.reuse, e, static_cast<uint32_t>(n - 1 - i), s, rolled);
    }
    e.score = static_cast<float>(rolled);
    report_slots_.push_back(idx);
  }
  for (uint32_t idx : report_slots_) {
    Entry& e = pool_[idx];
    if (options_.learn_reuse) e.reuse = static_cast<float>(ReuseEstimate(st.reuse, e.reuse_class));
    Dequeue(st, e, /*inflate=*/false);
    Enqueue(st, idx);
  }
}

std::vector<int64_t> CakePolicy::LayerBudgets(uint64_t ns, Tier tier) const {
  auto it = ns_.find(ns);
  if (it == ns_.end()) return {};
  return BudgetsFor(it->second, TierIndex(tier));
}

bool CakePolicy::HasStatistics(uint64_t ns) const {
  const NsState* st = FindNs(ns);
  return st != nullptr && st->has_stats;
}

size_t CakePolicy::Size(Tier tier) const { return size_[TierIndex(tier)]; }

double CakePolicy::Score(const BlockKey& key) const {
  const Entry* e = Find(key);
  return e == nullptr ? -1.0 : static_cast<double>(e->score);
}

}  // namespace kvcake::policy
