// kvcaked: the kvcake node daemon (docs/design.md §6). Maps gflags onto
// DaemonOptions, starts the daemon, prints the bound address and waits for
// SIGTERM / SIGINT, then drains gracefully.

#include <gflags/gflags.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/flag_help.h"
#include "common/logging.h"
#include "common/result.h"
#include "common/split.h"
#include "daemon/admin/admin_server.h"
#include "daemon/admin_backend.h"
#include "daemon/daemon.h"
#include "daemon/startup_checks.h"
#include "kvcake/version.h"
#include "store/device_tier.h"
#include "transport/nccl_channel.h"
#include "transport/ucx_options.h"

DEFINE_string(listen, "127.0.0.1:18515",
              "data-plane HOST:PORT: kvcake's connection handshake, then UCX (port 0: "
              "ephemeral)");
DEFINE_int32(io_threads, 2, "I/O threads (one UCX worker each)");
DEFINE_string(ucx_tls, "tcp",
              "UCX transports: tcp | shm (posix/sysv/cma + tcp; clients must use the same)");
DEFINE_uint32(busy_poll_us, 100,
              "I/O threads keep polling this long after a request before sleeping (0: sleep "
              "at once; more: lower latency on VMs where wake-ups are slow, more idle CPU)");
DEFINE_bool(busy_poll_yield, true,
            "idle polling rounds call sched_yield() (hands the core to the thread that will "
            "produce the next event on boxes with few cores)");
DEFINE_bool(ucx_tcp_zero_copy, false,
            "let UCX send zero-copy over tcp (its RDMA PUT emulation, zero-copy active "
            "messages): faster gets, but UCX 1.13 can abort on them when peers die mid-transfer");
DEFINE_string(cluster_etcd, "",
              "etcd client URLs, comma-separated (http://HOST:PORT,...); empty: run alone");
DEFINE_string(cluster_name, "default", "cluster this daemon joins (etcd key prefix)");
DEFINE_string(node_id, "", "this member's id in the cluster (default: the host name)");
DEFINE_string(advertise, "",
              "HOST:PORT other members reach this daemon at (default: --listen unless a wildcard)");
DEFINE_int64(member_ttl_s, 5, "etcd lease of the membership key; a dead member goes after it");
DEFINE_string(cluster_token_file, "",
              "file holding the secret cluster members present to each other");
DEFINE_uint64(peer_timeout_ms, 200, "bound on every call to another member (then a miss)");
DEFINE_uint32(
    handoff_wait_ms, 2000,
    "a get of a block an announced hand-off is still bringing waits this long (0: never)");
DEFINE_string(handoff_transport, "ucx",
              "ucx | nccl | auto: with nccl or auto (and CUDA device tiers), answer other "
              "members' requests to join GPU-to-GPU NCCL hand-off channels");
DEFINE_string(gpu_bytes, "0", "device tier bytes (0: none; emulated on host without CUDA)");
DEFINE_string(host_bytes, "1G", "host tier bytes (shared-memory segment)");
DEFINE_string(slot_bytes, "4M",
              "largest value (layer block) the daemon holds; host memory is allocated per value "
              "size, the GPU tier in slots of this size");
DEFINE_string(ssd_path, "./var/kvcake", "SSD tier RocksDB directory (empty: no SSD tier)");
DEFINE_string(ssd_bytes, "16G", "SSD tier capacity (payload bytes)");
DEFINE_bool(ssd_quarantine_corrupt, true,
            "when the SSD tier's RocksDB directory is corrupt at start, move it to "
            "<ssd_path>.corrupt-<UTC time> and start with an empty SSD tier (false: exit)");
DEFINE_uint64(lease_ms, 30000, "lease of pins and reservations (ms)");
DEFINE_uint64(reserve_wait_ms, 100, "how long a put waits for the mover to free a slot (ms)");
DEFINE_string(token_file, "",
              "token grants: one 'TOKEN [NAMESPACE[,NAMESPACE...]]' per line, a name may end "
              "in '*' (a bare token opens every namespace; empty: no token required)");
DEFINE_string(default_quota_bytes, "0", "quota of a namespace that asks for none (0: unlimited)");
DEFINE_string(max_quota_bytes, "0", "largest quota a namespace may have (0: no limit)");
DEFINE_uint32(max_namespaces, 256,
              "namespaces the daemon holds at most (each keeps policy state while it runs)");
DEFINE_string(max_lease_bytes_per_connection, "auto",
              "bytes one connection may hold reserved or pinned on the same-node path at once "
              "(auto: half the host tier; 0: no limit)");
DEFINE_bool(verify_reads, true,
            "check each block's checksum (taken at commit) before a get sends it from memory; "
            "a mismatch is a miss and the block is dropped");
DEFINE_bool(verify_commits, true,
            "hash each value a same-node client commits, and each value fetched from another "
            "member, and refuse it (DATA_LOSS) if the hash differs from the sender's checksum; "
            "false: record the sender's checksum as is (later reads and SSD writes still "
            "verify)");
DEFINE_string(max_staged_bytes, "1G",
              "request bytes (oversized metadata with its payload) staged in daemon memory at "
              "once over all connections");
DEFINE_string(
    admin_listen, "127.0.0.1:18516",
    "admin HTTP HOST:PORT (loopback by default; port 0: ephemeral; empty: no admin server)");
DEFINE_string(admin_token_file, "", "file holding the admin API bearer token (empty: none)");
DEFINE_uint32(admin_max_connections, 64,
              "open admin connections; at the limit a new connection closes the one that has "
              "made no progress for the longest");
DEFINE_uint32(admin_header_timeout_ms, 5000,
              "an admin connection that has not sent a complete request header this long after "
              "connecting (or after starting a request) is closed");
DEFINE_string(policy, "adaptive",
              "tier policy: adaptive (CAKE for budgeted namespaces that report statistics, "
              "otherwise GDSF, the host tier LRU while LRU was wrong less often lately) | cake | "
              "cake_uniform | dueling | lru | lfu | arc | s3fifo | gdsf (docs/policy.md)");
DEFINE_bool(drain_on_exit, true, "on SIGTERM, demote host-tier blocks to SSD before exiting");
DEFINE_bool(expose_host_segment, true, "let same-node clients map the host tier");
DEFINE_bool(expose_gpu_arena, true,
            "let same-node clients read the GPU tier's arena (CUDA IPC handle, or the emulated "
            "device's memfd); needs --expose_host_segment");
DEFINE_string(log_level, "info", "debug | info | warning | error");

namespace {

using kvcake::Result;
using kvcake::Status;

// "1G", "512M", "64K", "1048576" -> bytes.
Result<uint64_t> ParseBytes(const std::string& flag, const std::string& text) {
  if (text.empty()) return kvcake::InvalidArgumentError("--" + flag + ": empty");
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (...) {
    return kvcake::InvalidArgumentError("--" + flag + ": not a byte size: '" + text + "'");
  }
  std::string suffix = text.substr(pos);
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "B") {
    mult = 1;
  } else if (suffix == "K" || suffix == "KiB" || suffix == "k") {
    mult = 1ull << 10;
  } else if (suffix == "M" || suffix == "MiB") {
    mult = 1ull << 20;
  } else if (suffix == "G" || suffix == "GiB") {
    mult = 1ull << 30;
  } else if (suffix == "T" || suffix == "TiB") {
    mult = 1ull << 40;
  } else {
    return kvcake::InvalidArgumentError("--" + flag + ": unknown suffix '" + suffix + "'");
  }
  if (v > UINT64_MAX / mult) return kvcake::InvalidArgumentError("--" + flag + ": too large");
  return static_cast<uint64_t>(v) * mult;
}

// A secret file must be a readable regular file (a directory opens, then
// reads as empty).
Status CheckSecretFile(const std::string& flag, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return kvcake::ErrnoToStatus(errno, "--" + flag + " " + path);
  if (!S_ISREG(st.st_mode)) {
    return kvcake::InvalidArgumentError("--" + flag + " " + path + " is not a regular file");
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return kvcake::ErrnoToStatus(errno, "--" + flag + " " + path);
  }
  return Status::Ok();
}

Result<std::string> ReadTokenFile(const std::string& flag, const std::string& path) {
  if (path.empty()) return std::string();
  RETURN_IF_ERROR(CheckSecretFile(flag, path));
  std::ifstream in(path);
  if (!in) return kvcake::ErrnoToStatus(errno, "--" + flag + " " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return kvcake::InvalidArgumentError("--" + flag + ": " + path + " is empty");
  return t;
}

// The one place flags become options.
Result<kvcake::daemon::DaemonOptions> OptionsFromFlags() {
  kvcake::daemon::DaemonOptions o;
  o.rpc.listen = FLAGS_listen;
  o.rpc.io_threads = FLAGS_io_threads;
  Result<kvcake::transport::UcxTransport> tls = kvcake::transport::ParseUcxTransport(FLAGS_ucx_tls);
  if (!tls.ok()) return tls.status().WithContext("--ucx_tls");
  o.rpc.ucx.transport = *tls;
  o.rpc.ucx.busy_poll = std::chrono::microseconds(FLAGS_busy_poll_us);
  o.rpc.ucx.busy_poll_yield = FLAGS_busy_poll_yield;
  o.rpc.ucx.tcp_zero_copy = FLAGS_ucx_tcp_zero_copy;
  ASSIGN_OR_RETURN(o.store.device_capacity_bytes, ParseBytes("gpu_bytes", FLAGS_gpu_bytes));
  ASSIGN_OR_RETURN(o.store.host_capacity_bytes, ParseBytes("host_bytes", FLAGS_host_bytes));
  ASSIGN_OR_RETURN(o.store.slot_bytes, ParseBytes("slot_bytes", FLAGS_slot_bytes));
  o.store.ssd_path = FLAGS_ssd_path;
  ASSIGN_OR_RETURN(o.store.ssd_capacity_bytes, ParseBytes("ssd_bytes", FLAGS_ssd_bytes));
  o.store.ssd_quarantine_corrupt = FLAGS_ssd_quarantine_corrupt;
  o.store.pin_lease_us = FLAGS_lease_ms * 1000;
  o.store.reservation_lease_us = FLAGS_lease_ms * 1000;
  o.store.reserve_wait_us = FLAGS_reserve_wait_ms * 1000;
  o.service.lease_ms = FLAGS_lease_ms;
  if (!FLAGS_token_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadTokenFile("token_file", FLAGS_token_file));
    Result<std::vector<kvcake::daemon::TokenGrant>> grants = kvcake::daemon::ParseTokenGrants(text);
    if (!grants.ok()) return grants.status().WithContext("--token_file " + FLAGS_token_file);
    o.service.grants = std::move(grants).value();
  }
  o.service.max_namespaces = FLAGS_max_namespaces;
  o.service.verify_reads = FLAGS_verify_reads;
  o.service.verify_commits = FLAGS_verify_commits;
  if (FLAGS_max_lease_bytes_per_connection == "auto") {
    o.service.max_lease_bytes_per_connection = o.store.host_capacity_bytes / 2;
  } else {
    ASSIGN_OR_RETURN(
        o.service.max_lease_bytes_per_connection,
        ParseBytes("max_lease_bytes_per_connection", FLAGS_max_lease_bytes_per_connection));
  }
  ASSIGN_OR_RETURN(o.rpc.max_staged_bytes, ParseBytes("max_staged_bytes", FLAGS_max_staged_bytes));
  ASSIGN_OR_RETURN(o.service.default_quota_bytes,
                   ParseBytes("default_quota_bytes", FLAGS_default_quota_bytes));
  ASSIGN_OR_RETURN(o.service.max_quota_bytes, ParseBytes("max_quota_bytes", FLAGS_max_quota_bytes));
  if (!FLAGS_cluster_etcd.empty()) {
    o.cluster.etcd_endpoints = kvcake::SplitNonEmpty(FLAGS_cluster_etcd, ',');
    o.cluster.cluster_name = FLAGS_cluster_name;
    o.cluster.node_id = FLAGS_node_id;
    o.cluster.advertise = FLAGS_advertise;
    // An ephemeral admin port (":0") is not known here; publish none then.
    if (FLAGS_admin_listen.size() < 2 ||
        FLAGS_admin_listen.compare(FLAGS_admin_listen.size() - 2, 2, ":0") != 0) {
      o.cluster.admin_address = FLAGS_admin_listen;
    }
    o.cluster.member_ttl_s = FLAGS_member_ttl_s;
    o.cluster.peer_timeout_ms = FLAGS_peer_timeout_ms;
    ASSIGN_OR_RETURN(o.cluster.cluster_token,
                     ReadTokenFile("cluster_token_file", FLAGS_cluster_token_file));
    o.service.cluster_token = o.cluster.cluster_token;
    o.service.handoff_wait_ms = FLAGS_handoff_wait_ms;
  }
  ASSIGN_OR_RETURN(o.service.handoff_transport,
                   kvcake::daemon::ParseHandoffTransport(FLAGS_handoff_transport,
                                                         kvcake::transport::NcclCommPool::Built()));
  o.policy = FLAGS_policy;
  o.drain_on_exit = FLAGS_drain_on_exit;
  o.expose_host_segment = FLAGS_expose_host_segment;
  o.expose_gpu_arena = FLAGS_expose_gpu_arena;
  RETURN_IF_ERROR(o.Validate());
  return o;
}

// What can be checked before anything is allocated: the flags' values
// (OptionsFromFlags), then the addresses, token files and the SSD directory
// against this host. Each failure names its flag.
Status CheckBeforeStart(const kvcake::admin::AdminServerOptions& admin,
                        const kvcake::daemon::DaemonOptions& o) {
  RETURN_IF_ERROR(kvcake::daemon::CheckListenAddress("listen", o.rpc.listen));
  if (!FLAGS_admin_listen.empty()) {
    if (admin.max_connections == 0) {
      return kvcake::InvalidArgumentError("--admin_max_connections must be > 0");
    }
    if (admin.header_timeout_ms == 0) {
      return kvcake::InvalidArgumentError("--admin_header_timeout_ms must be > 0");
    }
    if (!admin.token_file.empty()) {
      RETURN_IF_ERROR(CheckSecretFile("admin_token_file", admin.token_file));
    }
    RETURN_IF_ERROR(kvcake::admin::ValidateAdminOptions(admin));
    RETURN_IF_ERROR(kvcake::daemon::CheckDistinctPorts("listen", o.rpc.listen, "admin_listen",
                                                       FLAGS_admin_listen));
    RETURN_IF_ERROR(kvcake::daemon::CheckListenAddress("admin_listen", FLAGS_admin_listen));
  }
  // The host segment is pre-faulted (MAP_POPULATE), and so is an emulated
  // GPU arena: a size past the machine's memory would end in the OOM killer.
  uint64_t prefaulted = o.store.host_capacity_bytes;
  std::string memory_flag = "host_bytes";
  kvcake::store::DeviceTier::Options device;
  device.allow_cuda = o.store.device_allow_cuda;
  device.cuda_device = o.store.cuda_device;
  if (o.store.device_capacity_bytes > 0 && kvcake::store::DeviceTier::WouldEmulate(device)) {
    prefaulted += o.store.device_capacity_bytes;
    memory_flag = "host_bytes plus --gpu_bytes (emulated on host memory)";
  }
  RETURN_IF_ERROR(kvcake::daemon::CheckMemoryFits(memory_flag, prefaulted));
  return kvcake::daemon::CheckSsdPath(o.store.ssd_path);
}

}  // namespace

int main(int argc, char** argv) {
  kvcake::HandleHelpFlag(
      argc, argv,
      "kvcaked: kvcake's KV-cache tier daemon (GPU, host memory and SSD tiers, CAKE policy).\n"
      "usage: kvcaked [--flag=value ...]   (docs/daemon.md describes every flag)",
      "daemon/main.cc",
      {{"Listening and transport", {"listen", "io_threads", "ucx_", "busy_poll", "max_staged"}},
       {"Tiers",
        {"gpu_bytes", "host_bytes", "slot_bytes", "ssd_", "huge", "policy", "drain", "expose_",
         "reserve_wait", "verify_"}},
       {"Tenants and limits", {"token_file", "max_", "default_quota", "lease_ms"}},
       {"Admin API", {"admin_"}},
       {"Cluster", {"cluster_", "node_id", "advertise", "member_ttl", "peer_timeout", "handoff_"}},
       {"Other", {""}}});
  gflags::SetUsageMessage("kvcaked: kvcake KV-cache tier daemon");
  gflags::SetVersionString(KVCAKE_VERSION_STRING);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  kvcake::LogLevel level;
  if (!kvcake::ParseLogLevel(FLAGS_log_level, &level)) {
    std::cerr << "kvcaked: --log_level: unknown level '" << FLAGS_log_level << "'\n";
    return 2;
  }
  kvcake::SetLogLevel(level);

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Result<kvcake::daemon::DaemonOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::cerr << "kvcaked: " << options.status().ToString() << "\n";
    return 2;
  }
  kvcake::admin::AdminServerOptions admin_options;
  admin_options.listen = FLAGS_admin_listen;
  admin_options.token_file = FLAGS_admin_token_file;
  admin_options.max_connections = FLAGS_admin_max_connections;
  admin_options.header_timeout_ms = FLAGS_admin_header_timeout_ms;
  if (Status s = CheckBeforeStart(admin_options, *options); !s.ok()) {
    std::cerr << "kvcaked: " << s.ToString() << "\n";
    return 2;
  }
  KVCAKE_LOG(INFO) << "kvcaked " << KVCAKE_VERSION_STRING << " starting with options:\n"
                   << options->ToString();

  Result<std::unique_ptr<kvcake::daemon::Daemon>> daemon = kvcake::daemon::Daemon::Start(*options);
  if (!daemon.ok()) {
    std::cerr << "kvcaked: start failed: " << daemon.status().ToString() << "\n";
    return 1;
  }

  std::unique_ptr<kvcake::daemon::DaemonAdminBackend> admin_backend;
  std::unique_ptr<kvcake::admin::AdminServer> admin_server;
  if (!FLAGS_admin_listen.empty()) {
    Result<std::unique_ptr<kvcake::admin::AdminServer>> started =
        kvcake::daemon::StartAdmin(daemon->get(), admin_options, &admin_backend);
    if (!started.ok()) {
      std::cerr << "kvcaked: admin server: " << started.status().ToString() << "\n";
      return 1;
    }
    admin_server = std::move(started).value();
    std::printf("kvcaked admin listening on %s\n", admin_server->address().c_str());
  }

  std::printf("kvcaked listening on %s\n", (*daemon)->address().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  KVCAKE_LOG(INFO) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ", shutting down";
  admin_server.reset();
  (*daemon)->Shutdown();
  daemon->reset();
  return 0;
}
