// Prefill to decode hand-off end to end: a real etcd and three real kvcaked
// processes on 127.0.0.1 (UCX tcp between them). A prefill engine saves
// through its daemon A with node B as the target; a decode engine reads from
// B. Faults: the target killed with SIGKILL mid hand-off, and a layer that is
// announced but never arrives.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvcake/client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/cluster/cluster_util.h"
#include "tests/cluster/etcd_harness.h"
#include "tests/integration/daemon_process.h"

namespace kvcake {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::DaemonProcess;
using testing::TempDir;

constexpr uint64_t kValueBytes = 64 * 1024;
constexpr uint32_t kLayers = 32;
constexpr size_t kBlocks = 4;  // blocks of the prompt
constexpr uint64_t kPeerTimeoutMs = 300;
constexpr uint32_t kHandoffWaitMs = 800;

std::vector<char> Value(uint64_t hash, uint32_t layer) {
  return chaos::Pattern(hash, layer, kValueBytes);
}

using cluster::testing::WaitFor;

long long MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

class HandoffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cluster::testing::EtcdProcess::Available()) GTEST_SKIP() << "no /usr/bin/etcd";
    auto etcd = cluster::testing::EtcdProcess::Start();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(etcd).value();
    token_file_ = dir_.path() + "/cluster.token";
    std::ofstream(token_file_) << "cluster-secret-for-tests\n";
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(StartMember(id));
    ASSERT_TRUE(WaitFor([&] { return MembersSeenBy(0) == 3 && MembersSeenBy(1) == 3; },
                        milliseconds(10000)));
  }

  bool StartMember(const std::string& id) {
    auto d = DaemonProcess::Start(
        {"--cluster_etcd=" + etcd_->endpoint(), "--cluster_name=test", "--node_id=" + id,
         "--member_ttl_s=2", "--peer_timeout_ms=" + std::to_string(kPeerTimeoutMs),
         "--handoff_wait_ms=" + std::to_string(kHandoffWaitMs),
         "--cluster_token_file=" + token_file_, "--ucx_tls=tcp", "--io_threads=2",
         "--host_bytes=64MiB", "--slot_bytes=64KiB", "--expose_host_segment=false",
         "--ssd_path=" + dir_.path() + "/ssd-" + id, "--ssd_bytes=256MiB",
         "--admin_listen=127.0.0.1:0", "--log_level=error"});
    if (!d.ok()) {
      ADD_FAILURE() << id << ": " << d.status().ToString();
      return false;
    }
    const size_t i = static_cast<size_t>(id[0] - 'a');
    if (members_.size() <= i) members_.resize(i + 1);
    members_[i] = std::move(d).value();
    return true;
  }

  size_t MembersSeenBy(size_t i) {
    return cluster::testing::LiveMembers(members_[i]->admin_address());
  }

  // The value of metric line `series` (e.g. `name{event="failed"}`) on member i; -1 if absent.
  double Metric(size_t i, const std::string& series) {
    auto r = chaos::HttpGet(chaos::PortOf(members_[i]->admin_address()), "/metrics");
    if (!r.ok()) return -1;
    size_t at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + series.size() + 2));
  }

  std::unique_ptr<Client> Engine(size_t i) {
    ClientOptions o;
    o.address = members_[i]->address();
    o.namespace_name = "llama-handoff";
    o.use_mapped_path = false;
    o.ucx_tls = "tcp";
    o.timeout = milliseconds(10000);
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    NamespaceGeometry g;
    g.num_layers = kLayers;
    g.block_tokens = 16;
    g.layer_block_bytes = kValueBytes;
    g.kv_dtype = "fp16";
    EXPECT_TRUE((*c)->RegisterNamespace(g).ok());
    return std::move(c).value();
  }

  std::vector<uint64_t> Chain(Client& engine, uint32_t seed) {
    std::vector<uint32_t> tokens(16 * kBlocks);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = seed * 100000 + i;
    return engine.HashTokens(tokens);
  }

  // Whether `decode`'s daemon holds layer 0 of every block of `chain` (waits
  // up to 3 s): the hand-off has been announced there.
  static bool HoldsLayerZero(Client& decode, const std::vector<uint64_t>& chain) {
    return WaitFor(
        [&] {
          auto d = decode.LookupPrefixDetail(chain, 0, {.local_only = true});
          return d.ok() && d->local == kBlocks;
        },
        milliseconds(3000));
  }

  // Layer `l` of every block of `chain`, backed by `store`.
  static std::vector<PutBlock> Layer(const std::vector<uint64_t>& chain, uint32_t l,
                                     std::vector<std::vector<char>>* store) {
    std::vector<PutBlock> group;
    for (uint64_t h : chain) {
      store->push_back(Value(h, l));
      group.push_back({h, l, store->back().data()});
    }
    return group;
  }

  TempDir dir_;
  std::string token_file_;
  std::unique_ptr<cluster::testing::EtcdProcess> etcd_;
  std::vector<std::unique_ptr<DaemonProcess>> members_;
};

TEST_F(HandoffTest, LayersStreamedToTheDecodeNodeArriveWhileThePrefillRuns) {
  auto prefill = Engine(0);
  auto decode = Engine(1);
  ASSERT_TRUE(prefill && decode);
  const std::vector<uint64_t> chain = Chain(*prefill, 1);
  const HandoffTarget target{"b", 42, static_cast<uint32_t>(kBlocks * kLayers)};
  auto stream = prefill->OpenHandoffStream(target);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  std::vector<std::vector<char>> values;
  values.reserve(kBlocks * kLayers);
  // Layer 0 first, then the decode side starts while the prefill goes on.
  ASSERT_TRUE((*stream)->Submit(Layer(chain, 0, &values)).ok());
  ASSERT_TRUE((*stream)->Wait(0, milliseconds(5000)).ok());
  std::thread producer([&] {
    for (uint32_t l = 1; l < kLayers; ++l) {
      std::this_thread::sleep_for(milliseconds(5));  // modelled prefill compute
      ASSERT_TRUE((*stream)->Submit(Layer(chain, l, &values)).ok());
    }
  });
  // The announce reaches B with layer 0's push.
  ASSERT_TRUE(HoldsLayerZero(*decode, chain));
  std::vector<std::vector<char>> bufs(kBlocks * kLayers, std::vector<char>(kValueBytes));
  std::vector<std::vector<GetBlock>> groups(kLayers);
  for (uint32_t l = 0; l < kLayers; ++l) {
    for (size_t b = 0; b < kBlocks; ++b) {
      groups[l].push_back({chain[b], l, bufs[l * kBlocks + b].data()});
    }
  }
  const auto start = Clock::now();
  auto pending = decode->GetAsync(groups);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  for (uint32_t l = 0; l < kLayers; ++l) {
    ASSERT_TRUE((*pending)->Wait(l, milliseconds(10000)).ok()) << "layer " << l;
    const std::vector<bool>& found = (*pending)->found(l);
    for (size_t b = 0; b < kBlocks; ++b) {
      ASSERT_TRUE(found[b]) << "layer " << l << " block " << b;
      EXPECT_EQ(bufs[l * kBlocks + b], Value(chain[b], l)) << "layer " << l << " block " << b;
    }
  }
  producer.join();
  EXPECT_TRUE((*stream)->WaitAll(milliseconds(10000)).ok());
  std::printf("decode held all %u layers %lld ms after it started asking\n", kLayers,
              MsSince(start));
  EXPECT_TRUE(decode->WaitHandoff(42, milliseconds(5000)).ok());
  EXPECT_EQ(decode->WaitHandoff(43, milliseconds(100)).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Metric(0, "kvcake_cluster_handoffs_total{event=\"started\"}"), 1);
  EXPECT_EQ(Metric(0, "kvcake_cluster_handoffs_total{event=\"failed\"}"), 0);
  EXPECT_EQ(Metric(0, "kvcake_cluster_handoff_bytes_forwarded_total"),
            static_cast<double>(kBlocks * kLayers * kValueBytes));
  EXPECT_EQ(Metric(1, "kvcake_cluster_handoffs_total{event=\"completed\"}"), 1);
}

TEST_F(HandoffTest, AKilledTargetFailsTheHandoffNotThePrefill) {
  auto prefill = Engine(0);
  ASSERT_TRUE(prefill);
  const std::vector<uint64_t> chain = Chain(*prefill, 2);
  const HandoffTarget target{"b", 7, static_cast<uint32_t>(kBlocks * kLayers)};
  std::vector<std::vector<char>> values;
  values.reserve(kBlocks * kLayers);
  const auto start = Clock::now();
  for (uint32_t l = 0; l < kLayers; ++l) {
    if (l == kLayers / 2) ::kill(members_[1]->pid(), SIGKILL);
    std::this_thread::sleep_for(milliseconds(2));
    ASSERT_TRUE(prefill->PutHandoff(target, Layer(chain, l, &values)).ok()) << "layer " << l;
  }
  const long long put_ms = MsSince(start);
  std::printf("32 hand-off puts with the target killed midway: %lld ms\n", put_ms);
  EXPECT_LT(put_ms, 5000);
  // Every layer is held locally.
  auto local = prefill->LookupPrefixDetail(chain, kLayers - 1, {.local_only = true});
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->local, kBlocks);
  // The failure is counted within a peer timeout or so, once.
  EXPECT_TRUE(
      WaitFor([&] { return Metric(0, "kvcake_cluster_handoffs_total{event=\"failed\"}") == 1; },
              milliseconds(5000)));
  EXPECT_EQ(Metric(0, "kvcake_cluster_handoffs_total{event=\"started\"}"), 1);
}

TEST_F(HandoffTest, AnAnnouncedLayerThatNeverArrivesIsAMissAfterTheWait) {
  auto prefill = Engine(0);
  auto decode = Engine(1);
  ASSERT_TRUE(prefill && decode);
  const std::vector<uint64_t> chain = Chain(*prefill, 3);
  const HandoffTarget target{"b", 9, static_cast<uint32_t>(kBlocks * kLayers)};
  std::vector<std::vector<char>> values;
  ASSERT_TRUE(prefill->PutHandoff(target, Layer(chain, 0, &values)).ok());
  ASSERT_TRUE(HoldsLayerZero(*decode, chain));
  // Layer 5 is announced (same blocks) but the prefill never saves it.
  std::vector<char> buf(kValueBytes);
  std::vector<GetBlock> get{{chain[0], 5, buf.data()}};
  std::vector<bool> found;
  auto start = Clock::now();
  ASSERT_TRUE(decode->Get(get, &found).ok());
  const long long waited = MsSince(start);
  std::printf("announced, never arriving: miss after %lld ms (wait %u ms)\n", waited,
              kHandoffWaitMs);
  EXPECT_FALSE(found[0]);
  EXPECT_GE(waited, kHandoffWaitMs - 20);
  EXPECT_LT(waited, kHandoffWaitMs + 500);
  // A block of no hand-off is a miss at once.
  std::vector<uint32_t> other(16);
  for (size_t i = 0; i < other.size(); ++i) other[i] = 999999 + i;
  get[0].hash = decode->HashTokens(other)[0];
  start = Clock::now();
  ASSERT_TRUE(decode->Get(get, &found).ok());
  EXPECT_FALSE(found[0]);
  EXPECT_LT(MsSince(start), 300);
  // The hand-off is not complete.
  EXPECT_EQ(decode->WaitHandoff(9, milliseconds(50)).code(), StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace kvcake
