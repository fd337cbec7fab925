#include "tests/replay/tier_sim.h"

namespace kvcake::replay {

TierSim::TierSim(policy::Policy* policy, TierSimOptions options)
    : policy_(policy), options_(options) {
  cap_ = {options.gpu_blocks, options.host_blocks, options.ssd_blocks};
  for (int t = 0; t < kNumLocalTiers; ++t) {
    policy_->SetTierCapacity(static_cast<Tier>(t), cap_[t] * options.layer_block_bytes);
  }
  policy_->RegisterNamespace(options.ns, options.num_layers, options.layer_block_bytes);
  where_.assign(options.max_ids * options.num_layers, kAbsent);
  current_.assign(options.max_ids, 0);
  size_t n = 64;
  while (n < 2 * options.max_ids) n *= 2;
  slots_.assign(n, Slot{0, kNoId});
}

uint64_t TierSim::IdOf(uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    if (slots_[i].id == kNoId || slots_[i].hash == hash) return slots_[i].id;
  }
}

void TierSim::AddId(uint64_t hash, uint64_t id) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    if (slots_[i].id == kNoId) {
      slots_[i] = Slot{hash, id};
      return;
    }
    if (slots_[i].hash == hash) return;
  }
}

void TierSim::Drop(const BlockKey& key, int t) {
  policy_->OnRemove(key, static_cast<Tier>(t));
  WhereKey(key) = kAbsent;
  --used_[t];
  ++stats_.dropped;
}

uint64_t TierSim::MakeRoom(int t, uint64_t blocks, uint64_t tick) {
  if (blocks == 0) return 0;
  const uint64_t bytes = blocks * options_.layer_block_bytes;
  const uint64_t now = stats_.requests;  // 1 + the request in flight
  auto eligible = [&](const BlockKey& k) { return current_[IdOf(k.hash)] != now; };
  std::vector<BlockKey> victims = policy_->SelectVictims(static_cast<Tier>(t), bytes, eligible);
  if (victims.size() > blocks) victims.resize(blocks);
  if (t + 1 >= kNumLocalTiers) {
    for (const BlockKey& k : victims) Drop(k, t);
    return victims.size();
  }
  const int to = t + 1;
  std::vector<BlockKey> admitted;
  for (const BlockKey& k : victims) {
    if (policy_->Admit(k, static_cast<Tier>(to))) {
      admitted.push_back(k);
    } else {
      Drop(k, t);
    }
  }
  const uint64_t free_below = Cap(to) - used_[to];
  uint64_t room = free_below;
  if (admitted.size() > free_below) room += MakeRoom(to, admitted.size() - free_below, tick);
  for (const BlockKey& k : admitted) {
    if (room == 0) {
      Drop(k, t);
      continue;
    }
    --room;
    policy_->OnMove(k, static_cast<Tier>(t), static_cast<Tier>(to), tick);
    WhereKey(k) = static_cast<uint8_t>(to);
    --used_[t];
    ++used_[to];
    if (t == 0) {
      ++stats_.gpu_to_host;
    } else {
      ++stats_.host_to_ssd;
    }
  }
  return victims.size();
}

void TierSim::Run(uint64_t tick, const std::vector<uint64_t>& ids,
                  const std::vector<uint64_t>& hashes, const RequestAttention& attention,
                  const std::vector<uint32_t>* tokens) {
  const uint32_t layers = options_.num_layers;
  const size_t n = hashes.size();
  ++stats_.requests;
  for (size_t b = 0; b < n; ++b) {
    AddId(hashes[b], ids[b]);
    current_[ids[b]] = stats_.requests;
  }
  // 1. Where is everything (before this request moves anything)?
  std::vector<uint8_t> loc(n * layers);
  uint64_t not_on_gpu = 0;
  for (size_t b = 0; b < n; ++b) {
    for (uint32_t l = 0; l < layers; ++l) {
      const uint8_t w = Where(ids[b], l);
      loc[b * layers + l] = w;
      ++stats_.accesses;
      ++stats_.hits[w == kAbsent ? 3 : w];
      stats_.token_hits[w == kAbsent ? 3 : w] += tokens != nullptr ? (*tokens)[b] : 1;
      const double mass = attention.Mass(l, static_cast<uint32_t>(b));
      stats_.attention_total += mass;
      if (w == 0) {
        stats_.attention_gpu += mass;
      } else {
        ++not_on_gpu;
      }
    }
  }
  // 2. Make room on the GPU for the request's blocks.
  const uint64_t free_gpu = Cap(0) - used_[0];
  if (not_on_gpu > free_gpu) MakeRoom(0, not_on_gpu - free_gpu, tick);
  // 3. Reload / recompute onto the GPU.
  uint64_t h2g = 0;
  uint64_t s2h = 0;
  for (size_t b = 0; b < n; ++b) {
    for (uint32_t l = 0; l < layers; ++l) {
      const BlockKey key{options_.ns, hashes[b], l};
      const uint8_t w = loc[b * layers + l];
      const bool gpu_room = used_[0] < Cap(0);
      if (w == 0) {
        policy_->OnAccess(key, Tier::kDevice, tick);
      } else if (w == kAbsent) {
        if (gpu_room) {
          policy_->OnInsert(key, Tier::kDevice, options_.layer_block_bytes, tick);
          Where(ids[b], l) = 0;
          ++used_[0];
        }
      } else {
        // Host hit: one host->GPU copy; SSD hit: SSD->host staging, then host->GPU.
        ++h2g;
        if (w == 2) ++s2h;
        if (gpu_room) {
          policy_->OnMove(key, static_cast<Tier>(w), Tier::kDevice, tick);
          policy_->OnAccess(key, Tier::kDevice, tick);
          Where(ids[b], l) = 0;
          --used_[w];
          ++used_[0];
        } else {
          policy_->OnAccess(key, static_cast<Tier>(w), tick);
        }
      }
    }
  }
  stats_.host_to_gpu += h2g;
  stats_.ssd_to_host += s2h;
  const double bytes = static_cast<double>(options_.layer_block_bytes);
  stats_.reload_seconds.push_back(h2g * bytes / (options_.host_to_gpu_gbps * 1e9) +
                                  s2h * bytes / (options_.ssd_to_host_gbps * 1e9));
  // 4. The engine reports this prompt's CAKE signals.
  for (uint32_t l = 0; l < attention.layers; ++l) {
    attention.FillSignal(l, hashes, &signal_);
    policy_->ReportLayerSignal(options_.ns, signal_);
  }
}

}  // namespace kvcake::replay
