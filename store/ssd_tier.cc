#include "store/ssd_tier.h"

#include <rocksdb/db.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "common/logging.h"
#include "store/checksum.h"

namespace kvcake::store {

namespace {
constexpr char kMetaCf[] = "meta";

void PutU16(char* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
// RocksDB's info log routed into kvcake's log (warnings and up). Keeps
// RocksDB from writing a LOG file on the SSD tier's own disk, which fails
// (and trips assertions in some RocksDB builds) exactly when the disk is full.
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
      KVCAKE_LOG(WARNING) << "rocksdb: " << buf;
    }
  }
};

uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
}  // namespace

void SsdHeader::EncodeTo(char* out) const {
  PutU32(out, kMagic);
  PutU16(out + 4, kVersion);
  PutU16(out + 6, 0);
  PutU64(out + 8, size);
  PutU64(out + 16, checksum);
  PutU64(out + 24, fingerprint);
}

Result<SsdHeader> SsdHeader::Decode(std::string_view bytes) {
  if (bytes.size() < kEncodedSize) return DataLossError("ssd header: short value");
  if (GetLE(bytes.data(), 4) != kMagic) return DataLossError("ssd header: bad magic");
  uint64_t version = GetLE(bytes.data() + 4, 2);
  if (version != kVersion) {
    return UnimplementedError("ssd header: unknown format version " + std::to_string(version));
  }
  SsdHeader h;
  h.size = GetLE(bytes.data() + 8, 8);
  h.checksum = GetLE(bytes.data() + 16, 8);
  h.fingerprint = GetLE(bytes.data() + 24, 8);
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

Result<std::unique_ptr<SsdTier>> SsdTier::Open(const Options& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<SsdTier> t(new SsdTier(options));
  t->write_options_.sync = options.sync;
  rocksdb::Options opts = MakeDbOptions(options);
  rocksdb::ColumnFamilyOptions meta_opts;  // headers only: no blob files
  meta_opts.compression = rocksdb::kNoCompression;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
      {kMetaCf, meta_opts}};
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);  // RocksDB creates only the leaf
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s =
      rocksdb::DB::Open(rocksdb::DBOptions(opts), options.path, cfs, &handles, &t->db_);
  if (!s.ok()) return FromRocksStatus(s, "ssd tier: open " + options.path);
  t->data_cf_ = handles[0];
  t->meta_cf_ = handles[1];
  return t;
}

SsdTier::~SsdTier() {
  if (db_ == nullptr) return;
  if (data_cf_ != nullptr) db_->DestroyColumnFamilyHandle(data_cf_).PermitUncheckedError();
  if (meta_cf_ != nullptr) db_->DestroyColumnFamilyHandle(meta_cf_).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
  delete db_;
}

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

uint64_t SsdTier::DiskBytes() const {
  uint64_t sst = 0, blob = 0;
  db_->GetIntProperty(data_cf_, rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
  db_->GetIntProperty(data_cf_, rocksdb::DB::Properties::kTotalBlobFileSize, &blob);
  return sst + blob;
}

}  // namespace kvcake::store
