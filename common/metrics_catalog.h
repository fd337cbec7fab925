#pragma once

// The kvcake metric set (docs/design.md §6, issue 5): every metric the daemon
// exports at /metrics, with its name, type, help and labels in one place so
// the store, transport and daemon record into the same families and
// docs/operations.md can list them. All names follow Prometheus conventions.
//
//   auto& m = metrics::Catalog::Default();
//   m.Hit(Tier::kHost)->Increment();
//   m.RecordDemotion(Tier::kHost, Tier::kSsd, bytes);
//   metrics::ScopedLatency t(m.Latency("get"));
//
// Thread-safe: the families are thread-safe; the pre-resolved children for
// tiers and tier pairs are immutable pointers.

#include <array>
#include <cstdint>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"
#include "common/tier.h"

namespace kvcake::metrics {

class Catalog {
 public:
  // Registers (or finds) every family in `registry`, which must outlive this.
  explicit Catalog(Registry& registry);
  // The catalog over Registry::Default().
  static Catalog& Default();

  Registry& registry() const { return registry_; }

  // ---- families (label names in brackets) ----
  // Tier occupancy: refreshed by the daemon's collect hook. [tier]
  GaugeFamily& tier_capacity_bytes;  // kvcake_tier_capacity_bytes
  GaugeFamily& tier_used_bytes;      // kvcake_tier_used_bytes
  GaugeFamily& tier_blocks;          // kvcake_tier_blocks
  // Lookups served from a tier / not found in it. [tier]
  CounterFamily& hits;    // kvcake_hits_total
  CounterFamily& misses;  // kvcake_misses_total
  // Block moves between tiers, by path. [from, to]
  CounterFamily& promotions;   // kvcake_promotions_total
  CounterFamily& demotions;    // kvcake_demotions_total
  CounterFamily& moved_bytes;  // kvcake_moved_bytes_total
  // Blocks dropped from a tier: "capacity", "admission", "evict", "corrupt". [tier, reason]
  CounterFamily& drops;  // kvcake_drops_total
  // Requests by operation ("put", "get", "lookup", "commit", "release", "admin_*"). [op]
  CounterFamily& requests;           // kvcake_requests_total
  HistogramFamily& request_latency;  // kvcake_request_duration_seconds
  // Failed requests by operation and canonical code name. [op, code]
  CounterFamily& errors;  // kvcake_errors_total
  // Pins whose lease expired before release. []
  CounterFamily& leases_expired;  // kvcake_leases_expired_total
  // 1 for the transport UCX (or NCCL) picked for a peer. [peer, transport]
  GaugeFamily& transport_selected;  // kvcake_transport_selected
  // CAKE per-layer budget in blocks. [namespace, tier, layer]
  GaugeFamily& layer_budget_blocks;  // kvcake_cake_layer_budget_blocks
  // Constant 1 with the build's version. [version]
  GaugeFamily& build_info;  // kvcake_build_info
  // Unix time the daemon started. []
  GaugeFamily& start_time;  // kvcake_start_time_seconds
  // Admin HTTP requests by path and HTTP status. [path, status]
  CounterFamily& admin_requests;  // kvcake_admin_requests_total
  // Corrupt SSD tier directories moved aside at start (0 or 1 per process). []
  CounterFamily& ssd_quarantines;  // kvcake_ssd_quarantines_total
  // Admin connections closed by the server: slow peers ("header_timeout",
  // "body_timeout", "write_timeout", "evicted" at the connection limit) and
  // kept-alive connections left idle ("idle_timeout"). [reason]
  CounterFamily& admin_connections_closed;  // kvcake_admin_connections_closed_total
  // Cluster (only with --cluster_etcd). 1 while membership is up, 0 while
  // etcd is unreachable ("unknown"). []
  GaugeFamily& cluster_up;       // kvcake_cluster_up
  GaugeFamily& cluster_members;  // kvcake_cluster_members (live, self included) []
  // Prefix lookups sent to a directory owner, by result: "hit", "miss",
  // "failure" (owner unreachable or timed out). [result]
  CounterFamily& cluster_lookups;  // kvcake_cluster_lookups_total
  // Blocks / bytes fetched from other members, fetch calls that failed, and
  // the time spent fetching. []
  CounterFamily& cluster_fetched_blocks;  // kvcake_cluster_fetched_blocks_total
  CounterFamily& cluster_fetched_bytes;   // kvcake_cluster_fetched_bytes_total
  CounterFamily& cluster_fetch_failures;  // kvcake_cluster_fetch_failures_total
  CounterFamily& cluster_fetch_seconds;   // kvcake_cluster_fetch_seconds_total
  // Chains published to directory owners, and publishes that failed. []
  CounterFamily& cluster_published;         // kvcake_cluster_published_chains_total
  CounterFamily& cluster_publish_failures;  // kvcake_cluster_publish_failures_total
  // Chains in the directory shard this member owns. []
  GaugeFamily& cluster_directory_chains;  // kvcake_cluster_directory_chains
  // etcd keep-alives that failed, and re-registrations after an outage. []
  CounterFamily& cluster_keepalive_failures;  // kvcake_cluster_keepalive_failures_total
  CounterFamily& cluster_rejoins;             // kvcake_cluster_rejoins_total
  // Prefill to decode hand-offs by event: started / failed (pushed from this
  // member), completed (received by it); values and bytes pushed. [event]
  CounterFamily& cluster_handoffs;                 // kvcake_cluster_handoffs_total
  CounterFamily& cluster_handoff_bytes_forwarded;  // kvcake_cluster_handoff_bytes_forwarded_total
  CounterFamily& cluster_handoff_blocks_received;  // kvcake_cluster_handoff_blocks_received_total
  // Gets that waited for a hand-off, by outcome (arrived / expired). [outcome]
  CounterFamily& cluster_handoff_waits;      // kvcake_cluster_handoff_waits_total
  CounterFamily& cluster_handoffs_received;  // kvcake_cluster_handoffs_received_total

  // ---- pre-resolved children (hot path, no lookup) ----
  Counter* Hit(Tier t) const { return hit_[Index(t)]; }
  Counter* Miss(Tier t) const { return miss_[Index(t)]; }
  // Children for one path (pre-resolved between local tiers, looked up
  // otherwise); for components that mirror their own counters in a collect
  // hook with Counter::Set.
  Counter* Promotion(Tier from, Tier to) const;
  Counter* Demotion(Tier from, Tier to) const;
  Counter* MovedBytes(Tier from, Tier to) const;
  Counter* Drop(Tier tier, std::string_view reason) const;
  void RecordPromotion(Tier from, Tier to, uint64_t bytes) const;
  void RecordDemotion(Tier from, Tier to, uint64_t bytes) const;
  // Looks the child up (a map lookup under a mutex): not for per-byte paths.
  void RecordDrop(Tier tier, std::string_view reason) const;
  void RecordError(std::string_view op, StatusCode code) const;
  // Counts the request and returns its latency histogram.
  Histogram* Latency(std::string_view op) const;

 private:
  static constexpr size_t kTiers = 4;
  static size_t Index(Tier t) {
    return static_cast<size_t>(t) < kTiers ? static_cast<size_t>(t) : 0;
  }

  Registry& registry_;
  std::array<Counter*, kTiers> hit_{};
  std::array<Counter*, kTiers> miss_{};
  std::array<std::array<Counter*, kTiers>, kTiers> promotion_{};
  std::array<std::array<Counter*, kTiers>, kTiers> demotion_{};
  std::array<std::array<Counter*, kTiers>, kTiers> moved_{};
};

}  // namespace kvcake::metrics
