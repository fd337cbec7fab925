#pragma once

// What the request handlers (daemon::Service) ask of the cluster layer.
// Implemented by cluster::ClusterNode; a daemon without a cluster has none.
//
// Thread-safety: implementations are thread-safe; every method may be called
// concurrently from any I/O thread.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "store/namespace_config.h"
#include "transport/messages.h"

namespace kvcake::cluster {

// Where a prefill's committed values go (docs/cluster.md "Prefill to decode
// hand-off").
struct HandoffTarget {
  std::string node;     // member that receives the values
  uint64_t id = 0;      // names the hand-off (> 0)
  uint32_t blocks = 0;  // values of the hand-off in all
};

class ClusterHooks {
 public:
  virtual ~ClusterHooks() = default;

  // This daemon's node id.
  virtual const std::string& node_id() const = 0;

  // Blocks `keys` of `ns` committed here belong to hand-off `target`: they
  // are pushed to the target member asynchronously (never on the caller's
  // thread). A failure is logged and counted, never reported to the caller.
  virtual void Forward(const store::NamespaceConfig& ns, const HandoffTarget& target,
                       std::span<const transport::BlockRef> keys) = 0;

  // The first put of `keys` naming hand-off `target` reached this (prefill)
  // daemon, before their values are committed: the target member is told at
  // once (ahead of any queued push), so its gets of them wait for the
  // values. Asynchronous, like Forward.
  virtual void Announce(const store::NamespaceConfig& ns, const HandoffTarget& target,
                        std::span<const transport::BlockRef> keys) = 0;

  // Hand-off `target` of namespace `ns_id` failed on this (prefill) side
  // with `why` (not OK): the target member is told, so its waiters end with
  // `why`. Asynchronous, best effort.
  virtual void AbortHandoff(uint64_t ns_id, const HandoffTarget& target, const Status& why) = 0;

  // A client told which chain (root hash) each of `keys` belongs to (one
  // root per key, 0 if unknown); remembered for publishing their commits.
  virtual void LearnRoots(std::span<const transport::BlockRef> keys,
                          std::span<const uint64_t> roots) = 0;

  // Blocks `keys` of `ns` were committed in this daemon's tiers (in request
  // order); they are published to their directory owners asynchronously.
  virtual void OnCommitted(const store::NamespaceConfig& ns,
                           std::span<const transport::BlockRef> keys) = 0;

  struct RemotePrefix {
    uint32_t len = 0;  // hashes [local, local + len) are held by `node`
    std::string node;
  };
  // This daemon holds the first `local` of `hashes` (a chain from its root)
  // in layer `layer`; asks the chain's directory owner who holds more, and
  // with `prefetch` starts fetching that part. With `holders`, also appends
  // every other live member the directory knows to hold a prefix of the
  // chain, longest first (asked even when `local` covers the chain).
  // Bounded by the peer timeout; a failure or an unknown cluster is len 0
  // and no holders.
  virtual RemotePrefix LookupRemote(const store::NamespaceConfig& ns, uint32_t layer,
                                    std::span<const uint64_t> hashes, size_t local, bool prefetch,
                                    std::vector<transport::PrefixHolder>* holders) = 0;

  // True if block `key` of namespace `ns_id` (missing locally) is being
  // prefetched or was placed on another member by a lookup: a get of it may
  // wait for the cluster, so the handler runs it off the I/O thread.
  virtual bool Fetchable(uint64_t ns_id, const transport::BlockRef& key) = 0;

  // Fetches those of `keys` (missing locally) that a recent lookup placed on
  // another member into this daemon's tiers. Returns how many were stored.
  // Bounded by the peer timeout per holder.
  virtual size_t FetchMissing(const store::NamespaceConfig& ns,
                              std::span<const transport::BlockRef> keys) = 0;

  // Serves kDirectoryPublish / kDirectoryLookup from another member.
  virtual Result<std::string> HandleDirectory(uint16_t op, std::string_view header) = 0;
};

}  // namespace kvcake::cluster
