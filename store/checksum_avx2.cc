// XXH3 compiled for AVX2 (store/CMakeLists.txt adds -mavx2 to this file only;
// called only after a runtime CPU check in checksum.cc).
#if defined(__x86_64__)
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>

namespace kvcake::store {

uint64_t Xxh3Avx2(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace kvcake::store
#endif
