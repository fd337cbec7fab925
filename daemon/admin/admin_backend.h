#pragma once

// AdminBackend: what the admin HTTP API (AdminServer) needs from the daemon.
// The daemon implements it over its TierManager, policy, transports and
// cluster state; tests implement it over a real store. No JSON here: plain
// structs in, plain structs out; AdminServer does the HTTP/JSON mapping
// (docs/dev/admin-api.md).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/block_key.h"
#include "common/result.h"
#include "common/status.h"
#include "common/tier.h"

namespace kvcake::admin {

// Occupancy of one local tier.
struct TierStatus {
  Tier tier = Tier::kHost;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t blocks = 0;
  // The ranking its victims follow now when the policy switches between
  // rankings ("lru" or "gdsf" under the default); empty otherwise.
  std::string ranking;
};

// The transport chosen for one peer (UCX "tcp", "rc_mlx5", "shm", or "nccl").
struct TransportStatus {
  std::string peer;       // peer address or node id
  std::string transport;  // what UCX / NCCL actually selected
};

// GET /v1/status.
struct DaemonStatus {
  std::string version;
  std::string node_id;
  double uptime_seconds = 0;
  std::vector<TierStatus> tiers;        // local tiers, fastest first
  std::string policy;                   // Policy::name(), e.g. "cake", "lru"
  std::vector<std::string> transports;  // enabled transports / listen addresses, e.g. "ucx:tcp"
  std::vector<TransportStatus> peers;
  bool draining = false;
};

// Counters for one tier.
struct TierStats {
  Tier tier = Tier::kHost;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t drops = 0;  // blocks dropped out of the store from this tier
  // The same drops by reason ("capacity", "admission", "no_ssd", "evict",
  // "corrupt"; store::DropReasonName), reasons with a count only.
  std::vector<std::pair<std::string, uint64_t>> drop_reasons;
};

// Block moves along one path (from → to).
struct PathStats {
  Tier from = Tier::kDevice;
  Tier to = Tier::kHost;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

// GET /v1/stats: cumulative since start.
struct DaemonStats {
  uint64_t puts = 0;
  uint64_t gets = 0;
  uint64_t errors = 0;
  uint64_t leases_expired = 0;
  std::vector<TierStats> tiers;
  std::vector<PathStats> promotions;
  std::vector<PathStats> demotions;
};

// CAKE per-layer budgets of a namespace in one tier (blocks per layer).
struct LayerBudgets {
  Tier tier = Tier::kDevice;
  std::vector<int64_t> blocks_per_layer;
};

// GET /v1/namespaces: one registered namespace.
struct NamespaceInfo {
  std::string name;
  uint64_t id = 0;  // NamespaceSeed(name): the `ns` of its BlockKeys
  std::string model;
  std::string dtype;
  uint32_t num_layers = 0;
  uint32_t block_tokens = 0;
  uint64_t layer_block_bytes = 0;
  std::string serving = "exact";  // "exact" or "budgeted" (policy/serving_mode.h)
  uint64_t blocks = 0;            // committed (key, layer) values, all tiers
  uint64_t bytes = 0;
  std::vector<LayerBudgets> budgets;  // empty when the policy has none
};

// Which blocks a list / evict / pin / unpin applies to. Unset fields match
// everything; `hash` set selects one block (all its layers unless `layer`).
struct BlockFilter {
  std::optional<uint64_t> ns;  // namespace id (AdminServer resolves names)
  std::optional<uint64_t> hash;
  std::optional<uint32_t> layer;
  std::optional<Tier> tier;
  uint32_t limit = 100;  // list only; AdminServer caps it at 10000
};

// GET /v1/blocks: one (block, layer) value.
struct BlockInfo {
  BlockKey key;
  Tier tier = Tier::kHost;
  uint64_t size_bytes = 0;
  std::string state;  // "reserved", "committed", "demoting", "promoting"
  uint32_t pin_count = 0;
  double score = 0;
  uint64_t last_access = 0;  // logical tick
};

// POST /v1/drain progress (GET /v1/drain, and DaemonStatus::draining).
struct DrainProgress {
  bool active = false;  // started and not finished
  bool done = false;    // finished (successfully or with `error`)
  uint64_t total_blocks = 0;
  uint64_t moved_blocks = 0;
  uint64_t total_bytes = 0;
  uint64_t moved_bytes = 0;
  std::string error;  // empty unless the drain failed
};

// POST /v1/evict: what an eviction did. Skipped values stay where they are.
struct EvictResult {
  uint64_t evicted = 0;
  uint64_t skipped_pinned = 0;  // operator-pinned (kvcakectl pin; unpin to evict)
  uint64_t skipped_busy = 0;    // being written, or held by a client's get
};

// One hot-reloadable knob. Names are dotted: "tier.gpu.capacity_bytes",
// "tier.host.capacity_bytes", "tier.ssd.capacity_bytes", "policy.<param>".
struct ConfigEntry {
  std::string name;
  std::string value;  // canonical text form
  std::string description;
};

// One cluster member as this daemon sees it.
struct ClusterMemberStatus {
  std::string node_id;
  std::string advertise_address;
  std::string admin_address;
  std::string version;
  int64_t start_time_unix_ms = 0;
  int64_t last_seen_unix_ms = 0;  // last read from etcd
  bool stale = false;             // etcd unreachable: last known state
  bool self = false;
  uint64_t host_capacity_bytes = 0;
  uint64_t ssd_capacity_bytes = 0;
  uint64_t gpu_capacity_bytes = 0;
};

struct ClusterStatus {
  bool enabled = false;  // false: the daemon runs alone (nothing else is set)
  std::string cluster_name;
  std::string node_id;
  std::string state;  // "up" | "unknown"
  std::vector<ClusterMemberStatus> members;
  // Counters by name (remote_lookups, fetched_blocks, ...), in a stable order.
  std::vector<std::pair<std::string, uint64_t>> counters;
};

// POST /v1/lookup: who holds how much of a chain (a prompt's blocks).
struct PrefixHolders {
  uint32_t local = 0;  // leading blocks this daemon holds
  // Every other live cluster member the chain's directory owner knows to
  // hold a prefix, with its length, longest first (ties by node id).
  std::vector<std::pair<std::string, uint32_t>> holders;
};

// Interface the daemon implements. Thread-safety: implementations must be
// thread-safe; AdminServer calls them from its own thread, concurrently with
// the daemon's data path (and possibly concurrently with each other).
// Methods should not block for long: long operations (drain) start work and
// return, with progress polled.
class AdminBackend {
 public:
  virtual ~AdminBackend() = default;

  virtual Result<DaemonStatus> GetStatus() = 0;
  virtual Result<DaemonStats> GetStats() = 0;
  virtual Result<std::vector<NamespaceInfo>> ListNamespaces() = 0;

  // Up to filter.limit blocks matching `filter`, in key order.
  virtual Result<std::vector<BlockInfo>> ListBlocks(const BlockFilter& filter) = 0;

  // Removes the matching blocks (from `filter.tier` only if set, otherwise
  // from every tier). Pinned or in-flight blocks are skipped. Returns the
  // number of values removed and of those skipped, by reason.
  // INVALID_ARGUMENT if the filter selects the whole cache (no ns) — callers
  // must name a namespace.
  virtual Result<EvictResult> Evict(const BlockFilter& filter) = 0;
  // Adds / removes an operator pin (no lease; survives until unpinned) on the
  // matching blocks; pinned blocks are never demoted or evicted. Returns the
  // number of values affected. Same filter rules as Evict.
  virtual Result<uint64_t> Pin(const BlockFilter& filter) = 0;
  virtual Result<uint64_t> Unpin(const BlockFilter& filter) = 0;

  // Starts demoting everything above SSD down to SSD (a node about to be
  // taken out). OK if started or already running; progress via GetDrain().
  virtual Status StartDrain() = 0;
  virtual Result<DrainProgress> GetDrain() = 0;

  // Current values of every hot-reloadable knob.
  virtual Result<std::vector<ConfigEntry>> GetConfig() = 0;
  // Applies all updates or none: NOT_FOUND for an unknown name,
  // INVALID_ARGUMENT for a value that does not parse or fails validation.
  virtual Status SetConfig(const std::vector<std::pair<std::string, std::string>>& updates) = 0;

  // Membership and cluster counters (enabled = false when alone).
  virtual Result<ClusterStatus> GetCluster() { return ClusterStatus{}; }

  // Who holds how much of `hashes` (a chain from its root, at most
  // transport::kMaxLookupHashes) in layer `layer` of namespace `ns`: this
  // daemon's tiers and, in a cluster, the chain's directory owner (one call
  // bounded by the peer timeout). Fetches nothing.
  virtual Result<PrefixHolders> LookupHolders(uint64_t ns, uint32_t layer,
                                              const std::vector<uint64_t>& hashes) {
    return UnimplementedError("prefix lookups are not served here");
  }
};

}  // namespace kvcake::admin
