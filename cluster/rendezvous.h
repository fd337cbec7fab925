#pragma once

// Rendezvous (highest-random-weight) hashing: which live member owns a key.
// Every member computes the same owner from the same member set, and when a
// member leaves only the keys it owned move (to the member with the next
// highest weight for each key); when one joins, only the keys it wins move.

#include <cstdint>
#include <string_view>
#include <vector>

#include "cluster/member_info.h"

namespace kvcake::cluster {

// The weight of `node_id` for `key`: XXH3-64 of the key seeded with the
// XXH3-64 of the node id, so weights of different nodes for one key, and of
// one node for different keys, are independent and uniform. Pure function.
uint64_t RendezvousWeight(std::string_view node_id, std::string_view key);

// The member of `members` with the highest weight for `key` (ties, which
// need a 64-bit collision, go to the smaller node_id); null if `members` is
// empty. The pointer points into `members`. Pure function.
const MemberInfo* RendezvousOwner(const std::vector<MemberInfo>& members, std::string_view key);

}  // namespace kvcake::cluster
