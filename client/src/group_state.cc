#include "client/src/group_state.h"

#include <string>
#include <utility>

namespace kvcake::internal {

void GroupState::Complete(Status status, std::vector<bool> found) {
  {
    MutexLock lock(&mu_);
    status_ = std::move(status);
    found_ = std::move(found);
    done_ = true;
  }
  cv_.NotifyAll();
}

void GroupState::CompletePut(Status status, std::vector<Status> per_value) {
  {
    MutexLock lock(&mu_);
    status_ = std::move(status);
    per_value_ = std::move(per_value);
    done_ = true;
  }
  cv_.NotifyAll();
}

Status GroupState::Wait(size_t index, std::chrono::milliseconds timeout) {
  MutexLock lock(&mu_);
  if (!cv_.WaitFor(&lock, timeout, [&]() REQUIRES(mu_) { return done_; })) {
    return DeadlineExceededError("group " + std::to_string(index) + " not complete after " +
                                 std::to_string(timeout.count()) + " ms");
  }
  return status_;
}

Status WaitGroup(const std::vector<std::shared_ptr<GroupState>>& groups, size_t index,
                 std::chrono::milliseconds timeout) {
  if (index >= groups.size()) return OutOfRangeError("no such group");
  return groups[index]->Wait(index, timeout);
}

}  // namespace kvcake::internal
