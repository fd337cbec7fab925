#include "common/block_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace kvcake {
namespace {

inline void PutLe64(uint64_t v, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace

uint64_t NamespaceSeed(std::string_view salt) {
  return XXH3_64bits_withSeed(salt.data(), salt.size(), 0);
}

uint64_t HashBlockTokens(std::span<const uint32_t> tokens, uint64_t seed) {
  if constexpr (std::endian::native == std::endian::little) {
    return XXH3_64bits_withSeed(tokens.data(), tokens.size() * sizeof(uint32_t), seed);
  } else {
    std::vector<unsigned char> buf(tokens.size() * 4);
    for (size_t i = 0; i < tokens.size(); ++i) {
      for (int b = 0; b < 4; ++b) buf[i * 4 + b] = static_cast<unsigned char>(tokens[i] >> (8 * b));
    }
    return XXH3_64bits_withSeed(buf.data(), buf.size(), seed);
  }
}

uint64_t ChainBlockHash(uint64_t parent, uint64_t block_tokens_hash, uint64_t seed) {
  unsigned char buf[16];
  PutLe64(parent, buf);
  PutLe64(block_tokens_hash, buf + 8);
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
