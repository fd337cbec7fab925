#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "client/src/group_state.h"
#include "kvcake/client.h"

namespace kvcake::internal {

// A layer-wise get in flight (Client::GetAsync): one GroupState per group,
// completed by the UCX data path's callbacks or, on the same node, by one
// worker thread that copies the groups in order.
//
// Thread-safety: thread-compatible (the engine's thread waits); the group
// states it shares with the completing side are thread-safe.
class PendingGetImpl final : public PendingGet {
 public:
  // `n` groups; the destructor waits for each up to `max_wait` + 1 s.
  PendingGetImpl(size_t n, std::chrono::milliseconds max_wait);
  // Buffers must not be written after it returns: waits for every group and
  // joins the worker.
  ~PendingGetImpl() override;

  size_t size() const override { return groups_.size(); }
  Status Wait(size_t index, std::chrono::milliseconds timeout) override {
    return WaitGroup(groups_, index, timeout);
  }
  const std::vector<bool>& found(size_t index) const override { return groups_[index]->found(); }

  const std::vector<std::shared_ptr<GroupState>>& groups() const { return groups_; }
  // The mapped path's worker thread, joined by the destructor.
  std::thread* worker() { return &worker_; }

 private:
  std::vector<std::shared_ptr<GroupState>> groups_;
  std::thread worker_;
  const std::chrono::milliseconds max_wait_;
};

}  // namespace kvcake::internal
