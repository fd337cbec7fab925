#pragma once

// kvcake's connection handshake: how a client reaches an RpcServer.
//
// The server's public port is a plain TCP listener of kvcake's own
// (HandshakeListener), not UCX's sockaddr connection manager: UCX 1.13's
// sockcm asserts (aborting the process) on a crafted first packet, before
// any authentication. One exchange, then the TCP connection is closed:
//
//   client -> server   HelloRequest   (16-byte head + the client's UCX
//                                      worker address)
//   server -> client   HelloReply     (24-byte head + the UCX worker address
//                                      of the I/O thread chosen for the
//                                      client, or an error text)
//
// The server creates its UCX endpoint to the client's worker (so the
// endpoint is the server's own: UCX never frees it behind the server's back)
// and the client creates its endpoint to the server's; UCX pairs the two.
// The client's first frame is a hello control frame carrying the reply's
// `ticket`; until it arrives, nothing else on that endpoint is served.
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

// magic[8] version:u16 flags:u16 body_len:u32, then body: the client's UCX
// worker address (1..kMaxHelloBodyBytes bytes).
// HelloRequest::flags: the client's endpoint reports peer failures
// (UCP_ERR_HANDLING_MODE_PEER); the server's endpoint to it must too.
inline constexpr uint16_t kHelloFlagPeerErrors = 1;
inline constexpr uint16_t kHelloFlagsMask = kHelloFlagPeerErrors;

struct HelloRequest {
  uint16_t version = kHandshakeVersion;
  uint16_t flags = 0;  // kHelloFlag* bits; others are refused
  std::vector<uint8_t> address;
};

// magic[8] version:u16 status:u16 body_len:u32 ticket:u64, then body:
// the worker address when status is 0 (OK), else an error text.
struct HelloReply {
  uint16_t version = kHandshakeVersion;
  StatusCode status = StatusCode::kOk;
  uint64_t ticket = 0;
  std::vector<uint8_t> body;
};

std::vector<uint8_t> EncodeHelloRequest(const HelloRequest& r);
// Decodes the 16-byte head (address left empty); returns the body length to
// read next (1..kMaxHelloBodyBytes). INVALID_ARGUMENT unless `head` is a
// well-formed head of a version this build speaks.
Result<HelloRequest> DecodeHelloRequestHead(std::span<const uint8_t> head, uint32_t* body_len);

std::vector<uint8_t> EncodeHelloReply(const HelloReply& r);
// Decodes the 24-byte head (body left empty); returns the body length to
// read next (at most kMaxHelloBodyBytes). INVALID_ARGUMENT otherwise.
Result<HelloReply> DecodeHelloReplyHead(std::span<const uint8_t> head, uint32_t* body_len);

// Client side: connects to "HOST:PORT" over TCP, sends the hello, reads the
// reply, all bounded by `timeout`. UNAVAILABLE (with the errno's words) when
// the server cannot be reached; DEADLINE_EXCEEDED when it does not answer in
// time; the server's status when it refuses; INVALID_ARGUMENT on a reply that
// is not kvcake's (e.g. an old daemon, or another service on that port).
Result<HelloReply> ClientHandshake(std::string_view address,
                                   std::span<const uint8_t> client_worker_address,
                                   std::chrono::milliseconds timeout, uint16_t flags = 0);

}  // namespace kvcake::transport
