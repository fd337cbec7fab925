#pragma once

#include <cstdint>
#include <vector>

#include "policy/classic_policy.h"
#include "policy/split_tiers.h"

namespace kvcake::policy {

// S3-FIFO (Yang et al., SOSP'23), per tier: a small FIFO S (about
// `small_fraction` of the tier's bytes), a main FIFO M and a ghost FIFO G of
// keys evicted from S (at most as many as the tier holds). Each block has a
// 2-bit access counter. New blocks enter S, blocks whose key is in G enter M.
// Victims: while S holds more than its share, S's oldest block — moved to M
// (counter reset) if it was accessed in S, evicted (its key into G)
// otherwise, so one-hit wonders leave quickly; else M's oldest — reinserted
// at M's head with its counter decremented if it was accessed, evicted
// otherwise. Blocks moved between tiers enter the new tier's S (M if in its
// G) with their counter. SSD admission as ClassicPolicyOptions. Promotions:
// host blocks accessed again, highest counter first, most recent first.
// Exchanges with a full GPU tier compare recency only: choosing GPU victims
// decrements the residents' counters, which the host candidates' counters
// never are, so counters would favour the candidates on every pass.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class S3FifoPolicy final : public ClassicPolicy {
 public:
  explicit S3FifoPolicy(ClassicPolicyOptions options = {}, double small_fraction = 0.1);

  std::string_view name() const override { return "s3fifo"; }
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override;

  // Whether `key` is in the main FIFO of its tier (tests).
  bool InMain(const BlockKey& key) const;

 private:
  // queue1: S; queue2: M; ghosts1: G.
  enum : uint8_t { kSmall = 1, kMain = 2 };
  static constexpr uint8_t kMaxFreq = 3;
  void Enter(uint32_t id, bool inserted) override;
  void Leave(uint32_t id, Exit why) override;
  void Touch(uint32_t id) override;
  double PromotionValue(const Entry& e) const override;
  double ExchangeValue(const Entry& e) const override { return static_cast<double>(e.last_tick); }

  double small_fraction_;
  SplitTiers<Entry> tiers_;
  uint32_t round_ = 0;  // SelectVictims call, marks the blocks it chose
};

}  // namespace kvcake::policy
