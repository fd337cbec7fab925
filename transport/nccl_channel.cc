// NcclCommPool with CUDA and NCCL (compiled only when KVCAKE_HAVE_CUDA).
//
// Ownership of an ncclComm_t: while a communicator is `watched` (an
// initialization or a transfer in flight) only the watchdog thread calls
// NCCL or CUDA on it; otherwise only the caller that holds it (`busy`) does.
// Every state change happens under the pool's mutex.

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "transport/nccl_channel.h"

namespace kvcake::transport {
namespace {

using Clock = std::chrono::steady_clock;

static_assert(sizeof(ncclUniqueId) == kNcclUniqueIdBytes, "ncclUniqueId size changed");

std::string Describe(const NcclPeer& p) {
  return "GPU " + std::to_string(p.local_device) + " to " +
         (p.node.empty() ? std::string("this process") : "node " + p.node) + " GPU " +
         std::to_string(p.peer_device);
}

std::string Key(const NcclPeer& p) {
  return std::to_string(p.local_device) + "/" + std::to_string(p.peer_device) + "/" + p.node;
}

Status CudaError(cudaError_t e, const std::string& what) {
  return UnavailableError("CUDA " + what + ": " + cudaGetErrorString(e));
}

// Makes `device` current for its lifetime, then restores the caller's.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

enum class Phase { kInit, kTransfer };

// One communicator. `comm`, `stream`, `done` and `event_recorded` belong to
// the watchdog while `watched`, else to the caller that set `busy`; the
// other fields are guarded by the pool's mutex.
struct Comm {
  std::string key;
  std::string what;  // Describe(peer), for messages
  int device = 0;
  int nranks = 0;
  int rank = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  bool event_recorded = false;

  bool ready = false;   // initialization completed
  bool failed = false;  // aborted (or never started); `failure` says why
  Status failure;
  bool busy = false;     // a caller holds it for an operation
  bool watched = false;  // an initialization or transfer in flight
  bool retire = false;   // abort when the caller holding it lets go
  Phase phase = Phase::kInit;
  Clock::time_point deadline;
  Status cancel;  // set while watched: the watchdog aborts with this status

  // Aborts the communicator (never waits for the peer).
  void Abort() {
    if (comm != nullptr) {
      DeviceScope d(device);
      ncclCommAbort(comm);
      comm = nullptr;
    }
  }
  ~Comm() {
    Abort();
    DeviceScope d(device);
    if (done != nullptr) cudaEventDestroy(done);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

// What one poll of a watched communicator found.
struct PollResult {
  bool finished = false;  // false: still in flight
  Status status;
  bool aborted = false;
  bool deadline = false;
};

}  // namespace

class NcclCommPool::Impl {
 public:
  explicit Impl(const NcclChannelOptions& options) : options_(options) {
    watchdog_ = std::thread([this] { WatchdogLoop(); });
  }

  ~Impl() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      wd_cv_.NotifyAll();
    }
    watchdog_.join();
    // The Comm destructors abort what is left.
    MutexLock l(&mu_);
    comms_.clear();
    watched_.clear();
  }

  Status Connect(const NcclPeer& peer, const ExchangeFn& exchange) {
    auto c = Acquire(peer, 2, 0, &exchange);
    if (!c.ok()) return c.status();
    Release(*c);
    return Status::Ok();
  }

  Status Join(const NcclPeer& peer, const NcclUniqueId& id) {
    auto c = std::make_shared<Comm>();
    c->key = Key(peer);
    c->what = Describe(peer);
    c->busy = true;
    std::vector<std::shared_ptr<Comm>> to_abort;
    {
      MutexLock l(&mu_);
      // The sender made a new communicator: the old one of this pair (if
      // any) is gone on its side.
      auto it = comms_.find(c->key);
      if (it != comms_.end()) {
        RetireLocked(it->second, UnavailableError("NCCL " + c->what + ": replaced by the peer"),
                     &to_abort);
      }
      comms_[c->key] = c;
    }
    AbortAll(to_abort);
    const Clock::time_point start = Clock::now();
    Status s = StartInit(*c, peer.local_device, 2, 1, id);
    MutexLock l(&mu_);
    if (!s.ok()) {
      FailLocked(c, s);
      return s;
    }
    ++stats_.comms_created;
    c->busy = false;
    WatchLocked(c, Phase::kInit, start + options_.init_timeout);
    return Status::Ok();
  }

  Status Send(const NcclPeer& peer, std::span<const ConstBuffer> buffers,
              const ExchangeFn& exchange, const AnnounceFn& announce) {
    if (buffers.empty()) return InvalidArgumentError("NCCL send: no buffers");
    if (buffers.size() > options_.max_group_buffers) {
      return InvalidArgumentError("NCCL send: " + std::to_string(buffers.size()) +
                                  " buffers, at most " +
                                  std::to_string(options_.max_group_buffers));
    }
    std::vector<uint64_t> sizes;
    sizes.reserve(buffers.size());
    for (const ConstBuffer& b : buffers) {
      if (b.size == 0 || b.data == nullptr) {
        return InvalidArgumentError("NCCL send: empty buffer " + std::to_string(sizes.size()));
      }
      sizes.push_back(b.size);
    }
    auto c = Acquire(peer, 2, 0, &exchange);
    if (!c.ok()) return c.status();
    const Clock::time_point start = Clock::now();
    if (Status a = announce(sizes); !a.ok()) {
      Release(*c);
      return a;
    }
    Status s = Transfer(*c, buffers, {}, start);
    if (s.ok()) {
      MutexLock l(&mu_);
      ++stats_.transfers;
      for (uint64_t n : sizes) stats_.bytes_sent += n;
    }
    return s;
  }

  Status Receive(const NcclPeer& peer, std::span<const uint64_t> announced,
                 std::span<const MutableBuffer> buffers) {
    if (Status s = CheckSizes(announced, buffers); !s.ok()) return s;
    const Clock::time_point start = Clock::now();
    auto c = Acquire(peer, 2, 1, nullptr);
    if (!c.ok()) return c.status();
    Status s = Transfer(*c, {}, buffers, start);
    if (s.ok()) {
      MutexLock l(&mu_);
      ++stats_.transfers;
      for (uint64_t n : announced) stats_.bytes_received += n;
    }
    return s;
  }

  Status Loopback(int device, std::span<const ConstBuffer> src,
                  std::span<const MutableBuffer> dst) {
    std::vector<uint64_t> sizes;
    sizes.reserve(src.size());
    for (const ConstBuffer& b : src) {
      if (b.data == nullptr) return InvalidArgumentError("NCCL loopback: null source buffer");
      sizes.push_back(b.size);
    }
    if (Status s = CheckSizes(sizes, dst); !s.ok()) return s;
    const Clock::time_point start = Clock::now();
    const NcclPeer self{device, "", device};
    auto c = Acquire(self, 1, 0, nullptr);
    if (!c.ok()) return c.status();
    Status s = Transfer(*c, src, dst, start);
    if (s.ok()) {
      MutexLock l(&mu_);
      ++stats_.transfers;
      for (uint64_t n : sizes) {
        stats_.bytes_sent += n;
        stats_.bytes_received += n;
      }
    }
    return s;
  }

  void Drop(const NcclPeer& peer) {
    std::vector<std::shared_ptr<Comm>> to_abort;
    {
      MutexLock l(&mu_);
      auto it = comms_.find(Key(peer));
      if (it == comms_.end()) return;
      RetireLocked(it->second, UnavailableError("NCCL " + Describe(peer) + ": dropped"), &to_abort);
    }
    AbortAll(to_abort);
  }

  size_t size() const {
    MutexLock l(&mu_);
    return comms_.size();
  }
  NcclChannelStats stats() const {
    MutexLock l(&mu_);
    return stats_;
  }

 private:
  Status CheckSizes(std::span<const uint64_t> announced, std::span<const MutableBuffer> buffers) {
    Status s = CheckAnnouncedSizes(announced, buffers, options_.max_group_buffers);
    if (s.ok()) {
      for (const MutableBuffer& b : buffers) {
        if (b.data == nullptr) return InvalidArgumentError("NCCL receive: null buffer");
      }
    } else {
      MutexLock l(&mu_);
      ++stats_.size_mismatches;
    }
    return s;
  }

  // Creates the stream, the event and (nonblocking) the communicator: rank
  // `rank` of `nranks` with `id`, on `device`. No lock held.
  static Status StartInit(Comm& c, int device, int nranks, int rank, const NcclUniqueId& id) {
    c.device = device;
    c.nranks = nranks;
    c.rank = rank;
    DeviceScope d(device);
    if (d.status() != cudaSuccess) {
      return CudaError(d.status(), "device " + std::to_string(device));
    }
    if (cudaError_t e = cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking);
        e != cudaSuccess) {
      return CudaError(e, "stream");
    }
    if (cudaError_t e = cudaEventCreateWithFlags(&c.done, cudaEventDisableTiming);
        e != cudaSuccess) {
      return CudaError(e, "event");
    }
    ncclUniqueId nid;
    std::copy(id.begin(), id.end(), nid.internal);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&c.comm, nranks, nid, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      c.Abort();
      return UnavailableError("NCCL " + c.what +
                              ": ncclCommInitRankConfig: " + ncclGetErrorString(r));
    }
    return Status::Ok();
  }

  // The communicator of `peer`, ready and held for the caller (busy): waits
  // for one in use or initializing; with `exchange`, creates a missing one
  // as rank `rank` of `nranks` (nranks 1 needs no exchange: pass a null
  // pointer to it, and only Loopback does), else FAILED_PRECONDITION.
  Result<std::shared_ptr<Comm>> Acquire(const NcclPeer& peer, int nranks, int rank,
                                        const ExchangeFn* exchange) {
    const std::string key = Key(peer);
    const bool create = exchange != nullptr || nranks == 1;
    MutexLock l(&mu_);
    for (;;) {
      auto it = comms_.find(key);
      if (it == comms_.end()) break;
      std::shared_ptr<Comm> c = it->second;
      if (c->busy || c->watched) {
        cv_.Wait(&l);
        continue;
      }
      c->busy = true;
      return c;
    }
    if (!create) {
      return FailedPreconditionError("NCCL " + Describe(peer) +
                                     ": no communicator (the peer has not connected)");
    }
    auto c = std::make_shared<Comm>();
    c->key = key;
    c->what = Describe(peer);
    c->busy = true;
    comms_[key] = c;
    l.Unlock();

    const Clock::time_point start = Clock::now();
    NcclUniqueId id{};
    ncclUniqueId nid;
    ncclResult_t r = ncclGetUniqueId(&nid);
    Status s =
        r == ncclSuccess
            ? Status::Ok()
            : UnavailableError("NCCL " + c->what + ": ncclGetUniqueId: " + ncclGetErrorString(r));
    if (s.ok()) {
      std::copy(nid.internal, nid.internal + kNcclUniqueIdBytes, id.begin());
      s = StartInit(*c, peer.local_device, nranks, rank, id);
    }
    l.Lock();
    if (!s.ok()) {
      FailLocked(c, s);
      return s;
    }
    ++stats_.comms_created;
    WatchLocked(c, Phase::kInit, start + options_.init_timeout);
    if (exchange != nullptr) {
      l.Unlock();
      Status e = (*exchange)(id);
      l.Lock();
      if (!e.ok() && c->watched) {
        c->cancel = e.WithContext("NCCL " + c->what + ": unique id exchange");
        wd_cv_.NotifyAll();
      }
    }
    cv_.Wait(&l, [&] { return !c->watched; });
    if (c->failed) {
      c->busy = false;
      cv_.NotifyAll();
      return c->failure;
    }
    return c;
  }

  // Lets go of `c` (held by Acquire); aborts it if it was retired meanwhile.
  void Release(const std::shared_ptr<Comm>& c) {
    bool abort = false;
    {
      MutexLock l(&mu_);
      c->busy = false;
      abort = c->retire && c->comm != nullptr && !c->failed;
      cv_.NotifyAll();
    }
    if (abort) AbortAll({c});
  }

  // Posts one group (sends of `src` and receives into `dst`, to / from the
  // other rank, or rank 0 itself in a 1-rank communicator) on the held
  // communicator `c` and waits for it; `start` is when the transfer's
  // deadline began. Releases `c`.
  Status Transfer(const std::shared_ptr<Comm>& c, std::span<const ConstBuffer> src,
                  std::span<const MutableBuffer> dst, Clock::time_point start) {
    const int other = c->nranks == 1 ? 0 : 1 - c->rank;
    ncclResult_t r = ncclSuccess;
    {
      DeviceScope d(c->device);
      if (d.status() != cudaSuccess) {
        Status s = CudaError(d.status(), "device " + std::to_string(c->device));
        Release(c);
        return s;
      }
      ncclResult_t first = ncclGroupStart();
      for (const ConstBuffer& b : src) {
        ncclResult_t e = ncclSend(b.data, b.size, ncclUint8, other, c->comm, c->stream);
        if (first == ncclSuccess && e != ncclInProgress) first = e;
      }
      for (const MutableBuffer& b : dst) {
        ncclResult_t e = ncclRecv(b.data, b.size, ncclUint8, other, c->comm, c->stream);
        if (first == ncclSuccess && e != ncclInProgress) first = e;
      }
      r = ncclGroupEnd();
      if (first != ncclSuccess) r = first;
    }
    MutexLock l(&mu_);
    if (r != ncclSuccess && r != ncclInProgress) {
      Status s =
          UnavailableError("NCCL " + c->what + ": posting the transfer: " + ncclGetErrorString(r) +
                           "; communicator aborted");
      l.Unlock();
      c->Abort();
      l.Lock();
      ++stats_.comms_aborted;
      FailLocked(c, s);
      return s;
    }
    c->event_recorded = false;
    WatchLocked(c, Phase::kTransfer, start + options_.transfer_timeout);
    cv_.Wait(&l, [&] { return !c->watched; });
    Status s = c->failed ? c->failure : Status::Ok();
    l.Unlock();
    Release(c);
    return s;
  }

  // Hands `c` to the watchdog until `deadline`.
  void WatchLocked(const std::shared_ptr<Comm>& c, Phase phase, Clock::time_point deadline)
      REQUIRES(mu_) {
    c->phase = phase;
    c->deadline = deadline;
    c->cancel = Status::Ok();
    c->watched = true;
    watched_.push_back(c);
    wd_cv_.NotifyAll();
  }

  // `c` failed with `why`: forgotten by the pool, callers waiting on it wake.
  void FailLocked(const std::shared_ptr<Comm>& c, const Status& why) REQUIRES(mu_) {
    c->failed = true;
    c->ready = false;
    c->failure = why;
    c->busy = false;
    auto it = comms_.find(c->key);
    if (it != comms_.end() && it->second == c) comms_.erase(it);
    cv_.NotifyAll();
  }

  // Takes `c` out of the pool and has it aborted: by the watchdog if in
  // flight, by its holder when it lets go, else by the caller (`to_abort`,
  // after it released the lock).
  void RetireLocked(const std::shared_ptr<Comm>& c, const Status& why,
                    std::vector<std::shared_ptr<Comm>>* to_abort) REQUIRES(mu_) {
    auto it = comms_.find(c->key);
    if (it != comms_.end() && it->second == c) comms_.erase(it);
    if (c->watched) {
      c->cancel = why;
      wd_cv_.NotifyAll();
    } else if (c->busy) {
      c->retire = true;
    } else {
      c->busy = true;  // nobody else touches it while the caller aborts
      to_abort->push_back(c);
    }
  }

  void AbortAll(const std::vector<std::shared_ptr<Comm>>& comms) {
    for (const auto& c : comms) c->Abort();
    if (comms.empty()) return;
    MutexLock l(&mu_);
    stats_.comms_aborted += comms.size();
  }

  // One poll of watched communicator `c` (the watchdog's, no lock held).
  PollResult Poll(Comm& c, const Status& cancel, Clock::time_point now) {
    PollResult p;
    const char* phase = c.phase == Phase::kInit ? "initialization" : "transfer";
    auto abort = [&](Status why) {
      c.Abort();
      p.finished = true;
      p.aborted = true;
      p.status = std::move(why);
    };
    if (!cancel.ok()) {
      abort(cancel);
      return p;
    }
    auto expired = [&] {
      if (now < c.deadline) return false;
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          c.phase == Phase::kInit ? options_.init_timeout : options_.transfer_timeout);
      abort(DeadlineExceededError("NCCL " + std::string(phase) + " " + c.what +
                                  " did not complete within " + std::to_string(ms.count()) +
                                  " ms; communicator aborted"));
      p.deadline = true;
      return true;
    };
    ncclResult_t async = ncclSuccess;
    if (ncclResult_t r = ncclCommGetAsyncError(c.comm, &async); r != ncclSuccess) async = r;
    if (async == ncclInProgress) {
      expired();
      return p;
    }
    if (async != ncclSuccess) {
      abort(UnavailableError("NCCL " + std::string(phase) + " " + c.what +
                             " failed: " + ncclGetErrorString(async) + "; communicator aborted"));
      return p;
    }
    if (c.phase == Phase::kInit) {
      p.finished = true;
      return p;
    }
    DeviceScope d(c.device);
    if (!c.event_recorded) {
      if (cudaError_t e = cudaEventRecord(c.done, c.stream); e != cudaSuccess) {
        abort(CudaError(e, "event record for " + c.what));
        return p;
      }
      c.event_recorded = true;
    }
    cudaError_t e = cudaEventQuery(c.done);
    if (e == cudaSuccess) {
      p.finished = true;
    } else if (e != cudaErrorNotReady) {
      abort(CudaError(e, "transfer " + c.what));
    } else {
      expired();
    }
    return p;
  }

  void WatchdogLoop() {
    MutexLock l(&mu_);
    while (!stop_) {
      if (watched_.empty()) {
        wd_cv_.Wait(&l, [&]() REQUIRES(mu_) { return stop_ || !watched_.empty(); });
        continue;
      }
      std::vector<std::shared_ptr<Comm>> polled = watched_;
      std::vector<Status> cancels;
      cancels.reserve(polled.size());
      for (const auto& c : polled) cancels.push_back(c->cancel);
      l.Unlock();
      const Clock::time_point now = Clock::now();
      std::vector<PollResult> results;
      results.reserve(polled.size());
      for (size_t i = 0; i < polled.size(); ++i) {
        results.push_back(Poll(*polled[i], cancels[i], now));
      }
      l.Lock();
      for (size_t i = 0; i < polled.size(); ++i) {
        const PollResult& p = results[i];
        if (!p.finished) continue;
        const std::shared_ptr<Comm>& c = polled[i];
        c->watched = false;
        watched_.erase(std::find(watched_.begin(), watched_.end(), c));
        if (p.aborted) ++stats_.comms_aborted;
        if (p.deadline) ++stats_.deadlines_exceeded;
        if (p.status.ok()) {
          c->ready = true;
          cv_.NotifyAll();
        } else {
          const bool busy = c->busy;
          FailLocked(c, p.status);
          c->busy = busy;  // its holder lets go (Acquire / Transfer)
        }
      }
      // A cancel wakes the watchdog at once; otherwise poll at the interval.
      wd_cv_.WaitFor(&l, options_.poll_interval, [&]() REQUIRES(mu_) {
        if (stop_) return true;
        for (const auto& c : watched_) {
          if (!c->cancel.ok()) return true;
        }
        return false;
      });
    }
  }

  const NcclChannelOptions options_;
  mutable Mutex mu_;
  CondVar cv_;     // a communicator finished an operation or was let go
  CondVar wd_cv_;  // wakes the watchdog: work, a cancel, or stop
  std::unordered_map<std::string, std::shared_ptr<Comm>> comms_ GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Comm>> watched_ GUARDED_BY(mu_);
  NcclChannelStats stats_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

bool NcclCommPool::Built() { return true; }

NcclCommPool::NcclCommPool(NcclChannelOptions options)
    : options_(options), impl_(std::make_unique<Impl>(options_)) {}
NcclCommPool::~NcclCommPool() = default;

Status NcclCommPool::Connect(const NcclPeer& peer, const ExchangeFn& exchange) {
  return impl_->Connect(peer, exchange);
}
Status NcclCommPool::Join(const NcclPeer& peer, const NcclUniqueId& id) {
  return impl_->Join(peer, id);
}
Status NcclCommPool::Send(const NcclPeer& peer, std::span<const ConstBuffer> buffers,
                          const ExchangeFn& exchange, const AnnounceFn& announce) {
  return impl_->Send(peer, buffers, exchange, announce);
}
Status NcclCommPool::Receive(const NcclPeer& peer, std::span<const uint64_t> announced,
                             std::span<const MutableBuffer> buffers) {
  return impl_->Receive(peer, announced, buffers);
}
Status NcclCommPool::Loopback(int device, std::span<const ConstBuffer> src,
                              std::span<const MutableBuffer> dst) {
  return impl_->Loopback(device, src, dst);
}
void NcclCommPool::Drop(const NcclPeer& peer) { impl_->Drop(peer); }
size_t NcclCommPool::size() const { return impl_->size(); }
NcclChannelStats NcclCommPool::stats() const { return impl_->stats(); }

}  // namespace kvcake::transport
