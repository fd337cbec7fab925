#pragma once

// The directory shard a member owns: which members published which chains
// (docs/cluster.md, "Directory").
//
// A chain is identified by (namespace, root hash, layer); the member that
// owns a chain's directory entry is chosen by rendezvous hashing of
// (namespace, root) over the live members (cluster/rendezvous.h), so every
// layer of a prefix is answered by one owner. The directory is soft state:
// an entry may name a holder that has since evicted the blocks or died; the
// asker's fetch then fails and the lookup is a miss, never a wrong byte
// (every fetched block is checked against its namespace fingerprint and
// checksum by the holder).
//
// Thread-safety: thread-safe (one internal mutex).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "transport/messages.h"

namespace kvcake::cluster {

class Directory {
 public:
  // Holds at most `max_chains` (namespace, root, layer) entries; the oldest
  // published entry is forgotten first.
  explicit Directory(size_t max_chains);
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  // `holder` has (withdraw: no longer has) the blocks of `chain`.
  void Publish(const std::string& holder, const transport::ChainRecord& chain);
  void Withdraw(const std::string& holder, const transport::ChainRecord& chain);
  // Forgets everything `holder` published (it left the cluster).
  void DropHolder(const std::string& holder);

  struct Hit {
    std::string holder;       // empty: no holder known
    uint32_t prefix_len = 0;  // leading hashes of the query `holder` published
  };
  // The holder (other than `exclude`) with the longest published prefix of
  // `hashes` (a chain from its root, hashes[0]) in layer `layer`.
  Hit Lookup(uint64_t ns_id, uint32_t layer, std::span<const uint64_t> hashes,
             const std::string& exclude) const;
  // Every holder (other than `exclude`) of a non-empty prefix of `hashes`,
  // longest prefix first, ties by node id; the first is Lookup's hit.
  std::vector<transport::PrefixHolder> Holders(uint64_t ns_id, uint32_t layer,
                                               std::span<const uint64_t> hashes,
                                               const std::string& exclude) const;

  size_t chains() const;

 private:
  struct ChainKey {
    uint64_t ns_id;
    uint64_t root;
    uint32_t layer;
    bool operator==(const ChainKey&) const = default;
  };
  struct ChainKeyHash {
    size_t operator()(const ChainKey& k) const;
  };
  // Holder node id -> the hashes of the chain it published.
  using HolderHashes = std::unordered_map<std::string, std::unordered_set<uint64_t>>;

  void EvictLocked() REQUIRES(mu_);

  const size_t max_chains_;
  mutable Mutex mu_;
  std::unordered_map<ChainKey, HolderHashes, ChainKeyHash> chains_ GUARDED_BY(mu_);
  std::deque<ChainKey> order_ GUARDED_BY(mu_);  // insertion order, for eviction
};

}  // namespace kvcake::cluster
