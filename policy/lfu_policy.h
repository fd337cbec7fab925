#pragma once

#include "policy/greedy_dual_policy.h"

namespace kvcake::policy {

// LFU with dynamic aging (LFU-DA, Arlitt et al.): per tier, priority
// `L + hits`; victims lowest first; `L` rises to each departing block's
// priority, so a block's old count is worth less and less against new
// blocks (aging). SSD admission as ClassicPolicyOptions (second hit by
// default). Promotions: host blocks accessed again, highest hit count first.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class LfuPolicy final : public GreedyDualPolicy {
 public:
  explicit LfuPolicy(ClassicPolicyOptions options = {}) : GreedyDualPolicy(options) {}
  std::string_view name() const override { return "lfu"; }

 private:
  double Credit(const Entry& e, size_t t) const override;
};

}  // namespace kvcake::policy
