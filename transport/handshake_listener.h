#pragma once

// HandshakeListener: the public TCP port of an RpcServer (transport/
// handshake.h). It accepts a connection, reads one HelloRequest (head and
// worker address) within a deadline, answers with what the server's callback
// returns and closes the connection. Anything else (wrong magic, wrong size, too slow, too many
// handshakes at once) is counted and the connection closed; nothing a peer
// sends reaches UCX.
//
// Thread-safety: Start/Stop/destructor from the owning thread; port() and
// stats() from any thread. The callback runs on the listener's own thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "transport/handshake.h"

namespace kvcake::transport {

struct HandshakeListenerStats {
  uint64_t accepted = 0;    // TCP connections accepted
  uint64_t answered = 0;    // valid hellos answered (OK or refused)
  uint64_t malformed = 0;   // not a kvcake hello: closed without an answer
  uint64_t timed_out = 0;   // no complete hello within the deadline
  uint64_t overloaded = 0;  // closed at once: too many handshakes in progress
};

class HandshakeListener {
 public:
  struct Options {
    std::string listen;                       // "HOST:PORT"; port 0 = ephemeral
    std::chrono::milliseconds timeout{5000};  // whole exchange, per connection
    size_t max_in_progress = 256;             // handshakes open at once
  };
  // Builds the reply to a valid hello `hello` (flags and the client's worker
  // address) from `peer` ("IP:PORT").
  using OnHello = std::function<HelloReply(const std::string& peer, const HelloRequest& hello)>;

  // Binds (SO_REUSEADDR, so a restarted server rebinds at once) and starts
  // the listener thread. UNAVAILABLE when the address cannot be bound.
  static Result<std::unique_ptr<HandshakeListener>> Start(const Options& options, OnHello on_hello);
  ~HandshakeListener();
  HandshakeListener(const HandshakeListener&) = delete;
  HandshakeListener& operator=(const HandshakeListener&) = delete;

  // Stops accepting, closes open handshakes, joins the thread. Idempotent.
  void Stop();
  uint16_t port() const;
  HandshakeListenerStats stats() const;

 private:
  struct Impl;
  explicit HandshakeListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::transport
