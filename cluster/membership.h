#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/member_info.h"
#include "common/mutex.h"
#include "common/result.h"
#include "common/status.h"

namespace kvcake::cluster {

// Options of Membership.
struct MembershipOptions {
  // etcd client URLs, "http://HOST:PORT" (see GatewayEtcdClientOptions).
  std::vector<std::string> endpoints;
  // Name of the cluster: members of one cluster share the prefix
  // /kvcake/<cluster_name>/members/. Non-empty, no '/'.
  std::string cluster_name = "default";
  // This member's id; empty: self.node_id. Non-empty, no '/'. If both are
  // set they must be equal.
  std::string node_id;
  // What this member publishes (node_id is filled from node_id above).
  MemberInfo self;
  // TTL of the member's lease, seconds. A member that stops renewing it
  // (crash, partition) disappears from the others' view within about
  // ttl_s + ttl_s / 3. Keep-alives and member polls run every ttl_s / 3.
  int64_t ttl_s = 5;
  // Deadline of one etcd request.
  uint32_t request_timeout_ms = 1'000;
  // While etcd is unreachable (or the node id is held by someone else) the
  // background thread retries after 100 ms, doubling up to this.
  uint32_t max_backoff_ms = 5'000;
  // Asked at Start when this member's key is held on another lease by a
  // record with the same node id, advertise address and admin address (a
  // previous incarnation of this member, or a live duplicate): true if that
  // holder may be alive. Start takes over the key of a holder found dead
  // (revokes its lease) instead of waiting for the lease to expire; a holder
  // that may be alive, another address, or no probe is ALREADY_EXISTS.
  std::function<bool(const MemberInfo& holder)> holder_alive;

  // INVALID_ARGUMENT: no endpoints, empty or '/'-containing cluster name or
  // node id, node_id and self.node_id disagreeing, ttl_s < 1, zero timeouts.
  Status Validate() const;
};

// Whether `address` ("HOST:PORT") may have a live listener: false only when
// a TCP connection to it is refused (nothing listens there); true when it
// connects, and when it cannot tell (no answer within `timeout`, port 0, an
// address that does not parse).
bool TcpListenerMayBeAlive(std::string_view address, std::chrono::milliseconds timeout);

// State of this member's view of the cluster.
enum class MembershipState {
  // etcd answers, this member's key is on a live lease, and the member set
  // was read within the last poll interval.
  kUp,
  // etcd is unreachable, or the key could not be (re-)created (the node id
  // is held by another live member). Members() is the last known set, marked
  // stale; cross-node callers treat the cluster as unknown (misses).
  kUnknown,
};

// "up" / "unknown".
const char* MembershipStateName(MembershipState state);

// Counters of one Membership since Start. Plain value type.
struct MembershipStats {
  uint64_t keepalive_failures = 0;  // keep-alives that got no answer or found the lease gone
  uint64_t reconnects = 0;          // returns to kUp after kUnknown (etcd back, key re-created)
  uint64_t membership_changes = 0;  // member set or a member's published info changed
};

// Membership: this kvcaked's entry in the cluster directory in etcd, and the
// set of live members.
//
// The member holds the key /kvcake/<cluster>/members/<node_id>, whose value
// is MemberInfoToJson(self), bound to a lease of ttl_s seconds. A background
// thread renews the lease every ttl_s / 3 and, in the same round, reads the
// prefix (a poll rather than a watch stream; see etcd_client.h) to refresh
// the member set; a member whose lease lapsed has lost its key and drops out
// at the next poll. When etcd does not answer, the state becomes kUnknown
// and the thread retries with exponential backoff (100 ms doubling to
// max_backoff_ms). When etcd answers again, or a keep-alive finds the lease
// gone, a new lease is granted (if needed) and the key re-created; if another
// live member holds the node id by then, that is logged as an error and the
// state stays kUnknown while the thread keeps retrying.
//
// Thread-safety: all public methods are thread-safe. The change callback is
// called from the background thread, never concurrently with itself; it must
// not call Stop(), Abandon() or the destructor (they join that thread).
class Membership {
 public:
  // Called after the member set (or a member's published info) or the state
  // changed, with the new Members() and state().
  using ChangeCallback =
      std::function<void(const std::vector<MemberInfo>& members, MembershipState state)>;

  // Validates `options`, then registers: grants a lease and creates the key
  // if it does not exist, and reads the member set. Then starts the
  // background thread.
  //  - ALREADY_EXISTS: another live member holds this node id (the message
  //    names the node id and the holder's advertise address). A member
  //    restarted after a crash gets this until its old lease expires (at
  //    most ttl_s).
  //  - etcd unreachable: not an error. The member starts in kUnknown and
  //    keeps trying in the background.
  //  - INVALID_ARGUMENT: bad options.
  static Result<std::unique_ptr<Membership>> Start(MembershipOptions options);
  // Same, over a given client (tests, or another EtcdClient implementation).
  static Result<std::unique_ptr<Membership>> Start(MembershipOptions options,
                                                   std::unique_ptr<EtcdClient> client);

  // Stop().
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Graceful leave: stops the background thread and revokes the lease, so
  // the key goes at once and peers drop this member at their next poll.
  // Waits at most about 2 × request_timeout_ms (a request in flight, then
  // the revoke). Idempotent.
  void Stop() EXCLUDES(stop_mu_);

  // For tests: stops the background thread without revoking the lease, as if
  // the process had died; the key stays until its lease expires (ttl_s).
  void Abandon() EXCLUDES(stop_mu_);

  // The live members, sorted by node_id, self included (also before the
  // first successful poll). In kUnknown every member other than self has
  // stale = true and is the state of the last successful poll.
  std::vector<MemberInfo> Members() const EXCLUDES(mu_);

  MembershipState state() const { return state_.load(std::memory_order_acquire); }
  const MemberInfo& self() const { return self_; }
  // The etcd key of this member.
  const std::string& key() const { return key_; }
  MembershipStats stats() const;

  // Sets (replaces; null clears) the change callback. Safe to call at any
  // time; a call in progress on the background thread may still use the old
  // one.
  void SetChangeCallback(ChangeCallback callback) EXCLUDES(mu_);

 private:
  Membership(MembershipOptions options, std::unique_ptr<EtcdClient> client);

  // Grants a lease if there is none and creates the key on it. OK if the key
  // now holds this member's value on this member's lease; ALREADY_EXISTS if
  // another lease holds it (with `at_start`, unless options_.holder_alive
  // finds that holder, the same member at the same addresses, dead: then its
  // lease is revoked and the key taken over); UNAVAILABLE and others from
  // etcd.
  Status Register(bool at_start = false);
  // One round of the background thread: keep-alive (re-registering if the
  // lease is gone), then a poll of the member set. OK if both succeeded.
  Status Round();
  // Reads the prefix and installs the member set.
  Status Poll();
  void SetState(MembershipState state);
  // Calls the callback if the published member set or the state differs
  // from what it was last called with.
  void NotifyIfChanged();
  void Run();
  void StopThread() REQUIRES(stop_mu_) EXCLUDES(mu_);

  const MembershipOptions options_;
  const std::unique_ptr<EtcdClient> client_;
  const MemberInfo self_;
  const std::string prefix_;  // /kvcake/<cluster>/members/
  const std::string key_;     // prefix_ + node_id
  const std::string value_;   // MemberInfoToJson(self_)

  // Owned by the background thread (and by Start before it runs).
  int64_t lease_id_ = 0;
  bool registered_ = false;
  bool ever_up_ = false;
  std::vector<MemberInfo> notified_members_;
  MembershipState notified_state_ = MembershipState::kUnknown;

  std::atomic<MembershipState> state_{MembershipState::kUnknown};
  std::atomic<uint64_t> keepalive_failures_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> membership_changes_{0};

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::map<std::string, MemberInfo> members_ GUARDED_BY(mu_);  // last successful poll
  int64_t self_last_seen_unix_ms_ GUARDED_BY(mu_) = 0;
  ChangeCallback callback_ GUARDED_BY(mu_);

  Mutex stop_mu_ ACQUIRED_BEFORE(mu_);  // serialises Stop/Abandon
  bool stopped_ GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

// The etcd prefix of a cluster's member keys: "/kvcake/<cluster>/members/".
std::string MembersPrefix(std::string_view cluster_name);

}  // namespace kvcake::cluster
