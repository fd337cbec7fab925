#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "policy/classic_policy.h"

namespace kvcake::policy {

// GreedyDualPolicy: the GreedyDual family (Young; Cao & Irani) that LFU with
// dynamic aging and GDSF share. Per tier, a block's priority is
// `L + hits · Credit(block)`, recomputed at every insert, access and move
// into the tier; victims are the lowest priorities first, and when a block
// leaves a tier downwards (demoted or dropped) the tier's inflation value `L`
// rises to its priority. New blocks therefore start above the old ones' stale
// counts: old frequency decays relative to the rising `L` (aging) instead of
// pinning a once-popular block forever.
//
// Layout: per tier a lazy-deletion 8-ary min-heap of (priority, seq, id)
// items; an item is stale once its entry's `seq` moved on (re-queued, left
// the tier). The heap is rebuilt when stale items outnumber live ones.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class GreedyDualPolicy : public ClassicPolicy {
 public:
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;

  // The inflation value `L` of `tier` (tests).
  double Inflation(Tier tier) const { return inflation_[TierIndex(tier)]; }

 protected:
  explicit GreedyDualPolicy(ClassicPolicyOptions options) : ClassicPolicy(options) {}
  // Priority earned per hit by `e` in tier `t` (> 0).
  virtual double Credit(const Entry& e, size_t t) const = 0;

 private:
  struct Item {
    double priority;
    uint64_t seq;
    uint32_t id;
  };
  void Enter(uint32_t id, bool inserted) override { Queue(id); }
  void Leave(uint32_t id, Exit why) override;
  void Touch(uint32_t id) override { Queue(id); }
  double PromotionValue(const Entry& e) const override { return e.hits * Credit(e, e.tier); }
  // A GPU resident's priority against the one a host block would enter the
  // GPU tier with (its current L, the GPU's credit).
  double ExchangeValue(const Entry& e) const override {
    constexpr size_t kGpu = TierIndex(Tier::kDevice);
    return e.tier == kGpu ? e.priority : inflation_[kGpu] + e.hits * Credit(e, kGpu);
  }
  void Queue(uint32_t id);
  bool Valid(const Item& item, size_t t) const;

  std::array<std::vector<Item>, kNumLocalTiers> heaps_;
  std::array<double, kNumLocalTiers> inflation_{};
  uint64_t next_seq_ = 1;
};

}  // namespace kvcake::policy
