#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace kvcake::store {

// Host tier (T1): one shared-memory segment (memfd, MAP_SHARED) carved into
// `num_slots` fixed slots of `slot_bytes`; slot i is at byte offset
// i * slot_bytes. Huge pages (MFD_HUGETLB) are tried first when asked, with a
// logged fallback to normal pages. With CUDA at runtime the segment is
// registered with cudaHostRegister (pinned) so GPU copies run at full speed.
// Owns the fd and the mapping (RAII).
//
// Thread-safety: the object is immutable after Open; slot contents are
// synchronised by the caller (slot ownership via SlotPool).
class HostTier {
 public:
  struct Options {
    std::string name = "kvcake-host";  // memfd name (visible in /proc/<pid>/fd)
    uint64_t num_slots = 0;            // > 0
    uint64_t slot_bytes = 0;           // > 0, multiple of 4096
    bool huge_pages = true;            // try MFD_HUGETLB first
    bool cuda_register = true;         // cudaHostRegister when built with CUDA and a GPU is present
    Status Validate() const;
  };

  // INVALID_ARGUMENT for bad options; errno-derived errors from memfd/mmap.
  static Result<std::unique_ptr<HostTier>> Open(const Options& options);
  ~HostTier();
  HostTier(const HostTier&) = delete;
  HostTier& operator=(const HostTier&) = delete;

  char* SlotPtr(int32_t slot) const { return base_ + static_cast<uint64_t>(slot) * slot_bytes_; }
  uint64_t SlotOffset(int32_t slot) const { return static_cast<uint64_t>(slot) * slot_bytes_; }
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  uint64_t size() const { return size_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  uint64_t num_slots() const { return num_slots_; }
  bool huge_pages() const { return huge_pages_; }
  bool cuda_registered() const { return cuda_registered_; }

 private:
  HostTier() = default;

  std::string name_;
  int fd_ = -1;
  char* base_ = nullptr;
  uint64_t size_ = 0;  // mapped bytes (>= num_slots * slot_bytes)
  uint64_t slot_bytes_ = 0;
  uint64_t num_slots_ = 0;
  bool huge_pages_ = false;
  bool cuda_registered_ = false;
};

}  // namespace kvcake::store
