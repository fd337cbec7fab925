#include "transport/worker_loop.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <future>

#include "common/logging.h"

namespace kvcake::transport {

WorkerLoop::WorkerLoop(std::unique_ptr<UcxWorker> worker, std::string name,
                       std::chrono::microseconds poll_interval, std::chrono::microseconds busy_poll,
                       bool yield_when_idle)
    : worker_(std::move(worker)),
      name_(std::move(name)),
      poll_interval_(poll_interval),
      efd_(io_),
      poll_timer_(io_),
      busy_poll_(busy_poll),
      yield_when_idle_(yield_when_idle) {
  // The descriptor object closes what it holds: give it a dup of UCX's fd.
  const int fd = ::dup(worker_->event_fd());
  if (fd >= 0) {
    boost::system::error_code ec;
    efd_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      KVCAKE_LOG(ERROR) << name_ << ": cannot watch the UCX event fd: " << ec.message()
                        << " (falling back to timer polling)";
    }
  }
  if (!efd_.is_open()) poll_interval_ = std::min(poll_interval_, kFallbackPoll);
}

WorkerLoop::~WorkerLoop() { Stop(); }

void WorkerLoop::Start() {
  running_ = true;
  thread_ = std::thread([this] {
    thread_id_ = std::this_thread::get_id();
    auto guard = boost::asio::make_work_guard(io_);
    Progress();
    SchedulePoll();
    for (auto& t : tickers_) ScheduleTicker(t.get(), t->first);
    io_.run();
    thread_id_ = std::thread::id();
  });
}

void WorkerLoop::Stop() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
  running_ = false;
}

void WorkerLoop::Post(std::function<void()> fn) {
  boost::asio::post(io_, [this, fn = std::move(fn)] {
    fn();
    Progress();
  });
}

void WorkerLoop::RunSync(const std::function<void()>& fn) {
  if (InLoopThread() || !running_ || io_.stopped()) {
    fn();
    return;
  }
  std::promise<void> done;
  auto fut = done.get_future();
  Post([&] {
    fn();
    done.set_value();
  });
  fut.wait();
}

void WorkerLoop::AddTicker(std::chrono::milliseconds period, std::function<void()> fn) {
  AddAdaptiveTicker(period, [period, fn = std::move(fn)] {
    fn();
    return period;
  });
}

size_t WorkerLoop::AddAdaptiveTicker(std::chrono::milliseconds first,
                                     std::function<std::chrono::milliseconds()> fn) {
  auto t = std::make_unique<Ticker>();
  t->first = first;
  t->fn = std::move(fn);
  t->timer = std::make_unique<boost::asio::steady_timer>(io_);
  tickers_.push_back(std::move(t));
  return tickers_.size() - 1;
}

void WorkerLoop::HurryTicker(size_t id, std::chrono::milliseconds delay) {
  if (id >= tickers_.size()) return;
  Ticker* t = tickers_[id].get();
  if (t->due <= std::chrono::steady_clock::now() + delay) return;
  ScheduleTicker(t, delay);  // re-arming cancels the later wait
}

void WorkerLoop::ScheduleTicker(Ticker* t, std::chrono::milliseconds delay) {
  t->due = std::chrono::steady_clock::now() + delay;
  t->timer->expires_after(delay);
  t->timer->async_wait([this, t](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: Stop(), or re-armed by HurryTicker
    const std::chrono::milliseconds next = t->fn();
    Progress();
    ScheduleTicker(t, next);
  });
}

void WorkerLoop::SchedulePoll() {
  poll_timer_.expires_after(poll_interval_);
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Progress();
    SchedulePoll();
  });
}

void WorkerLoop::Progress() {
  ucp_worker_h w = worker_->get();
  bool progressed = false;
  while (ucp_worker_progress(w) != 0) progressed = true;
  const auto now = std::chrono::steady_clock::now();
  if (progressed) spin_deadline_ = now + busy_poll_;
  if (now < spin_deadline_) {
    // An idle spin gives the core away for a moment: on a small box the
    // thread that will produce the next event (the caller, the peer) may be
    // waiting for this very core.
    if (!progressed && yield_when_idle_) sched_yield();
    if (!spin_posted_) {
      spin_posted_ = true;
      boost::asio::post(io_, [this] {
        spin_posted_ = false;
        Progress();
      });
    }
    return;
  }
  for (;;) {
    while (ucp_worker_progress(w) != 0) {
    }
    const ucs_status_t st = ucp_worker_arm(w);
    if (st == UCS_ERR_BUSY) continue;  // events arrived meanwhile: drain again
    if (st != UCS_OK) {
      KVCAKE_LOG(ERROR) << name_ << ": ucp_worker_arm: " << ucs_status_string(st);
    }
    break;
  }
  WaitFd();
}

void WorkerLoop::WaitFd() {
  if (fd_wait_pending_ || !efd_.is_open()) return;
  fd_wait_pending_ = true;
  efd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                  [this](const boost::system::error_code& ec) {
                    fd_wait_pending_ = false;
                    if (ec) return;
                    Progress();
                  });
}

}  // namespace kvcake::transport
