#include "common/copy_and_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace kvcake {

#if defined(__x86_64__)
namespace internal {
// xxh3_avx2.cc, compiled with -mavx2.
uint64_t Xxh3Avx2(const void* data, size_t size);
uint64_t CopyAndHashAvx2(void* dst, const void* src, size_t n, size_t chunk);
}  // namespace internal

namespace {
bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
}
}  // namespace
#endif

uint64_t Xxh3(const void* data, size_t size) {
#if defined(__x86_64__)
  if (HaveAvx2()) return internal::Xxh3Avx2(data, size);
#endif
  return XXH3_64bits(data, size);
}

uint64_t CopyAndHash(void* dst, const void* src, size_t n) {
  constexpr size_t kChunk = 64 * 1024;
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  if (n == 0) return XXH3_64bits(src, 0);  // memcpy must not see a null pointer
  if (n <= kChunk) {
    std::memcpy(d, s, n);
    return Xxh3(d, n);
  }
#if defined(__x86_64__)
  if (HaveAvx2()) return internal::CopyAndHashAvx2(dst, src, n, kChunk);
#endif
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state) {  // no memory for the 600-byte state: copy, then hash the copy
    std::memcpy(d, s, n);
    return XXH3_64bits(d, n);
  }
  XXH3_64bits_reset(state.get());
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t len = std::min(kChunk, n - off);
    XXH3_64bits_update(state.get(), s + off, len);
    std::memcpy(d + off, s + off, len);
  }
  return XXH3_64bits_digest(state.get());
}

}  // namespace kvcake
