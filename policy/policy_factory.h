#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/cake_policy.h"
#include "policy/classic_policy.h"
#include "policy/gdsf_policy.h"
#include "policy/policy.h"

namespace kvcake::policy {

// Options of every policy MakePolicy can build.
struct PolicyOptions {
  // Admission and promotion of every classic baseline (lru, lfu, arc,
  // s3fifo, gdsf) and of adaptive's namespaces not governed by CAKE.
  ClassicPolicyOptions lru;
  GdsfPolicyOptions gdsf;
  double s3fifo_small_fraction = 0.1;  // in (0, 1)
  CakePolicyOptions cake;
  // INVALID_ARGUMENT if an inner options struct is invalid.
  Status Validate() const;
};

// The names MakePolicy accepts, comma-separated ("lru, lfu, ...").
std::string PolicyNameList();
// Whether MakePolicy accepts `name`.
bool IsPolicyName(std::string_view name);

// Builds a policy by name: "lru", "lfu", "arc", "s3fifo", "gdsf", "cake",
// "cake_uniform" or "adaptive".
// INVALID_ARGUMENT for an unknown name or invalid options.
Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                           const PolicyOptions& options = {});

}  // namespace kvcake::policy
