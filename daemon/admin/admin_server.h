#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"
#include "daemon/admin/admin_backend.h"

namespace kvcake::admin {

// Default admin HTTP port (the UCX data port is 18515).
inline constexpr uint16_t kDefaultAdminPort = 18516;

// Options of the admin HTTP server (flags: --admin_listen, --admin_token_file,
// --admin_max_connections, --admin_header_timeout_ms).
struct AdminServerOptions {
  // HOST:PORT to listen on; [v6]:PORT for IPv6. Port 0 picks a free port
  // (AdminServer::port() reports it). Default: loopback only.
  std::string listen = "127.0.0.1:18516";
  // File holding the bearer token (first line, surrounding whitespace
  // trimmed). Empty: no token, allowed only on a loopback address.
  std::string token_file;
  // The token itself, for embedders and tests; overrides token_file.
  std::string token;
  // Whether GET /metrics also needs the token (default: no, so Prometheus can
  // scrape without a secret; it exposes counts only). /healthz never does.
  bool metrics_require_token = false;
  // Largest request body accepted (413 above it).
  uint64_t max_body_bytes = 1 << 20;
  // Concurrent connections. A new connection beyond the limit closes the open
  // connection that has made no progress for the longest (see AdminServer);
  // it is never refused.
  uint32_t max_connections = 64;
  // Time a connection has to deliver a complete request header: from accept
  // for its first request, from the first byte of the request for later ones
  // on a kept-alive connection.
  uint32_t header_timeout_ms = 5'000;
  // A kept-alive connection with no new request this long is closed; also the
  // time allowed for a request body once its header is in.
  uint32_t idle_timeout_ms = 30'000;
  // Time allowed for the peer to take one whole reply.
  uint32_t write_timeout_ms = 10'000;

  // INVALID_ARGUMENT: unparsable listen address, zero limits or timeouts.
  Status Validate() const;
};

// Connection counters of one AdminServer since it started. Plain value type.
struct AdminServerStats {
  uint64_t open_connections = 0;  // now
  uint64_t accepted = 0;
  // Closed by the server because the peer was slow (each also counted in
  // kvcake_admin_connections_closed_total{reason}):
  uint64_t header_timeouts = 0;  // no complete header within header_timeout_ms
  uint64_t body_timeouts = 0;    // body incomplete after idle_timeout_ms
  uint64_t write_timeouts = 0;   // reply not taken within write_timeout_ms
  uint64_t evicted = 0;          // longest without progress when max_connections was hit
  // Kept-alive connections closed after idle_timeout_ms without a request
  // (routine; not in slow_closed()).
  uint64_t idle_timeouts = 0;

  // Connections closed for being slow (all of the above but idle_timeouts).
  uint64_t slow_closed() const {
    return header_timeouts + body_timeouts + write_timeouts + evicted;
  }
};

// Validate() plus the security rule: a non-loopback listen address requires a
// token (FAILED_PRECONDITION otherwise), and a token file must be readable and
// non-empty. kvcaked calls this at start and refuses to run on error.
Status ValidateAdminOptions(const AdminServerOptions& options);

// Splits "host:port" / "[v6]:port". INVALID_ARGUMENT if malformed.
Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port);
// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);
// Reads and trims a token file. NOT_FOUND / PERMISSION_DENIED from the file
// system, INVALID_ARGUMENT if it is empty.
Result<std::string> ReadTokenFile(const std::string& path);

// AdminServer: the admin HTTP/1.1 endpoint of kvcaked (Boost.Beast) — the
// routes of AdminRouter plus /metrics — on its own io_context thread.
// Keep-alive connections, bounded header (16 KiB) and body sizes; malformed
// HTTP gets 400 and a closed connection.
//
// Slow or silent peers (slowloris) cannot lock /healthz or /metrics out:
//  - Every socket operation is asynchronous and has a deadline
//    (header_timeout_ms for a request header, idle_timeout_ms between
//    requests and for a body, write_timeout_ms for a reply), so a slow peer
//    holds a connection slot for a bounded time and never blocks the thread.
//    Requests are handled one at a time on the server thread, each as soon as
//    its bytes are in, however many other connections are half-way through
//    theirs.
//  - At max_connections open, a new connection is admitted and the open
//    connection that has made no progress for the longest (accepted, request
//    begun, header complete or reply written least recently) is closed. A new
//    connection is never refused: a probe that sends its request at once is
//    the most recent and is served, whereas answering 503 or dropping new
//    connections at the limit would let slow peers lock probes out. The cost
//    is that a client idling on a kept-alive connection under such pressure
//    may find it closed and reconnects, as HTTP/1.1 clients do anyway.
// Closed slow connections are counted in stats() and in
// kvcake_admin_connections_closed_total{reason}.
//
// Thread-safety: Start/Stop/port/address/stats are thread-safe. The backend
// is called from the server's thread only.
class AdminServer {
 public:
  // Validates `options` (ValidateAdminOptions), reads the token, binds and
  // starts serving. `backend` and `registry` must outlive the server; null
  // registry = metrics::Registry::Default(). UNAVAILABLE if the address is
  // in use or cannot be bound.
  static Result<std::unique_ptr<AdminServer>> Start(const AdminServerOptions& options,
                                                    AdminBackend* backend,
                                                    metrics::Registry* registry = nullptr);
  // Stops accepting, closes connections and joins the thread.
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port (the real one when the options said 0).
  uint16_t port() const;
  // "host:port" actually bound.
  std::string address() const;
  // Connection counters (each read atomically; not one snapshot).
  AdminServerStats stats() const;
  // Idempotent; also done by the destructor.
  void Stop();

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::admin
