#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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
std::string_view StatusCodeName(StatusCode code);
// True for the codes whose comment above says a retry may succeed.
bool IsRetryable(StatusCode code);

// Status is the result of an operation: OK, or a code plus a message.
// Cheap to copy when OK (no allocation). Thread-compatible (a const Status may
// be read from several threads; mutation needs external synchronisation).
class [[nodiscard]] Status {
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

Status CancelledError(std::string_view msg);
Status UnknownError(std::string_view msg);
Status InvalidArgumentError(std::string_view msg);
Status DeadlineExceededError(std::string_view msg);
Status NotFoundError(std::string_view msg);
Status AlreadyExistsError(std::string_view msg);
Status PermissionDeniedError(std::string_view msg);
Status ResourceExhaustedError(std::string_view msg);
Status FailedPreconditionError(std::string_view msg);
Status AbortedError(std::string_view msg);
Status OutOfRangeError(std::string_view msg);
Status UnimplementedError(std::string_view msg);
Status InternalError(std::string_view msg);
Status UnavailableError(std::string_view msg);
Status DataLossError(std::string_view msg);
Status UnauthenticatedError(std::string_view msg);

// Errno -> Status, with `what` as context: "open /x: No such file or directory".
Status ErrnoToStatus(int err, std::string_view what);

}  // namespace kvcake

#define KVCAKE_CONCAT_INNER_(a, b) a##b
#define KVCAKE_CONCAT_(a, b) KVCAKE_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::kvcake::Status kvcake_status_ = (expr);        \
    if (!kvcake_status_.ok()) return kvcake_status_; \
  } while (0)
