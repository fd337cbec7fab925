#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/options.h>

#include "common/block_key.h"
#include "common/result.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace kvcake::store {

// Header stored in front of every SSD value (and alone in the "meta" column
// family). 32 bytes, little-endian:
//   u32 magic 'KVCB' | u16 version (1) | u16 flags (0) | u64 size |
//   u64 checksum (XXH3_64bits of the payload) | u64 namespace fingerprint
struct SsdHeader {
  static constexpr uint32_t kMagic = 0x4256434b;  // "KVCB" as LE bytes
  static constexpr uint16_t kVersion = 1;
  static constexpr size_t kEncodedSize = 32;

  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t fingerprint = 0;

  void EncodeTo(char* out) const;  // writes kEncodedSize bytes
  // DATA_LOSS on a short buffer or bad magic; UNIMPLEMENTED on an unknown version.
  static Result<SsdHeader> Decode(std::string_view bytes);
};

// Converts a RocksDB status once, at the boundary: NoSpace -> RESOURCE_EXHAUSTED,
// Corruption -> DATA_LOSS, NotFound -> NOT_FOUND, Busy/TryAgain -> ABORTED,
// IOError -> UNAVAILABLE, InvalidArgument, NotSupported -> UNIMPLEMENTED, else UNKNOWN.
Status FromRocksStatus(const rocksdb::Status& s, std::string_view what);

// SSD tier (T2): RocksDB with integrated BlobDB. Two column families:
//   default: encoded block key -> SsdHeader + payload (large values in blob files)
//   meta:    encoded block key -> SsdHeader (small; the index is rebuilt from it
//            on open without reading payloads)
// Both are written in one WriteBatch, so a block is either fully present or
// absent after a crash. Every read verifies the payload checksum.
// Owns the rocksdb::DB and its column family handles (RAII).
//
// Open quarantines a damaged directory (Options::quarantine_corrupt): when
// RocksDB reports corruption (IsCorruptTierError) at open, or the checksum
// pass after open finds a bad SST block or a missing / short blob file, the
// directory is closed, renamed to `<path>.corrupt-<UTC yyyymmddThhmmssZ>`
// (kept for inspection, never deleted) and an empty tier is opened at `path`.
// Any other open error (LOCK held, permission denied, no space, path not a
// directory) fails the open and moves nothing.
//
// Thread-safety: all methods are thread-safe (RocksDB is); the TierManager
// issues writes from its single mover thread.
class SsdTier {
 public:
  struct Options {
    std::string path;   // directory, created if missing
    bool sync = false;  // fsync WAL per write batch
    // false: writes skip RocksDB's write-ahead log, so what is not yet
    // flushed to SST / blob files is lost in a crash (a scratch tier, such
    // as a replay's, that is never reopened). Not with `sync`.
    bool write_ahead_log = true;
    uint64_t min_blob_size = 4096;  // values >= this go to blob files
    uint64_t write_buffer_bytes = 64ull << 20;
    // Move a corrupt directory aside and start empty (see the class comment).
    // false: a corrupt directory fails the open (DATA_LOSS / UNAVAILABLE) and
    // no checksum pass runs after open.
    bool quarantine_corrupt = true;
    Status Validate() const;
  };

  // The exact RocksDB options SsdTier uses (also for raw-RocksDB baselines).
  static rocksdb::Options MakeDbOptions(const Options& options);

  static Result<std::unique_ptr<SsdTier>> Open(const Options& options);
  // True when `s`, returned by opening or verifying the directory at `path`,
  // means the files are damaged: any Corruption (bad CURRENT, MANIFEST record
  // checksum, SST footer / size / block checksum, blob file missing or short),
  // or a "path not found" I/O error for a file inside the existing directory
  // (CURRENT names a MANIFEST that is gone).
  static bool IsCorruptTierError(const rocksdb::Status& s, const std::string& path);
  ~SsdTier();
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  struct WriteItem {
    BlockKey key;
    const void* data = nullptr;  // host memory, `size` bytes
    uint64_t size = 0;
    uint64_t checksum = 0;
    uint64_t fingerprint = 0;
  };
  // Writes the deletes, then the blocks, in one atomic WriteBatch.
  // RESOURCE_EXHAUSTED when the disk is full; nothing of the batch is applied
  // on error.
  Status Write(std::span<const WriteItem> items, std::span<const BlockKey> deletes = {});

  // Reads and verifies a block into `dst` (capacity `dst_size`): one copy from
  // RocksDB's buffer. NOT_FOUND; DATA_LOSS on checksum / header mismatch
  // (nothing useful in dst); OUT_OF_RANGE when dst_size is too small.
  Result<SsdHeader> Read(const BlockKey& key, void* dst, uint64_t dst_size) const;

  // Calls `fn` for every block's header (meta column family, no payload
  // reads). Entries whose header does not decode are reported to `bad`.
  Status ForEachHeader(const std::function<void(const BlockKey&, const SsdHeader&)>& fn,
                       const std::function<void(std::string_view key)>& bad = nullptr) const;

  // Flushes memtables of both column families to SST / blob files (the WAL
  // already makes writes crash-safe; this bounds recovery work).
  Status FlushMemtables();
  // Tries to clear a background error (e.g. after disk full) so writes resume.
  Status Resume();
  const std::string& path() const { return options_.path; }
  // Where Open moved a corrupt directory; empty when it did not.
  const std::string& quarantined_path() const { return quarantined_path_; }
  bool quarantined() const { return !quarantined_path_.empty(); }

 private:
  explicit SsdTier(Options options) : options_(std::move(options)) {}

  rocksdb::Status OpenDb();
  // Verifies every live SST's block checksums and that every live blob file
  // exists with its recorded size. Reads SST bytes only (keys, blob indexes
  // and headers: ~100 bytes per block), not blob payloads.
  rocksdb::Status VerifyFiles() const;
  void CloseDb();

  Options options_;
  std::string quarantined_path_;
  rocksdb::WriteOptions write_options_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
};

}  // namespace kvcake::store
