// NcclCommPool in a build without CUDA (KVCAKE_HAVE_CUDA off): the same
// interface, every operation UNIMPLEMENTED, so the daemon's choice between
// NCCL and UCX builds either way.

#include "transport/nccl_channel.h"

namespace kvcake::transport {
namespace {

Status NotBuilt() { return UnimplementedError("NCCL hand-off channel: built without CUDA"); }

}  // namespace

class NcclCommPool::Impl {};

bool NcclCommPool::Built() { return false; }

NcclCommPool::NcclCommPool(NcclChannelOptions options) : options_(options) {}
NcclCommPool::~NcclCommPool() = default;

Status NcclCommPool::Connect(const NcclPeer&, const ExchangeFn&) { return NotBuilt(); }
Status NcclCommPool::Join(const NcclPeer&, const NcclUniqueId&) { return NotBuilt(); }
Status NcclCommPool::Send(const NcclPeer&, std::span<const ConstBuffer>, const ExchangeFn&,
                          const AnnounceFn&) {
  return NotBuilt();
}
Status NcclCommPool::Receive(const NcclPeer&, std::span<const uint64_t>,
                             std::span<const MutableBuffer>) {
  return NotBuilt();
}
Status NcclCommPool::Loopback(int, std::span<const ConstBuffer>, std::span<const MutableBuffer>) {
  return NotBuilt();
}
void NcclCommPool::Drop(const NcclPeer&) {}
size_t NcclCommPool::size() const { return 0; }
NcclChannelStats NcclCommPool::stats() const { return {}; }

}  // namespace kvcake::transport
