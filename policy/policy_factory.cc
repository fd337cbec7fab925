#include "policy/policy_factory.h"

#include <string>

#include "policy/adaptive_policy.h"

namespace kvcake::policy {

Status PolicyOptions::Validate() const { return cake.Validate(); }

Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name, const PolicyOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  if (name == "lru") return std::unique_ptr<Policy>(std::make_unique<LruPolicy>(options.lru));
  if (name == "cake") return std::unique_ptr<Policy>(std::make_unique<CakePolicy>(options.cake));
  if (name == "cake_uniform") {
    CakePolicyOptions cake = options.cake;
    cake.uniform_budgets = true;
    return std::unique_ptr<Policy>(std::make_unique<CakePolicy>(cake));
  }
  if (name == "adaptive") {
    return std::unique_ptr<Policy>(std::make_unique<AdaptivePolicy>(options.lru, options.cake));
  }
  return InvalidArgumentError("unknown policy '" + std::string(name) +
                              "' (expected lru, cake, cake_uniform or adaptive)");
}

}  // namespace kvcake::policy
