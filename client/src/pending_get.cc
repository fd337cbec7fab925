#include "client/src/pending_get.h"

namespace kvcake::internal {

PendingGetImpl::PendingGetImpl(size_t n, std::chrono::milliseconds max_wait) : max_wait_(max_wait) {
  for (size_t i = 0; i < n; ++i) groups_.push_back(std::make_shared<GroupState>());
}

PendingGetImpl::~PendingGetImpl() {
  for (size_t i = 0; i < groups_.size(); ++i) {
    Status s = Wait(i, max_wait_ + std::chrono::milliseconds(1000));
    (void)s;
  }
  if (worker_.joinable()) worker_.join();
}

}  // namespace kvcake::internal
