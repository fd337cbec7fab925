// The parts of the NCCL hand-off channel (transport/nccl_channel.h) that need
// no GPU: option checks, the size handshake and the build without CUDA. This
// test compiles the stub implementation itself, so it runs in every build.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "transport/nccl_channel.h"

namespace kvcake::transport {
namespace {

TEST(NcclChannelTest, OptionsAreValidated) {
  EXPECT_TRUE(NcclChannelOptions{}.Validate().ok());
  NcclChannelOptions o;
  o.init_timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = NcclChannelOptions{};
  o.transfer_timeout = std::chrono::milliseconds(-1);
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = NcclChannelOptions{};
  o.poll_interval = std::chrono::milliseconds(0);
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o = NcclChannelOptions{};
  o.max_group_buffers = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(NcclChannelTest, SizeHandshakeAcceptsOnlyExactSizes) {
  char a[16], b[32];
  const std::vector<MutableBuffer> into = {{a, sizeof a}, {b, sizeof b}};
  const std::vector<uint64_t> same = {16, 32};
  EXPECT_TRUE(CheckAnnouncedSizes(same, into, 8).ok());

  const std::vector<uint64_t> bigger = {16, 33};
  Status s = CheckAnnouncedSizes(bigger, into, 8);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("buffer 1 announced 33 bytes, 32"), std::string_view::npos)
      << s.ToString();
  const std::vector<uint64_t> smaller = {15, 32};
  EXPECT_EQ(CheckAnnouncedSizes(smaller, into, 8).code(), StatusCode::kInvalidArgument);
  const std::vector<uint64_t> fewer = {16};
  s = CheckAnnouncedSizes(fewer, into, 8);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1 buffers announced, 2"), std::string_view::npos) << s.ToString();
  const std::vector<uint64_t> more = {16, 32, 8};
  EXPECT_EQ(CheckAnnouncedSizes(more, into, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckAnnouncedSizes({}, {}, 8).code(), StatusCode::kInvalidArgument);
  // An empty buffer is refused even when both sides agree on it.
  const std::vector<MutableBuffer> empty = {{a, 0}};
  const std::vector<uint64_t> zero = {0};
  EXPECT_EQ(CheckAnnouncedSizes(zero, empty, 8).code(), StatusCode::kInvalidArgument);
  // More buffers than a group may hold.
  EXPECT_EQ(CheckAnnouncedSizes(same, into, 1).code(), StatusCode::kInvalidArgument);
}

TEST(NcclChannelTest, StubAnswersUnimplemented) {
  // This binary links the stub (nccl_channel_stub.cc), as a build without
  // CUDA does.
  EXPECT_FALSE(NcclCommPool::Built());
  NcclCommPool pool;
  const NcclPeer peer{0, "node-b", 0};
  bool exchanged = false;
  auto exchange = [&](const NcclUniqueId&) {
    exchanged = true;
    return Status::Ok();
  };
  auto announce = [&](std::span<const uint64_t>) { return Status::Ok(); };
  EXPECT_EQ(pool.Connect(peer, exchange).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(pool.Join(peer, NcclUniqueId{}).code(), StatusCode::kUnimplemented);
  char buf[8] = {};
  const std::vector<ConstBuffer> src = {{buf, sizeof buf}};
  const std::vector<MutableBuffer> dst = {{buf, sizeof buf}};
  const std::vector<uint64_t> sizes = {sizeof buf};
  Status s = pool.Send(peer, src, exchange, announce);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("built without CUDA"), std::string_view::npos) << s.ToString();
  EXPECT_EQ(pool.Receive(peer, sizes, dst).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(pool.Loopback(0, src, dst).code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(exchanged);
  pool.Drop(peer);
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.stats().comms_created, 0u);
}

}  // namespace
}  // namespace kvcake::transport
