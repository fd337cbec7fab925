#include "transport/frame.h"

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "common/coding.h"

namespace kvcake::transport {
namespace {

constexpr size_t kChecksumOffset = 36;

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
  EncodeFixed<uint32_t>(out + 0, kFrameMagic);
  EncodeFixed<uint16_t>(out + 4, h.version);
  EncodeFixed<uint16_t>(out + 6, h.opcode);
  EncodeFixed<uint32_t>(out + 8, h.flags);
  EncodeFixed<uint32_t>(out + 12, static_cast<uint32_t>(h.status));
  EncodeFixed<uint64_t>(out + 16, h.request_id);
  EncodeFixed<uint64_t>(out + 24, h.payload_size);
  EncodeFixed<uint32_t>(out + 32, h.meta_size);
  EncodeFixed<uint32_t>(out + kChecksumOffset, HeaderChecksum(out));
}

Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes, const FrameLimits& limits) {
  if (bytes.size() < 8) {
    return InvalidArgumentError("frame too short: " + std::to_string(bytes.size()) +
                                " bytes, header needs " + std::to_string(kFrameHeaderSize));
  }
  const uint8_t* p = bytes.data();
  const uint32_t magic = DecodeFixed<uint32_t>(p);
  if (magic != kFrameMagic) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "bad frame magic 0x%08x (expected 0x%08x)", magic, kFrameMagic);
    return InvalidArgumentError(buf);
  }
  FrameHeader h;
  h.version = DecodeFixed<uint16_t>(p + 4);
  if (h.version != kWireVersion) {
    return UnimplementedError("unsupported wire version " + std::to_string(h.version) +
                              " (this build speaks " + std::to_string(kWireVersion) + ")");
  }
  if (bytes.size() < kFrameHeaderSize) {
    return InvalidArgumentError("frame too short: " + std::to_string(bytes.size()) +
                                " bytes, header needs " + std::to_string(kFrameHeaderSize));
  }
  const uint32_t want = DecodeFixed<uint32_t>(p + kChecksumOffset);
  const uint32_t got = HeaderChecksum(p);
  if (want != got) return InvalidArgumentError("frame header checksum mismatch");
  h.opcode = DecodeFixed<uint16_t>(p + 6);
  h.flags = DecodeFixed<uint32_t>(p + 8);
  const uint32_t status = DecodeFixed<uint32_t>(p + 12);
  h.request_id = DecodeFixed<uint64_t>(p + 16);
  h.payload_size = DecodeFixed<uint64_t>(p + 24);
  h.meta_size = DecodeFixed<uint32_t>(p + 32);

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
