#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/status.h"
#include "daemon/rpc_handler.h"
#include "daemon/service.h"
#include "store/tier_manager.h"
#include "transport/rpc_server.h"

namespace kvcake::daemon {

// Everything kvcaked is configured with; main() maps gflags onto it (no
// library reads FLAGS_*). Defaults run on a laptop.
struct DaemonOptions {
  store::TierManagerOptions store;     // tiers, leases, mover
  transport::RpcServerOptions rpc;     // --listen, --io_threads, --ucx_tls
  ServiceOptions service;              // token, quotas, leases, batch limits
  std::string policy = "adaptive";     // lru | cake | cake_uniform | adaptive
  bool drain_on_exit = true;           // SIGTERM demotes host blocks to SSD first
  uint64_t drain_timeout_ms = 30'000;  // bound on waiting for in-flight requests
  bool expose_host_segment = true;     // same-node clients may map the host tier
  bool expose_gpu_arena = true;        // ... and read the GPU tier's arena

  // INVALID_ARGUMENT naming the bad option.
  Status Validate() const;
  // Multi-line "name = value" dump for the start-up log.
  std::string ToString() const;
};

// Daemon wires the TierManager, the Service and the RPC server together and
// runs the lease sweeper. Start() returns once the listener is bound.
//
// Thread-safety: Start / Shutdown / destructor from one owning thread;
// accessors from any thread.
class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  // Shuts down (see Shutdown) if still running.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Graceful stop: refuses new requests, waits for in-flight ones (bounded
  // by drain_timeout_ms), stops the listener, releases leases, optionally
  // demotes everything to SSD, flushes SSD writes. Idempotent.
  void Shutdown();

  // "HOST:PORT" actually bound.
  std::string address() const;
  store::TierManager* store() const { return store_.get(); }
  Service* service() const { return service_.get(); }
  transport::RpcServer* rpc_server() const { return server_.get(); }
  DaemonRpcHandler* handler() const { return handler_.get(); }
  const DaemonOptions& options() const { return options_; }
  bool draining() const { return handler_ && handler_->draining(); }

 private:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
  void SweepLoop();

  DaemonOptions options_;
  std::unique_ptr<store::TierManager> store_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<DaemonRpcHandler> handler_;
  std::unique_ptr<transport::RpcServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread sweeper_;
  bool shut_down_ = false;
};

}  // namespace kvcake::daemon
