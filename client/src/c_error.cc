#include "client/src/c_error.h"

#include <exception>
#include <new>
#include <string>

#include "kvcake/kvcake_c.h"

namespace kvcake {
namespace {

std::string& ThreadLastError() {
  thread_local std::string message;
  return message;
}

}  // namespace

void SetLastError(std::string_view message) { ThreadLastError().assign(message); }

const char* LastError() { return ThreadLastError().c_str(); }

int StatusToCError(const Status& status) {
  if (status.ok()) return 0;
  SetLastError(status.ToString());
  return -static_cast<int>(status.code());
}

int CurrentExceptionToCError(std::string_view function) noexcept {
  StatusCode code = StatusCode::kInternal;
  try {
    try {
      throw;
    } catch (const std::bad_alloc& e) {
      code = StatusCode::kResourceExhausted;
      return StatusToCError(
          Status(code, std::string(function) + ": out of memory (" + e.what() + ")"));
    } catch (const std::exception& e) {
      return StatusToCError(
          Status(code, std::string(function) + ": unexpected exception: " + e.what()));
    } catch (...) {
      return StatusToCError(Status(code, std::string(function) + ": unexpected exception"));
    }
  } catch (...) {
    // Building or storing the message threw (out of memory): the code alone.
    ThreadLastError().clear();
    return -static_cast<int>(code);
  }
}

}  // namespace kvcake

extern "C" const char* kvcake_last_error(void) { return kvcake::LastError(); }
