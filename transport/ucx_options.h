#pragma once

// Options for the UCX context behind an RpcServer / RpcClient: which UCX
// transports may be used, and extra UCX configuration. Plain value type;
// thread-compatible.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::transport {

enum class UcxTransport {
  kTcp,           // UCX_TLS=tcp: works across nodes; peer-failure detection by UCX.
  kSharedMemory,  // UCX_TLS=posix,sysv,cma,tcp: shm lanes for data on the same node
                  // (tcp kept for wireup and remote peers).
  kCustom,        // UcxOptions::custom_tls verbatim.
};

// Parses "tcp" | "shm" | "sm" | "shared_memory" (case-sensitive).
Result<UcxTransport> ParseUcxTransport(std::string_view text);

struct UcxOptions {
  // Default: tcp.
  UcxTransport transport = UcxTransport::kTcp;
  // UCX_TLS value when transport == kCustom (e.g. "tcp,self"). Default empty.
  std::string custom_tls;
  // Messages whose payload is at least this many bytes use rendezvous (the
  // payload is received straight into the destination buffer). 0 = UCX's own
  // choice ("auto"). Default 64 KiB.
  size_t rndv_threshold = 64 * 1024;
  // UCX eager segment size for tcp and the shared-memory transports
  // (TCP_TX_SEG_SIZE, POSIX_SEG_SIZE, SYSV_SEG_SIZE); it bounds the largest AM
  // header, i.e. frame header + meta (see RpcClient::max_meta_bytes()).
  // 0 = UCX default (8 KiB). Default 64 KiB.
  size_t am_segment_bytes = 64 * 1024;
  // Ask UCX for peer-failure handling (UCP_ERR_HANDLING_MODE_PEER) on a
  // client's endpoints (tcp-only transports; UCX 1.13 drops the
  // shared-memory lanes from PEER endpoints, so with them the mode stays
  // NONE). A client's mode travels in the handshake and the server's
  // endpoint to it uses the same one (UCX refuses a mismatched pair), so
  // clients of both kinds share one server. On by default: in mode NONE a
  // peer that dies mid-transfer is undefined behaviour in UCX, and UCX 1.13
  // then aborts the surviving process on internal assertions now and then.
  // An early measurement on an idle machine showed a large tcp cost (1 MiB
  // gets 4.2 -> 0.9 GB/s); under load transport_bench tcp later measured
  // none/peer 1.06/1.24 and 1.71/1.49 GB/s, no cost visible. Default true.
  bool peer_error_handling = true;
  // Let UCX use zero-copy sends over tcp: its RDMA PUT emulation for
  // rendezvous (the "rma_bw" lanes) and zero-copy active messages. UCX 1.13
  // can abort the process on internal assertions in both when a peer dies
  // with such a send in flight (tcp_ep.c PUT_TX_WAITING_ACK, uct_iface.h
  // comp->count > 0; both seen with clients SIGKILLed mid-get). Off, tcp
  // payloads go by copying active messages: transport_bench tcp, 1 MiB gets
  // 6.1 -> 4.1 GB/s on loopback, puts -6 %; shared-memory lanes and the
  // mapped path are unaffected. Default false.
  bool tcp_zero_copy = false;
  // Extra "NAME", "VALUE" pairs applied with ucp_config_modify() (names
  // without the UCX_ prefix, e.g. {"TCP_SNDBUF", "4m"}). Default none. The
  // process environment (UCX_*) still applies underneath.
  std::vector<std::pair<std::string, std::string>> extra_config;

  // How long an I/O thread keeps polling the worker after it made progress
  // before it arms the event fd and sleeps. Waking a sleeping thread costs
  // tens to hundreds of microseconds on virtual machines (a halted vCPU must
  // be woken by the host), so a window that covers the gap between a request
  // and its successor saves a wake-up per request; it costs up to this much
  // CPU after each burst. 0 = sleep at once. Default 100 us.
  std::chrono::microseconds busy_poll{100};
  // A polling round (of the I/O thread, or of a caller spinning for its
  // reply) that found nothing calls sched_yield(). On a box with fewer cores
  // than busy threads the thread that will produce the next event (the
  // caller, the peer) may be waiting for this very core; yielding hands it
  // over at the cost of a context switch instead of a scheduler tick.
  // kvcake-bench on 2 vCPUs: mapped get 19.5-21.8 -> 24-28 GB/s,
  // lookup_prefix(1000) p50 over shm 23-95 -> 19-24 us. Default true.
  bool busy_poll_yield = true;

  // The UCX_TLS string this resolves to.
  std::string Tls() const;
  Status Validate() const;
};

}  // namespace kvcake::transport
