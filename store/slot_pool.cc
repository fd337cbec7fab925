#include "store/slot_pool.h"

#include <cassert>

namespace kvcake::store {

SlotPool::SlotPool(uint32_t num_slots) : refs_(num_slots, 0), usable_(num_slots) {
  free_.reserve(num_slots);
  // Low slots are handed out first.
  for (uint32_t i = num_slots; i > 0; --i) free_.push_back(static_cast<int32_t>(i - 1));
}

int32_t SlotPool::Allocate() {
  if (free_.empty() || used_ >= usable_) return -1;
  int32_t slot = free_.back();
  free_.pop_back();
  refs_[slot] = 1;
  ++used_;
  return slot;
}

void SlotPool::Ref(int32_t slot) {
  assert(refs_[slot] > 0);
  ++refs_[slot];
}

bool SlotPool::Unref(int32_t slot) {
  assert(refs_[slot] > 0);
  if (--refs_[slot] != 0) return false;
  free_.push_back(slot);
  --used_;
  return true;
}

}  // namespace kvcake::store
