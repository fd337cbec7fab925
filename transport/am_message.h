#pragma once

// Internal helpers shared by RpcServer and RpcClient: AM ids, building the AM
// header (frame header + meta) and the payload datatype, scatter copies.
// Thread-compatible plain helpers.

#include <ucp/api/ucp.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "transport/buffer.h"
#include "transport/frame.h"

namespace kvcake::transport::internal {

inline constexpr unsigned kAmIdRequest = 0x4b01;   // client -> server
inline constexpr unsigned kAmIdResponse = 0x4b02;  // server -> client

// Frame header + meta in one buffer (the AM header). With kFlagMetaInData in
// h.flags, `meta` must be empty and h.meta_size is kept as given.
inline std::vector<uint8_t> BuildHead(const FrameHeader& h, std::span<const uint8_t> meta) {
  std::vector<uint8_t> head(kFrameHeaderSize + meta.size());
  FrameHeader hh = h;
  if (!hh.meta_in_data()) hh.meta_size = static_cast<uint32_t>(meta.size());
  EncodeFrameHeader(hh, head.data());
  if (!meta.empty()) std::memcpy(head.data() + kFrameHeaderSize, meta.data(), meta.size());
  return head;
}

// A payload description for ucp_*_nbx: contiguous for 0/1 buffers, IOV
// otherwise. `iov` storage must outlive the operation.
struct DataDesc {
  void* buffer = nullptr;
  size_t count = 0;
  ucp_datatype_t datatype = ucp_dt_make_contig(1);
};

inline DataDesc DescribeSend(std::span<const ConstBuffer> bufs, std::vector<ucp_dt_iov_t>* iov) {
  DataDesc d;
  size_t nonempty = 0;
  const ConstBuffer* only = nullptr;
  for (const auto& b : bufs) {
    if (b.size > 0) {
      ++nonempty;
      only = &b;
    }
  }
  if (nonempty <= 1) {
    if (only != nullptr) {
      d.buffer = const_cast<void*>(only->data);
      d.count = only->size;
    }
    return d;
  }
  iov->clear();
  iov->reserve(nonempty);
  for (const auto& b : bufs) {
    if (b.size > 0) iov->push_back(ucp_dt_iov_t{const_cast<void*>(b.data), b.size});
  }
  d.buffer = iov->data();
  d.count = iov->size();
  d.datatype = ucp_dt_make_iov();
  return d;
}

// Receive description covering exactly `length` bytes of `bufs` (in order).
inline DataDesc DescribeRecv(std::span<const MutableBuffer> bufs, size_t length,
                             std::vector<ucp_dt_iov_t>* iov) {
  DataDesc d;
  iov->clear();
  size_t left = length;
  for (const auto& b : bufs) {
    if (left == 0) break;
    if (b.size == 0) continue;
    const size_t n = b.size < left ? b.size : left;
    iov->push_back(ucp_dt_iov_t{b.data, n});
    left -= n;
  }
  if (iov->size() <= 1) {
    if (!iov->empty()) {
      d.buffer = (*iov)[0].buffer;
      d.count = (*iov)[0].length;
    }
    return d;
  }
  d.buffer = iov->data();
  d.count = iov->size();
  d.datatype = ucp_dt_make_iov();
  return d;
}

// Copies `len` bytes from `src` into `bufs` in order; returns bytes copied.
inline size_t ScatterCopy(const void* src, size_t len, std::span<const MutableBuffer> bufs) {
  const auto* p = static_cast<const uint8_t*>(src);
  size_t done = 0;
  for (const auto& b : bufs) {
    if (done == len) break;
    const size_t n = b.size < len - done ? b.size : len - done;
    if (n > 0) std::memcpy(b.data, p + done, n);
    done += n;
  }
  return done;
}

// Reads request_id / flags from a header that failed validation, when at
// least the magic and those fields are present (to address an error reply).
inline bool PeekRequestId(std::span<const uint8_t> head, uint64_t* id, uint32_t* flags) {
  if (head.size() < 24) return false;
  uint32_t magic = 0;
  for (int i = 3; i >= 0; --i) magic = (magic << 8) | head[i];
  if (magic != kFrameMagic) return false;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | head[16 + i];
  uint32_t f = 0;
  for (int i = 3; i >= 0; --i) f = (f << 8) | head[8 + i];
  *id = v;
  *flags = f;
  return true;
}

}  // namespace kvcake::transport::internal
