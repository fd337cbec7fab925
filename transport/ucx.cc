#include "transport/ucx.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "common/logging.h"

namespace kvcake::transport {

Status UcsToStatus(ucs_status_t st, std::string_view what) {
  if (st == UCS_OK) return Status::Ok();
  std::string msg = std::string(what) + ": " + ucs_status_string(st);
  switch (st) {
    case UCS_ERR_CANCELED:
      return CancelledError(msg);
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_ENDPOINT_TIMEOUT:
      return DeadlineExceededError(msg);
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_EXCEEDS_LIMIT:
      return ResourceExhaustedError(msg);
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
      return InvalidArgumentError(msg);
    case UCS_ERR_UNSUPPORTED:
      return UnimplementedError(msg);
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_BUSY:
    case UCS_ERR_NO_DEVICE:
    case UCS_ERR_ALREADY_EXISTS:
      return UnavailableError(msg);
    default:
      return InternalError(msg);
  }
}

namespace {

bool TlsHasSharedMemory(const std::string& tls) {
  std::stringstream ss(tls);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok == "posix" || tok == "sysv" || tok == "cma" || tok == "shm" || tok == "sm" ||
        tok == "knem" || tok == "xpmem" || tok == "all") {
      return true;
    }
  }
  return false;
}

constexpr size_t kMaxMmSegmentBytes = 32 * 1024;

bool TlsHasTcp(const std::string& tls) {
  std::stringstream ss(tls);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok == "tcp" || tok == "all") return true;
  }
  return false;
}

struct ConfigDeleter {
  void operator()(ucp_config_t* c) const { ucp_config_release(c); }
};

}  // namespace

Result<std::unique_ptr<UcxContext>> UcxContext::Create(const UcxOptions& options) {
  RETURN_IF_ERROR(options.Validate());

  ucp_config_t* raw = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &raw);
  if (st != UCS_OK) return UcsToStatus(st, "ucp_config_read");
  std::unique_ptr<ucp_config_t, ConfigDeleter> config(raw);
  auto modify = [&](const std::string& name, const std::string& value) -> Status {
    ucs_status_t s = ucp_config_modify(config.get(), name.c_str(), value.c_str());
    if (s != UCS_OK) return UcsToStatus(s, "ucp_config_modify " + name + "=" + value);
    return Status::Ok();
  };
  const std::string tls = options.Tls();
  RETURN_IF_ERROR(modify("TLS", tls));
  if (options.rndv_threshold > 0) {
    RETURN_IF_ERROR(modify("RNDV_THRESH", std::to_string(options.rndv_threshold)));
  }
  if (options.am_segment_bytes > 0) {
    // Cached keys apply to the transports' own configs; set only the ones a
    // transport in `tls` uses (UCX warns about unused keys).
    const std::string seg = std::to_string(options.am_segment_bytes);
    if (TlsHasTcp(tls)) {
      RETURN_IF_ERROR(modify("TX_SEG_SIZE", seg));
      if (options.am_segment_bytes > 64 * 1024) RETURN_IF_ERROR(modify("RX_SEG_SIZE", seg));
    }
    if (TlsHasSharedMemory(tls)) {
      // The mm FIFO element stores lengths in 16 bits: 64 KiB segments break
      // rendezvous fragments in UCX 1.13 (assertion in ucp_rndv_data_handler).
      const size_t mm = std::min<size_t>(options.am_segment_bytes, kMaxMmSegmentBytes);
      RETURN_IF_ERROR(modify("MM_SEG_SIZE", std::to_string(mm)));
    }
  }
  if (TlsHasTcp(tls) && !options.tcp_zero_copy) {
    RETURN_IF_ERROR(modify("PUT_ENABLE", "n"));
    RETURN_IF_ERROR(modify("ZCOPY_THRESH", "inf"));
  }
  for (const auto& [name, value] : options.extra_config) RETURN_IF_ERROR(modify(name, value));

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 0;
  ucp_context_h ctx = nullptr;
  st = ucp_init(&params, config.get(), &ctx);
  if (st != UCS_OK) return UcsToStatus(st, "ucp_init (UCX_TLS=" + tls + ")");
  // PEER where it costs nothing: UCX 1.13 drops the shared-memory lanes
  // from endpoints that ask for it.
  const ucp_err_handling_mode_t mode = options.peer_error_handling && !TlsHasSharedMemory(tls)
                                           ? UCP_ERR_HANDLING_MODE_PEER
                                           : UCP_ERR_HANDLING_MODE_NONE;
  return std::unique_ptr<UcxContext>(new UcxContext(ctx, options, mode));
}

UcxContext::~UcxContext() {
  if (ctx_ != nullptr) ucp_cleanup(ctx_);
}

Result<std::unique_ptr<UcxWorker>> UcxWorker::Create(const UcxContext& ctx) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h w = nullptr;
  ucs_status_t st = ucp_worker_create(ctx.get(), &params, &w);
  if (st != UCS_OK) return UcsToStatus(st, "ucp_worker_create");
  int efd = -1;
  st = ucp_worker_get_efd(w, &efd);
  if (st != UCS_OK) {
    ucp_worker_destroy(w);
    return UcsToStatus(st, "ucp_worker_get_efd");
  }
  ucp_worker_attr_t attr{};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER;
  st = ucp_worker_query(w, &attr);
  if (st != UCS_OK) {
    ucp_worker_destroy(w);
    return UcsToStatus(st, "ucp_worker_query");
  }
  return std::unique_ptr<UcxWorker>(new UcxWorker(w, efd, attr.max_am_header));
}

UcxWorker::~UcxWorker() {
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
}

void UcxEndpoint::Close(bool force) {
  if (ep_ == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t req = ucp_ep_close_nbx(ep_, &param);
  ep_ = nullptr;
  if (UCS_PTR_IS_PTR(req)) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (ucp_request_check_status(req) == UCS_INPROGRESS) {
      ucp_worker_progress(worker_);
      if (std::chrono::steady_clock::now() > deadline) {
        KVCAKE_LOG(WARNING) << "ucp endpoint close did not complete within 2 s";
        break;
      }
    }
    ucp_request_free(req);
  }
}

Status ParseHostPort(std::string_view address, sockaddr_storage* out, size_t* len) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
    return InvalidArgumentError("address '" + std::string(address) + "' is not HOST:PORT");
  }
  std::string host(address.substr(0, colon));
  const std::string port_text(address.substr(colon + 1));
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (end == port_text.c_str() || *end != '\0' || port < 0 || port > 65535) {
    return InvalidArgumentError("address '" + std::string(address) + "': bad port");
  }
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    addrinfo* res = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr) {
      return InvalidArgumentError("address '" + std::string(address) +
                                  "': cannot resolve host: " + gai_strerror(rc));
    }
    sin.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  std::memset(out, 0, sizeof(*out));
  std::memcpy(out, &sin, sizeof(sin));
  *len = sizeof(sin);
  return Status::Ok();
}

Result<std::unique_ptr<UcxMemh>> UcxMemh::Map(ucp_context_h ctx, void* addr, size_t length) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = addr;
  params.length = length;
  ucp_mem_h memh = nullptr;
  ucs_status_t st = ucp_mem_map(ctx, &params, &memh);
  if (st != UCS_OK) return UcsToStatus(st, "ucp_mem_map");
  return std::unique_ptr<UcxMemh>(new UcxMemh(ctx, memh));
}

UcxMemh::~UcxMemh() {
  if (memh_ != nullptr) ucp_mem_unmap(ctx_, memh_);
}

std::string DescribeEndpointTransports(ucp_ep_h ep) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  if (f == nullptr) return "unknown";
  ucp_ep_print_info(ep, f);
  std::fclose(f);
  std::string text(buf, size);
  std::free(buf);
  // Lines look like:
  //   lane[1]:  0:tcp/lo.0 md[0]  -> md[0]/tcp/sysdev[255] rma_bw#0 am am_bw#0 wireup
  std::map<std::string, std::set<std::string>> roles;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t lane = line.find("lane[");
    if (lane == std::string::npos) continue;
    std::istringstream ls(line.substr(line.find(':', lane) + 1));
    std::string tok, tl;
    ls >> tok;
    if (tok == "cm") continue;
    const size_t c = tok.find(':');
    tl = c == std::string::npos ? tok : tok.substr(c + 1);
    const size_t dot = tl.rfind('.');
    if (dot != std::string::npos) tl = tl.substr(0, dot);
    bool after_arrow = false;
    bool skipped_dest = false;
    while (ls >> tok) {
      if (tok == "->") {
        after_arrow = true;
        continue;
      }
      if (!after_arrow) continue;
      if (!skipped_dest) {
        skipped_dest = true;  // md[0]/tcp/sysdev[255]
        continue;
      }
      const size_t hash = tok.find('#');
      roles[tok.substr(0, hash)].insert(tl);
    }
  }
  std::string out;
  for (const char* role : {"am", "am_bw", "rma_bw", "rma", "amo", "wireup"}) {
    auto it = roles.find(role);
    if (it == roles.end()) continue;
    if (!out.empty()) out += ' ';
    out += role;
    out += ':';
    bool first = true;
    for (const auto& tl : it->second) {
      if (!first) out += ',';
      out += tl;
      first = false;
    }
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace kvcake::transport
