#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "policy/policy.h"
#include "policy/serving_mode.h"
#include "store/clock.h"
#include "store/store_stats.h"
#include "store/tier_manager.h"
#include "tests/replay/attention_model.h"
#include "tests/replay/tier_sim.h"

namespace kvcake::replay {

// Geometry, capacities and the modelled node of a store replay.
struct StoreReplayOptions {
  uint64_t ns = 1;
  uint32_t num_layers = 32;
  // Modelled bytes of one layer-block: reload time and bytes moved are
  // figured with it. The store holds `payload_bytes` per layer-block instead
  // (its extents are that size too), so capacities keep their proportions
  // while RocksDB and memory stay small.
  uint64_t layer_block_bytes = 2 << 20;
  uint64_t payload_bytes = 64;  // a power of two in [64, 4096]
  // Capacities in layer-blocks; each memory tier holds at least 4096 bytes
  // of payload (the store's smallest page).
  uint64_t gpu_blocks = 0;
  uint64_t host_blocks = 0;
  uint64_t ssd_blocks = 0;
  double host_to_gpu_gbps = 50;  // GB/s (1e9 bytes/s)
  double ssd_to_host_gbps = 7;
  // Modelled engine: a request's answer completes (and its blocks are
  // stored) after its reload, the prefill of its recomputed tokens and the
  // decode of its output tokens.
  double prefill_tokens_per_s = 10'000;
  double decode_ms_per_token = 20;
  // The mover runs once per this much modelled time (the daemon's
  // mover_interval_us), after every request and whenever a put finds its
  // tier full.
  uint64_t mover_interval_us = 20'000;
  // The replay namespace's serving mode (the policy sees it through the
  // TierManager, as it sees a registered namespace's).
  policy::ServingMode serving = policy::ServingMode::kExact;
  // The SSD tier (RocksDB) lives in a fresh directory under this one
  // (empty: $TMPDIR, else /tmp), removed when the replay ends.
  std::string tmp_parent;
};

// One request as the store replay sees it.
struct StoreRequest {
  uint64_t timestamp_ms = 0;
  std::vector<uint64_t> hashes;  // the prompt's prefix block hashes, in order
  std::vector<uint32_t> tokens;  // tokens of each block (token-weighted hits)
  // Blocks the answer completes (its output tokens extend the conversation):
  // stored when the answer is done. A later turn that extends this prompt
  // names them; for a last turn they are blocks nobody reads again.
  std::vector<uint64_t> output_hashes;
  uint64_t output_tokens = 0;
};

// StoreReplay: replays requests on the daemon's real store::TierManager and
// a real policy: emulated device tier, host tier, RocksDB SSD tier in a
// temporary directory, a ManualClock moved by the trace's timestamps, and the
// mover run synchronously (mover_interval_us = 0, RunMoverOnce) at defined
// points, so a replay is deterministic. Per request it does what an engine
// does: LookupPrefix on every layer (the usable prefix is the shortest of
// them: a position past it needs every layer recomputed), Get of every
// layer-block of the usable prefix (device hit: no copy; host hit: one
// host->GPU copy; SSD hit: an SSD read into host, then host->GPU), Put of every
// recomputed layer-block into host memory, then the CAKE layer signals
// (ReportLayerSignal). Promotions, demotions by the watermarks and SSD
// admission are the TierManager's and the policy's own.
//
// Thread-safety: not thread-safe.
class StoreReplay {
 public:
  static Result<std::unique_ptr<StoreReplay>> Open(std::unique_ptr<policy::Policy> policy,
                                                   StoreReplayOptions options);
  // Closes the store and removes the SSD directory.
  ~StoreReplay();
  StoreReplay(const StoreReplay&) = delete;
  StoreReplay& operator=(const StoreReplay&) = delete;

  // Replays one request. Requests must come in timestamp order (INVALID_ARGUMENT
  // otherwise, or when the attention does not match the request). A store
  // error that an engine would not shrug off is returned as is.
  Status Run(const StoreRequest& request, const RequestAttention& attention);
  // Stores the answers still in flight (call once after the last request).
  Status Finish();

  // The figures so far, from what the TierManager did: hits by the tier each
  // get was served from, blocks moved between tiers from its counters.
  TierSimStats Stats() const;
  store::StoreStats StoreStats() const { return store_->GetStats(); }
  store::TierManager& store() { return *store_; }
  // Layer-blocks that were stored but past the usable prefix (recomputed).
  uint64_t stranded() const { return stranded_; }
  // Puts the store refused (no room could be made): the block stays uncached.
  uint64_t put_failures() const { return put_failures_; }

 private:
  struct Answer {
    uint64_t done_us;
    uint64_t seq;  // ties: in request order
    std::vector<uint64_t> hashes;
    bool operator>(const Answer& o) const {
      return done_us != o.done_us ? done_us > o.done_us : seq > o.seq;
    }
  };
  StoreReplay(StoreReplayOptions options, std::string dir);
  // Moves the clock to `us`, running the mover once per interval on the way
  // (stopping early once a run finds nothing to do).
  void AdvanceTo(uint64_t us);
  // Stores the answers done by `us` (the clock advanced to each).
  Status StoreAnswersUntil(uint64_t us);
  // Puts every layer of `hash` that is not stored; counts refusals.
  Status PutBlock(uint64_t hash, uint32_t layer);

  StoreReplayOptions options_;
  std::string dir_;
  std::shared_ptr<store::ManualClock> clock_;
  std::unique_ptr<store::TierManager> store_;
  std::vector<char> payload_;
  std::vector<char> buf_;
  std::priority_queue<Answer, std::vector<Answer>, std::greater<>> answers_;
  uint64_t seq_ = 0;
  uint64_t last_arrival_us_ = 0;
  TierSimStats stats_;
  uint64_t reload_host_to_gpu_ = 0;  // engine copies (layer-blocks)
  uint64_t reload_ssd_to_host_ = 0;  // engine SSD reads (layer-blocks)
  uint64_t get_promotions_ = 0;      // SSD -> host moves made by the gets
  uint64_t stranded_ = 0;
  uint64_t put_failures_ = 0;
  policy::LayerSignal signal_;  // reused buffer
  std::vector<std::vector<Tier>> tiers_;
};

}  // namespace kvcake::replay
