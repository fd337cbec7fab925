// Membership against a real etcd: several members in one process, etcd
// stopped and restarted under them.

#include "cluster/membership.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "tests/cluster/etcd_harness.h"
#include "tests/common/loopback_socket.h"

namespace kvcake::cluster {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kTtlS = 2;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Polls `done` every 20 ms for up to `timeout_s`; true once it holds.
bool WaitFor(const std::function<bool()>& done, double timeout_s) {
  auto start = Clock::now();
  while (SecondsSince(start) < timeout_s) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

std::set<std::string> Ids(const Membership& m, bool fresh_only = false) {
  std::set<std::string> ids;
  for (const MemberInfo& info : m.Members()) {
    if (!fresh_only || !info.stale) ids.insert(info.node_id);
  }
  return ids;
}

class MembershipTest : public testing::EtcdTest {
 protected:
  MembershipOptions Options(const std::string& node_id) const {
    MembershipOptions options;
    options.endpoints = {etcd_->endpoint()};
    options.cluster_name = "test";
    options.node_id = node_id;
    options.self.advertise_address = "127.0.0.1:" + std::to_string(20000 + node_id.size());
    options.self.admin_address = "127.0.0.1:1";
    options.self.version = "test";
    options.self.start_time_unix_ms = 1;
    options.self.host_capacity_bytes = 1 << 20;
    options.ttl_s = kTtlS;
    options.request_timeout_ms = 500;
    options.max_backoff_ms = 500;
    return options;
  }

  std::unique_ptr<Membership> Join(const std::string& node_id) {
    auto m = Membership::Start(Options(node_id));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(*m) : nullptr;
  }

  std::unique_ptr<EtcdClient> Client() const {
    GatewayEtcdClientOptions options;
    options.endpoints = {etcd_->endpoint()};
    return std::move(*GatewayEtcdClient::Create(options));
  }
};

TEST_F(MembershipTest, ThreeMembersSeeEachOther) {
  auto a = Join("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->state(), MembershipState::kUp);
  std::atomic<int> callbacks{0};
  a->SetChangeCallback([&](const std::vector<MemberInfo>&, MembershipState) { ++callbacks; });
  auto b = Join("b");
  auto c = Join("c");
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  const std::set<std::string> all = {"a", "b", "c"};
  auto start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return Ids(*a) == all && Ids(*b) == all && Ids(*c) == all; }, 2.0));
  EXPECT_LE(SecondsSince(start), 2.0);
  EXPECT_GE(callbacks.load(), 1);
  EXPECT_GE(a->stats().membership_changes, 1u);
  for (const MemberInfo& info : a->Members()) {
    EXPECT_FALSE(info.stale);
    EXPECT_GT(info.last_seen_unix_ms, 0);
    if (info.node_id == "b") {
      EXPECT_EQ(info.advertise_address, b->self().advertise_address);
    }
  }
}

TEST_F(MembershipTest, DuplicateNodeIdIsRefused) {
  auto a = Join("dup");
  ASSERT_NE(a, nullptr);
  auto options = Options("dup");
  options.self.advertise_address = "127.0.0.1:9";
  auto second = Membership::Start(options);
  ASSERT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status().ToString();
  EXPECT_NE(second.status().message().find("'dup'"), std::string::npos);
  EXPECT_NE(second.status().message().find(a->self().advertise_address), std::string::npos)
      << second.status().ToString();
  // The holder is untouched.
  EXPECT_EQ(a->state(), MembershipState::kUp);
  auto range = Client()->Range(a->key());
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_NE(range->kvs[0].value.find(a->self().advertise_address), std::string::npos);
}

TEST_F(MembershipTest, StoppedMemberIsDroppedAtOnce) {
  auto a = Join("a");
  auto b = Join("b");
  auto c = Join("c");
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(WaitFor([&] { return Ids(*a).size() == 3 && Ids(*b).size() == 3; }, 2.0));
  c->Stop();
  auto start = Clock::now();
  const std::set<std::string> rest = {"a", "b"};
  ASSERT_TRUE(WaitFor([&] { return Ids(*a) == rest && Ids(*b) == rest; }, 1.5));
  EXPECT_LE(SecondsSince(start), 1.0);
  EXPECT_TRUE(Client()->Range(c->key())->kvs.empty());
}

TEST_F(MembershipTest, AbandonedMemberVanishesAfterItsTtl) {
  auto a = Join("a");
  auto b = Join("b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitFor([&] { return Ids(*a).size() == 2; }, 2.0));
  b->Abandon();
  auto start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return Ids(*a) == std::set<std::string>{"a"}; }, kTtlS + 2.0));
  double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.5);  // not revoked: it lasted until the lease ran out
  // The lease runs out at most TTL after b's last renewal, etcd reaps expired
  // leases every 0.5 s, and a polls every TTL/3: worst case about TTL + 1.2 s.
  EXPECT_LE(elapsed, kTtlS + 1.2);
}

TEST_F(MembershipTest, EtcdDownIsUnknownAndRecovers) {
  auto a = Join("a");
  auto b = Join("b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitFor([&] { return Ids(*a).size() == 2 && Ids(*b).size() == 2; }, 2.0));

  etcd_->Stop();
  ASSERT_TRUE(WaitFor(
      [&] {
        return a->state() == MembershipState::kUnknown && b->state() == MembershipState::kUnknown;
      },
      3.0));
  // The last known set stays, marked stale (self is never stale).
  for (const MemberInfo& info : a->Members()) EXPECT_EQ(info.stale, info.node_id != "a");
  EXPECT_EQ(Ids(*a), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(Ids(*a, /*fresh_only=*/true), std::set<std::string>{"a"});
  EXPECT_GE(a->stats().keepalive_failures, 1u);

  ASSERT_TRUE(etcd_->Restart().ok());
  ASSERT_TRUE(WaitFor(
      [&] { return a->state() == MembershipState::kUp && b->state() == MembershipState::kUp; },
      5.0));
  const std::set<std::string> both = {"a", "b"};
  ASSERT_TRUE(WaitFor([&] { return Ids(*a, true) == both && Ids(*b, true) == both; }, 2.0));
  EXPECT_GE(a->stats().reconnects, 1u);
  auto keys = Client()->RangePrefix(MembersPrefix("test"));
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->kvs.size(), 2u);
}

TEST_F(MembershipTest, EtcdDownAtStartThenUp) {
  etcd_->Stop();
  auto start = Clock::now();
  auto a = Join("a");
  ASSERT_NE(a, nullptr);
  EXPECT_LE(SecondsSince(start), 1.5);
  EXPECT_EQ(a->state(), MembershipState::kUnknown);
  ASSERT_EQ(a->Members().size(), 1u);
  EXPECT_EQ(a->Members()[0].node_id, "a");
  ASSERT_TRUE(etcd_->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return a->state() == MembershipState::kUp; }, 3.0));
  auto range = Client()->Range(a->key());
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(range->kvs.size(), 1u);
}

TEST_F(MembershipTest, LostLeaseIsReplacedAndTheKeyRecreated) {
  auto a = Join("a");
  auto b = Join("b");
  ASSERT_TRUE(a && b);
  auto client = Client();
  auto before = client->Range(a->key());
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->kvs.size(), 1u);
  ASSERT_TRUE(client->LeaseRevoke(before->kvs[0].lease).ok());
  // a notices at its next keep-alive, takes a new lease and re-creates the key.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto now = client->Range(a->key());
        return now.ok() && now->kvs.size() == 1 && now->kvs[0].lease != before->kvs[0].lease;
      },
      2.0));
  EXPECT_GE(a->stats().keepalive_failures, 1u);
  ASSERT_TRUE(WaitFor([&] { return Ids(*b, true) == std::set<std::string>{"a", "b"}; }, 2.0));
  EXPECT_EQ(a->state(), MembershipState::kUp);
}

using Listener = kvcake::testing::LoopbackListener;  // an admin port that answers

TEST(TcpListenerMayBeAliveTest, OnlyARefusedConnectionIsDead) {
  Listener live;
  ASSERT_NE(live.port(), 0);
  EXPECT_TRUE(TcpListenerMayBeAlive(live.address(), std::chrono::milliseconds(300)));
  const std::string closed = "127.0.0.1:" + std::to_string(testing::FreePort());
  EXPECT_FALSE(TcpListenerMayBeAlive(closed, std::chrono::milliseconds(300)));
  // Cannot tell: may be alive.
  EXPECT_TRUE(TcpListenerMayBeAlive("127.0.0.1:0", std::chrono::milliseconds(300)));
  EXPECT_TRUE(TcpListenerMayBeAlive("", std::chrono::milliseconds(300)));
  EXPECT_TRUE(TcpListenerMayBeAlive("not an address", std::chrono::milliseconds(300)));
}

// A member that crashed (its lease left to run out) and restarts at the same
// addresses at once: its dead admin port lets it take its key over without
// waiting for the TTL.
TEST_F(MembershipTest, ACrashedMemberRestartedAtOnceTakesItsKeyOver) {
  auto options = Options("re");
  options.self.admin_address = "127.0.0.1:" + std::to_string(testing::FreePort());
  options.holder_alive = [](const MemberInfo& holder) {
    return TcpListenerMayBeAlive(holder.admin_address, std::chrono::milliseconds(300));
  };
  auto first = Membership::Start(options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto client = Client();
  auto before = client->Range((*first)->key());
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->kvs.size(), 1u);
  (*first)->Abandon();  // a crash: nobody revokes the lease
  const auto start = Clock::now();
  auto second = Membership::Start(options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_LT(SecondsSince(start), 1.0);
  auto after = client->Range((*second)->key());
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->kvs.size(), 1u);
  EXPECT_NE(after->kvs[0].lease, before->kvs[0].lease);
  EXPECT_EQ((*second)->state(), MembershipState::kUp);
  // The old lease is gone, not left to run out.
  EXPECT_FALSE(client->LeaseKeepAliveOnce(before->kvs[0].lease).ok());
}

// The same node id at the same addresses while the holder's admin port
// answers: a live duplicate, refused as before.
TEST_F(MembershipTest, ALiveDuplicateAtTheSameAddressesIsStillRefused) {
  Listener admin;
  ASSERT_NE(admin.port(), 0);
  auto options = Options("twin");
  options.self.admin_address = admin.address();
  int probes = 0;
  options.holder_alive = [&probes](const MemberInfo& holder) {
    ++probes;
    return TcpListenerMayBeAlive(holder.admin_address, std::chrono::milliseconds(300));
  };
  auto first = Membership::Start(options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = Membership::Start(options);
  ASSERT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status().ToString();
  EXPECT_EQ(probes, 1);
  EXPECT_EQ((*first)->state(), MembershipState::kUp);
  auto range = Client()->Range((*first)->key());
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->kvs.size(), 1u);
  // Another admin address is another member: refused without a probe.
  options.self.admin_address = "127.0.0.1:" + std::to_string(testing::FreePort());
  auto other = Membership::Start(options);
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists) << other.status().ToString();
  EXPECT_EQ(probes, 1);
}

}  // namespace
}  // namespace kvcake::cluster
