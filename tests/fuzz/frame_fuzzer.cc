// libFuzzer target: the wire-frame decoders must never crash, read out of
// bounds or accept a header they cannot re-encode identically.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "transport/frame.h"

using kvcake::transport::DecodeFrame;
using kvcake::transport::DecodeFrameHead;
using kvcake::transport::DecodeFrameHeader;
using kvcake::transport::EncodeFrameHeader;
using kvcake::transport::FrameLimits;
using kvcake::transport::kFrameHeaderSize;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  FrameLimits small;
  small.max_meta_bytes = 4096;
  small.max_payload_bytes = 1 << 20;
  for (const FrameLimits& limits : {FrameLimits(), small}) {
    auto h = DecodeFrameHeader(bytes, limits);
    if (h.ok()) {
      // A header that decodes re-encodes to the same 40 bytes.
      uint8_t again[kFrameHeaderSize];
      EncodeFrameHeader(*h, again);
      if (std::memcmp(again, data, kFrameHeaderSize) != 0) std::abort();
      if (h->meta_size > limits.max_meta_bytes) std::abort();
      if (h->payload_size > limits.max_payload_bytes) std::abort();
    }
    auto head = DecodeFrameHead(bytes, limits);
    // A head is the header plus the inline meta (none when the meta travels
    // in the message data, flag meta_in_data).
    if (head.ok() &&
        size != kFrameHeaderSize + (head->meta_in_data() ? 0 : uint64_t{head->meta_size})) {
      std::abort();
    }
    auto frame = DecodeFrame(bytes, limits);
    if (frame.ok()) {
      const auto& v = *frame;
      if (v.meta.size() != v.header.meta_size || v.payload.size() != v.header.payload_size) {
        std::abort();
      }
      if (kFrameHeaderSize + v.meta.size() + v.payload.size() != size) std::abort();
      // Touch every byte the views claim, so ASan checks the bounds.
      uint8_t x = 0;
      for (uint8_t b : v.meta) x ^= b;
      for (uint8_t b : v.payload) x ^= b;
      volatile uint8_t sink = x;
      (void)sink;
    }
  }
  return 0;
}
