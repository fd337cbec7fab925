// The parts of transport/nccl_channel.h that need no CUDA: option checks and
// the size handshake. Compiled in every build.

#include <string>

#include "transport/nccl_channel.h"

namespace kvcake::transport {

Status NcclChannelOptions::Validate() const {
  if (init_timeout.count() <= 0) return InvalidArgumentError("NCCL init_timeout must be > 0");
  if (transfer_timeout.count() <= 0) {
    return InvalidArgumentError("NCCL transfer_timeout must be > 0");
  }
  if (poll_interval.count() <= 0) return InvalidArgumentError("NCCL poll_interval must be > 0");
  if (max_group_buffers == 0) return InvalidArgumentError("NCCL max_group_buffers must be > 0");
  return Status::Ok();
}

Status CheckAnnouncedSizes(std::span<const uint64_t> announced,
                           std::span<const MutableBuffer> buffers, uint32_t max_buffers) {
  if (announced.empty()) return InvalidArgumentError("NCCL size handshake: no buffers announced");
  if (announced.size() > max_buffers) {
    return InvalidArgumentError("NCCL size handshake: " + std::to_string(announced.size()) +
                                " buffers announced, at most " + std::to_string(max_buffers));
  }
  if (announced.size() != buffers.size()) {
    return InvalidArgumentError("NCCL size handshake: " + std::to_string(announced.size()) +
                                " buffers announced, " + std::to_string(buffers.size()) +
                                " to receive into");
  }
  for (size_t i = 0; i < announced.size(); ++i) {
    if (announced[i] == 0) {
      return InvalidArgumentError("NCCL size handshake: buffer " + std::to_string(i) +
                                  " announced empty");
    }
    if (announced[i] != buffers[i].size) {
      return InvalidArgumentError("NCCL size handshake: buffer " + std::to_string(i) +
                                  " announced " + std::to_string(announced[i]) + " bytes, " +
                                  std::to_string(buffers[i].size) + " to receive into");
    }
  }
  return Status::Ok();
}

}  // namespace kvcake::transport
