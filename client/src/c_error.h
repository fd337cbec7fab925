#pragma once

#include <string_view>
#include <utility>

#include "common/status.h"

namespace kvcake {

// Per-thread last-error message behind kvcake_last_error() (kvcake_c.h), and
// the exception barrier of every extern "C" entry point.
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

// Call only inside a catch block: maps the exception being handled onto the
// C ABI as StatusToCError does, naming `function`: std::bad_alloc is
// RESOURCE_EXHAUSTED, any other exception INTERNAL (with what() where there is
// one). Never throws; if even the message cannot be recorded, the code is
// still returned.
int CurrentExceptionToCError(std::string_view function) noexcept;

// Runs `body` (which returns 0 or a negative C error) so that no exception
// leaves it: every extern "C" function's body runs through this.
template <typename Fn>
int CatchAll(std::string_view function, Fn&& body) noexcept {
  try {
    return std::forward<Fn>(body)();
  } catch (...) {
    return CurrentExceptionToCError(function);
  }
}

// CatchAll for the entry points that return nothing: an exception is recorded
// as the thread's last error.
template <typename Fn>
void CatchAllVoid(std::string_view function, Fn&& body) noexcept {
  try {
    std::forward<Fn>(body)();
  } catch (...) {
    CurrentExceptionToCError(function);
  }
}

}  // namespace kvcake
