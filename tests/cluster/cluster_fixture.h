#pragma once

// A gtest fixture shared by the cluster's end-to-end tests (header-only):
// a real etcd and three real kvcaked members "a", "b", "c" of cluster "test"
// on 127.0.0.1, UCX tcp between them.

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kvcake/client.h"
#include "tests/cluster/cluster_util.h"
#include "tests/cluster/etcd_harness.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"

namespace kvcake::cluster::testing {

// What a ClusterFixture starts and how its engines register.
struct ClusterFixtureOptions {
  std::string ns;            // the engines' namespace
  uint32_t layers = 1;       // its geometry: layers of
  uint64_t value_bytes = 0;  // value_bytes each
  uint64_t peer_timeout_ms = 0;
  // SetUp waits until members 0..watchers-1 each see all three members.
  size_t watchers = 3;
  std::string log_level = "warning";
  std::vector<std::string> extra_flags;  // more kvcaked flags for every member
};

// Skipped when /usr/bin/etcd is absent. Not thread-safe (the test's thread).
class ClusterFixture : public ::testing::Test {
 protected:
  // Engines register `ns` with `layers` layers of `value_bytes`; members
  // run with --peer_timeout_ms=`peer_timeout_ms`. A subclass may set the
  // rest of options_ in its constructor.
  ClusterFixture(std::string ns, uint32_t layers, uint64_t value_bytes, uint64_t peer_timeout_ms) {
    options_.ns = std::move(ns);
    options_.layers = layers;
    options_.value_bytes = value_bytes;
    options_.peer_timeout_ms = peer_timeout_ms;
  }

  void SetUp() override {
    if (!EtcdProcess::Available()) GTEST_SKIP() << "no /usr/bin/etcd";
    auto etcd = EtcdProcess::Start();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(etcd).value();
    token_file_ = dir_.path() + "/cluster.token";
    std::ofstream(token_file_) << "cluster-secret-for-tests\n";
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(StartMember(id));
    ASSERT_TRUE(WaitFor(
        [&] {
          for (size_t i = 0; i < options_.watchers; ++i) {
            if (MembersSeenBy(i) != 3) return false;
          }
          return true;
        },
        std::chrono::milliseconds(10000)));
  }

  // The flags of member `id`; its SSD directory is ssd-<id><dir_suffix>.
  std::vector<std::string> Flags(const std::string& id, const std::string& dir_suffix = "") {
    std::vector<std::string> flags = {
        "--cluster_etcd=" + etcd_->endpoint(),
        "--cluster_name=test",
        "--node_id=" + id,
        "--member_ttl_s=2",
        "--peer_timeout_ms=" + std::to_string(options_.peer_timeout_ms),
        "--cluster_token_file=" + token_file_,
        "--ucx_tls=tcp",
        "--io_threads=2",
        "--host_bytes=64MiB",
        "--slot_bytes=64KiB",
        "--expose_host_segment=false",
        "--ssd_path=" + dir_.path() + "/ssd-" + id + dir_suffix,
        "--ssd_bytes=256MiB",
        "--admin_listen=127.0.0.1:0",
        "--log_level=" + options_.log_level};
    flags.insert(flags.end(), options_.extra_flags.begin(), options_.extra_flags.end());
    return flags;
  }

  // Starts member `id` ("a" is members_[0]); false (and a test failure) if
  // it does not start.
  bool StartMember(const std::string& id) {
    auto d = kvcake::testing::DaemonProcess::Start(Flags(id));
    if (!d.ok()) {
      ADD_FAILURE() << id << ": " << d.status().ToString();
      return false;
    }
    const size_t i = static_cast<size_t>(id[0] - 'a');
    if (members_.size() <= i) members_.resize(i + 1);
    members_[i] = std::move(d).value();
    return true;
  }

  // Live, non-stale members daemon `i` sees (0 if its admin API fails).
  size_t MembersSeenBy(size_t i) { return LiveMembers(members_[i]->admin_address()); }

  // An engine talking to member `i`'s daemon, its namespace registered;
  // nullptr (and a test failure) otherwise.
  std::unique_ptr<Client> Engine(size_t i) {
    ClientOptions o = kvcake::testing::EngineOptions(members_[i]->address(), options_.ns);
    o.timeout = std::chrono::milliseconds(10000);
    auto c = kvcake::testing::ConnectEngine(
        o, kvcake::testing::TestGeometry(options_.layers, options_.value_bytes));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    return std::move(c).value();
  }

  ClusterFixtureOptions options_;
  kvcake::testing::TempDir dir_;
  std::string token_file_;
  std::unique_ptr<EtcdProcess> etcd_;
  std::vector<std::unique_ptr<kvcake::testing::DaemonProcess>> members_;
};

}  // namespace kvcake::cluster::testing
