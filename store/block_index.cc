#include "store/block_index.h"

namespace kvcake::store {

const char* BlockStateName(BlockState s) {
  switch (s) {
    case BlockState::kReserved:
      return "reserved";
    case BlockState::kCommitted:
      return "committed";
    case BlockState::kDemoting:
      return "demoting";
    case BlockState::kPromoting:
      return "promoting";
  }
  return "unknown";
}

BlockRecord* BlockIndex::Insert(const BlockKey& key, const BlockRecord& record) {
  auto [it, inserted] = map_.emplace(key, record);
  if (!inserted) return nullptr;
  it->second.generation = next_generation_++;
  ns_bytes_[key.ns] += record.size;
  return &it->second;
}

bool BlockIndex::Erase(const BlockKey& key) {
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  auto ns = ns_bytes_.find(key.ns);
  if (ns != ns_bytes_.end()) {
    ns->second -= it->second.size;
    if (ns->second == 0) ns_bytes_.erase(ns);
  }
  map_.erase(it);
  return true;
}

uint64_t BlockIndex::NamespaceBytes(uint64_t ns) const {
  auto it = ns_bytes_.find(ns);
  return it == ns_bytes_.end() ? 0 : it->second;
}

void BlockIndex::ForEach(const std::function<void(const BlockKey&, const BlockRecord&)>& fn) const {
  for (const auto& [k, r] : map_) fn(k, r);
}

}  // namespace kvcake::store
