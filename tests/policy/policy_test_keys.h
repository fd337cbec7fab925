#pragma once

// Keys and filters the policy tests share.

#include <cstdint>

#include "common/block_key.h"

namespace kvcake::policy::testing {

// Block `hash` of namespace `ns`, layer 0.
inline BlockKey K(uint64_t hash, uint64_t ns = 1) { return BlockKey{ns, hash, 0}; }

// An eligibility filter that accepts every block.
inline auto All() {
  return [](const BlockKey&) { return true; };
}

}  // namespace kvcake::policy::testing
