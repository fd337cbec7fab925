#include "common/metrics_catalog.h"

#include <string>

namespace kvcake::metrics {

Catalog::Catalog(Registry& r)
    : tier_capacity_bytes(
          r.AddGauge("kvcake_tier_capacity_bytes", "Configured capacity of a tier.", {"tier"})),
      tier_used_bytes(r.AddGauge("kvcake_tier_used_bytes", "Bytes held in a tier.", {"tier"})),
      tier_blocks(r.AddGauge("kvcake_tier_blocks", "Blocks held in a tier.", {"tier"})),
      hits(r.AddCounter("kvcake_hits_total", "Lookups served from a tier.", {"tier"})),
      misses(r.AddCounter("kvcake_misses_total",
                          "Gets that looked in a tier and did not find the block there (tiers are "
                          "searched gpu, host, ssd).",
                          {"tier"})),
      promotions(r.AddCounter("kvcake_promotions_total", "Blocks moved to a faster tier, by path.",
                              {"from", "to"})),
      demotions(r.AddCounter("kvcake_demotions_total", "Blocks moved to a slower tier, by path.",
                             {"from", "to"})),
      moved_bytes(r.AddCounter("kvcake_moved_bytes_total", "Bytes moved between tiers, by path.",
                               {"from", "to"})),
      drops(r.AddCounter("kvcake_drops_total", "Blocks dropped from a tier, by reason.",
                         {"tier", "reason"})),
      requests(r.AddCounter("kvcake_requests_total", "Requests handled, by operation.", {"op"})),
      request_latency(r.AddHistogram("kvcake_request_duration_seconds",
                                     "Request latency, by operation.", {"op"})),
      errors(r.AddCounter("kvcake_errors_total", "Failed requests, by operation and status code.",
                          {"op", "code"})),
      leases_expired(
          r.AddCounter("kvcake_leases_expired_total", "Pins whose lease expired before release.")),
      transport_selected(r.AddGauge("kvcake_transport_selected",
                                    "1 for the transport selected for a peer.",
                                    {"peer", "transport"})),
      layer_budget_blocks(r.AddGauge("kvcake_cake_layer_budget_blocks",
                                     "CAKE per-layer budget in blocks, by namespace and tier.",
                                     {"namespace", "tier", "layer"})),
      build_info(
          r.AddGauge("kvcake_build_info", "Constant 1, labelled with the version.", {"version"})),
      start_time(r.AddGauge("kvcake_start_time_seconds", "Unix time the daemon started.")),
      admin_requests(r.AddCounter("kvcake_admin_requests_total",
                                  "Admin HTTP requests, by path and HTTP status.",
                                  {"path", "status"})),
      ssd_quarantines(r.AddCounter(
          "kvcake_ssd_quarantines_total",
          "Corrupt SSD tier directories moved aside at start (the tier started empty).")),
      admin_connections_closed(
          r.AddCounter("kvcake_admin_connections_closed_total",
                       "Admin HTTP connections closed by the server on a timeout or at the "
                       "connection limit, by reason.",
                       {"reason"})),
      cluster_up(r.AddGauge("kvcake_cluster_up",
                            "1 while cluster membership is up, 0 while etcd is unreachable.")),
      cluster_members(r.AddGauge("kvcake_cluster_members", "Live cluster members, self included.")),
      cluster_lookups(r.AddCounter("kvcake_cluster_lookups_total",
                                   "Prefix lookups sent to a directory owner, by result.",
                                   {"result"})),
      cluster_fetched_blocks(r.AddCounter("kvcake_cluster_fetched_blocks_total",
                                          "Blocks fetched from other members.")),
      cluster_fetched_bytes(
          r.AddCounter("kvcake_cluster_fetched_bytes_total", "Bytes fetched from other members.")),
      cluster_fetch_failures(r.AddCounter("kvcake_cluster_fetch_failures_total",
                                          "Fetches from other members that failed.")),
      cluster_fetch_seconds(r.AddCounter("kvcake_cluster_fetch_seconds_total",
                                         "Time spent fetching from other members.")),
      cluster_published(r.AddCounter("kvcake_cluster_published_chains_total",
                                     "Chains published to directory owners.")),
      cluster_publish_failures(r.AddCounter("kvcake_cluster_publish_failures_total",
                                            "Chains that could not be published.")),
      cluster_directory_chains(r.AddGauge("kvcake_cluster_directory_chains",
                                          "Chains in the directory shard this member owns.")),
      cluster_keepalive_failures(r.AddCounter("kvcake_cluster_keepalive_failures_total",
                                              "etcd lease keep-alives that failed.")),
      cluster_rejoins(
          r.AddCounter("kvcake_cluster_rejoins_total",
                       "Membership keys re-created after a lost lease or etcd outage.")),
      cluster_handoffs(r.AddCounter("kvcake_cluster_handoffs_total",
                                    "Prefill to decode hand-offs, by event (started and failed "
                                    "on the sender, completed on the receiver).",
                                    {"event"})),
      cluster_handoff_bytes_forwarded(r.AddCounter("kvcake_cluster_handoff_bytes_forwarded_total",
                                                   "Bytes pushed to hand-off targets.")),
      cluster_handoff_blocks_received(r.AddCounter("kvcake_cluster_handoff_blocks_received_total",
                                                   "Values stored for incoming hand-offs.")),
      cluster_handoff_waits(r.AddCounter("kvcake_cluster_handoff_waits_total",
                                         "Requests that waited for a hand-off, by outcome.",
                                         {"outcome"})),
      cluster_handoffs_received(
          r.AddCounter("kvcake_cluster_handoffs_received_total",
                       "Hand-offs this member is the target of, by outcome: announced, "
                       "completed, or failed on the prefill side (aborted: its engine "
                       "disconnected or gave it up; unavailable: its member left; other).",
                       {"outcome"})),
      registry_(r) {
  for (size_t i = 0; i < kTiers; ++i) {
    std::string ti(TierName(static_cast<Tier>(i)));
    hit_[i] = hits.WithLabels({ti});
    miss_[i] = misses.WithLabels({ti});
    if (i >= static_cast<size_t>(kNumLocalTiers)) continue;
    // Paths between local tiers are pre-resolved (and exported from the
    // start); paths involving a peer appear when first used.
    for (size_t j = 0; j < static_cast<size_t>(kNumLocalTiers); ++j) {
      if (i == j) continue;
      std::string tj(TierName(static_cast<Tier>(j)));
      // Promotions go to a faster (lower-numbered) tier, demotions to a slower one.
      if (j < i) promotion_[i][j] = promotions.WithLabels({ti, tj});
      if (j > i) demotion_[i][j] = demotions.WithLabels({ti, tj});
      moved_[i][j] = moved_bytes.WithLabels({ti, tj});
    }
  }
}

Catalog& Catalog::Default() {
  static Catalog* catalog = new Catalog(Registry::Default());
  return *catalog;
}

Counter* Catalog::Promotion(Tier from, Tier to) const {
  Counter* c = promotion_[Index(from)][Index(to)];
  return c != nullptr
             ? c
             : promotions.WithLabels({std::string(TierName(from)), std::string(TierName(to))});
}

Counter* Catalog::Demotion(Tier from, Tier to) const {
  Counter* c = demotion_[Index(from)][Index(to)];
  return c != nullptr
             ? c
             : demotions.WithLabels({std::string(TierName(from)), std::string(TierName(to))});
}

Counter* Catalog::MovedBytes(Tier from, Tier to) const {
  Counter* c = moved_[Index(from)][Index(to)];
  return c != nullptr
             ? c
             : moved_bytes.WithLabels({std::string(TierName(from)), std::string(TierName(to))});
}

Counter* Catalog::Drop(Tier tier, std::string_view reason) const {
  return drops.WithLabels({std::string(TierName(tier)), std::string(reason)});
}

void Catalog::RecordPromotion(Tier from, Tier to, uint64_t bytes) const {
  Promotion(from, to)->Increment();
  MovedBytes(from, to)->Increment(bytes);
}

void Catalog::RecordDemotion(Tier from, Tier to, uint64_t bytes) const {
  Demotion(from, to)->Increment();
  MovedBytes(from, to)->Increment(bytes);
}

void Catalog::RecordDrop(Tier tier, std::string_view reason) const {
  Drop(tier, reason)->Increment();
}

void Catalog::RecordError(std::string_view op, StatusCode code) const {
  errors.WithLabels({std::string(op), std::string(StatusCodeName(code))})->Increment();
}

Histogram* Catalog::Latency(std::string_view op) const {
  requests.WithLabels({std::string(op)})->Increment();
  return request_latency.WithLabels({std::string(op)});
}

}  // namespace kvcake::metrics
