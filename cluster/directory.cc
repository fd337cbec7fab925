#include "cluster/directory.h"

#include <algorithm>

namespace kvcake::cluster {

size_t Directory::ChainKeyHash::operator()(const ChainKey& k) const {
  uint64_t h = k.ns_id * 0x9e3779b97f4a7c15ull ^ k.root;
  h ^= (h >> 29) ^ (static_cast<uint64_t>(k.layer) * 0xbf58476d1ce4e5b9ull);
  return static_cast<size_t>(h ^ (h >> 32));
}

Directory::Directory(size_t max_chains) : max_chains_(std::max<size_t>(1, max_chains)) {}

void Directory::Publish(const std::string& holder, const transport::ChainRecord& chain) {
  if (chain.hashes.empty()) return;
  const ChainKey key{chain.ns_id, chain.root, chain.layer};
  MutexLock lock(&mu_);
  auto [it, inserted] = chains_.try_emplace(key);
  if (inserted) {
    order_.push_back(key);
    EvictLocked();
    it = chains_.find(key);
    if (it == chains_.end()) return;
  }
  std::unordered_set<uint64_t>& have = it->second[holder];
  have.insert(chain.hashes.begin(), chain.hashes.end());
}

void Directory::Withdraw(const std::string& holder, const transport::ChainRecord& chain) {
  const ChainKey key{chain.ns_id, chain.root, chain.layer};
  MutexLock lock(&mu_);
  auto it = chains_.find(key);
  if (it == chains_.end()) return;
  auto h = it->second.find(holder);
  if (h == it->second.end()) return;
  for (uint64_t hash : chain.hashes) h->second.erase(hash);
  if (h->second.empty()) it->second.erase(h);
  // An entry without holders stays in order_ until evicted (cheap).
}

void Directory::DropHolder(const std::string& holder) {
  MutexLock lock(&mu_);
  for (auto& [key, holders] : chains_) holders.erase(holder);
}

namespace {

// The leading hashes of `hashes` that `have` holds.
uint32_t PrefixLen(const std::unordered_set<uint64_t>& have, std::span<const uint64_t> hashes) {
  uint32_t n = 0;
  while (n < hashes.size() && have.count(hashes[n]) != 0) ++n;
  return n;
}

}  // namespace

Directory::Hit Directory::Lookup(uint64_t ns_id, uint32_t layer, std::span<const uint64_t> hashes,
                                 const std::string& exclude) const {
  Hit best;
  if (hashes.empty()) return best;
  MutexLock lock(&mu_);
  auto it = chains_.find(ChainKey{ns_id, hashes[0], layer});
  if (it == chains_.end()) return best;
  for (const auto& [holder, have] : it->second) {
    if (holder == exclude) continue;
    const uint32_t n = PrefixLen(have, hashes);
    // Ties go to the smallest node id, so every asker picks the same holder
    // (the order Holders lists them in).
    if (n > best.prefix_len || (n == best.prefix_len && n > 0 && holder < best.holder)) {
      best.holder = holder;
      best.prefix_len = n;
    }
  }
  return best;
}

std::vector<transport::PrefixHolder> Directory::Holders(uint64_t ns_id, uint32_t layer,
                                                        std::span<const uint64_t> hashes,
                                                        const std::string& exclude) const {
  std::vector<transport::PrefixHolder> out;
  if (hashes.empty()) return out;
  {
    MutexLock lock(&mu_);
    auto it = chains_.find(ChainKey{ns_id, hashes[0], layer});
    if (it == chains_.end()) return out;
    for (const auto& [holder, have] : it->second) {
      if (holder == exclude) continue;
      if (const uint32_t n = PrefixLen(have, hashes); n > 0) out.push_back({holder, n});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.prefix_len != b.prefix_len ? a.prefix_len > b.prefix_len : a.node < b.node;
  });
  return out;
}

size_t Directory::chains() const {
  MutexLock lock(&mu_);
  return chains_.size();
}

void Directory::EvictLocked() {
  while (chains_.size() > max_chains_ && !order_.empty()) {
    chains_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace kvcake::cluster
