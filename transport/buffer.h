#pragma once

// Scatter/gather buffer descriptors used by the RPC API. They do not own
// memory; whoever passes them keeps the bytes alive for the documented time.
// Plain values; thread-compatible.

#include <cstddef>
#include <cstdint>
#include <span>

namespace kvcake::transport {

// Bytes the transport reads (request payloads, reply payloads).
struct ConstBuffer {
  const void* data = nullptr;
  size_t size = 0;
};

// Bytes the transport writes into (rendezvous targets, reply receive buffers).
struct MutableBuffer {
  void* data = nullptr;
  size_t size = 0;
};

inline uint64_t TotalSize(std::span<const ConstBuffer> bufs) {
  uint64_t n = 0;
  for (const auto& b : bufs) n += b.size;
  return n;
}
inline uint64_t TotalSize(std::span<const MutableBuffer> bufs) {
  uint64_t n = 0;
  for (const auto& b : bufs) n += b.size;
  return n;
}

}  // namespace kvcake::transport
