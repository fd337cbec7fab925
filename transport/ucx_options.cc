#include "transport/ucx_options.h"

#include <string>

namespace kvcake::transport {

Result<UcxTransport> ParseUcxTransport(std::string_view text) {
  if (text == "tcp") return UcxTransport::kTcp;
  if (text == "shm" || text == "sm" || text == "shared_memory") return UcxTransport::kSharedMemory;
  return InvalidArgumentError("unknown UCX transport '" + std::string(text) +
                              "' (expected tcp or shm)");
}

std::string UcxOptions::Tls() const {
  switch (transport) {
    case UcxTransport::kTcp:
      return "tcp";
    case UcxTransport::kSharedMemory:
      return "posix,sysv,cma,tcp";
    case UcxTransport::kCustom:
      return custom_tls;
  }
  return "tcp";
}

Status UcxOptions::Validate() const {
  if (transport == UcxTransport::kCustom && custom_tls.empty()) {
    return InvalidArgumentError("UcxOptions.custom_tls must be set when transport is custom");
  }
  if (busy_poll.count() < 0 || busy_poll > std::chrono::seconds(1)) {
    return InvalidArgumentError("UcxOptions.busy_poll must be 0..1 s");
  }
  for (const auto& [name, value] : extra_config) {
    if (name.empty()) return InvalidArgumentError("UcxOptions.extra_config has an empty name");
    if (name.rfind("UCX_", 0) == 0) {
      return InvalidArgumentError("UcxOptions.extra_config names go without the UCX_ prefix: " +
                                  name);
    }
  }
  return Status::Ok();
}

}  // namespace kvcake::transport
