// Unit tests of the op-level payload codecs (transport/messages.h).

#include "transport/messages.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace kvcake::transport {
namespace {

template <typename T>
T RoundTrip(const T& m) {
  std::string bytes = Encode(m);
  T out;
  Status s = Decode(bytes, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Every strict prefix and every extension by one byte must be refused,
// except the prefix that ends before `optional_tail` trailing bytes (the
// older message without its optional last field).
template <typename T>
void ExpectTruncationsRefused(const T& m, size_t optional_tail = 0) {
  std::string bytes = Encode(m);
  for (size_t n = 0; n < bytes.size(); ++n) {
    T out;
    Status s = Decode(std::string_view(bytes).substr(0, n), &out);
    if (optional_tail > 0 && n == bytes.size() - optional_tail) {
      EXPECT_TRUE(s.ok()) << "prefix " << n << ": " << s.ToString();
      continue;
    }
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "prefix " << n;
  }
  T out;
  EXPECT_EQ(Decode(bytes + "x", &out).code(), StatusCode::kInvalidArgument);
}

RegisterNamespaceRequest SampleRegister() {
  RegisterNamespaceRequest m;
  m.name = "llama-3-8b";
  m.token = "secret";
  m.num_layers = 32;
  m.block_tokens = 16;
  m.layer_block_bytes = 65536;
  m.kv_dtype = "fp16";
  m.layout = "NHD;tp=1";
  m.quota_bytes = 1 << 30;
  return m;
}

// An ncclUniqueId's worth of bytes, zeros included.
std::string SampleNcclId() {
  std::string id(kNcclUniqueIdBytes, '\0');
  for (size_t i = 0; i < id.size(); i += 3) id[i] = static_cast<char>(i * 7);
  return id;
}

TEST(MessagesTest, RoundTripsEveryMessage) {
  EXPECT_EQ(RoundTrip(PingRequest{42}), PingRequest{42});
  PingResponse pong{7, "0.1.0", "/proc/1/fd/3", 1 << 20, 77, 1, "/proc/1/fd/4", 1 << 21, 78};
  EXPECT_EQ(RoundTrip(pong), pong);
  PingResponse cuda{7, "0.1.0", "", 0, 0, 2, std::string(64, '\0'), 1 << 30, 0};
  EXPECT_EQ(RoundTrip(cuda), cuda);
  EXPECT_EQ(RoundTrip(SampleRegister()), SampleRegister());
  RegisterNamespaceResponse rr{1, 2, 1};
  EXPECT_EQ(RoundTrip(rr), rr);
  LookupPrefixRequest lk{5, 6, 3, {1, 2, 3, 0xffffffffffffffffull}, kLookupLocalOnly};
  EXPECT_EQ(RoundTrip(lk), lk);
  EXPECT_EQ(RoundTrip(LookupPrefixResponse{3}), LookupPrefixResponse{3});
  LookupPrefixResponse remote{9, 4, "node-b"};
  EXPECT_EQ(RoundTrip(remote), remote);
  DirectoryPublishRequest pub{"secret", "node-a", 0, {{5, 1, 0, {1, 2}}, {5, 7, 31, {7}}}};
  EXPECT_EQ(RoundTrip(pub), pub);
  DirectoryLookupRequest dl{"secret", "node-c", 5, 2, {1, 2, 3}};
  EXPECT_EQ(RoundTrip(dl), dl);
  DirectoryLookupResponse dr{"node-a", 2};
  EXPECT_EQ(RoundTrip(dr), dr);
  LookupPrefixResponse holders{9, 4, "node-b", {{"node-b", 9}, {"node-a", 2}}};
  EXPECT_EQ(RoundTrip(holders), holders);
  DirectoryLookupRequest dl_all{"secret", "node-c", 5, 2, {1, 2, 3}, 1};
  EXPECT_EQ(RoundTrip(dl_all), dl_all);
  DirectoryLookupResponse dr_all{"node-a", 3, {{"node-a", 3}, {"node-b", 1}}};
  EXPECT_EQ(RoundTrip(dr_all), dr_all);
  KeyedRequest put{5, 6, {{11, 0}, {12, 31}}};
  EXPECT_EQ(RoundTrip(put), put);
  KeyedRequest rooted{5, 6, {{11, 0}, {12, 31}}, {11, 0}};
  EXPECT_EQ(RoundTrip(rooted), rooted);
  KeyedRequest handoff{5, 6, {{11, 0}, {12, 31}}, {}, "node-b", 77, 64};
  KeyedRequest pushed{5, 6, {{11, 0}}, {}, "node-b", 77, 64, "node-a"};
  EXPECT_EQ(RoundTrip(pushed), pushed);
  EXPECT_EQ(RoundTrip(handoff), handoff);
  EXPECT_EQ(RoundTrip(HandoffWaitRequest{77, 2000}), (HandoffWaitRequest{77, 2000}));
  NcclConnectRequest nccl{"secret", "node-a", 3, SampleNcclId()};
  EXPECT_EQ(RoundTrip(nccl), nccl);
  EXPECT_EQ(RoundTrip(NcclConnectResponse{kMaxCudaDevice}), NcclConnectResponse{kMaxCudaDevice});
  HandoffNoticeRequest announce{"t", "node-a", 5, 77, 64, 0, "", {{11, 0}, {12, 0}}};
  EXPECT_EQ(RoundTrip(announce), announce);
  HandoffNoticeRequest failed{"t", "node-a", 5, 77, 64, 10, "engine gone", {}};
  EXPECT_EQ(RoundTrip(failed), failed);
  HandoffAbortRequest abort{5, 6, 77, "request cancelled"};
  EXPECT_EQ(RoundTrip(abort), abort);
  KeyCodesResponse codes{{0, 5, 6}};
  EXPECT_EQ(RoundTrip(codes), codes);
  KeyCodesResponse summed{{0, 5, 0}, {0x1234, 0x5678}};
  EXPECT_EQ(RoundTrip(summed), summed);
  KeyCodesResponse too_many{{0}, {1, 2}};
  KeyCodesResponse tout;
  EXPECT_EQ(Decode(Encode(too_many), &tout).code(), StatusCode::kInvalidArgument);
  ReportStatsRequest rs{5, 6, 2, 1.5, {1, 2}, {0.25, 3.0}, 1};
  EXPECT_EQ(RoundTrip(rs), rs);
  EXPECT_EQ(RoundTrip(DeleteResponse{2}), DeleteResponse{2});
  SlotsResponse slots{9, 30000000, {0, 5}, {4096, 0}, {0, 1}, {0x1234, 0}};
  EXPECT_EQ(RoundTrip(slots), slots);
  PutCommitRequest pc{5, 6, 9, {{11, 0}}, {0xabcdef}};
  EXPECT_EQ(RoundTrip(pc), pc);
  EXPECT_EQ(RoundTrip(ReleaseRequest{9}), ReleaseRequest{9});
  ErrorResponse err{static_cast<uint8_t>(StatusCode::kNotFound), "nope"};
  EXPECT_EQ(RoundTrip(err), err);
  EXPECT_EQ(Encode(EmptyResponse{}), "");
}

TEST(MessagesTest, TruncatedOrExtendedMessagesAreRefused) {
  ExpectTruncationsRefused(SampleRegister(), /*optional_tail=*/1);  // serving
  ExpectTruncationsRefused(LookupPrefixRequest{5, 6, 3, {1, 2, 3}});
  ExpectTruncationsRefused(KeyedRequest{5, 6, {{11, 0}, {12, 1}}});
  ExpectTruncationsRefused(ReportStatsRequest{5, 6, 2, 1.5, {1, 2}, {0.25, 3.0}, 1});
  ExpectTruncationsRefused(SlotsResponse{9, 1000, {0, 5}, {4096, 0}, {1, 1}, {7, 8}});
  ExpectTruncationsRefused(PutCommitRequest{5, 6, 9, {{11, 0}}, {1}});
  ExpectTruncationsRefused(PingResponse{7, "v", "seg", 1, 2, 1, "dev", 3, 4});
  ExpectTruncationsRefused(LookupPrefixResponse{9, 4, "node-b"});
  ExpectTruncationsRefused(DirectoryPublishRequest{"t", "a", 1, {{5, 1, 0, {1, 2}}}});
  ExpectTruncationsRefused(DirectoryLookupRequest{"t", "c", 5, 2, {1, 2, 3}});
  ExpectTruncationsRefused(DirectoryLookupResponse{"node-a", 2});
  // The holder lists and the all-holders flag are optional trailing fields:
  // a message cut right before one is an answer or request without it.
  ExpectTruncationsRefused(LookupPrefixResponse{9, 4, "node-b", {{"node-b", 9}}},
                           /*optional_tail=*/4 + 4 + 6 + 4);
  ExpectTruncationsRefused(DirectoryLookupRequest{"t", "c", 5, 2, {1, 2, 3}, 1},
                           /*optional_tail=*/1);
  ExpectTruncationsRefused(DirectoryLookupResponse{"node-a", 2, {{"node-a", 2}}},
                           /*optional_tail=*/4 + 4 + 6 + 4);
  ExpectTruncationsRefused(KeyedRequest{5, 6, {{11, 0}}, {11}, "node-b", 77, 64});
  ExpectTruncationsRefused(HandoffWaitRequest{77, 2000});
  ExpectTruncationsRefused(NcclConnectRequest{"t", "a", 1, SampleNcclId()});
  ExpectTruncationsRefused(NcclConnectResponse{2});
}

TEST(MessagesTest, NcclConnectLimits) {
  // The id is exactly an ncclUniqueId; the sender is named; device ordinals
  // are bounded.
  NcclConnectRequest out;
  auto code = [&](const NcclConnectRequest& m) { return Decode(Encode(m), &out).code(); };
  EXPECT_EQ(code(NcclConnectRequest{"t", "a", 0, SampleNcclId().substr(1)}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(NcclConnectRequest{"t", "a", 0, SampleNcclId() + "x"}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(NcclConnectRequest{"t", "a", 0, ""}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(NcclConnectRequest{"t", "", 0, SampleNcclId()}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(NcclConnectRequest{"t", "a", kMaxCudaDevice + 1, SampleNcclId()}),
            StatusCode::kInvalidArgument);
  Status s = Decode(Encode(NcclConnectRequest{"t", "a", 0, "short"}), &out);
  EXPECT_NE(s.message().find("unique_id"), std::string_view::npos) << s.ToString();
  EXPECT_TRUE(
      Decode(Encode(NcclConnectRequest{"", "a", kMaxCudaDevice, SampleNcclId()}), &out).ok());
  NcclConnectResponse rout;
  EXPECT_EQ(Decode(Encode(NcclConnectResponse{kMaxCudaDevice + 1}), &rout).code(),
            StatusCode::kInvalidArgument);
  ExpectTruncationsRefused(HandoffNoticeRequest{"t", "a", 5, 77, 64, 0, "", {{11, 0}}});
  ExpectTruncationsRefused(HandoffAbortRequest{5, 6, 77, "why"});
}

TEST(MessagesTest, HandoffFieldLimits) {
  // A target needs a hand-off id and a block count in range; without a
  // target both must be 0; a wait names a hand-off and a bounded timeout.
  KeyedRequest kout;
  auto code = [&](const KeyedRequest& k) { return Decode(Encode(k), &kout).code(); };
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, "b", 0, 4}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, "b", 7, 0}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, "b", 7, kMaxHandoffBlocks + 1}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, "", 7, 0}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, "", 0, 4}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(KeyedRequest{1, 2, {{1, 0}}, {}, std::string(kMaxNodeIdBytes + 1, 'n'), 7, 4}),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      Decode(Encode(KeyedRequest{1, 2, {{1, 0}}, {}, "b", 7, kMaxHandoffBlocks}), &kout).ok());
  HandoffWaitRequest wout;
  EXPECT_EQ(Decode(Encode(HandoffWaitRequest{0, 10}), &wout).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(HandoffWaitRequest{1, kMaxHandoffWaitMs + 1}), &wout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Decode(Encode(HandoffWaitRequest{1, kMaxHandoffWaitMs}), &wout).ok());
  // A notice names a hand-off with a block count in range; an announce
  // carries keys, a failure (a status code) none.
  HandoffNoticeRequest nout;
  auto notice = [&](const HandoffNoticeRequest& n) { return Decode(Encode(n), &nout).code(); };
  EXPECT_EQ(notice({"t", "a", 5, 0, 4, 0, "", {{1, 0}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 0, 0, "", {{1, 0}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, kMaxHandoffBlocks + 1, 0, "", {{1, 0}}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 0, "", {}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 10, "gone", {{1, 0}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 17, "", {}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 10, std::string(kMaxNameBytes + 1, 'm'), {}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 0, "", {{1, 0}}}), StatusCode::kOk);
  EXPECT_EQ(notice({"t", "a", 5, 7, 4, 14, "member left", {}}), StatusCode::kOk);
  // A pushed put names its source only with a target, and not empty.
  KeyedRequest pout;
  std::string pushed = Encode(KeyedRequest{5, 6, {{1, 0}}, {}, "b", 7, 4, "a"});
  EXPECT_TRUE(Decode(pushed, &pout).ok());
  EXPECT_EQ(pout.source_node, "a");
  EXPECT_EQ(Decode(pushed.substr(0, pushed.size() - 1), &pout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(KeyedRequest{5, 6, {{1, 0}}, {}, "", 0, 0, "a"}), &pout).code(),
            StatusCode::kInvalidArgument);
  std::string empty_source = Encode(KeyedRequest{5, 6, {{1, 0}}, {}, "b", 7, 4});
  empty_source.append(4, '\0');  // a zero-length string
  EXPECT_EQ(Decode(empty_source, &pout).code(), StatusCode::kInvalidArgument);
  // An abort names a hand-off and says why in a bounded message.
  HandoffAbortRequest aout;
  EXPECT_EQ(Decode(Encode(HandoffAbortRequest{5, 6, 0, ""}), &aout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(HandoffAbortRequest{5, 6, 7, std::string(kMaxNameBytes + 1, 'm')}), &aout)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Decode(Encode(HandoffAbortRequest{5, 6, 7, ""}), &aout).ok());
}

TEST(MessagesTest, ClusterMessageLimits) {
  // A local prefix longer than the whole prefix, unknown lookup flags, an
  // empty holder or publish, and an out-of-range withdraw flag are refused.
  LookupPrefixResponse bad{2, 3, ""};
  LookupPrefixResponse bout;
  EXPECT_EQ(Decode(Encode(bad), &bout).code(), StatusCode::kInvalidArgument);
  LookupPrefixRequest flags{1, 2, 0, {1}, 0x80};
  LookupPrefixRequest fout;
  EXPECT_EQ(Decode(Encode(flags), &fout).code(), StatusCode::kInvalidArgument);
  DirectoryPublishRequest pout;
  EXPECT_EQ(Decode(Encode(DirectoryPublishRequest{"t", "", 0, {{1, 1, 0, {1}}}}), &pout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(DirectoryPublishRequest{"t", "a", 0, {}}), &pout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(DirectoryPublishRequest{"t", "a", 2, {{1, 1, 0, {1}}}}), &pout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(DirectoryPublishRequest{"t", "a", 0, {{1, 1, 0, {}}}}), &pout).code(),
            StatusCode::kInvalidArgument);
  KeyedRequest kout;
  EXPECT_EQ(Decode(Encode(KeyedRequest{1, 2, {{1, 0}, {2, 0}}, {1}}), &kout).code(),
            StatusCode::kInvalidArgument);
  DirectoryLookupRequest lout;
  EXPECT_EQ(Decode(Encode(DirectoryLookupRequest{"t", "c", 5, 0, {}}), &lout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(DirectoryLookupRequest{"t", "c", 5, 0, {1}, 2}), &lout).code(),
            StatusCode::kInvalidArgument);
  // A holder with no name or an empty prefix, and an empty list sent
  // explicitly (an encoder leaves it out), are refused.
  LookupPrefixResponse hout;
  EXPECT_EQ(Decode(Encode(LookupPrefixResponse{1, 0, "b", {{"", 1}}}), &hout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(LookupPrefixResponse{1, 0, "b", {{"b", 0}}}), &hout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(Encode(LookupPrefixResponse{1, 0, "b"}) + std::string(4, '\0'), &hout).code(),
            StatusCode::kInvalidArgument);
  DirectoryLookupResponse dout;
  EXPECT_EQ(Decode(Encode(DirectoryLookupResponse{"a", 1, {{"a", 0}}}), &dout).code(),
            StatusCode::kInvalidArgument);
}

TEST(MessagesTest, RegisterServingIsOptionalAndChecked) {
  RegisterNamespaceRequest m = SampleRegister();
  m.serving = 1;
  EXPECT_EQ(RoundTrip(m), m);
  // An older client's request ends after quota_bytes: exact serving (0).
  std::string old = Encode(SampleRegister());
  old.pop_back();
  RegisterNamespaceRequest out;
  out.serving = 1;
  ASSERT_TRUE(Decode(old, &out).ok());
  EXPECT_EQ(out.serving, 0);
  EXPECT_EQ(out, SampleRegister());
  m.serving = kMaxServing + 1;
  Status s = Decode(Encode(m), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("serving"), std::string_view::npos) << s.ToString();
}

TEST(MessagesTest, FieldLimitsAreEnforced) {
  RegisterNamespaceRequest m = SampleRegister();
  RegisterNamespaceRequest out;
  m.name = "";
  EXPECT_EQ(Decode(Encode(m), &out).code(), StatusCode::kInvalidArgument);
  m = SampleRegister();
  m.name.assign(kMaxNameBytes + 1, 'a');
  Status s = Decode(Encode(m), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("name"), std::string_view::npos) << s.ToString();
  m = SampleRegister();
  m.num_layers = 0;
  s = Decode(Encode(m), &out);
  EXPECT_NE(s.message().find("num_layers"), std::string_view::npos) << s.ToString();
  m = SampleRegister();
  m.layer_block_bytes = kMaxLayerBlockBytes + 1;
  EXPECT_EQ(Decode(Encode(m), &out).code(), StatusCode::kInvalidArgument);
  m = SampleRegister();
  m.block_tokens = 0;
  EXPECT_EQ(Decode(Encode(m), &out).code(), StatusCode::kInvalidArgument);

  // Empty and oversized batches.
  KeyedRequest k{1, 2, {}};
  KeyedRequest kout;
  EXPECT_EQ(Decode(Encode(k), &kout).code(), StatusCode::kInvalidArgument);
  k.keys.resize(kMaxBatchBlocks + 1);
  s = Decode(Encode(k), &kout);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("keys"), std::string_view::npos) << s.ToString();
  k.keys.resize(kMaxBatchBlocks);
  EXPECT_TRUE(Decode(Encode(k), &kout).ok());
  // Layer out of range.
  k.keys.assign(1, BlockRef{1, kMaxLayers});
  EXPECT_EQ(Decode(Encode(k), &kout).code(), StatusCode::kInvalidArgument);

  // Non-finite or negative statistics.
  ReportStatsRequest rs{5, 6, 2, std::nan(""), {1}, {0.5}, 1};
  ReportStatsRequest rsout;
  EXPECT_EQ(Decode(Encode(rs), &rsout).code(), StatusCode::kInvalidArgument);
  rs.preference = -1;
  EXPECT_EQ(Decode(Encode(rs), &rsout).code(), StatusCode::kInvalidArgument);
  rs.preference = 1;
  rs.block_scores = {std::numeric_limits<double>::infinity()};
  EXPECT_EQ(Decode(Encode(rs), &rsout).code(), StatusCode::kInvalidArgument);
  rs.block_scores = {1, 2};  // length mismatch
  EXPECT_EQ(Decode(Encode(rs), &rsout).code(), StatusCode::kInvalidArgument);

  // Mismatched parallel arrays.
  PutCommitRequest pc{5, 6, 9, {{11, 0}, {12, 0}}, {1}};
  PutCommitRequest pcout;
  EXPECT_EQ(Decode(Encode(pc), &pcout).code(), StatusCode::kInvalidArgument);
  SlotsResponse sr{9, 1000, {0, 0}, {1}, {1, 1}, {0, 0}};
  SlotsResponse srout;
  EXPECT_EQ(Decode(Encode(sr), &srout).code(), StatusCode::kInvalidArgument);
  sr = SlotsResponse{9, 1000, {0, 0}, {1, 2}, {1}, {0, 0}};  // tiers too short
  EXPECT_EQ(Decode(Encode(sr), &srout).code(), StatusCode::kInvalidArgument);
  sr = SlotsResponse{9, 1000, {0, 0}, {1, 2}, {1, 2}, {0, 0}};  // SSD is no segment
  EXPECT_EQ(Decode(Encode(sr), &srout).code(), StatusCode::kInvalidArgument);
  sr = SlotsResponse{9, 1000, {0, 0}, {1, 2}, {1, 1}, {0}};  // checksums too short
  EXPECT_EQ(Decode(Encode(sr), &srout).code(), StatusCode::kInvalidArgument);
  PingResponse bad_kind{7, "v", "", 0, 0, 3, "", 0, 0};
  PingResponse pong_out;
  EXPECT_EQ(Decode(Encode(bad_kind), &pong_out).code(), StatusCode::kInvalidArgument);
  // Unknown per-key status code.
  KeyCodesResponse kc{{200}};
  KeyCodesResponse kcout;
  EXPECT_EQ(Decode(Encode(kc), &kcout).code(), StatusCode::kInvalidArgument);
}

TEST(MessagesTest, HugeCountsAreRefusedBeforeAllocating) {
  // A count of 2^32-1 hashes in a 30-byte message must not allocate 32 GiB.
  std::string bytes = Encode(LookupPrefixRequest{1, 2, 0, {}});
  bytes[20] = bytes[21] = bytes[22] = bytes[23] = '\xff';
  LookupPrefixRequest out;
  Status s = Decode(bytes, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

// Random inputs of 0..63 bytes. Each of these messages carries at least two
// u32 length / count fields that must match the rest of the input exactly
// (a decode consumes every byte): KeyedRequest its key count, root count and
// node id length; RegisterNamespaceRequest four string lengths;
// ReportStatsRequest two counts; SlotsResponse four counts. In a message
// under 64 bytes each such field must be below 64, which a random u32 is
// with probability 2^-26, so a random input decodes with probability below
// 2^-52 per message: over these 80,000 decodes the expected number is below
// 2^-35. Any decode means a decoder accepts bytes its format does not allow.
TEST(MessagesTest, RandomBytesNeverCrashAndRarelyDecode) {
  std::mt19937_64 rng(1234);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    KeyedRequest k;
    RegisterNamespaceRequest r;
    ReportStatsRequest rs;
    SlotsResponse sl;
    decoded += Decode(bytes, &k).ok();
    decoded += Decode(bytes, &r).ok();
    decoded += Decode(bytes, &rs).ok();
    decoded += Decode(bytes, &sl).ok();
  }
  EXPECT_EQ(decoded, 0);
}

TEST(MessagesTest, ErrorResponseMapsStatus) {
  Status s = NotFoundError("no such namespace");
  Status back = FromErrorResponse(ToErrorResponse(s));
  EXPECT_EQ(back, s);
  EXPECT_EQ(FromErrorResponse(ErrorResponse{0, ""}).code(), StatusCode::kInternal);
  EXPECT_EQ(RpcOpName(static_cast<uint16_t>(RpcOp::kGet)), "GET");
  EXPECT_EQ(RpcOpName(static_cast<uint16_t>(RpcOp::kNcclConnect)), "NCCL_CONNECT");
  EXPECT_EQ(RpcOpName(999), "UNKNOWN");
}

}  // namespace
}  // namespace kvcake::transport
