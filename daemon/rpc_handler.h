#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

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
class DaemonRpcHandler : public transport::RpcHandler {
 public:
  // `service` must outlive the handler.
  explicit DaemonRpcHandler(Service* service);

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

 private:
  void HandlePut(std::unique_ptr<transport::ServerCall> call);
  // Gets and pins run here, at once or after waiting for a hand-off.
  void RunGetOrPin(const std::shared_ptr<transport::ServerCall>& call,
                   const std::shared_ptr<RequestScope>& scope);
  void HandleGet(const std::shared_ptr<transport::ServerCall>& call,
                 const std::shared_ptr<RequestScope>& scope);

  Service* const service_;
  std::atomic<bool> draining_{false};
  // Shared so completions that outlive a request (send callbacks) stay safe.
  std::shared_ptr<std::atomic<int64_t>> in_flight_;
};

}  // namespace kvcake::daemon
