#pragma once

// BulkCopy: memcpy for large buffers that the copying thread will not read
// again soon (a KV block copied out of the shared host segment into an
// engine's buffer, on its way to a GPU). From kBulkCopyThreshold bytes on, on
// CPUs with AVX2, it writes with non-temporal (streaming) stores: the
// destination's cache lines are not read first (no read-for-ownership) and
// the copy does not evict the cache. kvcake-bench measured it at 1.2-1.3x
// glibc memcpy for 1 MiB blocks whose working set exceeds the last-level
// cache (docs/daemon.md). Below the threshold, or without AVX2, it is
// memcpy. Thread-safe (pure function).

#include <cstddef>

namespace kvcake {

inline constexpr size_t kBulkCopyThreshold = 256 * 1024;

// Copies n bytes from src to dst (non-overlapping), like memcpy.
void BulkCopy(void* dst, const void* src, size_t n);

// True when BulkCopy uses streaming stores on this CPU (for n >= threshold).
bool BulkCopyStreams();

}  // namespace kvcake
