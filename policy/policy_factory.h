#pragma once

#include <memory>
#include <string_view>

#include "common/result.h"
#include "policy/cake_policy.h"
#include "policy/lru_policy.h"
#include "policy/policy.h"

namespace kvcake::policy {

// Options of every policy MakePolicy can build.
struct PolicyOptions {
  LruPolicyOptions lru;
  CakePolicyOptions cake;
  // INVALID_ARGUMENT if an inner options struct is invalid.
  Status Validate() const;
};

// Builds a policy by name: "lru", "cake", "cake_uniform" or "adaptive".
// INVALID_ARGUMENT for an unknown name or invalid options.
Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                           const PolicyOptions& options = {});

}  // namespace kvcake::policy
