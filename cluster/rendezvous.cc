#include "cluster/rendezvous.h"

#include <xxhash.h>

namespace kvcake::cluster {

uint64_t RendezvousWeight(std::string_view node_id, std::string_view key) {
  uint64_t node_seed = XXH3_64bits(node_id.data(), node_id.size());
  return XXH3_64bits_withSeed(key.data(), key.size(), node_seed);
}

const MemberInfo* RendezvousOwner(const std::vector<MemberInfo>& members, std::string_view key) {
  const MemberInfo* owner = nullptr;
  uint64_t best = 0;
  for (const MemberInfo& member : members) {
    uint64_t weight = RendezvousWeight(member.node_id, key);
    if (owner == nullptr || weight > best || (weight == best && member.node_id < owner->node_id)) {
      owner = &member;
      best = weight;
    }
  }
  return owner;
}

}  // namespace kvcake::cluster
