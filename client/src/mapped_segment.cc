#include "client/src/mapped_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/status.h"

namespace kvcake::internal {

Result<std::unique_ptr<MappedSegment>> MappedSegment::Open(const std::string& path, uint64_t size,
                                                           uint64_t inode) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open segment " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = ErrnoToStatus(errno, "fstat segment");
    ::close(fd);
    return s;
  }
  if (static_cast<uint64_t>(st.st_ino) != inode || static_cast<uint64_t>(st.st_size) < size) {
    ::close(fd);
    return FailedPreconditionError("segment " + path + " is not the daemon's (inode/size differ)");
  }
  // MAP_POPULATE: fault the mapping in now, not on the first copy of each page.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (base == MAP_FAILED) return ErrnoToStatus(err, "mmap segment");
  return std::unique_ptr<MappedSegment>(new MappedSegment(static_cast<char*>(base), size));
}

MappedSegment::~MappedSegment() { ::munmap(base_, size_); }

}  // namespace kvcake::internal
