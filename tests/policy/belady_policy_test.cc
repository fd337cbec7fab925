#include "policy/belady_policy.h"

#include <gtest/gtest.h>

#include <vector>

namespace kvcake::policy {
namespace {

constexpr uint64_t kBytes = 10;
auto AnyKey = [](const BlockKey&) { return true; };

TEST(BeladyPolicy, EvictsTheFarthestNextUseFirst) {
  // Block 1 is used again at tick 5, block 2 at 3, block 3 never.
  BeladyPolicy p({{1, {0, 5}}, {2, {0, 3}}, {3, {0}}});
  EXPECT_EQ(p.NextUse(1, 0), 5u);
  EXPECT_EQ(p.NextUse(2, 3), BeladyPolicy::kNever);
  for (uint64_t h : {1, 2, 3}) p.OnInsert(BlockKey{1, h, 0}, Tier::kDevice, kBytes, 0);
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, 3 * kBytes, AnyKey),
            (std::vector<BlockKey>{{1, 3, 0}, {1, 1, 0}, {1, 2, 0}}));
  EXPECT_FALSE(p.Admit(BlockKey{1, 3, 0}, Tier::kHost));  // never used again: drop
  EXPECT_TRUE(p.Admit(BlockKey{1, 1, 0}, Tier::kHost));
  // After block 2's access at tick 3 it is never used again: first victim.
  p.OnAccess(BlockKey{1, 2, 0}, Tier::kDevice, 3);
  auto not3 = [](const BlockKey& k) { return k.hash != 3; };
  EXPECT_EQ(p.SelectVictims(Tier::kDevice, kBytes, not3), (std::vector<BlockKey>{{1, 2, 0}}));
  // Moves keep the next use; removed blocks are gone.
  p.OnMove(BlockKey{1, 1, 0}, Tier::kDevice, Tier::kHost, 3);
  EXPECT_EQ(p.SelectVictims(Tier::kHost, kBytes, AnyKey), (std::vector<BlockKey>{{1, 1, 0}}));
  p.OnRemove(BlockKey{1, 1, 0}, Tier::kHost);
  EXPECT_TRUE(p.SelectVictims(Tier::kHost, kBytes, AnyKey).empty());
}

}  // namespace
}  // namespace kvcake::policy
