#include "daemon/rpc_handler.h"

#include <chrono>
#include <string>
#include <string_view>
#include <thread>

#include "common/logging.h"
#include "common/metrics_catalog.h"
#include "transport/messages.h"

namespace kvcake::daemon {
namespace {

using transport::RpcOp;

std::string_view MetricOpName(uint16_t op) {
  switch (static_cast<RpcOp>(op)) {
    case RpcOp::kPing:
      return "ping";
    case RpcOp::kRegisterNamespace:
      return "register";
    case RpcOp::kLookupPrefix:
      return "lookup";
    case RpcOp::kPut:
      return "put";
    case RpcOp::kGet:
      return "get";
    case RpcOp::kReportStats:
      return "report_stats";
    case RpcOp::kDelete:
      return "delete";
    case RpcOp::kPutReserve:
      return "reserve";
    case RpcOp::kPutCommit:
      return "commit";
    case RpcOp::kGetPin:
      return "pin";
    case RpcOp::kRelease:
      return "release";
    case RpcOp::kDirectoryPublish:
      return "directory_publish";
    case RpcOp::kDirectoryLookup:
      return "directory_lookup";
    case RpcOp::kHandoffWait:
      return "handoff_wait";
    case RpcOp::kNcclConnect:
      return "nccl_connect";
    case RpcOp::kHandoffNotice:
      return "handoff_notice";
    case RpcOp::kHandoffAbort:
      return "handoff_abort";
  }
  return "unknown";
}

std::string_view AsView(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}
std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

// Counts one request in flight for its whole life (RAII), and records its
// latency and outcome when it ends.
class RequestScope {
 public:
  RequestScope(std::shared_ptr<std::atomic<int64_t>> counter, uint16_t op)
      : counter_(std::move(counter)), op_(op), start_(std::chrono::steady_clock::now()) {
    counter_->fetch_add(1, std::memory_order_acq_rel);
  }
  ~RequestScope() {
    auto& cat = metrics::Catalog::Default();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    cat.Latency(MetricOpName(op_))->Observe(secs);
    if (!status_.ok()) cat.RecordError(MetricOpName(op_), status_.code());
    counter_->fetch_sub(1, std::memory_order_acq_rel);
  }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
  void set_status(const Status& s) { status_ = s; }

 private:
  std::shared_ptr<std::atomic<int64_t>> counter_;
  uint16_t op_;
  std::chrono::steady_clock::time_point start_;
  Status status_;
};

namespace {

// What a put call carries between AcceptPayload and OnRequest.
struct PutCallState {
  Service* service = nullptr;
  std::unique_ptr<Service::PutState> put;
  std::unique_ptr<RequestScope> scope;
  ~PutCallState() {
    if (put) service->AbortPut(*put);  // no-op once finished
  }
};

}  // namespace

DaemonRpcHandler::DaemonRpcHandler(Service* service)
    : service_(service), in_flight_(std::make_shared<std::atomic<int64_t>>(0)) {}

DaemonRpcHandler::~DaemonRpcHandler() { StopDeferred(); }

// Threads that serve gets waiting for blocks from other members.
constexpr size_t kDeferredThreads = 4;

void DaemonRpcHandler::Defer(std::function<void()> task) {
  {
    MutexLock lock(&deferred_mu_);
    if (!deferred_stop_) {
      if (deferred_threads_.empty()) {
        for (size_t i = 0; i < kDeferredThreads; ++i) {
          deferred_threads_.emplace_back([this] { DeferredLoop(); });
        }
      }
      deferred_.push_back(std::move(task));
      deferred_cv_.NotifyOne();
      return;
    }
  }
  task();  // stopping: run it here
}

void DaemonRpcHandler::DeferredLoop() {
  MutexLock lock(&deferred_mu_);
  while (true) {
    deferred_cv_.Wait(
        &lock, [this]() REQUIRES(deferred_mu_) { return deferred_stop_ || !deferred_.empty(); });
    if (deferred_.empty()) return;  // stopping and drained
    std::function<void()> task = std::move(deferred_.front());
    deferred_.pop_front();
    lock.Unlock();
    task();
    lock.Lock();
  }
}

void DaemonRpcHandler::StopDeferred() {
  std::vector<std::thread> threads;
  {
    MutexLock lock(&deferred_mu_);
    deferred_stop_ = true;
    threads = std::move(deferred_threads_);
  }
  deferred_cv_.NotifyAll();
  for (std::thread& t : threads) t.join();
}

bool DaemonRpcHandler::WaitIdle(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

Status DaemonRpcHandler::AcceptPayload(transport::ServerCall& call,
                                       std::vector<transport::MutableBuffer>* target) {
  if (draining()) return UnavailableError("daemon is draining");
  if (call.opcode() != static_cast<uint16_t>(RpcOp::kPut)) {
    return InvalidArgumentError(std::string(transport::RpcOpName(call.opcode())) +
                                " carries no payload");
  }
  auto state = std::make_shared<PutCallState>();
  state->service = service_;
  state->scope = std::make_unique<RequestScope>(in_flight_, call.opcode());
  Result<std::unique_ptr<Service::PutState>> put =
      service_->BeginPut(call.connection_id(), AsView(call.meta()), call.payload_size());
  if (!put.ok()) {
    state->scope->set_status(put.status());
    return put.status();
  }
  state->put = std::move(put).value();
  if (state->put->staging) {
    target->push_back(transport::MutableBuffer{state->put->staging.get(), call.payload_size()});
  } else {
    target->insert(target->end(), state->put->targets.begin(), state->put->targets.end());
  }
  call.set_user_data(state);
  return Status::Ok();
}

Status DaemonRpcHandler::CheckRequestHeader(const transport::FrameHeader& header) {
  const std::string_view name = MetricOpName(header.opcode);
  if (name == "unknown") {
    return UnimplementedError("unknown opcode " + std::to_string(header.opcode));
  }
  if (header.payload_size == 0) return Status::Ok();
  if (header.opcode != static_cast<uint16_t>(RpcOp::kPut)) {
    return InvalidArgumentError(std::string(name) + " carries no payload, announced " +
                                std::to_string(header.payload_size) + " bytes");
  }
  const uint64_t limit = service_->MaxPutPayloadBytes();
  if (header.payload_size > limit) {
    return InvalidArgumentError("put payload of " + std::to_string(header.payload_size) +
                                " bytes exceeds one batch (" + std::to_string(limit) + " bytes)");
  }
  return Status::Ok();
}

void DaemonRpcHandler::OnConnectionClosed(uint64_t connection_id) {
  service_->ForgetCaller(connection_id);
}

void DaemonRpcHandler::OnRequest(std::unique_ptr<transport::ServerCall> call) {
  const uint16_t op = call->opcode();
  if (op == static_cast<uint16_t>(RpcOp::kPut)) return HandlePut(std::move(call));
  if (draining()) {
    call->ReplyError(UnavailableError("daemon is draining"));
    return;
  }
  if (op == static_cast<uint16_t>(RpcOp::kHandoffWait)) {
    // Waits on the service's hand-off waiter thread, never on this one.
    auto scope = std::make_shared<RequestScope>(in_flight_, op);
    std::shared_ptr<transport::ServerCall> shared(std::move(call));
    service_->WaitHandoff(AsView(shared->meta()), [shared, scope](const Status& s) {
      if (!s.ok()) {
        scope->set_status(s);
        shared->ReplyError(s);
        return;
      }
      shared->Reply(Status::Ok(), AsBytes(transport::Encode(transport::EmptyResponse{})));
    });
    return;
  }
  if (op == static_cast<uint16_t>(RpcOp::kGet) || op == static_cast<uint16_t>(RpcOp::kGetPin)) {
    // A get of blocks a hand-off is still bringing waits for them off the
    // I/O thread, then runs as usual.
    // The scope counts the request in flight while it is parked too.
    std::shared_ptr<transport::ServerCall> shared(std::move(call));
    auto scope = std::make_shared<RequestScope>(in_flight_, op);
    const bool parked =
        service_->ParkForHandoff(shared->connection_id(), op, AsView(shared->meta()),
                                 [this, shared, scope](const Status& failed) {
                                   if (!failed.ok()) {
                                     // The hand-off failed on the prefill side.
                                     scope->set_status(failed);
                                     shared->ReplyError(failed);
                                     return;
                                   }
                                   RunGetOrPin(shared, scope);
                                 });
    if (parked) return;
    if (service_->WaitsForCluster(AsView(shared->meta()))) {
      // Blocks on their way from another member (a prefetch or a fetch on
      // demand): wait for them off the I/O thread, so its other connections
      // and its sends keep moving.
      Defer([this, shared, scope] { RunGetOrPin(shared, scope); });
      return;
    }
    return RunGetOrPin(shared, scope);
  }
  RequestScope scope(in_flight_, op);
  std::string response_data;
  Result<std::string> meta =
      service_->Handle(call->connection_id(), op, AsView(call->meta()), {}, &response_data);
  if (!meta.ok()) {
    scope.set_status(meta.status());
    call->ReplyError(meta.status());
    return;
  }
  call->Reply(Status::Ok(), AsBytes(*meta));
}

void DaemonRpcHandler::HandlePut(std::unique_ptr<transport::ServerCall> call) {
  auto state = std::static_pointer_cast<PutCallState>(call->user_data());
  if (!state || !state->put) {
    // A put without payload (zero keys is refused by the decoder, so this is
    // a put whose size was 0): answer through the copying path.
    RequestScope scope(in_flight_, call->opcode());
    std::string unused;
    Result<std::string> meta =
        service_->Handle(call->connection_id(), call->opcode(), AsView(call->meta()), {}, &unused);
    if (!meta.ok()) {
      scope.set_status(meta.status());
      call->ReplyError(meta.status());
    } else {
      call->Reply(Status::Ok(), AsBytes(*meta));
    }
    return;
  }
  Result<std::string> meta = service_->FinishPut(*state->put, call->payload_status());
  if (!meta.ok()) {
    state->scope->set_status(meta.status());
    call->ReplyError(meta.status());
    return;
  }
  call->Reply(Status::Ok(), AsBytes(*meta));
}

void DaemonRpcHandler::RunGetOrPin(const std::shared_ptr<transport::ServerCall>& call,
                                   const std::shared_ptr<RequestScope>& scope) {
  if (call->opcode() == static_cast<uint16_t>(RpcOp::kGet)) return HandleGet(call, scope);
  std::string unused;
  Result<std::string> meta =
      service_->Handle(call->connection_id(), call->opcode(), AsView(call->meta()), {}, &unused);
  if (!meta.ok()) {
    scope->set_status(meta.status());
    call->ReplyError(meta.status());
    return;
  }
  call->Reply(Status::Ok(), AsBytes(*meta));
}

void DaemonRpcHandler::HandleGet(const std::shared_ptr<transport::ServerCall>& call,
                                 const std::shared_ptr<RequestScope>& scope) {
  Result<std::unique_ptr<Service::GetState>> get =
      service_->BeginGet(call->connection_id(), AsView(call->meta()));
  if (!get.ok()) {
    scope->set_status(get.status());
    call->ReplyError(get.status());
    return;
  }
  std::shared_ptr<Service::GetState> state = std::move(get).value();
  Service* service = service_;
  // The pins stay until the payload has left (or the send failed).
  call->Reply(Status::Ok(), AsBytes(state->meta), state->payload,
              [state, scope, service](const Status& sent) {
                if (!sent.ok()) {
                  KVCAKE_LOG(DEBUG) << "get reply not delivered: " << sent.ToString();
                }
                service->EndGet(*state);
              });
}

}  // namespace kvcake::daemon
