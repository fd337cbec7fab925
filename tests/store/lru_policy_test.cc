#include "policy/lru_policy.h"

#include <gtest/gtest.h>

namespace kvcake::policy {
namespace {

BlockKey K(uint64_t h) { return BlockKey{1, h, 0}; }
auto All() {
  return [](const BlockKey&) { return true; };
}

TEST(LruPolicyTest, VictimsAreLeastRecentFirst) {
  LruPolicy p;
  for (uint64_t i = 0; i < 5; ++i) p.OnInsert(K(i), Tier::kHost, 100, i);
  p.OnAccess(K(0), Tier::kHost, 10);  // 0 becomes most recent
  std::vector<BlockKey> v = p.SelectVictims(Tier::kHost, 250, All());
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0], K(1));
  EXPECT_EQ(v[1], K(2));
  EXPECT_EQ(v[2], K(3));
}

TEST(LruPolicyTest, RespectsEligibilityAndTier) {
  LruPolicy p;
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  p.OnInsert(K(2), Tier::kHost, 100, 2);
  p.OnInsert(K(3), Tier::kDevice, 100, 3);
  auto not1 = [](const BlockKey& k) { return k.hash != 1; };
  std::vector<BlockKey> v = p.SelectVictims(Tier::kHost, 1000, not1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], K(2));
  EXPECT_EQ(p.SelectVictims(Tier::kSsd, 1000, All()).size(), 0u);
}

TEST(LruPolicyTest, MoveChangesTier) {
  LruPolicy p;
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  p.OnMove(K(1), Tier::kHost, Tier::kSsd, 2);
  EXPECT_EQ(p.Size(Tier::kHost), 0u);
  EXPECT_EQ(p.Size(Tier::kSsd), 1u);
  p.OnRemove(K(1), Tier::kSsd);
  EXPECT_EQ(p.Size(Tier::kSsd), 0u);
}

TEST(LruPolicyTest, SecondHitAdmissionToSsd) {
  LruPolicy p;
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  EXPECT_TRUE(p.Admit(K(1), Tier::kHost));
  EXPECT_FALSE(p.Admit(K(1), Tier::kSsd));  // inserted once, never read
  p.OnAccess(K(1), Tier::kHost, 2);
  EXPECT_TRUE(p.Admit(K(1), Tier::kSsd));
  EXPECT_FALSE(p.Admit(K(99), Tier::kSsd));  // unknown
}

TEST(LruPolicyTest, GhostMakesReinsertASecondHit) {
  LruPolicy p;
  p.OnInsert(K(7), Tier::kHost, 100, 1);
  p.OnRemove(K(7), Tier::kHost);  // dropped
  p.OnInsert(K(7), Tier::kHost, 100, 2);
  EXPECT_TRUE(p.Admit(K(7), Tier::kSsd));
}

TEST(LruPolicyTest, AdmitAllOption) {
  LruPolicy p(LruPolicyOptions{.ssd_admission_hits = 1});
  p.OnInsert(K(1), Tier::kHost, 100, 1);
  EXPECT_TRUE(p.Admit(K(1), Tier::kSsd));
}

TEST(LruPolicyTest, GhostListIsBounded) {
  LruPolicy p(LruPolicyOptions{.ssd_admission_hits = 2, .ghost_entries = 2});
  for (uint64_t i = 0; i < 3; ++i) {
    p.OnInsert(K(i), Tier::kHost, 1, i);
    p.OnRemove(K(i), Tier::kHost);
  }
  p.OnInsert(K(0), Tier::kHost, 1, 10);  // forgotten: first hit again
  EXPECT_FALSE(p.Admit(K(0), Tier::kSsd));
  p.OnInsert(K(2), Tier::kHost, 1, 11);  // remembered
  EXPECT_TRUE(p.Admit(K(2), Tier::kSsd));
}

}  // namespace
}  // namespace kvcake::policy
