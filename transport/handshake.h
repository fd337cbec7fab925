#pragma once

// kvcake's connection handshake: how a client reaches an RpcServer.
//
// The server's public port is a plain TCP listener of kvcake's own
// (HandshakeListener), not UCX's sockaddr connection manager: UCX 1.13's
// sockcm asserts (aborting the process) on a crafted first packet, before
// any authentication. One exchange, then the TCP connection is closed:
//
//   client -> server   HelloRequest   (16 bytes, fixed)
//   server -> client   HelloReply     (24-byte head + the UCX worker address
//                                      of the I/O thread chosen for the
//                                      client, or an error text)
//
// The client then creates its UCX endpoint from that worker address and
// sends its first frame, a hello control frame carrying the reply's
// `ticket`; the server binds the UCX endpoint the frame arrived on to a
// connection only for an unused, unexpired ticket of that I/O thread.
// Every field is validated before anything is allocated for it; all
// integers are little-endian.
//
// Thread-safety: plain functions and value types.

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::transport {

inline constexpr std::array<char, 8> kHelloRequestMagic = {'K', 'V', 'C', 'A', 'K', 'E', 'H', 'I'};
inline constexpr std::array<char, 8> kHelloReplyMagic = {'K', 'V', 'C', 'A', 'K', 'E', 'O', 'K'};
inline constexpr uint16_t kHandshakeVersion = 1;
inline constexpr size_t kHelloRequestBytes = 16;
inline constexpr size_t kHelloReplyHeadBytes = 24;
// Largest worker address or error text a reply may carry.
inline constexpr uint32_t kMaxHelloBodyBytes = 64 * 1024;

// magic[8] version:u16 flags:u16 reserved:u32 (must be 0).
struct HelloRequest {
  uint16_t version = kHandshakeVersion;
  uint16_t flags = 0;  // none defined; must be 0
};

// magic[8] version:u16 status:u16 body_len:u32 ticket:u64, then body:
// the worker address when status is 0 (OK), else an error text.
struct HelloReply {
  uint16_t version = kHandshakeVersion;
  StatusCode status = StatusCode::kOk;
  uint64_t ticket = 0;
  std::vector<uint8_t> body;
};

std::array<uint8_t, kHelloRequestBytes> EncodeHelloRequest(const HelloRequest& r);
// INVALID_ARGUMENT unless `bytes` is exactly a well-formed request of a
// version this build speaks.
Result<HelloRequest> DecodeHelloRequest(std::span<const uint8_t> bytes);

std::vector<uint8_t> EncodeHelloReply(const HelloReply& r);
// Decodes the 24-byte head (body left empty); returns the body length to
// read next (at most kMaxHelloBodyBytes). INVALID_ARGUMENT otherwise.
Result<HelloReply> DecodeHelloReplyHead(std::span<const uint8_t> head, uint32_t* body_len);

// Client side: connects to "HOST:PORT" over TCP, sends the hello, reads the
// reply, all bounded by `timeout`. UNAVAILABLE (with the errno's words) when
// the server cannot be reached; DEADLINE_EXCEEDED when it does not answer in
// time; the server's status when it refuses; INVALID_ARGUMENT on a reply that
// is not kvcake's (e.g. an old daemon, or another service on that port).
Result<HelloReply> ClientHandshake(std::string_view address, std::chrono::milliseconds timeout);

}  // namespace kvcake::transport
