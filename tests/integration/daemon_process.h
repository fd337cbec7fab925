#pragma once

// Test helper: runs the real kvcaked binary ($KVCAKE_BIN_DIR/kvcaked) as a
// child process on an ephemeral port and stops it with SIGTERM.

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::testing {

// A unique, empty temp directory removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One kvcaked child process. Not thread-safe.
class DaemonProcess {
 public:
  // Starts kvcaked with --listen=127.0.0.1:0 plus `flags` and waits (up to
  // 30 s) for its "kvcaked listening on HOST:PORT" line.
  static Result<std::unique_ptr<DaemonProcess>> Start(const std::vector<std::string>& flags);
  // Kills the daemon (SIGKILL) if still running.
  ~DaemonProcess();

  const std::string& address() const { return address_; }
  // The admin HTTP address when started with --admin_listen, else "".
  const std::string& admin_address() const { return admin_address_; }
  uint16_t port() const;
  pid_t pid() const { return pid_; }
  // SIGTERM and wait (up to `timeout_s`); the exit status (0 = clean).
  Result<int> Stop(int timeout_s = 60);
  // True while the process runs.
  bool Alive();

 private:
  DaemonProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string admin_address_;
};

// The kvcaked binary ($KVCAKE_BIN_DIR/kvcaked, else ./build/release/bin).
std::string KvcakedPath();

}  // namespace kvcake::testing
