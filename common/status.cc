#include "common/status.h"

#include <cstring>

namespace kvcake {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kCancelled:
      return "CANCELLED";
    case StatusCode::kUnknown:
      return "UNKNOWN";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kAborted:
      return "ABORTED";
    case StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::kInternal:
      return "INTERNAL";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kDataLoss:
      return "DATA_LOSS";
    case StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN_CODE";
}

bool IsRetryable(StatusCode code) {
  switch (code) {
    case StatusCode::kCancelled:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kResourceExhausted:
    case StatusCode::kAborted:
    case StatusCode::kUnavailable:
      return true;
    default:
      return false;
  }
}

Status::Status(StatusCode code, std::string_view message) {
  if (code != StatusCode::kOk) {
    rep_ = std::make_shared<const Rep>(Rep{code, std::string(message)});
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  out += ": ";
  out += message();
  return out;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += message();
  return Status(code(), msg);
}

#define KVCAKE_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string_view msg) { return Status(StatusCode::Code, msg); }
KVCAKE_DEFINE_ERROR_(CancelledError, kCancelled)
KVCAKE_DEFINE_ERROR_(UnknownError, kUnknown)
KVCAKE_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
KVCAKE_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
KVCAKE_DEFINE_ERROR_(NotFoundError, kNotFound)
KVCAKE_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
KVCAKE_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
KVCAKE_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
KVCAKE_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
KVCAKE_DEFINE_ERROR_(AbortedError, kAborted)
KVCAKE_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)
KVCAKE_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
KVCAKE_DEFINE_ERROR_(InternalError, kInternal)
KVCAKE_DEFINE_ERROR_(UnavailableError, kUnavailable)
KVCAKE_DEFINE_ERROR_(DataLossError, kDataLoss)
KVCAKE_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)
#undef KVCAKE_DEFINE_ERROR_

Status ErrnoToStatus(int err, std::string_view what) {
  StatusCode code;
  switch (err) {
    case ENOENT:
      code = StatusCode::kNotFound;
      break;
    case EEXIST:
      code = StatusCode::kAlreadyExists;
      break;
    case EACCES:
    case EPERM:
      code = StatusCode::kPermissionDenied;
      break;
    case ENOSPC:
    case ENOMEM:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
      code = StatusCode::kResourceExhausted;
      break;
    case EINVAL:
      code = StatusCode::kInvalidArgument;
      break;
    case EAGAIN:
    case EINTR:
    case ECONNREFUSED:
    case ECONNRESET:
      code = StatusCode::kUnavailable;
      break;
    case ETIMEDOUT:
      code = StatusCode::kDeadlineExceeded;
      break;
    default:
      code = StatusCode::kUnknown;
      break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Status(code, msg);
}

}  // namespace kvcake
