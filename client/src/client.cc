// The public classes of kvcake/client.h: option checks, the waits shared by
// PendingGet and PutStream, and Client::Connect (the client itself is
// internal::ClientImpl, client_impl.h).
#include "kvcake/client.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>

#include "client/src/client_impl.h"
#include "common/logging.h"
#include "transport/messages.h"
#include "transport/ucx_options.h"

namespace kvcake {

Status ClientOptions::Validate() const {
  if (address.empty() || address.find(':') == std::string::npos) {
    return InvalidArgumentError("address must be HOST:PORT, got '" + address + "'");
  }
  if (namespace_name.empty() || namespace_name.size() > transport::kMaxNameBytes) {
    return InvalidArgumentError("namespace name must be 1.." +
                                std::to_string(transport::kMaxNameBytes) + " bytes");
  }
  if (token.size() > transport::kMaxTokenBytes) return InvalidArgumentError("token too long");
  if (timeout.count() <= 0) return InvalidArgumentError("timeout must be > 0");
  if (busy_poll.count() < 0 || busy_poll > std::chrono::seconds(1)) {
    return InvalidArgumentError("busy_poll must be 0..1 s");
  }
  if (spin_wait.count() < 0 || spin_wait > std::chrono::seconds(1)) {
    return InvalidArgumentError("spin_wait must be 0..1 s");
  }
  if (max_inflight_requests < 1) return InvalidArgumentError("max_inflight_requests must be >= 1");
  if (reconnect_max_backoff.count() <= 0) {
    return InvalidArgumentError("reconnect_max_backoff must be > 0");
  }
  if (!transport::ParseUcxTransport(ucx_tls).ok()) {
    return InvalidArgumentError("ucx_tls must be 'tcp' or 'shm', got '" + ucx_tls + "'");
  }
  return Status::Ok();
}

namespace {

// Waits for groups 0..size()-1 of `w` within one overall `timeout`.
template <typename Waiter>
Status WaitEachGroup(Waiter& w, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (size_t i = 0; i < w.size(); ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    RETURN_IF_ERROR(w.Wait(i, std::max(left, std::chrono::milliseconds(0))));
  }
  return Status::Ok();
}

}  // namespace

Status PendingGet::WaitAll(std::chrono::milliseconds timeout) {
  return WaitEachGroup(*this, timeout);
}

Status HandoffTarget::Validate() const {
  if (node_id.empty() || node_id.size() > transport::kMaxNodeIdBytes) {
    return InvalidArgumentError("HandoffTarget.node_id must be 1.." +
                                std::to_string(transport::kMaxNodeIdBytes) + " bytes");
  }
  if (handoff_id == 0) return InvalidArgumentError("HandoffTarget.handoff_id must be > 0");
  if (total_blocks == 0 || total_blocks > transport::kMaxHandoffBlocks) {
    return InvalidArgumentError("HandoffTarget.total_blocks must be in [1, " +
                                std::to_string(transport::kMaxHandoffBlocks) + "]");
  }
  return Status::Ok();
}

Status PutStream::WaitAll(std::chrono::milliseconds timeout) {
  return WaitEachGroup(*this, timeout);
}

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  // An engine's log stays quiet: warnings and errors only, unless
  // KVCAKE_LOG_LEVEL asks for more (or less).
  static std::once_flag quiet;
  std::call_once(quiet, [] {
    if (std::getenv("KVCAKE_LOG_LEVEL") == nullptr && GetLogLevel() == LogLevel::kInfo) {
      SetLogLevel(LogLevel::kWarning);
    }
  });
  RETURN_IF_ERROR(options.Validate());
  auto client = std::make_unique<internal::ClientImpl>(options);
  RETURN_IF_ERROR(client->Init().WithContext("kvcake connect " + options.address));
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace kvcake
