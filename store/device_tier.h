#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace kvcake::store {

// Device tier (T0): one arena of `num_slots` * `slot_bytes` bytes (slot i at
// byte offset i * slot_bytes). The TierManager uses the slots as the pages of
// an ExtentPool and addresses values by byte offset. When built with CUDA
// (KVCAKE_HAVE_CUDA) and a GPU is present at runtime, the arena is a single
// cudaMalloc on `cuda_device`; otherwise it is the *emulated device*: host
// memory with the same interface and semantics, so every path above it runs
// everywhere. The choice is made in Open and logged. Owns the arena (RAII).
//
// Thread-safety: immutable after Open; copies into/out of distinct byte
// ranges may run concurrently; ownership of the ranges is the caller's
// (ExtentPool).
class DeviceTier {
 public:
  struct Options {
    uint64_t num_slots = 0;   // > 0
    uint64_t slot_bytes = 0;  // > 0
    bool allow_cuda = true;   // false forces the emulated device
    int cuda_device = 0;
    Status Validate() const;
  };

  static Result<std::unique_ptr<DeviceTier>> Open(const Options& options);
  // True if Open(options) would make the emulated device (host memory): a
  // build without CUDA, allow_cuda false, or no GPU `cuda_device` at runtime.
  static bool WouldEmulate(const Options& options);
  ~DeviceTier();
  DeviceTier(const DeviceTier&) = delete;
  DeviceTier& operator=(const DeviceTier&) = delete;

  // Device pointer (CUDA) or host pointer (emulated) at byte `offset` of the
  // arena, and of a slot.
  char* PtrAt(uint64_t offset) const { return base_ + offset; }
  char* SlotPtr(int32_t slot) const { return PtrAt(SlotOffset(slot)); }
  uint64_t SlotOffset(int32_t slot) const { return static_cast<uint64_t>(slot) * slot_bytes_; }
  // Host memory -> arena bytes [offset, offset + n) / those bytes -> host
  // memory. Synchronous. INVALID_ARGUMENT past the arena's end, INTERNAL on
  // a CUDA error.
  Status CopyInAt(uint64_t offset, const void* src, uint64_t n) const;
  Status CopyOutAt(uint64_t offset, void* dst, uint64_t n) const;

  // CUDA IPC handle of the arena (cudaIpcMemHandle_t bytes) for same-node
  // engines to open once; UNIMPLEMENTED for the emulated device.
  Result<std::string> IpcHandle() const;

  bool is_cuda() const { return is_cuda_; }
  // The memfd behind the emulated arena (same-node clients map it, as they
  // map the host segment), or -1 (CUDA arena, or memfd unavailable).
  int emulated_fd() const { return emulated_fd_; }
  int cuda_device() const { return cuda_device_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  uint64_t num_slots() const { return num_slots_; }
  uint64_t size() const { return slot_bytes_ * num_slots_; }

 private:
  DeviceTier() = default;
  bool InArena(uint64_t offset, uint64_t n) const;

  char* base_ = nullptr;
  uint64_t slot_bytes_ = 0;
  uint64_t num_slots_ = 0;
  bool is_cuda_ = false;
  int cuda_device_ = 0;
  int emulated_fd_ = -1;
  uint64_t mapped_bytes_ = 0;  // of the memfd mapping; 0 = aligned_alloc
};

}  // namespace kvcake::store
