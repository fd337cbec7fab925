#pragma once

// WorkerLoop: one I/O thread = one Boost.Asio io_context driving one UCX
// worker (UCS_THREAD_MODE_SINGLE). Progress is event driven: drain
// ucp_worker_progress(), ucp_worker_arm(), then wait asynchronously on the
// worker's event fd (asio::posix::stream_descriptor), with a periodic timer
// (default 1 ms) as a fallback for missed wakeups.
//
// Thread-safety: Post()/RunSync()/InLoopThread() are thread-safe; everything
// that touches the UCX worker must run on the loop thread (inside Post()ed
// functions, tickers, or UCX callbacks fired by Progress()).

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "transport/ucx.h"

namespace kvcake::transport {

class WorkerLoop {
 public:
  // `busy_poll`: after the worker made progress, keep progressing for this
  // long before arming the event fd and sleeping (0: sleep at once).
  // `yield_when_idle`: a polling round that found nothing calls
  // sched_yield() (see UcxOptions::busy_poll_yield).
  // `poll_interval`: the worker is also progressed on this timer, as a
  // safety net behind the event fd (and as the only driver when the fd cannot
  // be watched, in which case the interval is capped at kFallbackPoll). Every
  // tick wakes the thread, so keep it long: an idle kvcaked with two I/O
  // threads polling every 1 ms took ~1950 wake-ups/s (3 % of a core).
  WorkerLoop(std::unique_ptr<UcxWorker> worker, std::string name,
             std::chrono::microseconds poll_interval = kSafetyPoll,
             std::chrono::microseconds busy_poll = kDefaultBusyPoll, bool yield_when_idle = true);
  static constexpr std::chrono::microseconds kDefaultBusyPoll{100};
  static constexpr std::chrono::microseconds kSafetyPoll{50000};
  static constexpr std::chrono::microseconds kFallbackPoll{1000};
  // Stops the thread if still running.
  ~WorkerLoop();
  WorkerLoop(const WorkerLoop&) = delete;
  WorkerLoop& operator=(const WorkerLoop&) = delete;

  // Starts the I/O thread.
  void Start();
  // Stops the io_context and joins the thread. Idempotent. Not from the loop.
  void Stop();

  // Runs `fn` on the loop thread, then progresses the worker.
  void Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and waits for it (or runs it inline when
  // already on the loop thread or when the loop is not running).
  void RunSync(const std::function<void()>& fn);
  bool InLoopThread() const { return std::this_thread::get_id() == thread_id_.load(); }
  bool running() const { return running_.load(); }

  // Calls `fn` on the loop every `period` (first call after one period).
  // Must be called before Start().
  void AddTicker(std::chrono::milliseconds period, std::function<void()> fn);
  // Calls `fn` on the loop after `first`, then again after whatever delay
  // each call returns (a ticker that can slow down while there is nothing to
  // watch). Returns an id for HurryTicker. Must be called before Start().
  size_t AddAdaptiveTicker(std::chrono::milliseconds first,
                           std::function<std::chrono::milliseconds()> fn);
  // Loop thread only: ticker `id` fires within `delay` (no-op when it is
  // already due by then).
  void HurryTicker(size_t id, std::chrono::milliseconds delay);

  // Drains the worker's progress and re-arms the event fd wait. Loop thread.
  void Progress();

  ucp_worker_h worker() const { return worker_->get(); }
  const UcxWorker& ucx_worker() const { return *worker_; }
  boost::asio::io_context& io() { return io_; }

 private:
  struct Ticker {
    std::chrono::milliseconds first;
    std::function<std::chrono::milliseconds()> fn;  // returns the next delay
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::chrono::steady_clock::time_point due{};
  };
  void WaitFd();
  void SchedulePoll();
  void ScheduleTicker(Ticker* t, std::chrono::milliseconds delay);

  std::unique_ptr<UcxWorker> worker_;
  std::string name_;
  std::chrono::microseconds poll_interval_;
  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor efd_;
  boost::asio::steady_timer poll_timer_;
  std::vector<std::unique_ptr<Ticker>> tickers_;
  bool fd_wait_pending_ = false;
  // Busy-poll window: after the worker made progress, keep progressing (as
  // self-posted handlers, so work posted by other threads interleaves) for up
  // to busy_poll_ before arming the event fd and sleeping. A request that
  // follows its predecessor closely then costs no fd wake-up, which on a
  // virtual machine is tens of microseconds. Loop thread only.
  const std::chrono::microseconds busy_poll_;
  const bool yield_when_idle_;
  std::chrono::steady_clock::time_point spin_deadline_{};
  bool spin_posted_ = false;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> running_{false};
};

}  // namespace kvcake::transport
