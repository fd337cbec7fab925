#include "policy/s3fifo_policy.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::All;
using testing::K;

TEST(S3FifoPolicyTest, OneHitWondersLeaveTheSmallQueueFirst) {
  S3FifoPolicy p;
  p.SetTierCapacity(Tier::kHost, 100);  // small queue: 10 bytes
  p.OnInsert(K(1), Tier::kHost, 10, 1);
  p.OnInsert(K(2), Tier::kHost, 10, 2);
  p.OnInsert(K(3), Tier::kHost, 10, 3);
  p.OnAccess(K(1), Tier::kHost, 4);  // 1 was reused while in S
  // S is over its share: its oldest, 1, moves to M; 2 (one hit) is the victim.
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 10, All()), std::vector<BlockKey>{K(2)});
  EXPECT_TRUE(p.InMain(K(1)));
  EXPECT_FALSE(p.InMain(K(3)));
}

TEST(S3FifoPolicyTest, GhostsAreReadmittedToMain) {
  S3FifoPolicy p;
  p.SetTierCapacity(Tier::kHost, 100);
  p.OnInsert(K(1), Tier::kHost, 10, 1);
  p.OnInsert(K(2), Tier::kHost, 10, 2);
  std::vector<BlockKey> v = p.SelectVictims(Tier::kHost, 10, All());
  ASSERT_EQ(v, std::vector<BlockKey>{K(1)});
  p.OnRemove(K(1), Tier::kHost);  // evicted from S: its key goes to G
  p.OnInsert(K(1), Tier::kHost, 10, 3);
  EXPECT_TRUE(p.InMain(K(1)));
  p.OnInsert(K(9), Tier::kHost, 10, 4);  // never seen: small queue
  EXPECT_FALSE(p.InMain(K(9)));
}

TEST(S3FifoPolicyTest, MainReinsertsReusedBlocks) {
  S3FifoPolicy p;
  p.SetTierCapacity(Tier::kHost, 1000);
  // Fill M through ghost readmission.
  for (uint64_t h = 1; h <= 3; ++h) {
    p.OnInsert(K(h), Tier::kHost, 10, h);
    p.OnRemove(K(h), Tier::kHost);
    p.OnInsert(K(h), Tier::kHost, 10, h);
  }
  // Ghost entries of removed S blocks go to G only from S; all three are in M.
  for (uint64_t h = 1; h <= 3; ++h) ASSERT_TRUE(p.InMain(K(h)));
  p.OnAccess(K(1), Tier::kHost, 10);  // M's oldest was reused: it gets another round
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 10, All()), std::vector<BlockKey>{K(2)});
  auto not2 = [](const BlockKey& k) { return k.hash != 2; };
  EXPECT_EQ(p.SelectVictims(Tier::kHost, 20, not2), (std::vector<BlockKey>{K(3), K(1)}));
}

}  // namespace
}  // namespace kvcake::policy
