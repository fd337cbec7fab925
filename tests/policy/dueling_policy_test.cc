#include "policy/dueling_policy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "policy/gdsf_policy.h"
#include "policy/lru_policy.h"
#include "tests/policy/policy_test_keys.h"

namespace kvcake::policy {
namespace {

using testing::All;
using testing::K;

constexpr uint64_t kBytes = 1 << 20;
constexpr size_t kCapacity = 64;  // blocks the one tier holds

// One tier of kCapacity blocks (host by default) in front of nothing: a miss
// inserts the block, and a full tier drops the policy's victims.
class OneTier {
 public:
  explicit OneTier(Policy* p, Tier tier = Tier::kHost) : p_(p), tier_(tier) {
    p_->SetTierCapacity(tier_, kCapacity * kBytes);
  }

  void Access(uint64_t hash) {
    ++tick_;
    if (resident_.count(hash) != 0) {
      p_->OnAccess(K(hash), tier_, tick_);
      return;
    }
    ++misses_;
    if (resident_.size() == kCapacity) {
      const std::vector<BlockKey> victims = p_->SelectVictims(tier_, kBytes, All());
      ASSERT_FALSE(victims.empty());
      for (const BlockKey& v : victims) {
        ASSERT_EQ(resident_.erase(v.hash), 1u) << "victim not resident";
        p_->OnRemove(v, tier_);
      }
    }
    resident_.insert(hash);
    p_->OnInsert(K(hash), tier_, kBytes, tick_);
  }
  uint64_t misses() const { return misses_; }

 private:
  Policy* p_;
  Tier tier_;
  std::unordered_set<uint64_t> resident_;
  uint64_t tick_ = 0;
  uint64_t misses_ = 0;
};

// Working sets that move on: each phase reads a fresh set of 48 blocks 12
// times over. The old sets' many hits keep them in a frequency ranking long
// after they went cold; recency drops them at once.
void ShiftingWorkingSets(OneTier& t, uint64_t first_phase, int phases) {
  for (int ph = 0; ph < phases; ++ph) {
    const uint64_t base = (first_phase + ph) * 1000;
    for (int round = 0; round < 12; ++round) {
      for (uint64_t i = 0; i < 48; ++i) t.Access(base + i);
    }
  }
}

// A hot set of 16 blocks read between scans of blocks read once (four
// scan blocks after each hot read, so 80 between two reads of a hot block):
// recency lets the scans push the hot set out, frequency keeps it.
void HotSetUnderScans(OneTier& t, uint64_t scan_base, int rounds) {
  uint64_t scan = scan_base;
  for (int round = 0; round < rounds; ++round) {
    for (uint64_t i = 0; i < 16; ++i) {
      t.Access(i + 1);
      for (int s = 0; s < 4; ++s) t.Access(scan++);
    }
  }
}

struct Misses {
  uint64_t lru, gdsf, dueling;
};

template <typename Pattern>
Misses RunAll(const Pattern& pattern, DuelingPolicy* dueling) {
  LruPolicy lru;
  GdsfPolicy gdsf;
  OneTier a(&lru), b(&gdsf), c(dueling);
  pattern(a);
  pattern(b);
  pattern(c);
  return {a.misses(), b.misses(), c.misses()};
}

TEST(DuelingPolicyTest, FollowsRecencyWhenWorkingSetsMoveOn) {
  DuelingPolicy d({}, {});
  EXPECT_EQ(d.Leader(Tier::kHost), DuelingPolicy::kGdsf);  // the start
  const Misses m = RunAll([](OneTier& t) { ShiftingWorkingSets(t, 1, 30); }, &d);
  ASSERT_LT(m.lru, m.gdsf) << "the pattern must favour recency";
  EXPECT_EQ(d.Leader(Tier::kHost), DuelingPolicy::kLru);
  EXPECT_LT(d.Charge(Tier::kHost, DuelingPolicy::kLru),
            d.Charge(Tier::kHost, DuelingPolicy::kGdsf));
  // Close to the better expert: the charges have to build up first.
  EXPECT_LE(m.dueling, m.lru + (m.gdsf - m.lru) / 4) << m.lru << " " << m.gdsf;
}

TEST(DuelingPolicyTest, FollowsFrequencyWhenScansWouldFlushTheHotSet) {
  DuelingPolicy d({}, {});
  const Misses m = RunAll([](OneTier& t) { HotSetUnderScans(t, 1'000'000, 60); }, &d);
  ASSERT_LT(m.gdsf, m.lru) << "the pattern must favour frequency";
  EXPECT_EQ(d.Leader(Tier::kHost), DuelingPolicy::kGdsf);
  EXPECT_LE(m.dueling, m.gdsf + (m.lru - m.gdsf) / 4) << m.gdsf << " " << m.lru;
}

TEST(DuelingPolicyTest, SwitchesBackWhenTheWorkloadChanges) {
  DuelingPolicy d({}, {});
  OneTier t(&d);
  ShiftingWorkingSets(t, 1, 30);
  ASSERT_EQ(d.Leader(Tier::kHost), DuelingPolicy::kLru);
  HotSetUnderScans(t, 1'000'000, 120);
  EXPECT_EQ(d.Leader(Tier::kHost), DuelingPolicy::kGdsf);
}

TEST(DuelingPolicyTest, TiersThatDoNotDuelFollowGdsf) {
  // The GPU tier does not duel by default: under the pattern that makes the
  // host tier switch to LRU it keeps GDSF's choices, miss for miss.
  DuelingPolicy d({}, {});
  GdsfPolicy gdsf;
  OneTier a(&d, Tier::kDevice), b(&gdsf, Tier::kDevice);
  ShiftingWorkingSets(a, 1, 30);
  ShiftingWorkingSets(b, 1, 30);
  EXPECT_EQ(d.Leader(Tier::kDevice), DuelingPolicy::kGdsf);
  EXPECT_EQ(a.misses(), b.misses());
  // Asked to, it duels there too.
  DuelingPolicy both({}, {}, {.duel = {true, true, false}});
  OneTier c(&both, Tier::kDevice);
  ShiftingWorkingSets(c, 1, 30);
  EXPECT_EQ(both.Leader(Tier::kDevice), DuelingPolicy::kLru);
  EXPECT_LT(c.misses(), b.misses());
}

TEST(DuelingPolicyTest, VictimsAreEligibleAndFreeEnough) {
  DuelingPolicy d({}, {});
  d.SetTierCapacity(Tier::kDevice, 8 * kBytes);
  for (uint64_t i = 1; i <= 8; ++i) d.OnInsert(K(i), Tier::kDevice, kBytes, i);
  auto odd = [](const BlockKey& k) { return k.hash % 2 == 1; };
  const std::vector<BlockKey> v = d.SelectVictims(Tier::kDevice, 3 * kBytes, odd);
  ASSERT_EQ(v.size(), 3u);
  for (const BlockKey& k : v) EXPECT_EQ(k.hash % 2, 1u);
  EXPECT_TRUE(
      d.SelectVictims(Tier::kDevice, kBytes, [](const BlockKey&) { return false; }).empty());
  ASSERT_TRUE(d.Lookup(K(2)).has_value());
  EXPECT_EQ(d.Lookup(K(2))->tier, Tier::kDevice);
}

}  // namespace
}  // namespace kvcake::policy
