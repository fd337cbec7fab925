#pragma once

// BlockList: an intrusive doubly-linked list over entries of a dense pool
// (std::vector<Entry>), linked through two uint32_t members of Entry
// (default `prev` and `next`); it tracks its length and the sum of the
// entries' `bytes`. The policies keep one list per tier (and per queue)
// without per-node heap allocations. Thread-compatible (the owner
// serialises calls).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvcake::policy {

inline constexpr uint32_t kNoEntry = 0xffffffffu;

template <typename Entry, uint32_t Entry::*Prev = &Entry::prev,
          uint32_t Entry::*Next = &Entry::next>
class BlockList {
 public:
  uint32_t head() const { return head_; }  // most recently pushed
  uint32_t tail() const { return tail_; }  // least recently pushed
  size_t size() const { return size_; }
  uint64_t bytes() const { return bytes_; }
  bool empty() const { return size_ == 0; }

  // Links entry i (not in any list of these links) at the front.
  void PushFront(std::vector<Entry>& pool, uint32_t i) {
    Entry& e = pool[i];
    e.*Prev = kNoEntry;
    e.*Next = head_;
    if (head_ != kNoEntry) pool[head_].*Prev = i;
    head_ = i;
    if (tail_ == kNoEntry) tail_ = i;
    ++size_;
    bytes_ += e.bytes;
  }
  // Unlinks entry i, which is in this list.
  void Unlink(std::vector<Entry>& pool, uint32_t i) {
    Entry& e = pool[i];
    (e.*Prev != kNoEntry ? pool[e.*Prev].*Next : head_) = e.*Next;
    (e.*Next != kNoEntry ? pool[e.*Next].*Prev : tail_) = e.*Prev;
    e.*Prev = e.*Next = kNoEntry;
    --size_;
    bytes_ -= e.bytes;
  }
  // Moves entry i (in this list) to the front.
  void MoveToFront(std::vector<Entry>& pool, uint32_t i) {
    Unlink(pool, i);
    PushFront(pool, i);
  }
  // The entry after i towards the head (kNoEntry at the head).
  static uint32_t Newer(const std::vector<Entry>& pool, uint32_t i) { return pool[i].*Prev; }

 private:
  uint32_t head_ = kNoEntry;
  uint32_t tail_ = kNoEntry;
  size_t size_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace kvcake::policy
