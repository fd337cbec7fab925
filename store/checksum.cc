#include "store/checksum.h"

#include <xxhash.h>

namespace kvcake::store {

#if defined(__x86_64__)
// checksum_avx2.cc, compiled with -mavx2.
uint64_t Xxh3Avx2(const void* data, size_t size);

namespace {
bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
}
}  // namespace
#endif

uint64_t BlockChecksum(const void* data, size_t size) {
#if defined(__x86_64__)
  if (HaveAvx2()) return Xxh3Avx2(data, size);
#endif
  return XXH3_64bits(data, size);
}

}  // namespace kvcake::store
