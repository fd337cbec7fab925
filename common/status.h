#pragma once

// Internal additions to kvcake::Status (client/include/kvcake/status.h, the
// public definition every module uses): errno conversion and RETURN_IF_ERROR.
// Not installed.

#include <cstdint>
#include <string_view>

#include "kvcake/status.h"

namespace kvcake {

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
