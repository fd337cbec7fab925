#pragma once

// GPU to GPU transfers over NCCL for prefill to decode hand-offs
// (docs/design.md "NCCL hand-off channel").
//
// NcclCommPool keeps one 2-rank NCCL communicator per (local GPU, peer node,
// peer GPU), created on first use: the sending side (rank 0) makes the unique
// id and hands it to the receiving side over kvcake's own daemon-to-daemon
// RPC (transport::NcclConnectRequest), which joins as rank 1. Communicators
// are created nonblocking (ncclConfig_t::blocking = 0); a watchdog thread
// polls every initialization and transfer in flight (ncclCommGetAsyncError,
// then a CUDA event) and aborts (ncclCommAbort) a communicator whose peer
// reports an error or that is still busy at its deadline, so no call hangs
// on a peer that died or never joined. An aborted communicator is forgotten;
// the next call for that pair creates a fresh one.
//
// Each transfer is one grouped send (ncclGroupStart/ncclSend.../
// ncclGroupEnd) matched by one grouped receive. Before the receiver posts
// its receives it is told the byte count of every buffer of the group (the
// size handshake: AnnounceFn on the sender, `announced` on the receiver); a
// mismatch with the buffers it would receive into is INVALID_ARGUMENT and
// nothing is posted or written.
//
// Built without CUDA (KVCAKE_HAVE_CUDA off), the interface is the same and
// every transfer operation returns UNIMPLEMENTED, so callers that choose
// between NCCL and another path build either way (NcclCommPool::Built()).
//
// Buffers (transport::ConstBuffer / MutableBuffer) hold CUDA device pointers
// on the communicator's local GPU.
//
// Thread-safety: NcclCommPool is thread-safe. Operations on different
// communicators run concurrently; operations on one communicator are
// serialized. Callbacks (ExchangeFn, AnnounceFn) run on the caller's thread
// without the pool's lock held. The free functions are thread-safe.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "transport/buffer.h"
#include "transport/messages.h"

namespace kvcake::transport {

// The bytes of an ncclUniqueId.
using NcclUniqueId = std::array<char, kNcclUniqueIdBytes>;

// One end of a communicator: this process's GPU and the peer's node and GPU.
struct NcclPeer {
  int local_device = 0;
  std::string node;  // the peer's node id
  int peer_device = 0;
  friend bool operator==(const NcclPeer&, const NcclPeer&) = default;
};

struct NcclChannelOptions {
  // Bound of a communicator's initialization, from its creation (the unique
  // id exchange included) until both ranks joined. Default 10 s.
  std::chrono::milliseconds init_timeout{10'000};
  // Bound of one grouped transfer, from the size handshake until the last
  // byte is on the destination GPU. Default 5 s.
  std::chrono::milliseconds transfer_timeout{5'000};
  // How often the watchdog polls communicators in flight. Default 1 ms.
  std::chrono::milliseconds poll_interval{1};
  // Buffers in one grouped transfer at most.
  uint32_t max_group_buffers = kMaxBatchBlocks;

  // INVALID_ARGUMENT on non-positive timeouts or interval, or no buffers.
  Status Validate() const;
};

// Counters. Plain value type.
struct NcclChannelStats {
  uint64_t comms_created = 0;       // communicators whose initialization started
  uint64_t comms_aborted = 0;       // ... aborted by the watchdog (error or deadline)
  uint64_t deadlines_exceeded = 0;  // aborts because an init or transfer ran out of time
  uint64_t transfers = 0;           // grouped sends and receives that completed
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t size_mismatches = 0;  // receives refused by the size handshake
};

// The size handshake: OK iff `announced` (the sender's byte counts, in
// order) names exactly as many buffers as `buffers`, each of the same size,
// none empty, at most `max_buffers`. INVALID_ARGUMENT naming the first
// difference otherwise.
Status CheckAnnouncedSizes(std::span<const uint64_t> announced,
                           std::span<const MutableBuffer> buffers, uint32_t max_buffers);

class NcclCommPool {
 public:
  // Delivers the unique id of a new communicator to the peer (which joins
  // with Join); its status is the id exchange's.
  using ExchangeFn = std::function<Status(const NcclUniqueId& id)>;
  // Tells the peer the byte counts of the group about to be sent; OK once the
  // peer accepted them (and is posting its receives).
  using AnnounceFn = std::function<Status(std::span<const uint64_t> sizes)>;

  // True iff this build has CUDA and NCCL (otherwise every operation below
  // is UNIMPLEMENTED).
  static bool Built();

  // Starts the watchdog. `options` must be valid (Validate).
  explicit NcclCommPool(NcclChannelOptions options = {});
  // Aborts every communicator (never waits on a peer) and stops the
  // watchdog. No call may be in flight.
  ~NcclCommPool();
  NcclCommPool(const NcclCommPool&) = delete;
  NcclCommPool& operator=(const NcclCommPool&) = delete;

  // Sender side: OK once the communicator to `peer` is ready, creating it as
  // rank 0 if there is none (then `exchange` delivers its id to the peer).
  // DEADLINE_EXCEEDED when the peer did not join within init_timeout,
  // UNAVAILABLE when NCCL reports an error, or `exchange`'s error; the
  // communicator is then aborted.
  Status Connect(const NcclPeer& peer, const ExchangeFn& exchange);
  // Receiver side: joins the communicator `peer` created with `id` as rank
  // 1, replacing any this pool had for that pair. Returns once the
  // initialization started; the watchdog aborts it if it does not complete
  // within init_timeout.
  Status Join(const NcclPeer& peer, const NcclUniqueId& id);

  // Sends `buffers` (device memory on peer.local_device) to `peer` as one
  // group: connects (see Connect), runs `announce` with their sizes, then
  // sends. Blocks until the bytes left or transfer_timeout passed (then the
  // communicator is aborted: DEADLINE_EXCEEDED).
  Status Send(const NcclPeer& peer, std::span<const ConstBuffer> buffers,
              const ExchangeFn& exchange, const AnnounceFn& announce);
  // Receives the group `peer` announced with byte counts `announced` into
  // `buffers` (device memory on peer.local_device), over the communicator
  // Join created. A size mismatch is INVALID_ARGUMENT before anything is
  // posted; no communicator for `peer` is FAILED_PRECONDITION. Blocks until
  // the bytes arrived or transfer_timeout passed.
  Status Receive(const NcclPeer& peer, std::span<const uint64_t> announced,
                 std::span<const MutableBuffer> buffers);

  // Copies `src` to `dst` on GPU `device` through a 1-rank communicator (a
  // self send/recv), with the same size handshake, deadlines and watchdog as
  // Send / Receive. For hand-offs between daemons on one GPU and for
  // checking a GPU machine's NCCL.
  Status Loopback(int device, std::span<const ConstBuffer> src, std::span<const MutableBuffer> dst);

  // Aborts and forgets the communicator of `peer`, if any (e.g. when the
  // peer left the cluster). A call in flight on it fails (the watchdog
  // aborts it) or, if it is between NCCL calls, finishes and then aborts it.
  void Drop(const NcclPeer& peer);

  // Communicators held (initializing or ready).
  size_t size() const;
  NcclChannelStats stats() const;
  const NcclChannelOptions& options() const { return options_; }

 private:
  class Impl;  // defined by the CUDA build (nccl_channel.cc) or the stub
  const NcclChannelOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::transport
