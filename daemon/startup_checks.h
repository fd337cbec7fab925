#pragma once

// Checks kvcaked runs on its configuration before it allocates anything
// (host segment, GPU arena, RocksDB): each failure is one line naming the
// command-line flag to change.

#include <cstdint>
#include <string>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::daemon {

// UNAVAILABLE when nothing can bind `address` ("HOST:PORT") now: the port is
// in use, the host is not an address of this machine, or the port needs
// privileges. Port 0 (ephemeral) always passes. INVALID_ARGUMENT when
// `address` does not parse. Messages start with "--<flag> <address>".
Status CheckListenAddress(const std::string& flag, const std::string& address);

// FAILED_PRECONDITION when the SSD tier's directory cannot be used: it is not
// a directory, cannot be created or written, or another process holds its
// RocksDB LOCK (another kvcaked on the same --ssd_path). An empty path (no
// SSD tier) passes. Messages start with "--ssd_path <path>".
Status CheckSsdPath(const std::string& path);

// FAILED_PRECONDITION when `a` and `b` ("HOST:PORT", non-zero ports) would
// bind the same port: the same port on the same host, or on a wildcard host.
Status CheckDistinctPorts(const std::string& flag_a, const std::string& a,
                          const std::string& flag_b, const std::string& b);

// RESOURCE_EXHAUSTED when `bytes` of memory that kvcaked pre-faults at start
// (the host segment, plus an emulated GPU arena) exceed what this machine can
// give it: MemAvailable in `meminfo_path`, and the room left under the memory
// cgroup's limit (`cgroup_dir`/memory.max minus memory.current) when there is
// one. A start that would be killed by the OOM killer fails instead with a
// line naming `flag`. Missing files are not an error (no limit known).
Status CheckMemoryFits(const std::string& flag, uint64_t bytes,
                       const std::string& meminfo_path = "/proc/meminfo",
                       const std::string& cgroup_dir = "/sys/fs/cgroup");

// How a prefill daemon pushes hand-off values to their target
// (--handoff_transport, docs/operations.md "NCCL hand-offs").
enum class HandoffTransport {
  kUcx,   // over the daemon-to-daemon UCX RPC (staged through host memory)
  kNccl,  // GPU to GPU over NCCL where both ends hold a CUDA device tier
  kAuto,  // NCCL when this build has it, else UCX
};

// Parses --handoff_transport: "ucx", "nccl" or "auto". INVALID_ARGUMENT for
// any other value; FAILED_PRECONDITION for "nccl" when `nccl_built` is false
// (a kvcaked built without CUDA). Messages start with "--handoff_transport".
Result<HandoffTransport> ParseHandoffTransport(const std::string& value, bool nccl_built);

}  // namespace kvcake::daemon
