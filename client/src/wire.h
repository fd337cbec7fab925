#pragma once

// Small conversions the client's request code shares: request metadata as
// bytes and back, calls, and a per-key reply code as a Status. Stateless,
// thread-safe.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake::internal {

inline std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline std::string_view AsView(const std::vector<uint8_t>& v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

// A per-key code of a reply: OK for 0, else the status code it carries.
inline Status KeyStatus(transport::KeyCode code, std::string_view what) {
  if (code == 0) return Status::Ok();
  return Status(static_cast<StatusCode>(code), what);
}

// A put's per-key code: ALREADY_EXISTS (stored before) counts as stored.
inline Status PutKeyStatus(transport::KeyCode code, std::string_view what) {
  return code == static_cast<transport::KeyCode>(StatusCode::kAlreadyExists)
             ? Status::Ok()
             : KeyStatus(code, what);
}

// A call of `op` with request metadata `meta` (which must outlive the call),
// bounded by `timeout`.
inline transport::CallRequest MakeCall(transport::RpcOp op, const std::string& meta,
                                       std::chrono::milliseconds timeout) {
  transport::CallRequest call;
  call.opcode = static_cast<uint16_t>(op);
  call.meta = AsBytes(meta);
  call.timeout = timeout;
  return call;
}

// The error of work cut short because the client is being destroyed.
inline Status ClosingError() { return CancelledError("kvcake client closing"); }

}  // namespace kvcake::internal
