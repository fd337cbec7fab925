#include "common/copy_and_hash.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace kvcake {
namespace {

// At sizes around the 64 KiB chunk and at odd offsets, the copy is exact
// (nothing outside the destination range is touched) and the hash equals the
// one-shot XXH3 of the bytes.
TEST(CopyAndHashTest, CopiesExactlyAndHashesLikeOneShotXxh3) {
  const size_t sizes[] = {0, 1, 4096, 65535, 65536, 65537, 3 * 65536 + 17, (1u << 20) + 31};
  uint32_t x = 12345;
  for (size_t n : sizes) {
    for (size_t off : {0, 5}) {
      std::vector<uint8_t> src(n + off + 1), dst(n + 2 * 64, 0xee);  // never empty
      for (auto& b : src) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<uint8_t>(x);
      }
      const uint64_t h = CopyAndHash(dst.data() + 64, src.data() + off, n);
      EXPECT_EQ(h, XXH3_64bits(src.data() + off, n)) << "n=" << n << " off=" << off;
      EXPECT_EQ(std::memcmp(dst.data() + 64, src.data() + off, n), 0) << "n=" << n;
      for (size_t i = 0; i < 64; ++i) {
        ASSERT_EQ(dst[i], 0xee) << "byte before the range, n=" << n;
        ASSERT_EQ(dst[64 + n + i], 0xee) << "byte after the range, n=" << n;
      }
    }
  }
}

}  // namespace
}  // namespace kvcake
