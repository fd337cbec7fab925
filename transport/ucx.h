#pragma once

// RAII wrappers for the UCX UCP handles the RPC layer uses (context, worker,
// endpoint, listener, memory handle) and the one place where ucs_status_t is
// converted to kvcake::Status.
//
// Thread-safety: the wrappers are thread-compatible; a UcxWorker is created
// in UCS_THREAD_MODE_SINGLE and it and its endpoints/listeners must be used
// from one thread at a time (the I/O thread that owns them). UcxContext is
// thread-safe (UCX context in multi-thread-safe mode is not needed: workers
// are created from one thread, then each is used by its own thread).

#include <ucp/api/ucp.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/status.h"
#include "transport/ucx_options.h"

namespace kvcake::transport {

// Maps a UCX status to a kvcake Status with `what` as context.
Status UcsToStatus(ucs_status_t st, std::string_view what);

class UcxContext {
 public:
  // ucp_init with AM + WAKEUP features and the TLS / thresholds in `options`.
  static Result<std::unique_ptr<UcxContext>> Create(const UcxOptions& options);
  ~UcxContext();
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;

  ucp_context_h get() const { return ctx_; }
  const UcxOptions& options() const { return options_; }
  // Error-handling mode endpoints of this context use: NONE by default (PEER
  // would make UCX 1.13 drop the posix/sysv/cma lanes, and both ends must
  // agree, so tcp-only and shm peers could not talk); dead peers are then
  // found by the RPC layer's timeouts and keepalives. PEER with
  // UcxOptions::peer_error_handling.
  ucp_err_handling_mode_t err_mode() const { return err_mode_; }

 private:
  UcxContext(ucp_context_h ctx, const UcxOptions& options, ucp_err_handling_mode_t mode)
      : ctx_(ctx), options_(options), err_mode_(mode) {}
  ucp_context_h ctx_;
  UcxOptions options_;
  ucp_err_handling_mode_t err_mode_;
};

class UcxWorker {
 public:
  // Single-threaded worker with an event fd for blocking progress.
  static Result<std::unique_ptr<UcxWorker>> Create(const UcxContext& ctx);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  ucp_worker_h get() const { return worker_; }
  int event_fd() const { return efd_; }
  // Largest AM header (frame header + meta) this worker can send.
  size_t max_am_header() const { return max_am_header_; }

 private:
  UcxWorker(ucp_worker_h w, int efd, size_t max_hdr)
      : worker_(w), efd_(efd), max_am_header_(max_hdr) {}
  ucp_worker_h worker_;
  int efd_;
  size_t max_am_header_;
};

// Owns a ucp_ep_h. Close() starts a close and progresses the worker until it
// completes (bounded); the destructor does a forced Close().
class UcxEndpoint {
 public:
  UcxEndpoint(ucp_worker_h worker, ucp_ep_h ep) : worker_(worker), ep_(ep) {}
  ~UcxEndpoint() { Close(/*force=*/true); }
  UcxEndpoint(const UcxEndpoint&) = delete;
  UcxEndpoint& operator=(const UcxEndpoint&) = delete;

  ucp_ep_h get() const { return ep_; }
  // Closes the endpoint (force: outstanding operations complete with
  // CANCELED; else flush first). Runs the worker's progress until the close
  // completes or ~2 s pass. Must be called on the worker's thread, not from a
  // UCX callback. Idempotent.
  void Close(bool force);

 private:
  ucp_worker_h worker_;
  ucp_ep_h ep_;
};

// Memory registered with a context (ucp_mem_map / ucp_mem_unmap), e.g. a
// host-tier segment served by rendezvous. Thread-compatible.
class UcxMemh {
 public:
  static Result<std::unique_ptr<UcxMemh>> Map(ucp_context_h ctx, void* addr, size_t length);
  ~UcxMemh();
  UcxMemh(const UcxMemh&) = delete;
  UcxMemh& operator=(const UcxMemh&) = delete;
  ucp_mem_h get() const { return memh_; }

 private:
  UcxMemh(ucp_context_h ctx, ucp_mem_h m) : ctx_(ctx), memh_(m) {}
  ucp_context_h ctx_;
  ucp_mem_h memh_;
};

// Summarises the lanes UCX selected for `ep` from ucp_ep_print_info(), e.g.
// "am:tcp/lo rma_bw:tcp/lo,tcp/eth0" or "am:sysv/memory rma_bw:cma/memory".
// (UCX 1.13's ucp_ep_query cannot report transports.)
std::string DescribeEndpointTransports(ucp_ep_h ep);

// Parses "HOST:PORT" into an IPv4 sockaddr ("localhost" accepted).
Status ParseHostPort(std::string_view address, struct sockaddr_storage* out, size_t* len);

}  // namespace kvcake::transport
