#include "policy/ghost_set.h"

namespace kvcake::policy {

void GhostSet::Add(const BlockKey& key) {
  if (capacity_ == 0 || Contains(key)) return;
  if (ring_.empty()) ring_.resize(capacity_ + 1);
  const size_t slot = (front_ + count_) % ring_.size();
  ring_[slot] = key;
  ++count_;
  index_.Insert(key, static_cast<uint32_t>(slot));
  while (count_ > capacity_) PopFront();
}

void GhostSet::Trim(size_t max_size) {
  while (index_.size() > max_size && count_ > 0) PopFront();
}

void GhostSet::PopFront() {
  index_.EraseIfPresent(ring_[front_]);
  front_ = (front_ + 1) % ring_.size();
  --count_;
}

}  // namespace kvcake::policy
