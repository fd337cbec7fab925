// Unit tests of the daemon's request service over a real TierManager
// (host tier in a memfd, no SSD), without the network.

#include "daemon/service.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "cluster/cluster_node.h"
#include "common/block_hash.h"
#include "store/checksum.h"
#include "store/clock.h"

namespace kvcake::daemon {
namespace {

using transport::BlockRef;
using transport::RpcOp;

constexpr uint64_t kBytes = 16 * 1024;

std::unique_ptr<store::TierManager> OpenStore(std::shared_ptr<store::Clock> clock,
                                              uint64_t lease_us = 30'000'000) {
  store::TierManagerOptions o;
  o.clock = std::move(clock);
  o.host_capacity_bytes = 8 << 20;
  o.slot_bytes = kBytes;
  o.ssd_path = "";
  o.host_segment_name = "kvcake-service-test";
  o.host_huge_pages = false;
  o.pin_lease_us = lease_us;
  o.reservation_lease_us = lease_us;
  o.reserve_wait_us = 1000;
  auto tm = store::TierManager::Open(o, nullptr);
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  return tm.ok() ? std::move(tm).value() : nullptr;
}

uint16_t Op(RpcOp op) { return static_cast<uint16_t>(op); }

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Make({}); }
  void Make(ServiceOptions o, uint64_t lease_us = 30'000'000) {
    service_.reset();
    store_ = OpenStore(clock_, lease_us);
    ASSERT_NE(store_, nullptr);
    o.host_segment_path = "/proc/self/fd/0";  // only its presence matters here
    o.clock = clock_.get();
    service_ = std::make_unique<Service>(o, store_.get());
  }
  Result<std::string> Call(RpcOp op, const std::string& header, std::string_view data = {},
                           std::string* out = nullptr) {
    std::string sink;
    return service_->Handle(caller_, Op(op), header, data, out ? out : &sink);
  }
  transport::RegisterNamespaceResponse Register(const std::string& token = "") {
    transport::RegisterNamespaceRequest r{"svc", token, 2, 16, kBytes, "fp16", "", 0};
    auto res = Call(RpcOp::kRegisterNamespace, transport::Encode(r));
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    transport::RegisterNamespaceResponse resp;
    if (res.ok()) {
      EXPECT_TRUE(transport::Decode(*res, &resp).ok());
    }
    return resp;
  }
  // A same-node put of the two keys of `req`: maps the host segment (into
  // `*mem`; the caller unmaps it), reserves the keys (into `*slots`), writes
  // Value(key) into each slot and commits with the first key's checksum right
  // and the second's off by one. The commit's per-key codes; empty if a step
  // before the commit failed.
  std::vector<transport::KeyCode> PutSecondWithWrongChecksum(
      const transport::RegisterNamespaceResponse& ns, const transport::KeyedRequest& req,
      char** mem, transport::SlotsResponse* slots);
  std::vector<transport::KeyCode> Codes(const Result<std::string>& r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    transport::KeyCodesResponse resp;
    if (r.ok()) {
      EXPECT_TRUE(transport::Decode(*r, &resp).ok());
    }
    return resp.codes;
  }

  // Leases of the store and the service expire on this clock only.
  std::shared_ptr<store::ManualClock> clock_ = std::make_shared<store::ManualClock>();
  std::unique_ptr<store::TierManager> store_;
  std::unique_ptr<Service> service_;
  uint64_t caller_ = 1;  // the connection requests come on
};

std::string Value(uint64_t hash, uint32_t layer) {
  std::string v(kBytes, '\0');
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<char>((hash * 31 + layer * 7 + i) & 0xff);
  return v;
}

TEST_F(ServiceTest, RegisterChecksTokenAndLayout) {
  ServiceOptions o;
  o.token = "tok";
  Make(o);
  transport::RegisterNamespaceRequest r{"svc", "", 2, 16, kBytes, "fp16", "", 0};
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kUnauthenticated);
  r.token = "tox";
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kPermissionDenied);
  r.token = "tok";
  auto first = Register("tok");
  EXPECT_EQ(first.ns_id, NamespaceSeed("svc"));
  EXPECT_EQ(first.created, 1);
  EXPECT_EQ(Register("tok").created, 0);
  r.kv_dtype = "bf16";
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kFailedPrecondition);
  r.kv_dtype = "fp16";
  r.name = "big";
  r.layer_block_bytes = kBytes + 1;
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ServiceTest, PutGetLookupDeleteThroughHandle) {
  auto ns = Register();
  transport::KeyedRequest put{ns.ns_id, ns.fingerprint, {{1, 0}, {2, 0}, {1, 1}}};
  std::string data = Value(1, 0) + Value(2, 0) + Value(1, 1);
  EXPECT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(put), data)),
            (std::vector<transport::KeyCode>{0, 0, 0}));
  // Again: already exists.
  EXPECT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(put), data)),
            (std::vector<transport::KeyCode>(3, static_cast<uint8_t>(StatusCode::kAlreadyExists))));
  // Wrong data size for the whole request.
  EXPECT_EQ(Call(RpcOp::kPut, transport::Encode(put), data.substr(1)).status().code(),
            StatusCode::kInvalidArgument);
  // Data on an op that carries none.
  transport::KeyedRequest get{ns.ns_id, ns.fingerprint, {{2, 0}, {3, 0}, {1, 1}}};
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(get), "x").status().code(),
            StatusCode::kInvalidArgument);
  std::string out;
  EXPECT_EQ(Codes(Call(RpcOp::kGet, transport::Encode(get), {}, &out)),
            (std::vector<transport::KeyCode>{0, static_cast<uint8_t>(StatusCode::kNotFound), 0}));
  EXPECT_EQ(out, Value(2, 0) + Value(1, 1));

  transport::LookupPrefixRequest lk{ns.ns_id, ns.fingerprint, 0, {1, 2, 3}};
  auto lr = transport::DecodeAs<transport::LookupPrefixResponse>(
      *Call(RpcOp::kLookupPrefix, transport::Encode(lk)));
  ASSERT_TRUE(lr.ok());
  EXPECT_EQ(lr->prefix_len, 2u);
  transport::KeyedRequest del{ns.ns_id, ns.fingerprint, {{1, 0}, {9, 0}}};
  auto dr =
      transport::DecodeAs<transport::DeleteResponse>(*Call(RpcOp::kDelete, transport::Encode(del)));
  ASSERT_TRUE(dr.ok());
  EXPECT_EQ(dr->deleted, 1u);
  lr = transport::DecodeAs<transport::LookupPrefixResponse>(
      *Call(RpcOp::kLookupPrefix, transport::Encode(lk)));
  EXPECT_EQ(lr->prefix_len, 0u);
  // Bad layer, wrong fingerprint, unknown namespace.
  transport::KeyedRequest bad{ns.ns_id, ns.fingerprint, {{1, 2}}};
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(bad)).status().code(),
            StatusCode::kInvalidArgument);
  bad = {ns.ns_id, ns.fingerprint + 1, {{1, 0}}};
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(bad)).status().code(),
            StatusCode::kFailedPrecondition);
  // A namespace this connection did not open is refused whether or not it
  // exists (ids reveal nothing); the daemon itself sees it is unknown.
  bad = {ns.ns_id + 1, ns.fingerprint, {{1, 0}}};
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(bad)).status().code(),
            StatusCode::kPermissionDenied);
  caller_ = kInProcessCaller;
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(bad)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Handle(caller_, 999, "", {}, &out).status().code(),
            StatusCode::kUnimplemented);
  EXPECT_GE(service_->stats().errors, 5u);
}

TEST_F(ServiceTest, ZeroCopyPutStagesSeveralValuesAndAbortsOnPayloadFailure) {
  auto ns = Register();
  transport::KeyedRequest put{ns.ns_id, ns.fingerprint, {{5, 0}, {6, 0}}};
  auto st = service_->BeginPut(caller_, transport::Encode(put), 2 * kBytes);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_NE((*st)->staging, nullptr);
  std::string data = Value(5, 0) + Value(6, 0);
  std::memcpy((*st)->staging.get(), data.data(), data.size());
  EXPECT_EQ(Codes(service_->FinishPut(**st, Status::Ok())),
            (std::vector<transport::KeyCode>{0, 0}));
  std::string out;
  transport::KeyedRequest get{ns.ns_id, ns.fingerprint, {{5, 0}, {6, 0}}};
  Codes(Call(RpcOp::kGet, transport::Encode(get), {}, &out));
  EXPECT_EQ(out, data);

  // One value: straight into the slot. A failed payload aborts the reservation.
  transport::KeyedRequest one{ns.ns_id, ns.fingerprint, {{7, 0}}};
  st = service_->BeginPut(caller_, transport::Encode(one), kBytes);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)->staging, nullptr);
  EXPECT_FALSE(service_->FinishPut(**st, UnavailableError("peer gone")).ok());
  EXPECT_EQ(service_->BeginPut(caller_, transport::Encode(one), kBytes - 1).status().code(),
            StatusCode::kInvalidArgument);
  st = service_->BeginPut(caller_, transport::Encode(one), kBytes);  // the key is free again
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)->codes[0], 0);
  service_->AbortPut(**st);
}

std::vector<transport::KeyCode> ServiceTest::PutSecondWithWrongChecksum(
    const transport::RegisterNamespaceResponse& ns, const transport::KeyedRequest& req, char** mem,
    transport::SlotsResponse* slots) {
  store::HostSegmentInfo seg = store_->host_segment();
  void* base = ::mmap(nullptr, seg.size, PROT_READ | PROT_WRITE, MAP_SHARED, seg.fd, 0);
  EXPECT_NE(base, MAP_FAILED);
  if (base == MAP_FAILED || req.keys.size() != 2) return {};
  *mem = static_cast<char*>(base);
  auto reserved = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve, transport::Encode(req)));
  EXPECT_TRUE(reserved.ok());
  if (!reserved.ok()) return {};
  *slots = *reserved;
  EXPECT_EQ(slots->codes, (std::vector<transport::KeyCode>{0, 0}));
  EXPECT_GT(slots->lease_us, 0u);
  std::vector<uint64_t> checksums;
  for (size_t i = 0; i < 2; ++i) {
    const std::string v = Value(req.keys[i].hash, req.keys[i].layer);
    std::memcpy(*mem + slots->offsets[i], v.data(), kBytes);
    checksums.push_back(store::BlockChecksum(v.data(), kBytes) ^ i);
  }
  transport::PutCommitRequest commit{ns.ns_id, ns.fingerprint, slots->lease_id, req.keys,
                                     checksums};
  return Codes(Call(RpcOp::kPutCommit, transport::Encode(commit)));
}

TEST_F(ServiceTest, SameNodeReserveCommitPinReleaseWithChecksums) {
  auto ns = Register();
  store::HostSegmentInfo seg = store_->host_segment();
  ASSERT_GE(seg.fd, 0);
  char* mem = nullptr;
  transport::SlotsResponse slots;
  transport::KeyedRequest req{ns.ns_id, ns.fingerprint, {{10, 0}, {11, 1}}};
  ASSERT_EQ(PutSecondWithWrongChecksum(ns, req, &mem, &slots),
            (std::vector<transport::KeyCode>{0, static_cast<uint8_t>(StatusCode::kDataLoss)}));
  const std::string v0 = Value(10, 0);
  transport::PutCommitRequest commit{ns.ns_id, ns.fingerprint, slots.lease_id, req.keys, {0, 0}};
  // The lease is gone once committed.
  EXPECT_EQ(Call(RpcOp::kPutCommit, transport::Encode(commit)).status().code(),
            StatusCode::kAborted);

  auto pins =
      transport::DecodeAs<transport::SlotsResponse>(*Call(RpcOp::kGetPin, transport::Encode(req)));
  ASSERT_TRUE(pins.ok());
  ASSERT_EQ(pins->codes[0], 0);
  EXPECT_EQ(pins->codes[1], static_cast<uint8_t>(StatusCode::kNotFound));  // checksum refused
  EXPECT_EQ(std::string(mem + pins->offsets[0], kBytes), v0);
  EXPECT_EQ(service_->stats().open_leases, 1u);
  EXPECT_TRUE(
      Call(RpcOp::kRelease, transport::Encode(transport::ReleaseRequest{pins->lease_id})).ok());
  EXPECT_EQ(service_->stats().open_leases, 0u);
  ::munmap(mem, seg.size);
}

TEST_F(ServiceTest, ExpiredSameNodeLeasesAreReclaimed) {
  ServiceOptions o;
  o.lease_ms = 20;
  Make(o, 20'000);
  auto ns = Register();
  transport::KeyedRequest req{ns.ns_id, ns.fingerprint, {{20, 0}}};
  auto slots = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve, transport::Encode(req)));
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->codes[0], 0);
  EXPECT_EQ(service_->ExpireLeases(), 0u);  // not yet
  clock_->Advance(60'000);
  EXPECT_EQ(service_->ExpireLeases(), 1u);
  transport::PutCommitRequest commit{ns.ns_id, ns.fingerprint, slots->lease_id, req.keys, {1}};
  EXPECT_EQ(Call(RpcOp::kPutCommit, transport::Encode(commit)).status().code(),
            StatusCode::kAborted);
  // The key can be written again.
  std::string data = Value(20, 0);
  EXPECT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(req), data)),
            (std::vector<transport::KeyCode>{0}));
}

TEST_F(ServiceTest, ConcurrentHandlersKeepEveryValueIntact) {
  auto ns = Register();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        uint64_t h = (i % 5 == 0) ? 1000 + i : (t + 1) * 100000 + i;  // some shared keys
        transport::KeyedRequest put{ns.ns_id, ns.fingerprint, {{h, 0}}};
        std::string sink;
        auto r =
            service_->Handle(caller_, Op(RpcOp::kPut), transport::Encode(put), Value(h, 0), &sink);
        if (!r.ok()) ++bad;
        std::string out;
        auto g = service_->Handle(caller_, Op(RpcOp::kGet), transport::Encode(put), {}, &out);
        transport::KeyCodesResponse codes;
        if (!g.ok() || !transport::Decode(*g, &codes).ok()) {
          ++bad;
          continue;
        }
        // A shared key may still be reserved by another thread's put.
        if (codes.codes[0] == 0 && out != Value(h, 0)) ++bad;
        transport::LookupPrefixRequest lk{ns.ns_id, ns.fingerprint, 0, {h}};
        if (!service_->Handle(caller_, Op(RpcOp::kLookupPrefix), transport::Encode(lk), {}, &sink)
                 .ok()) {
          ++bad;
        }
        if (i % 10 == 0) service_->ExpireLeases();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(service_->stats().errors, 0u);
}

TEST_F(ServiceTest, QuotaAndReportStats) {
  transport::RegisterNamespaceRequest r{"small", "", 1, 16, kBytes, "fp16", "", 2 * kBytes};
  auto reg = transport::DecodeAs<transport::RegisterNamespaceResponse>(
      *Call(RpcOp::kRegisterNamespace, transport::Encode(r)));
  ASSERT_TRUE(reg.ok());
  transport::KeyedRequest put{reg->ns_id, reg->fingerprint, {{1, 0}, {2, 0}, {3, 0}}};
  std::string data = Value(1, 0) + Value(2, 0) + Value(3, 0);
  auto codes = Codes(Call(RpcOp::kPut, transport::Encode(put), data));
  ASSERT_EQ(codes.size(), 3u);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], static_cast<uint8_t>(StatusCode::kResourceExhausted));

  transport::ReportStatsRequest rs{reg->ns_id, reg->fingerprint, 0, 2.5, {1, 2}, {0.5, 0.25}, 1};
  auto ok = Call(RpcOp::kReportStats, transport::Encode(rs));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  rs.layer = 1;  // the namespace has one layer
  EXPECT_EQ(Call(RpcOp::kReportStats, transport::Encode(rs)).status().code(),
            StatusCode::kInvalidArgument);
}

// The serving mode a registration asks for reaches the store (and through
// it the policy); a registration without one is exact serving.
TEST_F(ServiceTest, RegisterCarriesTheServingMode) {
  transport::RegisterNamespaceRequest r{"budgeted", "", 2, 16, kBytes, "fp16", "", 0, 1};
  auto reg = transport::DecodeAs<transport::RegisterNamespaceResponse>(
      *Call(RpcOp::kRegisterNamespace, transport::Encode(r)));
  ASSERT_TRUE(reg.ok());
  auto cfg = store_->GetNamespace(reg->ns_id);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->serving, policy::ServingMode::kBudgeted);
  EXPECT_EQ(store_->GetNamespace(Register().ns_id)->serving, policy::ServingMode::kExact);
  r.name = "bad";
  r.serving = 2;
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kInvalidArgument);
}

// A connection uses only the namespaces it opened (RegisterNamespace on that
// connection, with a token that covers the name when tokens are set).
TEST_F(ServiceTest, EveryKeyedOpNeedsTheNamespaceOpenOnTheConnection) {
  ServiceOptions o;
  o.grants = {TokenGrant{"alice-token", {"alice"}}, TokenGrant{"bob-token-1", {"bob*"}}};
  Make(o);
  transport::RegisterNamespaceRequest alice{"alice", "alice-token", 2, 16, kBytes, "fp16", "", 0};
  auto reg = transport::DecodeAs<transport::RegisterNamespaceResponse>(
      *Call(RpcOp::kRegisterNamespace, transport::Encode(alice)));
  ASSERT_TRUE(reg.ok());
  transport::KeyedRequest put{reg->ns_id, reg->fingerprint, {{7, 0}}};
  ASSERT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(put), Value(7, 0))),
            std::vector<transport::KeyCode>{0});

  // Connection 2 knows the id and fingerprint but opened nothing.
  caller_ = 2;
  std::string out;
  for (RpcOp op : {RpcOp::kGet, RpcOp::kDelete, RpcOp::kPutReserve, RpcOp::kGetPin}) {
    EXPECT_EQ(Call(op, transport::Encode(put), {}, &out).status().code(),
              StatusCode::kPermissionDenied)
        << transport::RpcOpName(Op(op));
  }
  EXPECT_EQ(Call(RpcOp::kPut, transport::Encode(put), Value(7, 1)).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(service_->BeginPut(caller_, transport::Encode(put), kBytes).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(service_->BeginGet(caller_, transport::Encode(put)).status().code(),
            StatusCode::kPermissionDenied);
  transport::LookupPrefixRequest lk{reg->ns_id, reg->fingerprint, 0, {7}};
  EXPECT_EQ(Call(RpcOp::kLookupPrefix, transport::Encode(lk)).status().code(),
            StatusCode::kPermissionDenied);
  transport::ReportStatsRequest rs{reg->ns_id, reg->fingerprint, 0, 1.0, {7}, {0.5}, 1};
  EXPECT_EQ(Call(RpcOp::kReportStats, transport::Encode(rs)).status().code(),
            StatusCode::kPermissionDenied);
  // Bob's token opens bob-* namespaces, not alice's.
  alice.token = "bob-token-1";
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(alice)).status().code(),
            StatusCode::kPermissionDenied);
  transport::RegisterNamespaceRequest bob{"bob-7b", "bob-token-1", 2, 16, kBytes, "fp16", "", 0};
  EXPECT_TRUE(Call(RpcOp::kRegisterNamespace, transport::Encode(bob)).ok());
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(put), {}, &out).status().code(),
            StatusCode::kPermissionDenied);

  // Once connection 1 closes, its grant is gone too.
  caller_ = 1;
  service_->ForgetCaller(1);
  EXPECT_EQ(Call(RpcOp::kGet, transport::Encode(put), {}, &out).status().code(),
            StatusCode::kPermissionDenied);
  alice.token = "alice-token";
  ASSERT_TRUE(Call(RpcOp::kRegisterNamespace, transport::Encode(alice)).ok());
  EXPECT_EQ(Codes(Call(RpcOp::kGet, transport::Encode(put), {}, &out)),
            std::vector<transport::KeyCode>{0});
  EXPECT_EQ(out, Value(7, 0));
}

TEST_F(ServiceTest, NcclConnectIsCheckedAndRefusedWithoutACluster) {
  // Malformed requests are INVALID_ARGUMENT; a well-formed one on a daemon in
  // no cluster (whatever --handoff_transport says) is FAILED_PRECONDITION.
  transport::NcclConnectRequest req{"", "node-a", 0,
                                    std::string(transport::kNcclUniqueIdBytes, 'x')};
  EXPECT_EQ(Call(RpcOp::kNcclConnect, "\x01").status().code(), StatusCode::kInvalidArgument);
  transport::NcclConnectRequest short_id = req;
  short_id.unique_id.resize(16);
  EXPECT_EQ(Call(RpcOp::kNcclConnect, transport::Encode(short_id)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Call(RpcOp::kNcclConnect, transport::Encode(req)).status().code(),
            StatusCode::kFailedPrecondition);
  ServiceOptions o;
  o.handoff_transport = HandoffTransport::kAuto;
  Make(o);
  EXPECT_EQ(Call(RpcOp::kNcclConnect, transport::Encode(req)).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(ServiceTest, NcclConnectInAClusterChecksTheTokenAndTheTransport) {
  for (HandoffTransport t : {HandoffTransport::kUcx, HandoffTransport::kAuto}) {
    ServiceOptions o;
    o.cluster_token = "tok";
    o.handoff_transport = t;
    Make(o);
    cluster::ClusterNodeOptions co;
    co.node_id = "self";
    co.cluster_token = "tok";
    cluster::ClusterNode node(co, store_.get(), [](std::vector<cluster::PeerAddress>* m) {
      m->push_back({"self", "127.0.0.1:1"});
      return true;
    });
    service_->set_cluster(&node);
    transport::NcclConnectRequest req{"wrong", "node-a", 0,
                                      std::string(transport::kNcclUniqueIdBytes, 'x')};
    EXPECT_EQ(Call(RpcOp::kNcclConnect, transport::Encode(req)).status().code(),
              StatusCode::kPermissionDenied);
    // The right token, but this daemon has no CUDA device tier (and with ucx
    // NCCL is off anyway): refused, naming the flag.
    req.cluster_token = "tok";
    Status s = Call(RpcOp::kNcclConnect, transport::Encode(req)).status();
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(s.message().find("--handoff_transport"), std::string_view::npos) << s.ToString();
    service_->set_cluster(nullptr);
  }
}

TEST(TokenGrantsTest, ParsesGrantsAndRefusesBadFiles) {
  auto g = ParseTokenGrants("# tenants\nonly-one-token\n\nteam-b-token  llama*, mistral-7b\n");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ(g->size(), 2u);
  EXPECT_TRUE((*g)[0].Covers("anything"));
  EXPECT_TRUE((*g)[1].Covers("llama-3-70b"));
  EXPECT_TRUE((*g)[1].Covers("mistral-7b"));
  EXPECT_FALSE((*g)[1].Covers("mistral-7b-v2"));
  EXPECT_FALSE((*g)[1].Covers("qwen"));
  EXPECT_FALSE(ParseTokenGrants("").ok());
  EXPECT_FALSE(ParseTokenGrants("# only a comment\n").ok());
  EXPECT_FALSE(ParseTokenGrants("same-token-x\nsame-token-x a\n").ok());
  EXPECT_FALSE(ParseTokenGrants("good-token-x ll*ama\n").ok());
}

// With --verify_commits=false a same-node commit records the client's
// checksum as is: a wrong one is accepted, and the first verified read finds
// the mismatch, drops the block and serves nothing.
TEST_F(ServiceTest, UnverifiedCommitsAreCheckedByTheFirstRead) {
  ServiceOptions o;
  o.verify_commits = false;
  Make(o);
  auto ns = Register();
  char* mem = nullptr;
  transport::SlotsResponse slots;
  transport::KeyedRequest req{ns.ns_id, ns.fingerprint, {{30, 0}, {31, 0}}};
  ASSERT_EQ(PutSecondWithWrongChecksum(ns, req, &mem, &slots),
            (std::vector<transport::KeyCode>{0, 0}));
  const std::string v0 = Value(30, 0);
  const uint64_t failures = store_->GetStats().checksum_failures;
  auto got = service_->BeginGet(caller_, transport::Encode(req));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  transport::KeyCodesResponse codes;
  ASSERT_TRUE(transport::Decode((*got)->meta, &codes).ok());
  EXPECT_EQ(codes.codes,
            (std::vector<transport::KeyCode>{0, static_cast<uint8_t>(StatusCode::kDataLoss)}));
  ASSERT_EQ((*got)->payload.size(), 1u);
  EXPECT_EQ(std::string(static_cast<const char*>((*got)->payload[0].data), kBytes), v0);
  service_->EndGet(**got);
  EXPECT_EQ(store_->GetStats().checksum_failures, failures + 1);
  EXPECT_FALSE(store_->Contains(BlockKey{ns.ns_id, 31, 0}));  // dropped, never served
  ::munmap(mem, store_->host_segment().size);
}

// A lease belongs to the connection that took it: another connection can
// neither commit nor release it, and the owner's close releases it.
TEST_F(ServiceTest, LeasesBelongToTheirConnection) {
  auto ns = Register();
  transport::KeyedRequest req{ns.ns_id, ns.fingerprint, {{20, 0}}};
  auto slots = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve, transport::Encode(req)));
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->codes[0], 0);
  caller_ = 2;
  Register();  // the same namespace, opened by connection 2
  transport::PutCommitRequest commit{ns.ns_id, ns.fingerprint, slots->lease_id, req.keys, {0}};
  EXPECT_EQ(Call(RpcOp::kPutCommit, transport::Encode(commit)).status().code(),
            StatusCode::kAborted);
  EXPECT_EQ(Call(RpcOp::kRelease, transport::Encode(transport::ReleaseRequest{slots->lease_id}))
                .status()
                .code(),
            StatusCode::kAborted);
  EXPECT_EQ(service_->stats().open_leases, 1u);
  // Lease ids are not sequential: a second lease is not the first plus one.
  auto other = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve,
            transport::Encode(transport::KeyedRequest{ns.ns_id, ns.fingerprint, {{21, 0}}})));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->lease_id, slots->lease_id + 1);
  service_->ForgetCaller(1);
  EXPECT_EQ(service_->stats().open_leases, 1u);  // connection 2's lease stays
  service_->ForgetCaller(2);
  EXPECT_EQ(service_->stats().open_leases, 0u);
  // The slot of the dead lease is free for anyone again.
  caller_ = 3;
  Register();
  EXPECT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(req), Value(20, 0))),
            std::vector<transport::KeyCode>{0});
}

TEST_F(ServiceTest, LeaseBytesPerConnectionAreBounded) {
  ServiceOptions o;
  o.max_lease_bytes_per_connection = 2 * kBytes;
  Make(o);
  auto ns = Register();
  transport::KeyedRequest req{ns.ns_id, ns.fingerprint, {{1, 0}, {2, 0}, {3, 0}}};
  auto slots = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve, transport::Encode(req)));
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(slots->codes, (std::vector<transport::KeyCode>{
                              0, 0, static_cast<uint8_t>(StatusCode::kResourceExhausted)}));
  // Another connection is not starved by the first one's leases.
  caller_ = 2;
  Register();
  auto mine = transport::DecodeAs<transport::SlotsResponse>(*Call(
      RpcOp::kPutReserve,
      transport::Encode(transport::KeyedRequest{ns.ns_id, ns.fingerprint, {{4, 0}, {5, 0}}})));
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(mine->codes, (std::vector<transport::KeyCode>{0, 0}));
  // Released bytes count no more.
  caller_ = 1;
  ASSERT_TRUE(
      Call(RpcOp::kRelease, transport::Encode(transport::ReleaseRequest{slots->lease_id})).ok());
  auto again = transport::DecodeAs<transport::SlotsResponse>(
      *Call(RpcOp::kPutReserve, transport::Encode(req)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->codes[0], 0);
  EXPECT_EQ(again->codes[1], 0);
}

// The daemon owns quota policy: re-registering never changes a namespace's
// quota, a client cannot ask above --max_quota_bytes, and the number of
// namespaces is bounded.
TEST_F(ServiceTest, QuotasAreTheDaemonsAndNamespacesAreBounded) {
  ServiceOptions o;
  o.max_quota_bytes = 4 * kBytes;
  o.max_namespaces = 2;
  Make(o);
  transport::RegisterNamespaceRequest r{"owner", "", 1, 16, kBytes, "fp16", "", 0};
  ASSERT_TRUE(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).ok());
  EXPECT_EQ(store_->GetNamespace(NamespaceSeed("owner"))->quota_bytes, 4 * kBytes);
  caller_ = 2;
  r.quota_bytes = 1;  // an attacker shrinking the owner's quota
  ASSERT_TRUE(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).ok());
  EXPECT_EQ(store_->GetNamespace(NamespaceSeed("owner"))->quota_bytes, 4 * kBytes);
  r.name = "greedy";
  r.quota_bytes = 1ull << 40;
  ASSERT_TRUE(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).ok());
  EXPECT_EQ(store_->GetNamespace(NamespaceSeed("greedy"))->quota_bytes, 4 * kBytes);
  r.name = "third";
  EXPECT_EQ(Call(RpcOp::kRegisterNamespace, transport::Encode(r)).status().code(),
            StatusCode::kResourceExhausted);
}

// A block on SSD is still served when the host tier has no free slot to
// load it into (every slot pinned): the get reads it from SSD directly
// instead of reporting a miss.
TEST_F(ServiceTest, GetServesSsdBlocksWhileTheHostTierIsFull) {
  char tmpl[] = "/tmp/kvcake-svc-ssd-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  service_.reset();
  store_.reset();
  store::TierManagerOptions o;
  o.host_capacity_bytes = 4 * kBytes;
  o.slot_bytes = kBytes;
  o.ssd_path = dir + "/ssd";
  o.ssd_capacity_bytes = 64 << 20;
  o.host_segment_name = "kvcake-service-ssd-test";
  o.host_huge_pages = false;
  o.reserve_wait_us = 1000;
  auto tm = store::TierManager::Open(o, nullptr);
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  store_ = std::move(tm).value();
  ServiceOptions so;
  so.host_segment_path = "/proc/self/fd/0";
  service_ = std::make_unique<Service>(so, store_.get());
  auto ns = Register();

  transport::KeyedRequest on_ssd{ns.ns_id, ns.fingerprint, {{1, 0}}};
  ASSERT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(on_ssd), Value(1, 0))),
            std::vector<transport::KeyCode>{0});
  ASSERT_TRUE(store_->Evict(BlockKey{ns.ns_id, 1, 0}, Tier::kSsd).ok());
  transport::KeyedRequest hot{ns.ns_id, ns.fingerprint, {{2, 0}}};
  ASSERT_EQ(Codes(Call(RpcOp::kPut, transport::Encode(hot), Value(2, 0))),
            std::vector<transport::KeyCode>{0});
  auto pins =
      transport::DecodeAs<transport::SlotsResponse>(*Call(RpcOp::kGetPin, transport::Encode(hot)));
  ASSERT_TRUE(pins.ok());
  ASSERT_EQ(pins->codes[0], 0);
  // The host tier shrinks to the one (pinned) slot: nothing can be loaded.
  ASSERT_TRUE(store_->SetCapacity(Tier::kHost, kBytes).ok());
  ASSERT_FALSE(store_->Pin(BlockKey{ns.ns_id, 1, 0}).ok());

  auto got = service_->BeginGet(caller_, transport::Encode(on_ssd));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  transport::KeyCodesResponse codes;
  ASSERT_TRUE(transport::Decode((*got)->meta, &codes).ok());
  ASSERT_EQ(codes.codes, std::vector<transport::KeyCode>{0});
  ASSERT_EQ((*got)->payload.size(), 1u);
  EXPECT_EQ(std::string(static_cast<const char*>((*got)->payload[0].data), kBytes), Value(1, 0));
  service_->EndGet(**got);
  service_.reset();
  store_.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvcake::daemon
