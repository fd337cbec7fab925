#include "store/extent_pool.h"

#include <cassert>

namespace kvcake::store {

ExtentPool::ExtentPool(uint32_t num_pages, uint64_t page_bytes, uint64_t granule)
    : page_bytes_(page_bytes),
      granule_(granule),
      max_per_page_(page_bytes / granule),
      pages_(num_pages),
      usable_pages_(num_pages) {
  assert(granule > 0 && page_bytes > 0 && page_bytes % granule == 0);
  free_pages_.reserve(num_pages);
  for (uint32_t p = num_pages; p > 0; --p) free_pages_.push_back(p - 1);
}

uint64_t ExtentPool::ClassBytes(uint64_t bytes) const {
  if (bytes == 0 || bytes > page_bytes_) return 0;
  return (bytes + granule_ - 1) / granule_ * granule_;
}

bool ExtentPool::CanAllocate(uint64_t bytes) const {
  const uint64_t cls = ClassBytes(bytes);
  if (cls == 0) return false;
  if (!free_pages_.empty() && pages_in_use_ < usable_pages_) return true;
  auto it = partial_.find(cls);
  if (it == partial_.end()) return false;
  for (uint32_t p : it->second) {
    if (pages_[p].cls == cls && !pages_[p].free_extent.empty()) return true;
  }
  return false;
}

int32_t ExtentPool::Allocate(uint64_t bytes) {
  const uint64_t cls = ClassBytes(bytes);
  if (cls == 0) return -1;
  uint32_t page = kNone;
  auto& partial = partial_[cls];
  while (!partial.empty()) {
    const uint32_t p = partial.back();
    if (pages_[p].cls == cls && !pages_[p].free_extent.empty()) {
      page = p;
      break;
    }
    // Stale entry: the page filled (clear its flag) or was freed and maybe
    // claimed by another class (whose flag it is).
    if (pages_[p].cls == cls) pages_[p].on_partial = false;
    partial.pop_back();
  }
  if (page == kNone) {
    if (free_pages_.empty() || pages_in_use_ >= usable_pages_) return -1;
    page = free_pages_.back();
    free_pages_.pop_back();
    ++pages_in_use_;
    Page& pg = pages_[page];
    const uint32_t n = static_cast<uint32_t>(page_bytes_ / cls);
    pg.cls = cls;
    pg.used = 0;
    pg.refs.assign(n, 0);
    pg.free_extent.clear();
    for (uint32_t i = n; i > 0; --i) pg.free_extent.push_back(i - 1);
    pg.on_partial = true;
    partial.push_back(page);
  }
  Page& pg = pages_[page];
  const uint32_t i = pg.free_extent.back();
  pg.free_extent.pop_back();
  pg.refs[i] = 1;
  ++pg.used;
  used_bytes_ += cls;
  ++used_extents_;
  if (pg.free_extent.empty() && pg.on_partial && partial.back() == page) {
    partial.pop_back();
    pg.on_partial = false;
  }
  return Handle(page, i);
}

void ExtentPool::Ref(int32_t h) {
  Page& pg = pages_[PageOf(h)];
  assert(pg.cls != 0 && pg.refs[IndexOf(h)] > 0);
  ++pg.refs[IndexOf(h)];
}

bool ExtentPool::Unref(int32_t h) {
  const uint32_t page = PageOf(h);
  Page& pg = pages_[page];
  const uint32_t i = IndexOf(h);
  assert(pg.cls != 0 && pg.refs[i] > 0);
  if (--pg.refs[i] != 0) return false;
  pg.free_extent.push_back(i);
  --pg.used;
  used_bytes_ -= pg.cls;
  --used_extents_;
  if (pg.used == 0) {
    // The whole page is free again: any class may claim it.
    pg.cls = 0;
    pg.on_partial = false;  // a stale entry may stay in the class's list
    pg.refs.clear();
    pg.refs.shrink_to_fit();
    pg.free_extent.clear();
    pg.free_extent.shrink_to_fit();
    free_pages_.push_back(page);
    --pages_in_use_;
  } else if (!pg.on_partial) {
    pg.on_partial = true;
    partial_[pg.cls].push_back(page);
  }
  return true;
}

uint32_t ExtentPool::refs(int32_t h) const {
  const Page& pg = pages_[PageOf(h)];
  return pg.cls == 0 ? 0 : pg.refs[IndexOf(h)];
}

uint64_t ExtentPool::offset(int32_t h) const {
  return uint64_t{PageOf(h)} * page_bytes_ + uint64_t{IndexOf(h)} * pages_[PageOf(h)].cls;
}

uint64_t ExtentPool::extent_bytes(int32_t h) const { return pages_[PageOf(h)].cls; }

int32_t ExtentPool::HandleAt(uint64_t offset) const {
  const uint64_t page = offset / page_bytes_;
  if (page >= pages_.size()) return -1;
  const Page& pg = pages_[page];
  const uint64_t in_page = offset % page_bytes_;
  if (pg.cls == 0 || in_page % pg.cls != 0) return -1;
  const uint64_t i = in_page / pg.cls;
  if (i >= pg.refs.size() || pg.refs[i] == 0) return -1;
  return Handle(static_cast<uint32_t>(page), static_cast<uint32_t>(i));
}

}  // namespace kvcake::store
