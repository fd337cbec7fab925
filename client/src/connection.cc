#include "client/src/connection.h"

#include <string>
#include <utility>

#include "client/src/wire.h"
#include "common/bulk_copy.h"
#ifdef KVCAKE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kvcake::internal {

Connection::~Connection() {
  rpc.reset();  // before the segments: cancelled callbacks must not find them gone
#ifdef KVCAKE_HAVE_CUDA
  if (device_ipc_base != nullptr) (void)cudaIpcCloseMemHandle(device_ipc_base);
#endif
}

Result<std::vector<uint8_t>> Connection::Call(transport::RpcOp op, const std::string& meta,
                                              std::chrono::milliseconds timeout) {
  transport::CallRequest call = MakeCall(op, meta, timeout);
  transport::RpcReply reply = rpc->Call(call);
  if (!reply.status.ok()) {
    Note(reply.status);
    return reply.status.WithContext(std::string("kvcake ") +
                                    std::string(transport::RpcOpName(call.opcode)));
  }
  return std::move(reply.meta);
}

bool Connection::CopyFromDeviceSegment(uint64_t offset, void* dst, uint64_t size) const {
  if (device_segment) {
    const char* src = device_segment->At(offset, size);
    if (src == nullptr) return false;
    BulkCopy(dst, src, size);
    return true;
  }
#ifdef KVCAKE_HAVE_CUDA
  if (device_ipc_base != nullptr && offset <= device_ipc_bytes &&
      size <= device_ipc_bytes - offset) {
    return cudaMemcpy(dst, device_ipc_base + offset, size, cudaMemcpyDefault) == cudaSuccess;
  }
#endif
  return false;
}

}  // namespace kvcake::internal
