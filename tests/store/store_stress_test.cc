// Multi-threaded stress test: threads put / get / pin / delete / demote the
// same small key space concurrently; every byte read is verified. Labelled
// tsan as well: it must be race-free.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "policy/lru_policy.h"
#include "store/tier_manager.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

using testing::TempDir;

constexpr uint64_t kSlot = 16 << 10;
constexpr uint64_t kKeys = 48;

// Payload of (key, version): the first 8 bytes hold the version, the rest is
// derived from (key, version), so any torn or mixed block is detected.
void MakeValue(const BlockKey& key, uint64_t version, size_t size, char* out) {
  testing::FillPayload(key, version, out, size);
  std::memcpy(out, &version, sizeof(version));
}

bool CheckValue(const BlockKey& key, const char* data, size_t size) {
  if (size < 8) return false;
  uint64_t version;
  std::memcpy(&version, data, sizeof(version));
  std::vector<char> expect(size);
  MakeValue(key, version, size, expect.data());
  return std::memcmp(expect.data(), data, size) == 0;
}

size_t SizeOf(uint64_t h) { return 1024 + (h * 2654435761u) % (kSlot - 1024); }

TEST(StoreStressTest, ConcurrentPutGetDeleteDemoteVerifiesEveryByte) {
  TempDir dir;
  TierManagerOptions o;
  o.slot_bytes = kSlot;
  o.device_capacity_bytes = 4 * kSlot;
  o.host_capacity_bytes = 12 * kSlot;
  o.ssd_path = dir.Sub("ssd");
  o.host_huge_pages = false;
  o.device_allow_cuda = false;
  o.mover_interval_us = 1000;
  o.mover_batch_blocks = 4;
  o.ssd_write_buffer_bytes = 4 << 20;
  auto tm_or = TierManager::Open(
      o, std::make_unique<policy::LruPolicy>(policy::LruPolicyOptions{.ssd_admission_hits = 1}));
  ASSERT_TRUE(tm_or.ok()) << tm_or.status().ToString();
  TierManager& tm = **tm_or;
  NamespaceConfig ns = testing::TestNamespace(42, kSlot, 2);
  ASSERT_TRUE(tm.RegisterNamespace(ns).ok());

  constexpr int kThreads = 6;
#if defined(__SANITIZE_THREAD__)
  constexpr int kOps = 1500;
#else
  constexpr int kOps = 5000;
#endif
  std::atomic<uint64_t> corrupt{0}, reads_ok{0}, puts_ok{0}, unexpected{0};
  std::atomic<uint64_t> version_counter{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + t);
      std::vector<char> buf(kSlot);
      for (int i = 0; i < kOps; ++i) {
        BlockKey key{42, rng() % kKeys, static_cast<uint32_t>(rng() % 2)};
        const size_t size = SizeOf(key.hash * 2 + key.layer);
        const int op = static_cast<int>(rng() % 100);
        if (op < 30) {  // put (two-phase), device or host
          auto r = tm.Reserve(key, size, rng() % 4 == 0 ? Tier::kDevice : Tier::kHost);
          if (!r.ok()) {
            StatusCode c = r.status().code();
            if (c != StatusCode::kAlreadyExists && c != StatusCode::kAborted &&
                c != StatusCode::kResourceExhausted) {
              ++unexpected;
            }
            continue;
          }
          MakeValue(key, version_counter.fetch_add(1), size, buf.data());
          std::memcpy(r->data, buf.data(), size);  // emulated device: host memory
          if (rng() % 10 == 0) {
            if (!tm.Abort(*r).ok()) ++unexpected;
          } else if (tm.Commit(*r).ok()) {
            ++puts_ok;
          } else {
            ++unexpected;
          }
        } else if (op < 60) {  // copying get
          auto n = tm.Get(key, buf.data(), buf.size());
          if (n.ok()) {
            ++reads_ok;
            if (*n != size || !CheckValue(key, buf.data(), *n)) ++corrupt;
          } else if (n.status().code() != StatusCode::kNotFound &&
                     n.status().code() != StatusCode::kResourceExhausted) {
            ++unexpected;
          }
        } else if (op < 75) {  // pin, read in place, release
          auto p = tm.Pin(key);
          if (p.ok()) {
            ++reads_ok;
            if (p->size != size || !CheckValue(key, static_cast<const char*>(p->data), p->size)) {
              ++corrupt;
            }
            if (!tm.Release(*p).ok()) ++unexpected;
          } else if (p.status().code() != StatusCode::kNotFound &&
                     p.status().code() != StatusCode::kResourceExhausted) {
            ++unexpected;
          }
        } else if (op < 85) {  // delete
          Status s = tm.Delete(key);
          if (!s.ok() && s.code() != StatusCode::kNotFound &&
              s.code() != StatusCode::kFailedPrecondition) {
            ++unexpected;
          }
        } else if (op < 95) {  // demote now
          Status s = tm.Evict(key, rng() % 2 ? Tier::kSsd : Tier::kHost);
          if (!s.ok() && s.code() != StatusCode::kNotFound &&
              s.code() != StatusCode::kFailedPrecondition && s.code() != StatusCode::kAborted &&
              s.code() != StatusCode::kResourceExhausted) {
            ++unexpected;
          }
        } else {  // prefix lookup + stats
          uint64_t hashes[4] = {key.hash, key.hash + 1, key.hash + 2, key.hash + 3};
          (void)tm.LookupPrefix(42, hashes, key.layer);
          (void)tm.GetStats();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0u);
  EXPECT_EQ(unexpected.load(), 0u);
  EXPECT_GT(reads_ok.load(), 0u);
  EXPECT_GT(puts_ok.load(), 0u);
  // Everything still present reads back intact after the dust settles.
  ASSERT_TRUE(tm.Flush().ok());
  std::vector<char> buf(kSlot);
  BlockFilter all;
  all.limit = 100000;
  for (const BlockInfo& b : tm.ListBlocks(all)) {
    auto n = tm.Get(b.key, buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << b.key.ToString() << " " << n.status().ToString();
    EXPECT_TRUE(CheckValue(b.key, buf.data(), *n));
  }
  StoreStats s = tm.GetStats();
  EXPECT_EQ(s.checksum_failures, 0u);
  EXPECT_GT(s.moves[1][2] + s.moves[0][2], 0u);  // demotions happened
}

}  // namespace
}  // namespace kvcake::store
