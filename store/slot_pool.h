#pragma once

#include <cstdint>
#include <vector>

namespace kvcake::store {

// Reference-counted allocator of fixed slot indices [0, num_slots) for the
// device and host tiers. A slot is free when its count drops to zero: the
// index holds one reference, every pin, reservation or in-flight move one
// more, so a slot is never reused while anything may still touch it.
// `usable` (<= num_slots) caps how many may be allocated (hot capacity).
//
// Thread-safety: not thread-safe; the TierManager calls it under its lock.
class SlotPool {
 public:
  explicit SlotPool(uint32_t num_slots);

  // A free slot with count 1, or -1 when none (or `usable` reached).
  int32_t Allocate();
  void Ref(int32_t slot);
  // Drops one reference; returns true if the slot became free.
  bool Unref(int32_t slot);
  uint32_t refs(int32_t slot) const { return refs_[slot]; }

  uint32_t num_slots() const { return static_cast<uint32_t>(refs_.size()); }
  uint32_t used() const { return used_; }
  uint32_t usable() const { return usable_; }
  void set_usable(uint32_t usable) { usable_ = usable > num_slots() ? num_slots() : usable; }
  uint32_t free_usable() const { return used_ >= usable_ ? 0 : usable_ - used_; }

 private:
  std::vector<uint32_t> refs_;
  std::vector<int32_t> free_;
  uint32_t used_ = 0;
  uint32_t usable_;
};

}  // namespace kvcake::store
