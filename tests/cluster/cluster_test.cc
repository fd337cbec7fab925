// The cluster end to end: a real etcd and three real kvcaked processes on
// 127.0.0.1 (UCX tcp between them), engines talking only to their local
// daemon. Faults are injected on purpose: a member killed with SIGKILL,
// etcd stopped, a duplicate node id.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvcake/client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/cluster/cluster_util.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake {
namespace {

using std::chrono::milliseconds;
using testing::DaemonProcess;

constexpr uint64_t kValueBytes = 64 * 1024;
constexpr uint32_t kLayers = 2;
constexpr uint64_t kPeerTimeoutMs = 300;

std::vector<char> Value(uint64_t hash, uint32_t layer) {
  return chaos::Pattern(hash, layer, kValueBytes);
}

using cluster::testing::WaitFor;

class ClusterTest : public cluster::testing::ClusterFixture {
 protected:
  ClusterTest() : ClusterFixture("llama-test", kLayers, kValueBytes, kPeerTimeoutMs) {}

  nlohmann::json Cluster(size_t i) {
    auto r = chaos::HttpGet(chaos::PortOf(members_[i]->admin_address()), "/v1/cluster");
    if (!r.ok() || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  // A chain of `n` blocks with every layer stored through `engine`.
  std::vector<uint64_t> SaveChain(Client& engine, uint32_t seed, size_t n) {
    std::vector<uint32_t> tokens(16 * n);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = seed * 100000 + i;
    std::vector<uint64_t> chain = engine.HashTokens(tokens);
    std::vector<testing::LayerValue> values = testing::LayerValues(chain, kLayers, Value);
    EXPECT_TRUE(engine.Put(testing::PutBlocksOf(values), nullptr).ok());
    return chain;
  }

  // Whether `engine`'s daemon finds every layer of `chain` in the directory
  // within 5 s (asked without prefetching).
  bool Published(Client& engine, const std::vector<uint64_t>& chain) {
    for (uint32_t layer = 0; layer < kLayers; ++layer) {
      if (!WaitFor(
              [&] {
                auto r = engine.LookupPrefixDetail(chain, layer, {.prefetch = false});
                return r.ok() && r->total == chain.size();
              },
              milliseconds(5000))) {
        return false;
      }
    }
    return true;
  }

  // Gets every layer of `chain` through `engine`; the number of blocks that
  // came back, each checked byte for byte.
  size_t GetChecked(Client& engine, const std::vector<uint64_t>& chain) {
    std::vector<testing::LayerValue> bufs = testing::LayerBuffers(chain, kLayers, kValueBytes);
    std::vector<bool> found;
    Status s = engine.Get(testing::GetBlocksOf(bufs), &found);
    if (!s.ok() && s.code() != StatusCode::kNotFound) ADD_FAILURE() << s.ToString();
    size_t ok = 0;
    for (size_t i = 0; i < bufs.size(); ++i) {
      if (i >= found.size() || !found[i]) continue;
      EXPECT_EQ(bufs[i].bytes, Value(bufs[i].hash, bufs[i].layer)) << "wrong bytes in block " << i;
      ++ok;
    }
    return ok;
  }
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

// A router's question, asked of any member: who holds how much of a prefix.
// The lookup names every other member with its own prefix length, longest
// first, even when the asked daemon holds the whole chain, and fetches
// nothing.
TEST_F(ClusterTest, AllHoldersLookupScoresEveryMemberAndFetchesNothing) {
  auto a = Engine(0);
  auto b = Engine(1);
  auto c = Engine(2);
  ASSERT_TRUE(a && b && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 5, 8);
  // B computed the same first three blocks (same tokens, same hashes).
  ASSERT_EQ(SaveChain(*b, 5, 3), std::vector<uint64_t>(chain.begin(), chain.begin() + 3));
  const Client::LookupOptions ask = {.prefetch = false, .all_holders = true};
  auto holders_of = [](const Client::PrefixLookup& p) {
    std::vector<std::pair<std::string, uint32_t>> v;
    for (const Client::PrefixHolder& h : p.holders) v.emplace_back(h.node, h.blocks);
    return v;
  };
  using Holders = std::vector<std::pair<std::string, uint32_t>>;
  Client::PrefixLookup from_c;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c->LookupPrefixDetail(chain, 0, ask);
        if (r.ok()) from_c = *r;
        return r.ok() && from_c.holders.size() == 2;
      },
      milliseconds(5000)))
      << from_c.holders.size() << " holders";
  EXPECT_EQ(holders_of(from_c), (Holders{{"a", 8}, {"b", 3}}));
  EXPECT_EQ(from_c.local, 0u);
  EXPECT_EQ(from_c.total, chain.size());
  EXPECT_EQ(from_c.remote_node, "a");
  // A holds the whole chain itself and still hears about B.
  auto from_a = a->LookupPrefixDetail(chain, 0, ask);
  ASSERT_TRUE(from_a.ok()) << from_a.status().ToString();
  EXPECT_EQ(from_a->local, chain.size());
  EXPECT_EQ(holders_of(*from_a), (Holders{{"b", 3}}));
  // Without the option the answer names no holders.
  auto plain = c->LookupPrefixDetail(chain, 0, {.prefetch = false});
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->holders.empty());
  // Asking fetched nothing: C still holds none of it.
  auto local_only = c->LookupPrefixDetail(chain, 0, {.local_only = true});
  ASSERT_TRUE(local_only.ok());
  EXPECT_EQ(local_only->total, 0u);
  // A router that does not link libkvcake asks over HTTP with the tokens.
  std::vector<uint32_t> tokens(16 * 8);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = 5 * 100000 + i;  // SaveChain's
  auto http = chaos::HttpPost(chaos::PortOf(members_[2]->admin_address()), "/v1/lookup",
                              nlohmann::json{{"ns", "llama-test"}, {"tokens", tokens}}.dump());
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  ASSERT_EQ(http->status, 200) << http->body;
  const nlohmann::json j = nlohmann::json::parse(http->body);
  EXPECT_EQ(j["local"], 0);
  EXPECT_EQ(j["holders"], nlohmann::json::parse(R"([{"node": "a", "blocks": 8},
                                                     {"node": "b", "blocks": 3}])"))
      << j.dump();
  EXPECT_EQ(Cluster(2)["counters"].value("fetches", -1), 0) << Cluster(2).dump();
}

// A holder that lost one block of a published chain answers the fetch with a
// miss in the middle: the fetching member keeps every other block, each in
// its own place (the values after the miss arrive one slot early).
TEST_F(ClusterTest, AFetchAroundABlockTheHolderLostKeepsTheRest) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 7, 8);
  ASSERT_TRUE(Published(*c, chain));
  const BlockId lost{chain[2], 0};
  auto deleted = a->Delete(std::span<const BlockId>(&lost, 1));
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  ASSERT_EQ(*deleted, 1u);
  // The prefetch asks for both layers (16 small values) in one call.
  auto where = c->LookupPrefixDetail(chain, 0, {});
  ASSERT_TRUE(where.ok());
  EXPECT_EQ(where->total, chain.size());
  EXPECT_EQ(GetChecked(*c, chain), chain.size() * kLayers - 1);
  auto here = c->LookupPrefixDetail(chain, 1, {.local_only = true});
  ASSERT_TRUE(here.ok());
  EXPECT_EQ(here->local, chain.size());
  here = c->LookupPrefixDetail(chain, 0, {.local_only = true});
  ASSERT_TRUE(here.ok());
  EXPECT_EQ(here->local, 2u);  // up to the lost block
  // All 15 came with the prefetch's one call: the only other fetch is the
  // get of the lost block (a value kept in the wrong place would fail its
  // checksum at commit and be fetched again on demand).
  nlohmann::json stats = Cluster(2)["counters"];
  EXPECT_EQ(stats.value("fetches", 0), 2) << stats.dump();
  EXPECT_EQ(stats.value("fetched_blocks", 0), chain.size() * kLayers - 1) << stats.dump();
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

// A member killed -9 and restarted at once at the same addresses takes its
// node id over (its old admin port refuses connections) instead of being
// refused until the old lease runs out; a live duplicate is still refused.
TEST_F(ClusterTest, AMemberRestartedWithinItsTtlAfterAKillRejoinsAtOnce) {
  std::vector<std::string> flags = Flags("d");
  flags.push_back("--listen=127.0.0.1:" + std::to_string(cluster::testing::FreePort()));
  flags.push_back("--admin_listen=127.0.0.1:" + std::to_string(cluster::testing::FreePort()));
  auto d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return MembersSeenBy(0) == 4; }, milliseconds(6000)));
  // Same node id, same addresses (advertised; it listens elsewhere) while
  // d lives: refused.
  std::vector<std::string> twin = Flags("d", "-twin");
  twin.push_back("--advertise=" + (*d)->address());
  twin.push_back("--admin_listen=" + flags.back().substr(std::strlen("--admin_listen=")));
  EXPECT_FALSE(DaemonProcess::Start(twin).ok()) << "a live duplicate of 'd' was let in";
  ::kill((*d)->pid(), SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !(*d)->Alive(); }, milliseconds(5000)));
  d->reset();
  const auto restart = std::chrono::steady_clock::now();
  auto again = DaemonProcess::Start(flags);  // well within the 2 s TTL
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - restart, milliseconds(2000));
  EXPECT_TRUE(WaitFor([&] { return cluster::testing::LiveMembers((*again)->admin_address()) == 4; },
                      milliseconds(6000)));
  EXPECT_EQ(MembersSeenBy(0), 4u);
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
  // A router's lookup meanwhile is answered within the peer timeout too,
  // whether or not the dead member owned the chain's directory entry.
  const Client::LookupOptions ask = {.prefetch = false, .all_holders = true};
  const auto asked = std::chrono::steady_clock::now();
  auto holders = c->LookupPrefixDetail(chain, 0, ask);
  ASSERT_TRUE(holders.ok()) << holders.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, milliseconds(3 * kPeerTimeoutMs + 1000));
  // A disappears from the member set within its TTL (2 s) plus a poll.
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return MembersSeenBy(2) == 2; }, milliseconds(6000)));
  std::printf("member removed %lld ms after kill -9\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(
                                         std::chrono::steady_clock::now() - killed)
                                         .count()));
  // Lookups through C are local misses meanwhile, answered quickly, and no
  // router is sent to the departed member.
  auto miss = c->LookupPrefixDetail(chain, 0, {});
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->total, 0u);
  holders = c->LookupPrefixDetail(chain, 0, ask);
  ASSERT_TRUE(holders.ok()) << holders.status().ToString();
  EXPECT_TRUE(holders->holders.empty()) << holders->holders.front().node;
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
  auto call = [&](const std::string& token) {
    transport::DirectoryLookupRequest req{token, "x", 1, 0, {1, 2, 3}};
    return cluster::testing::CallMember(members_[1]->address(), transport::RpcOp::kDirectoryLookup,
                                        transport::Encode(req));
  };
  EXPECT_EQ(call("").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(call("guess").code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(call("cluster-secret-for-tests").ok());
  EXPECT_GE(Cluster(1)["counters"].value("bad_cluster_tokens", 0), 2);
}

// With --verify_commits=false a member records the holder's checksum of each
// fetched value without hashing it; the engine's first (verified) read
// checks it. Every byte must come back, and no read may find a mismatch:
// a checksum recorded for the wrong value would show as one here.
class UnverifiedFetchTest : public ClusterTest {
 protected:
  UnverifiedFetchTest() { options_.extra_flags = {"--verify_commits=false"}; }
};

TEST_F(UnverifiedFetchTest, FetchedValuesAreCheckedByTheEnginesRead) {
  auto a = Engine(0);
  auto c = Engine(2);
  ASSERT_TRUE(a && c);
  const std::vector<uint64_t> chain = SaveChain(*a, 7, 12);
  ASSERT_TRUE(Published(*c, chain));
  EXPECT_EQ(GetChecked(*c, chain), chain.size() * kLayers);
  // Read again from C's own copy (local now), still checked.
  EXPECT_EQ(GetChecked(*c, chain), chain.size() * kLayers);
  EXPECT_EQ(c->checksum_failures(), 0u);
  nlohmann::json stats = Cluster(2)["counters"];
  EXPECT_GE(stats.value("fetched_blocks", 0), chain.size() * kLayers) << stats.dump();
}

}  // namespace
}  // namespace kvcake
