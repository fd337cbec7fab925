#include "common/bulk_copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace kvcake {
namespace {

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

// Every size around the threshold and the 128-byte stride, at every
// destination/source misalignment mod 32, copies exactly n bytes: nothing
// before or after the destination range is touched.
TEST(BulkCopyTest, CopiesExactlyAtAllSizesAndAlignments) {
  const size_t sizes[] = {0,
                          1,
                          4095,
                          kBulkCopyThreshold - 1,
                          kBulkCopyThreshold,
                          kBulkCopyThreshold + 1,
                          kBulkCopyThreshold + 127,
                          kBulkCopyThreshold + 129,
                          (1u << 20) + 31};
  uint32_t seed = 1;
  for (size_t n : sizes) {
    for (size_t dst_off : {0, 1, 7, 31}) {
      for (size_t src_off : {0, 3, 32}) {
        std::vector<uint8_t> src = Pattern(n + 64, seed++);
        std::vector<uint8_t> dst(n + 128, 0xee);
        BulkCopy(dst.data() + 64 + dst_off, src.data() + src_off, n);
        ASSERT_EQ(0, std::memcmp(dst.data() + 64 + dst_off, src.data() + src_off, n))
            << "n=" << n << " dst_off=" << dst_off << " src_off=" << src_off;
        for (size_t i = 0; i < 64 + dst_off; ++i) ASSERT_EQ(dst[i], 0xee) << "before, n=" << n;
        for (size_t i = 64 + dst_off + n; i < dst.size(); ++i) {
          ASSERT_EQ(dst[i], 0xee) << "after, n=" << n;
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvcake
