#include "client/src/put_stream.h"

#include <string>

#include "client/src/wire.h"

namespace kvcake::internal {

Status PutQueue::Push(Item item) {
  {
    // The worker exits only once the queue is stopped and empty, so a group
    // queued before Stop is always stored (or cancelled).
    MutexLock lock(&mu_);
    if (stop_) return ClosingError();
    items_.push_back(std::move(item));
  }
  cv_.NotifyOne();
  return Status::Ok();
}

bool PutQueue::Pop(Item* item) {
  MutexLock lock(&mu_);
  cv_.Wait(&lock, [&]() REQUIRES(mu_) { return stop_ || !items_.empty(); });
  if (items_.empty()) return false;
  *item = std::move(items_.front());
  items_.pop_front();
  return true;
}

void PutQueue::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
}

PutStreamImpl::PutStreamImpl(size_t max_group, std::function<bool(const void*)> is_device)
    : max_group_(max_group), is_device_(std::move(is_device)) {}

PutStreamImpl::~PutStreamImpl() {
  queue_->Stop();
  if (worker_.joinable()) worker_.join();
}

Result<size_t> PutStreamImpl::Submit(std::vector<PutBlock> group) {
  if (group.empty() || group.size() > max_group_) {
    return InvalidArgumentError("a put-stream group needs 1.." + std::to_string(max_group_) +
                                " values, got " + std::to_string(group.size()));
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (!group[i].data) return InvalidArgumentError("null buffer at " + std::to_string(i));
    if (is_device_ && is_device_(group[i].data)) {
      return UnimplementedError("put streams take host buffers; use Put for CUDA buffers");
    }
  }
  auto state = std::make_shared<GroupState>();
  RETURN_IF_ERROR(queue_->Push({std::move(group), state}));
  groups_.push_back(std::move(state));
  return groups_.size() - 1;
}

void PutStreamImpl::Run(std::shared_ptr<PutQueue> queue, std::shared_ptr<AsyncState> async,
                        PutFn put) {
  PutQueue::Item item;
  while (queue->Pop(&item)) {
    Status s;
    std::vector<Status> per_value;
    if (async->Closing()) {
      s = ClosingError();
    } else {
      s = put(item.first, &per_value);
    }
    if (per_value.size() != item.first.size()) per_value.assign(item.first.size(), s);
    item.second->CompletePut(std::move(s), std::move(per_value));
  }
  async->Done(AsyncState::Work::kWorker);  // the last use of the client
}

}  // namespace kvcake::internal
