#include "policy/gdsf_policy.h"

#include <algorithm>

namespace kvcake::policy {

Status GdsfPolicyOptions::Validate() const {
  if (!(host_to_gpu_gbps > 0) || !(ssd_to_host_gbps > 0) || !(recompute_gbps > 0)) {
    return InvalidArgumentError("gdsf: bandwidths must be > 0");
  }
  if (!(host_to_gpu_latency_us >= 0) || !(ssd_latency_us >= 0) || !(recompute_latency_us >= 0)) {
    return InvalidArgumentError("gdsf: latencies must be >= 0");
  }
  return Status::Ok();
}

double GdsfPolicy::ReloadCostUs(size_t t, uint64_t bytes) const {
  const double b = static_cast<double>(bytes);
  switch (t) {
    case 0:
      return costs_.host_to_gpu_latency_us + b / (costs_.host_to_gpu_gbps * 1e3);
    case 1:
      return costs_.ssd_latency_us + b / (costs_.ssd_to_host_gbps * 1e3);
    default:
      return costs_.recompute_latency_us + b / (costs_.recompute_gbps * 1e3);
  }
}

// Cost per MiB, so priorities stay in a readable range.
double GdsfPolicy::Credit(const Entry& e, size_t t) const {
  const double mib = std::max<double>(1, static_cast<double>(e.bytes)) / (1 << 20);
  return ReloadCostUs(t, e.bytes) / mib;
}

}  // namespace kvcake::policy
