#include "store/ssd_tier.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <set>

#include "store/checksum.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

using testing::Payload;
using testing::TempDir;

SsdTier::WriteItem Item(const BlockKey& k, const std::vector<char>& v, uint64_t fp = 7) {
  return SsdTier::WriteItem{k, v.data(), v.size(), BlockChecksum(v.data(), v.size()), fp};
}

TEST(SsdHeaderTest, RoundTripAndErrors) {
  char buf[SsdHeader::kEncodedSize];
  SsdHeader{12345, 0xdeadbeefcafef00dULL, 99}.EncodeTo(buf);
  auto h = SsdHeader::Decode(std::string_view(buf, sizeof(buf)));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size, 12345u);
  EXPECT_EQ(h->checksum, 0xdeadbeefcafef00dULL);
  EXPECT_EQ(h->fingerprint, 99u);
  EXPECT_EQ(SsdHeader::Decode(std::string_view(buf, 10)).status().code(), StatusCode::kDataLoss);
  buf[4] = 9;  // version
  EXPECT_EQ(SsdHeader::Decode(std::string_view(buf, sizeof(buf))).status().code(),
            StatusCode::kUnimplemented);
  buf[0] ^= 1;  // magic
  EXPECT_EQ(SsdHeader::Decode(std::string_view(buf, sizeof(buf))).status().code(),
            StatusCode::kDataLoss);
}

TEST(SsdTierTest, RocksStatusConversion) {
  EXPECT_TRUE(FromRocksStatus(rocksdb::Status::OK(), "x").ok());
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::NoSpace("full"), "x").code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::Corruption("bad"), "x").code(), StatusCode::kDataLoss);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::NotFound(), "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(FromRocksStatus(rocksdb::Status::IOError("io"), "x").code(), StatusCode::kUnavailable);
}

TEST(SsdTierTest, WriteReadDeleteAndRebuild) {
  TempDir dir;
  SsdTier::Options o;
  o.path = dir.Sub("db");
  std::vector<BlockKey> keys;
  {
    auto ssd = SsdTier::Open(o);
    ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
    std::vector<std::vector<char>> values;
    std::vector<SsdTier::WriteItem> items;
    for (uint64_t i = 0; i < 10; ++i) {
      keys.push_back(BlockKey{5, i, 1});
      values.push_back(Payload(keys.back(), 1000 + i * 4096));
    }
    for (size_t i = 0; i < keys.size(); ++i) items.push_back(Item(keys[i], values[i]));
    ASSERT_TRUE((*ssd)->Write(items).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      std::vector<char> out(values[i].size());
      auto h = (*ssd)->Read(keys[i], out.data(), out.size());
      ASSERT_TRUE(h.ok()) << h.status().ToString();
      EXPECT_EQ(h->size, values[i].size());
      EXPECT_EQ(out, values[i]);
    }
    std::vector<char> small(10);
    EXPECT_EQ((*ssd)->Read(keys[9], small.data(), small.size()).status().code(),
              StatusCode::kOutOfRange);
    BlockKey del = keys[3];
    ASSERT_TRUE((*ssd)->Write({}, std::span<const BlockKey>(&del, 1)).ok());
    EXPECT_EQ((*ssd)->Read(del, small.data(), small.size()).status().code(), StatusCode::kNotFound);
  }
  auto ssd = SsdTier::Open(o);
  ASSERT_TRUE(ssd.ok());
  std::set<uint64_t> seen;
  ASSERT_TRUE((*ssd)
                  ->ForEachHeader([&](const BlockKey& k, const SsdHeader& h) {
                    EXPECT_EQ(h.size, 1000 + k.hash * 4096);
                    EXPECT_EQ(h.fingerprint, 7u);
                    seen.insert(k.hash);
                  })
                  .ok());
  EXPECT_EQ(seen, (std::set<uint64_t>{0, 1, 2, 4, 5, 6, 7, 8, 9}));
}

// Bytes in RocksDB's write-ahead log files (*.log) under `dir`.
uint64_t WalBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (f.is_regular_file() && f.path().extension() == ".log") n += f.file_size();
  }
  return n;
}

TEST(SsdTierTest, WriteAheadLogCanBeSkipped) {
  for (bool wal : {true, false}) {
    TempDir dir;
    SsdTier::Options o;
    o.path = dir.Sub("db");
    o.write_ahead_log = wal;
    const BlockKey key{5, 1, 0};
    const std::vector<char> value = Payload(key, 64);
    {
      auto ssd = SsdTier::Open(o);
      ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
      const SsdTier::WriteItem item = Item(key, value);
      ASSERT_TRUE((*ssd)->Write(std::span<const SsdTier::WriteItem>(&item, 1)).ok());
      std::vector<char> out(value.size());
      ASSERT_TRUE((*ssd)->Read(key, out.data(), out.size()).ok());
      EXPECT_EQ(out, value);
      EXPECT_EQ(WalBytes(dir.Sub("db")) > 0, wal);
    }
    // A clean close keeps the block either way.
    auto ssd = SsdTier::Open(o);
    ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
    std::vector<char> out(value.size());
    ASSERT_TRUE((*ssd)->Read(key, out.data(), out.size()).ok()) << "wal " << wal;
    EXPECT_EQ(out, value);
  }
  SsdTier::Options o;
  o.path = "/tmp/unused";
  o.sync = true;
  o.write_ahead_log = false;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(SsdTierTest, CorruptValueIsDataLoss) {
  TempDir dir;
  SsdTier::Options o;
  o.path = dir.Sub("db");
  BlockKey k{1, 2, 3};
  std::vector<char> v = Payload(k, 64 << 10);
  {
    auto ssd = SsdTier::Open(o);
    ASSERT_TRUE(ssd.ok());
    ASSERT_TRUE((*ssd)->Write(std::vector<SsdTier::WriteItem>{Item(k, v)}).ok());
  }
  {
    // Overwrite the value with one whose payload has a flipped byte, via raw RocksDB.
    rocksdb::Options ro = SsdTier::MakeDbOptions(o);
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(ro)},
        {"meta", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(ro), o.path, cfs, &h, &db).ok());
    EncodedBlockKey ek = EncodeBlockKey(k);
    std::string value;
    ASSERT_TRUE(
        db->Get(rocksdb::ReadOptions(), h[0], rocksdb::Slice(ek.data(), ek.size()), &value).ok());
    value[SsdHeader::kEncodedSize + 100] ^= 0x40;
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), h[0], rocksdb::Slice(ek.data(), ek.size()), value).ok());
    for (auto* c : h) ASSERT_TRUE(db->DestroyColumnFamilyHandle(c).ok());
    delete db;
  }
  auto ssd = SsdTier::Open(o);
  ASSERT_TRUE(ssd.ok());
  std::vector<char> out(v.size(), 0);
  EXPECT_EQ((*ssd)->Read(k, out.data(), out.size()).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kvcake::store
