#include "store/checksum.h"

#include "common/copy_and_hash.h"

namespace kvcake::store {

uint64_t BlockChecksum(const void* data, size_t size) { return Xxh3(data, size); }

}  // namespace kvcake::store
