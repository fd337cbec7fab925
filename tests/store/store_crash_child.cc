// Helper for store_crash_test: opens a TierManager on an SSD directory and
// writes up to 400 blocks, then waits to be killed. For every block made durable through
// Evict(kSsd) it prints "D <hash>\n" on stdout (flushed) — after the SSD write returned. It also
// commits blocks without evicting them, so background demotions are in flight when the parent
// SIGKILLs it. Usage: store_crash_child <ssd_dir> <round>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/logging.h"
#include "policy/lru_policy.h"
#include "store/tier_manager.h"
#include "tests/store/store_crash_common.h"

int main(int argc, char** argv) {
  using namespace kvcake;
  using namespace kvcake::store;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <ssd_dir> <round>\n", argv[0]);
    return 2;
  }
  const uint64_t round = std::strtoull(argv[2], nullptr, 10);
  SetLogLevel(LogLevel::kWarning);
  TierManagerOptions o = crash::Options(argv[1]);
  auto tm = TierManager::Open(
      o, std::make_unique<policy::LruPolicy>(policy::LruPolicyOptions{.ssd_admission_hits = 1}));
  if (!tm.ok()) {
    std::fprintf(stderr, "open: %s\n", tm.status().ToString().c_str());
    return 1;
  }
  if (!(*tm)->RegisterNamespace(crash::Namespace()).ok()) return 1;
  std::vector<char> buf(crash::kSlot);
  for (uint64_t i = 0; i < 400; ++i) {
    BlockKey key = crash::Key(round, i);
    size_t size = crash::SizeOf(key);
    crash::Fill(key, buf.data(), size);
    if (!(*tm)->Put(key, buf.data(), size).ok()) continue;
    if (i % 3 == 2) continue;  // left to the mover (async demotion)
    if ((*tm)->Evict(key, Tier::kSsd).ok()) {
      char line[64];
      int n =
          std::snprintf(line, sizeof(line), "D %llu\n", static_cast<unsigned long long>(key.hash));
      if (write(1, line, n) != n) return 1;
    }
  }
  // Keep the mover running until the parent kills us.
  for (;;) pause();
}
