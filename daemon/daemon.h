#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "cluster/cluster_node.h"
#include "cluster/membership.h"
#include "common/mutex.h"
#include "common/result.h"
#include "common/status.h"
#include "daemon/rpc_handler.h"
#include "daemon/service.h"
#include "store/tier_manager.h"
#include "transport/rpc_server.h"

namespace kvcake::daemon {

// Cluster membership and cross-node service (docs/cluster.md).
struct DaemonClusterOptions {
  // etcd client URLs ("http://HOST:PORT"); empty: the daemon runs alone.
  std::vector<std::string> etcd_endpoints;
  std::string cluster_name = "default";
  std::string node_id;        // empty: the host name
  std::string advertise;      // HOST:PORT peers use; empty: the bound address (not a wildcard)
  std::string admin_address;  // published for operators ("" if none)
  int64_t member_ttl_s = 5;
  // Secret every member presents to the others (--cluster_token_file).
  std::string cluster_token;
  uint64_t peer_timeout_ms = 200;

  bool enabled() const { return !etcd_endpoints.empty(); }
};

// Everything kvcaked is configured with; main() maps gflags onto it (no
// library reads FLAGS_*). Defaults run on a laptop.
struct DaemonOptions {
  store::TierManagerOptions store;     // tiers, leases, mover
  transport::RpcServerOptions rpc;     // --listen, --io_threads, --ucx_tls
  ServiceOptions service;              // token, quotas, leases, batch limits
  DaemonClusterOptions cluster;        // --cluster_etcd ... (none by default)
  std::string policy = "adaptive";     // a policy::MakePolicy name (policy::PolicyNameList)
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
  void Shutdown() EXCLUDES(mu_);

  // "HOST:PORT" actually bound.
  std::string address() const;
  store::TierManager* store() const { return store_.get(); }
  Service* service() const { return service_.get(); }
  transport::RpcServer* rpc_server() const { return server_.get(); }
  DaemonRpcHandler* handler() const { return handler_.get(); }
  // Null when the daemon runs alone.
  cluster::Membership* membership() const { return membership_.get(); }
  cluster::ClusterNode* cluster_node() const { return cluster_node_.get(); }
  const DaemonOptions& options() const { return options_; }
  bool draining() const { return handler_ && handler_->draining(); }

 private:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
  void SweepLoop() EXCLUDES(mu_);
  // Joins the cluster once the listener is bound (ALREADY_EXISTS: the node
  // id is taken by a live member).
  Status JoinCluster();

  DaemonOptions options_;
  std::unique_ptr<store::TierManager> store_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<DaemonRpcHandler> handler_;
  std::unique_ptr<transport::RpcServer> server_;
  std::unique_ptr<cluster::ClusterNode> cluster_node_;
  std::unique_ptr<cluster::Membership> membership_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread sweeper_;
  bool shut_down_ = false;
};

}  // namespace kvcake::daemon
