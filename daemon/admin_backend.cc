#include "daemon/admin_backend.h"

#include <ctime>
#include <map>

#include "common/logging.h"
#include "common/metrics_catalog.h"
#include "daemon/daemon.h"
#include "kvcake/version.h"
#include "policy/serving_mode.h"

namespace kvcake::daemon {
namespace {

constexpr Tier kLocalTiers[] = {Tier::kDevice, Tier::kHost, Tier::kSsd};

Result<uint64_t> ParseU64(const std::string& name, const std::string& value) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgumentError(name + ": not a non-negative integer: '" + value + "'");
  }
  try {
    return static_cast<uint64_t>(std::stoull(value));
  } catch (...) {
    return InvalidArgumentError(name + ": out of range: '" + value + "'");
  }
}

}  // namespace

DaemonAdminBackend::DaemonAdminBackend(Daemon* daemon)
    : daemon_(daemon), start_(std::chrono::steady_clock::now()) {
  auto& cat = metrics::Catalog::Default();
  cat.build_info.WithLabels({KVCAKE_VERSION_STRING})->Set(1);
  cat.start_time.Get()->Set(static_cast<double>(std::time(nullptr)));
  hook_id_ = cat.registry().AddCollectHook([this] { RefreshMetrics(); });
}

DaemonAdminBackend::~DaemonAdminBackend() {
  if (hook_id_ >= 0) metrics::Catalog::Default().registry().RemoveCollectHook(hook_id_);
  std::thread t;
  {
    MutexLock lock(&mu_);
    t = std::move(drain_thread_);
  }
  if (t.joinable()) t.join();
}

void DaemonAdminBackend::RefreshMetrics() {
  auto& cat = metrics::Catalog::Default();
  store::StoreStats st = daemon_->store()->GetStats();
  for (Tier t : kLocalTiers) {
    const store::TierStats& ts = st.tiers[static_cast<size_t>(t)];
    std::string name(TierName(t));
    cat.tier_capacity_bytes.WithLabels({name})->Set(static_cast<double>(ts.capacity_bytes));
    cat.tier_used_bytes.WithLabels({name})->Set(static_cast<double>(ts.used_bytes));
    cat.tier_blocks.WithLabels({name})->Set(static_cast<double>(ts.blocks));
    // Store counters mirrored into the catalog (monotonic; added by operators).
    size_t i = static_cast<size_t>(t);
    cat.Hit(t)->Set(ts.hits);
    cat.Miss(t)->Set(ts.misses);
    for (int r = 0; r < store::kNumDropReasons; ++r) {
      cat.Drop(t, store::DropReasonName(static_cast<store::DropReason>(r)))
          ->Set(st.drop_reasons[i][r]);
    }
    for (Tier to : kLocalTiers) {
      size_t d = static_cast<size_t>(to);
      if (d == i) continue;
      (d < i ? cat.Promotion(t, to) : cat.Demotion(t, to))->Set(st.moves[i][d]);
      cat.MovedBytes(t, to)->Set(st.bytes_moved[i][d]);
    }
  }
  // CAKE layer budgets of the namespaces the policy governs by statistics;
  // cleared first so namespaces that stop reporting disappear.
  cat.layer_budget_blocks.Clear();
  for (const store::NamespaceConfig& ns : daemon_->store()->ListNamespaces()) {
    for (Tier t : kLocalTiers) {
      std::vector<int64_t> budgets = daemon_->store()->LayerBudgets(ns.id, t);
      for (size_t layer = 0; layer < budgets.size(); ++layer) {
        cat.layer_budget_blocks
            .WithLabels({ns.name, std::string(TierName(t)), std::to_string(layer)})
            ->Set(static_cast<double>(budgets[layer]));
      }
    }
  }
  cat.leases_expired.Get()->Set(st.leases_expired);
  cat.ssd_quarantines.Get()->Set(st.ssd_quarantines);
  if (cluster::Membership* m = daemon_->membership()) {
    const cluster::MembershipStats ms = m->stats();
    cat.cluster_up.Get()->Set(m->state() == cluster::MembershipState::kUp ? 1 : 0);
    cat.cluster_members.Get()->Set(static_cast<double>(m->Members().size()));
    cat.cluster_keepalive_failures.Get()->Set(ms.keepalive_failures);
    cat.cluster_rejoins.Get()->Set(ms.reconnects);
  }
  if (cluster::ClusterNode* node = daemon_->cluster_node()) {
    const cluster::ClusterStats cs = node->stats();
    cat.cluster_lookups.WithLabels({"hit"})->Set(cs.remote_lookup_hits);
    cat.cluster_lookups.WithLabels({"failure"})->Set(cs.remote_lookup_failures);
    cat.cluster_lookups.WithLabels({"miss"})->Set(cs.remote_lookups - cs.remote_lookup_hits -
                                                  cs.remote_lookup_failures);
    cat.cluster_fetched_blocks.Get()->Set(cs.fetched_blocks);
    cat.cluster_fetched_bytes.Get()->Set(cs.fetched_bytes);
    cat.cluster_fetch_failures.Get()->Set(cs.fetch_failures);
    cat.cluster_fetch_seconds.Get()->Set(cs.fetch_seconds_total);
    cat.cluster_published.Get()->Set(cs.published_chains);
    cat.cluster_publish_failures.Get()->Set(cs.publish_failures);
    cat.cluster_directory_chains.Get()->Set(static_cast<double>(cs.directory_chains));
    cat.cluster_handoffs.WithLabels({"started"})->Set(cs.handoffs_started);
    cat.cluster_handoffs.WithLabels({"failed"})->Set(cs.handoffs_failed);
    cat.cluster_handoff_bytes_forwarded.Get()->Set(cs.handoff_bytes_forwarded);
    const HandoffRegistryStats hs = daemon_->service()->stats().handoffs;
    cat.cluster_handoffs.WithLabels({"completed"})->Set(hs.completed);
    cat.cluster_handoff_blocks_received.Get()->Set(hs.received_blocks);
    cat.cluster_handoff_waits.WithLabels({"arrived"})->Set(hs.parked - hs.parked_expired);
    cat.cluster_handoff_waits.WithLabels({"expired"})->Set(hs.parked_expired);
    cat.cluster_handoffs_received.WithLabels({"announced"})->Set(hs.announced);
    cat.cluster_handoffs_received.WithLabels({"completed"})->Set(hs.completed);
    cat.cluster_handoffs_received.WithLabels({"aborted"})->Set(hs.aborted);
    cat.cluster_handoffs_received.WithLabels({"unavailable"})->Set(hs.unavailable);
    cat.cluster_handoffs_received.WithLabels({"other"})->Set(hs.failed - hs.aborted -
                                                             hs.unavailable);
  }
  if (daemon_->rpc_server()) {
    // Only live connections: a series per peer ever seen would grow forever.
    cat.transport_selected.Clear();
    for (const transport::ConnectionInfo& c : daemon_->rpc_server()->Connections()) {
      cat.transport_selected.WithLabels({c.peer, c.transport})->Set(1);
    }
  }
}

Result<admin::DaemonStatus> DaemonAdminBackend::GetStatus() {
  admin::DaemonStatus s;
  s.version = KVCAKE_VERSION_STRING;
  s.node_id = daemon_->address();
  s.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  store::StoreStats st = daemon_->store()->GetStats();
  for (Tier t : kLocalTiers) {
    if (t == Tier::kDevice && !daemon_->store()->has_device_tier()) continue;
    if (t == Tier::kSsd && !daemon_->store()->has_ssd_tier()) continue;
    const store::TierStats& ts = st.tiers[static_cast<size_t>(t)];
    s.tiers.push_back(
        {t, ts.capacity_bytes, ts.used_bytes, ts.blocks, daemon_->store()->TierRanking(t)});
  }
  s.policy = std::string(daemon_->store()->policy_name());
  s.transports.push_back("ucx:" + daemon_->options().rpc.ucx.Tls() + "@" + daemon_->address());
  if (!daemon_->service()->options().host_segment_path.empty())
    s.transports.push_back("shm-mapped");
  if (daemon_->rpc_server()) {
    for (const transport::ConnectionInfo& c : daemon_->rpc_server()->Connections()) {
      s.peers.push_back({c.peer, c.transport});
    }
  }
  {
    MutexLock lock(&mu_);
    s.draining = daemon_->draining() || drain_.active;
  }
  return s;
}

Result<admin::DaemonStats> DaemonAdminBackend::GetStats() {
  admin::DaemonStats s;
  store::StoreStats st = daemon_->store()->GetStats();
  ServiceStats sv = daemon_->service()->stats();
  s.puts = st.puts;
  s.gets = sv.get_hits + sv.get_misses;
  s.errors = sv.errors;
  s.leases_expired = st.leases_expired;
  for (Tier t : kLocalTiers) {
    size_t i = static_cast<size_t>(t);
    admin::TierStats ts{t, st.tiers[i].hits, st.tiers[i].misses, st.drops[i], {}};
    for (int r = 0; r < store::kNumDropReasons; ++r) {
      if (st.drop_reasons[i][r] == 0) continue;
      ts.drop_reasons.emplace_back(
          std::string(store::DropReasonName(static_cast<store::DropReason>(r))),
          st.drop_reasons[i][r]);
    }
    s.tiers.push_back(std::move(ts));
  }
  for (Tier from : kLocalTiers) {
    for (Tier to : kLocalTiers) {
      size_t f = static_cast<size_t>(from), d = static_cast<size_t>(to);
      if (f == d || st.moves[f][d] == 0) continue;
      admin::PathStats p{from, to, st.moves[f][d], st.bytes_moved[f][d]};
      (d < f ? s.promotions : s.demotions).push_back(p);
    }
  }
  return s;
}

Result<std::vector<admin::NamespaceInfo>> DaemonAdminBackend::ListNamespaces() {
  std::vector<admin::NamespaceInfo> out;
  for (const store::NamespaceConfig& c : daemon_->store()->ListNamespaces()) {
    admin::NamespaceInfo n;
    n.name = c.name;
    n.id = c.id;
    n.model = c.layout;
    n.dtype = c.kv_dtype;
    n.num_layers = c.num_layers;
    n.block_tokens = c.block_tokens;
    n.layer_block_bytes = c.layer_block_bytes;
    n.serving = std::string(policy::ServingModeName(c.serving));
    n.bytes = daemon_->store()->NamespaceUsedBytes(c.id);
    n.blocks = c.layer_block_bytes ? n.bytes / c.layer_block_bytes : 0;
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<BlockKey> DaemonAdminBackend::Matching(const admin::BlockFilter& filter,
                                                   size_t limit) const {
  store::BlockFilter f;
  f.ns = filter.ns;
  f.layer = filter.layer;
  f.tier = filter.tier;
  f.limit = filter.hash ? SIZE_MAX : limit;
  std::vector<BlockKey> out;
  for (const store::BlockInfo& b : daemon_->store()->ListBlocks(f)) {
    if (filter.hash && b.key.hash != *filter.hash) continue;
    out.push_back(b.key);
    if (out.size() >= limit) break;
  }
  return out;
}

Result<std::vector<admin::BlockInfo>> DaemonAdminBackend::ListBlocks(
    const admin::BlockFilter& filter) {
  store::BlockFilter f;
  f.ns = filter.ns;
  f.layer = filter.layer;
  f.tier = filter.tier;
  f.limit = filter.hash ? SIZE_MAX : filter.limit;
  std::vector<admin::BlockInfo> out;
  for (const store::BlockInfo& b : daemon_->store()->ListBlocks(f)) {
    if (filter.hash && b.key.hash != *filter.hash) continue;
    admin::BlockInfo i;
    i.key = b.key;
    i.tier = b.tier;
    i.size_bytes = b.size;
    i.state = "committed";
    i.pin_count = b.pins;
    i.last_access = b.last_access_tick;
    out.push_back(std::move(i));
    if (out.size() >= filter.limit) break;
  }
  return out;
}

Result<admin::EvictResult> DaemonAdminBackend::Evict(const admin::BlockFilter& filter) {
  if (!filter.ns) return InvalidArgumentError("evict needs a namespace (ns=...)");
  admin::EvictResult r;
  for (const BlockKey& k : Matching(filter, SIZE_MAX)) {
    // Operator-pinned blocks are never evicted (AdminBackend::Evict contract).
    Result<store::BlockInfo> info = daemon_->store()->Describe(k);
    if (info.ok() && info->admin_pinned) {
      ++r.skipped_pinned;
      continue;
    }
    // From one tier: demote out of it (host -> ssd, ssd -> dropped); else remove.
    Status s = filter.tier ? daemon_->store()->Evict(
                                 k, *filter.tier == Tier::kSsd ? Tier::kRemote : Tier::kSsd)
                           : daemon_->store()->Delete(k);
    if (s.ok()) {
      ++r.evicted;
    } else if (s.code() != StatusCode::kNotFound) {  // not found: gone meanwhile
      ++r.skipped_busy;
    }
  }
  return r;
}

Result<uint64_t> DaemonAdminBackend::Pin(const admin::BlockFilter& filter) {
  if (!filter.ns) return InvalidArgumentError("pin needs a namespace (ns=...)");
  uint64_t n = 0;
  for (const BlockKey& k : Matching(filter, SIZE_MAX)) n += daemon_->store()->AdminPin(k).ok();
  return n;
}

Result<uint64_t> DaemonAdminBackend::Unpin(const admin::BlockFilter& filter) {
  if (!filter.ns) return InvalidArgumentError("unpin needs a namespace (ns=...)");
  uint64_t n = 0;
  for (const BlockKey& k : Matching(filter, SIZE_MAX)) n += daemon_->store()->AdminUnpin(k).ok();
  return n;
}

Status DaemonAdminBackend::StartDrain() {
  if (!daemon_->store()->has_ssd_tier()) return UnavailableError("no SSD tier to drain to");
  MutexLock lock(&mu_);
  if (drain_.active) return Status::Ok();
  if (drain_thread_.joinable()) drain_thread_.join();  // a finished earlier drain
  drain_ = admin::DrainProgress{};
  drain_.active = true;
  drain_thread_ = std::thread([this] {
    Status s = daemon_->store()->Drain([this](uint64_t done, uint64_t total) {
      MutexLock l(&mu_);
      drain_.moved_blocks = done;
      drain_.total_blocks = total;
    });
    MutexLock l(&mu_);
    drain_.active = false;
    drain_.done = true;
    if (!s.ok()) drain_.error = s.ToString();
    KVCAKE_LOG(INFO) << "admin drain finished: " << s.ToString();
  });
  return Status::Ok();
}

Result<admin::DrainProgress> DaemonAdminBackend::GetDrain() {
  MutexLock lock(&mu_);
  return drain_;
}

Result<std::vector<admin::ConfigEntry>> DaemonAdminBackend::GetConfig() {
  store::StoreStats st = daemon_->store()->GetStats();
  std::vector<admin::ConfigEntry> out;
  out.push_back({"tier.gpu.capacity_bytes", std::to_string(st.tiers[0].capacity_bytes),
                 "device tier capacity (bytes, rounded down to slots)"});
  out.push_back({"tier.host.capacity_bytes", std::to_string(st.tiers[1].capacity_bytes),
                 "host tier capacity (bytes, rounded down to slots; <= the segment)"});
  out.push_back({"tier.ssd.capacity_bytes", std::to_string(st.tiers[2].capacity_bytes),
                 "SSD tier capacity (payload bytes)"});
  return out;
}

Status DaemonAdminBackend::SetConfig(
    const std::vector<std::pair<std::string, std::string>>& updates) {
  std::vector<std::pair<Tier, uint64_t>> parsed;
  for (const auto& [name, value] : updates) {
    Tier t;
    if (name == "tier.gpu.capacity_bytes") {
      t = Tier::kDevice;
    } else if (name == "tier.host.capacity_bytes") {
      t = Tier::kHost;
    } else if (name == "tier.ssd.capacity_bytes") {
      t = Tier::kSsd;
    } else {
      return NotFoundError("unknown config knob '" + name + "'");
    }
    ASSIGN_OR_RETURN(uint64_t v, ParseU64(name, value));
    parsed.emplace_back(t, v);
  }
  // Check everything first (all or nothing): a device/host capacity may not
  // exceed its physical segment.
  store::StoreStats st = daemon_->store()->GetStats();
  for (const auto& [t, v] : parsed) {
    if (t == Tier::kSsd) continue;
    const store::TierStats& ts = st.tiers[static_cast<size_t>(t)];
    uint64_t physical = ts.segment_bytes;
    if (v > physical) {
      return InvalidArgumentError(std::string(TierName(t)) + " capacity " + std::to_string(v) +
                                  " exceeds its segment of " + std::to_string(physical) + " bytes");
    }
  }
  for (const auto& [t, v] : parsed) RETURN_IF_ERROR(daemon_->store()->SetCapacity(t, v));
  return Status::Ok();
}

Result<std::unique_ptr<admin::AdminServer>> StartAdmin(
    Daemon* daemon, const admin::AdminServerOptions& options,
    std::unique_ptr<DaemonAdminBackend>* backend) {
  RETURN_IF_ERROR(admin::ValidateAdminOptions(options));
  *backend = std::make_unique<DaemonAdminBackend>(daemon);
  Result<std::unique_ptr<admin::AdminServer>> server =
      admin::AdminServer::Start(options, backend->get());
  if (!server.ok()) {
    backend->reset();
    return server.status();
  }
  KVCAKE_LOG(INFO) << "admin API on http://" << (*server)->address();
  return server;
}

Result<admin::PrefixHolders> DaemonAdminBackend::LookupHolders(
    uint64_t ns, uint32_t layer, const std::vector<uint64_t>& hashes) {
  ASSIGN_OR_RETURN(store::NamespaceConfig config, daemon_->store()->GetNamespace(ns));
  if (layer >= config.num_layers) {
    return InvalidArgumentError("layer " + std::to_string(layer) + " out of range (namespace '" +
                                config.name + "' has " + std::to_string(config.num_layers) +
                                " layers)");
  }
  if (hashes.size() > transport::kMaxLookupHashes) {
    return InvalidArgumentError("at most " + std::to_string(transport::kMaxLookupHashes) +
                                " blocks per lookup");
  }
  admin::PrefixHolders out;
  out.local = static_cast<uint32_t>(daemon_->store()->LookupPrefix(ns, hashes, layer));
  cluster::ClusterNode* cluster = daemon_->cluster_node();
  if (cluster != nullptr && !hashes.empty()) {
    std::vector<transport::PrefixHolder> holders;
    cluster->LookupRemote(config, layer, hashes, out.local, /*prefetch=*/false, &holders);
    for (transport::PrefixHolder& h : holders) {
      out.holders.emplace_back(std::move(h.node), h.prefix_len);
    }
  }
  return out;
}

Result<admin::ClusterStatus> DaemonAdminBackend::GetCluster() {
  admin::ClusterStatus c;
  cluster::Membership* m = daemon_->membership();
  if (m == nullptr) return c;
  c.enabled = true;
  c.cluster_name = daemon_->options().cluster.cluster_name;
  c.node_id = m->self().node_id;
  c.state = cluster::MembershipStateName(m->state());
  for (const cluster::MemberInfo& info : m->Members()) {
    admin::ClusterMemberStatus s;
    s.node_id = info.node_id;
    s.advertise_address = info.advertise_address;
    s.admin_address = info.admin_address;
    s.version = info.version;
    s.start_time_unix_ms = info.start_time_unix_ms;
    s.last_seen_unix_ms = info.last_seen_unix_ms;
    s.stale = info.stale;
    s.self = info.node_id == c.node_id;
    s.host_capacity_bytes = info.host_capacity_bytes;
    s.ssd_capacity_bytes = info.ssd_capacity_bytes;
    s.gpu_capacity_bytes = info.gpu_capacity_bytes;
    c.members.push_back(std::move(s));
  }
  const cluster::MembershipStats ms = m->stats();
  c.counters = {{"keepalive_failures", ms.keepalive_failures},
                {"rejoins", ms.reconnects},
                {"membership_changes", ms.membership_changes}};
  if (cluster::ClusterNode* node = daemon_->cluster_node()) {
    const cluster::ClusterStats cs = node->stats();
    c.counters.insert(c.counters.end(), {{"remote_lookups", cs.remote_lookups},
                                         {"remote_lookup_hits", cs.remote_lookup_hits},
                                         {"remote_lookup_failures", cs.remote_lookup_failures},
                                         {"fetches", cs.fetches},
                                         {"fetched_blocks", cs.fetched_blocks},
                                         {"fetched_bytes", cs.fetched_bytes},
                                         {"fetch_failures", cs.fetch_failures},
                                         {"published_chains", cs.published_chains},
                                         {"publish_failures", cs.publish_failures},
                                         {"directory_chains", cs.directory_chains},
                                         {"directory_requests", cs.directory_requests},
                                         {"bad_cluster_tokens", cs.bad_cluster_tokens}});
  }
  return c;
}

}  // namespace kvcake::daemon
