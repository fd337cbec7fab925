#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace kvcake::store {

// Reference-counted allocator of byte extents of one memory segment (the
// host tier's shared segment, the device tier's arena), with size classes
// carved from large pages, so that a value occupies about its own size.
//
// The segment is divided into `num_pages` pages of `page_bytes`. A page is
// free or belongs to one size class (an extent size, a multiple of
// `granule`); it is then cut into page_bytes / class extents. An allocation
// of n bytes takes an extent of class RoundUp(n, granule) from a page of that
// class with room, else claims a free page for the class. A page whose
// extents are all free returns to the free pages. A namespace's values have
// one fixed size, so each namespace fills pages of its own class and the
// space lost is the tail of each page (< one extent) plus at most one partly
// filled page per class while the segment fills.
//
// Extents are named by handles (>= 0, stable while allocated). Reference
// counts: the index holds one, every pin, reservation or in-flight move one
// more; an extent is free again when its count drops to zero, so it is never
// reused while anything may still touch it. `usable_pages` (<= num_pages)
// caps how many pages may hold extents (hot capacity).
//
// Thread-safety: not thread-safe; the TierManager calls it under its lock.
class ExtentPool {
 public:
  // page_bytes a positive multiple of granule; num_pages * page_bytes /
  // granule < 2^31.
  ExtentPool(uint32_t num_pages, uint64_t page_bytes, uint64_t granule);

  // The extent size an allocation of `bytes` takes (0 if it cannot fit a page).
  uint64_t ClassBytes(uint64_t bytes) const;
  // An extent of ClassBytes(bytes) with count 1, or -1 when no page of its
  // class has room and no usable page is free (or bytes > page_bytes / 0).
  int32_t Allocate(uint64_t bytes);
  // True if Allocate(bytes) would succeed now.
  bool CanAllocate(uint64_t bytes) const;
  void Ref(int32_t handle);
  // Drops one reference; returns true if the extent became free.
  bool Unref(int32_t handle);
  uint32_t refs(int32_t handle) const;

  // Byte offset of the extent in the segment, and its size (its class).
  uint64_t offset(int32_t handle) const;
  uint64_t extent_bytes(int32_t handle) const;
  // The allocated extent that starts at `offset`, or -1.
  int32_t HandleAt(uint64_t offset) const;

  uint64_t page_bytes() const { return page_bytes_; }
  uint32_t num_pages() const { return static_cast<uint32_t>(pages_.size()); }
  uint32_t usable_pages() const { return usable_pages_; }
  uint32_t pages_in_use() const { return pages_in_use_; }
  void set_usable_pages(uint32_t pages) {
    usable_pages_ = pages > num_pages() ? num_pages() : pages;
  }
  uint64_t segment_bytes() const { return uint64_t{num_pages()} * page_bytes_; }
  uint64_t usable_bytes() const { return uint64_t{usable_pages_} * page_bytes_; }
  // Bytes of allocated extents, and their number.
  uint64_t used_bytes() const { return used_bytes_; }
  uint64_t used_extents() const { return used_extents_; }

 private:
  static constexpr uint32_t kNone = 0xffffffffu;
  struct Page {
    uint64_t cls = 0;  // 0: free
    uint32_t used = 0;
    bool on_partial = false;            // listed in its class's partial pages
    std::vector<uint32_t> refs;         // per extent
    std::vector<uint32_t> free_extent;  // free extent indexes (stack, low first)
  };
  int32_t Handle(uint32_t page, uint32_t i) const {
    return static_cast<int32_t>(uint64_t{page} * max_per_page_ + i);
  }
  uint32_t PageOf(int32_t h) const { return static_cast<uint32_t>(h / max_per_page_); }
  uint32_t IndexOf(int32_t h) const { return static_cast<uint32_t>(h % max_per_page_); }

  uint64_t page_bytes_;
  uint64_t granule_;
  uint64_t max_per_page_;  // extents a page holds at most (page_bytes / granule)
  std::vector<Page> pages_;
  std::vector<uint32_t> free_pages_;  // stack; low pages handed out first
  // Per class: pages with at least one free extent (may hold stale entries,
  // checked on use).
  std::unordered_map<uint64_t, std::vector<uint32_t>> partial_;
  uint32_t usable_pages_;
  uint32_t pages_in_use_ = 0;
  uint64_t used_bytes_ = 0;
  uint64_t used_extents_ = 0;
};

}  // namespace kvcake::store
