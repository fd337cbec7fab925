#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "client/src/async_state.h"
#include "client/src/group_state.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "kvcake/client.h"

namespace kvcake::internal {

// What a PutStream shares with its worker thread: the groups submitted and
// not yet taken, in order.
//
// Thread-safety: thread-safe.
class PutQueue {
 public:
  using Item = std::pair<std::vector<PutBlock>, std::shared_ptr<GroupState>>;

  // Queues `item`; CANCELLED once the queue is stopped.
  Status Push(Item item) EXCLUDES(mu_);
  // Waits for the next item; false once stopped with nothing left.
  bool Pop(Item* item) EXCLUDES(mu_);
  // The stream or the client is going away: the worker drains, then exits.
  void Stop() EXCLUDES(mu_);

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<Item> items_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
};

// A layer-wise save (Client::OpenPutStream): Submit queues a group, the
// worker thread (Run) stores the groups in order with the client's put.
//
// Thread-safety: thread-compatible (one engine thread submits and waits);
// the queue and group states it shares with its worker are thread-safe.
class PutStreamImpl final : public PutStream {
 public:
  using PutFn = std::function<Status(std::span<const PutBlock>, std::vector<Status>*)>;

  // `max_group` bounds a group's size; `is_device` tells CUDA buffers apart.
  PutStreamImpl(size_t max_group, std::function<bool(const void*)> is_device);
  // Stops the queue and joins the worker, which stores what was queued first.
  ~PutStreamImpl() override;

  Result<size_t> Submit(std::vector<PutBlock> group) override;
  size_t size() const override { return groups_.size(); }
  Status Wait(size_t index, std::chrono::milliseconds timeout) override {
    return WaitGroup(groups_, index, timeout);
  }
  const std::vector<Status>& per_value(size_t index) const override {
    return groups_[index]->per_value();
  }

  const std::shared_ptr<PutQueue>& queue() const { return queue_; }
  std::thread* worker() { return &worker_; }

  // The worker: stores queued groups in order with `put` until the queue is
  // stopped and empty. Once the client is closing, queued groups fail with
  // CANCELLED instead. Ends with async->Done(kWorker).
  static void Run(std::shared_ptr<PutQueue> queue, std::shared_ptr<AsyncState> async, PutFn put);

 private:
  const size_t max_group_;
  const std::function<bool(const void*)> is_device_;
  const std::shared_ptr<PutQueue> queue_ = std::make_shared<PutQueue>();
  std::vector<std::shared_ptr<GroupState>> groups_;
  std::thread worker_;
};

}  // namespace kvcake::internal
