#pragma once

// MemoryBackend: a small, self-consistent in-memory AdminBackend used to test
// the admin HTTP layer (AdminRouter/AdminServer) on its own. It keeps real
// state (blocks, pins, config, drain progress) so every endpoint's effect is
// observable through the API; it also records the last filter it was given.
// Thread-safe (one mutex).

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/block_hash.h"
#include "daemon/admin/admin_backend.h"

namespace kvcake::admin::testing {

class MemoryBackend : public AdminBackend {
 public:
  MemoryBackend() {
    NamespaceInfo ns;
    ns.name = "llama";
    ns.id = NamespaceSeed("llama");
    ns.model = "llama-3-8b";
    ns.dtype = "fp16";
    ns.num_layers = 4;
    ns.block_tokens = 16;
    ns.layer_block_bytes = 4096;
    ns.budgets = {{Tier::kDevice, {2, 3, 1, 2}}};
    namespaces_.push_back(ns);
    for (uint64_t h = 1; h <= 3; ++h) {
      for (uint32_t layer = 0; layer < 4; ++layer) {
        BlockInfo b;
        b.key = {ns.id, h, layer};
        b.tier = layer % 2 ? Tier::kHost : Tier::kDevice;
        b.size_bytes = 4096;
        b.state = "committed";
        blocks_[b.key] = b;
      }
    }
    config_["tier.host.capacity_bytes"] = "1048576";
    config_["policy.gamma"] = "200";
  }

  Result<DaemonStatus> GetStatus() override {
    std::lock_guard<std::mutex> l(mu_);
    DaemonStatus s;
    s.version = "0.1.0-test";
    s.node_id = "node-a";
    s.uptime_seconds = 1.5;
    s.policy = "cake";
    s.transports = {"ucx:tcp"};
    s.peers = {{"10.0.0.2:18515", "tcp"}};
    s.draining = drain_.active;
    for (Tier t : {Tier::kDevice, Tier::kHost, Tier::kSsd}) {
      TierStatus ts;
      ts.tier = t;
      ts.capacity_bytes = 1 << 20;
      for (const auto& [k, b] : blocks_) {
        if (b.tier == t) {
          ts.blocks++;
          ts.used_bytes += b.size_bytes;
        }
      }
      s.tiers.push_back(ts);
    }
    return s;
  }

  Result<DaemonStats> GetStats() override {
    std::lock_guard<std::mutex> l(mu_);
    DaemonStats s;
    s.puts = blocks_.size();
    s.gets = 7;
    s.tiers = {{Tier::kDevice, 5, 2, 0, {}},
               {Tier::kHost, 1, 1, 3, {{"admission", 2}, {"corrupt", 1}}}};
    s.demotions = {{Tier::kDevice, Tier::kHost, demoted_, demoted_ * 4096}};
    return s;
  }

  Result<std::vector<NamespaceInfo>> ListNamespaces() override {
    std::lock_guard<std::mutex> l(mu_);
    auto out = namespaces_;
    for (auto& n : out) {
      for (const auto& [k, b] : blocks_) {
        if (k.ns == n.id) {
          n.blocks++;
          n.bytes += b.size_bytes;
        }
      }
    }
    return out;
  }

  Result<std::vector<BlockInfo>> ListBlocks(const BlockFilter& f) override {
    std::lock_guard<std::mutex> l(mu_);
    last_filter_ = f;
    std::vector<BlockInfo> out;
    for (const auto& [k, b] : blocks_) {
      if (Matches(f, b) && out.size() < f.limit) out.push_back(b);
    }
    return out;
  }

  Result<EvictResult> Evict(const BlockFilter& f) override {
    std::lock_guard<std::mutex> l(mu_);
    last_filter_ = f;
    if (!f.ns) return InvalidArgumentError("ns required");
    EvictResult r;
    for (auto it = blocks_.begin(); it != blocks_.end();) {
      if (Matches(f, it->second) && it->second.pin_count == 0) {
        it = blocks_.erase(it);
        ++r.evicted;
      } else {
        r.skipped_pinned += Matches(f, it->second);
        ++it;
      }
    }
    return r;
  }

  Result<uint64_t> Pin(const BlockFilter& f) override { return AdjustPins(f, +1); }
  Result<uint64_t> Unpin(const BlockFilter& f) override { return AdjustPins(f, -1); }

  Status StartDrain() override {
    std::lock_guard<std::mutex> l(mu_);
    if (drain_.active) return Status::Ok();
    drain_ = {};
    drain_.active = true;
    for (const auto& [k, b] : blocks_) {
      if (b.tier != Tier::kSsd) {
        drain_.total_blocks++;
        drain_.total_bytes += b.size_bytes;
      }
    }
    return Status::Ok();
  }

  // Each poll moves one block down to SSD, so progress is visible.
  Result<DrainProgress> GetDrain() override {
    std::lock_guard<std::mutex> l(mu_);
    if (drain_.active) {
      for (auto& [k, b] : blocks_) {
        if (b.tier != Tier::kSsd && b.pin_count == 0) {
          b.tier = Tier::kSsd;
          drain_.moved_blocks++;
          drain_.moved_bytes += b.size_bytes;
          ++demoted_;
          break;
        }
      }
      if (drain_.moved_blocks >= drain_.total_blocks) {
        drain_.active = false;
        drain_.done = true;
      }
    }
    return drain_;
  }

  Result<std::vector<ConfigEntry>> GetConfig() override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<ConfigEntry> out;
    for (const auto& [k, v] : config_) out.push_back({k, v, "test knob"});
    return out;
  }

  Status SetConfig(const std::vector<std::pair<std::string, std::string>>& updates) override {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [k, v] : updates) {
      if (!config_.count(k)) return NotFoundError("unknown knob " + k);
      if (v.empty() || v.find_first_not_of("0123456789.") != std::string::npos) {
        return InvalidArgumentError("bad value for " + k + ": " + v);
      }
    }
    for (const auto& [k, v] : updates) config_[k] = v;
    return Status::Ok();
  }

  BlockFilter last_filter() {
    std::lock_guard<std::mutex> l(mu_);
    return last_filter_;
  }

 private:
  static bool Matches(const BlockFilter& f, const BlockInfo& b) {
    return (!f.ns || *f.ns == b.key.ns) && (!f.hash || *f.hash == b.key.hash) &&
           (!f.layer || *f.layer == b.key.layer) && (!f.tier || *f.tier == b.tier);
  }

  Result<uint64_t> AdjustPins(const BlockFilter& f, int delta) {
    std::lock_guard<std::mutex> l(mu_);
    last_filter_ = f;
    uint64_t n = 0;
    for (auto& [k, b] : blocks_) {
      if (!Matches(f, b)) continue;
      if (delta < 0 && b.pin_count == 0) continue;
      b.pin_count += delta;
      ++n;
    }
    return n;
  }

  std::mutex mu_;
  std::vector<NamespaceInfo> namespaces_;
  std::map<BlockKey, BlockInfo> blocks_;
  std::map<std::string, std::string> config_;
  DrainProgress drain_;
  uint64_t demoted_ = 0;
  BlockFilter last_filter_;
};

}  // namespace kvcake::admin::testing
