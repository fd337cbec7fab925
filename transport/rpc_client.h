#pragma once

// RpcClient: one connection to an RpcServer over UCX active messages.
//
// The client owns a UCX context, one worker and one endpoint, driven by its
// own I/O thread (Boost.Asio io_context waiting on the worker's event fd).
// Many calls may be in flight at once; each is matched to its response by
// request id. A response payload (e.g. a get) is received directly into the
// buffers the caller supplied for that call (rendezvous for large payloads:
// no intermediate copy).
//
// Every call has a deadline. A call whose deadline passes completes with
// DEADLINE_EXCEEDED; if UCX was still moving that call's bytes at that moment
// (a send or a rendezvous receive in flight — the peer stopped responding),
// the connection is closed forcibly so the transport can no longer touch the
// caller's buffers, and all its other calls fail with UNAVAILABLE. A broken
// connection is not re-established: connected() turns false and every later
// call fails at once with UNAVAILABLE; create a new client to reconnect.
// While idle the client sends keepalive pings, so a vanished server is
// detected within about keepalive_interval + keepalive_timeout.
//
// Thread-safety: thread-safe. CallAsync/Call/Ping may be used from any number
// of threads. Callbacks run on the client's I/O thread and must not block;
// calling Call() (the synchronous form) from a callback deadlocks and is
// refused with FAILED_PRECONDITION.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "transport/buffer.h"
#include "transport/frame.h"
#include "transport/ucx_options.h"

namespace kvcake::transport {

class RpcClientImpl;  // internal

struct RpcClientOptions {
  UcxOptions ucx;
  // Bound on Connect() (UCX wireup + hello round trip). Default 5 s.
  std::chrono::milliseconds connect_timeout{5000};
  // Deadline of a call that does not give its own. Default 30 s.
  std::chrono::milliseconds default_timeout{30000};
  // Call() spins this long for the reply before it blocks (saves a thread
  // wake-up when the reply is quick). Default 0.
  std::chrono::microseconds caller_spin{0};
  // A ping is sent after this much idle time; 0 disables keepalive.
  // Default 1 s. Keep it well below the server's idle_timeout.
  std::chrono::milliseconds keepalive_interval{1000};
  // A keepalive ping unanswered for this long breaks the connection.
  // Default 5 s.
  std::chrono::milliseconds keepalive_timeout{5000};
  // Response frames over these limits are treated as a protocol error.
  FrameLimits limits;

  Status Validate() const;
};

// What a call returns.
struct RpcReply {
  // The server's status (with its message), or a transport error:
  // DEADLINE_EXCEEDED (timeout), UNAVAILABLE (connection lost / not
  // connected), CANCELLED (client destroyed), OUT_OF_RANGE (reply payload
  // larger than the receive buffers), INVALID_ARGUMENT (bad call arguments or
  // malformed response).
  Status status;
  // Response metadata (empty unless status is OK).
  std::vector<uint8_t> meta;
  // Bytes of response payload written into the call's reply_buffers, in
  // order (0 unless status is OK).
  uint64_t payload_size = 0;
};

// Runs exactly once per call, on the client's I/O thread.
using CallCallback = std::function<void(RpcReply&& reply)>;

// One call's arguments. Spans are not copied except `meta`.
struct CallRequest {
  uint16_t opcode = 0;  // 1..kMaxOpcode
  // Request metadata; copied before CallAsync returns.
  std::span<const uint8_t> meta;
  // Request payload; must stay valid until the call completes.
  std::span<const ConstBuffer> payload;
  // Where the response payload lands (filled in order); must stay valid until
  // the call completes. A response payload larger than their total size fails
  // the call with OUT_OF_RANGE.
  std::span<const MutableBuffer> reply_buffers;
  // 0 = RpcClientOptions::default_timeout.
  std::chrono::milliseconds timeout{0};
};

struct RpcClientStats {
  uint64_t calls = 0;
  uint64_t calls_ok = 0;
  uint64_t calls_error = 0;  // server returned an error status
  uint64_t calls_timed_out = 0;
  uint64_t calls_failed = 0;    // transport failures (UNAVAILABLE etc.)
  uint64_t bytes_sent = 0;      // request payload bytes
  uint64_t bytes_received = 0;  // response payload bytes
  uint64_t in_flight = 0;
};

class RpcClient {
 public:
  // Connects to "HOST:PORT" and completes a hello round trip (which checks
  // the wire version). Errors: INVALID_ARGUMENT (address/options),
  // UNAVAILABLE (refused / unreachable), DEADLINE_EXCEEDED (no answer within
  // connect_timeout), UNIMPLEMENTED (server speaks another wire version),
  // INTERNAL (UCX initialisation).
  static Result<std::unique_ptr<RpcClient>> Connect(std::string_view address,
                                                    const RpcClientOptions& options);
  // Fails pending calls with CANCELLED (their callbacks run before the
  // destructor returns), closes the endpoint, joins the I/O thread. Must not
  // be called from a callback.
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Starts a call; `done` runs exactly once on the I/O thread (possibly
  // before CallAsync returns if the client is already broken).
  void CallAsync(const CallRequest& request, CallCallback done);

  // Synchronous call: blocks the calling thread until the reply or the
  // deadline.
  RpcReply Call(const CallRequest& request);

  // Round trip of a transport keepalive frame. OK or the failure.
  Status Ping(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // False once the connection broke (peer failure, timeout with bytes in
  // flight, protocol error).
  bool connected() const;
  // The error that broke the connection (OK while connected).
  Status connection_status() const;
  // Lanes UCX selected for this endpoint, e.g. "am:tcp/lo" or
  // "am:posix/memory rma:cma/memory wireup:tcp/lo"; also logged at connect.
  std::string transport_info() const;
  // Largest request meta a call may carry (RpcClientOptions::limits; larger
  // fails the call with INVALID_ARGUMENT).
  size_t max_meta_bytes() const;
  // Largest meta that fits the UCX AM header next to the frame header (about
  // 64 KiB over tcp, 32 KiB over shm; see UcxOptions::am_segment_bytes).
  // Larger meta still works: it travels at the front of the AM data. Only when
  // such a request ALSO carries a rendezvous-sized payload does the server
  // stage it (one extra payload copy), so keep meta below this bound on the
  // bulk path.
  size_t max_inline_meta_bytes() const;
  // Server-reported info from the hello (its wire version, io_threads).
  std::string server_info() const;
  RpcClientStats stats() const;
  const std::string& address() const;

 private:
  explicit RpcClient(std::unique_ptr<RpcClientImpl> impl);
  std::unique_ptr<RpcClientImpl> impl_;
};

}  // namespace kvcake::transport
