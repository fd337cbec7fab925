#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "client/src/async_state.h"
#include "client/src/chain_roots.h"
#include "client/src/connection.h"
#include "client/src/data_path.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "kvcake/client.h"
#include "transport/messages.h"

namespace kvcake::internal {

// The Client behind Client::Connect. Its calls run on the current
// Connection (client_connection.cc: connecting, same-node discovery and
// reconnecting) and move values over the same-node mapped path
// (mapped_data_path.h) or over UCX (ucx_data_path.h); layer-wise gets and
// put streams (pending_get.h, put_stream.h) run on the client's behalf and
// may outlive it (AsyncState).
//
// Thread-safety: thread-safe (Client's contract). Locks: mu_ guards the
// namespace registration, conn_mu_ the current connection, reconnect_mu_ the
// reconnect gate; none is held across a request, and none is taken while
// another is held.
class ClientImpl final : public Client {
 public:
  explicit ClientImpl(ClientOptions options);
  // Stops sending the remaining requests of layer-wise gets and put streams
  // (which the engine may still hold), waits for what is already running,
  // then closes the connections.
  ~ClientImpl() override;

  // Connects and runs the discovery (see OpenConnection).
  Status Init();

  Status RegisterNamespace(const NamespaceGeometry& g) override EXCLUDES(mu_);
  const NamespaceGeometry& geometry() const override EXCLUDES(mu_);
  uint64_t seed() const override { return seed_; }
  std::vector<uint64_t> HashTokens(std::span<const uint32_t> tokens) const override EXCLUDES(mu_);
  Result<uint32_t> LookupPrefix(std::span<const uint64_t> hashes, uint32_t layer) override;
  Result<PrefixLookup> LookupPrefixDetail(std::span<const uint64_t> hashes, uint32_t layer,
                                          LookupOptions options) override;
  Status Put(std::span<const PutBlock> blocks, std::vector<Status>* per_value) override;
  Status PutHandoff(const HandoffTarget& target, std::span<const PutBlock> blocks,
                    std::vector<Status>* per_value) override;
  Result<std::unique_ptr<PutStream>> OpenHandoffStream(const HandoffTarget& target) override;
  Status AbortHandoff(uint64_t handoff_id, std::string_view reason) override;
  Status WaitHandoff(uint64_t handoff_id, std::chrono::milliseconds timeout) override;
  Status Get(std::span<const GetBlock> blocks, std::vector<bool>* found) override;
  Result<std::unique_ptr<PendingGet>> GetAsync(std::vector<std::vector<GetBlock>> groups) override;
  Result<std::unique_ptr<PutStream>> OpenPutStream() override { return OpenStream(nullptr); }
  Status ReportLayerStats(uint32_t layer, double preference, std::span<const uint64_t> block_hashes,
                          std::span<const double> block_scores, uint32_t window_blocks) override;
  Result<uint32_t> Delete(std::span<const BlockId> ids) override;
  Status Ping() override;
  bool mapped_path() const override { return Current()->segment != nullptr; }
  std::string transport_info() const override { return Current()->rpc->transport_info(); }
  uint64_t reconnects() const override { return reconnects_.load(std::memory_order_relaxed); }
  uint64_t checksum_failures() const override {
    return checksum_failures_.load(std::memory_order_relaxed);
  }

 private:
  // ---- namespace and requests (client_impl.cc) ----
  // What a put or get of a data path needs (call after CheckRegistered).
  DataPathContext Context() const;
  // Values per request: at most kMaxBatchBlocks and about 256 MiB.
  size_t BatchSize() const;
  Status CheckRegistered() const EXCLUDES(mu_);
  bool Registered() const EXCLUDES(mu_);
  // CUDA buffers are staged through host memory (UCX here has no CUDA lanes).
  Status PutTo(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
               const HandoffTarget* target);
  Status PutHost(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
                 const HandoffTarget* target);
  // One request's worth of values over `conn`'s data path.
  Status PutOnce(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> part,
                 const HandoffTarget* target, std::vector<Status>* codes);
  // One batch of PutHost: `codes` gets each value's status, with the values
  // another writer held (ABORTED) retried a few times.
  Status PutBatch(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> part,
                  const HandoffTarget* target, std::vector<Status>* codes);
  Status GetHost(std::span<const GetBlock> blocks, std::vector<bool>* found);
  // GetAsync's groups on the mapped path: one worker copies them in order.
  Result<std::unique_ptr<PendingGet>> GetAsyncMapped(std::shared_ptr<Connection> conn,
                                                     std::vector<std::vector<GetBlock>> groups);
  // GetAsync's groups over UCX: each group's requests run on their own.
  Result<std::unique_ptr<PendingGet>> GetAsyncUcx(const std::shared_ptr<Connection>& conn,
                                                  std::vector<std::vector<GetBlock>> groups);
  // A put stream; with `target`, every group is a hand-off put.
  Result<std::unique_ptr<PutStream>> OpenStream(std::shared_ptr<const HandoffTarget> target);
#ifdef KVCAKE_HAVE_CUDA
  // True for CUDA device (or managed) memory. Without a usable device every
  // pointer is host memory.
  bool IsDevicePointer(const void* p) const;
  static bool IsCudaDeviceMemory(const void* p);
  template <typename Block>
  bool AnyDevice(std::span<const Block> blocks) const {
    if (!cuda_available_) return false;
    for (const Block& b : blocks) {
      if (IsDevicePointer(b.data)) return true;
    }
    return false;
  }
  Status PutStagingDevice(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
                          const HandoffTarget* target);
  Status GetStagingDevice(std::span<const GetBlock> blocks, std::vector<bool>* found);
#endif

  // ---- connection (client_connection.cc) ----
  // Connects to the daemon (UCX handshake + ping) and, when possible, maps
  // its host segment and GPU-tier arena. `timeout` bounds the handshake.
  Result<std::shared_ptr<Connection>> OpenConnection(std::chrono::milliseconds timeout) const;
  // Opens the daemon's GPU-tier arena for the same-node path.
  void OpenDeviceSegment(const transport::PingResponse& pong, Connection* conn) const;
  std::shared_ptr<Connection> Current() const EXCLUDES(conn_mu_);
  // The connection a call runs on, reconnecting first if it broke.
  Result<std::shared_ptr<Connection>> Acquire() EXCLUDES(reconnect_mu_);
  // Opens connections until one works or `deadline` comes; installs it.
  // Only by the thread that holds the reconnect gate (reconnecting_).
  Result<std::shared_ptr<Connection>> ReconnectLocked(
      std::chrono::steady_clock::time_point deadline, const Status& why);
  // Records a failed reconnect attempt and schedules the next.
  void NoteFailedAttempt(const Status& why);
  // Makes `conn` the current connection; releases retired unused ones.
  void Install(std::shared_ptr<Connection> conn) EXCLUDES(conn_mu_);
  // Registers the namespace again over `conn` after a reconnect. Only by the
  // thread that holds the reconnect gate.
  Status RegisterAgainLocked(Connection& conn) EXCLUDES(mu_);
  // One RegisterNamespace request for this client's namespace over `conn`.
  Result<transport::RegisterNamespaceResponse> SendRegister(Connection& conn,
                                                            const NamespaceGeometry& g) const;
  // One synchronous call over `conn` bounded by the client timeout.
  Result<std::vector<uint8_t>> Call(Connection& conn, transport::RpcOp op,
                                    const std::string& meta) const {
    return conn.Call(op, meta, options_.timeout);
  }

  // First wait between reconnect attempts (doubling up to
  // ClientOptions::reconnect_max_backoff).
  static constexpr std::chrono::milliseconds kInitialBackoff{50};

  const ClientOptions options_;
  const std::shared_ptr<AsyncState> async_ = std::make_shared<AsyncState>();
  const uint64_t seed_;
  bool cuda_available_ = false;  // set once by Init
  mutable Mutex conn_mu_;
  std::shared_ptr<Connection> conn_ GUARDED_BY(conn_mu_);  // never null after Init
  // Replaced connections still used by a call or an operation.
  std::vector<std::shared_ptr<Connection>> retired_ GUARDED_BY(conn_mu_);
  // reconnecting_ is true while one thread reconnects; it alone then uses
  // the backoff state below.
  Mutex reconnect_mu_;
  CondVar reconnect_cv_;
  bool reconnecting_ GUARDED_BY(reconnect_mu_) = false;
  std::chrono::milliseconds backoff_ =
      std::min<std::chrono::milliseconds>(kInitialBackoff, options_.reconnect_max_backoff);
  std::chrono::steady_clock::time_point next_attempt_{};
  int failed_attempts_ = 0;
  Status last_attempt_error_;
  std::atomic<uint64_t> reconnects_{0};
  mutable std::atomic<uint64_t> checksum_failures_{0};  // counted by the data paths
  mutable ChainRoots roots_;  // remembered by const calls too (HashTokens)
  mutable Mutex mu_;
  // Written once by the first successful RegisterNamespace under mu_, before
  // registered_ is set; read after CheckRegistered() (which takes mu_).
  NamespaceGeometry geometry_;
  uint64_t ns_id_ = 0;
  uint64_t fingerprint_ = 0;
  bool registered_ GUARDED_BY(mu_) = false;
};

}  // namespace kvcake::internal
