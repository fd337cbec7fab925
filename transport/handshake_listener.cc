#include "transport/handshake_listener.h"

#include <netinet/in.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "transport/ucx.h"

namespace kvcake::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct HandshakeListener::Impl {
  struct Session;
  // Declared before `io`: sessions destroyed with the io_context touch them.
  size_t in_progress = 0;  // listener thread only
  std::atomic<uint64_t> accepted{0}, answered{0}, malformed{0}, timed_out{0}, overloaded{0};
  Options options;
  OnHello on_hello;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  uint16_t port = 0;
  bool stopped = false;

  void Accept();
};

// One handshake connection; lives as long as its async operations.
struct HandshakeListener::Impl::Session : std::enable_shared_from_this<Session> {
  Session(HandshakeListener::Impl* l, tcp::socket s)
      : listener(l), socket(std::move(s)), timer(socket.get_executor()) {}
  ~Session() { --listener->in_progress; }

  void Run() {
    boost::system::error_code ec;
    const tcp::endpoint remote = socket.remote_endpoint(ec);
    peer = ec ? "unknown" : remote.address().to_string() + ":" + std::to_string(remote.port());
    timer.expires_after(listener->options.timeout);
    auto self = shared_from_this();
    timer.async_wait([self](const boost::system::error_code& e) {
      if (e || self->done) return;
      self->listener->timed_out.fetch_add(1, std::memory_order_relaxed);
      KVCAKE_LOG(DEBUG) << "handshake from " << self->peer << " timed out";
      self->Close();
    });
    asio::async_read(socket, asio::buffer(request),
                     [self](const boost::system::error_code& e, size_t) { self->OnRequest(e); });
  }

  void OnRequest(const boost::system::error_code& e) {
    if (e || done) {
      if (!done) listener->malformed.fetch_add(1, std::memory_order_relaxed);
      Close();
      return;
    }
    uint32_t body_len = 0;
    Result<HelloRequest> req = DecodeHelloRequestHead(request, &body_len);
    if (req.ok()) {
      // The worker address follows; same deadline.
      flags = req->flags;
      body.resize(body_len);
      auto self = shared_from_this();
      asio::async_read(socket, asio::buffer(body),
                       [self](const boost::system::error_code& e2, size_t) {
                         if (e2 || self->done) {
                           if (!self->done) {
                             self->listener->malformed.fetch_add(1, std::memory_order_relaxed);
                           }
                           self->Close();
                           return;
                         }
                         HelloRequest hello;
                         hello.flags = self->flags;
                         hello.address = std::move(self->body);
                         self->Answer(self->listener->on_hello(self->peer, hello));
                       });
      return;
    }
    // Wrong magic: not a kvcake client (a scanner, a crafted packet, an old
    // client speaking UCX's sockcm): close without a word. A kvcake client
    // of another version, or a bad address length, gets a readable refusal.
    if (std::memcmp(request.data(), kHelloRequestMagic.data(), 8) != 0) {
      listener->malformed.fetch_add(1, std::memory_order_relaxed);
      KVCAKE_LOG(DEBUG) << "closing non-kvcake connection from " << peer;
      Close();
      return;
    }
    HelloReply reply;
    reply.status = req.status().code();
    const std::string_view m = req.status().message();
    reply.body.assign(m.begin(), m.end());
    Answer(reply);
  }

  void Answer(const HelloReply& reply) {
    listener->answered.fetch_add(1, std::memory_order_relaxed);
    out = EncodeHelloReply(reply);
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(out),
                      [self](const boost::system::error_code&, size_t) { self->Close(); });
  }

  void Close() {
    done = true;
    timer.cancel();
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  HandshakeListener::Impl* listener;
  tcp::socket socket;
  asio::steady_timer timer;
  std::array<uint8_t, kHelloRequestBytes> request{};
  std::vector<uint8_t> body;
  uint16_t flags = 0;
  std::vector<uint8_t> out;
  std::string peer;
  bool done = false;
};

void HandshakeListener::Impl::Accept() {
  acceptor.async_accept([this](const boost::system::error_code& e, tcp::socket s) {
    if (e == asio::error::operation_aborted || stopped) return;
    if (!e) {
      accepted.fetch_add(1, std::memory_order_relaxed);
      if (in_progress >= options.max_in_progress) {
        overloaded.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ignored;
        s.close(ignored);
      } else {
        ++in_progress;
        std::make_shared<Session>(this, std::move(s))->Run();
      }
    } else {
      KVCAKE_LOG(WARNING) << "handshake listener: accept failed: " << e.message();
    }
    Accept();
  });
}

Result<std::unique_ptr<HandshakeListener>> HandshakeListener::Start(const Options& options,
                                                                    OnHello on_hello) {
  sockaddr_storage ss;
  size_t len = 0;
  RETURN_IF_ERROR(ParseHostPort(options.listen, &ss, &len));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->on_hello = std::move(on_hello);
  const tcp::endpoint ep(asio::ip::address_v4(ntohl(sin->sin_addr.s_addr)), ntohs(sin->sin_port));
  boost::system::error_code ec;
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + options.listen + ": " + ec.message());
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HandshakeListener>(new HandshakeListener(std::move(impl)));
}

HandshakeListener::HandshakeListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HandshakeListener::~HandshakeListener() { Stop(); }

void HandshakeListener::Stop() {
  if (impl_->stopped) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // The thread is gone: close the listening socket here, so new connections
  // are refused at once.
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

uint16_t HandshakeListener::port() const { return impl_->port; }

HandshakeListenerStats HandshakeListener::stats() const {
  HandshakeListenerStats s;
  s.accepted = impl_->accepted.load();
  s.answered = impl_->answered.load();
  s.malformed = impl_->malformed.load();
  s.timed_out = impl_->timed_out.load();
  s.overloaded = impl_->overloaded.load();
  return s;
}

}  // namespace kvcake::transport
