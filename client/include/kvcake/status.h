// kvcake::Status, the result of every call of libkvcake's C++ API: OK, or a
// canonical code plus a message that says what failed. Result<T>
// (kvcake/result.h) carries a value or a Status. The C ABI (kvcake_c.h) returns
// the same codes, negated (-KVCAKE_E_*).
//
// This is the single definition of Status in kvcake: the library's internals
// use it too (through common/status.h, which adds internal helpers), so the API
// returns them without conversion (docs/api.md).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kvcake/export.h"

namespace kvcake {

// Canonical status codes (Abseil's set). The comment on each says whether a
// caller should retry the same request unchanged.
enum class StatusCode : int {
  kOk = 0,                  // Success.
  kCancelled = 1,           // Caller cancelled. Retry: if the caller still wants it.
  kUnknown = 2,             // Unmapped foreign error. Retry: no (log and report).
  kInvalidArgument = 3,     // Malformed request, independent of state. Retry: never.
  kDeadlineExceeded = 4,    // A timeout expired. Retry: yes, with backoff.
  kNotFound = 5,            // Key / namespace does not exist. Retry: no.
  kAlreadyExists = 6,       // Key already committed. Retry: no (treat as success for puts).
  kPermissionDenied = 7,    // Bad or missing token. Retry: no.
  kResourceExhausted = 8,   // Tier / quota / disk full, backpressure. Retry: yes, later.
  kFailedPrecondition = 9,  // State does not allow it (layout mismatch, not committed). Retry: no.
  kAborted = 10,            // Concurrency conflict (lease lost, slot moved). Retry: yes, at once.
  kOutOfRange = 11,         // Offset/index past the end. Retry: no.
  kUnimplemented = 12,      // Not supported in this build / version. Retry: never.
  kInternal = 13,           // Invariant broken; a bug. Retry: no.
  kUnavailable = 14,        // Peer or daemon unreachable / draining. Retry: yes, with backoff.
  kDataLoss = 15,           // Corrupt data detected (checksum). Retry: no; the block is gone.
  kUnauthenticated = 16,    // No valid credentials. Retry: no.
};

// Returns "OK", "INVALID_ARGUMENT", ... for `code`.
KVCAKE_API std::string_view StatusCodeName(StatusCode code);
// True for the codes whose comment above says a retry may succeed.
KVCAKE_API bool IsRetryable(StatusCode code);

// Status is the result of an operation: OK, or a code plus a message.
// Cheap to copy when OK (no allocation). Thread-compatible (a const Status may
// be read from several threads; mutation needs external synchronisation).
class KVCAKE_API [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string_view message);

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }
  // "CODE: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>" (OK stays OK).
  Status WithContext(std::string_view prefix) const;

  // Explicitly ignores a status (for best-effort cleanup paths).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

KVCAKE_API Status CancelledError(std::string_view msg);
KVCAKE_API Status UnknownError(std::string_view msg);
KVCAKE_API Status InvalidArgumentError(std::string_view msg);
KVCAKE_API Status DeadlineExceededError(std::string_view msg);
KVCAKE_API Status NotFoundError(std::string_view msg);
KVCAKE_API Status AlreadyExistsError(std::string_view msg);
KVCAKE_API Status PermissionDeniedError(std::string_view msg);
KVCAKE_API Status ResourceExhaustedError(std::string_view msg);
KVCAKE_API Status FailedPreconditionError(std::string_view msg);
KVCAKE_API Status AbortedError(std::string_view msg);
KVCAKE_API Status OutOfRangeError(std::string_view msg);
KVCAKE_API Status UnimplementedError(std::string_view msg);
KVCAKE_API Status InternalError(std::string_view msg);
KVCAKE_API Status UnavailableError(std::string_view msg);
KVCAKE_API Status DataLossError(std::string_view msg);
KVCAKE_API Status UnauthenticatedError(std::string_view msg);

}  // namespace kvcake
