#pragma once

#include <string_view>

#include "common/status.h"

namespace kvcake {

// Per-thread last-error message behind kvcake_last_error() (kvcake_c.h).
//
// Thread-safety: each thread has its own message (thread_local storage); the
// functions are safe to call from any thread.

// Replaces the calling thread's last error message with `message`.
void SetLastError(std::string_view message);

// The calling thread's last error message ("" if none). The pointer stays
// valid until the next SetLastError() on this thread.
const char* LastError();

// Maps `status` onto the C ABI: OK → 0; otherwise records status.ToString()
// as the thread's last error and returns -code (a negative KVCAKE_E_* value).
int StatusToCError(const Status& status);

}  // namespace kvcake
