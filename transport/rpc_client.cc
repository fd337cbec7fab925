#include "transport/rpc_client.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <unordered_map>

#include "common/logging.h"
#include "common/mutex.h"
#include "transport/am_message.h"
#include "transport/handshake.h"
#include "transport/stat_counters.h"
#include "transport/ucx.h"
#include "transport/worker_loop.h"

namespace kvcake::transport {

using internal::kAmIdRequest;
using internal::kAmIdResponse;
using Clock = std::chrono::steady_clock;

Status RpcClientOptions::Validate() const {
  RETURN_IF_ERROR(ucx.Validate());
  RETURN_IF_ERROR(limits.Validate());
  if (connect_timeout.count() <= 0) {
    return InvalidArgumentError("RpcClientOptions.connect_timeout must be > 0");
  }
  if (default_timeout.count() <= 0) {
    return InvalidArgumentError("RpcClientOptions.default_timeout must be > 0");
  }
  if (keepalive_interval.count() < 0) {
    return InvalidArgumentError("RpcClientOptions.keepalive_interval must be >= 0");
  }
  if (keepalive_interval.count() > 0 && keepalive_timeout.count() <= 0) {
    return InvalidArgumentError("RpcClientOptions.keepalive_timeout must be > 0");
  }
  return Status::Ok();
}

namespace {

// One call in flight. Owned by RpcClientImpl::pending_ (loop thread) until
// completed; UCX requests reference it through user_data.
struct PendingCall {
  RpcClientImpl* owner = nullptr;
  uint64_t id = 0;
  bool control = false;
  CallCallback done;
  std::vector<uint8_t> head;
  std::vector<uint8_t> meta_data;    // oversized meta, sent as the first AM data bytes
  std::vector<ConstBuffer> payload;  // AM data: [meta_data] + the caller's payload
  std::vector<ucp_dt_iov_t> send_iov;
  std::vector<MutableBuffer> reply_buffers;
  std::vector<MutableBuffer> recv_targets;  // [reply meta] + reply_buffers
  std::vector<ucp_dt_iov_t> recv_iov;
  uint64_t payload_bytes = 0;
  Clock::time_point deadline;
  bool send_inflight = false;
  bool recv_inflight = false;
  bool have_result = false;  // reply.status is final
  bool completed = false;    // callback delivered
  RpcReply reply;
};

}  // namespace

class RpcClientImpl {
 public:
  RpcClientImpl(std::string address, const RpcClientOptions& o)
      : address_(std::move(address)), options_(o) {}
  ~RpcClientImpl();

  Status Init();
  void CallAsync(const CallRequest& request, CallCallback done, bool control);
  RpcReply CallSync(const CallRequest& request, bool control);

  // Loop thread only.
  void StartCall(PendingCall* p);
  void MaybeComplete(PendingCall* p);
  void Finish(PendingCall* p, Status status);
  void BreakConnection(const Status& why);
  // Tells a connected server this connection is ending (a goodbye control
  // frame, sent and progressed for at most 100 ms). Loop thread.
  void SayGoodbye();
  void Sweep();
  ucs_status_t HandleResponse(std::span<const uint8_t> head, void* data, size_t length,
                              const ucp_am_recv_param_t* param);

  static void OnSendDone(void* request, ucs_status_t status, void* user_data);
  static void OnRecvDone(void* request, ucs_status_t status, size_t length, void* user_data);
  static ucs_status_t OnResponseAm(void* arg, const void* header, size_t header_length, void* data,
                                   size_t length, const ucp_am_recv_param_t* param);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);

  std::string address_;
  RpcClientOptions options_;
  StatCounters<RpcClientStats> counters_;
  std::unique_ptr<UcxContext> context_;
  std::unique_ptr<WorkerLoop> loop_;
  std::unique_ptr<UcxEndpoint> ep_;  // loop thread
  std::unordered_map<uint64_t, PendingCall*> pending_;
  size_t sweep_ticker_ = 0;  // WorkerLoop ticker id of Sweep()
  static constexpr std::chrono::milliseconds kSweepTick{5};
  static constexpr std::chrono::milliseconds kIdleSweepTick{250};
  std::vector<std::unique_ptr<PendingCall>> orphans_;  // completed, UCX op never returned
  std::atomic<uint64_t> next_id_{1};
  size_t max_inline_meta_ = 0;  // larger meta travels in the AM data
  Clock::time_point last_activity_ = Clock::now();
  bool ping_inflight_ = false;

  std::atomic<bool> connected_{false};
  mutable Mutex mu_;
  Status broken_ GUARDED_BY(mu_);
  std::string transport_info_ GUARDED_BY(mu_);
  std::string server_info_ GUARDED_BY(mu_);
  bool destroyed_ = false;
};

// ---------------------------------------------------------------------------

Status RpcClientImpl::Init() {
  RETURN_IF_ERROR(options_.Validate());
  ASSIGN_OR_RETURN(context_, UcxContext::Create(options_.ucx));
  ASSIGN_OR_RETURN(auto worker, UcxWorker::Create(*context_));
  // The handshake hands the server this worker's address and names the
  // server's UCX worker (I/O thread) to talk to, with a one-time ticket for
  // the first frame (transport/handshake.h).
  std::vector<uint8_t> my_address;
  {
    ucp_address_t* addr = nullptr;
    size_t addr_len = 0;
    ucs_status_t ast = ucp_worker_get_address(worker->get(), &addr, &addr_len);
    if (ast != UCS_OK) return UcsToStatus(ast, "ucp_worker_get_address");
    const auto* bytes = reinterpret_cast<const uint8_t*>(addr);
    my_address.assign(bytes, bytes + addr_len);
    ucp_worker_release_address(worker->get(), addr);
  }
  ASSIGN_OR_RETURN(
      HelloReply hello_reply,
      ClientHandshake(
          address_, my_address, options_.connect_timeout,
          context_->err_mode() == UCP_ERR_HANDLING_MODE_PEER ? kHelloFlagPeerErrors : uint16_t{0}));
  max_inline_meta_ =
      worker->max_am_header() > kFrameHeaderSize ? worker->max_am_header() - kFrameHeaderSize : 0;
  ucp_am_handler_param_t ap{};
  ap.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                  UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
  ap.id = kAmIdResponse;
  ap.cb = &RpcClientImpl::OnResponseAm;
  ap.arg = this;
  ap.flags = UCP_AM_FLAG_WHOLE_MSG;
  ucs_status_t st = ucp_worker_set_am_recv_handler(worker->get(), &ap);
  if (st != UCS_OK) return UcsToStatus(st, "ucp_worker_set_am_recv_handler");

  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                 UCP_EP_PARAM_FIELD_ERR_HANDLER;
  p.address = reinterpret_cast<const ucp_address_t*>(hello_reply.body.data());
  p.err_mode = context_->err_mode();
  p.err_handler.cb = &RpcClientImpl::OnEpError;
  p.err_handler.arg = this;
  ucp_ep_h ep = nullptr;
  st = ucp_ep_create(worker->get(), &p, &ep);
  if (st != UCS_OK) return UcsToStatus(st, "connecting to " + address_);
  ucp_worker_h wh = worker->get();
  ep_ = std::make_unique<UcxEndpoint>(wh, ep);
  connected_ = true;

  loop_ = std::make_unique<WorkerLoop>(std::move(worker), "rpc-client-io", WorkerLoop::kSafetyPoll,
                                       options_.ucx.busy_poll, options_.ucx.busy_poll_yield);
  // Deadlines are checked every kSweepTick while calls are pending; an idle
  // client only needs to notice when a keepalive is due (every 5 ms idle,
  // the sweep alone woke an engine's client thread 200 times a second).
  const auto idle_tick =
      options_.keepalive_interval.count() > 0
          ? std::clamp(options_.keepalive_interval / 4, kSweepTick, kIdleSweepTick)
          : kIdleSweepTick;
  sweep_ticker_ = loop_->AddAdaptiveTicker(kSweepTick, [this, idle_tick] {
    Sweep();
    return pending_.empty() ? idle_tick : kSweepTick;
  });
  loop_->Start();

  // Hello round trip: proves the connection and the wire version.
  CallRequest hello;
  hello.opcode = kControlOpHello;
  hello.timeout = options_.connect_timeout;
  uint8_t ticket[8];
  for (int b = 0; b < 8; ++b) ticket[b] = static_cast<uint8_t>(hello_reply.ticket >> (8 * b));
  hello.meta = std::span<const uint8_t>(ticket, sizeof(ticket));
  RpcReply r = CallSync(hello, /*control=*/true);
  if (!r.status.ok()) {
    Status s = r.status;
    if (s.code() == StatusCode::kDeadlineExceeded) {
      s = DeadlineExceededError("connecting to " + address_ + ": no answer within " +
                                std::to_string(options_.connect_timeout.count()) + " ms");
    } else if (s.code() != StatusCode::kUnimplemented) {
      s = UnavailableError("connecting to " + address_ + " over UCX: " + std::string(s.message()));
    }
    return s;
  }
  std::string lanes;
  loop_->RunSync([&] { lanes = ep_ ? DescribeEndpointTransports(ep_->get()) : "closed"; });
  const std::string server_info(r.meta.begin(), r.meta.end());
  {
    MutexLock lock(&mu_);
    transport_info_ = lanes;
    server_info_ = server_info;
  }
  KVCAKE_LOG(INFO) << "connected to " << address_ << " (" << server_info
                   << "); UCX lanes: " << lanes;
  return Status::Ok();
}

RpcClientImpl::~RpcClientImpl() {
  if (loop_) {
    loop_->RunSync([this] {
      destroyed_ = true;
      SayGoodbye();
      BreakConnection(CancelledError("client destroyed"));
    });
    loop_->Stop();
  }
  ep_.reset();
  loop_.reset();  // destroys the worker
  orphans_.clear();
}

void RpcClientImpl::CallAsync(const CallRequest& request, CallCallback done, bool control) {
  auto p = std::make_unique<PendingCall>();
  p->owner = this;
  p->done = std::move(done);
  p->control = control;
  Status bad;
  if (!control && (request.opcode == 0 || request.opcode > kMaxOpcode)) {
    bad = InvalidArgumentError("opcode " + std::to_string(request.opcode) + " out of range");
  } else if (request.meta.size() > options_.limits.max_meta_bytes) {
    bad = InvalidArgumentError("request meta of " + std::to_string(request.meta.size()) +
                               " bytes exceeds the limit of " +
                               std::to_string(options_.limits.max_meta_bytes));
  }
  const bool meta_in_data = request.meta.size() > max_inline_meta_;
  if (meta_in_data && bad.ok()) {
    p->meta_data.assign(request.meta.begin(), request.meta.end());
    p->payload.push_back({p->meta_data.data(), p->meta_data.size()});
  }
  p->payload.insert(p->payload.end(), request.payload.begin(), request.payload.end());
  p->payload_bytes = TotalSize(request.payload);
  if (bad.ok() && p->payload_bytes > options_.limits.max_payload_bytes) {
    bad = InvalidArgumentError("request payload too large");
  }
  p->reply_buffers.assign(request.reply_buffers.begin(), request.reply_buffers.end());
  const auto timeout = request.timeout.count() > 0 ? request.timeout : options_.default_timeout;
  p->deadline = Clock::now() + timeout;
  p->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  if (bad.ok()) {
    FrameHeader h;
    h.opcode = request.opcode;
    h.flags = control ? static_cast<uint32_t>(kFlagControl) : 0u;
    h.request_id = p->id;
    h.payload_size = p->payload_bytes;
    if (meta_in_data) {
      h.flags |= kFlagMetaInData;
      h.meta_size = static_cast<uint32_t>(request.meta.size());
      p->head = internal::BuildHead(h, {});
    } else {
      p->head = internal::BuildHead(h, request.meta);
    }
  } else {
    p->have_result = true;
    p->reply.status = bad;
  }
  if (!control) counters_.Add(&RpcClientStats::calls);
  PendingCall* raw = p.release();
  if (loop_->InLoopThread()) {
    StartCall(raw);
  } else {
    loop_->Post([this, raw] { StartCall(raw); });
  }
}

RpcReply RpcClientImpl::CallSync(const CallRequest& request, bool control) {
  if (loop_->InLoopThread()) {
    RpcReply r;
    r.status = FailedPreconditionError("RpcClient::Call from the client's I/O thread");
    return r;
  }
  // The caller spins for up to caller_spin before it blocks: a reply that
  // comes back within the window costs no thread wake-up.
  struct Waiter {
    std::atomic<bool> done{false};
    Mutex mu;
    CondVar cv;
    RpcReply reply GUARDED_BY(mu);
  };
  auto w = std::make_shared<Waiter>();
  CallAsync(
      request,
      [w](RpcReply&& r) {
        MutexLock lock(&w->mu);
        w->reply = std::move(r);
        w->done.store(true, std::memory_order_release);
        w->cv.NotifyOne();
      },
      control);
  const auto spin_until = Clock::now() + options_.caller_spin;
  while (!w->done.load(std::memory_order_acquire) && Clock::now() < spin_until) {
    if (options_.ucx.busy_poll_yield) {
      sched_yield();
    } else {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }
  MutexLock lock(&w->mu);
  // Every call completes (its deadline is enforced by the loop), so this ends.
  w->cv.Wait(&lock, [&] { return w->done.load(std::memory_order_relaxed); });
  return std::move(w->reply);
}

void RpcClientImpl::StartCall(PendingCall* p) {
  if (p->have_result) {  // argument error
    Finish(p, p->reply.status);
    return;
  }
  if (!connected_.load()) {
    MutexLock lock(&mu_);
    p->have_result = true;
    p->reply.status = UnavailableError("not connected: " + broken_.ToString());
  }
  if (p->have_result) {
    Finish(p, p->reply.status);
    return;
  }
  pending_.emplace(p->id, p);
  loop_->HurryTicker(sweep_ticker_, kSweepTick);  // its deadline is now watched
  counters_.Add(&RpcClientStats::in_flight);
  internal::DataDesc d = internal::DescribeSend(p->payload, &p->send_iov);
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                       UCP_OP_ATTR_FIELD_DATATYPE | UCP_OP_ATTR_FIELD_FLAGS;
  param.cb.send = &RpcClientImpl::OnSendDone;
  param.user_data = p;
  param.datatype = d.datatype;
  param.flags = UCP_AM_SEND_FLAG_REPLY;
  p->send_inflight = true;
  ucs_status_ptr_t req = ucp_am_send_nbx(ep_->get(), kAmIdRequest, p->head.data(), p->head.size(),
                                         d.buffer, d.count, &param);
  if (req == nullptr) {
    OnSendDone(nullptr, UCS_OK, p);
  } else if (UCS_PTR_IS_ERR(req)) {
    OnSendDone(nullptr, UCS_PTR_STATUS(req), p);
  }
}

void RpcClientImpl::OnSendDone(void* request, ucs_status_t status, void* user_data) {
  auto* p = static_cast<PendingCall*>(user_data);
  if (request != nullptr) ucp_request_free(request);
  p->send_inflight = false;
  if (p->completed) return;  // orphan: the connection broke meanwhile
  // Refused rendezvous (server backpressure) completes with the handler's
  // error; the application reply carries the real status, so wait for it.
  if (status != UCS_OK && status != UCS_ERR_NO_RESOURCE && status != UCS_ERR_INVALID_PARAM &&
      !p->have_result) {
    p->have_result = true;
    p->reply.status = UcsToStatus(status, "sending request");
    if (p->reply.status.code() != StatusCode::kCancelled) {
      p->reply.status = UnavailableError(p->reply.status.message());
    }
  }
  p->owner->MaybeComplete(p);
}

void RpcClientImpl::Finish(PendingCall* p, Status status) {
  // Deliver the callback; `p` is either owned here (never registered) or in
  // pending_ (erased by the caller).
  std::unique_ptr<PendingCall> owned(p);
  p->completed = true;
  RpcReply reply = std::move(p->reply);
  reply.status = std::move(status);
  if (!reply.status.ok()) {
    reply.meta.clear();
    reply.payload_size = 0;
  }
  if (!p->control) {
    switch (reply.status.code()) {
      case StatusCode::kOk:
        counters_.Add(&RpcClientStats::calls_ok);
        counters_.Add(&RpcClientStats::bytes_sent, p->payload_bytes);
        counters_.Add(&RpcClientStats::bytes_received, reply.payload_size);
        break;
      case StatusCode::kDeadlineExceeded:
        counters_.Add(&RpcClientStats::calls_timed_out);
        break;
      case StatusCode::kUnavailable:
      case StatusCode::kCancelled:
        counters_.Add(&RpcClientStats::calls_failed);
        break;
      default:
        counters_.Add(&RpcClientStats::calls_error);
    }
  }
  CallCallback done = std::move(p->done);
  if (p->send_inflight || p->recv_inflight) {
    orphans_.push_back(std::move(owned));  // UCX still holds it; freed at destruction
  }
  if (done) done(std::move(reply));
}

void RpcClientImpl::MaybeComplete(PendingCall* p) {
  if (p->completed || !p->have_result || p->send_inflight || p->recv_inflight) return;
  pending_.erase(p->id);
  counters_.Sub(&RpcClientStats::in_flight);
  Finish(p, p->reply.status);
}

ucs_status_t RpcClientImpl::OnResponseAm(void* arg, const void* header, size_t header_length,
                                         void* data, size_t length,
                                         const ucp_am_recv_param_t* param) {
  auto* self = static_cast<RpcClientImpl*>(arg);
  return self->HandleResponse(
      std::span<const uint8_t>(static_cast<const uint8_t*>(header), header_length), data, length,
      param);
}

ucs_status_t RpcClientImpl::HandleResponse(std::span<const uint8_t> head, void* data, size_t length,
                                           const ucp_am_recv_param_t* param) {
  const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  last_activity_ = Clock::now();
  Result<FrameHeader> decoded = DecodeFrameHead(head, options_.limits);
  if (!decoded.ok() || !decoded->is_response() || decoded->data_size() != length) {
    Status why = !decoded.ok() ? decoded.status()
                               : InvalidArgumentError("bad response frame from the server");
    KVCAKE_LOG(WARNING) << "malformed response from " << address_ << ": " << why.ToString();
    // A frame we cannot attribute: fail the call it names if readable.
    uint64_t id = 0;
    uint32_t flags = 0;
    if (internal::PeekRequestId(head, &id, &flags)) {
      auto it = pending_.find(id);
      if (it != pending_.end() && !it->second->have_result) {
        it->second->have_result = true;
        it->second->reply.status = why;
        MaybeComplete(it->second);
      }
    }
    return rndv ? UCS_ERR_INVALID_PARAM : UCS_OK;
  }
  const FrameHeader& h = *decoded;
  auto it = pending_.find(h.request_id);
  if (it == pending_.end()) {
    // Late reply of a call that already timed out: drop it.
    return rndv ? UCS_ERR_CANCELED : UCS_OK;
  }
  PendingCall* p = it->second;
  if (p->have_result) return rndv ? UCS_ERR_CANCELED : UCS_OK;
  p->have_result = true;
  // Meta in the AM header, or (oversized) at the front of the data.
  const size_t meta_off = h.meta_in_data() ? h.meta_size : 0;
  std::span<const uint8_t> meta;
  if (!h.meta_in_data()) {
    meta = head.subspan(kFrameHeaderSize, h.meta_size);
  } else if (!rndv) {
    meta = std::span<const uint8_t>(static_cast<const uint8_t*>(data), h.meta_size);
  }
  if (h.status != StatusCode::kOk) {
    p->reply.status =
        h.meta_in_data() && rndv
            ? Status(h.status, "(error message too large to deliver)")
            : Status(h.status,
                     std::string_view(reinterpret_cast<const char*>(meta.data()), meta.size()));
    MaybeComplete(p);
    return rndv ? UCS_ERR_CANCELED : UCS_OK;
  }
  const size_t payload_len = length - meta_off;
  if (payload_len > TotalSize(p->reply_buffers)) {
    p->reply.status =
        OutOfRangeError("reply payload of " + std::to_string(payload_len) + " bytes exceeds the " +
                        std::to_string(TotalSize(p->reply_buffers)) + " bytes of receive buffers");
    MaybeComplete(p);
    return rndv ? UCS_ERR_CANCELED : UCS_OK;
  }
  p->reply.payload_size = payload_len;
  if (!rndv) {
    p->reply.meta.assign(meta.begin(), meta.end());
    if (payload_len > 0) {
      internal::ScatterCopy(static_cast<const uint8_t*>(data) + meta_off, payload_len,
                            p->reply_buffers);
    }
    MaybeComplete(p);
    return UCS_OK;
  }
  // Rendezvous: straight into the caller's buffers (and the meta vector).
  std::span<const MutableBuffer> targets = p->reply_buffers;
  if (h.meta_in_data()) {
    p->reply.meta.resize(h.meta_size);
    p->recv_targets.push_back({p->reply.meta.data(), p->reply.meta.size()});
    p->recv_targets.insert(p->recv_targets.end(), p->reply_buffers.begin(), p->reply_buffers.end());
    targets = p->recv_targets;
  } else {
    p->reply.meta.assign(meta.begin(), meta.end());
  }
  internal::DataDesc d = internal::DescribeRecv(targets, length, &p->recv_iov);
  ucp_request_param_t rp{};
  rp.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
  rp.cb.recv_am = &RpcClientImpl::OnRecvDone;
  rp.user_data = p;
  rp.datatype = d.datatype;
  p->recv_inflight = true;
  ucs_status_ptr_t req = ucp_am_recv_data_nbx(loop_->worker(), data, d.buffer, d.count, &rp);
  if (req == nullptr) {
    OnRecvDone(nullptr, UCS_OK, length, p);
  } else if (UCS_PTR_IS_ERR(req)) {
    OnRecvDone(nullptr, UCS_PTR_STATUS(req), 0, p);
  }
  return UCS_INPROGRESS;
}

void RpcClientImpl::OnRecvDone(void* request, ucs_status_t status, size_t length, void* user_data) {
  auto* p = static_cast<PendingCall*>(user_data);
  if (request != nullptr) ucp_request_free(request);
  p->recv_inflight = false;
  if (p->completed) return;
  if (status != UCS_OK && p->reply.status.ok()) {
    p->reply.status = UnavailableError(UcsToStatus(status, "receiving reply payload").message());
  }
  p->owner->MaybeComplete(p);
}

void RpcClientImpl::OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* self = static_cast<RpcClientImpl*>(arg);
  if (self->loop_ == nullptr || self->destroyed_) return;
  Status why = UnavailableError(std::string("connection to ") + self->address_ +
                                " failed: " + ucs_status_string(status));
  self->loop_->Post([self, why] { self->BreakConnection(why); });
}

void RpcClientImpl::SayGoodbye() {
  if (!connected_.load() || ep_ == nullptr) return;
  FrameHeader h;
  h.opcode = kControlOpGoodbye;
  h.flags = kFlagControl;
  h.request_id = next_id_.fetch_add(1, std::memory_order_relaxed);
  std::vector<uint8_t> head = internal::BuildHead(h, {});
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_AM_SEND_FLAG_REPLY;
  ucs_status_ptr_t req =
      ucp_am_send_nbx(ep_->get(), kAmIdRequest, head.data(), head.size(), nullptr, 0, &param);
  if (!UCS_PTR_IS_PTR(req)) return;
  const auto deadline = Clock::now() + std::chrono::milliseconds(100);
  while (ucp_request_check_status(req) == UCS_INPROGRESS && Clock::now() < deadline) {
    ucp_worker_progress(loop_->worker());
  }
  if (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_request_cancel(loop_->worker(), req);
  ucp_request_free(req);
}

void RpcClientImpl::BreakConnection(const Status& why) {
  if (!connected_.exchange(false)) {
    // Already broken; still fail whatever is pending (destructor path).
  } else {
    MutexLock lock(&mu_);
    broken_ = why;
    if (!destroyed_) KVCAKE_LOG(WARNING) << "rpc connection broken: " << why.ToString();
  }
  const Status final_status =
      why.code() == StatusCode::kCancelled || why.code() == StatusCode::kUnavailable
          ? why
          : UnavailableError(why.message());
  for (auto& [id, p] : pending_) {
    if (!p->have_result) {
      p->have_result = true;
      p->reply.status = final_status;
    }
  }
  if (ep_) {
    std::unique_ptr<UcxEndpoint> ep = std::move(ep_);
    // Cancels in-flight sends and receives; their callbacks complete calls.
    ep->Close(/*force=*/true);
  }
  std::vector<PendingCall*> rest;
  rest.reserve(pending_.size());
  for (auto& [id, p] : pending_) rest.push_back(p);
  pending_.clear();
  for (PendingCall* p : rest) {
    counters_.Sub(&RpcClientStats::in_flight);
    Finish(p, p->reply.status);
  }
}

void RpcClientImpl::Sweep() {
  const auto now = Clock::now();
  // Callbacks may re-enter (a keepalive failure breaks the connection), so
  // collect ids and look each one up again.
  std::vector<uint64_t> ready, expired;
  for (auto& [id, p] : pending_) {
    if (!p->send_inflight && !p->recv_inflight && p->have_result) {
      ready.push_back(id);
    } else if (now > p->deadline) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : ready) {
    auto it = pending_.find(id);
    if (it != pending_.end()) MaybeComplete(it->second);
  }
  bool break_needed = false;
  for (uint64_t id : expired) {
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    PendingCall* p = it->second;
    if (p->have_result && !p->send_inflight && !p->recv_inflight) {
      MaybeComplete(p);
      continue;
    }
    p->have_result = true;
    p->reply.status =
        DeadlineExceededError("call " + std::to_string(p->id) + " to " + address_ + " timed out");
    if (p->send_inflight || p->recv_inflight) {
      break_needed = true;
    } else {
      MaybeComplete(p);
    }
  }
  if (break_needed) {
    BreakConnection(DeadlineExceededError("a call timed out with data in flight; connection to " +
                                          address_ + " closed"));
  }
  // Keepalive, only while no call is in flight (calls carry their own
  // deadlines; a ping queued behind a long transfer would misfire).
  if (options_.keepalive_interval.count() > 0 && connected_.load() && !ping_inflight_ &&
      pending_.empty() && now - last_activity_ > options_.keepalive_interval) {
    ping_inflight_ = true;
    last_activity_ = now;
    CallRequest ping;
    ping.opcode = kControlOpPing;
    ping.timeout = options_.keepalive_timeout;
    CallAsync(
        ping,
        [this](RpcReply&& r) {
          ping_inflight_ = false;
          if (r.status.code() == StatusCode::kDeadlineExceeded) {
            BreakConnection(
                UnavailableError("server " + address_ + " did not answer a keepalive within " +
                                 std::to_string(options_.keepalive_timeout.count()) + " ms"));
          }
        },
        /*control=*/true);
  }
}

// ---------------------------------------------------------------------------

RpcClient::RpcClient(std::unique_ptr<RpcClientImpl> impl) : impl_(std::move(impl)) {}
RpcClient::~RpcClient() = default;

Result<std::unique_ptr<RpcClient>> RpcClient::Connect(std::string_view address,
                                                      const RpcClientOptions& options) {
  auto impl = std::make_unique<RpcClientImpl>(std::string(address), options);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<RpcClient>(new RpcClient(std::move(impl)));
}

void RpcClient::CallAsync(const CallRequest& request, CallCallback done) {
  impl_->CallAsync(request, std::move(done), /*control=*/false);
}

RpcReply RpcClient::Call(const CallRequest& request) {
  return impl_->CallSync(request, /*control=*/false);
}

Status RpcClient::Ping(std::chrono::milliseconds timeout) {
  CallRequest ping;
  ping.opcode = kControlOpPing;
  ping.timeout = timeout;
  return impl_->CallSync(ping, /*control=*/true).status;
}

bool RpcClient::connected() const { return impl_->connected_.load(); }
Status RpcClient::connection_status() const {
  MutexLock lock(&impl_->mu_);
  return impl_->broken_;
}
std::string RpcClient::transport_info() const {
  MutexLock lock(&impl_->mu_);
  return impl_->transport_info_;
}
std::string RpcClient::server_info() const {
  MutexLock lock(&impl_->mu_);
  return impl_->server_info_;
}
const std::string& RpcClient::address() const { return impl_->address_; }
size_t RpcClient::max_meta_bytes() const { return impl_->options_.limits.max_meta_bytes; }
size_t RpcClient::max_inline_meta_bytes() const { return impl_->max_inline_meta_; }

RpcClientStats RpcClient::stats() const { return impl_->counters_.Snapshot(); }

}  // namespace kvcake::transport
