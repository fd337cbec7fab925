#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace kvcake::internal {

class PutQueue;

// What a client's asynchronous work shares with the client, so a client can
// be destroyed while a layer-wise get or a put stream is in flight: closing
// the client (BeginClose) makes requests not yet sent fail with CANCELLED
// instead of being sent, and the client waits (WaitIdle) for the ones
// running. Completion callbacks touch only this, never the client.
//
// Thread-safety: thread-safe.
class AsyncState {
 public:
  // What runs on the client's behalf.
  enum class Work {
    kUcxGroup,  // a GetAsync group whose UCX requests are running
    kWorker,    // a GetAsync mapped-path worker or a put-stream worker thread
  };

  // True once the client is closing.
  bool Closing() const EXCLUDES(mu_);
  // Counts one piece of work; false (and nothing counted) once closing.
  bool Add(Work work) EXCLUDES(mu_);
  // Ends one piece of work counted by Add. The client may be destroyed as soon
  // as this returns, so it is the last thing a piece of work does with it.
  void Done(Work work) EXCLUDES(mu_);
  // Add(kWorker) for a put stream's worker, remembering its queue so that
  // closing the client stops it.
  bool AddPutStream(std::weak_ptr<PutQueue> queue) EXCLUDES(mu_);

  // Marks the client closing; returns the put streams' queues to stop.
  std::vector<std::weak_ptr<PutQueue>> BeginClose() EXCLUDES(mu_);
  // Waits for every worker (each of their calls has a deadline), then up to
  // `ucx_timeout` for the UCX groups; returns how many of those still run.
  int WaitIdle(std::chrono::milliseconds ucx_timeout) EXCLUDES(mu_);

 private:
  int& Counter(Work work) REQUIRES(mu_) { return work == Work::kUcxGroup ? ucx_groups_ : workers_; }

  mutable Mutex mu_;
  CondVar cv_;
  bool closing_ GUARDED_BY(mu_) = false;
  int ucx_groups_ GUARDED_BY(mu_) = 0;
  int workers_ GUARDED_BY(mu_) = 0;
  // Put streams' queues, told to stop when the client closes.
  std::vector<std::weak_ptr<PutQueue>> put_queues_ GUARDED_BY(mu_);
};

// Starts `fn` on `*thread`: RESOURCE_EXHAUSTED instead of the exception
// std::thread throws when the system has no thread to give.
Status StartThread(std::thread* thread, std::function<void()> fn);

}  // namespace kvcake::internal
