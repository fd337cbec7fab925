#pragma once

// Test helper: runs the real etcd (/usr/bin/etcd) as a child process on free
// 127.0.0.1 ports with its data in a fresh temp directory.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::cluster::testing {

inline constexpr char kEtcdBinary[] = "/usr/bin/etcd";

// A free 127.0.0.1 TCP port (bound to port 0 and closed again; another
// process could take it meanwhile, which the tests accept).
uint16_t FreePort();

// One single-member etcd. Not thread-safe.
class EtcdProcess {
 public:
  // True if /usr/bin/etcd exists (tests GTEST_SKIP otherwise).
  static bool Available();

  // Starts etcd and waits (up to 10 s) until it serves a range. UNAVAILABLE
  // with the tail of its log if it exits or does not get ready.
  static Result<std::unique_ptr<EtcdProcess>> Start();

  // Kills etcd (SIGKILL) if it runs and removes the data directory.
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // "http://127.0.0.1:<client port>".
  std::string endpoint() const;
  uint16_t client_port() const { return client_port_; }

  // SIGTERM, then SIGKILL after 5 s; waits for the exit.
  void Stop();
  // SIGKILL; waits for the exit.
  void Kill();
  // Stops etcd if it runs, then starts it again on the same ports and data
  // directory and waits until it is ready.
  Status Restart();
  bool Running() const { return pid_ > 0; }

 private:
  EtcdProcess() = default;
  Status Spawn();
  Status WaitReady();
  void Signal(int sig, int wait_ms);
  std::string LogTail() const;

  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
};

// Fixture: a fresh etcd per test (etcd_), or the test is skipped when
// /usr/bin/etcd is not installed.
class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override;

  std::unique_ptr<EtcdProcess> etcd_;
};

}  // namespace kvcake::cluster::testing
