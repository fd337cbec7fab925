#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "daemon/service.h"
#include "transport/rpc_server.h"

namespace kvcake::daemon {

class RequestScope;  // rpc_handler.cc

// DaemonRpcHandler connects the RPC server to the Service: puts are received
// straight into reserved store slots (AcceptPayload), gets are sent straight
// from pinned slots (released when the send completes), every other op is
// decoded and answered inline. Records request counts, latency and errors
// into the metrics catalog.
//
// Draining (SIGTERM): after BeginDrain() new requests get UNAVAILABLE
// "daemon is draining"; WaitIdle() waits until every request already
// accepted has been answered and its payload sent.
//
// Thread-safety: thread-safe; called on any I/O thread.
class RequestScope;  // a request's in-flight count, latency and outcome

class DaemonRpcHandler : public transport::RpcHandler {
 public:
  // `service` must outlive the handler.
  explicit DaemonRpcHandler(Service* service);
  // Finishes the deferred work (StopDeferred).
  ~DaemonRpcHandler() override;

  Status AcceptPayload(transport::ServerCall& call,
                       std::vector<transport::MutableBuffer>* target) override;
  void OnRequest(std::unique_ptr<transport::ServerCall> call) override;
  // Admits only known opcodes; only a put carries a payload, of at most one
  // batch of the largest value the store holds (checked again, exactly,
  // against the namespace in BeginPut).
  Status CheckRequestHeader(const transport::FrameHeader& header) override;
  // The connection's namespace grants end and its leases are released.
  void OnConnectionClosed(uint64_t connection_id) override;

  void BeginDrain() { draining_.store(true, std::memory_order_release); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // True if idle before `timeout` ran out.
  bool WaitIdle(std::chrono::milliseconds timeout) const;
  int64_t in_flight() const { return in_flight_->load(std::memory_order_acquire); }
  // Runs what is deferred, then joins the deferred-work threads; later
  // deferred work runs inline. Call before the RPC server stops.
  void StopDeferred() EXCLUDES(deferred_mu_);

 private:
  void HandlePut(std::unique_ptr<transport::ServerCall> call);
  // Gets and pins run here, at once or after waiting for a hand-off or for
  // blocks on their way from another member.
  void RunGetOrPin(const std::shared_ptr<transport::ServerCall>& call,
                   const std::shared_ptr<RequestScope>& scope);
  void HandleGet(const std::shared_ptr<transport::ServerCall>& call,
                 const std::shared_ptr<RequestScope>& scope);
  // Runs `task` on a deferred-work thread (gets that wait for blocks coming
  // from other cluster members must not block an I/O thread).
  void Defer(std::function<void()> task) EXCLUDES(deferred_mu_);
  void DeferredLoop() EXCLUDES(deferred_mu_);

  Service* const service_;
  std::atomic<bool> draining_{false};
  Mutex deferred_mu_;
  CondVar deferred_cv_;
  std::deque<std::function<void()>> deferred_ GUARDED_BY(deferred_mu_);
  bool deferred_stop_ GUARDED_BY(deferred_mu_) = false;
  std::vector<std::thread> deferred_threads_ GUARDED_BY(deferred_mu_);  // started on first use
  // Shared so completions that outlive a request (send callbacks) stay safe.
  std::shared_ptr<std::atomic<int64_t>> in_flight_;
};

}  // namespace kvcake::daemon
