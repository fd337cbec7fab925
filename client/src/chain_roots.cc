#include "client/src/chain_roots.h"

namespace kvcake::internal {

void ChainRoots::Remember(std::span<const uint64_t> chain) {
  if (chain.empty()) return;
  MutexLock lock(&mu_);
  if (roots_.size() + chain.size() > kMaxRemembered) roots_.clear();
  for (uint64_t h : chain) roots_.try_emplace(h, chain[0]);
}

void ChainRoots::Fill(transport::KeyedRequest* req) const {
  MutexLock lock(&mu_);
  if (roots_.empty()) return;
  bool any = false;
  req->roots.assign(req->keys.size(), 0);
  for (size_t i = 0; i < req->keys.size(); ++i) {
    auto it = roots_.find(req->keys[i].hash);
    if (it != roots_.end()) {
      req->roots[i] = it->second;
      any = true;
    }
  }
  if (!any) req->roots.clear();
}

}  // namespace kvcake::internal
