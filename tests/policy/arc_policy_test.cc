#include "policy/arc_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "policy/lru_policy.h"
#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::All;
using testing::K;

// A 4-block host tier driven like the TierManager: room is made (victims
// dropped) before each insert of an untracked key.
class Driver {
 public:
  explicit Driver(Policy& p) : p_(p) { p_.SetTierCapacity(Tier::kHost, 4 * 10); }
  void Use(uint64_t h) {
    ++tick_;
    if (std::find(resident_.begin(), resident_.end(), h) != resident_.end()) {
      p_.OnAccess(K(h), Tier::kHost, tick_);
      return;
    }
    if (resident_.size() == 4) {
      std::vector<BlockKey> v = p_.SelectVictims(Tier::kHost, 10, All());
      ASSERT_EQ(v.size(), 1u);
      p_.OnRemove(v[0], Tier::kHost);
      evicted_.push_back(v[0].hash);
      std::erase(resident_, v[0].hash);
    }
    p_.OnInsert(K(h), Tier::kHost, 10, tick_);
    resident_.push_back(h);
  }
  bool Resident(uint64_t h) const {
    return std::find(resident_.begin(), resident_.end(), h) != resident_.end();
  }

 private:
  Policy& p_;
  std::vector<uint64_t> resident_, evicted_;
  uint64_t tick_ = 0;
};

TEST(ArcPolicyTest, ResistsAOneTimeScan) {
  ArcPolicy arc;
  LruPolicy lru;
  Driver a(arc), l(lru);
  for (Driver* d : {&a, &l}) {
    for (uint64_t h : {1, 2, 3, 4, 1, 2}) d->Use(h);  // 1 and 2 are reused
    for (uint64_t h = 100; h < 110; ++h) d->Use(h);   // a one-time scan
  }
  EXPECT_TRUE(arc.InT2(K(1)));
  EXPECT_TRUE(a.Resident(1));
  EXPECT_TRUE(a.Resident(2));
  EXPECT_FALSE(l.Resident(1));  // LRU lets the scan flush them
  EXPECT_FALSE(l.Resident(2));
}

TEST(ArcPolicyTest, GhostHitsAdaptTheTarget) {
  ArcPolicy arc;
  Driver a(arc);
  for (uint64_t h : {1, 2, 3, 4, 1, 2}) a.Use(h);
  EXPECT_EQ(arc.TargetT1Bytes(Tier::kHost), 0.0);
  a.Use(5);  // evicts 3 from T1 into B1
  EXPECT_FALSE(a.Resident(3));
  a.Use(3);  // B1 hit: T1 deserved more room
  EXPECT_GT(arc.TargetT1Bytes(Tier::kHost), 0.0);
  EXPECT_TRUE(arc.InT2(K(3)));
  const double grown = arc.TargetT1Bytes(Tier::kHost);
  // Push T2 blocks out into B2, then bring one back: the target shrinks.
  for (uint64_t h = 200; h < 212; ++h) a.Use(h);
  bool b2_hit = false;
  for (uint64_t h : {1, 2}) {
    if (!a.Resident(h)) {
      a.Use(h);
      b2_hit = true;
      break;
    }
  }
  ASSERT_TRUE(b2_hit);
  EXPECT_LT(arc.TargetT1Bytes(Tier::kHost), grown);
}

TEST(ArcPolicyTest, VictimsSkipIneligibleBlocks) {
  ArcPolicy arc;
  for (uint64_t h = 1; h <= 3; ++h) arc.OnInsert(K(h), Tier::kHost, 10, h);
  auto not1 = [](const BlockKey& k) { return k.hash != 1; };
  EXPECT_EQ(arc.SelectVictims(Tier::kHost, 20, not1), (std::vector<BlockKey>{K(2), K(3)}));
  EXPECT_EQ(arc.Size(Tier::kHost), 3u);
}

}  // namespace
}  // namespace kvcake::policy
