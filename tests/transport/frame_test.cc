#include "transport/frame.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

namespace kvcake::transport {
namespace {

FrameHeader Sample() {
  FrameHeader h;
  h.opcode = 4;
  h.flags = kFlagResponse;
  h.status = StatusCode::kResourceExhausted;
  h.request_id = 0x0102030405060708ull;
  h.payload_size = 1ull << 22;
  h.meta_size = 17;
  return h;
}

std::vector<uint8_t> Encoded(const FrameHeader& h) {
  std::vector<uint8_t> b(kFrameHeaderSize);
  EncodeFrameHeader(h, b.data());
  return b;
}

void PutLe(std::vector<uint8_t>& b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Recomputes the documented checksum (XXH32 seed 0 over bytes [0,36)) after a
// test edits a field, so the decoder reaches the field check.
void Reseal(std::vector<uint8_t>& b) { PutLe(b, 36, XXH32(b.data(), 36, 0), 4); }

TEST(FrameTest, RoundTrip) {
  const FrameHeader h = Sample();
  auto b = Encoded(h);
  auto d = DecodeFrameHeader(b);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, h);
}

TEST(FrameTest, DocumentedLittleEndianLayout) {
  auto b = Encoded(Sample());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 4), "KVCK");
  EXPECT_EQ(b[4], 1);  // version
  EXPECT_EQ(b[5], 0);
  EXPECT_EQ(b[6], 4);  // opcode
  EXPECT_EQ(b[8], kFlagResponse);
  EXPECT_EQ(b[12], static_cast<uint8_t>(StatusCode::kResourceExhausted));
  EXPECT_EQ(b[16], 0x08);  // request id, least significant byte first
  EXPECT_EQ(b[23], 0x01);
  EXPECT_EQ(b[24 + 2], 0x40);  // payload 1<<22
  EXPECT_EQ(b[32], 17);        // meta size
  const uint32_t c = XXH32(b.data(), 36, 0);
  EXPECT_EQ(b[36], static_cast<uint8_t>(c));
  EXPECT_EQ(b[39], static_cast<uint8_t>(c >> 24));
}

TEST(FrameTest, ShortBuffers) {
  auto b = Encoded(Sample());
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{39}}) {
    auto d = DecodeFrameHeader(std::span<const uint8_t>(b.data(), n));
    ASSERT_FALSE(d.ok()) << n;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << n;
    EXPECT_NE(d.status().message().find("too short"), std::string_view::npos);
  }
}

TEST(FrameTest, BadMagic) {
  auto b = Encoded(Sample());
  b[0] ^= 0xff;
  auto d = DecodeFrameHeader(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("magic"), std::string_view::npos);
}

TEST(FrameTest, UnsupportedVersionIsClear) {
  FrameHeader h = Sample();
  h.version = 7;
  auto b = Encoded(h);
  auto d = DecodeFrameHeader(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(d.status().message(), "unsupported wire version 7 (this build speaks 1)");
  // Version is reported even from a truncated (8-byte) prefix.
  auto d8 = DecodeFrameHeader(std::span<const uint8_t>(b.data(), 8));
  EXPECT_EQ(d8.status().code(), StatusCode::kUnimplemented);
}

TEST(FrameTest, ChecksumCoversEveryHeaderByte) {
  const auto good = Encoded(Sample());
  for (size_t i = 4; i < kFrameHeaderSize; ++i) {
    if (i == 4 || i == 5) continue;  // version is checked before the checksum
    auto b = good;
    b[i] ^= 0x10;
    auto d = DecodeFrameHeader(b);
    ASSERT_FALSE(d.ok()) << "byte " << i;
    EXPECT_NE(d.status().message().find("checksum"), std::string_view::npos) << i;
  }
}

TEST(FrameTest, UnknownFlags) {
  auto b = Encoded(Sample());
  PutLe(b, 8, kFlagResponse | (1u << 7), 4);
  Reseal(b);
  auto d = DecodeFrameHeader(b);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("unknown frame flags 0x80"), std::string_view::npos)
      << d.status().ToString();
}

TEST(FrameTest, OpcodeRange) {
  for (uint32_t op : {0u, uint32_t{kMaxOpcode} + 1, 0xffffu}) {
    auto b = Encoded(Sample());
    PutLe(b, 6, op, 2);
    Reseal(b);
    auto d = DecodeFrameHeader(b);
    ASSERT_FALSE(d.ok()) << op;
    EXPECT_NE(d.status().message().find("opcode"), std::string_view::npos);
  }
  auto b = Encoded(Sample());
  PutLe(b, 6, kMaxOpcode, 2);
  Reseal(b);
  EXPECT_TRUE(DecodeFrameHeader(b).ok());
  // Control frames have their own, smaller range.
  FrameHeader c = Sample();
  c.flags |= kFlagControl;
  c.opcode = kMaxControlOpcode;
  EXPECT_TRUE(DecodeFrameHeader(Encoded(c)).ok());
  c.opcode = kMaxControlOpcode + 1;
  EXPECT_FALSE(DecodeFrameHeader(Encoded(c)).ok());
}

TEST(FrameTest, StatusRangeAndRequestsCarryNoStatus) {
  auto b = Encoded(Sample());
  PutLe(b, 12, 17, 4);
  Reseal(b);
  EXPECT_FALSE(DecodeFrameHeader(b).ok());
  FrameHeader req = Sample();
  req.flags = 0;  // a request
  EXPECT_FALSE(DecodeFrameHeader(Encoded(req)).ok());
  req.status = StatusCode::kOk;
  EXPECT_TRUE(DecodeFrameHeader(Encoded(req)).ok());
  FrameHeader resp = Sample();
  resp.status = StatusCode::kUnauthenticated;  // highest code
  EXPECT_TRUE(DecodeFrameHeader(Encoded(resp)).ok());
}

TEST(FrameTest, LengthLimits) {
  FrameLimits limits;
  limits.max_meta_bytes = 16;
  limits.max_payload_bytes = 1000;
  FrameHeader h = Sample();
  h.payload_size = 1000;
  h.meta_size = 16;
  EXPECT_TRUE(DecodeFrameHeader(Encoded(h), limits).ok());
  h.meta_size = 17;
  auto d = DecodeFrameHeader(Encoded(h), limits);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "frame meta_size 17 exceeds limit 16");
  h.meta_size = 16;
  h.payload_size = 1001;
  d = DecodeFrameHeader(Encoded(h), limits);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "frame payload_size 1001 exceeds limit 1000");
  h.payload_size = ~0ull;
  EXPECT_FALSE(DecodeFrameHeader(Encoded(h)).ok());
}

TEST(FrameTest, WholeFrame) {
  FrameHeader h;
  h.opcode = 9;
  h.request_id = 42;
  const std::string meta = "meta!";
  const std::string payload(1000, 'p');
  auto bytes = EncodeFrame(
      h, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(meta.data()), meta.size()),
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  ASSERT_EQ(bytes.size(), kFrameHeaderSize + meta.size() + payload.size());
  auto v = DecodeFrame(bytes);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->header.request_id, 42u);
  EXPECT_EQ(std::string(v->meta.begin(), v->meta.end()), meta);
  EXPECT_EQ(std::string(v->payload.begin(), v->payload.end()), payload);
  // One byte missing or extra.
  EXPECT_FALSE(DecodeFrame(std::span<const uint8_t>(bytes.data(), bytes.size() - 1)).ok());
  bytes.push_back(0);
  EXPECT_FALSE(DecodeFrame(bytes).ok());
}

TEST(FrameTest, FrameHeadMustMatchMetaSize) {
  FrameHeader h;
  h.opcode = 1;
  h.payload_size = 5;  // payload travels separately
  const uint8_t meta[3] = {1, 2, 3};
  auto head = EncodeFrame(h, meta);
  auto d = DecodeFrameHead(head);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->meta_size, 3u);
  EXPECT_EQ(d->payload_size, 5u);
  head.pop_back();
  EXPECT_FALSE(DecodeFrameHead(head).ok());
}

TEST(FrameTest, MetaInDataHeadIsHeaderOnly) {
  FrameHeader h;
  h.opcode = 4;
  h.flags = kFlagMetaInData;
  h.meta_size = 100000;
  h.payload_size = 7;
  std::vector<uint8_t> head(kFrameHeaderSize);
  EncodeFrameHeader(h, head.data());
  auto d = DecodeFrameHead(head);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->meta_in_data());
  EXPECT_EQ(d->data_size(), 100007u);
  head.push_back(0);  // inline bytes are not allowed with the flag
  EXPECT_FALSE(DecodeFrameHead(head).ok());
}

TEST(FrameTest, LimitsValidate) {
  FrameLimits l;
  EXPECT_TRUE(l.Validate().ok());
  l.max_meta_bytes = 0;
  EXPECT_FALSE(l.Validate().ok());
}

}  // namespace
}  // namespace kvcake::transport
