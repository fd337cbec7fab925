#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace kvcake::replay {

// RequestTickPolicy: forwards every call to a policy, replacing the caller's
// tick by the index of the request being replayed (`*request`). Belady's
// oracle knows the future as request indices, while the TierManager counts
// its own operations; with this adapter the oracle can run on the store.
//
// Thread-safety: as the wrapped policy (not thread-safe); `*request` is read
// on every call, so the replay changes it only between store calls.
class RequestTickPolicy final : public policy::Policy {
 public:
  RequestTickPolicy(std::unique_ptr<policy::Policy> inner, const uint64_t* request)
      : inner_(std::move(inner)), request_(request) {}

  std::string_view name() const override { return inner_->name(); }
  void SetTierCapacity(Tier tier, uint64_t bytes) override { inner_->SetTierCapacity(tier, bytes); }
  void RegisterNamespace(uint64_t ns, uint32_t num_layers, uint64_t layer_block_bytes) override {
    inner_->RegisterNamespace(ns, num_layers, layer_block_bytes);
  }
  void OnInsert(const BlockKey& key, Tier tier, uint64_t bytes, uint64_t) override {
    inner_->OnInsert(key, tier, bytes, *request_);
  }
  void OnAccess(const BlockKey& key, Tier tier, uint64_t) override {
    inner_->OnAccess(key, tier, *request_);
  }
  void OnMove(const BlockKey& key, Tier from, Tier to, uint64_t) override {
    inner_->OnMove(key, from, to, *request_);
  }
  void OnRemove(const BlockKey& key, Tier tier) override { inner_->OnRemove(key, tier); }
  std::vector<BlockKey> SelectVictims(
      Tier tier, uint64_t bytes_to_free,
      const std::function<bool(const BlockKey&)>& eligible) override {
    return inner_->SelectVictims(tier, bytes_to_free, eligible);
  }
  bool Admit(const BlockKey& key, Tier to) override { return inner_->Admit(key, to); }
  std::vector<BlockKey> SelectPromotions(Tier tier, uint64_t bytes_available) override {
    return inner_->SelectPromotions(tier, bytes_available);
  }
  void ReportLayerSignal(uint64_t ns, const policy::LayerSignal& signal) override {
    inner_->ReportLayerSignal(ns, signal);
  }
  std::vector<int64_t> LayerBudgets(uint64_t ns, Tier tier) const override {
    return inner_->LayerBudgets(ns, tier);
  }

 private:
  std::unique_ptr<policy::Policy> inner_;
  const uint64_t* request_;
};

}  // namespace kvcake::replay
