// CheckMemoryFits against meminfo and cgroup files written by the test.
#include "daemon/startup_checks.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/store/store_test_util.h"

namespace kvcake::daemon {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(CheckMemoryFits, ComparesWithMemAvailable) {
  store::testing::TempDir dir;
  const std::string meminfo = dir.path() + "/meminfo";
  Write(meminfo, "MemTotal:       25165824 kB\nMemFree:  1000 kB\nMemAvailable:    8388608 kB\n");
  const std::string no_cgroup = dir.path() + "/none";
  EXPECT_TRUE(CheckMemoryFits("host_bytes", 8 * kGiB, meminfo, no_cgroup).ok());
  Status s = CheckMemoryFits("host_bytes", 8 * kGiB + 1, meminfo, no_cgroup);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message().rfind("--host_bytes needs 8.0 GiB", 0), 0u) << s.ToString();
  EXPECT_NE(s.message().find("8.0 GiB of available memory"), std::string::npos) << s.ToString();
}

TEST(CheckMemoryFits, TheCgroupLimitWinsWhenTighter) {
  store::testing::TempDir dir;
  const std::string meminfo = dir.path() + "/meminfo";
  Write(meminfo, "MemAvailable:    8388608 kB\n");
  Write(dir.path() + "/memory.max", std::to_string(4 * kGiB) + "\n");
  Write(dir.path() + "/memory.current", std::to_string(1 * kGiB) + "\n");
  EXPECT_TRUE(CheckMemoryFits("host_bytes", 3 * kGiB, meminfo, dir.path()).ok());
  Status s = CheckMemoryFits("host_bytes", 3 * kGiB + 4096, meminfo, dir.path());
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("cgroup"), std::string::npos) << s.ToString();
  // "max" is no limit: MemAvailable decides.
  Write(dir.path() + "/memory.max", "max\n");
  EXPECT_TRUE(CheckMemoryFits("host_bytes", 6 * kGiB, meminfo, dir.path()).ok());
}

TEST(CheckMemoryFits, NothingKnownIsNoLimit) {
  store::testing::TempDir dir;
  EXPECT_TRUE(CheckMemoryFits("host_bytes", 1ull << 50, dir.path() + "/no-meminfo",
                              dir.path() + "/no-cgroup")
                  .ok());
}

TEST(CheckMemoryFits, ThisMachineFitsASmallSegment) {
  EXPECT_TRUE(CheckMemoryFits("host_bytes", 64ull << 20).ok());
  EXPECT_FALSE(CheckMemoryFits("host_bytes", 1ull << 50).ok());
}

}  // namespace
}  // namespace kvcake::daemon
