#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace kvcake::internal {

// RAII mapping of one of the daemon's segments for the same-node path: the
// host segment, or the emulated GPU tier's arena (docs/daemon.md). The
// daemon reserves, pins and commits slots in it; the client copies values in
// and out itself.
//
// Thread-safety: immutable after Open; At() may be called from any thread.
class MappedSegment {
 public:
  // Maps `path` read-write if it is the daemon's segment: its inode is
  // `inode` and it holds at least `size` bytes. FAILED_PRECONDITION when it
  // is not, or the open/mmap error.
  static Result<std::unique_ptr<MappedSegment>> Open(const std::string& path, uint64_t size,
                                                     uint64_t inode);
  ~MappedSegment();
  MappedSegment(const MappedSegment&) = delete;
  MappedSegment& operator=(const MappedSegment&) = delete;

  // The slot at `offset` if [offset, offset + n) lies inside the segment.
  char* At(uint64_t offset, uint64_t n) const {
    if (offset > size_ || n > size_ - offset) return nullptr;
    return base_ + offset;
  }

 private:
  MappedSegment(char* base, uint64_t size) : base_(base), size_(size) {}
  char* const base_;
  const uint64_t size_;
};

}  // namespace kvcake::internal
