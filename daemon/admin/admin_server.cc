#include "daemon/admin/admin_server.h"

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <fstream>
#include <list>
#include <optional>
#include <thread>

#include "common/logging.h"
#include "common/metrics_catalog.h"
#include "common/mutex.h"
#include "daemon/admin/admin_router.h"

namespace kvcake::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr uint32_t kHeaderLimit = 16 * 1024;
// Bytes read at once while waiting for the next request on a kept-alive
// connection.
constexpr size_t kReadChunk = 4096;

// Why the server closed a connection (for the counters).
enum class CloseReason {
  kNone,
  kHeaderTimeout,
  kBodyTimeout,
  kWriteTimeout,
  kIdleTimeout,
  kEvicted
};
constexpr size_t kCloseReasons = 6;

// The kvcake_admin_connections_closed_total label of a reason ("" for kNone).
const char* CloseReasonLabel(CloseReason reason) {
  switch (reason) {
    case CloseReason::kNone:
      return "";
    case CloseReason::kHeaderTimeout:
      return "header_timeout";
    case CloseReason::kBodyTimeout:
      return "body_timeout";
    case CloseReason::kWriteTimeout:
      return "write_timeout";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kEvicted:
      return "evicted";
  }
  return "";
}

Status AsioError(const boost::system::error_code& ec, std::string_view what) {
  return UnavailableError(std::string(what) + ": " + ec.message());
}

}  // namespace

Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port) {
  std::string h;
  std::string_view rest;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return InvalidArgumentError("bad address: " + text);
    h = text.substr(1, close - 1);
    rest = std::string_view(text).substr(close + 1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return InvalidArgumentError("address must be HOST:PORT: '" + text + "'");
    }
    h = text.substr(0, colon);
    rest = std::string_view(text).substr(colon);
    if (h.find(':') != std::string::npos) {
      return InvalidArgumentError("IPv6 addresses must be bracketed: '" + text + "'");
    }
  }
  if (rest.size() < 2 || rest[0] != ':') {
    return InvalidArgumentError("address must be HOST:PORT: '" + text + "'");
  }
  rest.remove_prefix(1);
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), p);
  if (ec != std::errc() || ptr != rest.data() + rest.size() || p > 65535) {
    return InvalidArgumentError("bad port in '" + text + "'");
  }
  if (h.empty()) return InvalidArgumentError("empty host in '" + text + "'");
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoToStatus(errno, "open token file " + path);
  std::string line;
  std::getline(in, line);
  size_t b = line.find_first_not_of(" \t\r\n");
  size_t e = line.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return InvalidArgumentError("token file " + path + " is empty");
  return line.substr(b, e - b + 1);
}

Status AdminServerOptions::Validate() const {
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(ParseHostPort(listen, &host, &port).WithContext("--admin_listen"));
  if (max_body_bytes == 0) return InvalidArgumentError("max_body_bytes must be > 0");
  if (max_connections == 0) return InvalidArgumentError("max_connections must be > 0");
  if (header_timeout_ms == 0) return InvalidArgumentError("header_timeout_ms must be > 0");
  if (idle_timeout_ms == 0) return InvalidArgumentError("idle_timeout_ms must be > 0");
  if (write_timeout_ms == 0) return InvalidArgumentError("write_timeout_ms must be > 0");
  return Status::Ok();
}

Status ValidateAdminOptions(const AdminServerOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(ParseHostPort(options.listen, &host, &port));
  if (options.token.empty() && !options.token_file.empty()) {
    auto token = ReadTokenFile(options.token_file);
    if (!token.ok()) return token.status().WithContext("--admin_token_file");
  }
  bool has_token = !options.token.empty() || !options.token_file.empty();
  if (!IsLoopbackHost(host) && !has_token) {
    return FailedPreconditionError("--admin_listen " + options.listen +
                                   " is not loopback: set --admin_token_file (refusing to "
                                   "expose the admin API without a token)");
  }
  return Status::Ok();
}

// ---- Impl ------------------------------------------------------------------

class AdminServer::Impl {
 public:
  Impl(const AdminServerOptions& options, AdminBackend* backend, metrics::Registry* registry,
       std::string token)
      : options_(options),
        router_(backend, registry, std::move(token), options.metrics_require_token),
        acceptor_(ioc_) {
    metrics::Catalog catalog(*registry);
    for (size_t i = 1; i < kCloseReasons; ++i) {
      closed_metric_[i] = catalog.admin_connections_closed.WithLabels(
          {CloseReasonLabel(static_cast<CloseReason>(i))});
    }
  }

  ~Impl() { Stop(); }

  Status Bind() {
    std::string host;
    uint16_t port = 0;
    RETURN_IF_ERROR(ParseHostPort(options_.listen, &host, &port));
    boost::system::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host, std::to_string(port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) return AsioError(ec, "resolve admin address " + host);
    tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) return AsioError(ec, "admin socket");
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
    if (ec) return AsioError(ec, "bind admin address " + options_.listen);
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return AsioError(ec, "listen on " + options_.listen);
    bound_ = acceptor_.local_endpoint(ec);
    if (ec) return AsioError(ec, "admin local endpoint");
    return Status::Ok();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] {
      for (;;) {
        try {
          ioc_.run();
          break;
        } catch (const std::exception& e) {
          // Handlers do not throw; this is a last line of defence.
          KVCAKE_LOG(ERROR) << "admin server: " << e.what();
        }
      }
    });
  }

  void Stop() EXCLUDES(stop_mu_) {
    MutexLock lock(&stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return bound_.port(); }
  std::string address() const {
    std::string a = bound_.address().to_string();
    if (bound_.address().is_v6()) a = "[" + a + "]";
    return a + ":" + std::to_string(bound_.port());
  }

  AdminServerStats stats() const {
    AdminServerStats s;
    s.open_connections = open_.load(std::memory_order_relaxed);
    s.accepted = accepted_.load(std::memory_order_relaxed);
    auto closed = [this](CloseReason r) {
      return closed_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
    };
    s.header_timeouts = closed(CloseReason::kHeaderTimeout);
    s.body_timeouts = closed(CloseReason::kBodyTimeout);
    s.write_timeouts = closed(CloseReason::kWriteTimeout);
    s.evicted = closed(CloseReason::kEvicted);
    s.idle_timeouts = closed(CloseReason::kIdleTimeout);
    return s;
  }

  const AdminServerOptions& options() const { return options_; }
  AdminRouter& router() { return router_; }

 private:
  class Session;

  // Open sessions, least recently progressed first. Server thread only.
  using SessionList = std::list<Session*>;
  // Adds a new session at the back; returns its position.
  SessionList::iterator Register(Session* session) {
    open_.fetch_add(1, std::memory_order_relaxed);
    return sessions_.insert(sessions_.end(), session);
  }
  // The session to close when a new connection arrives at the limit: the
  // least recently progressed one that is part-way through sending a request
  // (a slow or stalled sender), else the least recently progressed one. A
  // fresh connection whose request has not been read yet (its client or this
  // thread was slow to run) is thus never closed while a slow sender holds a
  // slot.
  Session* PickVictim();
  // Moves a session that made progress to the back.
  void Touch(SessionList::iterator pos) { sessions_.splice(sessions_.end(), sessions_, pos); }
  // Removes a closing session and counts why it was closed.
  void Unregister(SessionList::iterator pos, CloseReason reason) {
    sessions_.erase(pos);
    open_.fetch_sub(1, std::memory_order_relaxed);
    if (reason != CloseReason::kNone) {
      closed_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
      closed_metric_[static_cast<size_t>(reason)]->Increment();
    }
  }

  void Accept();

  const AdminServerOptions options_;
  AdminRouter router_;
  std::array<metrics::Counter*, kCloseReasons> closed_metric_{};  // [kNone] unused
  std::atomic<uint64_t> open_{0};
  std::atomic<uint64_t> accepted_{0};
  std::array<std::atomic<uint64_t>, kCloseReasons> closed_{};
  SessionList sessions_;  // server thread only
  // Declared after everything sessions use, so the io_context (which owns the
  // pending handlers and thus the sessions) is destroyed first.
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  tcp::endpoint bound_;
  std::thread thread_;
  Mutex stop_mu_;
  bool stopped_ GUARDED_BY(stop_mu_) = false;
};

// One HTTP connection: read request → route → write reply, with keep-alive.
// Lives in its own handlers (shared_from_this); runs on the server thread.
// Every socket operation carries the deadline of its phase; the session sits
// in the server's list, which orders sessions by their last progress.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Impl* server) : stream_(std::move(socket)), server_(server) {}
  // Only unregisters: the socket closes with the stream (this may run while
  // the io_context is being destroyed, when socket calls are off limits).
  ~Session() {
    if (phase_ != Phase::kClosed) server_->Unregister(pos_, CloseReason::kNone);
  }

  void Start() {
    pos_ = server_->Register(this);
    ReadHeader();  // the header timeout of a first request runs from accept
  }

  // Closes the connection to make room for a new one; its pending operation
  // completes with operation_aborted.
  void Evict() { Close(CloseReason::kEvicted); }

  // Part of a request has been read and the rest has not arrived: a header
  // read with bytes buffered (Beast consumes a header only once it is
  // complete), or a body being read.
  bool MidRequest() const {
    return (phase_ == Phase::kHeader && buffer_.size() > 0) || phase_ == Phase::kBody;
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kWriting, kClosed };

  void Enter(Phase phase) {
    phase_ = phase;
    server_->Touch(pos_);
  }

  // Kept-alive connection: waits up to idle_timeout_ms for the first bytes
  // of the next request.
  void WaitForRequest() {
    if (buffer_.size() > 0) return ReadHeader();  // pipelined request already in
    Enter(Phase::kIdle);
    stream_.expires_after(std::chrono::milliseconds(server_->options().idle_timeout_ms));
    stream_.async_read_some(
        buffer_.prepare(kReadChunk),
        beast::bind_front_handler(&Session::OnRequestBegun, shared_from_this()));
  }

  void OnRequestBegun(beast::error_code ec, size_t bytes) {
    if (phase_ == Phase::kClosed) return;  // evicted after this completed
    if (ec) return OnReadError(ec);
    buffer_.commit(bytes);
    ReadHeader();
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(server_->options().max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    Enter(Phase::kHeader);
    stream_.expires_after(std::chrono::milliseconds(server_->options().header_timeout_ms));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (phase_ == Phase::kClosed) return;  // evicted after this completed
    if (ec) return OnReadError(ec);
    if (parser_->is_done()) return Handle();
    Enter(Phase::kBody);
    stream_.expires_after(std::chrono::milliseconds(server_->options().idle_timeout_ms));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (phase_ == Phase::kClosed) return;  // evicted after this completed
    if (ec) return OnReadError(ec);
    Handle();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      return Close(phase_ == Phase::kIdle     ? CloseReason::kIdleTimeout
                   : phase_ == Phase::kHeader ? CloseReason::kHeaderTimeout
                                              : CloseReason::kBodyTimeout);
    }
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return Close(CloseReason::kNone);
    }
    if (ec == http::error::body_limit) {
      return Send(ErrorReply(InvalidArgumentError(
                      "request body larger than " +
                      std::to_string(server_->options().max_body_bytes) + " bytes")),
                  413, /*close=*/true, /*head=*/false);
    }
    if (ec == http::error::header_limit) {
      return Send(ErrorReply(InvalidArgumentError("request header too large")), 431, true, false);
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return Send(ErrorReply(InvalidArgumentError("malformed HTTP request: " + ec.message())), 400,
                  true, false);
    }
    Close(CloseReason::kNone);
  }

  void Handle() {
    Enter(Phase::kHandling);
    const auto& req = parser_->get();
    HttpRequestView view;
    std::string method(req.method_string());
    view.method = method;
    view.target = std::string_view(req.target().data(), req.target().size());
    auto auth = req.find(http::field::authorization);
    if (auth != req.end()) view.authorization = {auth->value().data(), auth->value().size()};
    view.body = req.body();
    HttpReply reply = server_->router().Handle(view);
    Send(std::move(reply), 0, !req.keep_alive(), req.method() == http::verb::head);
  }

  // Writes `reply` (status overridden when `status` != 0), then waits for the
  // next request or closes.
  void Send(HttpReply reply, int status, bool close, bool head) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(status != 0 ? status : reply.status));
    res_.set(http::field::server, "kvcaked-admin");
    res_.set(http::field::content_type, reply.content_type);
    res_.set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : reply.headers) res_.set(name, value);
    res_.body() = head ? std::string() : std::move(reply.body);
    res_.keep_alive(!close);
    res_.prepare_payload();
    close_after_write_ = close;
    Enter(Phase::kWriting);
    stream_.expires_after(std::chrono::milliseconds(server_->options().write_timeout_ms));
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (phase_ == Phase::kClosed) return;  // evicted after this completed
    if (ec == beast::error::timeout) return Close(CloseReason::kWriteTimeout);
    if (ec || close_after_write_) return Close(CloseReason::kNone);
    WaitForRequest();
  }

  // Idempotent. Leaves the server's list at once, so the connection no longer
  // counts against max_connections even while its handler is still pending.
  void Close(CloseReason reason) {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    server_->Unregister(pos_, reason);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool close_after_write_ = false;
  Phase phase_ = Phase::kHeader;
  Impl::SessionList::iterator pos_;
  Impl* server_;
};

AdminServer::Impl::Session* AdminServer::Impl::PickVictim() {
  for (Session* s : sessions_) {
    if (s->MidRequest()) return s;
  }
  return sessions_.front();
}

// All handlers run on the one server thread (no strands needed): the accept
// loop and the sessions share the session list without locks.
void AdminServer::Impl::Accept() {
  acceptor_.async_accept(ioc_, [this](beast::error_code ec, tcp::socket sock) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      KVCAKE_LOG(WARNING) << "admin accept: " << ec.message();
    } else {
      accepted_.fetch_add(1, std::memory_order_relaxed);
      while (!sessions_.empty() && sessions_.size() >= options_.max_connections) {
        PickVictim()->Evict();
      }
      std::make_shared<Session>(std::move(sock), this)->Start();
    }
    if (acceptor_.is_open()) Accept();
  });
}

// ---- AdminServer -------------------------------------------------------------

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() = default;

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const AdminServerOptions& options,
                                                        AdminBackend* backend,
                                                        metrics::Registry* registry) {
  if (backend == nullptr) return InvalidArgumentError("admin server needs a backend");
  RETURN_IF_ERROR(ValidateAdminOptions(options));
  std::string token = options.token;
  if (token.empty() && !options.token_file.empty()) {
    ASSIGN_OR_RETURN(token, ReadTokenFile(options.token_file));
  }
  if (registry == nullptr) registry = &metrics::Registry::Default();
  auto impl = std::make_unique<Impl>(options, backend, registry, std::move(token));
  RETURN_IF_ERROR(impl->Bind());
  impl->Run();
  KVCAKE_LOG(INFO) << "admin API listening on http://" << impl->address()
                   << (options.token.empty() && options.token_file.empty() ? " (no token)"
                                                                           : " (bearer token)");
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

uint16_t AdminServer::port() const { return impl_->port(); }
std::string AdminServer::address() const { return impl_->address(); }
AdminServerStats AdminServer::stats() const { return impl_->stats(); }
void AdminServer::Stop() { impl_->Stop(); }

}  // namespace kvcake::admin
