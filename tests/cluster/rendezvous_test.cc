#include "cluster/rendezvous.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace kvcake::cluster {
namespace {

std::vector<MemberInfo> MembersNamed(const std::vector<std::string>& ids) {
  std::vector<MemberInfo> members;
  for (const std::string& id : ids) {
    MemberInfo info;
    info.node_id = id;
    members.push_back(info);
  }
  return members;
}

std::string KeyOf(int i) { return "ns/chain-root-" + std::to_string(i); }

TEST(RendezvousTest, EmptyMembersHaveNoOwner) { EXPECT_EQ(RendezvousOwner({}, "key"), nullptr); }

TEST(RendezvousTest, DeterministicAndIndependentOfOrder) {
  auto a = MembersNamed({"n1", "n2", "n3"});
  auto b = MembersNamed({"n3", "n1", "n2"});
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(RendezvousOwner(a, KeyOf(i))->node_id, RendezvousOwner(b, KeyOf(i))->node_id);
  }
}

TEST(RendezvousTest, ThreeMembersShareKeysEvenly) {
  auto members = MembersNamed({"node-a", "node-b", "node-c"});
  constexpr int kKeys = 30'000;
  std::map<std::string, int> owned;
  for (int i = 0; i < kKeys; ++i) ++owned[RendezvousOwner(members, KeyOf(i))->node_id];
  ASSERT_EQ(owned.size(), 3u);
  for (const auto& [id, count] : owned) {
    double share = static_cast<double>(count) / kKeys;
    EXPECT_NEAR(share, 1.0 / 3, 0.03) << id;
  }
}

TEST(RendezvousTest, OnlyTheLeaversKeysMove) {
  auto before = MembersNamed({"node-a", "node-b", "node-c", "node-d"});
  auto after = MembersNamed({"node-a", "node-b", "node-d"});
  constexpr int kKeys = 20'000;
  std::map<std::string, int> moved_to;
  int leaver_keys = 0;
  for (int i = 0; i < kKeys; ++i) {
    std::string old_owner = RendezvousOwner(before, KeyOf(i))->node_id;
    std::string new_owner = RendezvousOwner(after, KeyOf(i))->node_id;
    if (old_owner == "node-c") {
      ++leaver_keys;
      ++moved_to[new_owner];
    } else {
      EXPECT_EQ(old_owner, new_owner) << KeyOf(i);
    }
  }
  // The leaver's keys spread over all the others.
  ASSERT_EQ(moved_to.size(), 3u);
  for (const auto& [id, count] : moved_to) {
    EXPECT_NEAR(static_cast<double>(count) / leaver_keys, 1.0 / 3, 0.05) << id;
  }
}

TEST(RendezvousTest, AJoinerTakesOnlyKeysItWins) {
  auto before = MembersNamed({"node-a", "node-b"});
  auto after = MembersNamed({"node-a", "node-b", "node-c"});
  int taken = 0;
  constexpr int kKeys = 20'000;
  for (int i = 0; i < kKeys; ++i) {
    std::string old_owner = RendezvousOwner(before, KeyOf(i))->node_id;
    std::string new_owner = RendezvousOwner(after, KeyOf(i))->node_id;
    if (new_owner != old_owner) {
      EXPECT_EQ(new_owner, "node-c");
      ++taken;
    }
  }
  EXPECT_NEAR(static_cast<double>(taken) / kKeys, 1.0 / 3, 0.03);
}

}  // namespace
}  // namespace kvcake::cluster
