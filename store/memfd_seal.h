#pragma once

// Size seals for the memfd segments same-node clients map (the host tier's
// segment, the emulated device arena).

#include "common/status.h"

namespace kvcake::store {

// Adds F_SEAL_SHRINK | F_SEAL_GROW to `fd` (created with MFD_ALLOW_SEALING
// and already sized), then F_SEAL_SEAL so no process can change the seals.
// After it, ftruncate() of the file fails with EPERM in every process that
// opens it, so no client can make the daemon's mapping fault (SIGBUS).
// INTERNAL if the kernel refuses (e.g. a file system without sealing).
// Thread-safe.
Status SealSize(int fd);

}  // namespace kvcake::store
