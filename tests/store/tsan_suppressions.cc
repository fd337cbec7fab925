// TSan default suppressions for the store tests. RocksDB is linked
// uninstrumented: its lock-free memtable (InlineSkipList over an Arena) is
// synchronised by atomics TSan cannot see, but the memcpy / memcmp
// interceptors still observe the plain reads and writes. Only those RocksDB
// internals are suppressed; kvcake's own slots are not.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:rocksdb::MemTable::Add\n"
         "race:rocksdb::(anonymous namespace)::BytewiseComparatorImpl::Compare\n"
         "race:rocksdb::InlineSkipList\n"
         // WAL writer buffers, handed between RocksDB's write and flush threads.
         "race:rocksdb::log::Writer\n"
         "race:rocksdb::PosixWritableFile\n"
         "race:rocksdb::WritableFileWriter\n";
}
#endif
