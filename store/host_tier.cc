#include "store/host_tier.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "common/logging.h"
#include "store/memfd_seal.h"

#if defined(KVCAKE_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace kvcake::store {

namespace {
constexpr uint64_t kHugePage = 2ull << 20;

// Tries to create and map a memfd of `size` bytes; returns false (errno set)
// on failure, cleaning up.
bool MapSegment(const std::string& name, uint64_t size, bool huge, int* fd_out, char** base_out) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0u);
  int fd = memfd_create(name.c_str(), flags);
  if (fd < 0) return false;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return false;
  }
  // Same-node clients open this file; none may shrink it (the daemon would
  // die of SIGBUS on its next access) or grow it.
  if (Status sealed = SealSize(fd); !sealed.ok()) {
    KVCAKE_LOG(WARNING) << "host tier: " << sealed.ToString()
                        << "; a process that opens the segment could resize it";
  }
  int mflags = MAP_SHARED | MAP_POPULATE;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, mflags, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    errno = e;
    return false;
  }
  *fd_out = fd;
  *base_out = static_cast<char*>(p);
  return true;
}
}  // namespace

Status HostTier::Options::Validate() const {
  if (num_slots == 0) return InvalidArgumentError("host tier: num_slots is 0");
  if (slot_bytes == 0 || slot_bytes % 4096 != 0) {
    return InvalidArgumentError("host tier: slot_bytes must be a positive multiple of 4096");
  }
  if (num_slots > (1u << 31)) return InvalidArgumentError("host tier: too many slots");
  return Status::Ok();
}

Result<std::unique_ptr<HostTier>> HostTier::Open(const Options& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<HostTier> t(new HostTier());
  t->name_ = options.name;
  t->slot_bytes_ = options.slot_bytes;
  t->num_slots_ = options.num_slots;
  uint64_t bytes = options.num_slots * options.slot_bytes;
  bool mapped = false;
  if (options.huge_pages) {
    uint64_t huge_size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    if (MapSegment(options.name, huge_size, true, &t->fd_, &t->base_)) {
      t->size_ = huge_size;
      t->huge_pages_ = true;
      mapped = true;
    } else {
      KVCAKE_LOG(INFO) << "host tier: huge pages unavailable ("
                       << ErrnoToStatus(errno, "memfd").ToString() << "), using normal pages";
    }
  }
  if (!mapped) {
    if (!MapSegment(options.name, bytes, false, &t->fd_, &t->base_)) {
      return ErrnoToStatus(errno,
                           "host tier: memfd segment of " + std::to_string(bytes) + " bytes");
    }
    t->size_ = bytes;
  }
#if defined(KVCAKE_HAVE_CUDA)
  if (options.cuda_register) {
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) {
      cudaError_t err = cudaHostRegister(t->base_, t->size_, cudaHostRegisterDefault);
      if (err == cudaSuccess) {
        t->cuda_registered_ = true;
      } else {
        KVCAKE_LOG(WARNING) << "host tier: cudaHostRegister failed: " << cudaGetErrorString(err);
      }
    } else {
      cudaGetLastError();
    }
  }
#endif
  KVCAKE_LOG(INFO) << "host tier: memfd '" << t->name_ << "' " << t->size_ << " bytes, "
                   << t->num_slots_ << " slots of " << t->slot_bytes_ << " bytes, huge pages "
                   << (t->huge_pages_ ? "on" : "off") << ", cuda registered "
                   << (t->cuda_registered_ ? "yes" : "no");
  return t;
}

HostTier::~HostTier() {
#if defined(KVCAKE_HAVE_CUDA)
  if (cuda_registered_) cudaHostUnregister(base_);
#endif
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

}  // namespace kvcake::store
