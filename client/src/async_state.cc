#include "client/src/async_state.h"

#include <string>
#include <system_error>

namespace kvcake::internal {

bool AsyncState::Closing() const {
  MutexLock lock(&mu_);
  return closing_;
}

bool AsyncState::Add(Work work) {
  MutexLock lock(&mu_);
  if (closing_) return false;
  ++Counter(work);
  return true;
}

void AsyncState::Done(Work work) {
  MutexLock lock(&mu_);  // notify under the lock: the waiter
  --Counter(work);       // may destroy the client right after
  cv_.NotifyAll();
}

bool AsyncState::AddPutStream(std::weak_ptr<PutQueue> queue) {
  MutexLock lock(&mu_);
  if (closing_) return false;
  ++workers_;  // the client waits for this worker before it is destroyed
  std::erase_if(put_queues_, [](const std::weak_ptr<PutQueue>& q) { return q.expired(); });
  put_queues_.push_back(std::move(queue));
  return true;
}

std::vector<std::weak_ptr<PutQueue>> AsyncState::BeginClose() {
  std::vector<std::weak_ptr<PutQueue>> queues;
  MutexLock lock(&mu_);
  closing_ = true;
  queues.swap(put_queues_);
  return queues;
}

int AsyncState::WaitIdle(std::chrono::milliseconds ucx_timeout) {
  MutexLock lock(&mu_);
  cv_.Wait(&lock, [&]() REQUIRES(mu_) { return workers_ == 0; });
  cv_.WaitFor(&lock, ucx_timeout, [&]() REQUIRES(mu_) { return ucx_groups_ == 0; });
  return ucx_groups_;
}

Status StartThread(std::thread* thread, std::function<void()> fn) {
  try {
    *thread = std::thread(std::move(fn));
  } catch (const std::system_error& e) {
    return ResourceExhaustedError(std::string("kvcake client: cannot start a thread: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace kvcake::internal
