#include "common/block_key.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace kvcake {
namespace {

TEST(BlockKeyTest, RoundTrip) {
  BlockKey k{0x0102030405060708ULL, 0xa1a2a3a4a5a6a7a8ULL, 77};
  EncodedBlockKey e = EncodeBlockKey(k);
  auto d = DecodeBlockKey(std::string_view(e.data(), e.size()));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, k);
}

TEST(BlockKeyTest, EncodingIsBigEndianAndStable) {
  BlockKey k{0x0102030405060708ULL, 0x1112131415161718ULL, 0x21222324};
  EncodedBlockKey e = EncodeBlockKey(k);
  const unsigned char want[20] = {1,    2,    3,    4,    5,    6,    7,    8,    0x11, 0x12,
                                  0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24};
  EXPECT_EQ(std::string(e.data(), e.size()), std::string(reinterpret_cast<const char*>(want), 20));
  EXPECT_EQ(EncodeNamespacePrefix(k.ns), std::string(e.data(), 8));
}

TEST(BlockKeyTest, OrderPreserving) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    BlockKey a{rng() % 4, rng() % 8, static_cast<uint32_t>(rng() % 3)};
    BlockKey b{rng() % 4, rng() % 8, static_cast<uint32_t>(rng() % 3)};
    auto ea = EncodeBlockKey(a), eb = EncodeBlockKey(b);
    std::string sa(ea.data(), 20), sb(eb.data(), 20);
    EXPECT_EQ(a < b, sa < sb);
  }
}

TEST(BlockKeyTest, HashSeparatesPermutedSmallFields) {
  BlockKeyHash h;
  EXPECT_NE(h(BlockKey{0, 2, 0}), h(BlockKey{0, 0, 1}));
  EXPECT_NE(h(BlockKey{1, 0, 0}), h(BlockKey{0, 1, 0}));
  EXPECT_NE(h(BlockKey{0, 1, 0}), h(BlockKey{0, 0, 1}));
}

TEST(BlockKeyTest, WrongSizeRejected) {
  EXPECT_EQ(DecodeBlockKey("short").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeBlockKey(std::string(21, 'x')).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake
