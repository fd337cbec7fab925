// Prefill to decode hand-off end to end: a real etcd and three real kvcaked
// processes on 127.0.0.1 (UCX tcp between them). A prefill engine saves
// through its daemon A with node B as the target; a decode engine reads from
// B. Faults: the target killed with SIGKILL mid hand-off, and a layer that is
// announced but never arrives.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvcake/client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/cluster/cluster_util.h"

namespace kvcake {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

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

class HandoffTest : public cluster::testing::ClusterFixture {
 protected:
  HandoffTest() : ClusterFixture("llama-handoff", kLayers, kValueBytes, kPeerTimeoutMs) {
    options_.watchers = 2;
    options_.log_level = "error";
    options_.extra_flags = {"--handoff_wait_ms=" + std::to_string(kHandoffWaitMs)};
  }

  // The value of metric line `series` (e.g. `name{event="failed"}`) on member i; -1 if absent.
  double Metric(size_t i, const std::string& series) {
    auto r = chaos::HttpGet(chaos::PortOf(members_[i]->admin_address()), "/metrics");
    if (!r.ok()) return -1;
    size_t at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + series.size() + 2));
  }

  std::vector<uint64_t> Chain(Client& engine, uint32_t seed) {
    std::vector<uint32_t> tokens(16 * kBlocks);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = seed * 100000 + i;
    return engine.HashTokens(tokens);
  }

  // Hand-off `id` of every layer of the kBlocks-block request to member
  // `node`.
  static HandoffTarget WholeRequestTo(const std::string& node, uint64_t id) {
    return HandoffTarget{node, id, static_cast<uint32_t>(kBlocks * kLayers)};
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
};

TEST_F(HandoffTest, LayersStreamedToTheDecodeNodeArriveWhileThePrefillRuns) {
  auto prefill = Engine(0);
  auto decode = Engine(1);
  ASSERT_TRUE(prefill && decode);
  const std::vector<uint64_t> chain = Chain(*prefill, 1);
  const HandoffTarget target = WholeRequestTo("b", 42);
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
  const HandoffTarget target = WholeRequestTo("b", 7);
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
  const HandoffTarget target = WholeRequestTo("b", 9);
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
