#pragma once

#include <cstddef>
#include <cstdint>

namespace kvcake::store {

// Checksum of a block payload: XXH3_64bits (seed 0) over the bytes. Stored in
// the index and in the SSD value header; verified on every SSD read. Uses an
// AVX2 build of XXH3 when the CPU has it (kvcake::Xxh3). Thread-safe.
uint64_t BlockChecksum(const void* data, size_t size);

}  // namespace kvcake::store
