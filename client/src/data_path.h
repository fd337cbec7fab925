#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "client/src/async_state.h"
#include "client/src/chain_roots.h"
#include "kvcake/client.h"
#include "transport/messages.h"

namespace kvcake::internal {

// What one put or get of a data path (ucx_data_path.h, mapped_data_path.h)
// needs of its client: the registered namespace, the client's options, and
// what the client shares with its calls. A plain value made per call; the
// pointed-to parts are thread-safe and outlive the call.
struct DataPathContext {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  uint64_t value_bytes = 0;  // NamespaceGeometry::layer_block_bytes
  std::chrono::milliseconds timeout{0};
  int max_inflight_requests = 1;
  // Gets: verify values against the daemon's checksums and count mismatches
  // here; null: no verification.
  std::atomic<uint64_t>* checksum_failures = nullptr;
  const ChainRoots* roots = nullptr;
  std::shared_ptr<AsyncState> async;

  // A keyed request of this namespace.
  transport::KeyedRequest Request() const {
    transport::KeyedRequest req;
    req.ns_id = ns_id;
    req.fingerprint = fingerprint;
    return req;
  }
  // Adds the keys' chain roots and the hand-off (if any) to a put or a
  // reservation.
  void Decorate(const HandoffTarget* target, transport::KeyedRequest* req) const {
    roots->Fill(req);
    if (target == nullptr) return;
    req->target_node = target->node_id;
    req->handoff_id = target->handoff_id;
    req->handoff_blocks = target->total_blocks;
  }
};

}  // namespace kvcake::internal
