#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/src/mapped_segment.h"
#include "common/result.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake::internal {

// One connection to the daemon and what was discovered over it: the RPC
// client and, on the same node, the mappings of the daemon's segments. A
// client replaces its connection as a whole when it reconnects. Calls and
// asynchronous operations hold the connection they started on, so its
// mappings stay valid while they copy; only the client releases it for good
// (an RpcClient must not be destroyed on its own I/O thread, where
// completion callbacks drop their references).
//
// Thread-safety: thread-safe; the members are set before the connection is
// shared, except the two flags (atomics).
struct Connection {
  ~Connection();

  // False once a call on it failed with UNAVAILABLE or the RPC client lost
  // its endpoint (the daemon went away).
  bool Healthy() const { return !failed.load(std::memory_order_relaxed) && rpc->connected(); }
  // Records a call's status: UNAVAILABLE marks the connection broken.
  void Note(const Status& s) {
    if (s.code() == StatusCode::kUnavailable) failed.store(true, std::memory_order_relaxed);
  }

  // One synchronous call bounded by `timeout`; the reply's meta, or its error
  // with the op's name as context. UNAVAILABLE marks the connection broken.
  Result<std::vector<uint8_t>> Call(transport::RpcOp op, const std::string& meta,
                                    std::chrono::milliseconds timeout);

  // Copies a pinned block of the GPU-tier arena at `offset` into `dst`;
  // false if this connection cannot read that arena.
  bool CopyFromDeviceSegment(uint64_t offset, void* dst, uint64_t size) const;

  std::unique_ptr<transport::RpcClient> rpc;
  std::unique_ptr<MappedSegment> segment;         // the daemon's host segment
  std::unique_ptr<MappedSegment> device_segment;  // emulated GPU-tier arena
#ifdef KVCAKE_HAVE_CUDA
  char* device_ipc_base = nullptr;  // CUDA GPU-tier arena opened by IPC handle
  uint64_t device_ipc_bytes = 0;
#endif
  std::atomic<bool> failed{false};
  // The namespace is registered over this connection (the daemon authorizes
  // each connection separately).
  std::atomic<bool> registered{false};
};

}  // namespace kvcake::internal
