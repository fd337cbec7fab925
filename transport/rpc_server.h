#pragma once

// RpcServer: the server side of the kvcake RPC layer over UCX active messages.
//
// A server listens on "HOST:PORT" with kvcake's own TCP handshake
// (transport/handshake.h: client and server exchange UCX worker addresses,
// each creates its endpoint to the other, and the client's first frame
// carries a one-time ticket; UCX's own sockaddr listener is not exposed),
// runs
// `io_threads` I/O threads (each one Boost.Asio io_context driving one UCX
// worker in UCS_THREAD_MODE_SINGLE) and hands every request to an RpcHandler:
//
//   1. If the request carries a payload, RpcHandler::AcceptPayload() is called
//      on the I/O thread with the header and meta. It either names the buffers
//      the payload must land in (UCX receives it straight there — rendezvous
//      for large payloads, so a put lands directly in the store slot) or
//      refuses with a Status (backpressure: the payload is dropped, the caller
//      gets that status, the connection stays usable).
//   2. RpcHandler::OnRequest() receives the complete call (ownership moves to
//      the handler). The handler replies — now or later, from any thread — with
//      ServerCall::Reply(status, meta, payload buffers, on_sent).
//
// Transport-internal control frames (hello, keepalive) are answered by the
// server itself. Malformed frames are counted and answered with
// INVALID_ARGUMENT when the request id is readable (else the endpoint is
// closed); the server keeps serving. Connections that show no traffic for
// `idle_timeout` while no request of theirs awaits a reply (idle clients send
// keepalives) are closed, as are those whose reply send is stuck for
// `send_timeout`, so a vanished client costs bounded time and memory.
//
// Thread-safety: Start/Stop/destructor from one owning thread; stats(),
// bound_port() from any thread; Connections() from any thread except the
// server's I/O threads (it waits on each of them). Handler methods run on I/O
// threads. ServerCall::Reply is thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "transport/buffer.h"
#include "transport/frame.h"
#include "transport/ucx_options.h"

namespace kvcake::transport {

class ServerConnection;  // internal
class RpcServerImpl;     // internal

struct RpcServerOptions {
  // "HOST:PORT" to listen on; port 0 picks an ephemeral port (see
  // RpcServer::bound_port()). HOST may be an IPv4 address, "localhost" or
  // "0.0.0.0". Default "127.0.0.1:0".
  std::string listen = "127.0.0.1:0";
  // I/O threads, one UCX worker each; connections are spread round-robin.
  // Default 1. Range 1..64.
  int io_threads = 1;
  UcxOptions ucx;
  // Request frames over these limits are refused with INVALID_ARGUMENT.
  FrameLimits limits;
  // A connection with no inbound traffic for this long is closed. Clients
  // keep idle connections alive with pings. Default 30 s. Must be > 0.
  std::chrono::milliseconds idle_timeout{30000};
  // Bound on one reply's send: if it has not completed after this long, the
  // connection is considered dead and closed. Default 30 s. Must be > 0.
  std::chrono::milliseconds send_timeout{30000};
  // Bytes of requests whose metadata travels in the data phase (oversized
  // meta with a rendezvous payload) that may be staged in daemon memory at
  // once, over all connections. A request beyond it is refused with
  // RESOURCE_EXHAUSTED before anything is allocated. Default 1 GiB. > 0.
  uint64_t max_staged_bytes = 1ull << 30;
  // A client has this long to complete the TCP handshake on the listening
  // port (transport/handshake.h). Default 5 s. Must be > 0.
  std::chrono::milliseconds handshake_timeout{5000};
  // A connection opened by a handshake must send its hello frame with the
  // ticket within this long, or it is closed. Default 30 s. Must be > 0.
  std::chrono::milliseconds ticket_timeout{30000};
  // Connections opened by a handshake whose hello frame has not arrived yet,
  // at most; beyond it a handshake is refused (RESOURCE_EXHAUSTED).
  // Default 1024.
  size_t max_pending_handshakes = 1024;

  Status Validate() const;
};

// Called when a reply's send completed (OK) or failed (the connection broke);
// runs on the connection's I/O thread. After it runs, the reply's payload
// buffers are no longer used by the transport.
using SendDoneCallback = std::function<void(const Status&)>;

// One inbound request. Created by the transport, owned by the handler from
// OnRequest() on. Accessors are for the owning thread; Reply() may be called
// from any thread, exactly once. Destroying a call that was never replied
// sends INTERNAL "request dropped by the handler".
class ServerCall {
 public:
  ~ServerCall();
  ServerCall(const ServerCall&) = delete;
  ServerCall& operator=(const ServerCall&) = delete;

  const FrameHeader& header() const { return header_; }
  uint16_t opcode() const { return header_.opcode; }
  uint64_t request_id() const { return header_.request_id; }
  // The request's metadata (owned by the call; valid for its lifetime).
  std::span<const uint8_t> meta() const { return meta_; }
  // Size of the request payload announced by the caller.
  uint64_t payload_size() const { return header_.payload_size; }
  // OK when the payload (if any) arrived completely; UNAVAILABLE /
  // CANCELLED if the connection broke while it was being received.
  const Status& payload_status() const { return payload_status_; }
  // Identifies the connection (unique within the server's lifetime).
  uint64_t connection_id() const;
  // "IP:PORT" of the peer.
  const std::string& peer() const;

  // Free slot for the handler, e.g. the reservation made in AcceptPayload.
  void set_user_data(std::shared_ptr<void> data) { user_data_ = std::move(data); }
  const std::shared_ptr<void>& user_data() const { return user_data_; }

  // Sends the response. Thread-safe; call exactly once (later calls are
  // ignored and logged). With a non-OK `status` the message is sent and
  // `meta`/`payload` are ignored. `meta` is copied before Reply returns.
  // `payload` buffers must stay valid until `on_sent` runs (on the I/O
  // thread); if `on_sent` is null they must stay valid until the reply has
  // been sent, which the caller cannot observe — so pass a callback whenever
  // `payload` is non-empty. If the connection is already gone, `on_sent` runs
  // with UNAVAILABLE.
  void Reply(const Status& status, std::span<const uint8_t> meta = {},
             std::span<const ConstBuffer> payload = {}, SendDoneCallback on_sent = nullptr);
  // Shorthand for an error reply.
  void ReplyError(const Status& status) { Reply(status); }
  bool replied() const { return replied_.load(std::memory_order_acquire); }

 private:
  friend class ServerConnection;
  friend class RpcServerImpl;
  ServerCall(std::shared_ptr<ServerConnection> conn, const FrameHeader& header,
             std::span<const uint8_t> meta);

  std::shared_ptr<ServerConnection> conn_;
  FrameHeader header_;
  std::vector<uint8_t> meta_;
  std::vector<MutableBuffer> payload_buffers_;
  Status payload_status_;
  std::shared_ptr<void> user_data_;
  std::atomic<bool> replied_{false};
};

// Implemented by the application (the daemon). Methods are called on I/O
// threads and must not block.
class RpcHandler {
 public:
  virtual ~RpcHandler() = default;

  // Called for a request with payload_size() > 0 before the payload is
  // received. Either append buffers with total size == call.payload_size() to
  // `*target` and return OK — the payload is received directly into them and
  // they must stay valid until OnRequest() has been called for this call —
  // or return an error (typically RESOURCE_EXHAUSTED for backpressure, or
  // INVALID_ARGUMENT): the payload is dropped, the caller gets that status,
  // and OnRequest() is NOT called. The default refuses with UNIMPLEMENTED.
  virtual Status AcceptPayload(ServerCall& call, std::vector<MutableBuffer>* target);

  // Called for every application request as soon as its frame header is
  // decoded, before its meta or payload is staged or received. A non-OK
  // status refuses the request (the caller gets it; no byte is allocated).
  // Lets the application bound what a request may announce (which opcodes
  // carry payload, how large). The default admits everything.
  virtual Status CheckRequestHeader(const FrameHeader& header);

  // Called once when connection `connection_id` (ServerCall::connection_id)
  // is closed: the peer failed or disconnected, it timed out, sent an
  // unreadable frame, or the server stops. Calls of that connection may still
  // be replied to (the replies are dropped). Runs on an I/O thread; the
  // default does nothing.
  virtual void OnConnectionClosed(uint64_t connection_id);

  // Called once the request is complete (payload received, or failed — see
  // call->payload_status()). The handler owns `call` and must Reply() to it,
  // now or later, from any thread.
  virtual void OnRequest(std::unique_ptr<ServerCall> call) = 0;
};

// Snapshot of the server's counters (monotonic since Start, except
// connections_open).
struct RpcServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connections_closed_idle = 0;  // closed by idle/send timeout
  uint64_t requests = 0;                 // application requests received
  uint64_t control_frames = 0;           // hello / keepalive
  uint64_t replies_ok = 0;
  uint64_t replies_error = 0;
  uint64_t payloads_refused = 0;  // AcceptPayload or CheckRequestHeader refused
  uint64_t malformed_frames = 0;
  uint64_t bytes_received = 0;  // request payload bytes
  uint64_t bytes_sent = 0;      // reply payload bytes
  uint64_t send_errors = 0;
  // Connections by the transport of their AM lane (counted at first request).
  uint64_t connections_tcp = 0;
  uint64_t connections_shm = 0;  // posix / sysv
  uint64_t connections_other = 0;
};

// One live connection as seen by the server.
struct ConnectionInfo {
  uint64_t id = 0;
  std::string peer;       // "IP:PORT"
  std::string transport;  // lanes UCX selected, e.g. "am:tcp/lo rma:posix/memory"
  int io_thread = 0;
};

class RpcServer {
 public:
  // Validates `options`, creates the UCX context and workers, starts the I/O
  // threads and the listener. `handler` must outlive the server. Errors:
  // INVALID_ARGUMENT (options), UNAVAILABLE (cannot bind/listen), INTERNAL
  // (UCX initialisation).
  static Result<std::unique_ptr<RpcServer>> Start(const RpcServerOptions& options,
                                                  RpcHandler* handler);
  // Stops (see Stop()).
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Stops listening, closes all connections (pending replies fail with
  // UNAVAILABLE, calls not yet replied stay valid objects whose Reply() is a
  // no-op), joins the I/O threads. Idempotent.
  void Stop();

  // The port actually bound (resolves port 0).
  uint16_t bound_port() const;
  // "HOST:PORT" with the bound port.
  std::string address() const;
  RpcServerStats stats() const;
  std::vector<ConnectionInfo> Connections() const;
  const RpcServerOptions& options() const;

 private:
  explicit RpcServer(std::unique_ptr<RpcServerImpl> impl);
  std::unique_ptr<RpcServerImpl> impl_;
};

}  // namespace kvcake::transport
