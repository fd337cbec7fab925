#include "policy/lfu_policy.h"

namespace kvcake::policy {

double LfuPolicy::Credit(const Entry& e, size_t t) const { return 1.0; }

}  // namespace kvcake::policy
