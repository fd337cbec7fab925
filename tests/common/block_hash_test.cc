#include "common/block_hash.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <numeric>
#include <vector>

namespace kvcake {
namespace {

std::vector<uint32_t> Iota(uint32_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

// Known-answer vector, published in docs/hashing.md. Changing the scheme must
// change these numbers, which invalidates every block on every SSD.
TEST(BlockHashTest, KnownAnswer) {
  uint64_t seed = NamespaceSeed("kvcake-kat");
  auto hashes = HashChain::Compute(Iota(16), seed, 4);
  ASSERT_EQ(hashes.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(hashes[i], kBlockHashKnownAnswer[i]) << "block " << i;
  EXPECT_EQ(seed, kNamespaceSeedKnownAnswer);
}

// The definition, spelled out with raw xxh3 calls on little-endian bytes.
TEST(BlockHashTest, MatchesDefinition) {
  uint64_t seed = XXH3_64bits_withSeed("ns", 2, 0);
  EXPECT_EQ(seed, NamespaceSeed("ns"));
  unsigned char b0[16], b1[16];
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 4; ++k) {
      b0[i * 4 + k] = static_cast<unsigned char>(static_cast<uint32_t>(i) >> (8 * k));
      b1[i * 4 + k] = static_cast<unsigned char>(static_cast<uint32_t>(i + 4) >> (8 * k));
    }
  }
  uint64_t t0 = XXH3_64bits_withSeed(b0, 16, seed);
  uint64_t t1 = XXH3_64bits_withSeed(b1, 16, seed);
  unsigned char cat[16];
  for (int k = 0; k < 8; ++k) {
    cat[k] = static_cast<unsigned char>(t0 >> (8 * k));
    cat[8 + k] = static_cast<unsigned char>(t1 >> (8 * k));
  }
  uint64_t h1 = XXH3_64bits_withSeed(cat, 16, seed);
  auto hashes = HashChain::Compute(Iota(8), seed, 4);
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_EQ(hashes[0], t0);
  EXPECT_EQ(hashes[1], h1);
}

TEST(BlockHashTest, PartialBlockIgnoredAndIncrementalMatches) {
  uint64_t seed = NamespaceSeed("x");
  auto all = HashChain::Compute(Iota(35), seed, 8);
  EXPECT_EQ(all.size(), 4u);
  HashChain chain(seed, 8);
  auto tokens = Iota(35);
  for (size_t i = 0; i < tokens.size(); i += 3) {
    chain.Append(
        std::span<const uint32_t>(tokens).subspan(i, std::min<size_t>(3, tokens.size() - i)));
  }
  EXPECT_EQ(chain.hashes(), all);
}

TEST(BlockHashTest, PrefixSharingAndSaltIsolation) {
  auto a = Iota(32);
  auto b = a;
  b[20] = 999;  // differs in block 2 (tokens 16..23)
  uint64_t seed = NamespaceSeed("m1");
  auto ha = HashChain::Compute(a, seed, 8), hb = HashChain::Compute(b, seed, 8);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_EQ(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);
  EXPECT_NE(ha[3], hb[3]);  // the chain carries the difference forward
  EXPECT_NE(HashChain::Compute(a, NamespaceSeed("m2"), 8)[0], ha[0]);
}

}  // namespace
}  // namespace kvcake
