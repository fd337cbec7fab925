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
// --admin_metrics_auth).
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
  // Concurrent connections; further connections are closed at once.
  uint32_t max_connections = 64;
  // A connection idle (or stuck mid-request) this long is closed.
  uint32_t idle_timeout_ms = 30'000;

  // INVALID_ARGUMENT: unparsable listen address, zero limits.
  Status Validate() const;
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
// Keep-alive connections, bounded header (16 KiB) and body sizes, idle
// timeouts; malformed HTTP gets 400 and a closed connection.
//
// Thread-safety: Start/Stop/port are thread-safe. The backend is called from
// the server's thread only.
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
  // Idempotent; also done by the destructor.
  void Stop();

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::admin
