#pragma once

// CopyAndHash: memcpy that also returns the XXH3-64 hash of the bytes, in one
// pass over the source. The same-node put path copies an engine's block into
// its slot and sends the block's checksum with the commit; hashing the slot
// after a whole-block copy read the block a second time, from L3 or DRAM.
// Here each 64 KiB chunk is hashed as it is read and copied while it is
// still in L1/L2. kvcake-bench, mapped put of 1 MiB values, 12 alternating
// runs each: median 5.19 GB/s (copy, then hash) -> 6.15 GB/s, faster in 11
// of the 12 pairs. Thread-safe (pure function).

#include <cstddef>
#include <cstdint>

namespace kvcake {

// Copies n bytes from src to dst (non-overlapping) and returns
// XXH3_64bits(src, n) (equal to the hash of dst afterwards).
uint64_t CopyAndHash(void* dst, const void* src, size_t n);

// XXH3_64bits(data, size), from an AVX2 build of XXH3 when the CPU has it
// (about twice the distribution's generic build). The checksum of every
// block: taken at commit, checked on reads, stored on SSD.
uint64_t Xxh3(const void* data, size_t size);

}  // namespace kvcake
