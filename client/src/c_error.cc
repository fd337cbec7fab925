#include "client/src/c_error.h"

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

}  // namespace kvcake

extern "C" const char* kvcake_last_error(void) { return kvcake::LastError(); }
