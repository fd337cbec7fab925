// SsdTier::Open on a damaged RocksDB directory: corruption moves the
// directory aside and opens an empty tier; other open failures do not.
// Real RocksDB in a temporary directory; the damage is done to the files.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "store/checksum.h"
#include "store/ssd_tier.h"
#include "tests/store/store_test_util.h"

namespace kvcake::store {
namespace {

namespace fs = std::filesystem;
using testing::Payload;
using testing::TempDir;

constexpr int kBlocks = 20;
constexpr size_t kBlockBytes = 16 << 10;  // payloads go to blob files

BlockKey Key(int i) { return BlockKey{9, static_cast<uint64_t>(i), 0}; }

// The options of a tier at <dir>/db.
SsdTier::Options TierOptions(const TempDir& dir, bool quarantine_corrupt = true) {
  SsdTier::Options o;
  o.path = dir.Sub("db");
  o.quarantine_corrupt = quarantine_corrupt;
  return o;
}

// Writes kBlocks blocks and flushes them to SST and blob files, then closes.
void WriteBlocks(const SsdTier::Options& o) {
  auto ssd = SsdTier::Open(o);
  ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
  std::vector<std::vector<char>> values;
  std::vector<SsdTier::WriteItem> items;
  for (int i = 0; i < kBlocks; ++i) values.push_back(Payload(Key(i), kBlockBytes));
  for (int i = 0; i < kBlocks; ++i) {
    items.push_back(SsdTier::WriteItem{Key(i), values[i].data(), values[i].size(),
                                       BlockChecksum(values[i].data(), values[i].size()), 1});
  }
  ASSERT_TRUE((*ssd)->Write(items).ok());
  ASSERT_TRUE((*ssd)->FlushMemtables().ok());
}

// Files in `dir` whose name starts with `prefix` and ends with `suffix`, sorted.
std::vector<fs::path> FilesIn(const std::string& dir, const std::string& prefix,
                              const std::string& suffix = "") {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && n.size() >= suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Overwrites `len` bytes at `offset` (from the end when negative) with 0xA5.
void Clobber(const fs::path& file, int64_t offset, size_t len) {
  int64_t size = static_cast<int64_t>(fs::file_size(file));
  if (offset < 0) offset += size;
  ASSERT_GE(offset, 0);
  ASSERT_LE(offset + static_cast<int64_t>(len), size);
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(offset);
  std::string junk(len, '\xA5');
  f.write(junk.data(), static_cast<std::streamsize>(len));
  ASSERT_TRUE(f.good());
}

size_t CountHeaders(SsdTier& ssd) {
  size_t n = 0;
  EXPECT_TRUE(ssd.ForEachHeader([&](const BlockKey&, const SsdHeader&) { ++n; }).ok());
  return n;
}

// Siblings of the tier directory `<dir>/db` that hold a quarantined copy.
std::vector<fs::path> QuarantineDirs(const TempDir& dir) {
  return FilesIn(dir.path(), "db.corrupt-");
}

// The data files (SSTs and blob files) in `dir`. A successful RocksDB open
// rewrites MANIFEST and OPTIONS, so those are not compared.
std::set<std::string> DataFiles(const std::string& dir) {
  std::set<std::string> out;
  for (const fs::path& f : FilesIn(dir, "", ".sst")) out.insert(f.filename().string());
  for (const fs::path& f : FilesIn(dir, "", ".blob")) out.insert(f.filename().string());
  return out;
}

// Opens the damaged tier and checks the quarantine: open succeeds, the tier is
// empty and writable, the old data files sit in one `db.corrupt-*` sibling.
void ExpectQuarantined(const TempDir& dir, const SsdTier::Options& o,
                       const std::set<std::string>& old_files) {
  auto ssd = SsdTier::Open(o);
  ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
  EXPECT_TRUE((*ssd)->quarantined());
  EXPECT_EQ(CountHeaders(**ssd), 0u);
  std::vector<char> out(kBlockBytes);
  EXPECT_EQ((*ssd)->Read(Key(0), out.data(), out.size()).status().code(), StatusCode::kNotFound);
  std::vector<char> v = Payload(Key(0), kBlockBytes);
  SsdTier::WriteItem item{Key(0), v.data(), v.size(), BlockChecksum(v.data(), v.size()), 1};
  ASSERT_TRUE((*ssd)->Write(std::span<const SsdTier::WriteItem>(&item, 1)).ok());
  EXPECT_EQ(CountHeaders(**ssd), 1u);

  std::vector<fs::path> q = QuarantineDirs(dir);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ((*ssd)->quarantined_path(), q[0].string());
  EXPECT_FALSE(old_files.empty());
  std::set<std::string> kept = DataFiles(q[0].string());
  for (const std::string& f : old_files) EXPECT_TRUE(kept.count(f)) << f << " not kept in " << q[0];
  EXPECT_TRUE(fs::exists(q[0] / "CURRENT"));
}

// Clobbers bytes 10..49 of the tier's only MANIFEST: record checksums no
// longer match.
void ClobberManifest(const std::string& db) {
  std::vector<fs::path> manifests = FilesIn(db, "MANIFEST-");
  ASSERT_EQ(manifests.size(), 1u);
  Clobber(manifests[0], 10, 40);
}

// Writes a tier at <tmp>/db, applies `damage` to its directory (which may
// drop from `old_files` a data file it removes) and expects the next open to
// quarantine it (ExpectQuarantined).
void ExpectDamageQuarantined(
    const std::function<void(const std::string& db, std::set<std::string>* old_files)>& damage) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir);
  ASSERT_NO_FATAL_FAILURE(WriteBlocks(o));
  std::set<std::string> old_files = DataFiles(o.path);
  ASSERT_NO_FATAL_FAILURE(damage(o.path, &old_files));
  ASSERT_NO_FATAL_FAILURE(ExpectQuarantined(dir, o, old_files));
}

TEST(SsdQuarantineTest, CorruptManifestIsQuarantined) {
  ExpectDamageQuarantined(
      [](const std::string& db, std::set<std::string>*) { ClobberManifest(db); });
}

TEST(SsdQuarantineTest, MissingManifestIsQuarantined) {
  ExpectDamageQuarantined([](const std::string& db, std::set<std::string>*) {
    std::vector<fs::path> manifests = FilesIn(db, "MANIFEST-");
    ASSERT_EQ(manifests.size(), 1u);
    fs::remove(manifests[0]);  // CURRENT names a file that is gone
  });
}

TEST(SsdQuarantineTest, CorruptSstFooterIsQuarantined) {
  ExpectDamageQuarantined([](const std::string& db, std::set<std::string>*) {
    std::vector<fs::path> ssts = FilesIn(db, "", ".sst");
    ASSERT_FALSE(ssts.empty());
    Clobber(ssts[0], -20, 16);  // footer: RocksDB's open reads it and fails
  });
}

TEST(SsdQuarantineTest, CorruptSstDataBlockIsQuarantined) {
  ExpectDamageQuarantined([](const std::string& db, std::set<std::string>*) {
    std::vector<fs::path> ssts = FilesIn(db, "", ".sst");
    ASSERT_FALSE(ssts.empty());
    // Inside the first data block (it starts at offset 0): RocksDB's open
    // does not read it; the checksum pass after open does.
    for (const fs::path& f : ssts) Clobber(f, 100, 16);
  });
}

TEST(SsdQuarantineTest, MissingBlobFileIsQuarantined) {
  ExpectDamageQuarantined([](const std::string& db, std::set<std::string>* old_files) {
    std::vector<fs::path> blobs = FilesIn(db, "", ".blob");
    ASSERT_FALSE(blobs.empty());
    fs::remove(blobs[0]);  // RocksDB's open does not notice; the file check does
    old_files->erase(blobs[0].filename().string());
  });
}

TEST(SsdQuarantineTest, EachQuarantineKeepsItsOwnCopy) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir);
  for (size_t round = 1; round <= 2; ++round) {
    ASSERT_NO_FATAL_FAILURE(WriteBlocks(o));
    ASSERT_NO_FATAL_FAILURE(ClobberManifest(o.path));
    auto ssd = SsdTier::Open(o);
    ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
    EXPECT_TRUE((*ssd)->quarantined());
    EXPECT_EQ(QuarantineDirs(dir).size(), round);  // same second: a "-1" suffix
  }
}

TEST(SsdQuarantineTest, QuarantineOffFailsOnCorruptManifest) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir, /*quarantine_corrupt=*/false);
  ASSERT_NO_FATAL_FAILURE(WriteBlocks(o));
  ASSERT_NO_FATAL_FAILURE(ClobberManifest(o.path));
  std::set<std::string> before = DataFiles(o.path);
  auto ssd = SsdTier::Open(o);
  ASSERT_FALSE(ssd.ok());
  EXPECT_EQ(ssd.status().code(), StatusCode::kDataLoss) << ssd.status().ToString();
  EXPECT_TRUE(QuarantineDirs(dir).empty());
  EXPECT_EQ(DataFiles(o.path), before);
}

// Without the file check (quarantine off) RocksDB opens a tier whose SST data
// blocks are damaged; reads then fail with DATA_LOSS and never return bytes.
TEST(SsdQuarantineTest, CorruptSstDataBlockFailsReadsWhenQuarantineOff) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir, /*quarantine_corrupt=*/false);
  ASSERT_NO_FATAL_FAILURE(WriteBlocks(o));
  for (const fs::path& f : FilesIn(o.path, "", ".sst")) Clobber(f, 100, 16);
  auto ssd = SsdTier::Open(o);
  ASSERT_TRUE(ssd.ok()) << ssd.status().ToString();
  EXPECT_FALSE((*ssd)->quarantined());
  for (int i = 0; i < kBlocks; ++i) {
    std::vector<char> out(kBlockBytes, 0);
    auto r = (*ssd)->Read(Key(i), out.data(), out.size());
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << i << ": " << r.status().ToString();
    EXPECT_EQ(out, std::vector<char>(kBlockBytes, 0));
  }
  EXPECT_EQ((*ssd)->ForEachHeader([](const BlockKey&, const SsdHeader&) {}).code(),
            StatusCode::kDataLoss);
  EXPECT_TRUE(QuarantineDirs(dir).empty());
}

TEST(SsdQuarantineTest, LockHeldFailsAndQuarantinesNothing) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir);
  ASSERT_NO_FATAL_FAILURE(WriteBlocks(o));
  auto first = SsdTier::Open(o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = SsdTier::Open(o);  // the LOCK is held by `first`
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().code(), StatusCode::kDataLoss) << second.status().ToString();
  EXPECT_TRUE(QuarantineDirs(dir).empty());
  EXPECT_EQ(CountHeaders(**first), static_cast<size_t>(kBlocks));
}

TEST(SsdQuarantineTest, PathThatIsAFileFailsAndQuarantinesNothing) {
  TempDir dir;
  SsdTier::Options o = TierOptions(dir);
  std::ofstream(o.path) << "not a directory";
  auto ssd = SsdTier::Open(o);
  ASSERT_FALSE(ssd.ok());
  EXPECT_TRUE(QuarantineDirs(dir).empty());
  EXPECT_TRUE(fs::is_regular_file(o.path));
}

}  // namespace
}  // namespace kvcake::store
