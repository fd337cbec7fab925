#include "daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>

#include "common/logging.h"
#include "policy/policy_factory.h"
#include "transport/ucx.h"

namespace kvcake::daemon {

namespace {

std::string Num(uint64_t v) { return std::to_string(v); }

// The checks of the options kvcaked sets from its flags, each naming the
// flag; what no flag sets is left to the parts' own Validate().
Status ValidateFlagOptions(const DaemonOptions& o) {
  const store::TierManagerOptions& st = o.store;
  sockaddr_storage ss;
  size_t len = 0;
  RETURN_IF_ERROR(transport::ParseHostPort(o.rpc.listen, &ss, &len).WithContext("--listen"));
  if (o.rpc.io_threads < 1 || o.rpc.io_threads > 64) {
    return InvalidArgumentError("--io_threads must be in 1..64, got " +
                                std::to_string(o.rpc.io_threads));
  }
  if (o.rpc.ucx.busy_poll.count() < 0 || o.rpc.ucx.busy_poll > std::chrono::seconds(1)) {
    return InvalidArgumentError("--busy_poll_us must be at most 1000000 (1 s), got " +
                                std::to_string(o.rpc.ucx.busy_poll.count()));
  }
  if (o.rpc.max_staged_bytes == 0) return InvalidArgumentError("--max_staged_bytes must be > 0");
  if (st.slot_bytes == 0 || st.slot_bytes % 4096 != 0) {
    return InvalidArgumentError("--slot_bytes must be a positive multiple of 4096 (4K), got " +
                                Num(st.slot_bytes));
  }
  if (st.host_capacity_bytes >= (8ull << 40)) {
    return InvalidArgumentError("--host_bytes must be below 8T, got " +
                                Num(st.host_capacity_bytes));
  }
  if (st.host_capacity_bytes < st.slot_bytes) {
    return InvalidArgumentError("--host_bytes (" + Num(st.host_capacity_bytes) +
                                ") must hold at least one value of --slot_bytes (" +
                                Num(st.slot_bytes) + ")");
  }
  if (st.device_capacity_bytes != 0 && st.device_capacity_bytes < st.slot_bytes) {
    return InvalidArgumentError("--gpu_bytes (" + Num(st.device_capacity_bytes) +
                                ") must be 0 or hold at least one slot of --slot_bytes (" +
                                Num(st.slot_bytes) + ")");
  }
  if (!st.ssd_path.empty() && st.ssd_capacity_bytes < st.slot_bytes) {
    return InvalidArgumentError("--ssd_bytes (" + Num(st.ssd_capacity_bytes) +
                                ") must hold at least one value of --slot_bytes (" +
                                Num(st.slot_bytes) + ") when --ssd_path is set");
  }
  const ServiceOptions& sv = o.service;
  if (sv.lease_ms == 0 || sv.lease_ms > 3'600'000) {
    return InvalidArgumentError("--lease_ms must be in [1, 3600000], got " + Num(sv.lease_ms));
  }
  if (sv.max_quota_bytes != 0 && sv.default_quota_bytes > sv.max_quota_bytes) {
    return InvalidArgumentError("--default_quota_bytes (" + Num(sv.default_quota_bytes) +
                                ") exceeds --max_quota_bytes (" + Num(sv.max_quota_bytes) + ")");
  }
  if (sv.max_namespaces == 0) return InvalidArgumentError("--max_namespaces must be > 0");
  if (!policy::IsPolicyName(o.policy)) {
    return InvalidArgumentError("--policy: unknown policy '" + o.policy +
                                "' (available: " + policy::PolicyNameList() + ")");
  }
  if (o.cluster.enabled()) {
    if (o.cluster.member_ttl_s < 1) return InvalidArgumentError("--member_ttl_s must be >= 1");
    if (o.cluster.peer_timeout_ms == 0) {
      return InvalidArgumentError("--peer_timeout_ms must be > 0");
    }
    if (o.cluster.advertise.empty() &&
        (o.rpc.listen.rfind("0.0.0.0:", 0) == 0 || o.rpc.listen.rfind("[::]:", 0) == 0)) {
      return InvalidArgumentError("--advertise is needed when --listen is a wildcard (" +
                                  o.rpc.listen + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

Status DaemonOptions::Validate() const {
  RETURN_IF_ERROR(ValidateFlagOptions(*this));
  RETURN_IF_ERROR(store.Validate().WithContext("store options"));
  RETURN_IF_ERROR(rpc.Validate().WithContext("rpc options"));
  RETURN_IF_ERROR(service.Validate().WithContext("service options"));
  if (drain_timeout_ms == 0) return InvalidArgumentError("drain_timeout_ms must be > 0");
  return Status::Ok();
}

std::string DaemonOptions::ToString() const {
  std::ostringstream o;
  o << "listen = " << rpc.listen << "\n"
    << "io_threads = " << rpc.io_threads << "\n"
    << "ucx_tls = " << rpc.ucx.Tls() << "\n"
    << "busy_poll_us = " << rpc.ucx.busy_poll.count() << "\n"
    << "busy_poll_yield = " << rpc.ucx.busy_poll_yield << "\n"
    << "ucx_tcp_zero_copy = " << rpc.ucx.tcp_zero_copy << "\n"
    << "cluster_etcd = " << cluster.etcd_endpoints.size() << " endpoint(s)\n"
    << "cluster_name = " << cluster.cluster_name << "\n"
    << "node_id = " << (cluster.node_id.empty() ? "(host name)" : cluster.node_id) << "\n"
    << "peer_timeout_ms = " << cluster.peer_timeout_ms << "\n"
    << "gpu_bytes = " << store.device_capacity_bytes << "\n"
    << "host_bytes = " << store.host_capacity_bytes << "\n"
    << "slot_bytes = " << store.slot_bytes << "\n"
    << "ssd_path = " << (store.ssd_path.empty() ? "(none)" : store.ssd_path) << "\n"
    << "ssd_bytes = " << store.ssd_capacity_bytes << "\n"
    << "ssd_quarantine_corrupt = " << (store.ssd_quarantine_corrupt ? "true" : "false") << "\n"
    << "lease_ms = " << service.lease_ms << "\n"
    << "tokens = "
    << (service.token.empty() && service.grants.empty()
            ? std::string("(none: any connection may open any namespace)")
            : std::to_string(service.grants.size() + (service.token.empty() ? 0 : 1)) + " (set)")
    << "\n"
    << "default_quota_bytes = " << service.default_quota_bytes << "\n"
    << "max_quota_bytes = " << service.max_quota_bytes << "\n"
    << "max_namespaces = " << service.max_namespaces << "\n"
    << "max_lease_bytes_per_connection = " << service.max_lease_bytes_per_connection << "\n"
    << "max_staged_bytes = " << rpc.max_staged_bytes << "\n"
    << "verify_reads = " << (service.verify_reads ? "true" : "false") << "\n"
    << "verify_commits = " << (service.verify_commits ? "true" : "false") << "\n"
    << "policy = " << policy << "\n"
    << "drain_on_exit = " << (drain_on_exit ? "true" : "false") << "\n"
    << "expose_host_segment = " << (expose_host_segment ? "true" : "false") << "\n"
    << "expose_gpu_arena = " << (expose_gpu_arena ? "true" : "false");
  return o.str();
}

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  ASSIGN_OR_RETURN(std::unique_ptr<policy::Policy> pol, policy::MakePolicy(d->options_.policy));
  ASSIGN_OR_RETURN(d->store_, store::TierManager::Open(d->options_.store, std::move(pol)));
  ServiceOptions sopts = d->options_.service;
  if (d->options_.expose_host_segment) {
    store::HostSegmentInfo seg = d->store_->host_segment();
    if (seg.fd >= 0) {
      // Same-uid local clients open the memfd through /proc and map it.
      struct stat st;
      if (::fstat(seg.fd, &st) == 0) {
        sopts.host_segment_path =
            "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(seg.fd);
        sopts.host_segment_inode = static_cast<uint64_t>(st.st_ino);
      }
    }
    store::DeviceSegmentInfo dev = d->store_->device_segment();
    if (d->options_.expose_gpu_arena && !sopts.host_segment_path.empty() && dev.present) {
      struct stat st;
      if (dev.cuda && !dev.ipc_handle.empty()) {
        sopts.device_segment_kind = 2;
        sopts.device_segment = dev.ipc_handle;
        sopts.device_segment_bytes = dev.size;
      } else if (!dev.cuda && dev.emulated_fd >= 0 && ::fstat(dev.emulated_fd, &st) == 0) {
        sopts.device_segment_kind = 1;
        sopts.device_segment =
            "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(dev.emulated_fd);
        sopts.device_segment_bytes = static_cast<uint64_t>(st.st_size);
        sopts.device_segment_inode = static_cast<uint64_t>(st.st_ino);
      }
    }
  }
  d->service_ = std::make_unique<Service>(sopts, d->store_.get());
  d->handler_ = std::make_unique<DaemonRpcHandler>(d->service_.get());
  ASSIGN_OR_RETURN(d->server_, transport::RpcServer::Start(d->options_.rpc, d->handler_.get()));
  if (d->options_.cluster.enabled()) RETURN_IF_ERROR(d->JoinCluster());
  d->sweeper_ = std::thread([raw = d.get()] { raw->SweepLoop(); });
  KVCAKE_LOG(INFO) << "kvcaked serving on " << d->server_->address() << " (policy "
                   << d->store_->policy_name() << ", host segment "
                   << (sopts.host_segment_path.empty() ? "not exposed" : sopts.host_segment_path)
                   << ", GPU arena "
                   << (sopts.device_segment_kind == 2   ? "by CUDA IPC handle"
                       : sopts.device_segment_kind == 1 ? sopts.device_segment
                                                        : "not exposed")
                   << ")";
  return d;
}

Status Daemon::JoinCluster() {
  const DaemonClusterOptions& co = options_.cluster;
  cluster::MembershipOptions mo;
  mo.endpoints = co.etcd_endpoints;
  mo.cluster_name = co.cluster_name;
  mo.node_id = co.node_id;
  if (mo.node_id.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
      return InvalidArgumentError("--node_id not given and the host name is unknown");
    }
    mo.node_id = host;
  }
  std::string advertise = co.advertise.empty() ? server_->address() : co.advertise;
  if (advertise.rfind("0.0.0.0:", 0) == 0 || advertise.rfind("[::]:", 0) == 0) {
    return InvalidArgumentError("--advertise is needed when --listen is a wildcard (" + advertise +
                                ")");
  }
  mo.self.node_id = mo.node_id;
  mo.self.advertise_address = advertise;
  mo.self.admin_address = co.admin_address;
  mo.self.version = options_.service.server_version;
  mo.self.start_time_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  mo.self.host_capacity_bytes = options_.store.host_capacity_bytes;
  mo.self.ssd_capacity_bytes = store_->has_ssd_tier() ? options_.store.ssd_capacity_bytes : 0;
  mo.self.gpu_capacity_bytes = options_.store.device_capacity_bytes;
  mo.ttl_s = co.member_ttl_s;
  // A previous incarnation at the same addresses that died less than a TTL
  // ago is taken over when its admin port refuses connections (this
  // daemon's own admin server starts only after it joined).
  mo.holder_alive = [](const cluster::MemberInfo& holder) {
    return cluster::TcpListenerMayBeAlive(holder.admin_address, std::chrono::milliseconds(300));
  };
  ASSIGN_OR_RETURN(membership_, cluster::Membership::Start(mo));

  cluster::ClusterNodeOptions no;
  no.node_id = mo.node_id;
  no.cluster_token = co.cluster_token;
  no.peer_timeout = std::chrono::milliseconds(co.peer_timeout_ms);
  // Peer connections poll, yield and send as the daemon's own endpoint does
  // (--busy_poll_us, --busy_poll_yield, --ucx_tcp_zero_copy, ...), over tcp:
  // members are on other hosts. Fetched values are checked at commit as a
  // same-node client's are (--verify_commits).
  no.verify_fetched = options_.service.verify_commits;
  no.ucx = options_.rpc.ucx;
  no.ucx.transport = transport::UcxTransport::kTcp;
  cluster::Membership* m = membership_.get();
  cluster_node_ = std::make_unique<cluster::ClusterNode>(
      no, store_.get(), [m](std::vector<cluster::PeerAddress>* out) {
        if (m->state() != cluster::MembershipState::kUp) return false;
        for (const cluster::MemberInfo& info : m->Members()) {
          if (!info.stale) out->push_back({info.node_id, info.advertise_address});
        }
        return true;
      });
  cluster::ClusterNode* node = cluster_node_.get();
  Service* service = service_.get();
  membership_->SetChangeCallback([node, service](const std::vector<cluster::MemberInfo>& members,
                                                 cluster::MembershipState state) {
    node->OnMembershipChanged();
    if (state != cluster::MembershipState::kUp) return;
    std::vector<std::string> live;
    for (const cluster::MemberInfo& m : members) {
      if (!m.stale) live.push_back(m.node_id);
    }
    service->OnMembersChanged(std::move(live));
  });
  node->OnMembershipChanged();
  service_->set_cluster(node);
  KVCAKE_LOG(INFO) << "joined cluster '" << mo.cluster_name << "' as " << mo.node_id
                   << " (advertise " << advertise << ", state "
                   << cluster::MembershipStateName(membership_->state()) << ")";
  return Status::Ok();
}

void Daemon::SweepLoop() {
  MutexLock lock(&mu_);
  while (!stop_) {
    cv_.WaitFor(&lock, std::chrono::milliseconds(100));
    if (stop_) break;
    lock.Unlock();
    size_t n = service_->ExpireLeases();
    if (n > 0) KVCAKE_LOG(INFO) << "released " << n << " expired same-node leases";
    lock.Lock();
  }
}

std::string Daemon::address() const { return server_ ? server_->address() : std::string(); }

void Daemon::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Leave the cluster first, so other members stop sending here.
  if (membership_) membership_->Stop();
  KVCAKE_LOG(INFO) << "draining: refusing new requests, waiting for "
                   << (handler_ ? handler_->in_flight() : 0) << " in flight";
  if (handler_) {
    handler_->BeginDrain();
    if (!handler_->WaitIdle(std::chrono::milliseconds(options_.drain_timeout_ms))) {
      KVCAKE_LOG(WARNING) << "drain timeout: " << handler_->in_flight()
                          << " requests still in flight";
    }
  }
  if (handler_) handler_->StopDeferred();  // deferred gets answer before the server stops
  if (server_) server_->Stop();
  if (service_) service_->set_cluster(nullptr);
  cluster_node_.reset();
  membership_.reset();
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (sweeper_.joinable()) sweeper_.join();
  if (service_) service_->ReleaseAllLeases();
  if (store_) {
    if (options_.drain_on_exit && store_->has_ssd_tier()) {
      Status s = store_->Drain();
      if (!s.ok()) KVCAKE_LOG(WARNING) << "drain to SSD on exit: " << s.ToString();
    }
    Status s = store_->Flush();
    if (!s.ok()) KVCAKE_LOG(WARNING) << "flush on exit: " << s.ToString();
  }
  server_.reset();
  KVCAKE_LOG(INFO) << "kvcaked stopped";
}

Daemon::~Daemon() {
  Shutdown();
  handler_.reset();
  service_.reset();
  store_.reset();
}

}  // namespace kvcake::daemon
