// Unit tests of the store's building blocks: BlockIndex,
// NamespaceConfig, HostTier, DeviceTier (emulated), checksum.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>
#include <set>

#include "store/block_index.h"
#include "store/checksum.h"
#include "store/device_tier.h"
#include "store/host_tier.h"
#include "store/namespace_config.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

TEST(BlockIndexTest, InsertFindEraseAndNamespaceBytes) {
  BlockIndex index;
  BlockRecord r;
  r.size = 100;
  BlockRecord* a = index.Insert(BlockKey{1, 1, 0}, r);
  ASSERT_NE(a, nullptr);
  BlockRecord* b = index.Insert(BlockKey{1, 2, 0}, r);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->generation, b->generation);
  EXPECT_EQ(index.Insert(BlockKey{1, 1, 0}, r), nullptr);  // duplicate
  index.Insert(BlockKey{2, 1, 0}, r);
  EXPECT_EQ(index.NamespaceBytes(1), 200u);
  EXPECT_EQ(index.NamespaceBytes(2), 100u);
  EXPECT_TRUE(index.Erase(BlockKey{1, 1, 0}));
  EXPECT_FALSE(index.Erase(BlockKey{1, 1, 0}));
  EXPECT_EQ(index.NamespaceBytes(1), 100u);
  EXPECT_EQ(index.Find(BlockKey{1, 1, 0}), nullptr);
  EXPECT_NE(index.Find(BlockKey{1, 2, 0}), nullptr);
  EXPECT_EQ(index.size(), 2u);
}

TEST(BlockStateTest, ReadableStates) {
  BlockRecord r;
  r.state = BlockState::kReserved;
  EXPECT_FALSE(r.readable());
  r.state = BlockState::kDemoting;
  EXPECT_TRUE(r.readable());
  EXPECT_TRUE(r.in_flight());
  EXPECT_STREQ(BlockStateName(BlockState::kPromoting), "promoting");
}

TEST(NamespaceConfigTest, ValidateAndFingerprint) {
  NamespaceConfig c = testing::TestNamespace();
  EXPECT_TRUE(c.Validate().ok());
  uint64_t fp = c.Fingerprint();
  NamespaceConfig d = c;
  d.quota_bytes = 123;
  d.name = "renamed";
  EXPECT_EQ(d.Fingerprint(), fp);  // quota and name are not layout
  d.kv_dtype = "bf16";
  EXPECT_NE(d.Fingerprint(), fp);
  d = c;
  d.layer_block_bytes *= 2;
  EXPECT_NE(d.Fingerprint(), fp);
  d = c;
  d.num_layers = 0;
  EXPECT_EQ(d.Validate().code(), StatusCode::kInvalidArgument);
  d = c;
  d.serving = policy::ServingMode::kBudgeted;
  EXPECT_TRUE(d.Validate().ok());
  EXPECT_EQ(d.Fingerprint(), fp);  // how the engine serves is not layout
  d.serving = static_cast<policy::ServingMode>(policy::kMaxServingMode + 1);
  Status s = d.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("serving"), std::string_view::npos) << s.ToString();
}

TEST(ChecksumTest, DetectsAFlippedBit) {
  std::vector<char> v = testing::Payload(BlockKey{1, 2, 3}, 4096);
  uint64_t c = BlockChecksum(v.data(), v.size());
  v[1000] ^= 1;
  EXPECT_NE(BlockChecksum(v.data(), v.size()), c);
}

// A host tier "kvcake-test" of `slots` slots of 64 KiB.
Result<std::unique_ptr<HostTier>> OpenHostTier(uint64_t slots) {
  HostTier::Options o;
  o.name = "kvcake-test";
  o.num_slots = slots;
  o.slot_bytes = 64 << 10;
  return HostTier::Open(o);
}

TEST(HostTierTest, SegmentIsSharedThroughItsFd) {
  auto t = OpenHostTier(8);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  HostTier& h = **t;
  EXPECT_GE(h.size(), 8u * (64 << 10));
  EXPECT_EQ(h.SlotOffset(3), 3u * (64 << 10));
  std::vector<char> data = testing::Payload(BlockKey{1, 1, 1}, 64 << 10);
  std::memcpy(h.SlotPtr(3), data.data(), data.size());
  // A second mapping of the fd (what a same-node client does) sees the bytes.
  void* p = mmap(nullptr, h.size(), PROT_READ, MAP_SHARED, h.fd(), 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(std::memcmp(static_cast<char*>(p) + h.SlotOffset(3), data.data(), data.size()), 0);
  munmap(p, h.size());
}

// A process that opens the segment (as every same-node client does, through
// /proc/<pid>/fd) cannot resize it: a shrink would make the daemon's next
// access fault with SIGBUS.
TEST(HostTierTest, SegmentSizeIsSealed) {
  auto t = OpenHostTier(4);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string path = "/proc/self/fd/" + std::to_string((*t)->fd());
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_NE(::ftruncate(fd, 4096), 0) << "the segment could be shrunk";
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, static_cast<off_t>((*t)->size()) * 2), 0) << "could be grown";
  ::close(fd);
  // Still fully usable.
  std::memset((*t)->SlotPtr(3), 7, 64 << 10);
}

// A device tier of 4 slots of 4 KiB emulated in host memory (no CUDA).
Result<std::unique_ptr<DeviceTier>> OpenEmulatedDeviceTier() {
  DeviceTier::Options o;
  o.num_slots = 4;
  o.slot_bytes = 4096;
  o.allow_cuda = false;
  return DeviceTier::Open(o);
}

// The daemon's start-up memory check counts an emulated arena as host
// memory: it must know, before opening it, when the arena will be emulated.
TEST(DeviceTierTest, WouldEmulateWithoutCudaOrWithoutThatDevice) {
  DeviceTier::Options o;
  o.num_slots = 4;
  o.slot_bytes = 4096;
  o.allow_cuda = false;
  EXPECT_TRUE(DeviceTier::WouldEmulate(o));
  o.allow_cuda = true;
  o.cuda_device = 1000;  // no machine has this GPU
  EXPECT_TRUE(DeviceTier::WouldEmulate(o));
  o.cuda_device = 0;
  auto t = DeviceTier::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(DeviceTier::WouldEmulate(o), !(*t)->is_cuda());
}

TEST(DeviceTierTest, EmulatedArenaSizeIsSealed) {
  auto t = OpenEmulatedDeviceTier();
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_GE((*t)->emulated_fd(), 0);
  EXPECT_NE(::ftruncate((*t)->emulated_fd(), 0), 0) << "the arena could be shrunk";
}

TEST(HostTierTest, RejectsBadOptions) {
  HostTier::Options o;
  o.num_slots = 0;
  o.slot_bytes = 4096;
  EXPECT_EQ(HostTier::Open(o).status().code(), StatusCode::kInvalidArgument);
  o.num_slots = 1;
  o.slot_bytes = 1000;
  EXPECT_EQ(HostTier::Open(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(DeviceTierTest, EmulatedRoundTrip) {
  auto t = OpenEmulatedDeviceTier();
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE((*t)->is_cuda());
  std::vector<char> in = testing::Payload(BlockKey{1, 2, 0}, 4096), out(4096);
  ASSERT_TRUE((*t)->CopyInAt((*t)->SlotOffset(2), in.data(), in.size()).ok());
  ASSERT_TRUE((*t)->CopyOutAt((*t)->SlotOffset(2), out.data(), out.size()).ok());
  EXPECT_EQ(in, out);
  // Any byte range of the arena; nothing past its end (16 KiB).
  ASSERT_TRUE((*t)->CopyInAt(5000, in.data(), 3000).ok());
  std::vector<char> part(3000);
  ASSERT_TRUE((*t)->CopyOutAt(5000, part.data(), part.size()).ok());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), in.begin()));
  EXPECT_EQ((*t)->CopyInAt(3 * 4096, in.data(), 4097).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->CopyOutAt(16385, out.data(), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->CopyOutAt(4096, out.data(), UINT64_MAX).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::store
