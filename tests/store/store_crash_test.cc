// Crash test: a child process writes and demotes blocks to SSD and is killed
// with SIGKILL at random points, 20+ rounds. After each kill the store is
// reopened: every block whose SSD write completed (reported by the child) is
// served bit-exact, and no block ever comes back torn or corrupt.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "store/tier_manager.h"
#include "tests/store/store_crash_common.h"

extern char** environ;

namespace kvcake::store {
namespace {

std::string ChildPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "store_crash_child").string();
}

TEST(StoreCrashTest, SigkillAtRandomPointsNeverLosesCommittedOrReturnsCorrupt) {
  const std::string child = ChildPath();
  ASSERT_TRUE(std::filesystem::exists(child)) << child;
  testing::TempDir dir;
  const std::string ssd = dir.Sub("ssd");
  const unsigned seed = std::random_device{}();
  std::printf("crash test seed %u\n", seed);
  std::mt19937 rng(seed);
  std::set<uint64_t> durable;  // hashes reported durable, all rounds
  uint64_t verified_total = 0;
  constexpr int kRounds = 20;
  for (int round = 1; round <= kRounds; ++round) {
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    std::string round_arg = std::to_string(round);
    char* argv[] = {const_cast<char*>(child.c_str()), const_cast<char*>(ssd.c_str()),
                    round_arg.data(), nullptr};
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, child.c_str(), &fa, nullptr, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    // Let it run 20..400 ms (some rounds die during open / recovery).
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 380));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status)) << "child exited on its own, status " << status;
    // Collect every complete report line.
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) out.append(buf, n);
    close(pipefd[0]);
    size_t pos = 0;
    while (true) {
      size_t nl = out.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn last line is ignored
      if (out[pos] == 'D') durable.insert(std::stoull(out.substr(pos + 2, nl - pos - 2)));
      pos = nl + 1;
    }
    // Reopen and verify.
    auto tm = TierManager::Open(crash::Options(ssd), nullptr);
    ASSERT_TRUE(tm.ok()) << "round " << round << ": " << tm.status().ToString();
    ASSERT_TRUE((*tm)->RegisterNamespace(crash::Namespace()).ok());
    std::vector<char> got(crash::kSlot), want(crash::kSlot);
    // This round's blocks always; older ones sampled (all of them in the last round).
    const bool last = round == kRounds;
    for (uint64_t h : durable) {
      if (!last && (h >> 32) != static_cast<uint64_t>(round) && rng() % 16 != 0) continue;
      BlockKey k{crash::kNs, h, 0};
      auto r = (*tm)->Get(k, got.data(), got.size());
      ASSERT_TRUE(r.ok()) << "round " << round << ": durable block " << k.ToString()
                          << " lost: " << r.status().ToString();
      size_t size = crash::SizeOf(k);
      ASSERT_EQ(*r, size);
      crash::Fill(k, want.data(), size);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), size), 0) << k.ToString();
      ++verified_total;
    }
    // Anything else present (async demotions that landed) is exact too.
    BlockFilter all;
    all.limit = 1 << 20;
    for (const BlockInfo& b : (*tm)->ListBlocks(all)) {
      if (!last && (b.key.hash >> 32) != static_cast<uint64_t>(round) && rng() % 16 != 0) {
        continue;
      }
      auto r = (*tm)->Get(b.key, got.data(), got.size());
      if (!r.ok()) {
        ADD_FAILURE() << "listed block unreadable: " << r.status().ToString();
        continue;
      }
      size_t size = crash::SizeOf(b.key);
      ASSERT_EQ(*r, size);
      crash::Fill(b.key, want.data(), size);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), size), 0) << b.key.ToString();
    }
    EXPECT_EQ((*tm)->GetStats().checksum_failures, 0u);
  }
  EXPECT_GT(durable.size(), 0u);
  RecordProperty("durable_blocks", static_cast<int>(durable.size()));
  std::printf("crash test: %d rounds, %zu durable blocks verified (%llu reads)\n", kRounds,
              durable.size(), static_cast<unsigned long long>(verified_total));
}

}  // namespace
}  // namespace kvcake::store
