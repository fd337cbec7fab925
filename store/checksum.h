#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>

namespace kvcake::store {

// Checksum of a block payload: XXH3_64bits (seed 0) over the bytes. Stored in
// the index and in the SSD value header; verified on every SSD read.
inline uint64_t BlockChecksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace kvcake::store
