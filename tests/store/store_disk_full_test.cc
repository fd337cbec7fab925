// Disk full: the SSD tier on a small tmpfs (mounted by the test when running
// as root; skipped otherwise). Filling it gives a clear RESOURCE_EXHAUSTED,
// loses nothing committed, and leaves the store consistent.
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "policy/lru_policy.h"
#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

using testing::Payload;

constexpr uint64_t kSlot = 256 << 10;

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "not root: cannot mount a small tmpfs";
    mnt_ = dir_.Sub("mnt");
    std::filesystem::create_directories(mnt_);
    if (mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=12m") != 0) {
      GTEST_SKIP() << "mount tmpfs failed: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) {
      EXPECT_EQ(umount2(mnt_.c_str(), MNT_DETACH), 0) << std::strerror(errno);
    }
  }

  testing::TempDir dir_;
  std::string mnt_;
  bool mounted_ = false;
};

TEST_F(DiskFullTest, FullDiskIsResourceExhaustedAndLosesNothing) {
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.host_capacity_bytes = 128 * kSlot;  // 32 MiB: more than the disk
  o.ssd_path = mnt_ + "/ssd";
  o.ssd_write_buffer_bytes = 1 << 20;
  o.host_huge_pages = false;
  o.device_allow_cuda = false;
  o.mover_interval_us = 1000;
  auto tm_or = TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm_or.ok()) << tm_or.status().ToString();
  TierManager& tm = **tm_or;
  ASSERT_TRUE(tm.RegisterNamespace(testing::TestNamespace(42, kSlot, 1)).ok());

  std::vector<BlockKey> on_ssd, in_host;
  Status full;
  for (uint64_t i = 0; i < 100; ++i) {
    BlockKey k{42, i, 0};
    ASSERT_TRUE(tm.Put(k, Payload(k, kSlot).data(), kSlot).ok());
    Status s = tm.Evict(k, Tier::kSsd);
    if (s.ok()) {
      on_ssd.push_back(k);
      continue;
    }
    full = s;
    in_host.push_back(k);
    break;
  }
  ASSERT_FALSE(full.ok()) << "12 MiB disk never filled";
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_GT(on_ssd.size(), 0u);
  StoreStats s = tm.GetStats();
  EXPECT_GT(s.ssd_write_errors, 0u);
  // Nothing committed is lost: SSD blocks and the block that could not be
  // demoted are all served bit-exact.
  std::vector<char> out(kSlot);
  for (const auto* keys : {&on_ssd, &in_host}) {
    for (const BlockKey& k : *keys) {
      auto r = tm.Get(k, out.data(), out.size());
      ASSERT_TRUE(r.ok()) << k.ToString() << ": " << r.status().ToString();
      EXPECT_TRUE(out == Payload(k, kSlot)) << k.ToString();
    }
  }
  // Consistent state: the failed block is still a committed host block, and
  // new puts to host still work.
  auto blocks = tm.ListBlocks({});
  EXPECT_EQ(blocks.size(), on_ssd.size() + in_host.size());
  BlockKey extra{42, 1000, 0};
  EXPECT_TRUE(tm.Put(extra, Payload(extra, kSlot).data(), kSlot).ok());
  EXPECT_EQ(tm.GetStats().tiers[2].blocks, on_ssd.size());
}

}  // namespace
}  // namespace kvcake::store
