#pragma once

// Versioned wire frames of the kvcake RPC protocol (docs/design.md §5).
//
// Every message (request or response) starts with a fixed 40-byte
// little-endian header, followed by `meta_size` bytes of op-level metadata
// (transport/messages.h encodes those) and then `payload_size` bytes of bulk
// data. Over UCX the header and the meta travel as the active-message header
// and the payload as the AM data (eager or rendezvous), so the payload can land
// directly in its destination buffer.
//
//   offset size field
//   0      4    magic           "KVCK" = 0x4B43564B
//   4      2    version         kWireVersion
//   6      2    opcode          1..kMaxOpcode (1..kMaxControlOpcode with kFlagControl)
//   8      4    flags           FrameFlags bits; unknown bits are refused
//   12     4    status          kvcake::StatusCode of a response; 0 in requests
//   16     8    request_id      chosen by the caller, echoed in the response
//   24     8    payload_size    <= FrameLimits::max_payload_bytes
//   32     4    meta_size       <= FrameLimits::max_meta_bytes
//   36     4    header_checksum XXH32 (seed 0) of bytes [0, 36)
//
// Every field is validated by DecodeFrameHeader() before anything uses it.
// The functions here are pure and thread-safe.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::transport {

inline constexpr uint32_t kFrameMagic = 0x4B43564B;  // bytes "KVCK" on the wire
inline constexpr uint16_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderSize = 40;

// Opcodes: application opcodes (transport/messages.h RpcOp) use 1..kMaxOpcode.
// Frames with kFlagControl are the transport's own (keepalive, hello) and use
// 1..kMaxControlOpcode; they never reach an RpcHandler.
inline constexpr uint16_t kMaxOpcode = 4095;
inline constexpr uint16_t kControlOpHello = 1;  // connect handshake; reply meta = server info
inline constexpr uint16_t kControlOpPing = 2;   // keepalive
// The client is closing its connection (no reply): the server ends it at
// once instead of waiting for its idle timeout.
inline constexpr uint16_t kControlOpGoodbye = 3;
inline constexpr uint16_t kMaxControlOpcode = 3;

enum FrameFlags : uint32_t {
  kFlagResponse = 1u << 0,  // a response to request_id (else a request)
  kFlagControl = 1u << 1,   // transport-internal frame
  // The meta does not travel in the AM header (too large for it) but as the
  // first meta_size bytes of the AM data, before the payload.
  kFlagMetaInData = 1u << 2,
  kKnownFrameFlags = kFlagResponse | kFlagControl | kFlagMetaInData,
};

// Upper bounds the decoder enforces. Defaults are the protocol maxima; a
// server may configure lower ones.
struct FrameLimits {
  uint32_t max_meta_bytes = 1u << 20;        // 1 MiB of op metadata
  uint64_t max_payload_bytes = 16ull << 30;  // 16 GiB of bulk data
  Status Validate() const;
};

// Decoded, validated header. `status` is meaningful in responses only.
struct FrameHeader {
  uint16_t version = kWireVersion;
  uint16_t opcode = 0;
  uint32_t flags = 0;
  StatusCode status = StatusCode::kOk;
  uint64_t request_id = 0;
  uint64_t payload_size = 0;
  uint32_t meta_size = 0;

  bool is_response() const { return (flags & kFlagResponse) != 0; }
  bool is_control() const { return (flags & kFlagControl) != 0; }
  bool meta_in_data() const { return (flags & kFlagMetaInData) != 0; }
  // Bytes of AM data that follow the AM header: payload, plus the meta when
  // it travels in the data.
  uint64_t data_size() const { return payload_size + (meta_in_data() ? meta_size : 0); }
  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// Writes the 40-byte wire form of `h` (with its checksum) to `out`. The
// version written is h.version (tests use this to forge other versions).
void EncodeFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]);

// Parses and validates the first kFrameHeaderSize bytes of `bytes` (more may
// follow). Errors (all INVALID_ARGUMENT unless noted), checked in this order:
// short buffer, bad magic, version != kWireVersion (UNIMPLEMENTED: "unsupported
// wire version N (this build speaks 1)"), checksum mismatch, unknown flag bits,
// opcode out of range, status code out of range or non-zero in a request,
// meta_size / payload_size over `limits` (the message names the field and
// both numbers).
Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes,
                                      const FrameLimits& limits = FrameLimits());

// A whole message in one buffer: header + meta + payload. The spans point into
// the decoded buffer.
struct FrameView {
  FrameHeader header;
  std::span<const uint8_t> meta;
  std::span<const uint8_t> payload;
};

// Decodes a message whose header and meta are in `head` (exactly
// kFrameHeaderSize + meta_size bytes, or exactly kFrameHeaderSize with
// kFlagMetaInData; this is the UCX AM header) — the payload travels
// separately. Returns the header; inline meta is head.subspan(kFrameHeaderSize).
Result<FrameHeader> DecodeFrameHead(std::span<const uint8_t> head,
                                    const FrameLimits& limits = FrameLimits());

// Decodes a complete message (header + meta + payload, exact size).
Result<FrameView> DecodeFrame(std::span<const uint8_t> bytes,
                              const FrameLimits& limits = FrameLimits());

// Encodes header + meta (+ payload if given); sets h.meta_size and, when
// `payload` is non-empty, h.payload_size from the spans.
std::vector<uint8_t> EncodeFrame(FrameHeader h, std::span<const uint8_t> meta,
                                 std::span<const uint8_t> payload = {});

}  // namespace kvcake::transport
