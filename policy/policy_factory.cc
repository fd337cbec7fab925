#include "policy/policy_factory.h"

#include <string>

#include "policy/adaptive_policy.h"
#include "policy/arc_policy.h"
#include "policy/dueling_policy.h"
#include "policy/lfu_policy.h"
#include "policy/lru_policy.h"
#include "policy/s3fifo_policy.h"

namespace kvcake::policy {
namespace {

constexpr std::string_view kNames[] = {"lru",  "lfu",          "arc",      "s3fifo", "gdsf",
                                       "cake", "cake_uniform", "adaptive", "dueling"};

}  // namespace

std::string PolicyNameList() {
  std::string out;
  for (std::string_view n : kNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool IsPolicyName(std::string_view name) {
  for (std::string_view n : kNames) {
    if (n == name) return true;
  }
  return false;
}

Status PolicyOptions::Validate() const {
  RETURN_IF_ERROR(cake.Validate());
  RETURN_IF_ERROR(gdsf.Validate());
  if (!(s3fifo_small_fraction > 0 && s3fifo_small_fraction < 1)) {
    return InvalidArgumentError("s3fifo_small_fraction must be in (0, 1)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Policy>> MakePolicy(std::string_view name, const PolicyOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  if (name == "lru") return std::unique_ptr<Policy>(std::make_unique<LruPolicy>(options.lru));
  if (name == "lfu") return std::unique_ptr<Policy>(std::make_unique<LfuPolicy>(options.lru));
  if (name == "arc") return std::unique_ptr<Policy>(std::make_unique<ArcPolicy>(options.lru));
  if (name == "s3fifo") {
    return std::unique_ptr<Policy>(
        std::make_unique<S3FifoPolicy>(options.lru, options.s3fifo_small_fraction));
  }
  if (name == "gdsf") {
    return std::unique_ptr<Policy>(std::make_unique<GdsfPolicy>(options.lru, options.gdsf));
  }
  if (name == "cake") return std::unique_ptr<Policy>(std::make_unique<CakePolicy>(options.cake));
  if (name == "cake_uniform") {
    CakePolicyOptions cake = options.cake;
    cake.uniform_budgets = true;
    return std::unique_ptr<Policy>(std::make_unique<CakePolicy>(cake));
  }
  if (name == "adaptive") {
    return std::unique_ptr<Policy>(
        std::make_unique<AdaptivePolicy>(options.lru, options.gdsf, options.cake));
  }
  if (name == "dueling") {
    return std::unique_ptr<Policy>(std::make_unique<DuelingPolicy>(options.lru, options.gdsf));
  }
  return InvalidArgumentError("unknown policy '" + std::string(name) + "' (expected " +
                              PolicyNameList() + ")");
}

}  // namespace kvcake::policy
