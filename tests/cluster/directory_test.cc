#include "cluster/directory.h"

#include <gtest/gtest.h>

#include <vector>

namespace kvcake::cluster {
namespace {

using transport::ChainRecord;

TEST(DirectoryTest, LongestPublishedPrefixWinsAndTheAskerIsNeverNamed) {
  Directory d(16);
  d.Publish("a", ChainRecord{7, 100, 0, {100, 101, 102}});
  d.Publish("b", ChainRecord{7, 100, 0, {100, 101, 102, 103, 104}});
  const std::vector<uint64_t> chain = {100, 101, 102, 103, 104, 105};
  Directory::Hit hit = d.Lookup(7, 0, chain, "c");
  EXPECT_EQ(hit.holder, "b");
  EXPECT_EQ(hit.prefix_len, 5u);
  hit = d.Lookup(7, 0, chain, "b");  // b asks: a is the best other holder
  EXPECT_EQ(hit.holder, "a");
  EXPECT_EQ(hit.prefix_len, 3u);
  // Another layer, namespace or root is another entry.
  EXPECT_TRUE(d.Lookup(7, 1, chain, "c").holder.empty());
  EXPECT_TRUE(d.Lookup(8, 0, chain, "c").holder.empty());
  EXPECT_TRUE(d.Lookup(7, 0, std::vector<uint64_t>{101, 102}, "c").holder.empty());
}

TEST(DirectoryTest, HoldersListsEveryHolderLongestFirstWithoutTheAsker) {
  Directory d(16);
  d.Publish("c", ChainRecord{7, 100, 0, {100, 101}});
  d.Publish("a", ChainRecord{7, 100, 0, {100, 101, 102}});
  d.Publish("b", ChainRecord{7, 100, 0, {100, 101, 102, 103}});
  d.Publish("d", ChainRecord{7, 100, 0, {100, 101, 102}});
  d.Publish("e", ChainRecord{7, 100, 0, {101, 102}});  // no root: holds no prefix
  const std::vector<uint64_t> chain = {100, 101, 102, 103, 104};
  using transport::PrefixHolder;
  EXPECT_EQ(d.Holders(7, 0, chain, "x"),
            (std::vector<PrefixHolder>{{"b", 4}, {"a", 3}, {"d", 3}, {"c", 2}}));
  EXPECT_EQ(d.Holders(7, 0, chain, "a"), (std::vector<PrefixHolder>{{"b", 4}, {"d", 3}, {"c", 2}}));
  // Lookup's hit is the first holder.
  EXPECT_EQ(d.Lookup(7, 0, chain, "b").holder, "a");
  EXPECT_TRUE(d.Holders(7, 1, chain, "x").empty());
  EXPECT_TRUE(d.Holders(7, 0, std::vector<uint64_t>{}, "x").empty());
}

TEST(DirectoryTest, PublishesMergeAndAGapEndsThePrefix) {
  Directory d(16);
  d.Publish("a", ChainRecord{1, 10, 0, {10, 11}});
  d.Publish("a", ChainRecord{1, 10, 0, {13}});  // 12 never published
  const std::vector<uint64_t> chain = {10, 11, 12, 13};
  EXPECT_EQ(d.Lookup(1, 0, chain, "").prefix_len, 2u);
  d.Publish("a", ChainRecord{1, 10, 0, {12}});
  EXPECT_EQ(d.Lookup(1, 0, chain, "").prefix_len, 4u);
}

TEST(DirectoryTest, WithdrawAndDepartedHoldersAreForgotten) {
  Directory d(16);
  d.Publish("a", ChainRecord{1, 10, 0, {10, 11, 12}});
  d.Publish("b", ChainRecord{1, 10, 0, {10}});
  const std::vector<uint64_t> chain = {10, 11, 12};
  d.Withdraw("a", ChainRecord{1, 10, 0, {11}});
  Directory::Hit hit = d.Lookup(1, 0, chain, "");
  EXPECT_EQ(hit.prefix_len, 1u);
  EXPECT_EQ(hit.holder, "a");  // tie at 1: the smaller node id
  d.DropHolder("a");
  hit = d.Lookup(1, 0, chain, "");
  EXPECT_EQ(hit.holder, "b");
  d.DropHolder("b");
  EXPECT_TRUE(d.Lookup(1, 0, chain, "").holder.empty());
}

TEST(DirectoryTest, HoldsAtMostItsBoundOldestFirst) {
  Directory d(4);
  for (uint64_t root = 1; root <= 10; ++root) d.Publish("a", ChainRecord{1, root, 0, {root}});
  EXPECT_EQ(d.chains(), 4u);
  EXPECT_TRUE(d.Lookup(1, 0, std::vector<uint64_t>{1}, "").holder.empty());
  EXPECT_EQ(d.Lookup(1, 0, std::vector<uint64_t>{10}, "").holder, "a");
}

}  // namespace
}  // namespace kvcake::cluster
