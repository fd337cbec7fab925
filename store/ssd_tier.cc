#include "store/ssd_tier.h"

#include <rocksdb/db.h>
#include <rocksdb/metadata.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>

#include "common/coding.h"
#include "common/logging.h"
#include "store/checksum.h"

namespace kvcake::store {

namespace {
constexpr char kMetaCf[] = "meta";

// RocksDB's info log routed into kvcake's log (warnings and up). Keeps
// RocksDB from writing a LOG file on the SSD tier's own disk, which fails
// (and trips assertions in some RocksDB builds) exactly when the disk is full.
// RocksDB's warnings are routine for it (write stalls, slow compactions):
// they are logged at INFO, so the daemon's log keeps them while tools and
// benchmarks that log warnings and up (the daemons they start included) do
// not print them into their output; RocksDB's errors stay errors.
class RocksLogger final : public rocksdb::Logger {
 public:
  RocksLogger() : rocksdb::Logger(rocksdb::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), format, ap);
    if (level >= rocksdb::ERROR_LEVEL) {
      KVCAKE_LOG(ERROR) << "rocksdb: " << buf;
    } else {
      KVCAKE_LOG(INFO) << "rocksdb warning: " << buf;
    }
  }
};

// `path` without a trailing separator ("/a/b/" -> "/a/b"), so that a sibling
// name can be derived from it.
std::filesystem::path TierDir(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

// Renames the tier directory to `<dir>.corrupt-<UTC time>[-n]` and returns
// the new name. A rename within the parent directory: no data is copied.
Result<std::string> MoveAside(const std::string& path) {
  std::filesystem::path dir = TierDir(path);
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &utc);
  std::string base = dir.string() + ".corrupt-" + stamp;
  std::string target = base;
  std::error_code ec;
  for (int i = 1; std::filesystem::exists(target, ec); ++i) target = base + "-" + std::to_string(i);
  std::filesystem::rename(dir, target, ec);
  if (ec) return UnavailableError("rename " + dir.string() + " -> " + target + ": " + ec.message());
  return target;
}

}  // namespace

void SsdHeader::EncodeTo(char* out) const {
  EncodeFixed<uint32_t>(out, kMagic);
  EncodeFixed<uint16_t>(out + 4, kVersion);
  EncodeFixed<uint16_t>(out + 6, 0);
  EncodeFixed<uint64_t>(out + 8, size);
  EncodeFixed<uint64_t>(out + 16, checksum);
  EncodeFixed<uint64_t>(out + 24, fingerprint);
}

Result<SsdHeader> SsdHeader::Decode(std::string_view bytes) {
  if (bytes.size() < kEncodedSize) return DataLossError("ssd header: short value");
  if (DecodeFixed<uint32_t>(bytes.data()) != kMagic) return DataLossError("ssd header: bad magic");
  const uint16_t version = DecodeFixed<uint16_t>(bytes.data() + 4);
  if (version != kVersion) {
    return UnimplementedError("ssd header: unknown format version " + std::to_string(version));
  }
  SsdHeader h;
  h.size = DecodeFixed<uint64_t>(bytes.data() + 8);
  h.checksum = DecodeFixed<uint64_t>(bytes.data() + 16);
  h.fingerprint = DecodeFixed<uint64_t>(bytes.data() + 24);
  return h;
}

Status FromRocksStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNoSpace()) return ResourceExhaustedError(msg);
  if (s.IsCorruption()) return DataLossError(msg);
  if (s.IsNotFound()) return NotFoundError(msg);
  if (s.IsBusy() || s.IsTryAgain()) return AbortedError(msg);
  if (s.IsInvalidArgument()) return InvalidArgumentError(msg);
  if (s.IsNotSupported()) return UnimplementedError(msg);
  if (s.IsIOError()) return UnavailableError(msg);
  return UnknownError(msg);
}

Status SsdTier::Options::Validate() const {
  if (path.empty()) return InvalidArgumentError("ssd tier: empty path");
  if (sync && !write_ahead_log) {
    return InvalidArgumentError("ssd tier: sync needs the write-ahead log");
  }
  if (write_buffer_bytes < (1 << 20)) {
    return InvalidArgumentError("ssd tier: write_buffer_bytes < 1 MiB");
  }
  return Status::Ok();
}

rocksdb::Options SsdTier::MakeDbOptions(const Options& o) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.write_buffer_size = o.write_buffer_bytes;
  opts.max_background_jobs = 2;
  opts.enable_blob_files = true;
  opts.min_blob_size = o.min_blob_size;
  opts.blob_file_size = 256ull << 20;
  opts.enable_blob_garbage_collection = true;
  opts.blob_garbage_collection_age_cutoff = 0.25;
  opts.compression = rocksdb::kNoCompression;  // KV tensors do not compress
  opts.blob_compression_type = rocksdb::kNoCompression;
  opts.info_log_level = rocksdb::WARN_LEVEL;
  opts.info_log = std::make_shared<RocksLogger>();
  return opts;
}

bool SsdTier::IsCorruptTierError(const rocksdb::Status& s, const std::string& path) {
  if (s.IsCorruption()) return true;
  if (!s.IsPathNotFound()) return false;
  // A file the directory's own metadata names is gone, not the directory.
  std::error_code ec;
  std::string dir = TierDir(path).string();
  return std::filesystem::is_directory(dir, ec) &&
         s.ToString().find(dir + "/") != std::string::npos;
}

rocksdb::Status SsdTier::OpenDb() {
  rocksdb::Options opts = MakeDbOptions(options_);
  rocksdb::ColumnFamilyOptions meta_opts;  // headers only: no blob files
  meta_opts.compression = rocksdb::kNoCompression;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
      {kMetaCf, meta_opts}};
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);  // RocksDB creates only the leaf
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s =
      rocksdb::DB::Open(rocksdb::DBOptions(opts), options_.path, cfs, &handles, &db_);
  if (!s.ok()) {
    db_ = nullptr;
    return s;
  }
  data_cf_ = handles[0];
  meta_cf_ = handles[1];
  return s;
}

rocksdb::Status SsdTier::VerifyFiles() const {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  rocksdb::Status s = db_->VerifyChecksum(ro);  // SST files of both column families
  if (!s.ok()) return s;
  for (rocksdb::ColumnFamilyHandle* cf : {data_cf_, meta_cf_}) {
    rocksdb::ColumnFamilyMetaData md;
    db_->GetColumnFamilyMetaData(cf, &md);
    for (const rocksdb::BlobMetaData& b : md.blob_files) {
      std::string name = b.blob_file_name;  // "/000012.blob" in RocksDB 7.x
      if (!name.empty() && name.front() == '/') name.erase(0, 1);
      std::string file = b.blob_file_path + "/" + name;
      std::error_code ec;
      uint64_t size = std::filesystem::file_size(file, ec);
      if (ec) return rocksdb::Status::Corruption("blob file " + file, ec.message());
      if (size != b.blob_file_size) {
        return rocksdb::Status::Corruption(
            "blob file " + file,
            "size " + std::to_string(size) + ", expected " + std::to_string(b.blob_file_size));
      }
    }
  }
  return s;
}

void SsdTier::CloseDb() {
  if (db_ == nullptr) return;
  if (data_cf_ != nullptr) db_->DestroyColumnFamilyHandle(data_cf_).PermitUncheckedError();
  if (meta_cf_ != nullptr) db_->DestroyColumnFamilyHandle(meta_cf_).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
  delete db_;
  db_ = nullptr;
  data_cf_ = nullptr;
  meta_cf_ = nullptr;
}

Result<std::unique_ptr<SsdTier>> SsdTier::Open(const Options& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<SsdTier> t(new SsdTier(options));
  t->write_options_.sync = options.sync;
  t->write_options_.disableWAL = !options.write_ahead_log;
  rocksdb::Status s = t->OpenDb();
  if (s.ok() && options.quarantine_corrupt) {
    auto start = std::chrono::steady_clock::now();
    s = t->VerifyFiles();
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    KVCAKE_LOG(INFO) << "ssd tier: " << options.path << " file check " << (s.ok() ? "ok" : "failed")
                     << " in " << ms << " ms";
    if (!s.ok()) t->CloseDb();
  }
  if (s.ok()) return t;
  Status err = FromRocksStatus(s, "ssd tier: open " + options.path);
  if (!options.quarantine_corrupt || !IsCorruptTierError(s, options.path)) return err;

  Result<std::string> moved = MoveAside(options.path);
  if (!moved.ok()) {
    return Status(err.code(), std::string(err.message()) + "; moving it aside failed: " +
                                  std::string(moved.status().message()));
  }
  KVCAKE_LOG(ERROR) << "ssd tier: " << options.path << " is corrupt (" << s.ToString()
                    << "); moved it to " << *moved
                    << " for inspection, starting with an empty SSD tier";
  t->quarantined_path_ = *moved;
  s = t->OpenDb();
  if (!s.ok()) return FromRocksStatus(s, "ssd tier: open (after quarantine) " + options.path);
  return t;
}

SsdTier::~SsdTier() { CloseDb(); }

Status SsdTier::Write(std::span<const WriteItem> items, std::span<const BlockKey> deletes) {
  rocksdb::WriteBatch batch;
  for (const BlockKey& key : deletes) {
    EncodedBlockKey k = EncodeBlockKey(key);
    rocksdb::Slice ks(k.data(), k.size());
    rocksdb::Status s = batch.Delete(data_cf_, ks);
    if (s.ok()) s = batch.Delete(meta_cf_, ks);
    if (!s.ok()) return FromRocksStatus(s, "ssd tier: batch delete");
  }
  for (const WriteItem& item : items) {
    EncodedBlockKey k = EncodeBlockKey(item.key);
    char header[SsdHeader::kEncodedSize];
    SsdHeader{item.size, item.checksum, item.fingerprint}.EncodeTo(header);
    rocksdb::Slice key_slice(k.data(), k.size());
    rocksdb::Slice parts[2] = {rocksdb::Slice(header, sizeof(header)),
                               rocksdb::Slice(static_cast<const char*>(item.data), item.size)};
    rocksdb::Status s =
        batch.Put(data_cf_, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 2));
    if (s.ok()) s = batch.Put(meta_cf_, key_slice, rocksdb::Slice(header, sizeof(header)));
    if (!s.ok()) return FromRocksStatus(s, "ssd tier: batch put");
  }
  return FromRocksStatus(db_->Write(write_options_, &batch), "ssd tier: write");
}

Result<SsdHeader> SsdTier::Read(const BlockKey& key, void* dst, uint64_t dst_size) const {
  EncodedBlockKey k = EncodeBlockKey(key);
  rocksdb::PinnableSlice value;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  rocksdb::Status s = db_->Get(ro, data_cf_, rocksdb::Slice(k.data(), k.size()), &value);
  if (!s.ok()) return FromRocksStatus(s, "ssd tier: get " + key.ToString());
  ASSIGN_OR_RETURN(SsdHeader h, SsdHeader::Decode(std::string_view(value.data(), value.size())));
  if (value.size() - SsdHeader::kEncodedSize != h.size) {
    return DataLossError("ssd tier: torn value for " + key.ToString());
  }
  if (h.size > dst_size) {
    return OutOfRangeError("ssd tier: block of " + std::to_string(h.size) +
                           " bytes does not fit in " + std::to_string(dst_size));
  }
  const char* payload = value.data() + SsdHeader::kEncodedSize;
  if (BlockChecksum(payload, h.size) != h.checksum) {
    return DataLossError("ssd tier: checksum mismatch for " + key.ToString());
  }
  std::memcpy(dst, payload, h.size);
  return h;
}

Status SsdTier::ForEachHeader(const std::function<void(const BlockKey&, const SsdHeader&)>& fn,
                              const std::function<void(std::string_view)>& bad) const {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k(it->key().data(), it->key().size());
    Result<BlockKey> key = DecodeBlockKey(k);
    Result<SsdHeader> h =
        SsdHeader::Decode(std::string_view(it->value().data(), it->value().size()));
    if (!key.ok() || !h.ok()) {
      if (bad) bad(k);
      continue;
    }
    fn(*key, *h);
  }
  return FromRocksStatus(it->status(), "ssd tier: scan");
}

Status SsdTier::FlushMemtables() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs = {data_cf_, meta_cf_};
  return FromRocksStatus(db_->Flush(fo, cfs), "ssd tier: flush");
}

Status SsdTier::Resume() { return FromRocksStatus(db_->Resume(), "ssd tier: resume"); }

}  // namespace kvcake::store
