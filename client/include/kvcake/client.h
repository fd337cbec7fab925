#pragma once

// libkvcake C++ API: the connector an inference engine links to save and
// reload KV blocks through the local kvcaked (docs/design.md §2-§3, §5).
//
//   kvcake::ClientOptions opts;
//   opts.address = "127.0.0.1:7420";
//   opts.namespace_name = "llama-3-8b@main/fp16/tp1";
//   auto client = kvcake::Client::Connect(opts);             // Result<unique_ptr<Client>>
//   (*client)->RegisterNamespace({.num_layers = 32, .block_tokens = 16,
//                                 .layer_block_bytes = 256 << 10});
//   std::vector<uint64_t> chain = (*client)->HashTokens(tokens);
//   auto n = (*client)->LookupPrefix(chain, /*layer=*/0);    // blocks already cached
//   (*client)->Put(blocks);  (*client)->Get(blocks, &found);
//
// Buffers may be host memory or, in CUDA builds, CUDA device memory (staged
// through host memory by Put/Get; GetAsync takes host buffers).
//
// Logging: the library writes warnings and errors to stderr; set
// KVCAKE_LOG_LEVEL=info (or debug) in the environment to see connections,
// reconnects and more.
//
// Data paths: over UCX (tcp, or shared-memory lanes) the values travel as
// active-message payloads straight from/into the caller's buffers; when the
// daemon runs on the same machine and exposes its host segment, the client
// maps it and copies values itself with memcpy (the daemon only reserves,
// commits, pins and releases).
//
// Every call returns Status / Result with a message that says what failed;
// every wait is bounded by ClientOptions::timeout (or the call's own).
//
// Reconnection: when the daemon goes away (crash, restart, upgrade), the
// calls in flight fail with UNAVAILABLE and the next call reconnects to the
// same address (ClientOptions::reconnect), with backoff between attempts,
// waiting for the daemon up to its timeout; it registers the namespace
// again and redoes the same-node discovery (the new daemon's segments are
// mapped, or UCX is used when they are gone). What the daemon had not
// stored durably may be lost. Layer-wise gets run on the connection they
// started on; put streams reconnect per group.
//
// Thread-safety: a Client is thread-safe; calls may run concurrently from
// many threads (they share one UCX connection; one of them reconnects at a
// time while the others wait for it). A PendingGet and a PutStream are
// thread-compatible.

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvcake/export.h"
#include "kvcake/hash_chain.h"  // kvcake::HashChain, NamespaceSeed
#include "kvcake/result.h"
#include "kvcake/status.h"

namespace kvcake {

// kvcake::HashChain (kvcake/hash_chain.h) is the client's hash chain:
// HashChain chain(client.seed(), block_tokens); chain.Append(tokens).

// How Client::Connect connects and how the client behaves. Plain value type.
struct KVCAKE_API ClientOptions {
  // Daemon address "HOST:PORT". Required.
  std::string address;
  // Namespace (model deployment) every call of this client works in. Required.
  std::string namespace_name;
  // Token, when the daemon requires one. Default none.
  std::string token;
  // UCX transports: "tcp" or "shm" (shared-memory lanes + tcp). Default "tcp".
  std::string ucx_tls = "tcp";
  // Use the same-node mapped path when the daemon offers it. Default true.
  bool use_mapped_path = true;
  // Bound on Connect and on every call that does not pass its own. 30 s.
  std::chrono::milliseconds timeout{30000};
  // Requests of one put/get batch kept in flight over UCX (values of 64 KiB
  // and more travel one per request). More overlaps more round trips but
  // interleaves more transfers on the connection, which costs cache and
  // socket-buffer locality. Default 16, >= 1.
  int max_inflight_requests = 16;
  // Thread wake-ups cost tens to hundreds of microseconds on virtual
  // machines (a halted vCPU is woken by the host); polling saves them. Idle
  // polling rounds yield the core (UcxOptions::busy_poll_yield), so polling
  // threads stay cheap on small boxes. Measured with kvcake-bench on a
  // 2-vCPU VM (docs/daemon.md "Polling and wake-ups").
  // busy_poll: the client's I/O thread keeps polling this long after traffic
  // before it sleeps. Default 100 us.
  std::chrono::microseconds busy_poll{100};
  // spin_wait: a caller waiting for a reply polls (yielding) this long
  // before it blocks. Default 100 us.
  std::chrono::microseconds spin_wait{100};
  // Idle polling rounds of the I/O thread call sched_yield() (see
  // UcxOptions::busy_poll_yield). Default true.
  bool busy_poll_yield = true;
  // Reconnect when the connection broke (see the file comment). Without it
  // every call after a break fails with UNAVAILABLE. Default true.
  bool reconnect = true;
  // Reconnect attempts are spaced 50 ms apart, doubling up to this bound;
  // the backoff carries over between calls until an attempt succeeds. > 0,
  // default 2 s.
  std::chrono::milliseconds reconnect_max_backoff{2000};
  // Verify each value read against the checksum recorded when it was
  // stored: on the same-node mapped path while copying it out of the
  // daemon's segment (copy and hash in one pass), over UCX after it landed in
  // the caller's buffer (the daemon sends the checksums with the reply). A
  // mismatch is a miss, counted in checksum_failures(). Default true.
  bool verify_mapped_reads = true;

  Status Validate() const;
};

// Geometry and KV layout of the namespace (checked against the daemon's on
// every request through a fingerprint; a mismatch is FAILED_PRECONDITION).
// Plain value type.
struct NamespaceGeometry {
  uint32_t num_layers = 0;         // > 0
  uint32_t block_tokens = 0;       // tokens per block, > 0
  uint64_t layer_block_bytes = 0;  // bytes of one layer of one block (K and V)
  std::string kv_dtype;            // e.g. "fp16"
  std::string layout;              // e.g. "NHD;tp=2;rank=0"
  uint64_t quota_bytes = 0;        // 0: the daemon's default
  // How the engine serves from the GPU tier (not fingerprinted; the first
  // registration sets it): false = exact (every block of a prefix before it
  // computes; the daemon's default policy minimises reload cost), true =
  // budgeted (attends over a per-layer budget; CAKE's budgets and scores).
  bool budgeted_serving = false;
};

// Names one value: layer `layer` of block `hash` (a hash-chain entry). Plain
// value type.
struct BlockId {
  uint64_t hash = 0;
  uint32_t layer = 0;
};

// One value to write: layer `layer` of block `hash`, layer_block_bytes at `data`.
// Plain value type.
struct PutBlock {
  uint64_t hash = 0;
  uint32_t layer = 0;
  const void* data = nullptr;
};

// One value to read into `data` (layer_block_bytes of writable memory).
// Plain value type.
struct GetBlock {
  uint64_t hash = 0;
  uint32_t layer = 0;
  void* data = nullptr;
};

// Where a prefill's values go (docs/cluster.md "Prefill to decode hand-off"):
// the local daemon stores them as usual and pushes each one, as soon as it is
// committed, to the daemon of cluster member `node_id`, where a decode engine
// reads them from its own daemon. Plain value type.
struct KVCAKE_API HandoffTarget {
  std::string node_id;        // the decode node's member id (--node_id)
  uint64_t handoff_id = 0;    // names the request, > 0; the decode side waits on it
  uint32_t total_blocks = 0;  // values of the whole hand-off (blocks x layers), > 0
  Status Validate() const;
};

// A layer-wise get in flight (Client::GetAsync): one request per layer group,
// each completing on its own, so the engine can compute layer l while layer
// l+1 is still arriving.
class KVCAKE_API PendingGet {
 public:
  virtual ~PendingGet() = default;
  // Number of groups (as passed to GetAsync).
  virtual size_t size() const = 0;
  // Waits until group `index` has arrived. OK: its buffers are filled where
  // found(index)[i] is true. DEADLINE_EXCEEDED if `timeout` passed first (the
  // get keeps running; wait again or destroy it), other errors as Client::Get.
  // Destroying a PendingGet waits for its outstanding requests (bounded by
  // the client timeout) so no buffer is written after it is gone.
  virtual Status Wait(size_t index, std::chrono::milliseconds timeout) = 0;
  // Per value of group `index`: true if found. Valid after Wait() returned OK.
  virtual const std::vector<bool>& found(size_t index) const = 0;
  // Waits for every group; the first error.
  Status WaitAll(std::chrono::milliseconds timeout);
};

// An asynchronous save (Client::OpenPutStream): the engine submits groups as
// it produces them, typically one layer at a time while it computes the next
// (vLLM's save_kv_layer), and a background thread of the stream stores them
// in order; Wait(i) / WaitAll bound the wait for the save (wait_for_save).
// Thread-compatible: one thread submits and waits.
class KVCAKE_API PutStream {
 public:
  // Waits for every submitted group to be stored (each request is bounded by
  // the client timeout) so no buffer is read after it is gone.
  virtual ~PutStream() = default;
  // Queues `group` (1..batch-size host-memory values) and returns its index
  // (0, 1, ...). The buffers must stay valid until Wait(index) returned
  // (OK or not) or the stream is destroyed. INVALID_ARGUMENT (empty or
  // oversized group, null buffer), UNIMPLEMENTED (a CUDA buffer, as for
  // GetAsync), CANCELLED (client closing).
  virtual Result<size_t> Submit(std::vector<PutBlock> group) = 0;
  // Number of groups submitted.
  virtual size_t size() const = 0;
  // Waits until group `index` has been stored. OK: every value is stored (or
  // already was); otherwise the first error, as Client::Put. DEADLINE_EXCEEDED
  // if `timeout` passed first (the save goes on; wait again).
  virtual Status Wait(size_t index, std::chrono::milliseconds timeout) = 0;
  // Per value of group `index`: its status. Valid after Wait() returned
  // something other than DEADLINE_EXCEEDED or OUT_OF_RANGE.
  virtual const std::vector<Status>& per_value(size_t index) const = 0;
  // Waits for every group submitted so far; the first error.
  Status WaitAll(std::chrono::milliseconds timeout);
};

class KVCAKE_API Client {
 public:
  // Connects (UCX handshake + ping) and, when possible, maps the daemon's
  // host segment. Errors: INVALID_ARGUMENT (options), UNAVAILABLE (daemon
  // unreachable), DEADLINE_EXCEEDED.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  virtual ~Client() = default;

  // Registers the namespace (idempotent for the same geometry). Must precede
  // keyed calls. PERMISSION_DENIED / UNAUTHENTICATED (token),
  // FAILED_PRECONDITION (registered with another layout), INVALID_ARGUMENT.
  virtual Status RegisterNamespace(const NamespaceGeometry& geometry) = 0;
  virtual const NamespaceGeometry& geometry() const = 0;
  // NamespaceSeed(namespace_name): the hash-chain seed and namespace id.
  virtual uint64_t seed() const = 0;
  // Chained hashes of the full blocks of `tokens` (kvcake::HashChain).
  virtual std::vector<uint64_t> HashTokens(std::span<const uint32_t> tokens) const = 0;

  // Number of leading `hashes` committed for `layer` in some tier: of this
  // daemon or, when it is in a cluster, of another member it can fetch them
  // from (see LookupPrefixDetail).
  virtual Result<uint32_t> LookupPrefix(std::span<const uint64_t> hashes, uint32_t layer) = 0;
  // Where a prefix is: `local` leading blocks in this daemon's tiers, then
  // `total - local` on member `remote_node`, which this daemon fetches for
  // the Get / GetAsync of those blocks.
  // A cluster member and how many leading blocks of a prefix it holds.
  struct PrefixHolder {
    std::string node;
    uint32_t blocks = 0;
  };
  struct PrefixLookup {
    uint32_t total = 0;
    uint32_t local = 0;
    std::string remote_node;
    // With LookupOptions::all_holders: every other live member the cluster
    // directory knows to hold a prefix of the chain, longest first (ties by
    // node id). With `local`, what a router needs to score nodes.
    std::vector<PrefixHolder> holders;
  };
  struct LookupOptions {
    bool local_only = false;  // do not consult the cluster directory
    // Start fetching the remote part (every layer) at once, so the gets
    // that follow find it local or in flight. False for a lookup that only
    // asks (e.g. a router scoring nodes). LookupPrefix prefetches.
    bool prefetch = true;
    // Also list every member holding a prefix (PrefixLookup::holders), even
    // when this daemon holds all of it. Chains longer than
    // transport::kMaxLookupHashes are scored on their first that many blocks.
    bool all_holders = false;
  };
  virtual Result<PrefixLookup> LookupPrefixDetail(std::span<const uint64_t> hashes, uint32_t layer,
                                                  LookupOptions options) = 0;

  // Stores the values (any number; split into batches internally). OK if
  // every value is stored (or already was). Otherwise the first error;
  // `per_value` (optional) gets each value's status.
  virtual Status Put(std::span<const PutBlock> blocks,
                     std::vector<Status>* per_value = nullptr) = 0;

  // Reads the values. OK if the request succeeded; (*found)[i] tells whether
  // value i was found (misses are not errors).
  virtual Status Get(std::span<const GetBlock> blocks, std::vector<bool>* found) = 0;

  // Starts one get per group (typically one group per layer) and returns at
  // once. Buffers must stay valid until the PendingGet is destroyed. The
  // PendingGet may outlive the client: destroying the client finishes the
  // requests already sent and completes the other groups with CANCELLED.
  // The groups use the connection of this moment: if it breaks, the groups
  // not done fail with UNAVAILABLE.
  virtual Result<std::unique_ptr<PendingGet>> GetAsync(
      std::vector<std::vector<GetBlock>> groups) = 0;

  // Reports a layer's CAKE statistics for a prompt (docs/design.md §4).
  virtual Status ReportLayerStats(uint32_t layer, double preference,
                                  std::span<const uint64_t> block_hashes,
                                  std::span<const double> block_scores, uint32_t window_blocks) = 0;

  // Deletes the values `ids` name; returns how many existed.
  virtual Result<uint32_t> Delete(std::span<const BlockId> ids) = 0;

  // Round trip to the daemon.
  virtual Status Ping() = 0;
  // True when values move through the mapped host segment.
  virtual bool mapped_path() const = 0;
  // The UCX lanes of the connection (e.g. "am:tcp/lo").
  virtual std::string transport_info() const = 0;

  // Opens a stream that stores groups of values in the background, in the
  // order they are submitted. The stream may outlive the client: destroying
  // the client finishes the group being stored and fails the ones not
  // started with CANCELLED. FAILED_PRECONDITION before RegisterNamespace.
  // Each group is stored as by Put (a group after a break reconnects).
  // (Declared after the others so that binaries built against an older
  // header keep their vtable slots.)
  virtual Result<std::unique_ptr<PutStream>> OpenPutStream() = 0;

  // How many times this client has reconnected (each is logged at INFO).
  virtual uint64_t reconnects() const = 0;
  // Values read (from the mapped segment or over UCX) that failed their
  // checksum and were reported as misses.
  virtual uint64_t checksum_failures() const = 0;

  // ---- prefill to decode hand-off (docs/cluster.md) ------------------------
  // Put, naming a hand-off: the values are stored here as by Put, and the
  // local daemon pushes them to `target.node_id` in the background. The
  // result is the local store's: a push that fails (target dead or not a
  // member) is logged and counted by the daemon, never reported here.
  virtual Status PutHandoff(const HandoffTarget& target, std::span<const PutBlock> blocks,
                            std::vector<Status>* per_value = nullptr) = 0;
  // OpenPutStream whose groups are hand-off puts to `target`: submit each
  // layer as the prefill produces it; its push overlaps the next layers.
  virtual Result<std::unique_ptr<PutStream>> OpenHandoffStream(const HandoffTarget& target) = 0;
  // Prefill side: gives up hand-off `handoff_id` (a cancelled request) before
  // all its values were saved. The decode side's WaitHandoff and the gets
  // waiting for its values end at once with ABORTED and `reason` instead of
  // at their deadlines. NOT_FOUND if no hand-off of that id is in progress
  // from this client's daemon (already complete, or never started).
  // Disconnecting aborts every unfinished hand-off of the client the same way.
  virtual Status AbortHandoff(uint64_t handoff_id, std::string_view reason) = 0;
  // Decode side: waits until every value of hand-off `handoff_id` has arrived
  // at this daemon. OK, DEADLINE_EXCEEDED (not complete within `timeout`,
  // at most 600 s, or never announced here), ABORTED (the prefill engine
  // disconnected or aborted it before saving every value), UNAVAILABLE (the prefill member
  // left the cluster, or this daemon is gone). A get of a value the hand-off
  // is still bringing waits for it (--handoff_wait_ms) and ends with that
  // ABORTED / UNAVAILABLE error if the hand-off fails meanwhile.
  virtual Status WaitHandoff(uint64_t handoff_id, std::chrono::milliseconds timeout) = 0;
};

}  // namespace kvcake
