#include "common/block_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/coding.h"

namespace kvcake {

uint64_t NamespaceSeed(std::string_view salt) {
  return XXH3_64bits_withSeed(salt.data(), salt.size(), 0);
}

uint64_t HashBlockTokens(std::span<const uint32_t> tokens, uint64_t seed) {
  if constexpr (std::endian::native == std::endian::little) {
    return XXH3_64bits_withSeed(tokens.data(), tokens.size() * sizeof(uint32_t), seed);
  } else {
    std::vector<unsigned char> buf(tokens.size() * 4);
    for (size_t i = 0; i < tokens.size(); ++i) {
      EncodeFixed<uint32_t>(&buf[i * 4], tokens[i]);
    }
    return XXH3_64bits_withSeed(buf.data(), buf.size(), seed);
  }
}

uint64_t ChainBlockHash(uint64_t parent, uint64_t block_tokens_hash, uint64_t seed) {
  unsigned char buf[16];
  EncodeFixed<uint64_t>(buf, parent);
  EncodeFixed<uint64_t>(buf + 8, block_tokens_hash);
  return XXH3_64bits_withSeed(buf, sizeof(buf), seed);
}

HashChain::HashChain(uint64_t seed, uint32_t block_tokens)
    : seed_(seed), block_tokens_(block_tokens == 0 ? 1 : block_tokens) {
  pending_.reserve(block_tokens_);
}

void HashChain::Append(std::span<const uint32_t> tokens) {
  size_t i = 0;
  while (i < tokens.size()) {
    size_t take = std::min<size_t>(block_tokens_ - pending_.size(), tokens.size() - i);
    if (pending_.empty() && take == block_tokens_) {
      uint64_t t = HashBlockTokens(tokens.subspan(i, take), seed_);
      hashes_.push_back(hashes_.empty() ? t : ChainBlockHash(hashes_.back(), t, seed_));
      i += take;
      continue;
    }
    pending_.insert(pending_.end(), tokens.begin() + i, tokens.begin() + i + take);
    i += take;
    if (pending_.size() == block_tokens_) {
      uint64_t t = HashBlockTokens(pending_, seed_);
      hashes_.push_back(hashes_.empty() ? t : ChainBlockHash(hashes_.back(), t, seed_));
      pending_.clear();
    }
  }
}

std::vector<uint64_t> HashChain::Compute(std::span<const uint32_t> tokens, uint64_t seed,
                                         uint32_t block_tokens) {
  HashChain chain(seed, block_tokens);
  chain.Append(tokens);
  return chain.hashes();
}

}  // namespace kvcake
