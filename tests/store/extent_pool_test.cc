#include "store/extent_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace kvcake::store {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

// Values of a whole page each: one extent per page, reference counted.
TEST(ExtentPoolTest, PageSizedValuesTakeEveryPageOnceAndRefcount) {
  constexpr uint64_t kPage = 64 * kKiB;
  ExtentPool pool(4, kPage, 4096);
  std::set<uint64_t> offsets;
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(pool.Allocate(kPage));
  for (int32_t h : got) {
    ASSERT_GE(h, 0);
    offsets.insert(pool.offset(h));
    EXPECT_EQ(pool.extent_bytes(h), kPage);
  }
  EXPECT_EQ(offsets, (std::set<uint64_t>{0, kPage, 2 * kPage, 3 * kPage}));
  EXPECT_EQ(pool.Allocate(kPage), -1);
  EXPECT_EQ(pool.Allocate(kPage + 1), -1);  // larger than a page: never
  pool.Ref(got[2]);
  EXPECT_FALSE(pool.Unref(got[2]));  // still referenced
  EXPECT_EQ(pool.Allocate(kPage), -1);
  EXPECT_TRUE(pool.Unref(got[2]));
  EXPECT_EQ(pool.used_extents(), 3u);
  EXPECT_EQ(pool.used_bytes(), 3 * kPage);
  const int32_t again = pool.Allocate(kPage);
  ASSERT_GE(again, 0);
  EXPECT_EQ(pool.offset(again), pool.offset(got[2]));
}

TEST(ExtentPoolTest, UsablePagesCapAllocation) {
  constexpr uint64_t kPage = 64 * kKiB;
  ExtentPool pool(4, kPage, 4096);
  pool.set_usable_pages(2);
  EXPECT_GE(pool.Allocate(kPage), 0);
  EXPECT_GE(pool.Allocate(kPage), 0);
  EXPECT_FALSE(pool.CanAllocate(kPage));
  EXPECT_EQ(pool.Allocate(kPage), -1);
  pool.set_usable_pages(100);  // clamped
  EXPECT_EQ(pool.usable_pages(), 4u);
  EXPECT_EQ(pool.usable_bytes(), 4 * kPage);
  EXPECT_GE(pool.Allocate(kPage), 0);
}

TEST(ExtentPoolTest, SizeClassesShareNoPageAndTakeTheirOwnSize) {
  ExtentPool pool(4, 1 * kMiB, 4096);
  EXPECT_EQ(pool.ClassBytes(1), 4096u);
  EXPECT_EQ(pool.ClassBytes(256 * kKiB), 256 * kKiB);
  EXPECT_EQ(pool.ClassBytes(256 * kKiB + 1), 260 * kKiB);
  EXPECT_EQ(pool.ClassBytes(2 * kMiB), 0u);
  // Four 256 KiB values fill one page; sixteen 16 KiB values take part of another.
  std::vector<int32_t> big, small;
  for (int i = 0; i < 4; ++i) big.push_back(pool.Allocate(256 * kKiB));
  for (int i = 0; i < 16; ++i) small.push_back(pool.Allocate(16 * kKiB));
  EXPECT_EQ(pool.pages_in_use(), 2u);
  EXPECT_EQ(pool.used_bytes(), 4 * 256 * kKiB + 16 * 16 * kKiB);
  std::set<uint64_t> big_pages, small_pages, offsets;
  for (int32_t h : big) {
    ASSERT_GE(h, 0);
    big_pages.insert(pool.offset(h) / kMiB);
    offsets.insert(pool.offset(h));
    EXPECT_EQ(pool.HandleAt(pool.offset(h)), h);
  }
  for (int32_t h : small) {
    ASSERT_GE(h, 0);
    small_pages.insert(pool.offset(h) / kMiB);
    offsets.insert(pool.offset(h));
    EXPECT_EQ(pool.extent_bytes(h), 16 * kKiB);
  }
  EXPECT_EQ(offsets.size(), 20u);  // no two extents start at the same byte
  EXPECT_EQ(big_pages.size(), 1u);
  EXPECT_EQ(small_pages.size(), 1u);
  EXPECT_NE(*big_pages.begin(), *small_pages.begin());
  EXPECT_EQ(pool.HandleAt(pool.offset(small[0]) + 4096), -1);  // not an extent start
  // A page whose extents are all free goes back to any class.
  for (int32_t h : big) EXPECT_TRUE(pool.Unref(h));
  EXPECT_EQ(pool.pages_in_use(), 1u);
  EXPECT_EQ(pool.HandleAt(pool.offset(big[0])), -1);
  EXPECT_GE(pool.Allocate(1 * kMiB), 0);
  EXPECT_GE(pool.Allocate(1 * kMiB), 0);
  EXPECT_GE(pool.Allocate(1 * kMiB), 0);
  EXPECT_EQ(pool.Allocate(1 * kMiB), -1);  // 3 pages of 1 MiB + the small page
  EXPECT_GE(pool.Allocate(16 * kKiB), 0);  // the small page still has room
}

// Random churn over three classes: extents never overlap, counts add up, and
// a freed extent is reused.
TEST(ExtentPoolTest, ChurnKeepsExtentsDisjoint) {
  ExtentPool pool(16, 4 * kMiB, 4096);
  const uint64_t sizes[] = {16 * kKiB, 256 * kKiB, 4 * kMiB};
  std::mt19937_64 rng(7);
  std::vector<int32_t> live;
  for (int step = 0; step < 20000; ++step) {
    if (!live.empty() && (rng() % 2 == 0 || !pool.CanAllocate(sizes[step % 3]))) {
      const size_t i = rng() % live.size();
      ASSERT_TRUE(pool.Unref(live[i]));
      live[i] = live.back();
      live.pop_back();
    } else {
      const int32_t h = pool.Allocate(sizes[rng() % 3]);
      if (h >= 0) live.push_back(h);
    }
    if (step % 997 == 0) {
      std::vector<std::pair<uint64_t, uint64_t>> spans;
      uint64_t bytes = 0;
      for (int32_t h : live) {
        spans.emplace_back(pool.offset(h), pool.offset(h) + pool.extent_bytes(h));
        bytes += pool.extent_bytes(h);
        ASSERT_LE(spans.back().second, pool.segment_bytes());
      }
      std::sort(spans.begin(), spans.end());
      for (size_t i = 1; i < spans.size(); ++i) ASSERT_LE(spans[i - 1].second, spans[i].first);
      ASSERT_EQ(bytes, pool.used_bytes());
      ASSERT_EQ(live.size(), pool.used_extents());
    }
  }
}

// Filled with one namespace per class, the segment's bytes hold values.
TEST(ExtentPoolTest, MixedClassesFillMoreThanNinetyPercent) {
  ExtentPool pool(128, 4 * kMiB, 4096);  // 512 MiB
  const uint64_t sizes[] = {16 * kKiB, 256 * kKiB, 4 * kMiB};
  bool any = true;
  for (int round = 0; any; ++round) {
    any = false;
    for (uint64_t s : sizes) any |= pool.Allocate(s) >= 0;
  }
  EXPECT_GE(static_cast<double>(pool.used_bytes()) / pool.segment_bytes(), 0.9);
}

}  // namespace
}  // namespace kvcake::store
