#include "store/tier_manager.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "policy/lru_policy.h"
#include "policy/policy_factory.h"
#include "store/checksum.h"
#include "store/ssd_tier.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

using testing::Payload;
using testing::TempDir;
using testing::TestNamespace;

constexpr uint64_t kSlot = 64 << 10;

TierManagerOptions SmallOptions(const TempDir& dir, uint64_t host_slots = 8,
                                uint64_t device_slots = 0) {
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.host_capacity_bytes = host_slots * kSlot;
  o.device_capacity_bytes = device_slots * kSlot;
  o.ssd_path = dir.Sub("ssd");
  o.ssd_capacity_bytes = 1ull << 30;
  o.host_huge_pages = false;
  o.device_allow_cuda = false;
  o.mover_interval_us = 2000;
  o.reserve_wait_us = 10'000'000;
  return o;
}

std::unique_ptr<policy::Policy> AdmitAll() {
  return std::make_unique<policy::LruPolicy>(policy::LruPolicyOptions{.ssd_admission_hits = 1});
}

std::unique_ptr<TierManager> OpenOrDie(TierManagerOptions o,
                                       std::unique_ptr<policy::Policy> p = nullptr) {
  auto tm = TierManager::Open(std::move(o), std::move(p));
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  if (!tm.ok()) return nullptr;
  EXPECT_TRUE((*tm)->RegisterNamespace(TestNamespace()).ok());
  return std::move(*tm);
}

BlockKey K(uint64_t h, uint32_t layer = 0) { return BlockKey{42, h, layer}; }

void ExpectBlock(TierManager& tm, const BlockKey& k, size_t size, uint64_t version = 0) {
  std::vector<char> out(kSlot, 0);
  auto n = tm.Get(k, out.data(), out.size());
  ASSERT_TRUE(n.ok()) << k.ToString() << ": " << n.status().ToString();
  ASSERT_EQ(*n, size);
  out.resize(size);
  EXPECT_TRUE(out == Payload(k, size, version)) << "bytes differ for " << k.ToString();
}

// Blocks dropped from tier `t` for `r`.
size_t Dropped(const StoreStats& s, Tier t, DropReason r) {
  return s.drop_reasons[static_cast<size_t>(t)][static_cast<size_t>(r)];
}

template <typename Pred>
bool WaitFor(Pred pred, int seconds = 10) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

TEST(TierManagerTest, OptionsValidate) {
  TierManagerOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.slot_bytes = 1000;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = TierManagerOptions();
  o.device_capacity_bytes = 8ull << 40;  // extents are named by 31-bit handles
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o.device_capacity_bytes = (8ull << 40) - (1ull << 30);
  EXPECT_TRUE(o.Validate().ok());
  o = TierManagerOptions();
  o.low_watermark = 0.99;
  o.high_watermark = 0.5;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TierManager::Open(o, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(TierManagerTest, PutGetHostAndDevice) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 8, 4));
  ASSERT_TRUE(tm);
  EXPECT_TRUE(tm->has_device_tier());
  EXPECT_FALSE(tm->device_is_cuda());
  DeviceSegmentInfo dev = tm->device_segment();
  EXPECT_TRUE(dev.present);
  EXPECT_FALSE(dev.cuda);
  EXPECT_EQ(dev.num_slots, 0u);  // values are in extents of their own size
  EXPECT_EQ(dev.slot_bytes, kSlot);
  EXPECT_EQ(dev.size, 4 * kSlot);
  EXPECT_TRUE(dev.ipc_handle.empty());
  ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 5000).data(), 5000, Tier::kHost).ok());
  ASSERT_TRUE(tm->Put(K(2), Payload(K(2), kSlot).data(), kSlot, Tier::kDevice).ok());
  ExpectBlock(*tm, K(1), 5000);
  ExpectBlock(*tm, K(2), kSlot);
  auto info = tm->ListBlocks({});
  ASSERT_EQ(info.size(), 2u);
  EXPECT_EQ(info[0].tier, Tier::kHost);
  EXPECT_EQ(info[1].tier, Tier::kDevice);
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.puts, 2u);
  EXPECT_EQ(s.tiers[0].blocks, 1u);
  EXPECT_EQ(s.tiers[1].blocks, 1u);
  EXPECT_EQ(s.tiers[1].used_bytes, 5000u);
  EXPECT_EQ(s.tiers[0].hits, 1u);
  EXPECT_EQ(s.tiers[1].hits, 1u);
  std::vector<char> small(100);
  EXPECT_EQ(tm->Get(K(1), small.data(), small.size()).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(tm->Get(K(3), small.data(), small.size()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tm->GetStats().misses, 1u);
}

// Tiers are searched GPU -> host -> SSD: a get served from a tier is a miss
// in each tier above it; a get found nowhere is a miss in every tier that
// exists (a store without a GPU tier counts none there).
TEST(TierManagerTest, MissesCountPerTierInSearchOrder) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 8, 4));
  ASSERT_TRUE(tm);
  ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 5000).data(), 5000, Tier::kHost).ok());
  ASSERT_TRUE(tm->Put(K(2), Payload(K(2), kSlot).data(), kSlot, Tier::kDevice).ok());
  ExpectBlock(*tm, K(1), 5000);   // host hit: GPU miss
  ExpectBlock(*tm, K(2), kSlot);  // GPU hit
  std::vector<char> buf(kSlot);
  EXPECT_EQ(tm->Get(K(3), buf.data(), buf.size()).status().code(), StatusCode::kNotFound);
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.tiers[0].hits, 1u);
  EXPECT_EQ(s.tiers[1].hits, 1u);
  EXPECT_EQ(s.tiers[2].hits, 0u);
  EXPECT_EQ(s.tiers[0].misses, 2u);
  EXPECT_EQ(s.tiers[1].misses, 1u);
  EXPECT_EQ(s.tiers[2].misses, 1u);
  EXPECT_EQ(s.misses, 1u);

  TempDir dir2;
  auto no_gpu = OpenOrDie(SmallOptions(dir2));
  ASSERT_TRUE(no_gpu);
  ASSERT_FALSE(no_gpu->has_device_tier());
  ASSERT_TRUE(no_gpu->Put(K(1), Payload(K(1), 5000).data(), 5000, Tier::kHost).ok());
  ExpectBlock(*no_gpu, K(1), 5000);
  EXPECT_EQ(no_gpu->Get(K(3), buf.data(), buf.size()).status().code(), StatusCode::kNotFound);
  s = no_gpu->GetStats();
  EXPECT_EQ(s.tiers[0].misses, 0u);
  EXPECT_EQ(s.tiers[1].hits, 1u);
  EXPECT_EQ(s.tiers[1].misses, 1u);
  EXPECT_EQ(s.tiers[2].misses, 1u);
}

TEST(TierManagerTest, TwoPhasePutVisibilityAndConflicts) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir));
  ASSERT_TRUE(tm);
  auto r = tm->Reserve(K(1), 4096);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(tm->Reserve(K(1), 4096).status().code(), StatusCode::kAborted);
  std::vector<char> v = Payload(K(1), 4096);
  std::memcpy(r->data, v.data(), v.size());
  // Not visible before commit.
  EXPECT_FALSE(tm->Contains(K(1)));
  EXPECT_EQ(tm->Pin(K(1)).status().code(), StatusCode::kNotFound);
  uint64_t h = K(1).hash;
  EXPECT_EQ(tm->LookupPrefix(42, std::span<const uint64_t>(&h, 1), 0), 0u);
  ASSERT_TRUE(tm->Commit(*r, BlockChecksum(v.data(), v.size())).ok());
  EXPECT_TRUE(tm->Contains(K(1)));
  EXPECT_EQ(tm->Commit(*r).code(), StatusCode::kAborted);  // already committed
  EXPECT_EQ(tm->Reserve(K(1), 4096).status().code(), StatusCode::kAlreadyExists);
  ExpectBlock(*tm, K(1), 4096);

  // Abort frees the key and the slot.
  auto r2 = tm->Reserve(K(2), 4096);
  ASSERT_TRUE(r2.ok());
  ASSERT_TRUE(tm->Abort(*r2).ok());
  EXPECT_EQ(tm->Abort(*r2).code(), StatusCode::kNotFound);
  EXPECT_FALSE(tm->Contains(K(2)));
  EXPECT_EQ(tm->GetStats().tiers[1].used_slots, 1u);
}

TEST(TierManagerTest, CommitWithWrongChecksumIsDiscarded) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir));
  ASSERT_TRUE(tm);
  auto r = tm->Reserve(K(1), 4096);
  ASSERT_TRUE(r.ok());
  std::vector<char> v = Payload(K(1), 4096);
  std::memcpy(r->data, v.data(), v.size());
  uint64_t wrong = BlockChecksum(v.data(), v.size()) ^ 1;
  EXPECT_EQ(tm->Commit(*r, wrong).code(), StatusCode::kDataLoss);
  EXPECT_FALSE(tm->Contains(K(1)));
  EXPECT_EQ(tm->GetStats().checksum_failures, 1u);
  EXPECT_EQ(tm->GetStats().tiers[1].used_slots, 0u);
}

// A block scribbled in the host segment after it was committed (any process
// that maps the segment can write it) is never served and never persisted as
// valid: reads verify the checksum taken at commit, and so does demotion.
TEST(TierManagerTest, ScribbledMemoryBlockIsNeverServedNorPersisted) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir), AdmitAll());
  ASSERT_NE(tm, nullptr);
  for (uint64_t h : {1, 2, 3}) {
    std::vector<char> v = Payload(K(h), kSlot);
    ASSERT_TRUE(tm->Put(K(h), v.data(), v.size()).ok());
  }
  auto scribble = [&](uint64_t h) {
    auto p = tm->Pin(K(h));
    ASSERT_TRUE(p.ok());
    const_cast<char*>(static_cast<const char*>(p->data))[100] ^= 0x5a;
    ASSERT_TRUE(tm->Release(*p).ok());
  };
  // Read by copy: DATA_LOSS, and the block is gone.
  scribble(1);
  std::vector<char> out(kSlot);
  EXPECT_EQ(tm->Get(K(1), out.data(), out.size()).status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(tm->Contains(K(1)));
  // Read in place (a pin, as the UCX get path sends it): VerifyPinned.
  scribble(2);
  auto p2 = tm->Pin(K(2));
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(tm->VerifyPinned(*p2).code(), StatusCode::kDataLoss);
  tm->Release(*p2).IgnoreError();  // the block is gone; the pin ends either way
  EXPECT_FALSE(tm->Contains(K(2)));
  // Demotion: not written to SSD as valid; dropped.
  scribble(3);
  EXPECT_EQ(tm->Evict(K(3), Tier::kSsd).code(), StatusCode::kDataLoss);
  EXPECT_FALSE(tm->Contains(K(3)));
  EXPECT_EQ(tm->GetStats().checksum_failures, 3u);
  EXPECT_EQ(Dropped(tm->GetStats(), Tier::kHost, DropReason::kCorrupt), 3u);
  // Nothing of it on SSD after a restart either.
  tm.reset();
  auto again = OpenOrDie(SmallOptions(dir), AdmitAll());
  ASSERT_NE(again, nullptr);
  for (uint64_t h : {1, 2, 3}) EXPECT_FALSE(again->Contains(K(h))) << h;
}

// The checksum recorded at commit is the one of the bytes written, for every
// put path: the copying Put, a two-phase put without a caller checksum, and
// one with a trusted checksum from the writer's own copy.
TEST(TierManagerTest, EveryCommitRecordsTheChecksumOfTheWrittenBytes) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir), AdmitAll());
  ASSERT_NE(tm, nullptr);
  std::vector<char> v = Payload(K(5), kSlot);
  ASSERT_TRUE(tm->Put(K(5), v.data(), v.size()).ok());
  EXPECT_EQ(tm->Describe(K(5))->checksum, BlockChecksum(v.data(), v.size()));
  auto r = tm->Reserve(K(6), kSlot);
  ASSERT_TRUE(r.ok());
  std::vector<char> w = Payload(K(6), kSlot);
  std::memcpy(r->data, w.data(), w.size());
  ASSERT_TRUE(tm->Commit(*r).ok());
  EXPECT_EQ(tm->Describe(K(6))->checksum, BlockChecksum(w.data(), w.size()));
  auto r7 = tm->Reserve(K(7), kSlot);
  ASSERT_TRUE(r7.ok());
  std::memcpy(r7->data, w.data(), w.size());
  ASSERT_TRUE(tm->Commit(*r7, std::nullopt, BlockChecksum(w.data(), w.size())).ok());
  auto p = tm->Pin(K(7));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(tm->VerifyPinned(*p).ok());
  ASSERT_TRUE(tm->Release(*p).ok());
}

TEST(TierManagerTest, NamespaceChecks) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir));
  ASSERT_TRUE(tm);
  EXPECT_EQ(tm->Reserve(BlockKey{7, 1, 0}, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tm->Reserve(K(1), (64 << 10) + 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tm->Reserve(K(1), 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tm->Reserve(K(1, 4), 10).status().code(), StatusCode::kInvalidArgument);  // layer
  NamespaceConfig c = TestNamespace();
  EXPECT_TRUE(tm->RegisterNamespace(c).ok());  // idempotent
  c.layout = "HND";
  EXPECT_EQ(tm->RegisterNamespace(c).code(), StatusCode::kFailedPrecondition);
  NamespaceConfig big = TestNamespace(9, 2 * kSlot);
  EXPECT_EQ(tm->RegisterNamespace(big).code(), StatusCode::kInvalidArgument);
  // Quota.
  NamespaceConfig q = TestNamespace(8);
  q.quota_bytes = 10000;
  ASSERT_TRUE(tm->RegisterNamespace(q).ok());
  std::vector<char> v(6000, 'x');
  EXPECT_TRUE(tm->Put(BlockKey{8, 1, 0}, v.data(), v.size()).ok());
  EXPECT_EQ(tm->Put(BlockKey{8, 2, 0}, v.data(), v.size()).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(tm->NamespaceUsedBytes(8), 6000u);
  EXPECT_EQ(tm->ListNamespaces().size(), 2u);
  EXPECT_EQ(tm->GetNamespace(8)->quota_bytes, 10000u);
}

TEST(TierManagerTest, LookupPrefixStopsAtFirstMiss) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 16));
  ASSERT_TRUE(tm);
  std::vector<uint64_t> chain = {11, 12, 13, 14, 15, 16};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(tm->Put(K(chain[i], 1), Payload(K(chain[i], 1), 100).data(), 100).ok());
  }
  ASSERT_TRUE(tm->Put(K(chain[5], 1), Payload(K(chain[5], 1), 100).data(), 100).ok());
  std::vector<Tier> tiers;
  EXPECT_EQ(tm->LookupPrefix(42, chain, 1, &tiers), 4u);
  EXPECT_EQ(tiers.size(), 4u);
  EXPECT_EQ(tm->LookupPrefix(42, chain, 0), 0u);  // other layer
  EXPECT_EQ(tm->LookupPrefix(43, chain, 1), 0u);  // other namespace
}

TEST(TierManagerTest, HostOverflowDemotesToSsdAndPromotesBack) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 4), AdmitAll());
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot).ok()) << i;
  }
  for (uint64_t i = 0; i < 20; ++i) ExpectBlock(*tm, K(i), kSlot);
  StoreStats s = tm->GetStats();
  EXPECT_GT(s.moves[1][2], 0u);            // host -> ssd
  EXPECT_GT(s.tiers[2].hits, 0u);          // served from ssd (promoted or read directly)
  EXPECT_EQ(s.drops[1] + s.drops[2], 0u);  // admit-all: nothing dropped
  EXPECT_LE(s.tiers[1].used_slots, 4u);
  EXPECT_GT(s.tiers[2].blocks, 0u);
}

TEST(TierManagerTest, OneHitBlocksAreDemotedWhileSsdHasRoom) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 4));  // default LRU: second-hit admission
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 12; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot).ok());
  }
  ASSERT_TRUE(tm->Flush().ok());
  const StoreStats s = tm->GetStats();
  EXPECT_EQ(s.drops[1] + s.drops[2], 0u);
  EXPECT_GE(s.moves[1][2], 8u);
  for (uint64_t i = 0; i < 12; ++i) ExpectBlock(*tm, K(i), kSlot);
}

TEST(TierManagerTest, SsdUnderPressureAdmitsReusedBlocksOnly) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 4);
  // 3 slots of SSD; high watermark 0.95: two blocks fit without pressure.
  o.ssd_capacity_bytes = 3 * kSlot;
  auto tm = OpenOrDie(o);  // default LRU: second-hit admission
  ASSERT_TRUE(tm);
  std::vector<char> out(kSlot);
  // One-hit blocks: the first two pushed out of host memory go to SSD (room),
  // the next ones meet a full SSD and are refused by admission.
  for (uint64_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot).ok());
  }
  // A reused block is admitted under pressure; the SSD then sheds its LRU.
  ASSERT_TRUE(tm->Put(K(100), Payload(K(100), kSlot).data(), kSlot).ok());
  ASSERT_TRUE(tm->Get(K(100), out.data(), out.size()).ok());
  for (uint64_t i = 6; i < 12; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot).ok());
  }
  ASSERT_TRUE(tm->Flush().ok());
  ASSERT_TRUE(WaitFor([&] { return tm->GetStats().tiers[2].used_bytes <= 3 * kSlot * 0.95; }));
  const StoreStats s = tm->GetStats();
  EXPECT_GT(Dropped(s, Tier::kHost, DropReason::kAdmission), 0u);
  EXPECT_EQ(Dropped(s, Tier::kHost, DropReason::kAdmission), s.drops[1]);
  EXPECT_EQ(Dropped(s, Tier::kSsd, DropReason::kCapacity), s.drops[2]);
  EXPECT_GT(s.drops[2], 0u);
  ExpectBlock(*tm, K(100), kSlot);   // reused: admitted although the SSD was full
  ExpectBlock(*tm, K(1), kSlot);     // demoted while the SSD had room
  EXPECT_FALSE(tm->Contains(K(0)));  // the SSD's least recent block, shed for K(100)
  EXPECT_FALSE(tm->Contains(K(2)));  // one hit, SSD under pressure: refused
}

// The README example at its sizes: one namespace, 32 layers x 8 blocks of
// 256 KiB, that reports no CAKE statistics, on the daemon's default policy
// (adaptive) and the laptop flags' slot size. Saved, then looked up at once:
// while host and SSD together have room, every block is found and comes back
// byte for byte, and nothing is dropped.
void SaveThenLookupReadmeExample(uint64_t host_bytes) {
  constexpr uint32_t kLayers = 32;
  constexpr uint64_t kBlocks = 8;
  constexpr uint64_t kValue = 256 << 10;
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir);
  o.slot_bytes = 4 << 20;
  o.host_capacity_bytes = host_bytes;
  o.ssd_capacity_bytes = 8ull << 30;
  auto pol = policy::MakePolicy("adaptive");
  ASSERT_TRUE(pol.ok());
  auto opened = TierManager::Open(o, std::move(pol).value());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  TierManager& tm = **opened;
  ASSERT_TRUE(tm.RegisterNamespace(TestNamespace(7, kValue, kLayers)).ok());
  std::vector<uint64_t> chain;
  for (uint64_t b = 0; b < kBlocks; ++b) chain.push_back(0x1000 + b);
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      const BlockKey k{7, h, l};
      ASSERT_TRUE(tm.Put(k, Payload(k, kValue).data(), kValue).ok()) << k.ToString();
    }
  }
  for (uint32_t l = 0; l < kLayers; ++l) {
    EXPECT_EQ(tm.LookupPrefix(7, chain, l), kBlocks) << "layer " << l;
  }
  std::vector<char> out(kValue);
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      const BlockKey k{7, h, l};
      auto n = tm.Get(k, out.data(), out.size());
      ASSERT_TRUE(n.ok()) << k.ToString() << ": " << n.status().ToString();
      ASSERT_EQ(*n, kValue);
      ASSERT_TRUE(out == Payload(k, kValue)) << "bytes differ for " << k.ToString();
    }
  }
  const StoreStats s = tm.GetStats();
  EXPECT_EQ(s.drops[0] + s.drops[1] + s.drops[2], 0u);
}

TEST(TierManagerTest, ReadmeExampleIsDemotedNotDroppedOnLaptopSizes) {
  SaveThenLookupReadmeExample(512ull << 20);  // deploy/flags/laptop.flags: --host_bytes=512M
}

TEST(TierManagerTest, ReadmeExampleIsDemotedNotDroppedOnATinyHostTier) {
  SaveThenLookupReadmeExample(16ull << 20);  // most of the chain must go to SSD
}

TEST(TierManagerTest, DeviceOverflowCascadesToHostAndSsd) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 4, 2), AdmitAll());
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 12; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot, Tier::kDevice).ok()) << i;
  }
  for (uint64_t i = 0; i < 12; ++i) ExpectBlock(*tm, K(i), kSlot);
  StoreStats s = tm->GetStats();
  EXPECT_GT(s.moves[0][1], 0u);  // device -> host
  EXPECT_GT(s.moves[1][2], 0u);  // host -> ssd
  EXPECT_LE(s.tiers[0].used_slots, 2u);
}

// Mixed 16 KiB / 256 KiB / 4 MiB values fill the (emulated) device arena to
// at least 90 % with value bytes, as the host segment's extents do; fixed
// 4 MiB slots would keep about a third. Admin pins keep the mover from
// demoting anything, so "full" is the device tier refusing every size.
TEST(TierManagerTest, DeviceTierPacksMixedValueSizes) {
  constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
  constexpr uint64_t kSizes[] = {16 * kKiB, 256 * kKiB, 4 * kMiB};
  TierManagerOptions o;
  o.slot_bytes = 4 * kMiB;
  o.device_capacity_bytes = 128 * kMiB;
  o.host_capacity_bytes = 4 * kMiB;
  o.host_huge_pages = false;
  o.device_allow_cuda = false;
  o.high_watermark = 1.0;
  o.low_watermark = 1.0;
  o.reserve_wait_us = 1000;
  auto tm = TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  ASSERT_TRUE((*tm)->RegisterNamespace(TestNamespace(42, 4 * kMiB)).ok());
  std::mt19937_64 rng(99);
  std::map<uint64_t, uint64_t> sizes;  // hash -> value size on the device
  std::set<uint64_t> refused;          // sizes the full tier refused
  for (uint64_t h = 0; refused.size() < std::size(kSizes); ++h) {
    const uint64_t size = kSizes[rng() % std::size(kSizes)];
    if (refused.count(size)) continue;
    Status s = (*tm)->Put(K(h), Payload(K(h), size).data(), size, Tier::kDevice);
    if (s.code() == StatusCode::kResourceExhausted) {
      refused.insert(size);
      continue;
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE((*tm)->AdminPin(K(h)).ok());
    sizes[h] = size;
  }
  const StoreStats st = (*tm)->GetStats();
  const TierStats& dev = st.tiers[static_cast<size_t>(Tier::kDevice)];
  EXPECT_EQ(dev.blocks, sizes.size());
  EXPECT_EQ(dev.segment_bytes, 128 * kMiB);
  EXPECT_GE(static_cast<double>(dev.used_bytes), 0.9 * static_cast<double>(dev.segment_bytes))
      << dev.used_bytes << " value bytes in " << sizes.size() << " blocks";
  EXPECT_EQ(st.tiers[static_cast<size_t>(Tier::kHost)].blocks, 0u);
  // Every value reads back from its own extent.
  std::vector<char> out(4 * kMiB);
  for (const auto& [h, size] : sizes) {
    auto n = (*tm)->Get(K(h), out.data(), out.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, size);
    ASSERT_TRUE(std::equal(out.begin(), out.begin() + size, Payload(K(h), size).begin()))
        << K(h).ToString();
  }
}

TEST(TierManagerTest, EvictAdminPinAndDelete) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 8, 2));
  ASSERT_TRUE(tm);
  ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 3000).data(), 3000, Tier::kDevice).ok());
  ASSERT_TRUE(tm->Evict(K(1), Tier::kHost).ok());
  EXPECT_EQ(tm->ListBlocks({})[0].tier, Tier::kHost);
  ASSERT_TRUE(tm->AdminPin(K(1)).ok());
  EXPECT_TRUE(tm->Describe(K(1))->admin_pinned);
  EXPECT_EQ(tm->Describe(K(9)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tm->Evict(K(1), Tier::kSsd).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(tm->AdminUnpin(K(1)).ok());
  ASSERT_TRUE(tm->Evict(K(1), Tier::kSsd).ok());
  auto info = tm->ListBlocks({});
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].tier, Tier::kSsd);
  EXPECT_TRUE(info[0].on_ssd);
  ExpectBlock(*tm, K(1), 3000);
  EXPECT_EQ(tm->Evict(K(99)).code(), StatusCode::kNotFound);
  ASSERT_TRUE(tm->Delete(K(1)).ok());
  EXPECT_FALSE(tm->Contains(K(1)));
  EXPECT_EQ(tm->Delete(K(1)).code(), StatusCode::kNotFound);
  ASSERT_TRUE(tm->Put(K(2), Payload(K(2), 3000).data(), 3000).ok());
  ASSERT_TRUE(tm->Evict(K(2), Tier::kRemote).ok());  // drop
  EXPECT_FALSE(tm->Contains(K(2)));
  EXPECT_EQ(Dropped(tm->GetStats(), Tier::kHost, DropReason::kEvict), 1u);
  EXPECT_EQ(tm->GetStats().deletes, 1u);
}

TEST(TierManagerTest, PinGivesSegmentOffsetAndPromotes) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 8));
  ASSERT_TRUE(tm);
  ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 8192).data(), 8192).ok());
  ASSERT_TRUE(tm->Evict(K(1), Tier::kSsd).ok());
  auto p = tm->Pin(K(1));  // promotion SSD -> host
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tier, Tier::kHost);
  HostSegmentInfo seg = tm->host_segment();
  EXPECT_EQ(seg.slot_bytes, kSlot);
  EXPECT_EQ(p->offset % kSlot, 0u);
  void* m = mmap(nullptr, seg.size, PROT_READ, MAP_SHARED, seg.fd, 0);
  ASSERT_NE(m, MAP_FAILED);
  EXPECT_EQ(std::memcmp(static_cast<char*>(m) + p->offset, Payload(K(1), 8192).data(), 8192), 0);
  munmap(m, seg.size);
  // Pinned blocks are not evictable.
  EXPECT_EQ(tm->Evict(K(1), Tier::kSsd).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(tm->ListBlocks({})[0].pins, 1u);
  ASSERT_TRUE(tm->Release(*p).ok());
  EXPECT_EQ(tm->Release(*p).code(), StatusCode::kAborted);
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.moves[2][1], 1u);
  EXPECT_EQ(s.tiers[2].hits, 1u);
}

TEST(TierManagerTest, ExpiredLeasesAreQuarantinedThenReclaimed) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>();
  TierManagerOptions o = SmallOptions(dir, 4);
  o.clock = clock;
  o.pin_lease_us = 1000;
  o.reservation_lease_us = 1000;
  o.quarantine_us = 5000;
  o.reserve_wait_us = 200'000;
  auto tm = OpenOrDie(o);
  ASSERT_TRUE(tm);
  ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 100).data(), 100).ok());
  auto p = tm->Pin(K(1));
  ASSERT_TRUE(p.ok());
  auto r = tm->Reserve(K(2), 100);  // the writer "dies" without committing
  ASSERT_TRUE(r.ok());
  clock->Advance(2000);
  ASSERT_TRUE(WaitFor([&] { return tm->GetStats().leases_expired == 2; }));
  EXPECT_EQ(tm->GetStats().quarantined_slots, 2u);
  EXPECT_EQ(tm->Release(*p).code(), StatusCode::kAborted);
  EXPECT_EQ(tm->Commit(*r).code(), StatusCode::kAborted);
  EXPECT_FALSE(tm->Contains(K(2)));
  // The reservation's slot is still quarantined: both slots are in use.
  EXPECT_EQ(tm->GetStats().tiers[1].used_slots, 2u);
  clock->Advance(10000);
  ASSERT_TRUE(WaitFor([&] { return tm->GetStats().quarantined_slots == 0; }));
  EXPECT_EQ(tm->GetStats().tiers[1].used_slots, 1u);  // K(1) itself
  ExpectBlock(*tm, K(1), 100);
  ASSERT_TRUE(tm->Put(K(2), Payload(K(2), 100).data(), 100).ok());
}

TEST(TierManagerTest, DrainMovesEverythingToSsdWithProgress) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 16, 4));
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        tm->Put(K(i), Payload(K(i), 1000 + i).data(), 1000 + i, i < 3 ? Tier::kDevice : Tier::kHost)
            .ok());
  }
  uint64_t last_done = 0, last_total = 0;
  ASSERT_TRUE(tm->Drain([&](uint64_t d, uint64_t t) {
                  last_done = d;
                  last_total = t;
                }).ok());
  EXPECT_EQ(last_done, 10u);
  EXPECT_EQ(last_total, 10u);
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.tiers[0].used_slots, 0u);
  EXPECT_EQ(s.tiers[1].used_slots, 0u);
  EXPECT_EQ(s.tiers[2].blocks, 10u);
  EXPECT_EQ(s.moves[0][2], 3u);
  for (uint64_t i = 0; i < 10; ++i) ExpectBlock(*tm, K(i), 1000 + i);
}

TEST(TierManagerTest, ReopenRebuildsIndexFromSsd) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 8);
  {
    auto tm = OpenOrDie(o);
    ASSERT_TRUE(tm);
    for (uint64_t i = 0; i < 6; ++i) {
      ASSERT_TRUE(
          tm->Put(K(i, i % 4), Payload(K(i, i % 4), 777 * (i + 1)).data(), 777 * (i + 1)).ok());
    }
    ASSERT_TRUE(tm->Drain().ok());
    ASSERT_TRUE(tm->Delete(K(5, 1)).ok());
    ASSERT_TRUE(tm->Flush().ok());
  }
  auto tm = OpenOrDie(o);
  ASSERT_TRUE(tm);
  EXPECT_EQ(tm->GetStats().tiers[2].blocks, 5u);
  EXPECT_EQ(tm->GetStats().ssd_quarantines, 0u);
  for (uint64_t i = 0; i < 5; ++i) ExpectBlock(*tm, K(i, i % 4), 777 * (i + 1));
  EXPECT_FALSE(tm->Contains(K(5, 1)));
}

TEST(TierManagerTest, LayoutMismatchAfterReopenIsFailedPrecondition) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 8);
  {
    auto tm = OpenOrDie(o);
    ASSERT_TRUE(tm);
    ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 100).data(), 100).ok());
    ASSERT_TRUE(tm->Drain().ok());
  }
  auto tm = TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm.ok());
  NamespaceConfig c = TestNamespace();
  c.kv_dtype = "fp8_e4m3";  // same namespace id, different layout
  ASSERT_TRUE((*tm)->RegisterNamespace(c).ok());
  std::vector<char> out(kSlot);
  EXPECT_EQ((*tm)->Get(K(1), out.data(), out.size()).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ((*tm)->Pin(K(1)).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*tm)->GetStats().layout_mismatches, 2u);
}

// Flips one payload byte of `key`'s SSD value through raw RocksDB.
void CorruptViaRocksDb(const std::string& path, const BlockKey& key) {
  SsdTier::Options so;
  so.path = path;
  rocksdb::Options ro = SsdTier::MakeDbOptions(so);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(ro)},
      {"meta", rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> h;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(ro), path, cfs, &h, &db).ok());
  EncodedBlockKey ek = EncodeBlockKey(key);
  std::string value;
  ASSERT_TRUE(
      db->Get(rocksdb::ReadOptions(), h[0], rocksdb::Slice(ek.data(), ek.size()), &value).ok());
  value[SsdHeader::kEncodedSize + value.size() / 2] ^= 0x01;
  ASSERT_TRUE(
      db->Put(rocksdb::WriteOptions(), h[0], rocksdb::Slice(ek.data(), ek.size()), value).ok());
  for (auto* c : h) ASSERT_TRUE(db->DestroyColumnFamilyHandle(c).ok());
  delete db;
}

TEST(TierManagerTest, CorruptSsdValueIsAMissWithCounter) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 8);
  {
    auto tm = OpenOrDie(o);
    ASSERT_TRUE(tm);
    ASSERT_TRUE(tm->Put(K(1), Payload(K(1), 20000).data(), 20000).ok());
    ASSERT_TRUE(tm->Put(K(2), Payload(K(2), 20000).data(), 20000).ok());
    ASSERT_TRUE(tm->Drain().ok());
  }
  CorruptViaRocksDb(o.ssd_path, K(1));
  auto tm = OpenOrDie(o);
  ASSERT_TRUE(tm);
  std::vector<char> out(kSlot, 0);
  auto r = tm->Get(K(1), out.data(), out.size());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(tm->GetStats().checksum_failures, 1u);
  // The corrupt block is forgotten: a plain miss afterwards.
  EXPECT_EQ(tm->Get(K(1), out.data(), out.size()).status().code(), StatusCode::kNotFound);
  ExpectBlock(*tm, K(2), 20000);
}

TEST(TierManagerTest, ByteFlippedInBlobFileIsDetected) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 8);
  const uint64_t size = 60000;
  {
    auto tm = OpenOrDie(o);
    ASSERT_TRUE(tm);
    ASSERT_TRUE(tm->Put(K(1), Payload(K(1), size).data(), size).ok());
    ASSERT_TRUE(tm->Drain().ok());
    ASSERT_TRUE(tm->Flush().ok());  // the value now lives in a blob file, not only the WAL
  }
  // Find the payload in a blob file on disk and flip one byte of it.
  std::vector<char> payload = Payload(K(1), size);
  std::string needle(payload.begin() + 1000, payload.begin() + 1064);
  bool flipped = false;
  for (const auto& e : std::filesystem::directory_iterator(o.ssd_path)) {
    if (e.path().extension() != ".blob") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t pos = content.find(needle);
    if (pos == std::string::npos) continue;
    std::fstream f(e.path(), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(pos + 10));
    char c = static_cast<char>(content[pos + 10] ^ 0x20);
    f.write(&c, 1);
    flipped = true;
  }
  ASSERT_TRUE(flipped) << "payload not found on disk";
  auto tm = OpenOrDie(o);
  ASSERT_TRUE(tm);
  std::vector<char> out(kSlot, 0);
  auto r = tm->Get(K(1), out.data(), out.size());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kDataLoss ||
              r.status().code() == StatusCode::kNotFound)
      << r.status().ToString();
  EXPECT_GE(tm->GetStats().checksum_failures, 1u) << r.status().ToString();
}

TEST(TierManagerTest, CorruptSsdManifestStartsWithAnEmptyTier) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 8);
  {
    auto tm = OpenOrDie(o);
    ASSERT_TRUE(tm);
    for (uint64_t i = 0; i < 4; ++i) {
      ASSERT_TRUE(tm->Put(K(i), Payload(K(i), 20000).data(), 20000).ok());
    }
    ASSERT_TRUE(tm->Drain().ok());
    ASSERT_TRUE(tm->Flush().ok());
  }
  bool clobbered = false;
  for (const auto& e : std::filesystem::directory_iterator(o.ssd_path)) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) != 0) continue;
    std::fstream f(e.path(), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(10);
    f.write(std::string(40, '\xA5').data(), 40);
    clobbered = f.good();
  }
  ASSERT_TRUE(clobbered);
  auto tm = OpenOrDie(o);
  ASSERT_TRUE(tm);
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.ssd_quarantines, 1u);
  EXPECT_EQ(s.tiers[2].blocks, 0u);
  EXPECT_EQ(s.tiers[2].used_bytes, 0u);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_FALSE(tm->Contains(K(i)));
  size_t quarantined = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().filename().string().rfind("ssd.corrupt-", 0) == 0) ++quarantined;
  }
  EXPECT_EQ(quarantined, 1u);
  // The fresh tier takes new blocks.
  ASSERT_TRUE(tm->Put(K(7), Payload(K(7), 20000).data(), 20000).ok());
  ASSERT_TRUE(tm->Drain().ok());
  EXPECT_EQ(tm->GetStats().tiers[2].blocks, 1u);
  ExpectBlock(*tm, K(7), 20000);
}

TEST(TierManagerTest, SetCapacityShrinksHostByDemotion) {
  TempDir dir;
  auto tm = OpenOrDie(SmallOptions(dir, 8), AdmitAll());
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), kSlot).data(), kSlot).ok());
  }
  EXPECT_EQ(tm->SetCapacity(Tier::kHost, 100 * kSlot).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(tm->SetCapacity(Tier::kHost, 2 * kSlot).ok());
  ASSERT_TRUE(WaitFor([&] { return tm->GetStats().tiers[1].used_slots <= 2; }));
  EXPECT_EQ(tm->GetStats().tiers[1].capacity_bytes, 2 * kSlot);
  for (uint64_t i = 0; i < 8; ++i) ExpectBlock(*tm, K(i), kSlot);
  // SSD capacity: shrinking it drops blocks (lowest first).
  ASSERT_TRUE(tm->SetCapacity(Tier::kSsd, 3 * kSlot).ok());
  ASSERT_TRUE(WaitFor([&] { return tm->GetStats().tiers[2].used_bytes <= 3 * kSlot; }));
  EXPECT_GT(tm->GetStats().drops[2], 0u);
  EXPECT_EQ(Dropped(tm->GetStats(), Tier::kSsd, DropReason::kCapacity), tm->GetStats().drops[2]);
}

TEST(TierManagerTest, NoSsdTierDropsOnOverflow) {
  TempDir dir;
  TierManagerOptions o = SmallOptions(dir, 2);
  o.ssd_path.clear();
  auto tm = OpenOrDie(o, AdmitAll());
  ASSERT_TRUE(tm);
  EXPECT_FALSE(tm->has_ssd_tier());
  // 100-byte values take 4 KiB extents: 32 fit in the two 64 KiB pages.
  for (uint64_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), 100).data(), 100).ok());
  }
  EXPECT_GT(tm->GetStats().drops[1], 0u);
  EXPECT_EQ(Dropped(tm->GetStats(), Tier::kHost, DropReason::kNoSsd), tm->GetStats().drops[1]);
  ExpectBlock(*tm, K(39), 100);
  EXPECT_EQ(tm->Drain().code(), StatusCode::kUnavailable);
}

// A policy that delegates to LRU and records the signals it receives.
class RecordingPolicy final : public policy::Policy {
 public:
  explicit RecordingPolicy(std::vector<uint32_t>* layers) : layers_(layers) {}
  // Keys SelectPromotions returns for each tier (thread-safe: guarded by the
  // TierManager's lock on its side, by `mu` on the test's side).
  std::mutex mu;
  std::map<Tier, std::vector<BlockKey>> promote;
  std::vector<BlockKey> SelectPromotions(Tier t, uint64_t bytes) override {
    std::lock_guard<std::mutex> lk(mu);
    return promote[t];
  }
  std::string_view name() const override { return "recording"; }
  void SetTierCapacity(Tier t, uint64_t b) override { lru_.SetTierCapacity(t, b); }
  void OnInsert(const BlockKey& k, Tier t, uint64_t b, uint64_t tick) override {
    lru_.OnInsert(k, t, b, tick);
  }
  void OnAccess(const BlockKey& k, Tier t, uint64_t tick) override { lru_.OnAccess(k, t, tick); }
  void OnMove(const BlockKey& k, Tier f, Tier t, uint64_t tick) override {
    lru_.OnMove(k, f, t, tick);
  }
  void OnRemove(const BlockKey& k, Tier t) override { lru_.OnRemove(k, t); }
  std::vector<BlockKey> SelectVictims(Tier t, uint64_t b,
                                      const std::function<bool(const BlockKey&)>& e) override {
    return lru_.SelectVictims(t, b, e);
  }
  bool Admit(const BlockKey& k, Tier t) override { return lru_.Admit(k, t); }
  void ReportLayerSignal(uint64_t ns, const policy::LayerSignal& s) override {
    layers_->push_back(s.layer);
  }
  void SetServingMode(uint64_t ns, policy::ServingMode mode) override { serving[ns] = mode; }
  std::map<uint64_t, policy::ServingMode> serving;  // what SetServingMode was told

 private:
  policy::LruPolicy lru_;
  std::vector<uint32_t>* layers_;
};

TEST(TierManagerTest, ReportLayerSignalReachesPolicy) {
  TempDir dir;
  std::vector<uint32_t> layers;
  auto tm = OpenOrDie(SmallOptions(dir), std::make_unique<RecordingPolicy>(&layers));
  ASSERT_TRUE(tm);
  policy::LayerSignal sig;
  sig.layer = 3;
  sig.preference = 2.0;
  tm->ReportLayerSignal(42, sig);
  EXPECT_EQ(tm->policy_name(), "recording");
  EXPECT_EQ(layers, std::vector<uint32_t>{3});
}

// A namespace's serving mode reaches the policy at registration; a second
// registration with another mode does not change it (like the quota).
TEST(TierManagerTest, RegisterNamespaceTellsThePolicyHowItServes) {
  TempDir dir;
  std::vector<uint32_t> layers;
  auto owned = std::make_unique<RecordingPolicy>(&layers);
  RecordingPolicy* policy = owned.get();
  auto tm = OpenOrDie(SmallOptions(dir), std::move(owned));
  ASSERT_TRUE(tm);
  NamespaceConfig budgeted = TestNamespace(7);
  budgeted.serving = policy::ServingMode::kBudgeted;
  ASSERT_TRUE(tm->RegisterNamespace(budgeted).ok());
  ASSERT_TRUE(tm->RegisterNamespace(TestNamespace(8)).ok());
  NamespaceConfig again = TestNamespace(8);
  again.serving = policy::ServingMode::kBudgeted;
  ASSERT_TRUE(tm->RegisterNamespace(again).ok());
  EXPECT_EQ(policy->serving.at(7), policy::ServingMode::kBudgeted);
  EXPECT_EQ(policy->serving.at(8), policy::ServingMode::kExact);
  EXPECT_EQ(tm->GetNamespace(8)->serving, policy::ServingMode::kExact);
}

TEST(TierManagerTest, MoverCarriesOutPolicyPromotions) {
  TempDir dir;
  std::vector<uint32_t> layers;
  auto policy = std::make_unique<RecordingPolicy>(&layers);
  RecordingPolicy* pol = policy.get();
  auto tm = OpenOrDie(SmallOptions(dir, 8, 4), std::move(policy));
  ASSERT_TRUE(tm);
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(tm->Put(K(i), Payload(K(i), 5000).data(), 5000).ok());
    ASSERT_TRUE(tm->Evict(K(i), Tier::kSsd).ok());
  }
  {
    std::lock_guard<std::mutex> lk(pol->mu);
    pol->promote[Tier::kHost] = {K(1), K(2)};
  }
  auto tier_of = [&](const BlockKey& k) {
    auto b = tm->Describe(k);
    return b.ok() ? b->tier : Tier::kRemote;
  };
  ASSERT_TRUE(
      WaitFor([&] { return tier_of(K(1)) == Tier::kHost && tier_of(K(2)) == Tier::kHost; }));
  EXPECT_EQ(tier_of(K(0)), Tier::kSsd);
  {
    std::lock_guard<std::mutex> lk(pol->mu);
    pol->promote[Tier::kHost].clear();
    pol->promote[Tier::kDevice] = {K(2)};
  }
  ASSERT_TRUE(WaitFor([&] { return tier_of(K(2)) == Tier::kDevice; }));
  StoreStats s = tm->GetStats();
  EXPECT_EQ(s.moves[2][1], 2u);
  EXPECT_EQ(s.moves[1][0], 1u);
  for (uint64_t i = 0; i < 3; ++i) ExpectBlock(*tm, K(i), 5000);
}

}  // namespace
}  // namespace kvcake::store
