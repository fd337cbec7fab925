#include "transport/handshake.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/coding.h"
#include "transport/ucx.h"

namespace kvcake::transport {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, INT32_MAX));
}

// Waits for `events` on `fd` until `deadline`: OK, DEADLINE_EXCEEDED, or the
// poll error.
Status WaitFd(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, RemainingMs(deadline));
    if (n > 0) return Status::Ok();
    if (n == 0) return DeadlineExceededError(what + ": no answer in time");
    if (errno != EINTR) return ErrnoToStatus(errno, what);
  }
}

Status ReadFull(int fd, uint8_t* out, size_t n, Clock::time_point deadline,
                const std::string& what) {
  size_t got = 0;
  while (got < n) {
    RETURN_IF_ERROR(WaitFd(fd, POLLIN, deadline, what));
    const ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r == 0) {
      return UnavailableError(what + ": the server closed the connection after " +
                              std::to_string(got) + " of " + std::to_string(n) + " bytes");
    }
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return UnavailableError(what + ": " + std::strerror(errno));
    }
    got += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> EncodeHelloRequest(const HelloRequest& r) {
  std::vector<uint8_t> out(kHelloRequestBytes + r.address.size());
  std::memcpy(out.data(), kHelloRequestMagic.data(), 8);
  EncodeFixed<uint16_t>(out.data() + 8, r.version);
  EncodeFixed<uint16_t>(out.data() + 10, r.flags);
  EncodeFixed<uint32_t>(out.data() + 12, static_cast<uint32_t>(r.address.size()));
  if (!r.address.empty()) {
    std::memcpy(out.data() + kHelloRequestBytes, r.address.data(), r.address.size());
  }
  return out;
}

Result<HelloRequest> DecodeHelloRequestHead(std::span<const uint8_t> bytes, uint32_t* body_len) {
  if (bytes.size() != kHelloRequestBytes) {
    return InvalidArgumentError("handshake: request head of " + std::to_string(bytes.size()) +
                                " bytes, expected " + std::to_string(kHelloRequestBytes));
  }
  if (std::memcmp(bytes.data(), kHelloRequestMagic.data(), 8) != 0) {
    return InvalidArgumentError("handshake: not a kvcake client (bad magic)");
  }
  HelloRequest r;
  r.version = DecodeFixed<uint16_t>(bytes.data() + 8);
  r.flags = DecodeFixed<uint16_t>(bytes.data() + 10);
  if (r.version != kHandshakeVersion) {
    return InvalidArgumentError("handshake: version " + std::to_string(r.version) +
                                " not supported (this build speaks " +
                                std::to_string(kHandshakeVersion) + ")");
  }
  if ((r.flags & ~kHelloFlagsMask) != 0)
    return InvalidArgumentError("handshake: unknown flags set");
  *body_len = DecodeFixed<uint32_t>(bytes.data() + 12);
  if (*body_len == 0 || *body_len > kMaxHelloBodyBytes) {
    return InvalidArgumentError("handshake: worker address of " + std::to_string(*body_len) +
                                " bytes");
  }
  return r;
}

std::vector<uint8_t> EncodeHelloReply(const HelloReply& r) {
  std::vector<uint8_t> out(kHelloReplyHeadBytes + r.body.size());
  std::memcpy(out.data(), kHelloReplyMagic.data(), 8);
  EncodeFixed<uint16_t>(out.data() + 8, r.version);
  EncodeFixed<uint16_t>(out.data() + 10, static_cast<uint16_t>(r.status));
  EncodeFixed<uint32_t>(out.data() + 12, static_cast<uint32_t>(r.body.size()));
  EncodeFixed<uint64_t>(out.data() + 16, r.ticket);
  if (!r.body.empty()) std::memcpy(out.data() + kHelloReplyHeadBytes, r.body.data(), r.body.size());
  return out;
}

Result<HelloReply> DecodeHelloReplyHead(std::span<const uint8_t> head, uint32_t* body_len) {
  if (head.size() != kHelloReplyHeadBytes) {
    return InvalidArgumentError("handshake: reply head of " + std::to_string(head.size()) +
                                " bytes");
  }
  if (std::memcmp(head.data(), kHelloReplyMagic.data(), 8) != 0) {
    return InvalidArgumentError(
        "handshake: the server is not a kvcake daemon of this version (bad reply magic)");
  }
  HelloReply r;
  r.version = DecodeFixed<uint16_t>(head.data() + 8);
  if (r.version != kHandshakeVersion) {
    return InvalidArgumentError("handshake: server speaks version " + std::to_string(r.version));
  }
  const uint16_t code = DecodeFixed<uint16_t>(head.data() + 10);
  if (code > static_cast<uint16_t>(StatusCode::kUnauthenticated)) {
    return InvalidArgumentError("handshake: unknown status " + std::to_string(code));
  }
  r.status = static_cast<StatusCode>(code);
  *body_len = DecodeFixed<uint32_t>(head.data() + 12);
  if (*body_len > kMaxHelloBodyBytes || (r.status == StatusCode::kOk && *body_len == 0)) {
    return InvalidArgumentError("handshake: bad body length " + std::to_string(*body_len));
  }
  r.ticket = DecodeFixed<uint64_t>(head.data() + 16);
  return r;
}

Result<HelloReply> ClientHandshake(std::string_view address,
                                   std::span<const uint8_t> client_worker_address,
                                   std::chrono::milliseconds timeout, uint16_t flags) {
  sockaddr_storage ss;
  size_t len = 0;
  RETURN_IF_ERROR(ParseHostPort(address, &ss, &len));
  const std::string what = "connecting to " + std::string(address);
  const auto deadline = Clock::now() + timeout;
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, what);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&ss), static_cast<socklen_t>(len)) != 0) {
    if (errno != EINPROGRESS) {
      return UnavailableError(
          what + ": " + std::strerror(errno) +
          (errno == ECONNREFUSED ? " (nothing listens there: is kvcaked running?)" : ""));
    }
    RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline, what));
    int err = 0;
    socklen_t l = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
    if (err != 0) {
      return UnavailableError(
          what + ": " + std::strerror(err) +
          (err == ECONNREFUSED ? " (nothing listens there: is kvcaked running?)" : ""));
    }
  }
  HelloRequest hello;
  hello.flags = flags;
  hello.address.assign(client_worker_address.begin(), client_worker_address.end());
  const std::vector<uint8_t> req = EncodeHelloRequest(hello);
  size_t sent = 0;
  while (sent < req.size()) {
    RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline, what));
    const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return UnavailableError(what + ": " + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
  std::array<uint8_t, kHelloReplyHeadBytes> head;
  RETURN_IF_ERROR(ReadFull(fd, head.data(), head.size(), deadline, what));
  uint32_t body_len = 0;
  ASSIGN_OR_RETURN(HelloReply reply, DecodeHelloReplyHead(head, &body_len));
  reply.body.resize(body_len);
  RETURN_IF_ERROR(ReadFull(fd, reply.body.data(), body_len, deadline, what));
  if (reply.status != StatusCode::kOk) {
    return Status(reply.status,
                  what + ": refused: " + std::string(reply.body.begin(), reply.body.end()));
  }
  return reply;
}

}  // namespace kvcake::transport
