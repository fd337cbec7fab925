#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/cluster_hooks.h"
#include "common/mutex.h"
#include "common/result.h"
#include "common/status.h"
#include "daemon/access_control.h"
#include "daemon/handoff_registry.h"
#include "daemon/startup_checks.h"
#include "kvcake/version.h"
#include "store/clock.h"
#include "store/tier_manager.h"
#include "transport/buffer.h"
#include "transport/messages.h"
#include "transport/nccl_channel.h"

namespace kvcake::daemon {

// Options of the request handlers. Defaults suit a single laptop node.
struct ServiceOptions {
  // A token that opens every namespace; empty = none (see `grants`).
  std::string token;
  // Token grants (--token_file); with `token`, all must be empty for an open
  // daemon. RegisterNamespace must present a token that covers the name.
  std::vector<TokenGrant> grants;
  // Quota of a namespace whose registration asks for none (0 = unlimited).
  uint64_t default_quota_bytes = 0;
  // Largest quota a namespace may have (0 = no limit). A client asking for
  // none or more gets this. The daemon, not the client, owns quota policy:
  // re-registering an existing namespace never changes its quota.
  uint64_t max_quota_bytes = 0;
  // Namespaces the daemon holds at most; registering one more is
  // RESOURCE_EXHAUSTED (each holds policy state for as long as the daemon
  // runs: about 0.7 MiB at 32 layers). Default 256.
  uint32_t max_namespaces = 256;
  // Bytes one connection may hold reserved or pinned under same-node leases
  // at once (0 = no limit); beyond it a reserve / pin gets RESOURCE_EXHAUSTED
  // for the remaining keys, so one client cannot hold every slot.
  uint64_t max_lease_bytes_per_connection = 0;
  // Verify each block's checksum (recorded at commit) before a get sends it
  // from memory; a mismatch is a miss (DATA_LOSS) and the block is dropped.
  // Same-node clients verify what they copy out of the segment themselves
  // (the pin response carries the checksums). Default true.
  bool verify_reads = true;
  // Hash each value a same-node client commits and compare it with the
  // checksum the client sends (taken in the client's copy into the slot): a
  // mismatch (a scribble between the copy and the commit, or a client bug)
  // refuses the value with DATA_LOSS. Off, the client's checksum is recorded
  // as is, which saves the daemon one pass over every byte put through the
  // mapped path; a mismatch is then found by the first verified read or the
  // mover's check before an SSD write (the block is dropped, never served).
  // Default true.
  bool verify_commits = true;
  // Lease of same-node reservations / pins held for a client (milliseconds).
  uint64_t lease_ms = 30'000;
  // Keys per batch (<= transport::kMaxBatchBlocks).
  uint32_t max_batch_blocks = transport::kMaxBatchBlocks;
  // Path a same-node client opens to map the host segment (empty: none).
  std::string host_segment_path;
  uint64_t host_segment_inode = 0;  // st_ino of the segment (clients verify it)
  // The GPU tier's arena for same-node clients (transport::PingResponse):
  // kind 0 none, 1 emulated (path + inode, like the host segment), 2 CUDA
  // (cudaIpcMemHandle_t bytes). Only with a host segment exposed.
  uint32_t device_segment_kind = 0;
  std::string device_segment;
  uint64_t device_segment_bytes = 0;
  uint64_t device_segment_inode = 0;
  std::string server_version = KVCAKE_VERSION_STRING;
  // Other cluster members register namespaces with this token (it opens
  // every namespace when tokens are configured). Empty: none.
  std::string cluster_token;
  // A get (or pin) of a block that an announced hand-off is still bringing
  // waits this long for it before it reports a miss (docs/cluster.md
  // "Prefill to decode hand-off"). 0: never wait. Default 2000.
  uint32_t handoff_wait_ms = 2000;
  // --handoff_transport. With nccl or auto, a build with CUDA and a CUDA
  // device tier, the service answers NCCL_CONNECT: another member's request
  // to join a 2-rank NCCL communicator on the device tier's GPU. Default ucx
  // (NCCL_CONNECT is then FAILED_PRECONDITION).
  HandoffTransport handoff_transport = HandoffTransport::kUcx;
  // Clock of the same-node leases (lease_ms); null: the steady clock. Tests
  // pass a store::ManualClock (the one the store uses) to expire leases
  // without sleeping. Must outlive the Service.
  const store::Clock* clock = nullptr;

  // INVALID_ARGUMENT on out-of-range values.
  Status Validate() const;
};

// Counters of the service (for /metrics and tests). Plain value type.
struct ServiceStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t get_hits = 0;
  uint64_t get_misses = 0;
  uint64_t puts = 0;
  uint64_t open_leases = 0;
  std::vector<uint64_t> errors_by_code;  // indexed by StatusCode
  HandoffRegistryStats handoffs;         // hand-offs received
};

// The connection a request came on (transport::ServerCall::connection_id);
// kInProcessCaller is the daemon itself (admin API, tests) and holds every
// grant.
inline constexpr uint64_t kInProcessCaller = 0;

// Service executes decoded kvcake operations (docs/design.md §2-3, §5) against the
// TierManager: register namespace, lookup_prefix, put, get, report_stats,
// delete, ping and the same-node reserve/commit/pin/release. It is independent
// of the transport: the RPC server hands it (opcode, header, data) and sends
// back what it returns.
//
// Thread-safety: thread-safe; Handle may run concurrently on any number of
// I/O threads. The store does its own locking; the lease table has a mutex
// never held across a store call that copies payloads.
class Service {
 public:
  // `store` must outlive the service.
  Service(ServiceOptions options, store::TierManager* store);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Handles one request: `op` the frame opcode, `header` its encoded request
  // message, `data` the bulk data (put values; empty otherwise). On OK returns
  // the encoded response message and appends bulk data (get values) to
  // *response_data. A non-OK result is an error for the whole request (the
  // caller sends it back as an ErrorResponse); per-key outcomes travel in the
  // response. Never throws; never crashes on any input.
  Result<std::string> Handle(uint64_t caller, uint16_t op, std::string_view header,
                             std::string_view data, std::string* response_data);
  // Connection `caller` closed: its grants end and its leases are released.
  void ForgetCaller(uint64_t caller) EXCLUDES(mu_);

  // ---- zero-copy put / get (UCX path) -------------------------------------
  // State of one put between payload acceptance and completion.
  struct PutState {
    uint64_t ns_id = 0;
    std::vector<transport::KeyCode> codes;          // per key; OK = reserved
    std::vector<store::Reservation> reservations;   // per key (valid where codes[i] == 0)
    std::vector<transport::MutableBuffer> targets;  // where the payload lands, in key order
    std::unique_ptr<char[]> scratch;                // sink for keys that could not be reserved
    // Multi-value payloads land in one contiguous staging buffer and are
    // copied into the slots at FinishPut (UCX 1.13 cannot receive a
    // rendezvous payload into several buffers safely); a single value lands
    // straight in its slot.
    std::unique_ptr<char[]> staging;
    uint64_t value_bytes = 0;
    bool finished = false;
    // A hand-off put: its target and the request's keys.
    std::optional<cluster::HandoffTarget> handoff;
    std::vector<transport::BlockRef> keys;
  };
  // Decodes and checks a put, reserves one slot per key and fills
  // state->targets (total size == payload_size) so the payload lands directly
  // in the slots. A key that cannot be reserved (ALREADY_EXISTS, quota, full)
  // gets a scratch target and its code. Errors: the whole request is bad
  // (decode, namespace, fingerprint, payload size, batch size).
  Result<std::unique_ptr<PutState>> BeginPut(uint64_t caller, std::string_view header,
                                             uint64_t payload_size);
  // Commits the reservations (payload_status OK) or aborts them; returns the
  // encoded KeyCodesResponse. Idempotent per state (a second call aborts nothing).
  Result<std::string> FinishPut(PutState& state, const Status& payload_status);
  // Aborts whatever the state still holds (call if FinishPut never runs).
  void AbortPut(PutState& state);

  // State of one get while its reply is being sent.
  struct GetState {
    std::string meta;                             // encoded KeyCodesResponse
    std::vector<store::PinnedBlock> pins;         // released by EndGet
    std::vector<transport::ConstBuffer> payload;  // the found values, in key order
    // Copies of blocks that could not be pinned in place: real device memory,
    // or blocks on SSD while the host tier has no free slot to load them.
    std::vector<std::unique_ptr<char[]>> staged;
  };
  // Decodes and checks a get, pins every found key and points `payload` at
  // the pinned slots (no copy). The caller sends meta + payload and then
  // calls EndGet.
  Result<std::unique_ptr<GetState>> BeginGet(uint64_t caller, std::string_view header);
  void EndGet(GetState& state);

  // ---- hand-offs --------------------------------------------------------
  // A get / pin (`op`, encoded `header`) asks for blocks that an announced
  // hand-off is still bringing: parks it and returns true; `resume` runs on
  // the hand-off waiter thread once they arrived or the wait
  // (handoff_wait_ms) is over, with OK (then handle the request as usual) or
  // the hand-off's failure on the prefill side (answer the request with it).
  // False: handle it now (including every malformed request).
  bool ParkForHandoff(uint64_t caller, uint16_t op, std::string_view header,
                      std::function<void(Status)> resume);
  // The live members changed (node ids): hand-offs from a prefill member that
  // left fail with UNAVAILABLE.
  void OnMembersChanged(std::vector<std::string> live);
  // A HandoffWait request: parks it; `reply` gets its outcome (OK,
  // DEADLINE_EXCEEDED) on the waiter thread. A malformed request is answered
  // at once (INVALID_ARGUMENT).
  void WaitHandoff(std::string_view header, std::function<void(Status)> reply);

  // Releases every same-node lease whose deadline passed (also done lazily
  // on each call). Returns the number released.
  size_t ExpireLeases() EXCLUDES(mu_);
  // Releases every open lease (shutdown).
  void ReleaseAllLeases() EXCLUDES(mu_);

  // The largest payload a put may carry: a full batch of the largest value
  // the store accepts (max_batch_blocks x slot size).
  uint64_t MaxPutPayloadBytes() const;

  ServiceStats stats() const;
  const ServiceOptions& options() const { return options_; }

  // True if the get / pin request `header` names a block that is missing
  // here but on its way from another member (the handler then serves it off
  // the I/O thread, since it may wait up to the prefetch wait).
  bool WaitsForCluster(std::string_view header) const;

  // Joins (null: leaves) the cluster layer; `hooks` must outlive its use.
  void set_cluster(cluster::ClusterHooks* hooks) {
    cluster_.store(hooks, std::memory_order_release);
  }
  cluster::ClusterHooks* cluster() const { return cluster_.load(std::memory_order_acquire); }

 private:
  struct PrefillHandoff;  // below, with the state it belongs to
  struct Lease {
    uint64_t owner = 0;  // the connection that took it; only it may use it
    uint64_t bytes = 0;  // reserved + pinned bytes (counted per connection)
    uint64_t deadline_us = 0;
    std::vector<store::Reservation> reservations;
    std::vector<store::PinnedBlock> pins;
    std::optional<cluster::HandoffTarget> handoff;  // a hand-off reservation's target
  };

  Result<std::string> Dispatch(uint64_t caller, uint16_t op, std::string_view header,
                               std::string_view data, std::string* response_data);
  Result<std::string> Ping(std::string_view header);
  Result<std::string> RegisterNamespace(uint64_t caller, std::string_view header);
  Result<std::string> LookupPrefix(uint64_t caller, std::string_view header);
  Result<std::string> Put(uint64_t caller, std::string_view header, std::string_view data);
  Result<std::string> Get(uint64_t caller, std::string_view header, std::string* response_data);
  Result<std::string> ReportStats(uint64_t caller, std::string_view header);
  Result<std::string> Delete(uint64_t caller, std::string_view header);
  // Brings blocks of `keys` that are missing here but known on another member
  // into the local tiers (no-op without a cluster).
  void FetchRemote(const store::NamespaceConfig& ns, const std::vector<transport::BlockRef>& keys);
  // Passes a put's chain roots (if the client sent them) to the cluster layer.
  void LearnRoots(const transport::KeyedRequest& req);
  // Tells the cluster layer which of `keys` committed (codes[i] == 0).
  // With a hand-off, also forwards them to its target (or, on the target,
  // counts them as arrived).
  void Published(const store::NamespaceConfig& ns, const std::vector<transport::BlockRef>& keys,
                 const std::vector<transport::KeyCode>& codes,
                 const std::optional<cluster::HandoffTarget>& handoff = std::nullopt);
  // The hand-off a put names (nullopt: none, or no cluster); announces it
  // when this daemon is its target.
  std::optional<cluster::HandoffTarget> HandoffOf(uint64_t caller, const store::NamespaceConfig& ns,
                                                  const transport::KeyedRequest& req);
  // A HandoffNotice from a prefill member.
  Result<std::string> HandoffNotice(std::string_view header);
  // A HandoffAbort from the prefill engine: fails the hand-off at its target.
  Result<std::string> HandoffAbort(uint64_t caller, std::string_view header);
  // Tells the target of prefill hand-off `h` that it failed with `why`.
  void FailPrefillHandoff(const PrefillHandoff& h, const Status& why);
  // `n` more values of prefill hand-off `id` were committed here.
  void CountPrefillCommitted(uint64_t id, size_t n) EXCLUDES(mu_);
  Result<std::string> HandoffWaitNow(std::string_view header);
  // NCCL_CONNECT from another member: joins its communicator (nccl_).
  Result<std::string> NcclConnect(std::string_view header);
  // Counts a failed request (errors_, errors_by_code_); returns `s`.
  Status CountError(Status s);
  // Decodes a request about a namespace (ns_id, fingerprint, and either keys
  // or one layer) and checks its namespace and its keys or layer; returns the
  // namespace.
  template <typename Request>
  Result<store::NamespaceConfig> DecodeRequest(uint64_t caller, std::string_view header,
                                               Request* req);
  // Same-node requests: decodes `header` into `req`, checks namespace, keys
  // and that a host segment is exposed; starts `lease` and sizes `resp`.
  template <typename Request>
  Result<store::NamespaceConfig> BeginSameNode(uint64_t caller, std::string_view header,
                                               Request* req, Lease* lease,
                                               transport::SlotsResponse* resp);
  // Registers `lease` under a new id (written into `resp`); returns the
  // encoded response.
  std::string GrantLease(Lease lease, transport::SlotsResponse* resp) EXCLUDES(mu_);
  // Removes and returns lease `lease_id` of `caller`; ABORTED ("unknown or
  // expired" + `what`) when there is none, or when another connection holds
  // it (which is not told apart, so lease ids reveal nothing).
  Result<Lease> TakeLease(uint64_t caller, uint64_t lease_id, std::string_view what) EXCLUDES(mu_);
  // Bytes `caller` may still lease (UINT64_MAX without a limit).
  uint64_t LeaseBytesLeft(uint64_t caller) const EXCLUDES(mu_);
  Result<std::string> PutReserve(uint64_t caller, std::string_view header);
  Result<std::string> PutCommit(uint64_t caller, std::string_view header);
  Result<std::string> GetPin(uint64_t caller, std::string_view header);
  Result<std::string> Release(uint64_t caller, std::string_view header);

  // The namespace config if `caller` opened `ns_id` and it is registered
  // with `fingerprint`. PERMISSION_DENIED if the connection did not open it
  // (whether or not it exists), FAILED_PRECONDITION on a fingerprint mismatch.
  Result<store::NamespaceConfig> CheckNamespace(uint64_t caller, uint64_t ns_id,
                                                uint64_t fingerprint);
  Status CheckKeys(const store::NamespaceConfig& ns, const std::vector<transport::BlockRef>& keys);
  void ReleaseLease(Lease& lease);
  // Removes the lease's bytes from its owner's count.
  void UncountLeaseLocked(const Lease& lease) REQUIRES(mu_);
  uint64_t NowUs() const;

  const ServiceOptions options_;
  store::TierManager* const store_;
  const store::SteadyClock steady_clock_;
  const store::Clock* const clock_;  // options_.clock or &steady_clock_
  std::atomic<cluster::ClusterHooks*> cluster_{nullptr};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> get_hits_{0};
  std::atomic<uint64_t> get_misses_{0};
  std::atomic<uint64_t> puts_{0};
  std::atomic<uint64_t> errors_by_code_[17] = {};

  AccessControl access_;
  // NCCL communicators with other members; null unless NCCL hand-offs are on
  // and the device tier is a CUDA arena.
  std::unique_ptr<transport::NcclCommPool> nccl_;

  mutable Mutex mu_;
  std::mt19937_64 lease_ids_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Lease> leases_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, uint64_t> leased_bytes_ GUARDED_BY(mu_);  // by connection
  // Hand-offs this daemon is the prefill side of (their target may be this
  // daemon too), until all their values were committed here (by hand-off id;
  // at most kMaxPrefillHandoffs).
  struct PrefillHandoff {
    uint64_t caller = 0;  // the connection that names it
    uint64_t ns_id = 0;
    cluster::HandoffTarget target;
    uint64_t committed = 0;
    // "after C of N values": how far it got, for its failure notice.
    std::string Progress() const {
      return "after " + std::to_string(committed) + " of " + std::to_string(target.blocks) +
             " values";
    }
  };
  static constexpr size_t kMaxPrefillHandoffs = 4096;
  std::unordered_map<uint64_t, PrefillHandoff> prefill_handoffs_ GUARDED_BY(mu_);

  // Last member: its destructor answers parked requests, which use the rest.
  HandoffRegistry handoffs_;
};

}  // namespace kvcake::daemon
