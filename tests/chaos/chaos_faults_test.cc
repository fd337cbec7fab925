// Chaos tests, part two: tenants attacking each other, a full disk under the
// SSD tier, SSD files damaged while the daemon is stopped, slow admin
// clients with connection churn, and requests that announce huge payloads.
// Real kvcaked, real clients, real RocksDB, real filesystems; the faults are
// injected on purpose. Every test checks the invariants: the daemon is up
// (or restarts and serves), no committed block ever comes back with wrong
// bytes, no tenant sees another tenant's bytes, and the daemon's memory
// returns to its baseline.
//
// KVCAKE_SOAK_S=<seconds> repeats each fault loop for that long.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/block_hash.h"
#include "kvcake/client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake {
namespace {

using chaos::HttpGet;
using chaos::MetricValue;
using chaos::Pattern;
using chaos::PortOf;
using chaos::ProcMemory;
using chaos::ReadProcMemory;
using chaos::SoakRounds;
using testing::DaemonProcess;
using testing::TempDir;
using transport::RpcOp;

constexpr uint64_t kMiB = 1 << 20;

// ---- clients -----------------------------------------------------------------

NamespaceGeometry Geometry(uint64_t value_bytes, uint32_t layers) {
  return testing::TestGeometry(layers, value_bytes);
}

// A client connected to `address` whose namespace `ns` is registered with
// `token`; the error of either step otherwise.
Result<std::unique_ptr<Client>> OpenClient(const std::string& address, const std::string& ns,
                                           const std::string& token, uint64_t value_bytes,
                                           uint32_t layers, bool mapped = false) {
  ClientOptions o = testing::EngineOptions(address, ns);
  o.token = token;
  o.use_mapped_path = mapped;
  o.timeout = std::chrono::milliseconds(20000);
  return testing::ConnectEngine(o, Geometry(value_bytes, layers));
}

// The `blocks` chained hashes of a namespace's prompt number `prompt`.
std::vector<uint64_t> Hashes(const Client& c, uint32_t prompt, size_t blocks) {
  std::vector<uint32_t> tokens(blocks * 16);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = prompt * 100000u + static_cast<uint32_t>(i);
  }
  return c.HashTokens(tokens);
}

// What tenant `tenant` stores under (hash, layer).
std::vector<char> ValueOf(uint64_t tenant, uint64_t hash, uint32_t layer, uint64_t bytes) {
  return Pattern(tenant ^ hash, layer, bytes);
}

// Puts every layer of `hashes`; `per` gets each value's status.
Status PutAll(Client& c, uint64_t tenant, const std::vector<uint64_t>& hashes, uint32_t layers,
              uint64_t bytes, std::vector<Status>* per = nullptr) {
  std::vector<testing::LayerValue> values = testing::LayerValues(
      hashes, layers, [&](uint64_t h, uint32_t l) { return ValueOf(tenant, h, l, bytes); });
  std::vector<Status> local;
  return c.Put(testing::PutBlocksOf(values), per ? per : &local);
}

struct GetOutcome {
  Status status;  // of the call
  int found = 0;
  int missing = 0;
  int wrong = 0;  // found, but not the bytes `tenant` stored
  std::vector<bool> found_flags;
};

// Gets every layer of `hashes` and compares with what `tenant` stored.
GetOutcome GetAll(Client& c, uint64_t tenant, const std::vector<uint64_t>& hashes, uint32_t layers,
                  uint64_t bytes) {
  GetOutcome out;
  std::vector<testing::LayerValue> bufs = testing::LayerBuffers(hashes, layers, bytes);
  out.status = c.Get(testing::GetBlocksOf(bufs), &out.found_flags);
  if (!out.status.ok()) return out;
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (!out.found_flags[i]) {
      ++out.missing;
    } else if (bufs[i].bytes != ValueOf(tenant, bufs[i].hash, bufs[i].layer, bytes)) {
      ++out.wrong;
    } else {
      ++out.found;
    }
  }
  return out;
}

// ---- raw protocol --------------------------------------------------------------

std::unique_ptr<transport::RpcClient> RawConnect(const std::string& address) {
  transport::RpcClientOptions o;
  o.keepalive_interval = std::chrono::milliseconds(0);  // calls here may take a while
  Result<std::unique_ptr<transport::RpcClient>> c = transport::RpcClient::Connect(address, o);
  return c.ok() ? std::move(c).value() : nullptr;
}

transport::RpcReply Raw(transport::RpcClient& rpc, RpcOp op, const std::string& meta,
                        std::span<const transport::ConstBuffer> payload = {},
                        std::span<const transport::MutableBuffer> reply = {},
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
  transport::CallRequest call;
  call.opcode = static_cast<uint16_t>(op);
  call.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  call.payload = payload;
  call.reply_buffers = reply;
  call.timeout = timeout;
  return rpc.Call(call);
}

// Registers `name` on the raw connection; its response or the error.
Result<transport::RegisterNamespaceResponse> RawRegister(transport::RpcClient& rpc,
                                                         const std::string& name,
                                                         const std::string& token,
                                                         uint64_t value_bytes, uint32_t layers) {
  transport::RegisterNamespaceRequest req;
  req.name = name;
  req.token = token;
  req.num_layers = layers;
  req.block_tokens = 16;
  req.layer_block_bytes = value_bytes;
  req.kv_dtype = "fp16";
  transport::RpcReply r = Raw(rpc, RpcOp::kRegisterNamespace, transport::Encode(req));
  if (!r.status.ok()) return r.status;
  return transport::DecodeAs<transport::RegisterNamespaceResponse>(
      std::string_view(reinterpret_cast<const char*>(r.meta.data()), r.meta.size()));
}

// ---- daemon --------------------------------------------------------------------

std::vector<std::string> BaseFlags(const std::string& ssd_path) {
  return {"--ssd_path=" + ssd_path, "--io_threads=2", "--ucx_tls=tcp", "--log_level=warning"};
}

// A daemon without an SSD tier: a 32 MiB host tier of 64 KiB slots.
std::vector<std::string> HostOnlyFlags() {
  std::vector<std::string> flags = BaseFlags("");
  flags.insert(flags.end(), {"--host_bytes=32M", "--slot_bytes=64K"});
  return flags;
}

Result<double> ScrapeMetric(DaemonProcess& d, const std::string& name) {
  ASSIGN_OR_RETURN(chaos::HttpReply r, HttpGet(PortOf(d.admin_address()), "/metrics"));
  if (r.status != 200) return UnavailableError("/metrics answered " + std::to_string(r.status));
  return MetricValue(r.body, name);
}

// Waits (up to `wait`) for the daemon's VmRSS to come back to at most
// `limit` bytes; the last reading.
uint64_t SettledRss(pid_t pid, uint64_t limit,
                    std::chrono::milliseconds wait = std::chrono::milliseconds(5000)) {
  const auto end = std::chrono::steady_clock::now() + wait;
  uint64_t rss = 0;
  while (true) {
    Result<ProcMemory> m = ReadProcMemory(pid);
    rss = m.ok() ? m->rss : 0;
    if (rss <= limit || std::chrono::steady_clock::now() >= end) return rss;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string MiB(uint64_t bytes) { return std::to_string(bytes / kMiB) + " MiB"; }

// ---- 1. tenant isolation -------------------------------------------------------

// Two tenants with their own tokens. Tenant B (its client, and raw
// connections that registered only nsB or nothing at all) aims every keyed
// operation at tenant A's namespace id and real fingerprint: all refused with
// PERMISSION_DENIED, nothing of A's is read, changed or deleted; B cannot
// register nsA with its token.
TEST(TenantIsolation, AnotherTenantCannotTouchANamespace) {
  constexpr uint64_t kValue = 256 << 10;
  constexpr uint32_t kLayers = 2;
  constexpr uint64_t kTenantA = 0xA, kTenantB = 0xB;
  TempDir dir;
  const std::string tokens = dir.path() + "/tokens";
  std::ofstream(tokens) << "# tenant tokens\ntokA nsA\ntokB nsB\n";
  auto flags = BaseFlags(dir.path() + "/ssd");
  flags.insert(flags.end(), {"--token_file=" + tokens, "--host_bytes=64M", "--slot_bytes=256K"});
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();

  Result<std::unique_ptr<Client>> a = OpenClient(address, "nsA", "tokA", kValue, kLayers);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const std::vector<uint64_t> hashes = Hashes(**a, 1, 8);
  ASSERT_TRUE(PutAll(**a, kTenantA, hashes, kLayers, kValue).ok());
  // A raw registration by A gives the real fingerprint to attack with.
  std::unique_ptr<transport::RpcClient> a_raw = RawConnect(address);
  ASSERT_NE(a_raw, nullptr);
  Result<transport::RegisterNamespaceResponse> reg_a =
      RawRegister(*a_raw, "nsA", "tokA", kValue, kLayers);
  ASSERT_TRUE(reg_a.ok()) << reg_a.status().ToString();
  const uint64_t ns_a = NamespaceSeed("nsA");
  ASSERT_EQ(reg_a->ns_id, ns_a);
  const uint64_t fp_a = reg_a->fingerprint;

  Result<std::unique_ptr<Client>> b = OpenClient(address, "nsB", "tokB", kValue, kLayers);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const std::vector<uint64_t> b_hashes = Hashes(**b, 1, 8);
  ASSERT_TRUE(PutAll(**b, kTenantB, b_hashes, kLayers, kValue).ok());
  Result<ProcMemory> baseline = ReadProcMemory((*d)->pid());
  ASSERT_TRUE(baseline.ok());

  // Every keyed op on (ns_a, fp_a), raw; each must be PERMISSION_DENIED and
  // return no bytes.
  std::vector<char> junk(2 * kValue, 'x');
  std::vector<char> sink(hashes.size() * kValue, '\0');
  auto attack = [&](transport::RpcClient& rpc, const std::string& who) {
    std::vector<transport::BlockRef> keys;
    for (uint64_t h : hashes) keys.push_back({h, 0});
    const transport::KeyedRequest keyed{ns_a, fp_a, keys};
    const transport::KeyedRequest one{ns_a, fp_a, {keys[0]}};
    const transport::KeyedRequest two{ns_a, fp_a, {keys[0], keys[1]}};
    const transport::KeyedRequest guessed{ns_a, 0, keys};  // a guessed fingerprint
    transport::LookupPrefixRequest lookup{ns_a, fp_a, 0, hashes};
    transport::ReportStatsRequest stats{
        ns_a, fp_a, 0, 1.0, hashes, std::vector<double>(hashes.size(), 1.0), 1};
    transport::PutCommitRequest commit{ns_a, fp_a, 1, {keys[0]}, {0}};
    const transport::ConstBuffer put_one{junk.data(), kValue};
    const transport::ConstBuffer put_two{junk.data(), 2 * kValue};
    const transport::MutableBuffer into{sink.data(), sink.size()};
    struct Try {
      const char* what;
      transport::RpcReply reply;
    };
    std::vector<Try> tries;
    tries.push_back({"lookup", Raw(rpc, RpcOp::kLookupPrefix, transport::Encode(lookup))});
    tries.push_back({"get", Raw(rpc, RpcOp::kGet, transport::Encode(keyed), {}, {&into, 1})});
    tries.push_back(
        {"get (guessed fp)", Raw(rpc, RpcOp::kGet, transport::Encode(guessed), {}, {&into, 1})});
    tries.push_back({"put", Raw(rpc, RpcOp::kPut, transport::Encode(one), {&put_one, 1})});
    tries.push_back({"put x2", Raw(rpc, RpcOp::kPut, transport::Encode(two), {&put_two, 1})});
    tries.push_back({"delete", Raw(rpc, RpcOp::kDelete, transport::Encode(keyed))});
    tries.push_back({"get_pin", Raw(rpc, RpcOp::kGetPin, transport::Encode(keyed))});
    tries.push_back({"put_reserve", Raw(rpc, RpcOp::kPutReserve, transport::Encode(keyed))});
    tries.push_back({"put_commit", Raw(rpc, RpcOp::kPutCommit, transport::Encode(commit))});
    tries.push_back({"report_stats", Raw(rpc, RpcOp::kReportStats, transport::Encode(stats))});
    for (const Try& t : tries) {
      EXPECT_EQ(t.reply.status.code(), StatusCode::kPermissionDenied)
          << who << " " << t.what << ": " << t.reply.status.ToString();
      EXPECT_EQ(t.reply.payload_size, 0u) << who << " " << t.what << " got bytes back";
    }
  };

  for (SoakRounds r(2); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    // B's client, pointed at nsA with B's token: the registration is
    // refused and no keyed call succeeds.
    {
      Result<std::unique_ptr<Client>> b_on_a = OpenClient(address, "nsA", "tokB", kValue, kLayers);
      EXPECT_EQ(b_on_a.status().code(), StatusCode::kPermissionDenied)
          << b_on_a.status().ToString();
      ClientOptions o;
      o.address = address;
      o.namespace_name = "nsA";
      o.token = "tokB";
      o.use_mapped_path = false;
      o.timeout = std::chrono::milliseconds(20000);
      Result<std::unique_ptr<Client>> c = Client::Connect(o);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_FALSE((*c)->RegisterNamespace(Geometry(kValue, kLayers)).ok());
      EXPECT_FALSE(PutAll(**c, kTenantB, {hashes[0]}, kLayers, kValue).ok());
      GetOutcome got = GetAll(**c, kTenantA, hashes, kLayers, kValue);
      EXPECT_FALSE(got.status.ok() && got.found + got.wrong > 0)
          << "B's client read " << got.found + got.wrong << " of A's values";
      EXPECT_FALSE((*c)->LookupPrefix(hashes, 0).ok());
      std::vector<BlockId> del = {{hashes[0], 0}};
      Result<uint32_t> deleted = (*c)->Delete(del);
      EXPECT_FALSE(deleted.ok() && *deleted > 0);
    }
    // A raw connection that never registered anything.
    {
      std::unique_ptr<transport::RpcClient> anon = RawConnect(address);
      ASSERT_NE(anon, nullptr);
      attack(*anon, "unregistered");
      // Registrations of nsA without A's token.
      EXPECT_EQ(RawRegister(*anon, "nsA", "tokB", kValue, kLayers).status().code(),
                StatusCode::kPermissionDenied);
      EXPECT_EQ(RawRegister(*anon, "nsA", "tokA-guess", kValue, kLayers).status().code(),
                StatusCode::kPermissionDenied);
      EXPECT_EQ(RawRegister(*anon, "nsA", "", kValue, kLayers).status().code(),
                StatusCode::kUnauthenticated);
      attack(*anon, "unregistered after refused registrations");
    }
    // B's own authenticated connection (nsB open on it).
    {
      std::unique_ptr<transport::RpcClient> b_raw = RawConnect(address);
      ASSERT_NE(b_raw, nullptr);
      ASSERT_TRUE(RawRegister(*b_raw, "nsB", "tokB", kValue, kLayers).ok());
      attack(*b_raw, "tenant B");
      EXPECT_EQ(RawRegister(*b_raw, "nsA", "tokB", kValue, kLayers).status().code(),
                StatusCode::kPermissionDenied);
      attack(*b_raw, "tenant B after a refused registration");
    }
    ASSERT_TRUE((*d)->Alive());
    // A's bytes are intact, B's too, and each sees only its own.
    GetOutcome got_a = GetAll(**a, kTenantA, hashes, kLayers, kValue);
    ASSERT_TRUE(got_a.status.ok()) << got_a.status.ToString();
    EXPECT_EQ(got_a.found, static_cast<int>(hashes.size() * kLayers));
    EXPECT_EQ(got_a.wrong, 0);
    Result<uint32_t> prefix = (*a)->LookupPrefix(hashes, 0);
    ASSERT_TRUE(prefix.ok());
    EXPECT_EQ(*prefix, hashes.size());
    GetOutcome got_b = GetAll(**b, kTenantB, b_hashes, kLayers, kValue);
    ASSERT_TRUE(got_b.status.ok());
    EXPECT_EQ(got_b.found, static_cast<int>(b_hashes.size() * kLayers));
    // The same block hashes in B's namespace are B's blocks, never A's.
    GetOutcome cross = GetAll(**b, kTenantA, hashes, kLayers, kValue);
    ASSERT_TRUE(cross.status.ok());
    EXPECT_EQ(cross.found, 0) << "B read A's bytes through its own namespace";
  }
  a->reset();
  b->reset();
  a_raw.reset();
  const uint64_t limit = baseline->rss + 64 * kMiB;
  const uint64_t rss = SettledRss((*d)->pid(), limit);
  EXPECT_LE(rss, limit) << "VmRSS " << MiB(rss) << ", baseline " << MiB(baseline->rss);
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
}

// ---- 2. full filesystem --------------------------------------------------------

// The SSD tier on a 64 MiB tmpfs, a 16 MiB host tier, and 80 MiB of values
// per round (each read once, so the LRU admits them to SSD when they are
// demoted). The disk fills: puts may fail or values may be dropped, but the
// daemon stays up, every value it reports found reads back byte-identical,
// once values are deleted new puts succeed, and memory stays bounded.
TEST(DiskFull, DaemonStaysUpAndServesExactBytes) {
  constexpr uint64_t kValue = 1 * kMiB;
  constexpr uint64_t kTenant = 0xD15C;
  TempDir dir;
  const std::string mnt = dir.path() + "/mnt";
  Status mounted = chaos::MountTmpfs(mnt, "64m");
  if (!mounted.ok()) GTEST_SKIP() << mounted.ToString();
  struct Unmounter {
    std::string dir;
    ~Unmounter() { EXPECT_TRUE(chaos::Unmount(dir).ok()); }
  } unmount{mnt};
  {
    auto flags = BaseFlags(mnt + "/ssd");
    flags.insert(flags.end(), {"--host_bytes=16M", "--slot_bytes=1M", "--ssd_bytes=1G",
                               "--policy=lru", "--reserve_wait_ms=20"});
    Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    Result<std::unique_ptr<Client>> c = OpenClient((*d)->address(), "disk", "", kValue, 1);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    Result<ProcMemory> start = ReadProcMemory((*d)->pid());
    ASSERT_TRUE(start.ok());
    // Memory after the first round, when the host tier and RocksDB's
    // memtables (64 MiB each, two at most) are as full as they get.
    uint64_t warm_rss = 0;

    std::vector<uint64_t> written;  // every hash ever put successfully
    std::vector<Status> failures;
    uint32_t prompt = 0;
    for (SoakRounds r(2); r.Next();) {
      SCOPED_TRACE("round " + std::to_string(r.round()));
      // 10 batches of 8 values (80 MiB, more than disk and host tier
      // together), each read back at once (its second hit).
      for (int batch = 0; batch < 10; ++batch) {
        const std::vector<uint64_t> hashes = Hashes(**c, ++prompt, 8);
        std::vector<Status> per;
        Status put = PutAll(**c, kTenant, hashes, 1, kValue, &per);
        for (size_t i = 0; i < hashes.size(); ++i) {
          if (i < per.size() && per[i].ok()) {
            written.push_back(hashes[i]);
          } else {
            failures.push_back(i < per.size() ? per[i] : put);
          }
        }
        GetOutcome got = GetAll(**c, kTenant, hashes, 1, kValue);
        ASSERT_TRUE(got.status.ok()) << got.status.ToString();
        ASSERT_EQ(got.wrong, 0) << "batch " << batch;
        ASSERT_TRUE((*d)->Alive()) << "kvcaked died at batch " << batch;
      }
      // Every value reported found is exact.
      GetOutcome all = GetAll(**c, kTenant, written, 1, kValue);
      ASSERT_TRUE(all.status.ok()) << all.status.ToString();
      EXPECT_EQ(all.wrong, 0);
      EXPECT_GT(all.found, 0);
      // Room again: delete everything, then new puts succeed and read back.
      std::vector<BlockId> del;
      for (uint64_t h : written) del.push_back(BlockId{h, 0});
      ASSERT_TRUE((*c)->Delete(del).ok());
      written.clear();
      const std::vector<uint64_t> fresh = Hashes(**c, ++prompt, 8);
      Status again;
      for (int attempt = 0; attempt < 20; ++attempt) {
        again = PutAll(**c, kTenant, fresh, 1, kValue);
        if (again.ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
      ASSERT_TRUE(again.ok()) << "puts after deleting everything: " << again.ToString();
      GetOutcome got = GetAll(**c, kTenant, fresh, 1, kValue);
      ASSERT_TRUE(got.status.ok());
      EXPECT_EQ(got.found, static_cast<int>(fresh.size()));
      written = fresh;
      Result<ProcMemory> m = ReadProcMemory((*d)->pid());
      ASSERT_TRUE(m.ok());
      EXPECT_LE(m->rss, start->rss + (16 + 128 + 64) * kMiB)
          << "VmRSS " << MiB(m->rss) << " at start " << MiB(start->rss);
      if (r.round() == 1) {
        warm_rss = m->rss;
      } else {
        EXPECT_LE(m->rss, warm_rss + 64 * kMiB)
            << "VmRSS " << MiB(m->rss) << ", after the first round " << MiB(warm_rss);
      }
      // The admin API answers while the disk is full.
      EXPECT_TRUE(ScrapeMetric(**d, "kvcake_tier_used_bytes").ok());
    }
    // A refused put says why.
    std::string seen;
    for (const Status& s : failures) {
      EXPECT_TRUE(s.code() == StatusCode::kResourceExhausted ||
                  s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kAborted)
          << s.ToString();
      if (seen.size() < 300) seen += s.ToString() + "; ";
    }
    std::cout << "disk full: " << failures.size() << " puts refused (" << seen << ")" << std::endl;
    c->reset();
    ASSERT_TRUE((*d)->Alive());
    // Draining onto a full disk fails (logged); the process still exits.
    Result<int> rc = (*d)->Stop();
    EXPECT_TRUE(rc.ok()) << rc.status().ToString();
    if (rc.ok()) std::cout << "kvcaked exit status " << *rc << std::endl;
  }
}

// ---- 3. SSD files damaged while the daemon is stopped --------------------------

constexpr uint64_t kSsdValue = 256 << 10;
constexpr size_t kSsdBlocks = 16;
constexpr uint64_t kSsdTenant = 0x55D;

std::vector<std::string> SsdFlags(const std::string& ssd) {
  auto flags = BaseFlags(ssd);
  flags.insert(flags.end(), {"--host_bytes=64M", "--slot_bytes=256K"});
  return flags;
}

// Starts a daemon on `ssd`, stores kSsdBlocks values and stops it with
// SIGTERM (the drain writes them to SSD); their hashes.
std::vector<uint64_t> FillSsdAndStop(const std::string& ssd, uint32_t prompt) {
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(SsdFlags(ssd));
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  if (!d.ok()) return {};
  Result<std::unique_ptr<Client>> c = OpenClient((*d)->address(), "ssd", "", kSsdValue, 1);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return {};
  std::vector<uint64_t> hashes = Hashes(**c, prompt, kSsdBlocks);
  EXPECT_TRUE(PutAll(**c, kSsdTenant, hashes, 1, kSsdValue).ok());
  c->reset();
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
  return hashes;
}

enum class Damage { kSst, kManifest };

class SsdDamage : public ::testing::TestWithParam<Damage> {};

// Bytes flipped in an SST (or the MANIFEST) while the daemon is stopped:
// the restart quarantines the directory, serves new data, counts it in
// kvcake_ssd_quarantines_total, and never returns the old blocks wrong.
TEST_P(SsdDamage, CorruptDirectoryIsQuarantinedAndTheDaemonServes) {
  for (SoakRounds r(1); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    TempDir dir;
    const std::string ssd = dir.path() + "/ssd";
    const std::vector<uint64_t> hashes = FillSsdAndStop(ssd, r.round());
    ASSERT_EQ(hashes.size(), kSsdBlocks);
    if (GetParam() == Damage::kSst) {
      const std::vector<std::string> ssts = chaos::FilesIn(ssd, "", ".sst");
      ASSERT_FALSE(ssts.empty()) << "the drain left no SST in " << ssd;
      for (const std::string& f : ssts) {
        const uint64_t size = std::filesystem::file_size(f);
        ASSERT_TRUE(chaos::FlipBytes(f, size / 2, 16).ok());
      }
    } else {
      const std::vector<std::string> manifests = chaos::FilesIn(ssd, "MANIFEST-", "");
      ASSERT_EQ(manifests.size(), 1u);
      const uint64_t size = std::filesystem::file_size(manifests[0]);
      ASSERT_TRUE(chaos::FlipBytes(manifests[0], size / 2, 16).ok());
    }

    Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(SsdFlags(ssd));
    ASSERT_TRUE(d.ok()) << "kvcaked did not start on a damaged SSD directory: "
                        << d.status().ToString();
    Result<double> quarantines = ScrapeMetric(**d, "kvcake_ssd_quarantines_total");
    ASSERT_TRUE(quarantines.ok()) << quarantines.status().ToString();
    EXPECT_EQ(*quarantines, 1);
    EXPECT_EQ(chaos::FilesIn(dir.path(), "", "").size(), 0u);  // only directories
    bool moved = false;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      moved |= e.path().filename().string().rfind("ssd.corrupt-", 0) == 0;
    }
    EXPECT_TRUE(moved) << "no ssd.corrupt-* directory next to " << ssd;
    Result<std::unique_ptr<Client>> c = OpenClient((*d)->address(), "ssd", "", kSsdValue, 1);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    GetOutcome old = GetAll(**c, kSsdTenant, hashes, 1, kSsdValue);
    ASSERT_TRUE(old.status.ok()) << old.status.ToString();
    EXPECT_EQ(old.wrong, 0);
    const std::vector<uint64_t> fresh = Hashes(**c, 1000 + r.round(), kSsdBlocks);
    ASSERT_TRUE(PutAll(**c, kSsdTenant, fresh, 1, kSsdValue).ok());
    GetOutcome got = GetAll(**c, kSsdTenant, fresh, 1, kSsdValue);
    ASSERT_TRUE(got.status.ok());
    EXPECT_EQ(got.found, static_cast<int>(kSsdBlocks));
    EXPECT_EQ(got.wrong, 0);
    c->reset();
    Result<int> rc = (*d)->Stop();
    EXPECT_TRUE(rc.ok() && *rc == 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Files, SsdDamage, ::testing::Values(Damage::kSst, Damage::kManifest),
                         [](const ::testing::TestParamInfo<Damage>& info) {
                           return info.param == Damage::kSst ? std::string("Sst")
                                                             : std::string("Manifest");
                         });

// Bytes flipped inside a blob file only (the payloads): the restart keeps the
// directory; every value whose record was hit is a miss (now and later),
// every other value comes back exact.
TEST(SsdDamageBlob, DamagedValuesAreMissesOthersExact) {
  constexpr int kFlips = 3;
  for (SoakRounds r(1); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    TempDir dir;
    const std::string ssd = dir.path() + "/ssd";
    const std::vector<uint64_t> hashes = FillSsdAndStop(ssd, r.round());
    ASSERT_EQ(hashes.size(), kSsdBlocks);
    std::vector<std::string> blobs = chaos::FilesIn(ssd, "", ".blob");
    ASSERT_FALSE(blobs.empty()) << "the drain left no blob file in " << ssd;
    std::sort(blobs.begin(), blobs.end(), [](const std::string& x, const std::string& y) {
      return std::filesystem::file_size(x) > std::filesystem::file_size(y);
    });
    const uint64_t size = std::filesystem::file_size(blobs[0]);
    ASSERT_GT(size, 4 * kSsdValue) << blobs[0];
    for (int i = 1; i <= kFlips; ++i) {
      ASSERT_TRUE(chaos::FlipBytes(blobs[0], size * i / (kFlips + 1), 1).ok());
    }

    Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(SsdFlags(ssd));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    Result<double> quarantines = ScrapeMetric(**d, "kvcake_ssd_quarantines_total");
    ASSERT_TRUE(quarantines.ok());
    EXPECT_EQ(*quarantines, 0);  // payload damage is found per block, on read
    Result<std::unique_ptr<Client>> c = OpenClient((*d)->address(), "ssd", "", kSsdValue, 1);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    GetOutcome got = GetAll(**c, kSsdTenant, hashes, 1, kSsdValue);
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.wrong, 0) << "a damaged value came back with wrong bytes";
    EXPECT_GE(got.missing, 1) << "no value was affected by the damage";
    EXPECT_LE(got.missing, kFlips);
    EXPECT_EQ(got.found + got.missing, static_cast<int>(kSsdBlocks));
    std::cout << "blob damage: " << got.missing << " of " << kSsdBlocks << " values missing, "
              << got.found << " exact" << std::endl;
    // Read again: the damaged ones stay misses, the others stay exact.
    GetOutcome again = GetAll(**c, kSsdTenant, hashes, 1, kSsdValue);
    ASSERT_TRUE(again.status.ok());
    EXPECT_EQ(again.wrong, 0);
    EXPECT_EQ(again.found_flags, got.found_flags);
    // And the daemon keeps taking new data.
    const std::vector<uint64_t> fresh = Hashes(**c, 1000 + r.round(), 4);
    ASSERT_TRUE(PutAll(**c, kSsdTenant, fresh, 1, kSsdValue).ok());
    EXPECT_EQ(GetAll(**c, kSsdTenant, fresh, 1, kSsdValue).found, 4);
    c->reset();
    Result<int> rc = (*d)->Stop();
    EXPECT_TRUE(rc.ok() && *rc == 0);
  }
}

// ---- 4. slow admin clients and connection churn --------------------------------

// Keeps `n` connections to the admin port, each sending an HTTP request header
// one byte at a time and never finishing it; a connection the server closes
// is opened again (at most once per 500 ms).
class SlowAdminClients {
 public:
  SlowAdminClients(uint16_t port, int n) : port_(port), fds_(n, -1), opened_at_(n) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SlowAdminClients() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int& fd : fds_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  // Connections opened again after the server closed them.
  int reopened() const { return std::max<int>(0, opened_ - static_cast<int>(fds_.size())); }

 private:
  void Run() {
    const std::string header = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    std::vector<size_t> sent(fds_.size(), 0);
    while (!stop_) {
      const auto now = std::chrono::steady_clock::now();
      for (size_t i = 0; i < fds_.size() && !stop_; ++i) {
        if (fds_[i] < 0) {
          if (now - opened_at_[i] < std::chrono::milliseconds(500)) continue;
          fds_[i] = chaos::ConnectTcp(port_);
          opened_at_[i] = now;
          sent[i] = 0;
          if (fds_[i] >= 0) ++opened_;
          continue;
        }
        // One more byte of a header that never ends (it stays far below the
        // server's header size limit).
        const char byte = sent[i] < header.size() ? header[sent[i]] : 'a';
        char drain[256];
        const ssize_t got = ::recv(fds_[i], drain, sizeof drain, MSG_DONTWAIT);
        const bool closed = got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        if (closed || ::send(fds_[i], &byte, 1, MSG_NOSIGNAL) != 1) {
          ::close(fds_[i]);
          fds_[i] = -1;
          continue;
        }
        ++sent[i];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  const uint16_t port_;
  std::vector<int> fds_;
  std::vector<std::chrono::steady_clock::time_point> opened_at_;
  std::atomic<bool> stop_{false};
  std::atomic<int> opened_{0};
  std::thread thread_;
};

// One short-lived data-plane client: connect, register, put one value, get
// it back, disconnect. False on any error or wrong bytes.
constexpr uint64_t kChurnValue = 64 << 10;

bool ShortClient(const std::string& address, uint64_t i, std::string* error) {
  constexpr uint64_t kValue = kChurnValue;
  Result<std::unique_ptr<Client>> c =
      OpenClient(address, "churn-" + std::to_string(i % 4), "", kValue, 1, /*mapped=*/i % 2 == 0);
  if (!c.ok()) {
    *error = c.status().ToString();
    return false;
  }
  const std::vector<uint64_t> h = {0x1000 + i};
  Status put = PutAll(**c, i, h, 1, kValue);
  GetOutcome got = GetAll(**c, i, h, 1, kValue);
  if (!put.ok() || !got.status.ok() || got.found != 1) {
    *error = "put " + put.ToString() + ", get " + got.status.ToString() + " found " +
             std::to_string(got.found);
    return false;
  }
  return true;
}

// 100 admin connections that send a header slowly (over the 64-connection
// limit, and past the 5 s header timeout) while /healthz is polled (each
// answer within 3 s), and 200 short-lived data-plane clients; then the
// daemon's memory is back near its baseline and /metrics answers.
TEST(SlowAdminAndChurn, ProbesAnswerAndMemoryReturns) {
  TempDir dir;
  // No SSD tier: a full host tier drops blocks, so the daemon's memory is
  // the host segment plus what connections cost.
  auto flags = HostOnlyFlags();
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();
  const uint16_t admin = PortOf((*d)->admin_address());
  // Warm-up: the whole host segment is written once (its pages stay
  // resident), and every allocator arena and pool the churn uses is made.
  {
    Result<std::unique_ptr<Client>> fill = OpenClient(address, "fill", "", kChurnValue, 1);
    ASSERT_TRUE(fill.ok()) << fill.status().ToString();
    for (uint32_t p = 0; p < 8; ++p) {
      ASSERT_TRUE(PutAll(**fill, 1, Hashes(**fill, p, 64), 1, kChurnValue).ok());
    }
  }
  std::string error;
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(ShortClient(address, 1000000 + i, &error)) << error;
  ASSERT_TRUE(HttpGet(admin, "/metrics").ok());
  Result<ProcMemory> baseline = ReadProcMemory((*d)->pid());
  ASSERT_TRUE(baseline.ok());

  uint64_t next = 0;
  for (SoakRounds r(1); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    SlowAdminClients slow(admin, 100);
    std::atomic<bool> done{false};
    std::atomic<int> probes{0}, probe_failures{0};
    std::atomic<int64_t> worst_ms{0};
    std::string probe_error;
    std::thread prober([&] {
      while (!done) {
        const auto t0 = std::chrono::steady_clock::now();
        Result<chaos::HttpReply> h = HttpGet(admin, "/healthz", std::chrono::milliseconds(3000));
        const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - t0)
                               .count();
        worst_ms = std::max<int64_t>(worst_ms, ms);
        ++probes;
        if (!h.ok() || h->status != 200) {
          if (probe_failures++ == 0) {
            probe_error = h.ok() ? "HTTP " + std::to_string(h->status) : h.status().ToString();
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    // 200 clients spread over at least 8 s, so the slow admin connections
    // outlive the header timeout (5 s) and are closed by it.
    std::atomic<int> clients{0}, client_failures{0};
    std::string client_error;
    std::vector<std::thread> churn;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < 2; ++t) {
      churn.emplace_back([&, t] {
        std::string e;
        for (uint64_t i = 0; i < 100; ++i) {
          std::this_thread::sleep_until(t0 + i * std::chrono::milliseconds(80));
          if (!ShortClient(address, next + 2 * i + t, &e) && client_failures++ == 0) {
            client_error = e;
          }
          ++clients;
        }
      });
    }
    for (std::thread& t : churn) t.join();
    next += 2 * static_cast<uint64_t>(clients.load());
    done = true;
    prober.join();
    slow.Stop();
    ASSERT_TRUE((*d)->Alive());
    EXPECT_EQ(client_failures, 0) << client_error;
    EXPECT_GT(probes, 3);
    EXPECT_EQ(probe_failures, 0) << probe_error;
    EXPECT_LT(worst_ms, 3000);
    EXPECT_GT(slow.reopened(), 0) << "the server never closed a slow admin connection";
    std::cout << "round " << r.round() << ": " << clients << " short clients, " << probes
              << " probes, worst " << worst_ms << " ms; slow admin connections reopened "
              << slow.reopened() << " times" << std::endl;
  }
  Result<chaos::HttpReply> m = HttpGet(admin, "/metrics");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->status, 200);
  EXPECT_TRUE(MetricValue(m->body, "kvcake_admin_connections_closed_total").ok());
  const uint64_t limit = baseline->rss + 64 * kMiB;
  const uint64_t rss = SettledRss((*d)->pid(), limit);
  EXPECT_LE(rss, limit) << "VmRSS " << MiB(rss) << ", baseline " << MiB(baseline->rss);
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
}

// ---- 5. memory bound on requests that announce huge payloads -------------------

// A read-only mapping of `bytes` that reserves no memory: reading it maps the
// zero page, so the client can "send" gigabytes without using RAM.
class HugeZeroBuffer {
 public:
  explicit HugeZeroBuffer(uint64_t bytes) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : p;
  }
  ~HugeZeroBuffer() {
    if (data_) ::munmap(data_, bytes_);
  }
  const void* data() const { return data_; }

 private:
  uint64_t bytes_;
  void* data_;
};

// Requests announcing gigabytes: a PING with meta too large for the AM header
// (it travels in the data) and a multi-GiB payload, puts larger than a batch
// (with inline meta and with meta in the data), one key with gigabytes, and
// puts whose meta travels in the data (staged: over and under the staging
// limit). The daemon answers each with an error, its RSS stays below
// +256 MiB, and it keeps serving.
TEST(HugeAnnouncements, RefusedWithinAMemoryBound) {
  constexpr uint64_t kValue = 1 * kMiB;
  constexpr uint64_t kBatchBytes = transport::kMaxBatchBlocks * kValue;  // 4 GiB at 1 MiB slots
  TempDir dir;
  auto flags = BaseFlags(dir.path() + "/ssd");
  flags.insert(flags.end(), {"--host_bytes=64M", "--slot_bytes=1M", "--max_staged_bytes=64M"});
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();
  Result<std::unique_ptr<Client>> c = OpenClient(address, "huge", "", kValue, 1);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const std::vector<uint64_t> hashes = Hashes(**c, 1, 4);
  ASSERT_TRUE(PutAll(**c, 7, hashes, 1, kValue).ok());
  Result<ProcMemory> baseline = ReadProcMemory((*d)->pid());
  ASSERT_TRUE(baseline.ok());

  const uint64_t huge = kBatchBytes + kBatchBytes / 4;  // 5 GiB
  HugeZeroBuffer zeros(huge);
  ASSERT_NE(zeros.data(), nullptr) << "mmap of " << MiB(huge) << " (MAP_NORESERVE) failed";
  auto payload = [&](uint64_t bytes) { return transport::ConstBuffer{zeros.data(), bytes}; };

  for (SoakRounds r(2); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    std::unique_ptr<transport::RpcClient> rpc = RawConnect(address);
    ASSERT_NE(rpc, nullptr);
    Result<transport::RegisterNamespaceResponse> reg = RawRegister(*rpc, "huge", "", kValue, 1);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    const size_t inline_max = rpc->max_inline_meta_bytes();
    // PING meta larger than the AM header can carry (a real PingRequest
    // followed by filler; the daemon must refuse before decoding it).
    std::string big_ping = transport::Encode(transport::PingRequest{42});
    big_ping.resize(inline_max + 4096, 'p');
    // A put of one key whose meta is padded past the inline bound.
    const std::string put_meta = transport::Encode(
        transport::KeyedRequest{reg->ns_id, reg->fingerprint, {{0xBADull + r.round(), 0}}});
    std::string big_put_meta = put_meta;
    big_put_meta.resize(inline_max + 4096, '\0');
    struct Try {
      const char* what;
      RpcOp op;
      const std::string* meta;
      uint64_t payload_bytes;
    };
    const Try tries[] = {
        {"PING, meta in data, 4 GiB payload", RpcOp::kPing, &big_ping, 4ull << 30},
        {"PING, meta in data, 5 GiB payload", RpcOp::kPing, &big_ping, huge},
        {"PUT, 5 GiB payload (over a batch)", RpcOp::kPut, &put_meta, huge},
        {"PUT, meta in data, 5 GiB payload", RpcOp::kPut, &big_put_meta, huge},
        {"PUT, one key, 2 GiB payload", RpcOp::kPut, &put_meta, 2ull << 30},
        {"PUT, meta in data, 512 MiB payload (over the staging limit)", RpcOp::kPut, &big_put_meta,
         512 * kMiB},
        {"PUT, meta in data, 48 MiB payload (staged, then refused)", RpcOp::kPut, &big_put_meta,
         48 * kMiB},
    };
    for (const Try& t : tries) {
      const transport::ConstBuffer buf = payload(t.payload_bytes);
      const auto t0 = std::chrono::steady_clock::now();
      transport::RpcReply reply =
          Raw(*rpc, t.op, *t.meta, {&buf, 1}, {}, std::chrono::milliseconds(30000));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_FALSE(reply.status.ok()) << t.what << " was accepted";
      EXPECT_NE(reply.status.code(), StatusCode::kDeadlineExceeded)
          << t.what << ": no answer: " << reply.status.ToString();
      std::cout << t.what << ": " << reply.status.ToString() << " (" << s << " s)" << std::endl;
      ASSERT_TRUE((*d)->Alive()) << "kvcaked died on " << t.what;
      Result<ProcMemory> now = ReadProcMemory((*d)->pid());
      ASSERT_TRUE(now.ok());
      EXPECT_LT(now->rss, baseline->rss + 256 * kMiB)
          << t.what << ": VmRSS " << MiB(now->rss) << ", baseline " << MiB(baseline->rss);
      EXPECT_LT(now->hwm, baseline->hwm + 256 * kMiB)
          << t.what << ": VmHWM " << MiB(now->hwm) << ", before " << MiB(baseline->hwm);
      if (!rpc->connected()) {
        // The daemon may drop a connection that sent such a frame; a new one
        // must work.
        rpc = RawConnect(address);
        ASSERT_NE(rpc, nullptr);
        reg = RawRegister(*rpc, "huge", "", kValue, 1);
        ASSERT_TRUE(reg.ok()) << reg.status().ToString();
      }
    }
    // Still serving: the raw connection, and the client's committed values.
    EXPECT_TRUE(rpc->Ping(std::chrono::milliseconds(5000)).ok());
    GetOutcome got = GetAll(**c, 7, hashes, 1, kValue);
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.found, static_cast<int>(hashes.size()));
    EXPECT_EQ(got.wrong, 0);
  }
  c->reset();
  const uint64_t limit = baseline->rss + 64 * kMiB;
  const uint64_t rss = SettledRss((*d)->pid(), limit);
  EXPECT_LE(rss, limit) << "VmRSS " << MiB(rss) << ", baseline " << MiB(baseline->rss);
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
}

// ---- connection identity ------------------------------------------------------------

// A new connection never inherits a closed one's identity (and with it the
// namespaces that one opened). The server keys connections by UCX endpoints
// it created itself; endpoints UCX creates on its own are destroyed when
// their peer goes and their address is reused for the next client. Tenant A
// closes cleanly (a goodbye frame) or is SIGKILLed (nothing said); then new
// connections that never registered try A's value.
class ConnectionIdentity : public ::testing::TestWithParam<bool> {};

TEST_P(ConnectionIdentity, NewConnectionNeverInheritsAClosedOnesGrants) {
  const bool kill_a = GetParam();
  constexpr uint64_t kValue = 64 << 10;
  TempDir dir;
  const std::string tokens = dir.path() + "/tokens";
  std::ofstream(tokens) << "tokA nsA\ntokB nsB\n";
  auto flags = HostOnlyFlags();
  flags.push_back("--token_file=" + tokens);
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();
  const uint64_t ns_a = NamespaceSeed("nsA");
  const std::vector<char> secret = Pattern(0xA, 1, kValue);
  // Every UCX user is a child process (forked before this one uses UCX).
  auto run_child = [](const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(body());
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  };
  for (SoakRounds r(4); r.Next();) {
    SCOPED_TRACE("round " + std::to_string(r.round()));
    // Tenant A: registers, stores a value, then closes or dies.
    const int a = run_child([&] {
      std::unique_ptr<transport::RpcClient> c = RawConnect(address);
      if (c == nullptr) return 2;
      Result<transport::RegisterNamespaceResponse> reg = RawRegister(*c, "nsA", "tokA", kValue, 1);
      if (!reg.ok()) return 3;
      const transport::ConstBuffer buf{secret.data(), secret.size()};
      transport::RpcReply put = Raw(
          *c, RpcOp::kPut,
          transport::Encode(transport::KeyedRequest{ns_a, reg->fingerprint, {{1, 0}}}), {&buf, 1});
      if (!put.status.ok()) return 4;
      // The fingerprint, for the probes (it is not a secret: it hashes the
      // geometry).
      std::ofstream(dir.path() + "/fp") << reg->fingerprint;
      if (kill_a) ::raise(SIGKILL);
      return 0;
    });
    ASSERT_TRUE(kill_a ? (WIFSIGNALED(a) && WTERMSIG(a) == SIGKILL)
                       : (WIFEXITED(a) && WEXITSTATUS(a) == 0))
        << "tenant A child status " << a;
    uint64_t fp_a = 0;
    std::ifstream(dir.path() + "/fp") >> fp_a;
    // New connections (more than one per I/O thread) that never registered.
    const int probes = run_child([&] {
      int leaked = 0;
      for (int i = 0; i < 6; ++i) {
        std::unique_ptr<transport::RpcClient> b = RawConnect(address);
        if (b == nullptr) return 100;
        std::vector<char> out(kValue);
        const transport::MutableBuffer into{out.data(), out.size()};
        transport::RpcReply get =
            Raw(*b, RpcOp::kGet, transport::Encode(transport::KeyedRequest{ns_a, fp_a, {{1, 0}}}),
                {}, {&into, 1});
        if (get.status.code() != StatusCode::kPermissionDenied || out == secret) ++leaked;
      }
      return leaked;
    });
    ASSERT_TRUE(WIFEXITED(probes)) << "probe child status " << probes;
    EXPECT_EQ(WEXITSTATUS(probes), 0) << "connections that got something other than "
                                         "PERMISSION_DENIED (100: could not connect)";
    ASSERT_TRUE((*d)->Alive());
  }
}

INSTANTIATE_TEST_SUITE_P(CloseOrCrash, ConnectionIdentity, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("Killed") : std::string("Closed");
                         });

// Thousands of short connections in a row are all served: connections whose
// handshake completed never pile up against --max_pending_handshakes.
TEST(ConnectionChurn, ThousandsOfShortConnectionsAreServed) {
  TempDir dir;
  auto flags = HostOnlyFlags();
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  for (SoakRounds r(1); r.Next();) {
    for (int i = 0; i < 1500; ++i) {
      transport::RpcClientOptions o;
      Result<std::unique_ptr<transport::RpcClient>> c =
          transport::RpcClient::Connect((*d)->address(), o);
      ASSERT_TRUE(c.ok()) << "connection " << i << ": " << c.status().ToString();
      ASSERT_TRUE((*c)->Ping(std::chrono::milliseconds(5000)).ok()) << "connection " << i;
    }
  }
  ASSERT_TRUE((*d)->Alive());
}

}  // namespace
}  // namespace kvcake
