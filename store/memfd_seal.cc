#include "store/memfd_seal.h"

#include <fcntl.h>

#include <cerrno>

namespace kvcake::store {

Status SealSize(int fd) {
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return ErrnoToStatus(errno, "sealing the segment's size (F_ADD_SEALS)");
  }
  return Status::Ok();
}

}  // namespace kvcake::store
