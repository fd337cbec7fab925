// GatewayEtcdClient against a real etcd.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "cluster/etcd_client.h"
#include "tests/cluster/etcd_harness.h"

namespace kvcake::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using testing::EtcdProcess;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::unique_ptr<GatewayEtcdClient> MakeClient(std::vector<std::string> endpoints,
                                              uint32_t timeout_ms = 1'000) {
  GatewayEtcdClientOptions options;
  options.endpoints = std::move(endpoints);
  options.request_timeout_ms = timeout_ms;
  auto client = GatewayEtcdClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(*client) : nullptr;
}

class EtcdClientTest : public testing::EtcdTest {
 protected:
  void SetUp() override {
    testing::EtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    client_ = MakeClient({etcd_->endpoint()});
    ASSERT_NE(client_, nullptr);
  }

  std::unique_ptr<GatewayEtcdClient> client_;
};

TEST_F(EtcdClientTest, PutRangePrefixDeleteRoundTrip) {
  const std::string binary("v\0\xff\x01", 4);
  ASSERT_TRUE(client_->Put("/t/a", "1", 0).ok());
  ASSERT_TRUE(client_->Put("/t/b", binary, 0).ok());
  ASSERT_TRUE(client_->Put("/u/c", "3", 0).ok());

  auto a = client_->Range("/t/a");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->kvs.size(), 1u);
  EXPECT_EQ(a->kvs[0].key, "/t/a");
  EXPECT_EQ(a->kvs[0].value, "1");
  EXPECT_GT(a->kvs[0].mod_revision, 0);
  EXPECT_GE(a->revision, a->kvs[0].mod_revision);

  auto prefix = client_->RangePrefix("/t/");
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  ASSERT_EQ(prefix->kvs.size(), 2u);
  EXPECT_EQ(prefix->kvs[0].key, "/t/a");
  EXPECT_EQ(prefix->kvs[1].key, "/t/b");
  EXPECT_EQ(prefix->kvs[1].value, binary);
  EXPECT_GT(prefix->kvs[1].mod_revision, prefix->kvs[0].mod_revision);

  auto deleted = client_->Delete("/t/a");
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(client_->Delete("/t/a").value_or(-1), 0);
  auto gone = client_->Range("/t/a");
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->kvs.empty());
  EXPECT_GT(gone->revision, a->revision);
}

TEST_F(EtcdClientTest, PutIfAbsentRefusesAnExistingKey) {
  auto created = client_->PutIfAbsent("/t/once", "first", 0, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  KeyValue existing;
  auto again = client_->PutIfAbsent("/t/once", "second", 0, &existing);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(*again);
  EXPECT_EQ(existing.key, "/t/once");
  EXPECT_EQ(existing.value, "first");
  EXPECT_GT(existing.create_revision, 0);
  auto now = client_->Range("/t/once");
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->kvs.size(), 1u);
  EXPECT_EQ(now->kvs[0].value, "first");
}

TEST_F(EtcdClientTest, LeaseGrantKeepAliveRevokeRemovesTheKey) {
  auto lease = client_->LeaseGrant(5);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(client_->Put("/t/leased", "v", *lease).ok());
  auto range = client_->Range("/t/leased");
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].lease, *lease);

  auto ttl = client_->LeaseKeepAliveOnce(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  EXPECT_GT(*ttl, 0);
  EXPECT_LE(*ttl, 5);

  ASSERT_TRUE(client_->LeaseRevoke(*lease).ok());
  range = client_->Range("/t/leased");
  ASSERT_TRUE(range.ok());
  EXPECT_TRUE(range->kvs.empty());
  EXPECT_EQ(client_->LeaseKeepAliveOnce(*lease).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->LeaseRevoke(*lease).code(), StatusCode::kNotFound);
  // A put on a lease that is gone is refused.
  EXPECT_EQ(client_->Put("/t/leased", "v", *lease).code(), StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, KeyDisappearsWhenItsLeaseIsNotKeptAlive) {
  auto lease = client_->LeaseGrant(2);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  ASSERT_TRUE(client_->Put("/t/expiring", "v", *lease).ok());
  auto start = Clock::now();
  bool gone = false;
  while (SecondsSince(start) < 5.0) {
    auto range = client_->Range("/t/expiring");
    ASSERT_TRUE(range.ok()) << range.status().ToString();
    if (range->kvs.empty()) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(gone) << "the key outlived its 2 s lease by 3 s";
  EXPECT_GE(SecondsSince(start), 1.5);
  EXPECT_EQ(client_->LeaseKeepAliveOnce(*lease).status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, ClosedPortIsUnavailableWithinTheDeadline) {
  std::string dead = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  auto client = MakeClient({dead}, 1'000);
  ASSERT_NE(client, nullptr);
  auto start = Clock::now();
  auto range = client->Range("/t/x");
  EXPECT_LE(SecondsSince(start), 1.5);
  EXPECT_EQ(range.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(range.status().message().find(dead), std::string::npos) << range.status().ToString();
}

TEST_F(EtcdClientTest, SilentEndpointTimesOutAsUnavailable) {
  // A socket that listens but never answers: connect succeeds, no reply.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string silent = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto client = MakeClient({silent}, 500);
  auto start = Clock::now();
  auto put = client->Put("/t/x", "v", 0);
  double elapsed = SecondsSince(start);
  ::close(fd);
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.ToString();
  EXPECT_GE(elapsed, 0.4);
  EXPECT_LE(elapsed, 1.0);
  EXPECT_NE(put.message().find("timed out"), std::string::npos) << put.ToString();
}

TEST_F(EtcdClientTest, SecondEndpointIsUsedWhenTheFirstIsDead) {
  std::string dead = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  auto client = MakeClient({dead, etcd_->endpoint()});
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("/t/failover", "v", 0).ok());
  auto range = client->Range("/t/failover");
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].value, "v");
}

}  // namespace
}  // namespace kvcake::cluster
