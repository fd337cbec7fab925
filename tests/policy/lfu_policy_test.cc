#include "policy/lfu_policy.h"

#include <gtest/gtest.h>

#include <vector>

#include "policy/lru_policy.h"
#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::All;
using testing::K;

// Evicts the first victim of `p` from the host tier (the owner drops it).
BlockKey EvictOne(Policy& p) {
  std::vector<BlockKey> v = p.SelectVictims(Tier::kHost, 1, All());
  EXPECT_EQ(v.size(), 1u);
  if (v.empty()) return BlockKey{};
  p.OnRemove(v[0], Tier::kHost);
  return v[0];
}

TEST(LfuPolicyTest, KeepsTheFrequentBlockOverTheRecentOne) {
  LfuPolicy lfu;
  LruPolicy lru;
  for (Policy* p : {static_cast<Policy*>(&lfu), static_cast<Policy*>(&lru)}) {
    p->OnInsert(K(1), Tier::kHost, 10, 1);
    for (uint64_t t = 2; t <= 4; ++t) p->OnAccess(K(1), Tier::kHost, t);
    p->OnInsert(K(2), Tier::kHost, 10, 5);
  }
  EXPECT_EQ(lfu.SelectVictims(Tier::kHost, 10, All()), std::vector<BlockKey>{K(2)});
  EXPECT_EQ(lru.SelectVictims(Tier::kHost, 10, All()), std::vector<BlockKey>{K(1)});
  // Ineligible blocks are skipped.
  auto not2 = [](const BlockKey& k) { return k.hash != 2; };
  EXPECT_EQ(lfu.SelectVictims(Tier::kHost, 10, not2), std::vector<BlockKey>{K(1)});
}

TEST(LfuPolicyTest, OldCountsAgeOut) {
  LfuPolicy p;
  p.OnInsert(K(1), Tier::kHost, 10, 1);
  for (uint64_t t = 2; t <= 6; ++t) p.OnAccess(K(1), Tier::kHost, t);  // 6 hits
  // A stream of blocks hit twice each: the first evictions take them, not
  // K(1); each raises L, until new blocks start above K(1)'s old count.
  uint64_t tick = 10;
  int rounds_until_old_evicted = -1;
  for (int round = 0; round < 20; ++round) {
    const BlockKey k = K(100 + round);
    p.OnInsert(k, Tier::kHost, 10, ++tick);
    p.OnAccess(k, Tier::kHost, ++tick);
    if (EvictOne(p) == K(1)) {
      rounds_until_old_evicted = round;
      break;
    }
  }
  EXPECT_GE(rounds_until_old_evicted, 2);
  EXPECT_LE(rounds_until_old_evicted, 6);
  EXPECT_GE(p.Inflation(Tier::kHost), 4.0);
  EXPECT_EQ(p.Inflation(Tier::kDevice), 0.0);
}

TEST(LfuPolicyTest, TiersAreSeparateAndMovesRequeue) {
  LfuPolicy p;
  p.OnInsert(K(1), Tier::kDevice, 10, 1);
  p.OnInsert(K(2), Tier::kDevice, 10, 2);
  p.OnAccess(K(2), Tier::kDevice, 3);
  p.OnMove(K(2), Tier::kDevice, Tier::kHost, 4);
  EXPECT_EQ(p.Size(Tier::kDevice), 1u);
  EXPECT_EQ(p.Size(Tier::kHost), 1u);
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 100, All()), std::vector<BlockKey>{K(1)});
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 100, All()), std::vector<BlockKey>{K(2)});
  // Leaving downwards raised the device tier's L to K(2)'s priority.
  EXPECT_DOUBLE_EQ(p.Inflation(Tier::kDevice), 2.0);
}

}  // namespace
}  // namespace kvcake::policy
