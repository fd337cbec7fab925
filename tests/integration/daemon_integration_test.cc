// Integration tests: the real kvcaked (started as a child process on an
// ephemeral port) and the real client library over UCX on loopback.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "kvcake/client.h"
#include "tests/common/loopback_socket.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake {
namespace {

using testing::DaemonProcess;
using testing::TempDir;

constexpr uint64_t kValueBytes = 64 * 1024;

// GET http://hostport/path; the raw response ("" on error). Defined below.
std::string HttpGet(const std::string& hostport, const std::string& path);
constexpr uint32_t kLayers = 4;

// The bytes of value (hash, layer): deterministic, so any client can verify.
std::vector<char> ValueOf(uint64_t hash, uint32_t layer, uint64_t size = kValueBytes) {
  std::vector<char> v(size);
  std::mt19937_64 rng(hash * 1315423911u + layer);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, size - i));
  }
  return v;
}

std::vector<std::string> SmallDaemonFlags(const TempDir& dir) {
  return {"--ssd_path=" + dir.path() + "/ssd",
          "--host_bytes=64M",
          "--slot_bytes=64K",
          "--ssd_bytes=1G",
          "--io_threads=2",
          "--log_level=warning",
          "--ucx_tls=tcp"};
}

NamespaceGeometry Geometry() { return testing::TestGeometry(kLayers, kValueBytes); }

std::unique_ptr<Client> ConnectOrDie(const std::string& address, const std::string& tls,
                                     bool mapped, const std::string& ns = "it-model",
                                     const std::string& token = "") {
  ClientOptions o = testing::EngineOptions(address, ns);
  o.token = token;
  o.ucx_tls = tls;
  o.use_mapped_path = mapped;
  o.timeout = std::chrono::milliseconds(20000);
  Result<std::unique_ptr<Client>> c = testing::ConnectEngine(o, Geometry());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

std::vector<uint64_t> Chain(Client& c, uint32_t first_token, size_t blocks) {
  std::vector<uint32_t> tokens(blocks * 16);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = first_token + static_cast<uint32_t>(i);
  return c.HashTokens(tokens);
}

// Puts every layer of `hashes` and checks the result.
void PutAll(Client& c, const std::vector<uint64_t>& hashes) {
  std::vector<testing::LayerValue> values =
      testing::LayerValues(hashes, kLayers, [](uint64_t h, uint32_t l) { return ValueOf(h, l); });
  std::vector<Status> per;
  Status s = c.Put(testing::PutBlocksOf(values), &per);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

// Gets every layer of `hashes`; expects all found and byte-identical.
void GetAndVerify(Client& c, const std::vector<uint64_t>& hashes) {
  std::vector<testing::LayerValue> bufs = testing::LayerBuffers(hashes, kLayers, kValueBytes);
  std::vector<bool> found;
  Status s = c.Get(testing::GetBlocksOf(bufs), &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (size_t i = 0; i < bufs.size(); ++i) {
    ASSERT_TRUE(found[i]) << "value " << i << " missing";
    ASSERT_TRUE(bufs[i].bytes == ValueOf(bufs[i].hash, bufs[i].layer))
        << "value " << i << " differs";
  }
}

class DaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra = {}) {
    auto flags = SmallDaemonFlags(dir_);
    flags.insert(flags.end(), extra.begin(), extra.end());
    Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    daemon_ = std::move(d).value();
  }
  void TearDown() override {
    if (daemon_ && daemon_->Alive()) {
      Result<int> rc = daemon_->Stop();
      EXPECT_TRUE(rc.ok() && *rc == 0) << "kvcaked did not exit cleanly";
    }
  }

  // Stores every layer of a `blocks`-long chain starting at `first_token`
  // through a client that is gone when this returns; the chain's hashes.
  void SeedChain(uint32_t first_token, size_t blocks, std::vector<uint64_t>* chain) {
    auto c = ConnectOrDie(daemon_->address(), "tcp", false);
    ASSERT_NE(c, nullptr);
    *chain = Chain(*c, first_token, blocks);
    PutAll(*c, *chain);
  }

  TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

void RoundTrip(const std::string& address, const std::string& tls, bool mapped) {
  auto c = ConnectOrDie(address, tls, mapped);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->mapped_path(), mapped);
  std::vector<uint64_t> chain = Chain(*c, 1000, 8);
  ASSERT_EQ(chain.size(), 8u);
  // Nothing cached yet.
  Result<uint32_t> n = c->LookupPrefix(chain, 0);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 0u);
  // Cache the first 5 blocks (all layers).
  std::vector<uint64_t> first5(chain.begin(), chain.begin() + 5);
  PutAll(*c, first5);
  n = c->LookupPrefix(chain, 0);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  n = c->LookupPrefix(chain, kLayers - 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  GetAndVerify(*c, first5);
  // A put of an existing value is fine (already exists = success).
  PutAll(*c, {chain[0]});
  // Misses mixed with hits: found flags are exact and hits land in the right buffers.
  std::vector<std::vector<char>> bufs(4, std::vector<char>(kValueBytes, 0));
  std::vector<GetBlock> blocks = {{chain[6], 1, bufs[0].data()},
                                  {chain[1], 1, bufs[1].data()},
                                  {chain[7], 2, bufs[2].data()},
                                  {chain[3], 2, bufs[3].data()}};
  std::vector<bool> found;
  ASSERT_TRUE(c->Get(blocks, &found).ok());
  EXPECT_EQ(found, (std::vector<bool>{false, true, false, true}));
  EXPECT_TRUE(bufs[1] == ValueOf(chain[1], 1));
  EXPECT_TRUE(bufs[3] == ValueOf(chain[3], 2));
  // Delete one block's layer 0: the prefix for layer 0 shrinks, layer 1 not.
  std::vector<BlockId> del = {{chain[2], 0}};
  Result<uint32_t> deleted = c->Delete(del);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 1u);
  EXPECT_EQ(*c->LookupPrefix(chain, 0), 2u);
  EXPECT_EQ(*c->LookupPrefix(chain, 1), 5u);
  // CAKE statistics reach the daemon; malformed ones are refused.
  std::vector<double> scores = {5, 4, 3, 2, 1, 0.5, 0.25, 0.125};
  Status st = c->ReportLayerStats(1, 0.75, chain, scores, 1);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c->ReportLayerStats(1, 0.75, chain, std::span<const double>(scores).first(3), 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(c->ReportLayerStats(kLayers, 0.75, chain, scores, 1).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(DaemonTest, PutGetLookupOverUcxTcp) {
  StartDaemon();
  RoundTrip(daemon_->address(), "tcp", false);
}

TEST_F(DaemonTest, PutGetLookupOverUcxSharedMemory) {
  // Shared-memory lanes need the daemon and the client on the same UCX_TLS.
  StartDaemon({"--ucx_tls=shm"});
  RoundTrip(daemon_->address(), "shm", false);
}

TEST_F(DaemonTest, PutGetLookupOverMappedHostSegment) {
  StartDaemon();
  RoundTrip(daemon_->address(), "tcp", true);
  // What one path wrote, the other reads.
  auto mapped = ConnectOrDie(daemon_->address(), "tcp", true);
  auto remote = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_TRUE(mapped && remote);
  ASSERT_TRUE(mapped->mapped_path());
  std::vector<uint64_t> a = Chain(*mapped, 50000, 3);
  std::vector<uint64_t> b = Chain(*mapped, 60000, 3);
  PutAll(*mapped, a);
  GetAndVerify(*remote, a);
  PutAll(*remote, b);
  GetAndVerify(*mapped, b);
}

// A process that maps the host segment (any same-uid process can) scribbles
// over every block: neither a mapped client nor a UCX client ever gets those
// bytes (each checks the checksum taken at commit); the blocks are misses,
// are dropped, and the namespace works again for new puts.
// Scribbles on every page of the daemon's host segment (what a buggy or
// hostile same-uid process could do); param: the daemon verifies reads
// itself (--verify_reads). Either way no client is handed wrong bytes: the
// daemon drops what fails its check, and without that check the client
// checks the bytes that reached it against the checksums in the reply.
class ScribbleTest : public DaemonTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ScribbleTest, ScribbledSegmentIsNeverServed) {
  const bool daemon_verifies = GetParam();
  StartDaemon({daemon_verifies ? "--verify_reads=true" : "--verify_reads=false"});
  auto mapped = ConnectOrDie(daemon_->address(), "tcp", true);
  auto remote = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_TRUE(mapped && remote);
  ASSERT_TRUE(mapped->mapped_path());
  std::vector<uint64_t> a = Chain(*mapped, 91000, 2);
  std::vector<uint64_t> b = Chain(*mapped, 92000, 2);
  PutAll(*mapped, a);
  PutAll(*remote, b);
  // The segment's path, as the daemon tells same-node clients.
  transport::RpcClientOptions ro;
  auto rpc = transport::RpcClient::Connect(daemon_->address(), ro);
  ASSERT_TRUE(rpc.ok()) << rpc.status().ToString();
  transport::CallRequest ping;
  ping.opcode = static_cast<uint16_t>(transport::RpcOp::kPing);
  const std::string meta = transport::Encode(transport::PingRequest{1});
  ping.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  ping.timeout = std::chrono::milliseconds(20000);
  transport::RpcReply reply = (*rpc)->Call(ping);
  ASSERT_TRUE(reply.status.ok()) << reply.status.ToString();
  auto pong = transport::DecodeAs<transport::PingResponse>(
      std::string_view(reinterpret_cast<const char*>(reply.meta.data()), reply.meta.size()));
  ASSERT_TRUE(pong.ok());
  ASSERT_FALSE(pong->host_segment.empty());
  const int fd = ::open(pong->host_segment.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << pong->host_segment;
  void* base = ::mmap(nullptr, pong->host_segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(base, MAP_FAILED);
  for (uint64_t off = 777; off < pong->host_segment_bytes; off += 4096) {
    static_cast<char*>(base)[off] ^= 0x5a;
  }
  ::munmap(base, pong->host_segment_bytes);

  std::vector<std::vector<char>> bufs(a.size() * kLayers, std::vector<char>(kValueBytes));
  auto get_all = [&](Client& c, const std::vector<uint64_t>& hashes) {
    std::vector<GetBlock> blocks;
    size_t k = 0;
    for (uint64_t h : hashes) {
      for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back(GetBlock{h, l, bufs[k++].data()});
    }
    std::vector<bool> found;
    EXPECT_TRUE(c.Get(blocks, &found).ok());
    size_t hits = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (!found[i]) continue;
      ++hits;
      EXPECT_TRUE(bufs[i] == ValueOf(blocks[i].hash, blocks[i].layer)) << "wrong bytes served";
    }
    return hits;
  };
  EXPECT_EQ(get_all(*mapped, a), 0u);
  EXPECT_GT(mapped->checksum_failures(), 0u);
  EXPECT_EQ(get_all(*remote, b), 0u);
  EXPECT_EQ(get_all(*remote, a), 0u);
  if (!daemon_verifies) {
    // The daemon sent the scribbled bytes; the client refused them.
    EXPECT_GT(remote->checksum_failures(), 0u);
    return;
  }
  EXPECT_EQ(remote->checksum_failures(), 0u);  // the daemon never sent them
  // Dropped, so they can be stored again, and then read back intact.
  PutAll(*remote, a);
  GetAndVerify(*mapped, a);
  GetAndVerify(*remote, a);
}

INSTANTIATE_TEST_SUITE_P(DaemonVerifies, ScribbleTest, ::testing::Bool());

// Count of `name{labels}` in a /metrics page (0 when absent).
uint64_t MetricValue(const std::string& metrics, const std::string& series) {
  size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stoull(metrics.substr(at + series.size() + 2));
}

// Puts a chain through a mapped client and reads it twice (the default
// policy serves the namespace exactly and promotes host blocks read again to
// the GPU tier on the mover), then waits until some blocks are in the GPU
// tier.
std::vector<uint64_t> PutAndPromoteToGpu(Client& c, const std::string& admin) {
  std::vector<uint64_t> chain = Chain(c, 70000, 6);
  PutAll(c, chain);
  GetAndVerify(c, chain);
  GetAndVerify(c, chain);
  for (int i = 0; i < 200; ++i) {
    if (MetricValue(HttpGet(admin, "/metrics"), "kvcake_tier_blocks{tier=\"gpu\"}") > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(MetricValue(HttpGet(admin, "/metrics"), "kvcake_tier_blocks{tier=\"gpu\"}"), 0u)
      << "no block reached the GPU tier";
  return chain;
}

// A mapped get of more than two pin chunks (8 MiB each: 128 values of 64
// KiB) is pinned chunk by chunk, every chunk requested at once: each value
// lands in its own buffer, and misses in any chunk are reported as misses.
TEST_F(DaemonTest, ALargeMappedGetIsPinnedInChunksEveryByteInPlace) {
  StartDaemon({"--admin_listen=127.0.0.1:0"});
  auto c = ConnectOrDie(daemon_->address(), "tcp", true);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->mapped_path());
  std::vector<uint64_t> chain = Chain(*c, 70000, 100);  // 400 values: 4 chunks
  PutAll(*c, chain);
  // Gone: layer 2 of every 30th block (one in each chunk).
  std::vector<BlockId> gone;
  for (size_t b = 0; b < chain.size(); b += 30) gone.push_back({chain[b], 2});
  Result<uint32_t> deleted = c->Delete(gone);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  ASSERT_EQ(*deleted, gone.size());
  std::vector<testing::LayerValue> bufs = testing::LayerBuffers(chain, kLayers, kValueBytes);
  std::vector<bool> found;
  Status s = c->Get(testing::GetBlocksOf(bufs), &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(found.size(), bufs.size());
  size_t misses = 0;
  for (size_t i = 0; i < bufs.size(); ++i) {
    const bool expect = !(i / kLayers % 30 == 0 && bufs[i].layer == 2);
    ASSERT_EQ(found[i], expect) << "value " << i;
    if (!expect) {
      ++misses;
      continue;
    }
    ASSERT_TRUE(bufs[i].bytes == ValueOf(bufs[i].hash, bufs[i].layer)) << "value " << i;
  }
  EXPECT_EQ(misses, gone.size());
  std::string m = HttpGet(daemon_->admin_address(), "/metrics");
  EXPECT_GE(MetricValue(m, "kvcake_requests_total{op=\"pin\"}"), 4u);
}

// A mapped client reads GPU-tier blocks straight from the arena the daemon
// exposes (the emulated device's memfd here; a CUDA IPC handle on a GPU):
// every byte right, and no UCX get at all.
TEST_F(DaemonTest, MappedGetReadsTheGpuTierArena) {
  StartDaemon({"--admin_listen=127.0.0.1:0", "--gpu_bytes=1M"});
  auto c = ConnectOrDie(daemon_->address(), "tcp", true);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->mapped_path());
  std::vector<uint64_t> chain = PutAndPromoteToGpu(*c, daemon_->admin_address());
  GetAndVerify(*c, chain);
  std::string m = HttpGet(daemon_->admin_address(), "/metrics");
  EXPECT_GT(MetricValue(m, "kvcake_requests_total{op=\"pin\"}"), 0u);
  EXPECT_EQ(MetricValue(m, "kvcake_requests_total{op=\"get\"}"), 0u);
}

// Without the arena exposed, a mapped client still gets every GPU-tier block:
// those come over UCX.
TEST_F(DaemonTest, MappedGetFetchesGpuTierBlocksOverUcxWithoutTheArena) {
  StartDaemon({"--admin_listen=127.0.0.1:0", "--gpu_bytes=1M", "--expose_gpu_arena=false"});
  auto c = ConnectOrDie(daemon_->address(), "tcp", true);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->mapped_path());
  std::vector<uint64_t> chain = PutAndPromoteToGpu(*c, daemon_->admin_address());
  GetAndVerify(*c, chain);
  EXPECT_GT(MetricValue(HttpGet(daemon_->admin_address(), "/metrics"),
                        "kvcake_requests_total{op=\"get\"}"),
            0u);
}

TEST_F(DaemonTest, EightConcurrentClientsMixedOpsEveryByteVerified) {
  StartDaemon();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto c = ConnectOrDie(daemon_->address(), "tcp", t % 2 == 0);
      if (!c) {
        ++failures;
        return;
      }
      std::mt19937 rng(t);
      // Shared chains (all clients) and private ones.
      for (int round = 0; round < 6; ++round) {
        uint32_t base = (rng() % 2) ? 7 * 100000 : (t + 1) * 1000000 + round * 1000;
        std::vector<uint64_t> chain = Chain(*c, base, 4);
        Result<uint32_t> n = c->LookupPrefix(chain, 0);
        if (!n.ok()) {
          ++failures;
          continue;
        }
        PutAll(*c, chain);
        GetAndVerify(*c, chain);
        if (::testing::Test::HasFailure()) ++failures;
        Result<uint32_t> m = c->LookupPrefix(chain, kLayers - 1);
        if (!m.ok() || *m != chain.size()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// One buffer per (layer, block) of `chain` and the GetAsync groups (one per
// layer) that read into them.
struct LayerGroups {
  explicit LayerGroups(const std::vector<uint64_t>& chain)
      : bufs(kLayers, std::vector<std::vector<char>>(chain.size(), std::vector<char>(kValueBytes))),
        groups(kLayers) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      for (size_t b = 0; b < chain.size(); ++b) {
        groups[l].push_back(GetBlock{chain[b], l, bufs[l][b].data()});
      }
    }
  }
  // Group `l` arrived: every block found with the bytes put.
  void ExpectArrived(const PendingGet& pending, uint32_t l, const std::vector<uint64_t>& chain) {
    const std::vector<bool>& found = pending.found(l);
    for (size_t b = 0; b < chain.size(); ++b) {
      ASSERT_TRUE(found[b]);
      ASSERT_TRUE(bufs[l][b] == ValueOf(chain[b], l)) << "layer " << l << " block " << b;
    }
  }
  std::vector<std::vector<std::vector<char>>> bufs;
  std::vector<std::vector<GetBlock>> groups;
};

TEST_F(DaemonTest, LayerwiseGetCompletesPerLayer) {
  StartDaemon();
  for (bool mapped : {false, true}) {
    auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
    ASSERT_NE(c, nullptr);
    std::vector<uint64_t> chain = Chain(*c, mapped ? 9000 : 8000, 6);
    PutAll(*c, chain);
    LayerGroups lg(chain);
    Result<std::unique_ptr<PendingGet>> pending = c->GetAsync(lg.groups);
    ASSERT_TRUE(pending.ok()) << pending.status().ToString();
    ASSERT_EQ((*pending)->size(), kLayers);
    for (uint32_t l = 0; l < kLayers; ++l) {
      Status s = (*pending)->Wait(l, std::chrono::milliseconds(20000));
      ASSERT_TRUE(s.ok()) << "layer " << l << ": " << s.ToString();
      ASSERT_NO_FATAL_FAILURE(lg.ExpectArrived(**pending, l, chain));
    }
    EXPECT_TRUE((*pending)->WaitAll(std::chrono::milliseconds(1000)).ok());
  }
}

// An engine may drop its client while a layer-wise get is still arriving:
// the client finishes or cancels what is in flight (no request touches it
// after it is gone), and every group still completes, OK with its bytes or
// CANCELLED/UNAVAILABLE. ASan checks the no-use-after-free part in CI.
TEST_F(DaemonTest, ClientDestroyedWhileALayerwiseGetIsInFlight) {
  StartDaemon();
  std::vector<uint64_t> chain;
  ASSERT_NO_FATAL_FAILURE(SeedChain(31000, 48, &chain));
  for (bool mapped : {false, true}) {
    for (int waited : {0, 1}) {  // destroy at once, or after the first layer arrived
      auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
      ASSERT_NE(c, nullptr);
      LayerGroups lg(chain);
      Result<std::unique_ptr<PendingGet>> pending = c->GetAsync(lg.groups);
      ASSERT_TRUE(pending.ok()) << pending.status().ToString();
      if (waited) {
        ASSERT_TRUE((*pending)->Wait(0, std::chrono::milliseconds(20000)).ok());
      }
      c.reset();
      int completed = 0;
      for (uint32_t l = 0; l < kLayers; ++l) {
        Status s = (*pending)->Wait(l, std::chrono::milliseconds(20000));
        SCOPED_TRACE("mapped " + std::to_string(mapped) + " layer " + std::to_string(l));
        if (s.ok()) {
          ++completed;
          ASSERT_NO_FATAL_FAILURE(lg.ExpectArrived(**pending, l, chain));
        } else {
          EXPECT_TRUE(s.code() == StatusCode::kCancelled || s.code() == StatusCode::kUnavailable)
              << s.ToString();
        }
      }
      if (waited) {
        EXPECT_GE(completed, 1);
      }
      pending->reset();
    }
  }
  // The daemon is unharmed.
  auto c = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_NE(c, nullptr);
  GetAndVerify(*c, chain);
}

// Submits every layer of `chain` to `stream`, one group per layer, with the
// values kept in `kv` (per layer, per block) for as long as the stream needs them.
void SubmitLayers(PutStream& stream, const std::vector<uint64_t>& chain,
                  std::vector<std::vector<std::vector<char>>>* kv) {
  kv->assign(kLayers, {});
  for (uint32_t l = 0; l < kLayers; ++l) {
    std::vector<PutBlock> group;
    for (uint64_t h : chain) (*kv)[l].push_back(ValueOf(h, l));
    for (size_t b = 0; b < chain.size(); ++b) {
      group.push_back(PutBlock{chain[b], l, (*kv)[l][b].data()});
    }
    Result<size_t> index = stream.Submit(std::move(group));
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    EXPECT_EQ(*index, l);
  }
}

// The save side of a layer-wise engine (vLLM's save_kv_layer/wait_for_save):
// layers are submitted one by one while earlier ones are still being stored,
// and every one lands, in order, byte for byte.
TEST_F(DaemonTest, PutStreamStoresLayersSubmittedOneByOne) {
  StartDaemon();
  for (bool mapped : {false, true}) {
    SCOPED_TRACE(mapped ? "mapped" : "ucx");
    auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->mapped_path(), mapped);
    std::vector<uint64_t> chain = Chain(*c, mapped ? 41000 : 40000, 48);
    std::vector<std::vector<std::vector<char>>> kv;
    Result<std::unique_ptr<PutStream>> stream = c->OpenPutStream();
    ASSERT_TRUE(stream.ok()) << stream.status().ToString();
    ASSERT_NO_FATAL_FAILURE(SubmitLayers(**stream, chain, &kv));
    EXPECT_EQ((*stream)->size(), kLayers);
    for (uint32_t l = 0; l < kLayers; ++l) {
      Status s = (*stream)->Wait(l, std::chrono::milliseconds(20000));
      ASSERT_TRUE(s.ok()) << "layer " << l << ": " << s.ToString();
      ASSERT_EQ((*stream)->per_value(l).size(), chain.size());
      for (const Status& v : (*stream)->per_value(l)) EXPECT_TRUE(v.ok()) << v.ToString();
    }
    EXPECT_TRUE((*stream)->WaitAll(std::chrono::milliseconds(1000)).ok());
    EXPECT_EQ((*stream)->Wait(kLayers, std::chrono::milliseconds(10)).code(),
              StatusCode::kOutOfRange);
    // Saving the same prefix again is not an error (the values already exist).
    std::vector<PutBlock> again;
    for (size_t b = 0; b < chain.size(); ++b)
      again.push_back(PutBlock{chain[b], 0, kv[0][b].data()});
    Result<size_t> index = (*stream)->Submit(std::move(again));
    ASSERT_TRUE(index.ok());
    EXPECT_TRUE((*stream)->Wait(*index, std::chrono::milliseconds(20000)).ok());
    // Bad groups are refused at Submit, and the stream goes on.
    EXPECT_EQ((*stream)->Submit({}).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*stream)->Submit({PutBlock{chain[0], 0, nullptr}}).status().code(),
              StatusCode::kInvalidArgument);
    std::vector<PutBlock> huge(transport::kMaxBatchBlocks + 1,
                               PutBlock{chain[0], 0, kv[0][0].data()});
    EXPECT_EQ((*stream)->Submit(std::move(huge)).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*stream)->size(), kLayers + 1);
    stream->reset();
    Result<uint32_t> prefix = c->LookupPrefix(chain, kLayers - 1);
    ASSERT_TRUE(prefix.ok());
    EXPECT_EQ(*prefix, chain.size());
    GetAndVerify(*c, chain);
  }
  // A stream needs a registered namespace.
  ClientOptions o;
  o.address = daemon_->address();
  o.namespace_name = "it-model";
  Result<std::unique_ptr<Client>> bare = Client::Connect(o);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ((*bare)->OpenPutStream().status().code(), StatusCode::kFailedPrecondition);
}

// A put stream may outlive its client: destroying the client stores or
// cancels every queued group, later submits are CANCELLED, and whatever was
// stored is intact.
TEST_F(DaemonTest, ClientDestroyedWithAPutStreamOpen) {
  StartDaemon();
  for (bool mapped : {false, true}) {
    SCOPED_TRACE(mapped ? "mapped" : "ucx");
    auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
    ASSERT_NE(c, nullptr);
    std::vector<uint64_t> chain = Chain(*c, mapped ? 43000 : 42000, 48);
    std::vector<std::vector<std::vector<char>>> kv;
    Result<std::unique_ptr<PutStream>> stream = c->OpenPutStream();
    ASSERT_TRUE(stream.ok()) << stream.status().ToString();
    ASSERT_NO_FATAL_FAILURE(SubmitLayers(**stream, chain, &kv));
    c.reset();
    std::vector<bool> stored(kLayers, false);
    for (uint32_t l = 0; l < kLayers; ++l) {
      Status s = (*stream)->Wait(l, std::chrono::milliseconds(20000));
      if (s.ok()) {
        stored[l] = true;
      } else {
        EXPECT_EQ(s.code(), StatusCode::kCancelled) << "layer " << l << ": " << s.ToString();
      }
    }
    Result<size_t> late = (*stream)->Submit({PutBlock{chain[0], 0, kv[0][0].data()}});
    EXPECT_EQ(late.status().code(), StatusCode::kCancelled);
    stream->reset();
    auto reader = ConnectOrDie(daemon_->address(), "tcp", false);
    ASSERT_NE(reader, nullptr);
    for (uint32_t l = 0; l < kLayers; ++l) {
      if (!stored[l]) continue;
      std::vector<std::vector<char>> bufs(chain.size(), std::vector<char>(kValueBytes));
      std::vector<GetBlock> blocks;
      for (size_t b = 0; b < chain.size(); ++b)
        blocks.push_back(GetBlock{chain[b], l, bufs[b].data()});
      std::vector<bool> found;
      ASSERT_TRUE(reader->Get(blocks, &found).ok());
      for (size_t b = 0; b < chain.size(); ++b) {
        ASSERT_TRUE(found[b]) << "layer " << l << " block " << b;
        ASSERT_TRUE(bufs[b] == kv[l][b]) << "layer " << l << " block " << b;
      }
    }
  }
}

// The README example at its sizes, end to end: a namespace of 32 layers x 8
// blocks of 256 KiB that reports no CAKE statistics, saved through the
// client against the laptop flags (deploy/flags/laptop.flags: 512 MiB host
// tier, 4 MiB slot limit, adaptive policy, 8 GiB SSD), then looked up and
// read back at once: every block is found and byte-identical, over UCX and
// over the mapped host segment, and /v1/stats counts no drops.
class ReadmeExampleTest : public DaemonTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ReadmeExampleTest, EveryBlockComesBackOnLaptopFlags) {
  constexpr uint32_t kReadmeLayers = 32;
  constexpr size_t kReadmeBlocks = 8;
  constexpr uint64_t kReadmeValue = 256 << 10;
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(
      {"--ssd_path=" + dir_.path() + "/ssd", "--host_bytes=512M", "--slot_bytes=4M",
       "--ssd_bytes=8G", "--gpu_bytes=0", "--policy=adaptive", "--io_threads=1",
       "--log_level=warning", "--ucx_tls=tcp", "--admin_listen=127.0.0.1:0"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  daemon_ = std::move(d).value();
  ClientOptions o;
  o.address = daemon_->address();
  o.namespace_name = "readme-model";
  o.use_mapped_path = GetParam();
  o.timeout = std::chrono::milliseconds(60000);
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Client& client = **c;
  NamespaceGeometry g;
  g.num_layers = kReadmeLayers;
  g.block_tokens = 16;
  g.layer_block_bytes = kReadmeValue;
  g.kv_dtype = "fp16";
  ASSERT_TRUE(client.RegisterNamespace(g).ok());
  std::vector<uint64_t> chain = Chain(client, 7, kReadmeBlocks);
  std::vector<std::vector<char>> values;
  std::vector<PutBlock> puts;
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kReadmeLayers; ++l) values.push_back(ValueOf(h, l, kReadmeValue));
  }
  size_t k = 0;
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kReadmeLayers; ++l) puts.push_back({h, l, values[k++].data()});
  }
  std::vector<Status> per;
  Status s = client.Put(puts, &per);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (uint32_t l = 0; l < kReadmeLayers; ++l) {
    Result<uint32_t> n = client.LookupPrefix(chain, l);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, kReadmeBlocks) << "layer " << l;
  }
  std::vector<std::vector<char>> bufs(puts.size(), std::vector<char>(kReadmeValue));
  std::vector<GetBlock> gets;
  for (size_t i = 0; i < puts.size(); ++i)
    gets.push_back({puts[i].hash, puts[i].layer, bufs[i].data()});
  std::vector<bool> found;
  s = client.Get(gets, &found);
  ASSERT_TRUE(s.ok()) << s.ToString();
  size_t hits = 0;
  for (size_t i = 0; i < gets.size(); ++i) {
    if (!found[i]) continue;
    ++hits;
    EXPECT_TRUE(bufs[i] == values[i]) << "value " << i << " differs";
  }
  EXPECT_EQ(hits, gets.size());
  const std::string stats = HttpGet(daemon_->admin_address(), "/v1/stats");
  EXPECT_NE(stats.find("\"drops\":0"), std::string::npos) << stats;
  EXPECT_FALSE(std::regex_search(stats, std::regex("\"drops\":[1-9]"))) << stats;
}

INSTANTIATE_TEST_SUITE_P(DataPath, ReadmeExampleTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("Mapped") : std::string("Ucx");
                         });

TEST_F(DaemonTest, RestartServesBlocksFromSsd) {
  StartDaemon();
  std::vector<uint64_t> chain;
  ASSERT_NO_FATAL_FAILURE(SeedChain(424242, 6, &chain));
  Result<int> rc = daemon_->Stop();
  ASSERT_TRUE(rc.ok()) << rc.status().ToString();
  ASSERT_EQ(*rc, 0);
  StartDaemon();  // same SSD directory
  auto c = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c->LookupPrefix(chain, 0), chain.size());
  GetAndVerify(*c, chain);
}

// Restarts the daemon on the address it listens on now, with the same SSD
// directory: after a clean SIGTERM (it drains host blocks to the SSD) or a
// SIGKILL (the new daemon rebinds the port at once: its handshake listener
// sets SO_REUSEADDR).
class ReconnectTest : public DaemonTest, public ::testing::WithParamInterface<bool> {
 protected:
  void RestartOnSamePort(bool kill) {
    const std::string listen = "--listen=" + daemon_->address();
    if (kill) {
      ::kill(daemon_->pid(), SIGKILL);
      for (int i = 0; i < 500 && daemon_->Alive(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_FALSE(daemon_->Alive());
    } else {
      Result<int> rc = daemon_->Stop();
      ASSERT_TRUE(rc.ok()) << rc.status().ToString();
      ASSERT_EQ(*rc, 0);
    }
    ASSERT_NO_FATAL_FAILURE(StartDaemon({listen}));
    ASSERT_EQ("--listen=" + daemon_->address(), listen);
  }
};

// Runs `call` (returning Status) until it succeeds, at most 5 times 200 ms
// apart; every failure must be UNAVAILABLE (the call that finds the old
// connection broken). The last status.
template <typename Fn>
Status UntilReconnected(Fn call) {
  Status s;
  for (int attempt = 0; attempt < 5; ++attempt) {
    s = call();
    if (s.ok()) return s;
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return s;
}

// The daemon restarts (SIGTERM, same port, same SSD): the same Client works
// again after at most a failed call, and the chain comes back from the SSD
// tier byte for byte. Param: use_mapped_path.
TEST_P(ReconnectTest, ClientReconnectsAfterDaemonRestart) {
  const bool mapped = GetParam();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->mapped_path(), mapped);
  std::vector<uint64_t> chain = Chain(*c, 515151, 6);
  ASSERT_NO_FATAL_FAILURE(PutAll(*c, chain));
  EXPECT_EQ(c->reconnects(), 0u);

  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort(/*kill=*/false));
  Result<uint32_t> n = 0u;
  Status s = UntilReconnected([&] {
    n = c->LookupPrefix(chain, 0);
    return n.status();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*n, chain.size());
  EXPECT_EQ(c->reconnects(), 1u);
  EXPECT_EQ(c->mapped_path(), mapped);  // the new daemon's segment
  ASSERT_NO_FATAL_FAILURE(GetAndVerify(*c, chain));
  // New values go through the new connection too.
  std::vector<uint64_t> more = Chain(*c, 525252, 3);
  ASSERT_NO_FATAL_FAILURE(PutAll(*c, more));
  ASSERT_NO_FATAL_FAILURE(GetAndVerify(*c, more));
  EXPECT_EQ(c->reconnects(), 1u);
}

// The daemon is killed (SIGKILL) while a layer-wise get and a put stream are
// in flight: they finish (OK or an error, never a hang or wrong bytes), and
// after the restart the same Client stores and reads new values, as do a new
// layer-wise get and the put stream opened before the kill. Param:
// use_mapped_path.
TEST_P(ReconnectTest, ClientReconnectsAfterDaemonKill) {
  const bool mapped = GetParam();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->mapped_path(), mapped);
  std::vector<uint64_t> chain = Chain(*c, 535353, 32);
  ASSERT_NO_FATAL_FAILURE(PutAll(*c, chain));

  // Layer-wise get of the chain and a put stream, both in flight at the kill.
  std::vector<std::vector<char>> bufs(chain.size() * kLayers, std::vector<char>(kValueBytes));
  std::vector<std::vector<GetBlock>> groups(kLayers);
  for (uint32_t l = 0; l < kLayers; ++l) {
    for (size_t i = 0; i < chain.size(); ++i) {
      groups[l].push_back(GetBlock{chain[i], l, bufs[l * chain.size() + i].data()});
    }
  }
  auto pending = c->GetAsync(groups);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  auto stream = c->OpenPutStream();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  std::vector<uint64_t> streamed = Chain(*c, 545454, 8);
  std::vector<std::vector<char>> values;
  for (uint64_t h : streamed) {
    for (uint32_t l = 0; l < kLayers; ++l) values.push_back(ValueOf(h, l));
  }
  auto group_of = [&](uint32_t layer) {
    std::vector<PutBlock> g;
    for (size_t i = 0; i < streamed.size(); ++i) {
      g.push_back(PutBlock{streamed[i], layer, values[i * kLayers + layer].data()});
    }
    return g;
  };
  ASSERT_TRUE((*stream)->Submit(group_of(0)).ok());
  ASSERT_TRUE((*stream)->Submit(group_of(1)).ok());
  ASSERT_NO_FATAL_FAILURE(RestartOnSamePort(/*kill=*/true));

  const auto t0 = std::chrono::steady_clock::now();
  for (size_t l = 0; l < kLayers; ++l) {
    Status gs = (*pending)->Wait(l, std::chrono::seconds(30));
    ASSERT_NE(gs.code(), StatusCode::kDeadlineExceeded) << "layer " << l << " hangs";
    if (!gs.ok()) continue;
    for (size_t i = 0; i < chain.size(); ++i) {
      if ((*pending)->found(l)[i]) {
        ASSERT_TRUE(bufs[l * chain.size() + i] == ValueOf(chain[i], static_cast<uint32_t>(l)))
            << "layer " << l << " value " << i << " differs";
      }
    }
  }
  for (size_t g = 0; g < 2; ++g) {
    Status ps = (*stream)->Wait(g, std::chrono::seconds(30));
    ASSERT_NE(ps.code(), StatusCode::kDeadlineExceeded) << "stream group " << g << " hangs";
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(25));
  pending->reset();

  std::vector<uint64_t> fresh = Chain(*c, 555555, 4);
  Status s = UntilReconnected([&] { return c->Ping(); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c->reconnects(), 1u);
  EXPECT_EQ(c->mapped_path(), mapped);
  ASSERT_NO_FATAL_FAILURE(PutAll(*c, fresh));
  ASSERT_NO_FATAL_FAILURE(GetAndVerify(*c, fresh));
  // The stream opened before the kill stores its next groups over the new
  // connection.
  Result<size_t> next = (*stream)->Submit(group_of(2));
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  Status ps = (*stream)->Wait(*next, std::chrono::seconds(30));
  ASSERT_TRUE(ps.ok()) << ps.ToString();
  // A layer-wise get started after the reconnect works.
  std::vector<std::vector<char>> got(kLayers, std::vector<char>(kValueBytes));
  std::vector<std::vector<GetBlock>> again(kLayers);
  for (uint32_t l = 0; l < kLayers; ++l) again[l].push_back(GetBlock{fresh[0], l, got[l].data()});
  auto pending2 = c->GetAsync(again);
  ASSERT_TRUE(pending2.ok()) << pending2.status().ToString();
  for (uint32_t l = 0; l < kLayers; ++l) {
    Status gs = (*pending2)->Wait(l, std::chrono::seconds(30));
    ASSERT_TRUE(gs.ok()) << gs.ToString();
    ASSERT_TRUE((*pending2)->found(l)[0]);
    EXPECT_TRUE(got[l] == ValueOf(fresh[0], l));
  }
  EXPECT_EQ(c->reconnects(), 1u);
}

// Four threads keep reading a chain through one Client while the daemon
// restarts: their calls fail only with UNAVAILABLE, hits are never wrong
// bytes, and afterwards every thread's calls work again. Param:
// use_mapped_path.
TEST_P(ReconnectTest, ConcurrentCallsSurviveADaemonRestart) {
  const bool mapped = GetParam();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto c = ConnectOrDie(daemon_->address(), "tcp", mapped);
  ASSERT_NE(c, nullptr);
  std::vector<uint64_t> chain = Chain(*c, 565656, 4);
  ASSERT_NO_FATAL_FAILURE(PutAll(*c, chain));
  std::atomic<bool> restarted{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<std::vector<char>> bufs(chain.size() * kLayers, std::vector<char>(kValueBytes));
      std::vector<GetBlock> blocks;
      for (size_t i = 0; i < chain.size(); ++i) {
        for (uint32_t l = 0; l < kLayers; ++l) {
          blocks.push_back(GetBlock{chain[i], l, bufs[i * kLayers + l].data()});
        }
      }
      int ok_after = 0;
      auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (ok_after < 5 && std::chrono::steady_clock::now() < give_up) {
        const bool after = restarted.load();
        std::vector<bool> found;
        Status s = c->Get(blocks, &found);
        if (!s.ok()) {
          if (s.code() != StatusCode::kUnavailable) {
            ADD_FAILURE() << s.ToString();
            ++bad;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        for (size_t i = 0; i < blocks.size(); ++i) {
          if (found[i] && bufs[i] != ValueOf(blocks[i].hash, blocks[i].layer)) ++bad;
        }
        if (after) ++ok_after;
      }
      if (ok_after < 5) ++bad;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  RestartOnSamePort(/*kill=*/false);
  restarted = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GE(c->reconnects(), 1u);
  ASSERT_NO_FATAL_FAILURE(GetAndVerify(*c, chain));
}

INSTANTIATE_TEST_SUITE_P(DataPath, ReconnectTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Mapped") : std::string("Ucx");
                         });

// Sends one raw request; returns the reply status.
transport::RpcReply RawCall(transport::RpcClient& rpc, transport::RpcOp op, const std::string& meta,
                            std::span<const transport::ConstBuffer> payload = {}) {
  transport::CallRequest call;
  call.opcode = static_cast<uint16_t>(op);
  call.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  call.payload = payload;
  call.timeout = std::chrono::milliseconds(20000);
  return rpc.Call(call);
}

TEST_F(DaemonTest, ClientKilledMidPutLeavesNoReservationBehind) {
  StartDaemon({"--lease_ms=500"});
  const uint64_t ns = NamespaceSeed("it-model");
  std::vector<uint32_t> tokens(8 * 16);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = 777000 + static_cast<uint32_t>(i);
  std::vector<uint64_t> chain = HashChain::Compute(tokens, ns, 16);

  // The child is forked before this process uses UCX.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Reserve slots for every layer of `chain` over a raw connection and
    // die before committing.
    transport::RpcClientOptions ro;
    auto rpc = transport::RpcClient::Connect(daemon_->address(), ro);
    if (!rpc.ok()) ::_exit(2);
    transport::RegisterNamespaceRequest reg{"it-model",  "",     kLayers, 16,
                                            kValueBytes, "fp16", "",      0};
    auto r = RawCall(**rpc, transport::RpcOp::kRegisterNamespace, transport::Encode(reg));
    if (!r.status.ok()) ::_exit(3);
    transport::RegisterNamespaceResponse rr;
    if (!transport::Decode(
             std::string_view(reinterpret_cast<const char*>(r.meta.data()), r.meta.size()), &rr)
             .ok())
      ::_exit(4);
    transport::KeyedRequest req{ns, rr.fingerprint, {}};
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) req.keys.push_back({h, l});
    }
    auto res = RawCall(**rpc, transport::RpcOp::kPutReserve, transport::Encode(req));
    if (!res.status.ok()) ::_exit(5);
    ::raise(SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exit " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  auto c = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_NE(c, nullptr);
  // While the lease runs the keys are reserved; once it has expired they are
  // writable again and the slots are back.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Status last;
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::vector<std::vector<char>> values;
    std::vector<PutBlock> blocks;
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) values.push_back(ValueOf(h, l));
    }
    size_t k = 0;
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back(PutBlock{h, l, values[k++].data()});
    }
    last = c->Put(blocks);
    if (last.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(last.ok()) << last.ToString();
  GetAndVerify(*c, chain);
}

TEST_F(DaemonTest, BadInputGetsErrorsAndNothingCommittedIsLost) {
  TempDir tokdir;
  std::string tokfile = tokdir.path() + "/token";
  std::ofstream(tokfile) << "s3cret\n";
  StartDaemon({"--token_file=" + tokfile});
  auto c = ConnectOrDie(daemon_->address(), "tcp", false, "it-model", "s3cret");
  ASSERT_NE(c, nullptr);
  std::vector<uint64_t> chain = Chain(*c, 31337, 3);
  PutAll(*c, chain);

  // Garbage bytes on the listening port.
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(daemon_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      std::string junk(4096, '\0');
      std::mt19937 rng(i);
      for (char& ch : junk) ch = static_cast<char>(rng());
      (void)!::write(fd, junk.data(), junk.size());
    }
    ::close(fd);
  }

  // Bad token / no token.
  {
    ClientOptions o;
    o.address = daemon_->address();
    o.namespace_name = "intruder";
    o.token = "wrong";
    auto bad = Client::Connect(o);
    ASSERT_TRUE(bad.ok()) << bad.status().ToString();
    EXPECT_EQ((*bad)->RegisterNamespace(Geometry()).code(), StatusCode::kPermissionDenied);
    o.token = "";
    auto none = Client::Connect(o);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ((*none)->RegisterNamespace(Geometry()).code(), StatusCode::kUnauthenticated);
  }
  // Same namespace, different layout.
  {
    ClientOptions o;
    o.address = daemon_->address();
    o.namespace_name = "it-model";
    o.token = "s3cret";
    auto other = Client::Connect(o);
    ASSERT_TRUE(other.ok());
    NamespaceGeometry g = Geometry();
    g.kv_dtype = "bf16";
    Status conflict = (*other)->RegisterNamespace(g);
    EXPECT_EQ(conflict.code(), StatusCode::kFailedPrecondition);
    // The daemon says what it holds and what was asked for.
    EXPECT_NE(conflict.message().find("is registered with num_layers=4 block_tokens=16 "
                                      "layer_block_bytes=65536 kv_dtype=fp16"),
              std::string::npos)
        << conflict.ToString();
    EXPECT_NE(conflict.message().find("asks for num_layers=4 block_tokens=16 "
                                      "layer_block_bytes=65536 kv_dtype=bf16"),
              std::string::npos)
        << conflict.ToString();
    // A value larger than the daemon's slots is refused up front.
    g = Geometry();
    g.layer_block_bytes = 1 << 20;
    EXPECT_EQ((*other)->RegisterNamespace(g).code(), StatusCode::kInvalidArgument);
  }

  transport::RpcClientOptions ro;
  auto rpc = transport::RpcClient::Connect(daemon_->address(), ro);
  ASSERT_TRUE(rpc.ok()) << rpc.status().ToString();
  transport::RpcClient& raw = **rpc;
  // Malformed meta for every op.
  for (uint16_t op = 1; op <= transport::kMaxRpcOp; ++op) {
    auto r = RawCall(raw, static_cast<transport::RpcOp>(op), std::string("\x01\x02\x03", 3));
    EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument)
        << transport::RpcOpName(op) << ": " << r.status.ToString();
  }
  // Unknown opcode.
  EXPECT_EQ(RawCall(raw, static_cast<transport::RpcOp>(77), "").status.code(),
            StatusCode::kUnimplemented);
  // A namespace this connection has not opened, known or not: refused
  // before anything else is looked at.
  transport::KeyedRequest unknown{12345, 678, {{chain[0], 0}}};
  EXPECT_EQ(RawCall(raw, transport::RpcOp::kGet, transport::Encode(unknown)).status.code(),
            StatusCode::kPermissionDenied);
  transport::KeyedRequest wrongfp{c->seed(), 678, {{chain[0], 0}}};
  EXPECT_EQ(RawCall(raw, transport::RpcOp::kGet, transport::Encode(wrongfp)).status.code(),
            StatusCode::kPermissionDenied);
  // Open it through a raw registration (which gives the real fingerprint).
  transport::RegisterNamespaceRequest reg{"it-model",  "s3cret", kLayers, 16,
                                          kValueBytes, "fp16",   "",      0};
  auto rr = RawCall(raw, transport::RpcOp::kRegisterNamespace, transport::Encode(reg));
  ASSERT_TRUE(rr.status.ok()) << rr.status.ToString();
  // Wrong fingerprint on an open namespace.
  EXPECT_EQ(RawCall(raw, transport::RpcOp::kGet, transport::Encode(wrongfp)).status.code(),
            StatusCode::kFailedPrecondition);
  auto reg_resp = transport::DecodeAs<transport::RegisterNamespaceResponse>(
      std::string_view(reinterpret_cast<const char*>(rr.meta.data()), rr.meta.size()));
  ASSERT_TRUE(reg_resp.ok());
  const uint64_t fp = reg_resp->fingerprint;
  // Wrong value sizes: short, long, and overwriting existing keys with junk.
  std::vector<char> junk(kValueBytes + 100, 'x');
  for (uint64_t sz : {kValueBytes - 1, kValueBytes + 1}) {
    transport::ConstBuffer buf{junk.data(), sz};
    transport::KeyedRequest put{c->seed(), fp, {{chain[0], 0}}};
    auto r = RawCall(raw, transport::RpcOp::kPut, transport::Encode(put), {&buf, 1});
    EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument) << r.status.ToString();
  }
  // Layer beyond the namespace.
  transport::KeyedRequest badlayer{c->seed(), fp, {{chain[0], kLayers}}};
  EXPECT_EQ(RawCall(raw, transport::RpcOp::kGet, transport::Encode(badlayer)).status.code(),
            StatusCode::kInvalidArgument);
  // Oversized batch (the encoder does not check; the daemon must).
  transport::KeyedRequest huge{c->seed(), fp, {}};
  huge.keys.assign(transport::kMaxBatchBlocks + 1, {chain[0], 0});
  EXPECT_EQ(RawCall(raw, transport::RpcOp::kGet, transport::Encode(huge)).status.code(),
            StatusCode::kInvalidArgument);
  // Releasing a lease that does not exist.
  EXPECT_EQ(
      RawCall(raw, transport::RpcOp::kRelease, transport::Encode(transport::ReleaseRequest{99}))
          .status.code(),
      StatusCode::kAborted);

  // The daemon still serves, and everything committed before is intact.
  EXPECT_TRUE(c->Ping().ok());
  GetAndVerify(*c, chain);
  auto fresh = ConnectOrDie(daemon_->address(), "tcp", false, "it-model", "s3cret");
  ASSERT_NE(fresh, nullptr);
  GetAndVerify(*fresh, chain);
}

TEST_F(DaemonTest, SigtermWhileClientsWorkExitsCleanlyAndKeepsCommittedData) {
  StartDaemon();
  std::vector<uint64_t> chain;
  {
    auto c = ConnectOrDie(daemon_->address(), "tcp", false);
    ASSERT_NE(c, nullptr);
    chain = Chain(*c, 5555, 4);
    PutAll(*c, chain);
    std::atomic<bool> stop{false};
    std::thread load([&] {
      std::vector<char> buf(kValueBytes);
      while (!stop) {
        std::vector<GetBlock> b = {{chain[0], 0, buf.data()}};
        std::vector<bool> f;
        if (!c->Get(b, &f).ok()) break;  // the daemon went away: expected
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Result<int> rc = daemon_->Stop();
    stop = true;
    load.join();
    ASSERT_TRUE(rc.ok()) << rc.status().ToString();
    EXPECT_EQ(*rc, 0);
  }
  StartDaemon();
  auto c = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_NE(c, nullptr);
  GetAndVerify(*c, chain);
}

// Plain HTTP/1.0 GET against the admin API; the whole response.
std::string HttpGet(const std::string& hostport, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(hostport.substr(hostport.rfind(':') + 1))));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST_F(DaemonTest, AdminApiReportsTheDataPath) {
  StartDaemon({"--admin_listen=127.0.0.1:0"});
  ASSERT_FALSE(daemon_->admin_address().empty());
  auto c = ConnectOrDie(daemon_->address(), "tcp", false);
  ASSERT_NE(c, nullptr);
  std::vector<uint64_t> chain = Chain(*c, 2024, 3);
  PutAll(*c, chain);
  GetAndVerify(*c, chain);
  std::string stats = HttpGet(daemon_->admin_address(), "/v1/stats");
  EXPECT_NE(stats.find("200 OK"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"puts\":" + std::to_string(chain.size() * kLayers)), std::string::npos)
      << stats;
  std::string ns = HttpGet(daemon_->admin_address(), "/v1/namespaces");
  EXPECT_NE(ns.find("it-model"), std::string::npos) << ns;
  std::string metrics = HttpGet(daemon_->admin_address(), "/metrics");
  EXPECT_NE(metrics.find("kvcake_request_duration_seconds_count{op=\"put\"}"), std::string::npos)
      << metrics.substr(0, 2000);
  EXPECT_NE(metrics.find("kvcake_tier_used_bytes{tier=\"host\"} " +
                         std::to_string(chain.size() * kLayers * kValueBytes)),
            std::string::npos);
}

// --help of the tools: exit status 0, the tool's own flags under headings,
// none of gflags' internal flags.
TEST(ToolsTest, HelpExitsZeroAndShowsOnlyTheToolsFlags) {
  const std::string kvcaked = testing::KvcakedPath();
  const std::string bin = kvcaked.substr(0, kvcaked.rfind('/'));
  for (const auto& [tool, expect] : std::vector<std::pair<std::string, std::string>>{
           {"kvcaked", "--cluster_etcd"}, {"kvcakectl", "--admin"}}) {
    FILE* p = ::popen((bin + "/" + tool + " --help 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
    const int rc = ::pclose(p);
    EXPECT_EQ(rc, 0) << tool << ":\n" << out;
    EXPECT_NE(out.find(expect), std::string::npos) << tool << ":\n" << out;
    EXPECT_EQ(out.find("tab_completion"), std::string::npos) << tool << ":\n" << out;
    EXPECT_EQ(out.find("gflags"), std::string::npos) << tool << ":\n" << out;
  }
}

// A finished tool run: exit status (-1: killed after the deadline), stderr,
// wall time.
struct ToolRun {
  int exit = -1;
  std::string err;
  double seconds = 0;
};

// Runs `bin args...` with stdout discarded, stderr captured, killed after 10 s.
ToolRun RunTool(const std::string& bin, const std::vector<std::string>& args) {
  ToolRun r;
  // Everything the child needs is made before fork: it only redirects and execs.
  std::vector<std::string> all = {bin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return r;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], STDERR_FILENO);
    int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, STDOUT_FILENO);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  if (pid < 0) {
    ::close(pipefd[0]);
    return r;
  }
  ::fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  int status = 0;
  for (;;) {
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0;) r.err.append(buf, n);
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ::close(pipefd[0]);
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0;) r.err.append(buf, n);
  ::close(pipefd[0]);
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

using Listener = testing::LoopbackListener;

// Each bad flag fails before the daemon allocates anything: exit != 0 in
// well under a second, and one stderr line naming the flag.
TEST(ToolsTest, BadStartupFlagsFailAtOnceNamingTheFlag) {
  TempDir dir;
  const std::string& d = dir.path();
  std::ofstream(d + "/empty.token").close();
  std::ofstream(d + "/a-file") << "x";
  std::ofstream(d + "/admin.token") << "secret\n";
  Listener busy;
  ASSERT_NE(busy.address(), "127.0.0.1:0");
  std::string free_port;
  {
    Listener closed;  // its port is free once it is closed
    free_port = closed.address().substr(closed.address().rfind(':') + 1);
  }
  // The SSD directory of a running daemon is locked by it.
  auto owner = DaemonProcess::Start({"--ssd_path=" + d + "/owned", "--host_bytes=64M",
                                     "--slot_bytes=64K", "--log_level=warning"});
  ASSERT_TRUE(owner.ok()) << owner.status().ToString();

  const std::vector<std::string> base = {"--listen=127.0.0.1:0",     "--admin_listen=127.0.0.1:0",
                                         "--ssd_path=" + d + "/ssd", "--host_bytes=64M",
                                         "--slot_bytes=64K",         "--log_level=info"};
  struct Case {
    std::vector<std::string> flags;
    std::string flag;     // must appear in the message
    std::string details;  // and this too
  };
  const std::string busy_port = busy.address().substr(busy.address().rfind(':') + 1);
  const std::vector<Case> cases = {
      {{"--admin_listen=" + busy.address()}, "--admin_listen", "port " + busy_port + " is in use"},
      {{"--listen=" + busy.address()}, "--listen", "is in use"},
      {{"--listen=127.0.0.1:" + free_port, "--admin_listen=0.0.0.0:" + free_port,
        "--admin_token_file=" + d + "/admin.token"},
       "--admin_listen",
       "port of --listen"},
      {{"--listen=no-port"}, "--listen", "HOST:PORT"},
      {{"--listen=192.0.2.1:0"}, "--listen", "not an address of this host"},
      {{"--admin_listen=127.0.0.1:99999"}, "--admin_listen", ""},
      {{"--admin_listen=0.0.0.0:0"}, "--admin_listen 0.0.0.0:0", "set --admin_token_file"},
      {{"--admin_token_file=" + d + "/missing.token"}, "--admin_token_file", "missing.token"},
      {{"--admin_max_connections=0"}, "--admin_max_connections", "> 0"},
      {{"--token_file=" + d + "/missing.token"}, "--token_file", "No such file"},
      {{"--token_file=" + d + "/empty.token"}, "--token_file", "empty"},
      {{"--token_file=" + d}, "--token_file", "not a regular file"},
      {{"--cluster_etcd=http://127.0.0.1:1", "--cluster_token_file=" + d + "/missing.token"},
       "--cluster_token_file",
       "No such file"},
      {{"--ssd_path=" + d + "/a-file"}, "--ssd_path", "not a directory"},
      {{"--ssd_path=" + d + "/a-file/sub"}, "--ssd_path", "cannot be created"},
      {{"--ssd_path=" + d + "/owned"}, "--ssd_path", "in use by process"},
      {{"--slot_bytes=5000"}, "--slot_bytes", "multiple of 4096"},
      {{"--slot_bytes=4M", "--host_bytes=1M"}, "--host_bytes", "--slot_bytes"},
      {{"--gpu_bytes=16K"}, "--gpu_bytes", "--slot_bytes"},
      {{"--ssd_bytes=16K"}, "--ssd_bytes", "--slot_bytes"},
      {{"--host_bytes=12X"}, "--host_bytes", "suffix"},
      {{"--host_bytes=4T"}, "--host_bytes", "pre-faulted"},
      {{"--lease_ms=0"}, "--lease_ms", "[1, 3600000]"},
      {{"--default_quota_bytes=2G", "--max_quota_bytes=1G"}, "--default_quota_bytes", ""},
      {{"--max_namespaces=0"}, "--max_namespaces", "> 0"},
      {{"--max_staged_bytes=0"}, "--max_staged_bytes", "> 0"},
      {{"--io_threads=0"}, "--io_threads", "1..64"},
      {{"--busy_poll_us=5000000"}, "--busy_poll_us", "1 s"},
      {{"--ucx_tls=carrier-pigeon"}, "--ucx_tls", "carrier-pigeon"},
      {{"--handoff_transport=rdma"}, "--handoff_transport", "want ucx, nccl or auto"},
      {{"--policy=fifo"}, "--policy", "fifo"},
      {{"--log_level=loud"}, "--log_level", "loud"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    const ToolRun r = RunTool(testing::KvcakedPath(), args);
    std::string what = c.flags[0];
    EXPECT_NE(r.exit, 0) << what << ": " << r.err;
    EXPECT_NE(r.exit, -1) << what << ": did not exit";
    EXPECT_LT(r.seconds, 1.0) << what << ": " << r.err;
    EXPECT_NE(r.err.find(c.flag), std::string::npos) << what << ": " << r.err;
    EXPECT_NE(r.err.find(c.details), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
    std::printf("%-40s %.3f s  %s", what.substr(0, 40).c_str(), r.seconds, r.err.c_str());
  }
  EXPECT_FALSE(std::filesystem::exists(d + "/ssd")) << "a failed start created the SSD tier";
  EXPECT_TRUE((*owner)->Alive());
}

}  // namespace
}  // namespace kvcake
