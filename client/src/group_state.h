#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace kvcake::internal {

// One outstanding group of a layer-wise get (PendingGetImpl) or of a put
// stream (PutStreamImpl): completed once by whoever runs it, waited for by
// the engine.
//
// Thread-safety: thread-safe. found() and per_value() are read by the waiter
// only after a wait saw the group complete; they are not written after that.
class GroupState {
 public:
  // Completes a get group: its status and which values were found.
  void Complete(Status status, std::vector<bool> found) EXCLUDES(mu_);
  // Completes a put group: its status and each value's.
  void CompletePut(Status status, std::vector<Status> per_value) EXCLUDES(mu_);
  // Waits up to `timeout` for completion: the group's status, or
  // DEADLINE_EXCEEDED naming group `index`.
  Status Wait(size_t index, std::chrono::milliseconds timeout) EXCLUDES(mu_);

  const std::vector<bool>& found() const NO_THREAD_SAFETY_ANALYSIS { return found_; }
  const std::vector<Status>& per_value() const NO_THREAD_SAFETY_ANALYSIS { return per_value_; }

 private:
  Mutex mu_;
  CondVar cv_;
  bool done_ GUARDED_BY(mu_) = false;
  Status status_ GUARDED_BY(mu_);
  std::vector<bool> found_ GUARDED_BY(mu_);        // gets
  std::vector<Status> per_value_ GUARDED_BY(mu_);  // puts
};

// Waits for `groups[index]`: its status, or DEADLINE_EXCEEDED / OUT_OF_RANGE.
Status WaitGroup(const std::vector<std::shared_ptr<GroupState>>& groups, size_t index,
                 std::chrono::milliseconds timeout);

}  // namespace kvcake::internal
