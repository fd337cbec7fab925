#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "common/tier.h"
#include "policy/policy.h"
#include "tests/replay/attention_model.h"

namespace kvcake::replay {

// Capacities (in layer-blocks) and bandwidths of the modelled node.
struct TierSimOptions {
  uint64_t ns = 1;
  uint32_t num_layers = 32;
  uint64_t layer_block_bytes = 2 << 20;
  uint64_t gpu_blocks = 0;
  uint64_t host_blocks = 0;
  uint64_t ssd_blocks = 0;
  uint64_t max_ids = 0;          // dense block ids are < max_ids
  double host_to_gpu_gbps = 50;  // GB/s (1e9 bytes/s)
  double ssd_to_host_gbps = 7;
};

// Figures of one replay.
struct TierSimStats {
  uint64_t requests = 0;
  uint64_t accesses = 0;           // layer-blocks referenced
  std::array<uint64_t, 4> hits{};  // gpu, host, ssd, miss
  double attention_total = 0;      // sum of per-layer masses (= requests * layers)
  double attention_gpu = 0;        // mass of GPU-resident layer-blocks
  uint64_t gpu_to_host = 0, host_to_ssd = 0, ssd_to_host = 0, host_to_gpu = 0;  // blocks
  uint64_t dropped = 0;                                                         // blocks
  std::vector<double> reload_seconds;                                           // per request
  // Token-weighted (each layer-block counts its tokens): gpu, host, ssd, miss.
  std::array<double, 4> token_hits{};
};

// TierSim: the tier accounting of a node, driving a real policy::Policy the
// way store::TierManager does (OnInsert / OnAccess / OnMove / OnRemove,
// SelectVictims with an eligibility filter, Admit on demotion), without
// payloads. Each request needs all of its layer-blocks on the GPU: hits stay,
// host and SSD blocks are reloaded (SSD via host), misses are recomputed and
// inserted. Room is made before the request's blocks are placed, and the
// request's own blocks are never victims. Tiers are exclusive.
// Thread-safety: not thread-safe.
class TierSim {
 public:
  TierSim(policy::Policy* policy, TierSimOptions options);

  // Replays one request at logical time `tick`. `ids[b]` is a dense index
  // (< max_ids) of block b, `hashes[b]` its block hash, `tokens[b]` (if
  // given) its number of tokens (for the token-weighted hit counts; 1 each
  // otherwise).
  void Run(uint64_t tick, const std::vector<uint64_t>& ids, const std::vector<uint64_t>& hashes,
           const RequestAttention& attention, const std::vector<uint32_t>* tokens = nullptr);

  const TierSimStats& stats() const { return stats_; }
  uint64_t used(Tier t) const { return used_[static_cast<int>(t)]; }

 private:
  static constexpr uint8_t kAbsent = 255;
  uint64_t Cap(int t) const { return cap_[t]; }
  uint8_t& Where(uint64_t id, uint32_t layer) { return where_[id * options_.num_layers + layer]; }
  // Frees `blocks` slots in tier t (cascading down); returns slots freed.
  uint64_t MakeRoom(int t, uint64_t blocks, uint64_t tick);
  void Drop(const BlockKey& key, int t);
  uint8_t& WhereKey(const BlockKey& key) { return Where(IdOf(key.hash), key.layer); }
  // Dense id of a block hash seen in a request (open addressing: the hashes
  // are well mixed, so their low bits pick the slot).
  uint64_t IdOf(uint64_t hash) const;
  void AddId(uint64_t hash, uint64_t id);

  policy::Policy* policy_;
  TierSimOptions options_;
  std::array<uint64_t, kNumLocalTiers> cap_{};
  std::array<uint64_t, kNumLocalTiers> used_{};
  std::vector<uint8_t> where_;  // [id * layers + layer]: tier or kAbsent
  // block hash -> dense id: linear probing, slots_ a power of two, load <= 1/2.
  struct Slot {
    uint64_t hash;
    uint64_t id;  // kNoId: empty
  };
  static constexpr uint64_t kNoId = ~uint64_t{0};
  std::vector<Slot> slots_;
  std::vector<uint64_t> current_;  // [id]: 1 + the request in flight that uses it
  TierSimStats stats_;
  policy::LayerSignal signal_;  // reused buffer
};

}  // namespace kvcake::replay
