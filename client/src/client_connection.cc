// ClientImpl's connection: connecting with the same-node discovery, and
// reconnecting (one thread at a time, with backoff) when the daemon went
// away.
#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <thread>
#include <utility>

#include "client/src/client_impl.h"
#include "client/src/wire.h"
#include "common/logging.h"
#ifdef KVCAKE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kvcake::internal {
namespace {

using transport::RpcOp;

// Loopback addresses are the only ones the mapped path is tried for.
bool IsLoopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address.rfind("localhost:", 0) == 0;
}

}  // namespace

Result<std::shared_ptr<Connection>> ClientImpl::OpenConnection(
    std::chrono::milliseconds timeout) const {
  transport::RpcClientOptions ropts;
  ASSIGN_OR_RETURN(ropts.ucx.transport, transport::ParseUcxTransport(options_.ucx_tls));
  ropts.connect_timeout = timeout;
  ropts.default_timeout = options_.timeout;
  ropts.ucx.busy_poll = options_.busy_poll;
  ropts.ucx.busy_poll_yield = options_.busy_poll_yield;
  ropts.caller_spin = options_.spin_wait;
  auto conn = std::make_shared<Connection>();
  ASSIGN_OR_RETURN(conn->rpc, transport::RpcClient::Connect(options_.address, ropts));
  transport::PingRequest ping{0x6b7663616b65};
  ASSIGN_OR_RETURN(std::vector<uint8_t> meta, Call(*conn, RpcOp::kPing, transport::Encode(ping)));
  transport::PingResponse pong;
  RETURN_IF_ERROR(transport::Decode(AsView(meta), &pong));
  if (pong.nonce != ping.nonce) return InternalError("ping nonce mismatch");
  if (options_.use_mapped_path && !pong.host_segment.empty() && IsLoopback(options_.address)) {
    Result<std::unique_ptr<MappedSegment>> seg =
        MappedSegment::Open(pong.host_segment, pong.host_segment_bytes, pong.host_segment_inode);
    if (seg.ok()) {
      conn->segment = std::move(seg).value();
      KVCAKE_LOG(DEBUG) << "kvcake client: mapped the daemon's host segment ("
                        << pong.host_segment_bytes << " bytes)";
    } else {
      KVCAKE_LOG(INFO) << "kvcake client: same-node path unavailable (" << seg.status().ToString()
                       << "); using UCX for data";
    }
  }
  if (conn->segment) OpenDeviceSegment(pong, conn.get());
  return conn;
}

// The emulated device's memfd, or the CUDA arena by IPC handle. Without it,
// GPU-tier blocks come over UCX.
void ClientImpl::OpenDeviceSegment(const transport::PingResponse& pong, Connection* conn) const {
  if (pong.device_segment_kind == 1) {
    Result<std::unique_ptr<MappedSegment>> seg = MappedSegment::Open(
        pong.device_segment, pong.device_segment_bytes, pong.device_segment_inode);
    if (seg.ok()) {
      conn->device_segment = std::move(seg).value();
    } else {
      KVCAKE_LOG(INFO) << "kvcake client: GPU-tier arena not mapped (" << seg.status().ToString()
                       << "); its blocks come over UCX";
    }
    return;
  }
#ifdef KVCAKE_HAVE_CUDA
  if (pong.device_segment_kind == 2 && cuda_available_ &&
      pong.device_segment.size() == sizeof(cudaIpcMemHandle_t)) {
    cudaIpcMemHandle_t h;
    std::memcpy(&h, pong.device_segment.data(), sizeof h);
    void* base = nullptr;
    cudaError_t err = cudaIpcOpenMemHandle(&base, h, cudaIpcMemLazyEnablePeerAccess);
    if (err == cudaSuccess) {
      conn->device_ipc_base = static_cast<char*>(base);
      conn->device_ipc_bytes = pong.device_segment_bytes;
    } else {
      (void)cudaGetLastError();
      KVCAKE_LOG(INFO) << "kvcake client: cudaIpcOpenMemHandle: " << cudaGetErrorString(err)
                       << "; GPU-tier blocks come over UCX";
    }
  }
#endif
}

std::shared_ptr<Connection> ClientImpl::Current() const {
  MutexLock lock(&conn_mu_);
  return conn_;
}

// The current connection while it works (and, once the namespace is
// registered, has it registered). Otherwise, with ClientOptions::reconnect,
// re-establishes it first: a new connection to the same address (with
// backoff between attempts), the discovery of Connect, and the namespace
// registered again, all within the call's timeout. One thread reconnects at
// a time; the others wait for it (up to their timeout) and then use its
// connection.
Result<std::shared_ptr<Connection>> ClientImpl::Acquire() {
  std::shared_ptr<Connection> conn = Current();
  const bool need_namespace = Registered();
  if (!options_.reconnect || (conn->Healthy() && (!need_namespace || conn->registered.load()))) {
    return conn;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  // One reconnecting thread at a time (a gate rather than a timed mutex:
  // TSan cannot follow std::timed_mutex's clock-based lock).
  {
    MutexLock gate(&reconnect_mu_);
    if (!reconnect_cv_.WaitUntil(&gate, deadline,
                                 [this]() REQUIRES(reconnect_mu_) { return !reconnecting_; })) {
      return UnavailableError("kvcake: the connection to " + options_.address +
                              " is broken and another call's reconnect did not finish within " +
                              std::to_string(options_.timeout.count()) + " ms");
    }
    reconnecting_ = true;
  }
  struct GateRelease {
    ClientImpl* self;
    ~GateRelease() {
      {
        MutexLock gate(&self->reconnect_mu_);
        self->reconnecting_ = false;
      }
      self->reconnect_cv_.NotifyAll();
    }
  } release{this};
  conn = Current();  // another thread may have reconnected meanwhile
  if (!conn->Healthy()) {
    Status why = conn->rpc->connection_status();
    conn.reset();  // a retired connection is released once unused
    return ReconnectLocked(deadline, why);
  }
  if (Registered() && !conn->registered.load()) {
    // An earlier registration on this connection was refused.
    RETURN_IF_ERROR(RegisterAgainLocked(*conn));
  }
  return conn;
}

// Attempts are spaced by a backoff that grows from kInitialBackoff to
// ClientOptions::reconnect_max_backoff and carries over between calls until
// an attempt succeeds.
Result<std::shared_ptr<Connection>> ClientImpl::ReconnectLocked(
    std::chrono::steady_clock::time_point deadline, const Status& why) {
  for (;;) {
    if (async_->Closing()) return ClosingError();
    auto now = std::chrono::steady_clock::now();
    if (next_attempt_ >= deadline || now >= deadline) {
      return UnavailableError(
          "kvcake: connection to " + options_.address + " lost (" +
          (why.ok() ? std::string("a call failed") : std::string(why.message())) + "); " +
          std::to_string(failed_attempts_) + " reconnect attempt(s) failed, the last: " +
          last_attempt_error_.ToString() + "; retrying on a later call");
    }
    if (next_attempt_ > now) {
      std::this_thread::sleep_until(next_attempt_);
      now = std::chrono::steady_clock::now();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    Result<std::shared_ptr<Connection>> opened =
        OpenConnection(std::clamp(left, std::chrono::milliseconds(1), options_.timeout));
    if (!opened.ok()) {
      NoteFailedAttempt(opened.status());
      KVCAKE_LOG(DEBUG) << "kvcake client: reconnect attempt " << failed_attempts_ << " to "
                        << options_.address << " failed: " << last_attempt_error_.ToString();
      continue;
    }
    std::shared_ptr<Connection> conn = std::move(opened).value();
    Status registered;
    if (Registered()) {
      // Registered before it is installed, so other calls find it ready. A
      // refusal (e.g. the daemon now holds another layout) is not a
      // connection failure: the connection is installed and the
      // registration retried by the next call.
      registered = RegisterAgainLocked(*conn);
      if (!registered.ok() && !conn->Healthy()) {
        NoteFailedAttempt(registered);
        continue;
      }
    }
    const uint64_t n = reconnects_.fetch_add(1, std::memory_order_relaxed) + 1;
    KVCAKE_LOG(INFO) << "kvcake client: reconnected to " << options_.address << " after "
                     << failed_attempts_ + 1 << " attempt(s) (reconnect " << n
                     << "; data path: " << (conn->segment ? "mapped host segment" : "UCX") << ")";
    failed_attempts_ = 0;
    last_attempt_error_ = Status::Ok();
    backoff_ = std::min(kInitialBackoff, options_.reconnect_max_backoff);
    next_attempt_ = {};
    Install(conn);
    if (!registered.ok()) return registered;
    return conn;
  }
}

void ClientImpl::NoteFailedAttempt(const Status& why) {
  ++failed_attempts_;
  last_attempt_error_ = why;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max_backoff);
}

// The previous connection is retired and released (its RPC client closed, its
// segments unmapped) by a later Install or the destructor once no call or
// operation uses it any more; that check runs here, on a caller's thread,
// never on an I/O thread.
void ClientImpl::Install(std::shared_ptr<Connection> conn) {
  std::vector<std::shared_ptr<Connection>> unused;
  {
    MutexLock lock(&conn_mu_);
    retired_.push_back(std::move(conn_));
    conn_ = std::move(conn);
    // use_count() == 1: only retired_ holds it, and nothing can copy it
    // from there.
    auto idle = std::stable_partition(retired_.begin(), retired_.end(),
                                      [](const auto& c) { return c.use_count() > 1; });
    std::move(idle, retired_.end(), std::back_inserter(unused));
    retired_.erase(idle, retired_.end());
  }
  // `unused` goes here, outside the lock.
}

// Sends RegisterNamespace with the client's geometry and token over `conn`
// and checks that the daemon agrees on the layout.
Status ClientImpl::RegisterAgainLocked(Connection& conn) {
  NamespaceGeometry g;
  uint64_t ns_id, fingerprint;
  {
    MutexLock lock(&mu_);
    g = geometry_;
    ns_id = ns_id_;
    fingerprint = fingerprint_;
  }
  Result<transport::RegisterNamespaceResponse> resp = SendRegister(conn, g);
  if (!resp.ok()) {
    return resp.status().WithContext("kvcake: registering namespace '" + options_.namespace_name +
                                     "' again after reconnecting");
  }
  if (resp->fingerprint != fingerprint || resp->ns_id != ns_id) {
    return FailedPreconditionError("the daemon at " + options_.address + " now holds namespace '" +
                                   options_.namespace_name +
                                   "' with another layout; create a new client");
  }
  conn.registered = true;
  return Status::Ok();
}

Result<transport::RegisterNamespaceResponse> ClientImpl::SendRegister(
    Connection& conn, const NamespaceGeometry& g) const {
  transport::RegisterNamespaceRequest req;
  req.name = options_.namespace_name;
  req.token = options_.token;
  req.num_layers = g.num_layers;
  req.block_tokens = g.block_tokens;
  req.layer_block_bytes = g.layer_block_bytes;
  req.kv_dtype = g.kv_dtype;
  req.layout = g.layout;
  req.quota_bytes = g.quota_bytes;
  req.serving = g.budgeted_serving ? 1 : 0;
  ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                   Call(conn, RpcOp::kRegisterNamespace, transport::Encode(req)));
  transport::RegisterNamespaceResponse resp;
  RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
  return resp;
}

}  // namespace kvcake::internal
