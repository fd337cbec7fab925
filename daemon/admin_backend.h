#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/result.h"
#include "common/status.h"
#include "daemon/admin/admin_backend.h"
#include "daemon/admin/admin_server.h"

namespace kvcake::daemon {

class Daemon;

// DaemonAdminBackend: the admin API (daemon/admin/admin_backend.h) over a
// running Daemon — its TierManager, Service and RPC server. Drain runs on a
// background thread; progress is polled. Registers a metrics collect hook
// that refreshes the tier gauges and CAKE layer budgets at scrape time.
//
// Thread-safety: thread-safe (AdminBackend contract). The daemon must outlive
// the backend.
class DaemonAdminBackend final : public admin::AdminBackend {
 public:
  explicit DaemonAdminBackend(Daemon* daemon);
  ~DaemonAdminBackend() override;

  Result<admin::DaemonStatus> GetStatus() override;
  Result<admin::DaemonStats> GetStats() override;
  Result<std::vector<admin::NamespaceInfo>> ListNamespaces() override;
  Result<std::vector<admin::BlockInfo>> ListBlocks(const admin::BlockFilter& filter) override;
  Result<admin::EvictResult> Evict(const admin::BlockFilter& filter) override;
  Result<uint64_t> Pin(const admin::BlockFilter& filter) override;
  Result<uint64_t> Unpin(const admin::BlockFilter& filter) override;
  Status StartDrain() EXCLUDES(mu_) override;
  Result<admin::DrainProgress> GetDrain() EXCLUDES(mu_) override;
  Result<std::vector<admin::ConfigEntry>> GetConfig() override;
  Result<admin::ClusterStatus> GetCluster() override;
  Result<admin::PrefixHolders> LookupHolders(uint64_t ns, uint32_t layer,
                                             const std::vector<uint64_t>& hashes) override;
  Status SetConfig(const std::vector<std::pair<std::string, std::string>>& updates) override;

 private:
  // Blocks matching `filter` (all of them, ignoring filter.limit).
  std::vector<BlockKey> Matching(const admin::BlockFilter& filter, size_t limit) const;
  void RefreshMetrics();

  Daemon* const daemon_;
  const std::chrono::steady_clock::time_point start_;
  int hook_id_ = -1;
  Mutex mu_;
  admin::DrainProgress drain_ GUARDED_BY(mu_);
  std::thread drain_thread_ GUARDED_BY(mu_);
};

// Starts the admin HTTP server for `daemon` with `options` (listen address,
// token file — required off loopback —, connection limits and timeouts). The
// backend is returned through *backend and must outlive the server.
Result<std::unique_ptr<admin::AdminServer>> StartAdmin(
    Daemon* daemon, const admin::AdminServerOptions& options,
    std::unique_ptr<DaemonAdminBackend>* backend);

}  // namespace kvcake::daemon
