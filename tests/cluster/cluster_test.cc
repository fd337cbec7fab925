// The cluster end to end: a real etcd and three real kvcaked processes on
// 127.0.0.1 (UCX tcp between them), engines talking only to their local
// daemon. Faults are injected on purpose: a member killed with SIGKILL,
// etcd stopped, a duplicate node id.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
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
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake {
namespace {

using std::chrono::milliseconds;
using testing::DaemonProcess;
using testing::TempDir;

constexpr uint64_t kValueBytes = 64 * 1024;
constexpr uint32_t kLayers = 2;
constexpr uint64_t kPeerTimeoutMs = 300;

std::vector<char> Value(uint64_t hash, uint32_t layer) {
  return chaos::Pattern(hash, layer, kValueBytes);
}

using cluster::testing::WaitFor;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cluster::testing::EtcdProcess::Available()) GTEST_SKIP() << "no /usr/bin/etcd";
    auto etcd = cluster::testing::EtcdProcess::Start();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(etcd).value();
    token_file_ = dir_.path() + "/cluster.token";
    std::ofstream(token_file_) << "cluster-secret-for-tests\n";
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(StartMember(id));
    ASSERT_TRUE(WaitFor(
        [&] { return MembersSeenBy(0) == 3 && MembersSeenBy(1) == 3 && MembersSeenBy(2) == 3; },
        milliseconds(10000)));
  }

  std::vector<std::string> Flags(const std::string& id, const std::string& dir_suffix = "") {
    return {"--cluster_etcd=" + etcd_->endpoint(),
            "--cluster_name=test",
            "--node_id=" + id,
            "--member_ttl_s=2",
            "--peer_timeout_ms=" + std::to_string(kPeerTimeoutMs),
            "--cluster_token_file=" + token_file_,
            "--ucx_tls=tcp",
            "--io_threads=2",
            "--host_bytes=64MiB",
            "--slot_bytes=64KiB",
            "--expose_host_segment=false",
            "--ssd_path=" + dir_.path() + "/ssd-" + id + dir_suffix,
            "--ssd_bytes=256MiB",
            "--admin_listen=127.0.0.1:0",
            "--log_level=warning"};
  }

  bool StartMember(const std::string& id) {
    auto d = DaemonProcess::Start(Flags(id));
    if (!d.ok()) {
      ADD_FAILURE() << id << ": " << d.status().ToString();
      return false;
    }
    const size_t i = static_cast<size_t>(id[0] - 'a');
    if (members_.size() <= i) members_.resize(i + 1);
    members_[i] = std::move(d).value();
    return true;
  }

  nlohmann::json Cluster(size_t i) {
    auto r = chaos::HttpGet(chaos::PortOf(members_[i]->admin_address()), "/v1/cluster");
    if (!r.ok() || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  // Live, non-stale members daemon `i` sees (0 if its admin API fails).
  size_t MembersSeenBy(size_t i) {
    return cluster::testing::LiveMembers(members_[i]->admin_address());
  }

  std::unique_ptr<Client> Engine(size_t i) {
    ClientOptions o;
    o.address = members_[i]->address();
    o.namespace_name = "llama-test";
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

  // A chain of `n` blocks with every layer stored through `engine`.
  std::vector<uint64_t> SaveChain(Client& engine, uint32_t seed, size_t n) {
    std::vector<uint32_t> tokens(16 * n);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = seed * 100000 + i;
    std::vector<uint64_t> chain = engine.HashTokens(tokens);
    std::vector<std::vector<char>> values;
    std::vector<PutBlock> blocks;
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) values.push_back(Value(h, l));
    }
    size_t v = 0;
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back({h, l, values[v++].data()});
    }
    EXPECT_TRUE(engine.Put(blocks, nullptr).ok());
    return chain;
  }

  // Gets every layer of `chain` through `engine`; the number of blocks that
  // came back, each checked byte for byte.
  size_t GetChecked(Client& engine, const std::vector<uint64_t>& chain) {
    std::vector<std::vector<char>> bufs(chain.size() * kLayers, std::vector<char>(kValueBytes));
    std::vector<GetBlock> blocks;
    size_t v = 0;
    for (uint64_t h : chain) {
      for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back({h, l, bufs[v++].data()});
    }
    std::vector<bool> found;
    Status s = engine.Get(blocks, &found);
    if (!s.ok() && s.code() != StatusCode::kNotFound) ADD_FAILURE() << s.ToString();
    size_t ok = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (i >= found.size() || !found[i]) continue;
      EXPECT_EQ(bufs[i], Value(blocks[i].hash, blocks[i].layer)) << "wrong bytes in block " << i;
      ++ok;
    }
    return ok;
  }

  TempDir dir_;
  std::string token_file_;
  std::unique_ptr<cluster::testing::EtcdProcess> etcd_;
  std::vector<std::unique_ptr<DaemonProcess>> members_;
};

TEST_F(ClusterTest, PrefixSavedOnOneNodeIsServedByAnother) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 1, 8);
  // Publishing is asynchronous: C's lookup finds the chain once the
  // directory owner has it.
  Client::PrefixLookup where;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c->LookupPrefixDetail(chain, 0, {.prefetch = false});
        if (r.ok()) where = *r;
        return r.ok() && r->total == chain.size();
      },
      milliseconds(5000)))
      << "total " << where.total;
  EXPECT_EQ(where.local, 0u);
  EXPECT_EQ(where.remote_node, "a");
  // A local-only lookup does not consult the cluster.
  auto local_only = c->LookupPrefixDetail(chain, 0, {.local_only = true});
  ASSERT_TRUE(local_only.ok());
  EXPECT_EQ(local_only->total, 0u);
  // Layer 1 has its own directory entry. Then everything is fetched by C's
  // daemon from A (on demand: no prefetch) and checked byte for byte.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c->LookupPrefixDetail(chain, 1, {.prefetch = false});
        return r.ok() && r->total == chain.size();
      },
      milliseconds(5000)));
  EXPECT_EQ(GetChecked(*c, chain), chain.size() * kLayers);
  // C kept a copy: the same prefix is now local there.
  auto again = c->LookupPrefixDetail(chain, 0, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->local, chain.size());
  EXPECT_EQ(again->total, chain.size());
  nlohmann::json stats = Cluster(2)["counters"];
  EXPECT_GE(stats.value("fetched_blocks", 0), chain.size() * kLayers) << stats.dump();
}

TEST_F(ClusterTest, ALookupPrefetchesTheRemotePartOfEveryLayer) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 5, 8);
  // One prefetching lookup of layer 0 (the default) ...
  ASSERT_TRUE(WaitFor([&] { return c->LookupPrefix(chain, 0).value_or(0) == chain.size(); },
                      milliseconds(5000)));
  // ... brings every layer to C without a get.
  for (uint32_t layer = 0; layer < kLayers; ++layer) {
    EXPECT_TRUE(WaitFor(
        [&] {
          auto r = c->LookupPrefixDetail(chain, layer, {.local_only = true});
          return r.ok() && r->local == chain.size();
        },
        milliseconds(5000)))
        << "layer " << layer;
  }
  // The holder can go: C serves the prefix itself, every byte right.
  ASSERT_TRUE(members_[0]->Stop().ok());
  EXPECT_EQ(GetChecked(*c, chain), chain.size() * kLayers);
}

TEST_F(ClusterTest, ADuplicateNodeIdIsRefused) {
  auto dup = DaemonProcess::Start(Flags("b", "-dup"));
  EXPECT_FALSE(dup.ok()) << "a second daemon joined as node 'b'";
  EXPECT_EQ(MembersSeenBy(0), 3u);
}

TEST_F(ClusterTest, AKilledHolderCostsABoundedMissAndRejoins) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 2, 8);
  // Lookups that only ask (no prefetch): the blocks stay on A alone, so the
  // get below has to reach the dead member.
  auto remote_total = [&](uint32_t layer) {
    auto r = c->LookupPrefixDetail(chain, layer, {.prefetch = false});
    return r.ok() && r->local == 0 ? r->total : 0u;
  };
  ASSERT_TRUE(WaitFor([&] { return remote_total(0) == chain.size(); }, milliseconds(5000)));
  ASSERT_TRUE(WaitFor([&] { return remote_total(1) == chain.size(); }, milliseconds(5000)));
  ::kill(members_[0]->pid(), SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !members_[0]->Alive(); }, milliseconds(5000)));
  // The get through C fails over to a miss within the peer timeout (plus
  // the connection to A noticing it is gone), never hangs, never returns
  // wrong bytes.
  const auto start = std::chrono::steady_clock::now();
  const size_t got = GetChecked(*c, chain);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(got, 0u);
  EXPECT_LT(took, milliseconds(3 * kPeerTimeoutMs + 1000))
      << std::chrono::duration_cast<milliseconds>(took).count() << " ms";
  // A disappears from the member set within its TTL (2 s) plus a poll.
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return MembersSeenBy(2) == 2; }, milliseconds(6000)));
  std::printf("member removed %lld ms after kill -9\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(
                                         std::chrono::steady_clock::now() - killed)
                                         .count()));
  // Lookups through C are local misses meanwhile, answered quickly.
  auto miss = c->LookupPrefixDetail(chain, 0, {});
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->total, 0u);
  // A restarts and rejoins.
  ASSERT_TRUE(StartMember("a"));
  EXPECT_TRUE(WaitFor([&] { return MembersSeenBy(2) == 3; }, milliseconds(6000)));
}

TEST_F(ClusterTest, WithEtcdDownMembersServeLocallyAndRecover) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  etcd_->Stop();
  ASSERT_TRUE(
      WaitFor([&] { return Cluster(2).value("state", "") == "unknown"; }, milliseconds(8000)));
  // Local service goes on: A stores and serves its own blocks.
  const std::vector<uint64_t> chain = SaveChain(*a, 3, 4);
  EXPECT_EQ(GetChecked(*a, chain), chain.size() * kLayers);
  // Cross-node lookups are misses while the cluster is unknown.
  auto miss = c->LookupPrefixDetail(chain, 0, {});
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->total, 0u);
  // etcd returns: membership recovers, A's chain is published again and C
  // finds it.
  ASSERT_TRUE(etcd_->Restart().ok());
  ASSERT_TRUE(
      WaitFor([&] { return MembersSeenBy(2) == 3 && MembersSeenBy(0) == 3; }, milliseconds(10000)));
  EXPECT_TRUE(WaitFor([&] { return c->LookupPrefix(chain, 0).value_or(0) == chain.size(); },
                      milliseconds(5000)));
}

TEST_F(ClusterTest, KvcakectlMembersShowsEveryMember) {
  const std::string cmd = testing::KvcakedPath();
  const std::string ctl = cmd.substr(0, cmd.rfind('/')) +
                          "/kvcakectl --admin=" + members_[1]->admin_address() + " members 2>&1";
  FILE* p = ::popen(ctl.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << out;
  EXPECT_NE(out.find("membership up"), std::string::npos) << out;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NE(out.find(members_[i]->address()), std::string::npos) << out;
  }
  EXPECT_NE(out.find("live (self)"), std::string::npos) << out;
}

TEST_F(ClusterTest, DirectoryRequestsWithoutTheClusterTokenAreRefused) {
  // Only members speak to the directory: a request with a wrong or no
  // cluster token is PERMISSION_DENIED and counted; the right one is served.
  transport::RpcClientOptions ro;
  ro.ucx.transport = transport::UcxTransport::kTcp;
  auto raw = transport::RpcClient::Connect(members_[1]->address(), ro);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto call = [&](const std::string& token) {
    transport::DirectoryLookupRequest req{token, "x", 1, 0, {1, 2, 3}};
    const std::string meta = transport::Encode(req);
    transport::CallRequest c;
    c.opcode = static_cast<uint16_t>(transport::RpcOp::kDirectoryLookup);
    c.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
    c.timeout = milliseconds(5000);
    return (*raw)->Call(c).status;
  };
  EXPECT_EQ(call("").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(call("guess").code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(call("cluster-secret-for-tests").ok());
  EXPECT_GE(Cluster(1)["counters"].value("bad_cluster_tokens", 0), 2);
}

}  // namespace
}  // namespace kvcake
