#pragma once

// Helpers shared by the chaos tests: soak control, raw sockets, a minimal
// HTTP client for the admin port, the daemon's memory, byte flips on disk.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::chaos {

// KVCAKE_SOAK_S (seconds), 0 when unset.
int SoakSeconds();

// Drives a fault loop: at least `min_rounds` rounds in CI, and with
// KVCAKE_SOAK_S set, more rounds until that many seconds have passed.
//
//   for (SoakRounds r(4); r.Next();) { ... r.round() ... }
class SoakRounds {
 public:
  explicit SoakRounds(int min_rounds);
  // True while another round should run; counts it.
  bool Next();
  // Rounds started so far (1 in the first round).
  int round() const { return round_; }

 private:
  int min_rounds_;
  int round_ = 0;
  std::chrono::steady_clock::time_point end_;
};

// Deterministic bytes for (seed, index): what a tenant writes and expects.
std::vector<char> Pattern(uint64_t seed, uint64_t index, size_t bytes);

// Sends `bytes` to 127.0.0.1:`port` and closes (errors ignored: a port may
// refuse or reset; only the daemon's survival matters).
void SendRaw(uint16_t port, const std::string& bytes);

// A TCP connection to 127.0.0.1:`port`, non-blocking once connected; -1 on
// failure.
int ConnectTcp(uint16_t port);

// "HOST:PORT" -> PORT.
uint16_t PortOf(const std::string& address);

struct HttpReply {
  int status = 0;
  std::string body;
};
// GET `path` from the HTTP server at 127.0.0.1:`port` (Connection: close),
// the whole exchange bounded by `timeout`.
Result<HttpReply> HttpGet(uint16_t port, const std::string& path,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));
// POST `body` (JSON) to `path`, likewise.
Result<HttpReply> HttpPost(uint16_t port, const std::string& path, const std::string& body,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

// The value of metric `name` in Prometheus text `body`, summed over its
// label sets; NOT_FOUND if no sample has that name.
Result<double> MetricValue(const std::string& body, const std::string& name);

// Resident memory of process `pid` from /proc/<pid>/status, in bytes.
struct ProcMemory {
  uint64_t rss = 0;   // VmRSS (anonymous + file + shared memory)
  uint64_t hwm = 0;   // VmHWM: peak VmRSS
  uint64_t anon = 0;  // RssAnon: heap and stacks
};
Result<ProcMemory> ReadProcMemory(pid_t pid);

// XORs `count` bytes of `path` at `offset` with 0xA5 (offset is clamped so
// the bytes lie inside the file).
Status FlipBytes(const std::string& path, uint64_t offset, size_t count);

// Regular files directly in `dir` whose name ends in `suffix` or starts with
// `prefix` (either may be empty), sorted.
std::vector<std::string> FilesIn(const std::string& dir, const std::string& prefix,
                                 const std::string& suffix);

// Mounts a tmpfs of `size` (e.g. "64m") on `dir` (created if missing).
// FAILED_PRECONDITION with the reason when that is not possible here.
Status MountTmpfs(const std::string& dir, const std::string& size);
// Lazily unmounts `dir`.
Status Unmount(const std::string& dir);

}  // namespace kvcake::chaos
