// Prefill to decode hand-off end to end: a real etcd and three real kvcaked
// processes on 127.0.0.1 (UCX tcp between them). A prefill engine saves
// through its daemon A with node B as the target; a decode engine reads from
// B. Faults: the target killed with SIGKILL mid hand-off, and a layer that is
// announced but never arrives.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvcake/client.h"
#include "kvcake/kvcake_c.h"
#include "tests/chaos/chaos_util.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/cluster/cluster_util.h"
#include "transport/messages.h"

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

  // Sends member `i` a hand-off notice as the prefill member "a" would:
  // announcing layer 0 of `chain` (failure OK) or the hand-off's failure.
  Status Notice(size_t i, uint64_t id, const std::vector<uint64_t>& chain,
                const Status& failure = Status::Ok(),
                const std::string& token = "cluster-secret-for-tests") {
    transport::HandoffNoticeRequest req;
    req.cluster_token = token;
    req.source = "a";
    req.ns_id = NamespaceSeed(options_.ns);
    req.handoff_id = id;
    req.handoff_blocks = kBlocks * kLayers;
    req.failure = static_cast<uint16_t>(failure.code());
    req.message = std::string(failure.message());
    if (failure.ok()) {
      for (uint64_t h : chain) req.keys.push_back({h, 0});
    }
    return cluster::testing::CallMember(members_[i]->address(), transport::RpcOp::kHandoffNotice,
                                        transport::Encode(req));
  }

  // A prefill engine on A hands layer 0 off to B as hand-off `id`; once B
  // holds it, `fail` breaks the prefill side. B's WaitHandoff (20 s) then
  // ends with `code` within `within`.
  void ExpectPrefillFailureEndsTheWait(uint64_t id,
                                       const std::function<void(std::unique_ptr<Client>&)>& fail,
                                       StatusCode code, milliseconds within,
                                       const std::string& says = "") {
    auto prefill = Engine(0);
    auto decode = Engine(1);
    ASSERT_TRUE(prefill && decode);
    const std::vector<uint64_t> chain = Chain(*prefill, static_cast<uint32_t>(id));
    std::vector<std::vector<char>> values;
    ASSERT_TRUE(prefill->PutHandoff(WholeRequestTo("b", id), Layer(chain, 0, &values)).ok());
    ASSERT_TRUE(HoldsLayerZero(*decode, chain));
    const auto start = Clock::now();
    fail(prefill);
    Status s = decode->WaitHandoff(id, milliseconds(20000));
    std::printf("hand-off %llu: WaitHandoff ended after %lld ms: %s\n",
                static_cast<unsigned long long>(id), MsSince(start), s.ToString().c_str());
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_NE(s.ToString().find(says), std::string::npos) << s.ToString();
    EXPECT_LT(MsSince(start), within.count());
  }

  // A get of `block` through `engine` is a miss, answered at once.
  static void ExpectMissAtOnce(Client& engine, const GetBlock& block) {
    std::vector<GetBlock> get{block};
    std::vector<bool> found;
    const auto start = Clock::now();
    ASSERT_TRUE(engine.Get(get, &found).ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_FALSE(found[0]);
    EXPECT_LT(MsSince(start), 300);
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
  // The prefill member pushed from its slots in place: every pin it took for
  // that ended with its push.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = chaos::HttpGet(chaos::PortOf(members_[0]->admin_address()),
                                "/v1/blocks?ns=llama-handoff&limit=1000");
        if (!r.ok()) return false;
        const nlohmann::json blocks = nlohmann::json::parse(r->body, nullptr, false);
        if (!blocks.is_object() || blocks["count"] != kBlocks * kLayers) return false;
        for (const auto& b : blocks["blocks"]) {
          if (b["pin_count"] != 0) return false;
        }
        return true;
      },
      milliseconds(5000)));
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
  ExpectMissAtOnce(*decode, get[0]);
  // The hand-off is not complete.
  EXPECT_EQ(decode->WaitHandoff(9, milliseconds(50)).code(), StatusCode::kDeadlineExceeded);
}

// The prefill member's notice announces a hand-off before its first values:
// a decode get of them that comes first waits for them (bounded by
// --handoff_wait_ms) instead of being a miss.
TEST_F(HandoffTest, AGetBeforeTheFirstLayerWaitsForTheAnnouncedHandoff) {
  auto prefill = Engine(0);
  auto decode = Engine(1);
  ASSERT_TRUE(prefill && decode);
  const std::vector<uint64_t> chain = Chain(*prefill, 4);
  ASSERT_TRUE(Notice(1, 21, chain).ok());
  std::vector<char> buf(kValueBytes);
  std::vector<bool> found;
  Status got;
  const auto start = Clock::now();
  std::thread getter([&] {
    std::vector<GetBlock> get{{chain[1], 0, buf.data()}};
    got = decode->Get(get, &found);
  });
  std::this_thread::sleep_for(milliseconds(200));
  std::vector<std::vector<char>> values;
  ASSERT_TRUE(prefill->PutHandoff(WholeRequestTo("b", 21), Layer(chain, 0, &values)).ok());
  getter.join();
  const long long waited = MsSince(start);
  std::printf("get before the first layer: answered after %lld ms\n", waited);
  ASSERT_TRUE(got.ok()) << got.ToString();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_TRUE(found[0]);
  EXPECT_EQ(buf, Value(chain[1], 0));
  EXPECT_GE(waited, 150);
  // A notice needs the cluster token.
  EXPECT_EQ(Notice(1, 99, chain, Status::Ok(), "guess").code(), StatusCode::kPermissionDenied);
}

// A failure notice from the prefill side ends the decode side's waits at
// once with that failure: a parked get and WaitHandoff.
TEST_F(HandoffTest, APrefillFailureEndsTheDecodeWaitsAtOnce) {
  auto prefill = Engine(0);
  auto decode = Engine(1);
  auto waiter = Engine(1);
  ASSERT_TRUE(prefill && decode && waiter);
  const std::vector<uint64_t> chain = Chain(*prefill, 5);
  ASSERT_TRUE(Notice(1, 22, chain).ok());
  std::vector<char> buf(kValueBytes);
  std::vector<bool> found;
  Status got, waited;
  long long got_ms = 0, waited_ms = 0;
  const auto start = Clock::now();
  std::thread getter([&] {
    std::vector<GetBlock> get{{chain[0], 3, buf.data()}};
    got = decode->Get(get, &found);
    got_ms = MsSince(start);
  });
  std::thread wait([&] {
    waited = waiter->WaitHandoff(22, milliseconds(10000));
    waited_ms = MsSince(start);
  });
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(Notice(1, 22, chain, AbortedError("prefill stream aborted")).ok());
  getter.join();
  wait.join();
  std::printf("failure notice: get answered after %lld ms, WaitHandoff after %lld ms\n", got_ms,
              waited_ms);
  EXPECT_EQ(got.code(), StatusCode::kAborted) << got.ToString();
  EXPECT_NE(got.ToString().find("prefill stream aborted"), std::string::npos) << got.ToString();
  EXPECT_LT(got_ms, kHandoffWaitMs);
  EXPECT_EQ(waited.code(), StatusCode::kAborted) << waited.ToString();
  EXPECT_LT(waited_ms, 3000);
  // Later gets of it are plain misses at once, the outcome stays.
  ExpectMissAtOnce(*decode, GetBlock{chain[0], 3, buf.data()});
  EXPECT_EQ(decode->WaitHandoff(22, milliseconds(100)).code(), StatusCode::kAborted);
}

// The prefill engine disconnects before its hand-off is complete: its
// daemon tells the decode member, whose WaitHandoff ends with ABORTED.
TEST_F(HandoffTest, APrefillEngineThatDisconnectsAbortsItsHandoff) {
  ExpectPrefillFailureEndsTheWait(
      23, [](std::unique_ptr<Client>& prefill) { prefill.reset(); }, StatusCode::kAborted,
      milliseconds(5000));
}

// The prefill engine gives up its hand-off (a cancelled request) but stays
// connected: the decode side's wait ends at once with ABORTED and the reason,
// the decode member counts the failure, and a second abort (or one of a
// hand-off never started) is NOT_FOUND.
TEST_F(HandoffTest, APrefillEngineThatAbortsEndsTheDecodeWait) {
  const double before = Metric(1, "kvcake_cluster_handoffs_received_total{outcome=\"aborted\"}");
  ExpectPrefillFailureEndsTheWait(
      25,
      [&](std::unique_ptr<Client>& prefill) {
        EXPECT_TRUE(prefill->AbortHandoff(25, "request 25 cancelled").ok());
        EXPECT_EQ(prefill->AbortHandoff(25, "").code(), StatusCode::kNotFound);
        EXPECT_EQ(prefill->AbortHandoff(26, "").code(), StatusCode::kNotFound);
        EXPECT_EQ(prefill->AbortHandoff(0, "").code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(prefill->AbortHandoff(27, std::string(300, 'r')).code(),
                  StatusCode::kInvalidArgument);
      },
      StatusCode::kAborted, milliseconds(3000), "request 25 cancelled");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(1, "kvcake_cluster_handoffs_received_total{outcome=\"aborted\"}") >=
               std::max(0.0, before) + 1;
      },
      milliseconds(3000)));
}

// A hand-off to the prefill engine's own member (decode on the same node)
// fails the same way when the prefill engine aborts it or disconnects.
TEST_F(HandoffTest, ASameNodeHandoffFailsWhenItsPrefillEngineGoesAway) {
  auto prefill = Engine(0);
  auto decode = Engine(0);
  ASSERT_TRUE(prefill && decode);
  const std::vector<uint64_t> chain = Chain(*prefill, 28);
  std::vector<std::vector<char>> values;
  ASSERT_TRUE(prefill->PutHandoff(WholeRequestTo("a", 28), Layer(chain, 0, &values)).ok());
  ASSERT_TRUE(prefill->PutHandoff(WholeRequestTo("a", 29), Layer(chain, 1, &values)).ok());
  EXPECT_TRUE(prefill->AbortHandoff(28, "cancelled").ok());
  Status s = decode->WaitHandoff(28, milliseconds(3000));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.ToString().find("cancelled"), std::string::npos) << s.ToString();
  const auto start = Clock::now();
  prefill.reset();
  s = decode->WaitHandoff(29, milliseconds(10000));
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_LT(MsSince(start), 5000);
}

// The prefill member dies mid hand-off: the decode member learns it from
// the membership (within about the member TTL, 2 s) and fails the hand-off
// with UNAVAILABLE rather than letting WaitHandoff run to its timeout.
TEST_F(HandoffTest, APrefillMemberThatDiesFailsItsHandoff) {
  ExpectPrefillFailureEndsTheWait(
      24, [&](std::unique_ptr<Client>&) { ::kill(members_[0]->pid(), SIGKILL); },
      StatusCode::kUnavailable, milliseconds(8000));
}

// The hand-off calls of the C ABI: a hand-off stream, a plain hand-off put,
// the decode side's wait, and their argument checks.
TEST_F(HandoffTest, TheCApiHandsOffAndWaits) {
  auto engine = Engine(0);
  ASSERT_TRUE(engine);
  const std::vector<uint64_t> chain = Chain(*engine, 9);
  kvcake_client* a = nullptr;
  kvcake_client* b = nullptr;
  ASSERT_EQ(kvcake_connect(members_[0]->address().c_str(), options_.ns.c_str(), nullptr, &a), 0)
      << kvcake_last_error();
  ASSERT_EQ(kvcake_connect(members_[1]->address().c_str(), options_.ns.c_str(), nullptr, &b), 0)
      << kvcake_last_error();
  ASSERT_EQ(kvcake_register_namespace_ex(a, kLayers, 16, kValueBytes, "fp16", nullptr, 0), 0)
      << kvcake_last_error();
  ASSERT_EQ(kvcake_register_namespace_ex(b, kLayers, 16, kValueBytes, "fp16", nullptr, 0), 0)
      << kvcake_last_error();
  const int32_t total = kBlocks * kLayers;
  kvcake_put_stream* stream = nullptr;
  ASSERT_EQ(kvcake_put_stream_open_handoff(a, "b", 31, total, &stream), 0) << kvcake_last_error();
  std::vector<std::vector<char>> values;
  values.reserve(kBlocks * kLayers);
  for (uint32_t l = 0; l < kLayers; ++l) {
    std::vector<uint64_t> hashes;
    std::vector<int32_t> layers;
    std::vector<const void*> bufs;
    for (uint64_t h : chain) {
      values.push_back(Value(h, l));
      hashes.push_back(h);
      layers.push_back(static_cast<int32_t>(l));
      bufs.push_back(values.back().data());
    }
    ASSERT_EQ(kvcake_put_stream_submit(stream, hashes.data(), layers.data(), bufs.data(),
                                       static_cast<int>(kBlocks), nullptr),
              0)
        << kvcake_last_error();
  }
  EXPECT_EQ(kvcake_put_stream_wait(stream, -1, 10000), 0) << kvcake_last_error();
  kvcake_put_stream_free(stream);
  EXPECT_EQ(kvcake_wait_handoff(b, 31, 10000), 0) << kvcake_last_error();
  // Every value is on B, byte for byte.
  std::vector<std::vector<char>> out(kBlocks, std::vector<char>(kValueBytes));
  std::vector<void*> outs;
  std::vector<int32_t> last(kBlocks, kLayers - 1);
  for (auto& o : out) outs.push_back(o.data());
  std::vector<int32_t> found(kBlocks, 0);
  ASSERT_EQ(kvcake_get(b, chain.data(), last.data(), outs.data(), kBlocks, found.data()), 0)
      << kvcake_last_error();
  for (size_t i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(found[i], 1) << i;
    EXPECT_EQ(out[i], Value(chain[i], kLayers - 1)) << i;
  }
  // A plain hand-off put of one layer of a 1-value hand-off completes it.
  std::vector<char> one = Value(chain[0], 0);
  const void* one_buf = one.data();
  const int32_t layer0 = 0;
  EXPECT_EQ(kvcake_put_handoff(a, "b", 32, 1, chain.data(), &layer0, &one_buf, 1), 0)
      << kvcake_last_error();
  EXPECT_EQ(kvcake_wait_handoff(b, 32, 10000), 0) << kvcake_last_error();
  // Never announced: DEADLINE_EXCEEDED after the wait.
  EXPECT_EQ(kvcake_wait_handoff(b, 33, 50), -KVCAKE_E_DEADLINE_EXCEEDED);
  // Bad arguments.
  EXPECT_EQ(kvcake_put_handoff(a, nullptr, 34, 1, chain.data(), &layer0, &one_buf, 1),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put_handoff(a, "b", 0, 1, chain.data(), &layer0, &one_buf, 1),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put_handoff(a, "b", 34, 0, chain.data(), &layer0, &one_buf, 1),
            -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_put_stream_open_handoff(a, "b", 35, total, nullptr), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_wait_handoff(b, 0, 10), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_wait_handoff(b, 31, 600001), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_wait_handoff(nullptr, 31, 10), -KVCAKE_E_INVALID_ARGUMENT);
  // Aborting: a hand-off in progress, then one that is not.
  EXPECT_EQ(kvcake_put_handoff(a, "b", 36, 2, chain.data(), &layer0, &one_buf, 1), 0)
      << kvcake_last_error();
  EXPECT_EQ(kvcake_abort_handoff(a, 36, "cancelled"), 0) << kvcake_last_error();
  EXPECT_EQ(kvcake_wait_handoff(b, 36, 3000), -KVCAKE_E_ABORTED);
  EXPECT_EQ(kvcake_abort_handoff(a, 36, nullptr), -KVCAKE_E_NOT_FOUND);
  EXPECT_EQ(kvcake_abort_handoff(a, 0, nullptr), -KVCAKE_E_INVALID_ARGUMENT);
  EXPECT_EQ(kvcake_abort_handoff(nullptr, 36, nullptr), -KVCAKE_E_INVALID_ARGUMENT);
  kvcake_close(a);
  kvcake_close(b);
}

}  // namespace
}  // namespace kvcake
