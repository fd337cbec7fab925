#include "common/bulk_copy.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVCAKE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KVCAKE_SANITIZED 1
#endif
#endif

namespace kvcake {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx2"))) void StreamCopy(char* dst, const char* src, size_t n) {
  // Head: bring dst to a 32-byte boundary (streaming stores need it).
  const size_t head = (32 - (reinterpret_cast<uintptr_t>(dst) & 31)) & 31;
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  n -= head;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 64));
    const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 96), d);
  }
  // Streaming stores are weakly ordered: fence before anyone may look.
  _mm_sfence();
  std::memcpy(dst + i, src + i, n - i);
}

[[maybe_unused]] bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
}
#endif

}  // namespace

bool BulkCopyStreams() {
#if defined(__x86_64__) && !defined(KVCAKE_SANITIZED)
  return HaveAvx2();
#else
  return false;  // sanitizers do not see through the intrinsics' stores
#endif
}

void BulkCopy(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  if (n >= kBulkCopyThreshold && BulkCopyStreams()) {
    StreamCopy(static_cast<char*>(dst), static_cast<const char*>(src), n);
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace kvcake
