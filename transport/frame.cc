#include "transport/frame.h"

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace kvcake::transport {
namespace {

constexpr size_t kChecksumOffset = 36;

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t HeaderChecksum(const uint8_t* p) { return XXH32(p, kChecksumOffset, 0); }

}  // namespace

Status FrameLimits::Validate() const {
  if (max_meta_bytes == 0) return InvalidArgumentError("FrameLimits.max_meta_bytes must be > 0");
  if (max_meta_bytes > (64u << 20)) {
    return InvalidArgumentError("FrameLimits.max_meta_bytes must be <= 64 MiB");
  }
  return Status::Ok();
}

void EncodeFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]) {
  PutU32(out + 0, kFrameMagic);
  PutU16(out + 4, h.version);
  PutU16(out + 6, h.opcode);
  PutU32(out + 8, h.flags);
  PutU32(out + 12, static_cast<uint32_t>(h.status));
  PutU64(out + 16, h.request_id);
  PutU64(out + 24, h.payload_size);
  PutU32(out + 32, h.meta_size);
  PutU32(out + kChecksumOffset, HeaderChecksum(out));
}

Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes, const FrameLimits& limits) {
  if (bytes.size() < 8) {
    return InvalidArgumentError("frame too short: " + std::to_string(bytes.size()) +
                                " bytes, header needs " + std::to_string(kFrameHeaderSize));
  }
  const uint8_t* p = bytes.data();
  const uint32_t magic = GetU32(p);
  if (magic != kFrameMagic) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "bad frame magic 0x%08x (expected 0x%08x)", magic, kFrameMagic);
    return InvalidArgumentError(buf);
  }
  FrameHeader h;
  h.version = GetU16(p + 4);
  if (h.version != kWireVersion) {
    return UnimplementedError("unsupported wire version " + std::to_string(h.version) +
                              " (this build speaks " + std::to_string(kWireVersion) + ")");
  }
  if (bytes.size() < kFrameHeaderSize) {
    return InvalidArgumentError("frame too short: " + std::to_string(bytes.size()) +
                                " bytes, header needs " + std::to_string(kFrameHeaderSize));
  }
  const uint32_t want = GetU32(p + kChecksumOffset);
  const uint32_t got = HeaderChecksum(p);
  if (want != got) return InvalidArgumentError("frame header checksum mismatch");
  h.opcode = GetU16(p + 6);
  h.flags = GetU32(p + 8);
  const uint32_t status = GetU32(p + 12);
  h.request_id = GetU64(p + 16);
  h.payload_size = GetU64(p + 24);
  h.meta_size = GetU32(p + 32);

  if ((h.flags & ~static_cast<uint32_t>(kKnownFrameFlags)) != 0) {
    return InvalidArgumentError("unknown frame flags 0x" + [&] {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%x", h.flags & ~static_cast<uint32_t>(kKnownFrameFlags));
      return std::string(buf);
    }());
  }
  const uint16_t max_op = h.is_control() ? kMaxControlOpcode : kMaxOpcode;
  if (h.opcode == 0 || h.opcode > max_op) {
    return InvalidArgumentError(std::string("frame opcode ") + std::to_string(h.opcode) +
                                " out of range 1.." + std::to_string(max_op) +
                                (h.is_control() ? " (control)" : ""));
  }
  if (status > static_cast<uint32_t>(StatusCode::kUnauthenticated)) {
    return InvalidArgumentError("frame status code " + std::to_string(status) + " out of range");
  }
  h.status = static_cast<StatusCode>(status);
  if (!h.is_response() && h.status != StatusCode::kOk) {
    return InvalidArgumentError("request frame with non-zero status " + std::to_string(status));
  }
  if (h.meta_size > limits.max_meta_bytes) {
    return InvalidArgumentError("frame meta_size " + std::to_string(h.meta_size) +
                                " exceeds limit " + std::to_string(limits.max_meta_bytes));
  }
  if (h.payload_size > limits.max_payload_bytes) {
    return InvalidArgumentError("frame payload_size " + std::to_string(h.payload_size) +
                                " exceeds limit " + std::to_string(limits.max_payload_bytes));
  }
  return h;
}

Result<FrameHeader> DecodeFrameHead(std::span<const uint8_t> head, const FrameLimits& limits) {
  ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(head, limits));
  const size_t inline_meta = h.meta_in_data() ? 0 : h.meta_size;
  if (head.size() != kFrameHeaderSize + inline_meta) {
    return InvalidArgumentError("frame head is " + std::to_string(head.size()) +
                                " bytes, header says " +
                                std::to_string(kFrameHeaderSize + inline_meta));
  }
  return h;
}

Result<FrameView> DecodeFrame(std::span<const uint8_t> bytes, const FrameLimits& limits) {
  ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(bytes, limits));
  const uint64_t rest = bytes.size() - kFrameHeaderSize;
  // meta_size <= 4 GiB and payload_size <= limit: compare without overflow.
  if (rest < h.meta_size || rest - h.meta_size != h.payload_size) {
    return InvalidArgumentError("frame is " + std::to_string(bytes.size()) +
                                " bytes, header says " + std::to_string(kFrameHeaderSize) + " + " +
                                std::to_string(h.meta_size) + " + " +
                                std::to_string(h.payload_size));
  }
  FrameView v;
  v.header = h;
  v.meta = bytes.subspan(kFrameHeaderSize, h.meta_size);
  v.payload = bytes.subspan(kFrameHeaderSize + h.meta_size);
  return v;
}

std::vector<uint8_t> EncodeFrame(FrameHeader h, std::span<const uint8_t> meta,
                                 std::span<const uint8_t> payload) {
  h.meta_size = static_cast<uint32_t>(meta.size());
  if (!payload.empty()) h.payload_size = payload.size();
  std::vector<uint8_t> out(kFrameHeaderSize + meta.size() + payload.size());
  EncodeFrameHeader(h, out.data());
  if (!meta.empty()) std::memcpy(out.data() + kFrameHeaderSize, meta.data(), meta.size());
  if (!payload.empty()) {
    std::memcpy(out.data() + kFrameHeaderSize + meta.size(), payload.data(), payload.size());
  }
  return out;
}

}  // namespace kvcake::transport
