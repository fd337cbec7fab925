// kvcake-store-bench: put/get throughput and p50/p99 latency per tier for
// 64 KiB .. 4 MiB values, with same-run baselines: single-thread memcpy over
// buffers larger than the LLC (host/device tiers) and raw RocksDB with the
// SSD tier's own options (SSD tier). Prints a table, or one JSON object
// with --json (logs go to stderr).
#include <gflags/gflags.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/progress.h"
#include "policy/policy.h"
#include "store/checksum.h"
#include "store/ssd_tier.h"
#include "store/tier_manager.h"

DEFINE_bool(quick, false, "short run (< 1 minute)");
DEFINE_bool(json, false, "print one JSON object instead of a table");
DEFINE_string(dir, "/tmp", "directory for the RocksDB instances (an SSD in production)");
DEFINE_string(sizes, "65536,262144,1048576,4194304", "value sizes in bytes");
DEFINE_uint64(working_set_mb, 256, "bytes touched per memory measurement (> LLC)");
DEFINE_uint64(ssd_mb, 512, "bytes written per SSD measurement");
DEFINE_bool(device_cuda, true, "use a CUDA device tier when present");

namespace kvcake::store {
namespace {

using Clock = std::chrono::steady_clock;

// Throughput is reported two ways: `gbps` = bytes / wall time (sensitive to
// preemption on a shared box) and `gbps_p50` = bytes per op / median latency
// (robust to it). Ratios use gbps_p50.
struct Measure {
  double gbps = 0;      // payload GB/s (1e9 bytes), wall clock
  double gbps_p50 = 0;  // op size / p50 latency
  double p50_us = 0;
  double p99_us = 0;
  uint64_t ops = 0;
};

// Runs op(i) for i in [0, n), timing each call.
Measure Run(uint64_t n, uint64_t bytes_per_op, const std::function<bool(uint64_t)>& op) {
  std::vector<double> lat;
  lat.reserve(n);
  auto start = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!op(i)) {
      std::fprintf(stderr, "operation %llu failed\n", static_cast<unsigned long long>(i));
      std::exit(1);
    }
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  Measure m;
  m.ops = n;
  m.gbps = n * bytes_per_op / secs / 1e9;
  m.p50_us = lat[lat.size() / 2];
  m.p99_us = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  m.gbps_p50 = m.p50_us > 0 ? bytes_per_op / (m.p50_us * 1e-6) / 1e9 : 0;
  return m;
}

// Best of `reps` (by median throughput): both sides of a ratio get the same treatment.
Measure Best(int reps, const std::function<Measure()>& fn) {
  Measure best;
  for (int r = 0; r < reps; ++r) {
    Measure m = fn();
    if (m.gbps_p50 > best.gbps_p50) best = m;
  }
  return best;
}

void Fill(std::vector<char>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
}

// Raw RocksDB with the SSD tier's options (default column family only).
struct RawDb {
  rocksdb::DB* db = nullptr;
  explicit RawDb(const std::string& path) {
    SsdTier::Options so;
    so.path = path;
    std::filesystem::create_directories(path);
    rocksdb::Status s = rocksdb::DB::Open(SsdTier::MakeDbOptions(so), path, &db);
    if (!s.ok()) {
      std::fprintf(stderr, "raw rocksdb open: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
  ~RawDb() {
    db->Close().PermitUncheckedError();
    delete db;
  }
};

// Page-aligned heap buffer (RAII).
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size)
      : size_(size),
        data_(size ? static_cast<char*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096))
                   : nullptr) {}
  AlignedBuffer(AlignedBuffer&& o) noexcept : size_(o.size_), data_(o.data_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(size_, o.size_);
    std::swap(data_, o.data_);
    return *this;
  }
  ~AlignedBuffer() { std::free(data_); }
  char* data() { return data_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  char* data_;
};

struct SizeResult {
  uint64_t size;
  std::map<std::string, Measure> m;
};

std::string Json(const std::vector<SizeResult>& results, const std::string& device, bool quick) {
  auto ratio = [&](uint64_t size, const char* a, const char* b) {
    for (const auto& r : results) {
      if (r.size == size && r.m.count(a) && r.m.count(b) && r.m.at(b).gbps_p50 > 0) {
        return r.m.at(a).gbps_p50 / r.m.at(b).gbps_p50;
      }
    }
    return 0.0;
  };
  std::string out = "{";
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "\"bench\":\"kvcake-store-bench\",\"quick\":%s,\"device_tier\":\"%s\","
                "\"host_get_vs_memcpy\":%.3f,\"ssd_put_vs_rocksdb\":%.3f,"
                "\"ssd_get_vs_rocksdb\":%.3f,\"host_get_vs_memcpy_256k\":%.3f,\"results\":[",
                quick ? "true" : "false", device.c_str(), ratio(1 << 20, "host_get", "memcpy"),
                ratio(1 << 20, "ssd_put", "rocksdb_put"), ratio(1 << 20, "ssd_get", "rocksdb_get"),
                ratio(256 << 10, "host_get", "memcpy"));
  out += buf;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::snprintf(buf, sizeof(buf), "%s{\"size\":%llu", i ? "," : "",
                  static_cast<unsigned long long>(r.size));
    out += buf;
    for (const auto& [name, m] : r.m) {
      std::snprintf(buf, sizeof(buf),
                    ",\"%s\":{\"GBps\":%.3f,\"GBps_p50\":%.3f,\"p50_us\":%.1f,"
                    "\"p99_us\":%.1f,\"ops\":%llu}",
                    name.c_str(), m.gbps, m.gbps_p50, m.p50_us, m.p99_us,
                    static_cast<unsigned long long>(m.ops));
      out += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  ",\"host_get_vs_memcpy\":%.3f,\"ssd_put_vs_rocksdb\":%.3f,"
                  "\"ssd_get_vs_rocksdb\":%.3f}",
                  ratio(r.size, "host_get", "memcpy"), ratio(r.size, "ssd_put", "rocksdb_put"),
                  ratio(r.size, "ssd_get", "rocksdb_get"));
    out += buf;
  }
  out += "]}";
  return out;
}

struct HostFill {
  bool ok = false;
  uint64_t capacity = 0;     // host tier bytes
  uint64_t value_bytes = 0;  // bytes of the values it holds
  uint64_t values = 0;
  double utilisation() const { return capacity ? double(value_bytes) / capacity : 0; }
  double fixed_slot_utilisation() const {
    return values ? double(value_bytes) / double(values * (4ull << 20)) : 0;
  }
};

// A policy that never picks a victim: the host tier fills and then refuses.
class NoEvictionPolicy final : public policy::Policy {
 public:
  std::string_view name() const override { return "no-eviction"; }
  void SetTierCapacity(Tier, uint64_t) override {}
  void OnInsert(const BlockKey&, Tier, uint64_t, uint64_t) override {}
  void OnAccess(const BlockKey&, Tier, uint64_t) override {}
  void OnMove(const BlockKey&, Tier, Tier, uint64_t) override {}
  void OnRemove(const BlockKey&, Tier) override {}
  std::vector<BlockKey> SelectVictims(Tier, uint64_t,
                                      const std::function<bool(const BlockKey&)>&) override {
    return {};
  }
  bool Admit(const BlockKey&, Tier) override { return true; }
};

// Saves 16 KiB, 256 KiB and 4 MiB values (one namespace each) round-robin
// into a host tier of `host_bytes` (no SSD, watermarks at 100%) until no
// namespace's value fits any more (nothing is evicted); what the tier then
// holds.
HostFill FillHostMixed(uint64_t host_bytes) {
  HostFill out;
  TierManagerOptions o;
  o.slot_bytes = 4ull << 20;
  o.host_capacity_bytes = host_bytes;
  o.high_watermark = 1.0;
  o.low_watermark = 1.0;
  o.reserve_wait_us = 0;  // full = a put is refused at once
  auto tm_or = TierManager::Open(o, std::make_unique<NoEvictionPolicy>());
  if (!tm_or.ok()) {
    std::fprintf(stderr, "open: %s\n", tm_or.status().ToString().c_str());
    return out;
  }
  TierManager& tm = **tm_or;
  const uint64_t sizes[] = {16ull << 10, 256ull << 10, 4ull << 20};
  std::vector<char> value(4ull << 20, 7);
  bool open[3] = {true, true, true};
  for (uint32_t i = 0; i < 3; ++i) {
    NamespaceConfig ns;
    ns.id = 10 + i;
    ns.name = "fill-" + std::to_string(sizes[i]);
    ns.num_layers = 1;
    ns.block_tokens = 16;
    ns.layer_block_bytes = sizes[i];
    ns.kv_dtype = "fp16";
    if (!tm.RegisterNamespace(ns).ok()) return out;
  }
  for (uint64_t h = 0; open[0] || open[1] || open[2]; ++h) {
    for (uint32_t i = 0; i < 3; ++i) {
      if (open[i] && !tm.Put(BlockKey{10 + i, h, 0}, value.data(), sizes[i]).ok()) open[i] = false;
    }
  }
  const StoreStats st = tm.GetStats();
  const TierStats& host = st.tiers[static_cast<size_t>(Tier::kHost)];
  out.capacity = host.capacity_bytes;
  out.value_bytes = host.used_bytes;
  out.values = host.blocks;
  out.ok = st.drops[static_cast<size_t>(Tier::kHost)] == 0;
  if (!out.ok) std::fprintf(stderr, "host fill: blocks were dropped while filling\n");
  return out;
}

int Main() {
  if (FLAGS_json) SetLogLevel(LogLevel::kWarning);
  std::vector<uint64_t> sizes;
  for (size_t pos = 0; pos < FLAGS_sizes.size();) {
    size_t comma = FLAGS_sizes.find(',', pos);
    sizes.push_back(std::stoull(FLAGS_sizes.substr(pos, comma - pos)));
    pos = comma == std::string::npos ? FLAGS_sizes.size() : comma + 1;
  }
  const uint64_t ws =
      (FLAGS_quick ? std::min<uint64_t>(FLAGS_working_set_mb, 192) : FLAGS_working_set_mb) << 20;
  const uint64_t ssd_bytes = (FLAGS_quick ? std::min<uint64_t>(FLAGS_ssd_mb, 128) : FLAGS_ssd_mb)
                             << 20;
  const int reps = FLAGS_quick ? 3 : 5;
  const int mem_reps = FLAGS_quick ? 9 : 15;
  const uint64_t max_size = *std::max_element(sizes.begin(), sizes.end());
  const std::string base =
      FLAGS_dir + "/kvcake-store-bench-" + std::to_string(static_cast<long>(getpid()));
  std::filesystem::create_directories(base);

  std::vector<SizeResult> results;
  std::string device_kind = "none";
  // A live line on a terminal's stderr (never with --json): one step per
  // measured round.
  Progress progress("store-bench", {.enabled = !FLAGS_json});
  const uint64_t steps = sizes.size() * (1 + mem_reps + 2 * reps);
  uint64_t step = 0;
  for (uint64_t size : sizes) {
    const std::string size_text = std::to_string(size) + " B: ";
    progress.Update(step, steps, size_text + "host and gpu puts");
    SizeResult res{size, {}};
    const uint64_t nblocks = std::max<uint64_t>(ws / size, 16);
    // Destination buffers: a rotating set bigger than the LLC, shared by
    // memcpy and the store so both sides see the same cache behaviour.
    const uint64_t ndst = std::max<uint64_t>((64ull << 20) / size, 4);
    // All buffers are page-aligned like the tiers' slots: with a 16-byte
    // offset between source and destination (malloc'd vectors vs slots),
    // x86 memcpy suffers 4K aliasing and either side could look ~30% off.
    std::vector<AlignedBuffer> dst;
    for (uint64_t i = 0; i < ndst; ++i) {
      dst.emplace_back(size);
      std::memset(dst.back().data(), 1, size);
    }
    AlignedBuffer src_pool(nblocks * size);
    for (size_t i = 0; i < src_pool.size(); ++i) src_pool.data()[i] = static_cast<char>(i * 131);
    std::vector<char> value(size);
    Fill(value, size);

    // memcpy baseline: src rotates over nblocks * size bytes (> LLC). It is
    // measured interleaved with the tier gets below, so drift hits both.
    // `order[i]` is the host slot holding block i, so memcpy walks memory in
    // the same order as the host gets do (filled in once the blocks are put).
    std::vector<uint64_t> order(nblocks);
    for (uint64_t i = 0; i < nblocks; ++i) order[i] = i;
    auto memcpy_run = [&] {
      return Run(nblocks, size, [&](uint64_t i) {
        std::memcpy(dst[i % ndst].data(), src_pool.data() + order[i] * size, size);
        return true;
      });
    };

    // Host (and device) tiers through the TierManager.
    {
      TierManagerOptions o;
      o.slot_bytes = std::max<uint64_t>(size, 4096);
      o.host_capacity_bytes = (nblocks + 8) * o.slot_bytes;
      o.device_capacity_bytes = (nblocks + 8) * o.slot_bytes;
      o.device_allow_cuda = FLAGS_device_cuda;
      o.high_watermark = 1.0;
      o.low_watermark = 0.99;
      auto tm_or = TierManager::Open(o, nullptr);
      if (!tm_or.ok()) {
        std::fprintf(stderr, "open: %s\n", tm_or.status().ToString().c_str());
        return 1;
      }
      TierManager& tm = **tm_or;
      device_kind = tm.device_is_cuda() ? "cuda" : "emulated";
      NamespaceConfig ns;
      ns.id = 1;
      ns.name = "bench";
      ns.num_layers = 2;
      ns.block_tokens = 16;
      ns.layer_block_bytes = size;
      ns.kv_dtype = "fp16";
      if (!tm.RegisterNamespace(ns).ok()) return 1;
      for (Tier t : {Tier::kHost, Tier::kDevice}) {
        const uint32_t layer = t == Tier::kHost ? 0 : 1;
        const std::string tn(TierName(t) == "gpu" ? "device" : "host");
        res.m[tn + "_put"] = Best(reps, [&] {
          for (uint64_t i = 0; i < nblocks; ++i) tm.Delete(BlockKey{1, i, layer}).IgnoreError();
          return Run(nblocks, size, [&](uint64_t i) {
            return tm.Put(BlockKey{1, i, layer}, value.data(), size, t).ok();
          });
        });
      }
      progress.Update(++step, steps, size_text + "gets vs memcpy");
      for (uint64_t i = 0; i < nblocks; ++i) {
        auto p = tm.Pin(BlockKey{1, i, 0});
        if (!p.ok()) return 1;
        order[i] = p->offset / o.slot_bytes;
        if (!tm.Release(*p).ok()) return 1;
      }
      // Gets, interleaved with the memcpy baseline (memory runs are cheap: more reps).
      Measure best_memcpy, best_get[2];
      for (int r = 0; r < mem_reps; ++r) {
        Measure m = memcpy_run();
        if (m.gbps_p50 > best_memcpy.gbps_p50) best_memcpy = m;
        for (int t = 0; t < 2; ++t) {
          const uint32_t layer = static_cast<uint32_t>(t);
          Measure g = Run(nblocks, size, [&](uint64_t i) {
            auto got = tm.Get(BlockKey{1, i, layer}, dst[i % ndst].data(), size);
            return got.ok() && *got == size;
          });
          if (g.gbps_p50 > best_get[t].gbps_p50) best_get[t] = g;
        }
        progress.Update(++step, steps, size_text + "gets vs memcpy");
      }
      res.m["memcpy"] = best_memcpy;
      res.m["host_get"] = best_get[0];
      res.m["device_get"] = best_get[1];
    }
    src_pool = AlignedBuffer(0);

    // SSD tier vs raw RocksDB (same options, same values, same directory).
    {
      const uint64_t n = std::max<uint64_t>(ssd_bytes / size, 16);
      SsdTier::Options so;
      so.path = base + "/ssd-" + std::to_string(size);
      auto ssd_or = SsdTier::Open(so);
      if (!ssd_or.ok()) {
        std::fprintf(stderr, "ssd open: %s\n", ssd_or.status().ToString().c_str());
        return 1;
      }
      SsdTier& ssd = **ssd_or;
      RawDb raw(base + "/raw-" + std::to_string(size));
      const uint64_t checksum = BlockChecksum(value.data(), size);
      auto key = [](uint64_t i) { return BlockKey{1, i, 0}; };
      Measure ssd_put, raw_put, ssd_get, raw_get;
      // Alternate the two sides so drift hits both equally.
      for (int r = 0; r < reps; ++r) {
        Measure a = Run(n, size, [&](uint64_t i) {
          EncodedBlockKey k = EncodeBlockKey(key(i));
          return raw.db
              ->Put(rocksdb::WriteOptions(), rocksdb::Slice(k.data(), k.size()),
                    rocksdb::Slice(value.data(), size))
              .ok();
        });
        if (a.gbps_p50 > raw_put.gbps_p50) raw_put = a;
        Measure b = Run(n, size, [&](uint64_t i) {
          SsdTier::WriteItem item{key(i), value.data(), size, checksum, 1};
          return ssd.Write(std::span<const SsdTier::WriteItem>(&item, 1)).ok();
        });
        if (b.gbps_p50 > ssd_put.gbps_p50) ssd_put = b;
        progress.Update(++step, steps, size_text + "ssd puts vs rocksdb");
      }
      // Both sides read from SST/blob files, not from the memtable.
      {
        rocksdb::FlushOptions fo;
        if (!raw.db->Flush(fo).ok() || !ssd.FlushMemtables().ok()) {
          std::fprintf(stderr, "flush failed\n");
          return 1;
        }
      }
      for (int r = 0; r < reps; ++r) {
        Measure a = Run(n, size, [&](uint64_t i) {
          EncodedBlockKey k = EncodeBlockKey(key(i));
          rocksdb::PinnableSlice v;
          bool ok = raw.db
                        ->Get(rocksdb::ReadOptions(), raw.db->DefaultColumnFamily(),
                              rocksdb::Slice(k.data(), k.size()), &v)
                        .ok();
          if (ok) std::memcpy(dst[i % ndst].data(), v.data(), std::min<size_t>(v.size(), size));
          return ok && v.size() == size;
        });
        if (a.gbps_p50 > raw_get.gbps_p50) raw_get = a;
        Measure b = Run(n, size, [&](uint64_t i) {
          auto h = ssd.Read(key(i), dst[i % ndst].data(), size);
          return h.ok() && h->size == size;
        });
        if (b.gbps_p50 > ssd_get.gbps_p50) ssd_get = b;
        progress.Update(++step, steps, size_text + "ssd gets vs rocksdb");
      }
      res.m["rocksdb_put"] = raw_put;
      res.m["ssd_put"] = ssd_put;
      res.m["rocksdb_get"] = raw_get;
      res.m["ssd_get"] = ssd_get;
    }
    std::filesystem::remove_all(base + "/ssd-" + std::to_string(size));
    std::filesystem::remove_all(base + "/raw-" + std::to_string(size));
    results.push_back(std::move(res));
    progress.Done();
    if (!FLAGS_json) {
      const auto& r = results.back();
      std::printf("size %8llu B\n", static_cast<unsigned long long>(size));
      for (const auto& [name, m] : r.m) {
        std::printf("  %-12s %8.2f GB/s (at p50 %8.2f)  p50 %9.1f us  p99 %9.1f us  (%llu ops)\n",
                    name.c_str(), m.gbps, m.gbps_p50, m.p50_us, m.p99_us,
                    static_cast<unsigned long long>(m.ops));
      }
      auto g = [&](const char* k) { return r.m.at(k).gbps_p50; };
      std::printf("  ratios: host_get/memcpy %.2f  ssd_put/rocksdb %.2f  ssd_get/rocksdb %.2f\n",
                  g("host_get") / g("memcpy"), g("ssd_put") / g("rocksdb_put"),
                  g("ssd_get") / g("rocksdb_get"));
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(base);
  (void)max_size;

  // Host-tier value utilisation: three namespaces with values of 16 KiB,
  // 256 KiB and 4 MiB (slot_bytes 4 MiB, the laptop flags) saved round-robin
  // until the host tier is full. Goal: >= 0.90 of the tier's bytes hold value
  // bytes. `fixed_slots` is what the same values would use if each took a
  // whole 4 MiB slot.
  HostFill fill = FillHostMixed(FLAGS_quick ? (256ull << 20) : (512ull << 20));
  if (!fill.ok) return 1;
  if (!FLAGS_json) {
    std::printf(
        "host tier, 16K+256K+4M values mixed (%llu MiB): value utilisation %.3f (goal >= 0.90), "
        "%llu values; with fixed 4 MiB slots the same values would use %.3f\n",
        static_cast<unsigned long long>(fill.capacity >> 20), fill.utilisation(),
        static_cast<unsigned long long>(fill.values), fill.fixed_slot_utilisation());
  }

  // LookupPrefix over a 1000-block chain (the daemon's prefix-match budget is 50 us).
  double lookup_p50_us = 0;
  {
    TierManagerOptions o;
    o.slot_bytes = 4096;
    o.host_capacity_bytes = 1100 * 4096;
    o.high_watermark = 1.0;
    o.low_watermark = 0.99;
    auto tm_or = TierManager::Open(o, nullptr);
    if (!tm_or.ok()) return 1;
    TierManager& tm = **tm_or;
    NamespaceConfig ns;
    ns.id = 2;
    ns.name = "lookup";
    ns.num_layers = 1;
    ns.block_tokens = 16;
    ns.layer_block_bytes = 4096;
    if (!tm.RegisterNamespace(ns).ok()) return 1;
    std::vector<uint64_t> chain(1000);
    std::mt19937_64 rng(7);
    std::vector<char> v(4096, 1);
    for (auto& h : chain) {
      h = rng();
      if (!tm.Put(BlockKey{2, h, 0}, v.data(), v.size()).ok()) return 1;
    }
    Measure m = Run(FLAGS_quick ? 2000 : 10000, 0,
                    [&](uint64_t) { return tm.LookupPrefix(2, chain, 0) == chain.size(); });
    lookup_p50_us = m.p50_us;
  }
  if (!FLAGS_json) std::printf("LookupPrefix(1000 blocks): p50 %.1f us\n", lookup_p50_us);
  if (FLAGS_json) {
    std::string j = Json(results, device_kind, FLAGS_quick);
    char extra[256];
    std::snprintf(extra, sizeof(extra),
                  ",\"host_value_utilisation_mixed\":%.3f,"
                  "\"host_value_utilisation_fixed_slots\":%.3f,\"host_values_mixed\":%llu,"
                  "\"lookup_prefix_1000_p50_us\":%.1f}",
                  fill.utilisation(), fill.fixed_slot_utilisation(),
                  static_cast<unsigned long long>(fill.values), lookup_p50_us);
    j.pop_back();
    std::printf("%s%s\n", j.c_str(), extra);
  } else {
    std::printf("device tier: %s\n", device_kind.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace kvcake::store

int main(int argc, char** argv) {
  gflags::SetUsageMessage("kvcake store benchmark (see docs/store.md)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return kvcake::store::Main();
}
