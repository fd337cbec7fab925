#pragma once

// A daemon's part in the cluster (docs/cluster.md): the directory shard it
// owns, the publishing of the chains it commits, remote prefix lookups and
// fetches from other members, over the same kvcake RPC layer engines use.
//
// Fetched values are received straight into reserved store slots (no staging
// copy), several calls in flight, and a get waiting for a prefetch is served as
// soon as its own block has landed.
//
// Every remote step runs under `peer_timeout`: a dead or partitioned member
// costs at most that and a miss. Requests to other daemons authenticate with
// the cluster token (directory requests carry it; fetches register the
// namespace with it). The handlers call LookupRemote / FetchMissing only for
// a connection that holds the namespace's grant, so the cluster never serves
// a block to an engine that could not have read it locally.
//
// Hand-offs: the target member is told of a hand-off (Announce) before its
// first values are committed here, and of its failure (AbortHandoff); both
// notices go ahead of queued pushes. Values (Forward) are pushed by a
// forwarder thread: it reads each
// committed value back from the store and puts it on the target member with
// the hand-off's id, every call under the peer timeout. A target that fails
// once fails the rest of its hand-off at once (counted, not retried).
//
// Thread-safety: thread-safe. The publisher and the forwarder run on their
// own threads; lookups and fetches run on the caller's (I/O) thread, blocking
// it for at most the peer timeout per remote member.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cluster/cluster_hooks.h"
#include "cluster/directory.h"
#include "common/mutex.h"
#include "store/tier_manager.h"
#include "transport/rpc_client.h"
#include "transport/ucx_options.h"

namespace kvcake::cluster {

// A live member as the cluster layer needs it.
struct PeerAddress {
  std::string node_id;
  std::string address;  // UCX "HOST:PORT" its daemon serves on
};

// The live members (self included); false while membership is unknown
// (etcd unreachable), in which case cross-node steps are misses.
using MembersFn = std::function<bool(std::vector<PeerAddress>* members)>;

struct ClusterNodeOptions {
  std::string node_id;
  // Presented to other members; theirs must match (empty: an open cluster).
  std::string cluster_token;
  // Bound of every remote step (connect, directory call, fetch). Default 200 ms.
  std::chrono::milliseconds peer_timeout{200};
  // A member that could not be reached is not tried again for this long.
  std::chrono::milliseconds peer_retry{1000};
  // Commits are published in batches at this interval. Default 5 ms.
  std::chrono::milliseconds publish_interval{5};
  // Chains the owned directory shard holds at most.
  size_t max_directory_chains = 1 << 20;
  // Chains this node remembers publishing (re-published when owners move).
  size_t max_published_chains = 1 << 18;
  // Keys a lookup placed on another member, remembered for the get that
  // follows.
  size_t max_remote_hints = 1 << 20;
  // A lookup that finds blocks on another member starts fetching them (every
  // layer of the remote part, in layer order, up to this many bytes) in the
  // background, so the gets that follow find them local or in flight. 0
  // turns prefetching off (gets then fetch on demand).
  uint64_t max_prefetch_bytes = 1ull << 30;
  // Bytes per background fetch call, and fetch threads.
  uint64_t prefetch_batch_bytes = 8ull << 20;
  int prefetch_threads = 2;
  // How long a get waits for blocks a prefetch has in flight.
  std::chrono::milliseconds prefetch_wait{2000};
  // Hand-off batches waiting for the forwarder at most; beyond it a batch
  // fails its hand-off.
  size_t max_forward_queue = 1 << 16;
  // Hash each fetched value at its commit and compare it with the holder's
  // checksum (a mismatch drops it). Off (kvcaked --verify_commits=false), the
  // holder's checksum is recorded as is, which saves a pass over every
  // fetched byte; the first verified read (the engine's get) checks it and a
  // mismatch drops the block, never serves it. Default true.
  bool verify_fetched = true;
  // UCX settings of the connections to other members (tcp by default).
  transport::UcxOptions ucx;
};

// Counters (for /metrics and /v1/cluster). Plain value type.
struct ClusterStats {
  uint64_t remote_lookups = 0;
  uint64_t remote_lookup_hits = 0;
  uint64_t remote_lookup_failures = 0;
  uint64_t fetches = 0;
  uint64_t fetched_blocks = 0;
  uint64_t fetched_bytes = 0;
  uint64_t fetch_failures = 0;
  uint64_t prefetched_blocks = 0;  // fetched ahead of the get (also in fetched_blocks)
  uint64_t published_chains = 0;
  uint64_t publish_failures = 0;
  uint64_t directory_chains = 0;
  uint64_t directory_requests = 0;
  uint64_t bad_cluster_tokens = 0;
  double fetch_seconds_total = 0;
  uint64_t handoffs_started = 0;  // hand-offs this node began to push
  uint64_t handoffs_failed = 0;   // ... of which a push failed
  uint64_t handoff_blocks_forwarded = 0;
  uint64_t handoff_bytes_forwarded = 0;
};

class ClusterNode final : public ClusterHooks {
 public:
  // `store` must outlive the node. Starts the publisher thread.
  ClusterNode(ClusterNodeOptions options, store::TierManager* store, MembersFn members);
  ~ClusterNode() override;
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // ClusterHooks.
  const std::string& node_id() const override { return options_.node_id; }
  void Forward(const store::NamespaceConfig& ns, const HandoffTarget& target,
               std::span<const transport::BlockRef> keys) override;
  void Announce(const store::NamespaceConfig& ns, const HandoffTarget& target,
                std::span<const transport::BlockRef> keys) override;
  void AbortHandoff(uint64_t ns_id, const HandoffTarget& target, const Status& why) override;
  void LearnRoots(std::span<const transport::BlockRef> keys,
                  std::span<const uint64_t> roots) override;
  void OnCommitted(const store::NamespaceConfig& ns,
                   std::span<const transport::BlockRef> keys) override;
  RemotePrefix LookupRemote(const store::NamespaceConfig& ns, uint32_t layer,
                            std::span<const uint64_t> hashes, size_t local, bool prefetch,
                            std::vector<transport::PrefixHolder>* holders) override;
  size_t FetchMissing(const store::NamespaceConfig& ns,
                      std::span<const transport::BlockRef> keys) override;
  bool Fetchable(uint64_t ns_id, const transport::BlockRef& key) override;
  Result<std::string> HandleDirectory(uint16_t op, std::string_view header) override;

  // The member set changed: forget departed holders, re-publish what this
  // node holds to the (possibly new) owners.
  void OnMembershipChanged();

  // The member that owns the directory entry of (ns, root) among `members`.
  static std::string OwnerOf(const std::vector<PeerAddress>& members, uint64_t ns_id,
                             uint64_t root);

  ClusterStats stats() const;
  const ClusterNodeOptions& options() const { return options_; }

 private:
  struct Peer;
  struct ChainKey {
    uint64_t ns_id;
    uint64_t root;
    uint32_t layer;
    bool operator<(const ChainKey& o) const {
      return std::tie(ns_id, root, layer) < std::tie(o.ns_id, o.root, o.layer);
    }
  };

  struct ForwardJob {
    store::NamespaceConfig ns;
    HandoffTarget target;
    std::vector<transport::BlockRef> keys;
    // A notice rather than a push: announces `keys` (failure OK) or the
    // hand-off's failure.
    bool notice = false;
    Status failure;
  };

  void PublisherLoop() EXCLUDES(pub_mu_);
  // Background fetches started by lookups.
  struct FetchJob {
    store::NamespaceConfig ns;
    std::string holder;
    std::vector<transport::BlockRef> keys;
  };
  void FetcherLoop() EXCLUDES(fetch_mu_);
  void Prefetch(const store::NamespaceConfig& ns, const std::string& holder,
                std::span<const uint64_t> hashes);
  // Fetches `refs` from `holder` into the store, each value received
  // straight into a reserved slot; returns how many were stored. `landed`
  // (may be null) runs on the peer connection's I/O thread for each call's
  // keys once they are committed (or failed), while later calls are still in
  // flight; it must not block.
  size_t FetchFrom(const std::string& holder, const std::vector<PeerAddress>& members,
                   const store::NamespaceConfig& ns, std::span<const transport::BlockRef> refs,
                   const std::function<void(std::span<const transport::BlockRef>)>& landed);
  struct FetchCall;
  // Reserves the slots of refs [begin, begin + n) and encodes their get; null
  // if there is no memory for the reply of keys that got no slot.
  std::unique_ptr<FetchCall> PrepareFetch(const store::NamespaceConfig& ns, uint64_t fingerprint,
                                          std::span<const transport::BlockRef> refs, size_t begin,
                                          size_t n);
  // Commits the values `call`'s reply brought (aborting the other slots),
  // adding them to `stored`; the call's error if it failed.
  Status FinishFetch(FetchCall& call, uint64_t size, size_t* stored);
  void AbortFetch(FetchCall& call);
  static uint64_t FetchKey(uint64_t ns_id, const transport::BlockRef& k);
  void ForwarderLoop() EXCLUDES(fwd_mu_);
  // Starts pushing one job's values to its target, up to kForwardWindow calls
  // in flight over all jobs (each sent from the pinned slots in place); the
  // error that kept a call from starting. Runs on the forwarder thread.
  Status ForwardNow(const ForwardJob& job) EXCLUDES(fwd_mu_);
  // One push in flight (cluster_node.cc).
  struct PushCall;
  // Builds the push of keys [begin, begin + n) of `job`: pins each value
  // (staging one a pin cannot reach); null if none of them is stored any more.
  std::unique_ptr<PushCall> PreparePush(const ForwardJob& job, uint64_t fingerprint, size_t begin,
                                        size_t n);
  // Waits until fewer than `limit` pushes are in flight, then drops the
  // finished ones (and their peer references) on the calling thread.
  void ReapPushes(size_t limit) EXCLUDES(fwd_mu_);
  // Counts hand-off `id` failed (once).
  void FailHandoff(uint64_t id, const std::string& target, const Status& why);
  // Sends a notice job to its target; runs on the forwarder thread.
  Status NoticeNow(const ForwardJob& job);
  // Queues a notice ahead of the pushes.
  void QueueNotice(ForwardJob job) EXCLUDES(fwd_mu_);
  // Sends `chains` (grouped by owner) now; runs on the publisher thread.
  void PublishNow(std::vector<transport::ChainRecord> chains);
  // The connection to `node_id` at `address`, connecting if needed; null if
  // it cannot be reached (then not retried for peer_retry).
  std::shared_ptr<Peer> PeerFor(const std::string& node_id, const std::string& address);
  void MarkDown(const std::string& node_id);
  // Registers `ns` on `peer` with the cluster token (once per connection).
  Result<std::pair<uint64_t, uint64_t>> EnsureNamespace(Peer& peer,
                                                        const store::NamespaceConfig& ns);
  // One call to `peer` under the peer timeout.
  transport::RpcReply CallPeer(Peer& peer, transport::RpcOp op, const std::string& meta,
                               std::span<const transport::MutableBuffer> into = {},
                               std::span<const transport::ConstBuffer> payload = {});
  bool Members(std::vector<PeerAddress>* out) const;
  std::string AddressOf(const std::vector<PeerAddress>& members, const std::string& node) const;
  bool TokenOk(std::string_view token);
  // Bounds roots_ (oldest learned first).
  void TrimRootsLocked() REQUIRES(hints_mu_);

  const ClusterNodeOptions options_;
  store::TierManager* const store_;
  const MembersFn members_;
  Directory directory_;

  mutable Mutex peers_mu_;
  std::unordered_map<std::string, std::shared_ptr<Peer>> peers_ GUARDED_BY(peers_mu_);
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> down_until_
      GUARDED_BY(peers_mu_);

  // Chain learning: block hash -> the root of its chain (from lookups and
  // commits), and remote hints: (ns, hash) -> holder node id.
  mutable Mutex hints_mu_;
  std::unordered_map<uint64_t, uint64_t> roots_ GUARDED_BY(hints_mu_);
  std::deque<uint64_t> roots_order_ GUARDED_BY(hints_mu_);
  std::unordered_map<uint64_t, std::string> remote_ GUARDED_BY(hints_mu_);  // key: ns ^ hash mix
  std::deque<uint64_t> remote_order_ GUARDED_BY(hints_mu_);

  // Publishing.
  Mutex pub_mu_;
  CondVar pub_cv_;
  std::vector<transport::ChainRecord> pending_ GUARDED_BY(pub_mu_);
  bool republish_ GUARDED_BY(pub_mu_) = false;
  bool stop_ GUARDED_BY(pub_mu_) = false;
  std::map<ChainKey, std::vector<uint64_t>> published_;  // publisher thread only
  std::deque<ChainKey> published_order_;                 // publisher thread only
  std::vector<std::string> last_members_;                // publisher thread only

  std::atomic<uint64_t> remote_lookups_{0}, remote_lookup_hits_{0}, remote_lookup_failures_{0};
  std::atomic<uint64_t> fetches_{0}, fetched_blocks_{0}, fetched_bytes_{0}, fetch_failures_{0};
  std::atomic<uint64_t> published_chains_{0}, publish_failures_{0}, directory_requests_{0};
  std::atomic<uint64_t> bad_cluster_tokens_{0};
  std::atomic<uint64_t> fetch_micros_{0};
  std::atomic<uint64_t> handoffs_started_{0}, handoffs_failed_{0};
  std::atomic<uint64_t> handoff_blocks_forwarded_{0}, handoff_bytes_forwarded_{0};

  // Forwarding (hand-offs).
  Mutex fwd_mu_;
  CondVar fwd_cv_;
  std::deque<ForwardJob> fwd_queue_ GUARDED_BY(fwd_mu_);
  bool fwd_stop_ GUARDED_BY(fwd_mu_) = false;
  // Hand-offs seen (started) and failed, oldest first, bounded.
  std::unordered_map<uint64_t, bool> fwd_handoffs_ GUARDED_BY(fwd_mu_);  // id -> failed
  std::deque<uint64_t> fwd_order_ GUARDED_BY(fwd_mu_);
  // Block hashes announced per hand-off id, oldest hand-off first, bounded.
  std::unordered_map<uint64_t, std::unordered_set<uint64_t>> announced_ GUARDED_BY(fwd_mu_);
  std::deque<uint64_t> announced_order_ GUARDED_BY(fwd_mu_);
  // Pushes started and not yet reaped, and those whose reply has arrived
  // (their pins released), for the forwarder thread to drop.
  size_t pushes_in_flight_ GUARDED_BY(fwd_mu_) = 0;
  std::vector<std::unique_ptr<PushCall>> pushes_done_ GUARDED_BY(fwd_mu_);

  Mutex fetch_mu_;
  CondVar fetch_cv_;    // a job queued / stop
  CondVar fetched_cv_;  // keys left in_flight_
  std::deque<FetchJob> fetch_queue_ GUARDED_BY(fetch_mu_);
  std::unordered_set<uint64_t> in_flight_ GUARDED_BY(fetch_mu_);  // FetchKey of queued keys
  bool fetch_stop_ GUARDED_BY(fetch_mu_) = false;
  std::atomic<uint64_t> prefetched_blocks_{0};

  std::thread publisher_;
  std::vector<std::thread> fetchers_;
  std::thread forwarder_;
};

}  // namespace kvcake::cluster
