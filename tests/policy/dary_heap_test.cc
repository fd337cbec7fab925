#include "policy/dary_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace kvcake::policy {
namespace {

struct After {
  bool operator()(uint64_t a, uint64_t b) const { return a > b; }  // min-heap
};

// Random interleavings of pushes, pops and re-heapifications pop exactly what
// a sorted multiset would, at every size around the arity boundaries.
TEST(DaryHeapTest, PopsInOrderUnderRandomOperations) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<uint64_t> heap;
    std::multiset<uint64_t> model;
    const int ops = 1 + static_cast<int>(rng() % 400);
    for (int i = 0; i < ops; ++i) {
      const uint64_t r = rng() % 10;
      if (r < 6 || heap.empty()) {
        const uint64_t v = rng() % 1000;  // duplicates on purpose
        HeapPush(heap, v, After{});
        model.insert(v);
      } else if (r < 9) {
        ASSERT_EQ(heap.front(), *model.begin());
        HeapPop(heap, After{});
        model.erase(model.begin());
      } else {
        std::shuffle(heap.begin(), heap.end(), rng);
        HeapMake(heap, After{});
      }
      ASSERT_EQ(heap.size(), model.size());
    }
    while (!heap.empty()) {
      ASSERT_EQ(heap.front(), *model.begin());
      HeapPop(heap, After{});
      model.erase(model.begin());
    }
  }
}

}  // namespace
}  // namespace kvcake::policy
