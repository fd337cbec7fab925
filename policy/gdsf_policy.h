#pragma once

#include "common/status.h"
#include "policy/greedy_dual_policy.h"

namespace kvcake::policy {

// Reload costs GDSF weighs blocks by: a block evicted from tier t costs
// `latency + bytes / bandwidth` of the path that brings it back.
struct GdsfPolicyOptions {
  double host_to_gpu_gbps = 50;  // evicted from the GPU: reloaded from host
  double host_to_gpu_latency_us = 10;
  double ssd_to_host_gbps = 7;  // evicted from host: read back from SSD
  double ssd_latency_us = 100;
  double recompute_gbps = 1;  // dropped from SSD: recomputed (KV bytes per second)
  double recompute_latency_us = 1000;
  // INVALID_ARGUMENT unless bandwidths > 0 and latencies >= 0.
  Status Validate() const;
};

// GreedyDual-Size-Frequency (Cherkasova): per tier, priority
// `L + hits · cost / size`, cost = the reload cost of the tier below
// (GdsfPolicyOptions); victims lowest first, `L` rises to each departing
// block's priority. Large cheap blocks go before small costly ones; with
// equal block sizes in a tier it orders as LFU-DA. SSD admission as
// ClassicPolicyOptions. Promotions: host blocks accessed again, highest
// `hits · cost / size` first.
//
// Thread-safety: not thread-safe (the TierManager serialises calls).
class GdsfPolicy final : public GreedyDualPolicy {
 public:
  explicit GdsfPolicy(ClassicPolicyOptions options = {}, GdsfPolicyOptions costs = {})
      : GreedyDualPolicy(options), costs_(costs) {}
  std::string_view name() const override { return "gdsf"; }

  // Microseconds to bring back `bytes` evicted from tier `t`.
  double ReloadCostUs(size_t t, uint64_t bytes) const;

 private:
  double Credit(const Entry& e, size_t t) const override;

  GdsfPolicyOptions costs_;
};

}  // namespace kvcake::policy
