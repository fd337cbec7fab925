// The chained block hash an engine computes to name its KV blocks
// (docs/hashing.md): kvcake::HashChain, NamespaceSeed and the per-block steps.
// Client::HashTokens computes the same chain for the client's namespace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kvcake/export.h"

namespace kvcake {

// The chained block hash of docs/design.md §2 (frozen; format version 1):
//
//   seed = xxh3_64(namespace salt bytes, seed 0)            (NamespaceSeed)
//   t_i  = xxh3_64(le_u32(tokens[i*B .. (i+1)*B)), seed)
//   h_0  = t_0
//   h_i  = xxh3_64(le_u64(h_{i-1}) ++ le_u64(t_i), seed)     (i > 0)
//
// Only full blocks are hashed; a trailing partial block is ignored. Equal
// prefixes give equal hash chains, so a chain's i-th entry names the whole
// prefix tokens[0 .. (i+1)*B).
//
// Known answer (tests/common/block_hash_test.cc, docs/hashing.md): salt
// "kvcake-kat", B = 4, tokens 0..15 → kBlockHashKnownAnswer below.
// (The seed also matches `printf kvcake-kat | xxhsum -H3`.)
inline constexpr uint64_t kNamespaceSeedKnownAnswer = 0x213b61f564a4546aULL;
inline constexpr uint64_t kBlockHashKnownAnswer[4] = {0xb0a0df122e962485ULL, 0x3e2c0b240c478079ULL,
                                                      0x7569d076b5f5c275ULL, 0xa184adddcf316fe9ULL};

// Seed for a namespace: xxh3_64 of its salt (normally the namespace name).
KVCAKE_API uint64_t NamespaceSeed(std::string_view salt);

// Hash of one block's tokens (t_i above).
KVCAKE_API uint64_t HashBlockTokens(std::span<const uint32_t> tokens, uint64_t seed);
// Chains a block onto its parent: h_i from h_{i-1} and t_i.
KVCAKE_API uint64_t ChainBlockHash(uint64_t parent, uint64_t block_tokens_hash, uint64_t seed);

// Incremental hash chain over a token stream. Thread-compatible.
class KVCAKE_API HashChain {
 public:
  HashChain(uint64_t seed, uint32_t block_tokens);

  // Appends tokens; every completed block appends one hash to hashes().
  void Append(std::span<const uint32_t> tokens);
  const std::vector<uint64_t>& hashes() const { return hashes_; }
  uint32_t block_tokens() const { return block_tokens_; }
  uint64_t seed() const { return seed_; }

  // One-shot: the chain of all full blocks of `tokens`.
  static std::vector<uint64_t> Compute(std::span<const uint32_t> tokens, uint64_t seed,
                                       uint32_t block_tokens);

 private:
  uint64_t seed_;
  uint32_t block_tokens_;
  std::vector<uint32_t> pending_;
  std::vector<uint64_t> hashes_;
};

}  // namespace kvcake
