#include "store/device_tier.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/logging.h"
#include "store/memfd_seal.h"

#if defined(KVCAKE_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace kvcake::store {

#if defined(KVCAKE_HAVE_CUDA)
namespace {
Status CudaToStatus(cudaError_t err, const char* what) {
  return InternalError(std::string(what) + ": " + cudaGetErrorString(err));
}
}  // namespace
#endif

Status DeviceTier::Options::Validate() const {
  if (num_slots == 0) return InvalidArgumentError("device tier: num_slots is 0");
  if (slot_bytes == 0) return InvalidArgumentError("device tier: slot_bytes is 0");
  return Status::Ok();
}

bool DeviceTier::WouldEmulate(const Options& options) {
#if defined(KVCAKE_HAVE_CUDA)
  if (!options.allow_cuda) return true;
  int n = 0;
  if (cudaGetDeviceCount(&n) == cudaSuccess && n > options.cuda_device) return false;
  cudaGetLastError();  // clear the sticky "no device" error
#endif
  return true;
}

Result<std::unique_ptr<DeviceTier>> DeviceTier::Open(const Options& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<DeviceTier> t(new DeviceTier());
  t->slot_bytes_ = options.slot_bytes;
  t->num_slots_ = options.num_slots;
  t->cuda_device_ = options.cuda_device;
  const uint64_t bytes = options.slot_bytes * options.num_slots;
#if defined(KVCAKE_HAVE_CUDA)
  if (options.allow_cuda) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaSuccess && n > options.cuda_device) {
      err = cudaSetDevice(options.cuda_device);
      void* p = nullptr;
      if (err == cudaSuccess) err = cudaMalloc(&p, bytes);
      if (err != cudaSuccess) return CudaToStatus(err, "device tier: cudaMalloc");
      t->base_ = static_cast<char*>(p);
      t->is_cuda_ = true;
      KVCAKE_LOG(INFO) << "device tier: CUDA arena on device " << options.cuda_device << ", "
                       << t->num_slots_ << " slots of " << t->slot_bytes_ << " bytes";
      return t;
    }
    cudaGetLastError();  // clear the sticky "no device" error
    KVCAKE_LOG(INFO) << "device tier: no CUDA device at runtime, using the emulated device";
  }
#endif
  // Emulated: host memory in a memfd, so same-node clients can map the arena
  // the way a CUDA client opens the real one by IPC handle.
  const uint64_t rounded = (bytes + 4095) / 4096 * 4096;
  const int fd = ::memfd_create("kvcake-gpu-emulated", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(rounded)) == 0) {
    if (Status sealed = SealSize(fd); !sealed.ok()) {
      KVCAKE_LOG(WARNING) << "device tier: emulated arena: " << sealed.ToString();
    }
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p != MAP_FAILED) {
      t->base_ = static_cast<char*>(p);
      t->emulated_fd_ = fd;
      t->mapped_bytes_ = rounded;
    }
  }
  if (t->base_ == nullptr) {
    if (fd >= 0) ::close(fd);
    KVCAKE_LOG(WARNING) << "device tier: emulated arena: memfd unavailable ("
                        << std::strerror(errno) << "), same-node clients cannot map it";
    void* p = std::aligned_alloc(4096, rounded);
    if (p == nullptr)
      return ResourceExhaustedError("device tier: emulated arena allocation failed");
    t->base_ = static_cast<char*>(p);
  }
  KVCAKE_LOG(INFO) << "device tier: emulated device (host memory"
                   << (t->emulated_fd_ >= 0 ? ", memfd" : "") << "), " << t->num_slots_
                   << " slots of " << t->slot_bytes_ << " bytes";
  return t;
}

DeviceTier::~DeviceTier() {
  if (base_ == nullptr) return;
#if defined(KVCAKE_HAVE_CUDA)
  if (is_cuda_) {
    cudaFree(base_);
    return;
  }
#endif
  if (mapped_bytes_ > 0) {
    ::munmap(base_, mapped_bytes_);
    ::close(emulated_fd_);
    return;
  }
  std::free(base_);
}

Result<std::string> DeviceTier::IpcHandle() const {
#if defined(KVCAKE_HAVE_CUDA)
  if (is_cuda_) {
    cudaIpcMemHandle_t h;
    cudaError_t err = cudaIpcGetMemHandle(&h, base_);
    if (err != cudaSuccess) return CudaToStatus(err, "device tier: cudaIpcGetMemHandle");
    return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
  }
#endif
  return UnimplementedError("device tier: emulated device has no CUDA IPC handle");
}

bool DeviceTier::InArena(uint64_t offset, uint64_t n) const {
  return offset <= size() && n <= size() - offset;
}

Status DeviceTier::CopyInAt(uint64_t offset, const void* src, uint64_t n) const {
  if (!InArena(offset, n)) return InvalidArgumentError("device tier: copy past the arena's end");
#if defined(KVCAKE_HAVE_CUDA)
  if (is_cuda_) {
    cudaError_t err = cudaMemcpy(PtrAt(offset), src, n, cudaMemcpyDefault);
    if (err != cudaSuccess) return CudaToStatus(err, "device tier: cudaMemcpy in");
    return Status::Ok();
  }
#endif
  std::memcpy(PtrAt(offset), src, n);
  return Status::Ok();
}

Status DeviceTier::CopyOutAt(uint64_t offset, void* dst, uint64_t n) const {
  if (!InArena(offset, n)) return InvalidArgumentError("device tier: copy past the arena's end");
#if defined(KVCAKE_HAVE_CUDA)
  if (is_cuda_) {
    cudaError_t err = cudaMemcpy(dst, PtrAt(offset), n, cudaMemcpyDefault);
    if (err != cudaSuccess) return CudaToStatus(err, "device tier: cudaMemcpy out");
    return Status::Ok();
  }
#endif
  std::memcpy(dst, PtrAt(offset), n);
  return Status::Ok();
}

}  // namespace kvcake::store
