#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>

#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "transport/messages.h"

namespace kvcake::internal {

// Which chain (root hash) each block hash the client has seen belongs to, so
// puts can tell a clustered daemon under which root to publish them. Bounded:
// forgets everything when full.
//
// Thread-safety: thread-safe.
class ChainRoots {
 public:
  // Remembers `chain` (a hash chain, root first).
  void Remember(std::span<const uint64_t> chain) EXCLUDES(mu_);
  // Sets the roots of `req`'s keys (left empty if none is known).
  void Fill(transport::KeyedRequest* req) const EXCLUDES(mu_);

 private:
  static constexpr size_t kMaxRemembered = 1 << 20;

  mutable Mutex mu_;
  std::unordered_map<uint64_t, uint64_t> roots_ GUARDED_BY(mu_);  // hash -> root
};

}  // namespace kvcake::internal
