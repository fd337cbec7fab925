#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kvcake {

// Identifies one value: one layer of one block of one namespace (docs/design.md §2).
// `ns` is the namespace id (NamespaceSeed of the namespace name), `hash` the
// chained block hash, `layer` the transformer layer. Plain value type.
struct BlockKey {
  uint64_t ns = 0;
  uint64_t hash = 0;
  uint32_t layer = 0;

  friend bool operator==(const BlockKey&, const BlockKey&) = default;
  friend auto operator<=>(const BlockKey&, const BlockKey&) = default;
  std::string ToString() const;  // "ns:hash:layer" in hex/hex/dec
};

// Stable, order-preserving byte encoding: big-endian ns(8) | hash(8) | layer(4).
// Lexicographic order of encodings equals operator< on keys, so all blocks of a
// namespace (and all layers of a block) are contiguous in RocksDB.
inline constexpr size_t kEncodedBlockKeySize = 20;
using EncodedBlockKey = std::array<char, kEncodedBlockKeySize>;

EncodedBlockKey EncodeBlockKey(const BlockKey& key);
// INVALID_ARGUMENT unless `bytes` is exactly kEncodedBlockKeySize long.
Result<BlockKey> DecodeBlockKey(std::string_view bytes);
// The 8-byte prefix shared by every key of namespace `ns`.
std::string EncodeNamespacePrefix(uint64_t ns);

struct BlockKeyHash {
  // Every field is multiplied by its own odd constant before mixing, so keys
  // that differ only by a permutation of small values (hash 2 layer 0 vs
  // hash 0 layer 1) do not collide.
  size_t operator()(const BlockKey& k) const noexcept {
    uint64_t h = k.hash * 0x9e3779b97f4a7c15ULL;
    h ^= k.ns * 0xc2b2ae3d27d4eb4fULL;
    h ^= (uint64_t{k.layer} + 1) * 0x165667b19e3779f9ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return static_cast<size_t>(h);
  }
};
}  // namespace kvcake

template <>
struct std::hash<kvcake::BlockKey> : kvcake::BlockKeyHash {};
