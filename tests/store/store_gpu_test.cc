// GPU tests (label gpu): the real CUDA arena and the pinned host segment.
// Compiled only with CUDA; every test skips cleanly without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>

#include "store/device_tier.h"
#include "store/host_tier.h"
#include "store/tier_manager.h"
#include "tests/common/cuda_device.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

using kvcake::testing::HaveCudaDevice;

#define SKIP_WITHOUT_GPU() \
  if (!HaveCudaDevice()) GTEST_SKIP() << "no CUDA device"

TEST(StoreGpuTest, CudaArenaRoundTrip) {
  SKIP_WITHOUT_GPU();
  DeviceTier::Options o;
  o.num_slots = 8;
  o.slot_bytes = 1 << 20;
  EXPECT_FALSE(DeviceTier::WouldEmulate(o));
  auto t = DeviceTier::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->is_cuda());
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, (*t)->SlotPtr(3)), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
  std::vector<char> in = testing::Payload(BlockKey{1, 2, 3}, 1 << 20), out(1 << 20);
  ASSERT_TRUE((*t)->CopyInAt((*t)->SlotOffset(3), in.data(), in.size()).ok());
  ASSERT_TRUE((*t)->CopyOutAt((*t)->SlotOffset(3), out.data(), out.size()).ok());
  EXPECT_EQ(in, out);
  auto h = (*t)->IpcHandle();
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->size(), sizeof(cudaIpcMemHandle_t));
}

TEST(StoreGpuTest, HostSegmentIsRegistered) {
  SKIP_WITHOUT_GPU();
  HostTier::Options o;
  o.num_slots = 4;
  o.slot_bytes = 1 << 20;
  o.huge_pages = false;
  auto t = HostTier::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->cuda_registered());
  cudaPointerAttributes attr{};
  ASSERT_EQ(cudaPointerGetAttributes(&attr, (*t)->SlotPtr(1)), cudaSuccess);
  EXPECT_EQ(attr.type, cudaMemoryTypeHost);  // registered (pinned) host memory
  // A device copy straight from the registered slot.
  std::vector<char> in = testing::Payload(BlockKey{4, 5, 6}, 1 << 20), out(1 << 20);
  std::memcpy((*t)->SlotPtr(1), in.data(), in.size());
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, in.size()), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d, (*t)->SlotPtr(1), in.size(), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(out.data(), d, in.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d);
  EXPECT_EQ(in, out);
}

TEST(StoreGpuTest, TierManagerDeviceTierCascade) {
  SKIP_WITHOUT_GPU();
  testing::TempDir dir;
  TierManagerOptions o;
  o.slot_bytes = 1 << 20;
  o.device_capacity_bytes = 4ull << 20;
  o.host_capacity_bytes = 4ull << 20;
  o.ssd_path = dir.Sub("ssd");
  o.host_huge_pages = false;
  auto tm = TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  ASSERT_TRUE((*tm)->device_is_cuda());
  ASSERT_TRUE((*tm)->RegisterNamespace(testing::TestNamespace(42, 1 << 20, 1)).ok());
  std::vector<char> out(1 << 20);
  for (uint64_t i = 0; i < 12; ++i) {
    BlockKey k{42, i, 0};
    auto r = (*tm)->Reserve(k, 1 << 20, Tier::kDevice);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<char> v = testing::Payload(k, 1 << 20);
    if (r->tier == Tier::kDevice) {
      ASSERT_EQ(cudaMemcpy(r->data, v.data(), v.size(), cudaMemcpyHostToDevice), cudaSuccess);
    } else {
      std::memcpy(r->data, v.data(), v.size());
    }
    ASSERT_TRUE((*tm)->Commit(*r).ok());
    ASSERT_TRUE((*tm)->Get(k, out.data(), out.size()).ok());  // second hit: SSD admission
  }
  ASSERT_TRUE((*tm)->Drain().ok());
  for (uint64_t i = 0; i < 12; ++i) {
    BlockKey k{42, i, 0};
    auto n = (*tm)->Get(k, out.data(), out.size());
    ASSERT_TRUE(n.ok()) << k.ToString() << " " << n.status().ToString();
    EXPECT_TRUE(out == testing::Payload(k, 1 << 20));
  }
}

}  // namespace
}  // namespace kvcake::store
