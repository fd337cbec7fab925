#include "transport/rpc_server.h"

#include <algorithm>
#include <new>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "common/logging.h"
#include "common/mutex.h"
#include "transport/am_message.h"
#include "transport/handshake_listener.h"
#include "transport/stat_counters.h"
#include "transport/ucx.h"
#include "transport/worker_loop.h"

namespace kvcake::transport {

using internal::kAmIdRequest;
using internal::kAmIdResponse;
using Clock = std::chrono::steady_clock;

Status RpcServerOptions::Validate() const {
  sockaddr_storage ss;
  size_t len = 0;
  RETURN_IF_ERROR(ParseHostPort(listen, &ss, &len).WithContext("RpcServerOptions.listen"));
  if (io_threads < 1 || io_threads > 64) {
    return InvalidArgumentError("RpcServerOptions.io_threads must be in 1..64");
  }
  RETURN_IF_ERROR(ucx.Validate());
  RETURN_IF_ERROR(limits.Validate());
  if (idle_timeout.count() <= 0) {
    return InvalidArgumentError("RpcServerOptions.idle_timeout must be > 0");
  }
  if (send_timeout.count() <= 0) {
    return InvalidArgumentError("RpcServerOptions.send_timeout must be > 0");
  }
  if (max_staged_bytes == 0) {
    return InvalidArgumentError("RpcServerOptions.max_staged_bytes must be > 0");
  }
  if (handshake_timeout.count() <= 0 || ticket_timeout.count() <= 0 ||
      max_pending_handshakes == 0) {
    return InvalidArgumentError(
        "RpcServerOptions: handshake_timeout, ticket_timeout and max_pending_handshakes must be "
        "> 0");
  }
  return Status::Ok();
}

Status RpcHandler::AcceptPayload(ServerCall& call, std::vector<MutableBuffer>* target) {
  return UnimplementedError("this server accepts no request payloads");
}

Status RpcHandler::CheckRequestHeader(const FrameHeader& header) { return Status::Ok(); }

void RpcHandler::OnConnectionClosed(uint64_t connection_id) {}

// Per-I/O-thread state. `loop` is guarded by `mu` for posting from other
// threads; it is nulled at Stop() before the loop is stopped, so other
// threads stop posting. Code on the loop thread itself (UCX callbacks,
// posted handlers) uses `own_loop`, which stays valid until the loop thread
// has stopped: UCX can still report an endpoint error between the two.
struct OutgoingReply;

struct LoopSlot {
  int index = 0;
  RpcServerImpl* server = nullptr;  // set at Init
  Mutex mu;
  WorkerLoop* loop GUARDED_BY(mu) = nullptr;
  WorkerLoop* own_loop = nullptr;       // loop thread only; set at Init, never nulled
  std::vector<uint8_t> worker_address;  // handed to clients by the handshake (immutable)
  // Loop-thread only:
  std::unordered_map<ucp_ep_h, std::shared_ptr<ServerConnection>> conns;
  // Replies of closed connections whose send UCX has not completed yet
  // (owned; see ServerConnection::Close). Freed by their send callback, or
  // after the worker is gone at Stop().
  std::unordered_set<OutgoingReply*> orphans;
};

// One reply being sent.
struct OutgoingReply {
  std::shared_ptr<ServerConnection> conn;
  std::vector<uint8_t> head;
  std::vector<uint8_t> meta_data;      // meta sent in the data (oversized meta)
  std::vector<ConstBuffer> payload;    // the handler's payload
  std::vector<ConstBuffer> send_bufs;  // what goes out as AM data
  std::vector<ucp_dt_iov_t> iov;
  SendDoneCallback on_sent;
  Clock::time_point started;
  bool ok_status = true;
  // Failed by Close() while UCX still held the send; freed by its callback.
  bool orphaned = false;
};

// A request with meta in its data, received by rendezvous into a staging
// buffer.
struct StagedRecv {
  std::shared_ptr<ServerConnection> conn;
  FrameHeader header;
  std::unique_ptr<uint8_t[]> bytes;  // not zero-filled
  size_t size = 0;
  ~StagedRecv();
};

// One request payload being received by rendezvous.
struct InboundRecv {
  std::unique_ptr<ServerCall> call;
  std::vector<ucp_dt_iov_t> iov;
};

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(RpcServerImpl* server, std::shared_ptr<LoopSlot> slot, uint64_t id,
                   std::string peer, size_t max_inline_meta)
      : server_(server),
        slot_(std::move(slot)),
        id_(id),
        peer_(std::move(peer)),
        max_inline_meta_(max_inline_meta) {}

  // Requests handed to the handler and not yet replied (any thread).
  std::atomic<int64_t> unreplied{0};
  // Loop thread only: the handshake's ticket, and whether the client's hello
  // frame carried it (nothing else is served before).
  uint64_t ticket = 0;
  bool bound = false;

  // Largest meta that fits the AM header (immutable).
  size_t max_inline_meta() const { return max_inline_meta_; }

  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  LoopSlot* slot() const { return slot_.get(); }
  RpcServerImpl* server() const { return server_; }

  // Loop thread only below.
  void SetEndpoint(std::unique_ptr<UcxEndpoint> ep) { ep_ = std::move(ep); }
  ucp_ep_h ep() const { return ep_ ? ep_->get() : nullptr; }
  void Touch() { last_activity_ = Clock::now(); }
  Clock::time_point last_activity() const { return last_activity_; }
  void SendReply(std::unique_ptr<OutgoingReply> r);
  void OnReplySent(OutgoingReply* r, ucs_status_t st);
  // Closes the endpoint (force); in-flight sends/receives complete with errors.
  void Close(const char* why);
  bool closed() const { return ep_ == nullptr; }
  bool SendTimedOut(Clock::time_point now, std::chrono::milliseconds limit) const {
    for (const auto* r : inflight_) {
      if (now - r->started > limit) return true;
    }
    return false;
  }
  Mutex info_mu;
  std::string transport GUARDED_BY(info_mu);  // filled on first request (loop thread)

  // Posts `fn` to this connection's loop; false if the server is stopped.
  bool PostToLoop(std::function<void()> fn) {
    MutexLock lock(&slot_->mu);
    if (slot_->loop == nullptr) return false;
    slot_->loop->Post(std::move(fn));
    return true;
  }
  bool InLoopThread() {
    MutexLock lock(&slot_->mu);
    return slot_->loop != nullptr && slot_->loop->InLoopThread();
  }

 private:
  RpcServerImpl* server_;
  std::shared_ptr<LoopSlot> slot_;  // outlives the server while calls are held
  uint64_t id_;
  std::string peer_;
  size_t max_inline_meta_;
  std::unique_ptr<UcxEndpoint> ep_;
  Clock::time_point last_activity_ = Clock::now();
  std::unordered_set<OutgoingReply*> inflight_;
};

class RpcServerImpl {
 public:
  RpcServerImpl(const RpcServerOptions& o, RpcHandler* h) : options_(o), handler_(h) {}
  ~RpcServerImpl() { Stop(); }

  Status Init();
  void Stop();

  // Handshake (listener thread): creates, on the next I/O thread, the
  // server's endpoint to the client's worker `address` and an unbound
  // connection with a fresh ticket; returns that thread's worker address.
  HelloReply OnHello(const std::string& peer, const HelloRequest& hello);
  // Creates the endpoint and the unbound connection (loop thread of `slot`).
  // Creates the server's endpoint to the client's worker `address`, with
  // peer-failure reporting when the client asked for it (`peer_errors`).
  Status OpenConnection(LoopSlot* slot, const std::string& peer, std::span<const uint8_t> address,
                        uint64_t ticket, bool peer_errors);
  // The first frame of an unbound connection must be a hello control frame
  // carrying its ticket: true binds the connection (and the frame is
  // answered as usual); false drops the frame.
  bool TryBind(ServerConnection* conn, std::span<const uint8_t> head);
  static ucs_status_t OnRequestAm(void* arg, const void* header, size_t header_length, void* data,
                                  size_t length, const ucp_am_recv_param_t* param);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnPayloadReceived(void* request, ucs_status_t status, size_t length, void* user_data);
  static void OnStagedReceived(void* request, ucs_status_t status, size_t length, void* user_data);
  // Runs AcceptPayload and checks the buffers; on refusal replies the error.
  Status AcceptInto(ServerCall& call);
  // Builds the call for a payload already in memory and delivers it.
  void DeliverEager(const std::shared_ptr<ServerConnection>& conn, const FrameHeader& h,
                    std::span<const uint8_t> meta, const uint8_t* payload, size_t payload_size);

  ucs_status_t HandleRequest(LoopSlot* slot, std::span<const uint8_t> head, void* data,
                             size_t length, const ucp_am_recv_param_t* param);
  void HandleControl(const std::shared_ptr<ServerConnection>& conn, const FrameHeader& h);
  void RemoveConnection(ServerConnection* conn, const char* why);
  void Sweep(LoopSlot* slot);

  RpcServerOptions options_;
  RpcHandler* handler_;
  StatCounters<RpcServerStats> counters_;
  std::unique_ptr<UcxContext> context_;
  std::vector<std::shared_ptr<LoopSlot>> slots_;
  std::vector<std::unique_ptr<WorkerLoop>> loops_;
  std::unique_ptr<HandshakeListener> listener_;
  std::atomic<size_t> unbound_{0};  // connections whose hello has not arrived
  Mutex ticket_mu_;
  std::mt19937_64 ticket_rng_ GUARDED_BY(ticket_mu_){std::random_device{}()};
  std::atomic<uint64_t> next_conn_id_{1};
  std::atomic<uint64_t> staged_bytes_{0};  // bytes held by StagedRecvs
  std::atomic<uint64_t> next_loop_{0};
  std::string host_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

// ---------------------------------------------------------------------------
// ServerCall

ServerCall::ServerCall(std::shared_ptr<ServerConnection> conn, const FrameHeader& header,
                       std::span<const uint8_t> meta)
    : conn_(std::move(conn)), header_(header), meta_(meta.begin(), meta.end()) {
  conn_->unreplied.fetch_add(1, std::memory_order_relaxed);
}

ServerCall::~ServerCall() {
  if (!replied()) Reply(InternalError("request dropped by the handler without a reply"));
}

uint64_t ServerCall::connection_id() const { return conn_->id(); }
const std::string& ServerCall::peer() const { return conn_->peer(); }

void ServerCall::Reply(const Status& status, std::span<const uint8_t> meta,
                       std::span<const ConstBuffer> payload, SendDoneCallback on_sent) {
  if (replied_.exchange(true, std::memory_order_acq_rel)) {
    KVCAKE_LOG(WARNING) << "ServerCall::Reply called twice for request " << header_.request_id;
    return;
  }
  conn_->unreplied.fetch_sub(1, std::memory_order_relaxed);
  auto r = std::make_unique<OutgoingReply>();
  r->conn = conn_;
  FrameHeader h;
  h.opcode = header_.opcode;
  h.flags = kFlagResponse | (header_.flags & kFlagControl);
  h.request_id = header_.request_id;
  h.status = status.code();
  r->ok_status = status.ok();
  if (status.ok()) {
    r->payload.assign(payload.begin(), payload.end());
    h.payload_size = TotalSize(payload);
    if (meta.size() > conn_->max_inline_meta()) {
      h.flags |= kFlagMetaInData;
      h.meta_size = static_cast<uint32_t>(meta.size());
      r->meta_data.assign(meta.begin(), meta.end());
      r->head = internal::BuildHead(h, {});
      r->send_bufs.push_back({r->meta_data.data(), r->meta_data.size()});
    } else {
      r->head = internal::BuildHead(h, meta);
    }
    r->send_bufs.insert(r->send_bufs.end(), payload.begin(), payload.end());
  } else {
    const std::string_view msg = status.message();
    r->head = internal::BuildHead(
        h, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(msg.data()), msg.size()));
  }
  r->on_sent = std::move(on_sent);
  ServerConnection* c = conn_.get();
  if (c->InLoopThread()) {
    c->SendReply(std::move(r));
    return;
  }
  OutgoingReply* raw = r.release();
  if (!c->PostToLoop([raw] {
        std::unique_ptr<OutgoingReply> owned(raw);
        ServerConnection* target = owned->conn.get();
        target->SendReply(std::move(owned));
      })) {
    std::unique_ptr<OutgoingReply> owned(raw);
    if (owned->on_sent) owned->on_sent(UnavailableError("server stopped"));
  }
}

// ---------------------------------------------------------------------------
// ServerConnection

namespace {
void ReplySentCallback(void* request, ucs_status_t st, void* user_data) {
  auto* r = static_cast<OutgoingReply*>(user_data);
  ucp_request_free(request);
  r->conn->OnReplySent(r, st);
}
}  // namespace

void ServerConnection::SendReply(std::unique_ptr<OutgoingReply> r) {
  // A reply is activity too: the idle clock of a connection whose request took
  // longer than the idle timeout starts when the reply leaves, not when the
  // request arrived.
  Touch();
  auto& c = server_->counters_;
  if (ep_ == nullptr) {
    c.Add(&RpcServerStats::send_errors);
    if (r->on_sent) r->on_sent(UnavailableError("connection closed before the reply was sent"));
    return;
  }
  internal::DataDesc d = internal::DescribeSend(r->send_bufs, &r->iov);
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
  param.cb.send = ReplySentCallback;
  param.user_data = r.get();
  param.datatype = d.datatype;
  r->started = Clock::now();
  ucs_status_ptr_t req = ucp_am_send_nbx(ep_->get(), kAmIdResponse, r->head.data(), r->head.size(),
                                         d.buffer, d.count, &param);
  if (req == nullptr) {
    OnReplySent(r.release(), UCS_OK);
  } else if (UCS_PTR_IS_ERR(req)) {
    OnReplySent(r.release(), UCS_PTR_STATUS(req));
  } else {
    inflight_.insert(r.release());
  }
}

void ServerConnection::OnReplySent(OutgoingReply* raw, ucs_status_t st) {
  std::unique_ptr<OutgoingReply> r(raw);
  inflight_.erase(raw);
  if (r->orphaned) {
    // Close() already failed this reply; UCX has now let go of it.
    slot_->orphans.erase(raw);
    return;
  }
  auto& c = server_->counters_;
  Status status = UcsToStatus(st, "sending reply");
  if (status.ok()) {
    c.Add(r->ok_status ? &RpcServerStats::replies_ok : &RpcServerStats::replies_error);
    c.Add(&RpcServerStats::bytes_sent, TotalSize(r->payload));
  } else {
    c.Add(&RpcServerStats::send_errors);
  }
  if (r->on_sent) r->on_sent(status);
}

void ServerConnection::Close(const char* why) {
  if (ep_ == nullptr) return;
  KVCAKE_LOG(DEBUG) << "closing connection " << id_ << " from " << peer_ << ": " << why;
  std::unique_ptr<UcxEndpoint> ep = std::move(ep_);
  ep->Close(/*force=*/true);  // cancels in-flight sends: OnReplySent runs for each
  // A send UCX has not completed yet still owns its request: UCX calls
  // ReplySentCallback for it later (on a later progress of this worker, or
  // when the worker is destroyed). Its handler is told now (the payload is no
  // longer needed: the peer is gone), but the reply object lives on, parked in
  // the slot, until that callback; freeing it here was a use-after-free.
  for (OutgoingReply* r : inflight_) {
    server_->counters_.Add(&RpcServerStats::send_errors);
    r->orphaned = true;
    SendDoneCallback cb = std::move(r->on_sent);
    r->on_sent = nullptr;
    if (cb) cb(UnavailableError("connection closed before the reply was sent"));
    slot_->orphans.insert(r);
  }
}

// ---------------------------------------------------------------------------
// RpcServerImpl

Status RpcServerImpl::Init() {
  RETURN_IF_ERROR(options_.Validate());
  if (handler_ == nullptr) return InvalidArgumentError("RpcServer needs a handler");
  ASSIGN_OR_RETURN(context_, UcxContext::Create(options_.ucx));
  const auto tick = std::clamp(std::min(options_.idle_timeout, options_.send_timeout) / 4,
                               std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  for (int i = 0; i < options_.io_threads; ++i) {
    ASSIGN_OR_RETURN(auto worker, UcxWorker::Create(*context_));
    auto slot = std::make_shared<LoopSlot>();
    slot->index = i;
    slot->server = this;
    ucp_am_handler_param_t ap{};
    ap.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    ap.id = kAmIdRequest;
    ap.cb = &RpcServerImpl::OnRequestAm;
    ap.arg = slot.get();
    ap.flags = UCP_AM_FLAG_WHOLE_MSG;
    ucs_status_t st = ucp_worker_set_am_recv_handler(worker->get(), &ap);
    if (st != UCS_OK) return UcsToStatus(st, "ucp_worker_set_am_recv_handler");
    auto loop = std::make_unique<WorkerLoop>(std::move(worker), "rpc-server-io" + std::to_string(i),
                                             WorkerLoop::kSafetyPoll, options_.ucx.busy_poll,
                                             options_.ucx.busy_poll_yield);
    LoopSlot* sp = slot.get();
    loop->AddTicker(tick, [this, sp] { Sweep(sp); });
    {
      MutexLock lock(&slot->mu);
      slot->loop = loop.get();
    }
    slot->own_loop = loop.get();
    slots_.push_back(std::move(slot));
    loops_.push_back(std::move(loop));
  }
  for (auto& slot : slots_) {
    ucp_address_t* addr = nullptr;
    size_t addr_len = 0;
    ucs_status_t ast = ucp_worker_get_address(slot->own_loop->worker(), &addr, &addr_len);
    if (ast != UCS_OK) return UcsToStatus(ast, "ucp_worker_get_address");
    const auto* bytes = reinterpret_cast<const uint8_t*>(addr);
    slot->worker_address.assign(bytes, bytes + addr_len);
    ucp_worker_release_address(slot->own_loop->worker(), addr);
    if (addr_len > kMaxHelloBodyBytes) {
      return InternalError("UCX worker address of " + std::to_string(addr_len) + " bytes");
    }
  }
  HandshakeListener::Options lo;
  lo.listen = options_.listen;
  lo.timeout = options_.handshake_timeout;
  ASSIGN_OR_RETURN(listener_, HandshakeListener::Start(
                                  lo, [this](const std::string& peer, const HelloRequest& hello) {
                                    return OnHello(peer, hello);
                                  }));
  port_ = listener_->port();
  host_ = options_.listen.substr(0, options_.listen.rfind(':'));
  for (auto& l : loops_) l->Start();
  KVCAKE_LOG(INFO) << "rpc server listening on " << host_ << ":" << port_
                   << " (UCX_TLS=" << context_->options().Tls()
                   << ", io_threads=" << options_.io_threads << ", error handling "
                   << (context_->err_mode() == UCP_ERR_HANDLING_MODE_PEER ? "peer" : "none") << ")";
  return Status::Ok();
}

void RpcServerImpl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (listener_) listener_->Stop();
  for (size_t i = 0; i < loops_.size(); ++i) {
    LoopSlot* slot = slots_[i].get();
    loops_[i]->RunSync([this, slot] {
      auto conns = std::move(slot->conns);
      slot->conns.clear();
      for (auto& [ep, conn] : conns) {
        conn->Close("server stopping");
        handler_->OnConnectionClosed(conn->id());
      }
    });
  }
  for (auto& slot : slots_) {
    MutexLock lock(&slot->mu);
    slot->loop = nullptr;
  }
  for (auto& l : loops_) l->Stop();
  // Handlers still queued in the io_contexts are destroyed with the loops.
  loops_.clear();
  listener_.reset();
  // The workers are gone: no send callback can run any more.
  for (auto& slot : slots_) {
    for (OutgoingReply* r : slot->orphans) delete r;
    slot->orphans.clear();
  }
}

HelloReply RpcServerImpl::OnHello(const std::string& peer, const HelloRequest& hello) {
  const std::span<const uint8_t> address = hello.address;
  const bool peer_errors = (hello.flags & kHelloFlagPeerErrors) != 0;
  HelloReply reply;
  auto refuse = [&](StatusCode code, const std::string& why) {
    reply.status = code;
    reply.body.assign(why.begin(), why.end());
    return reply;
  };
  if (unbound_.load(std::memory_order_relaxed) >= options_.max_pending_handshakes) {
    return refuse(StatusCode::kResourceExhausted, "too many connections being established; retry");
  }
  {
    MutexLock lock(&ticket_mu_);
    do {
      reply.ticket = ticket_rng_();
    } while (reply.ticket == 0);
  }
  const size_t i = next_loop_.fetch_add(1) % slots_.size();
  LoopSlot* slot = slots_[i].get();
  Status opened = UnavailableError("server stopping");
  {
    MutexLock lock(&slot->mu);
    if (slot->loop == nullptr) return refuse(StatusCode::kUnavailable, "server stopping");
  }
  slot->own_loop->RunSync(
      [&] { opened = OpenConnection(slot, peer, address, reply.ticket, peer_errors); });
  if (!opened.ok()) return refuse(opened.code(), std::string(opened.message()));
  reply.body = slot->worker_address;
  return reply;
}

Status RpcServerImpl::OpenConnection(LoopSlot* slot, const std::string& peer,
                                     std::span<const uint8_t> address, uint64_t ticket,
                                     bool peer_errors) {
  const size_t max_hdr = slot->own_loop->ucx_worker().max_am_header();
  auto conn = std::make_shared<ServerConnection>(
      this, slots_[slot->index], next_conn_id_.fetch_add(1), peer,
      max_hdr > kFrameHeaderSize ? max_hdr - kFrameHeaderSize : 0);
  conn->ticket = ticket;
  // The server's own endpoint: UCX destroys endpoints it created itself
  // (those a request's reply_ep names) when their peer fails, so a map keyed
  // by one could hold a freed pointer, or one reused for another client.
  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                 UCP_EP_PARAM_FIELD_ERR_HANDLER;
  p.address = reinterpret_cast<const ucp_address_t*>(address.data());
  // The client's choice: UCX refuses an endpoint pair whose error modes
  // differ, and PEER (failures reported, needed for safe teardown when a
  // client dies mid-transfer) costs the shared-memory lanes in UCX 1.13.
  p.err_mode = peer_errors ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  p.err_handler.cb = &RpcServerImpl::OnEpError;
  // The slot, not the connection: UCX may report an error for an endpoint
  // whose connection object is already gone; the lookup by ep then misses.
  p.err_handler.arg = slot;
  ucp_ep_h ep = nullptr;
  ucs_status_t st = ucp_ep_create(slot->own_loop->worker(), &p, &ep);
  if (st != UCS_OK) {
    KVCAKE_LOG(WARNING) << "refusing connection from " << peer << ": " << ucs_status_string(st);
    return UnavailableError(std::string("cannot reach the client's UCX worker: ") +
                            ucs_status_string(st));
  }
  conn->SetEndpoint(std::make_unique<UcxEndpoint>(slot->own_loop->worker(), ep));
  slot->conns.emplace(ep, conn);
  unbound_.fetch_add(1, std::memory_order_relaxed);
  counters_.Add(&RpcServerStats::connections_accepted);
  counters_.Add(&RpcServerStats::connections_open);
  KVCAKE_LOG(DEBUG) << "accepted connection " << conn->id() << " from " << peer << " on io thread "
                    << slot->index;
  return Status::Ok();
}

bool RpcServerImpl::TryBind(ServerConnection* conn, std::span<const uint8_t> head) {
  Result<FrameHeader> h = DecodeFrameHead(head, options_.limits);
  if (!h.ok() || !h->is_control() || h->is_response() || h->opcode != kControlOpHello ||
      h->meta_in_data() || h->meta_size != 8 || h->payload_size != 0) {
    return false;
  }
  uint64_t ticket = 0;
  for (int b = 7; b >= 0; --b) ticket = (ticket << 8) | head[kFrameHeaderSize + b];
  if (ticket != conn->ticket) return false;
  conn->bound = true;
  unbound_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void RpcServerImpl::OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* slot = static_cast<LoopSlot*>(arg);
  RpcServerImpl* self = slot->server;
  KVCAKE_LOG(DEBUG) << "server endpoint failed: " << ucs_status_string(status);
  // Not from inside the UCX callback: post the close.
  slot->own_loop->Post([self, slot, ep] {
    auto it = slot->conns.find(ep);
    if (it != slot->conns.end()) self->RemoveConnection(it->second.get(), "peer failed");
  });
}

void RpcServerImpl::RemoveConnection(ServerConnection* conn, const char* why) {
  LoopSlot* slot = conn->slot();
  auto it = slot->conns.find(conn->ep());
  if (it == slot->conns.end()) return;
  std::shared_ptr<ServerConnection> keep = it->second;
  slot->conns.erase(it);
  if (!keep->bound) unbound_.fetch_sub(1, std::memory_order_relaxed);
  keep->Close(why);
  counters_.Sub(&RpcServerStats::connections_open);
  handler_->OnConnectionClosed(keep->id());
}

void RpcServerImpl::Sweep(LoopSlot* slot) {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<ServerConnection>> dead;
  for (auto& [ep, conn] : slot->conns) {
    // Idle = nothing received or replied for idle_timeout and no request the
    // handler is still working on (a slow request is not a dead peer).
    const bool idle = (now - conn->last_activity() > options_.idle_timeout &&
                       conn->unreplied.load(std::memory_order_relaxed) == 0) ||
                      (!conn->bound && now - conn->last_activity() > options_.ticket_timeout);
    if (idle || conn->SendTimedOut(now, options_.send_timeout)) {
      dead.push_back(conn);
    }
  }
  for (auto& c : dead) {
    counters_.Add(&RpcServerStats::connections_closed_idle);
    KVCAKE_LOG(INFO) << "closing connection " << c->id() << " from " << c->peer()
                     << ": idle or send timeout";
    RemoveConnection(c.get(), "idle or send timeout");
  }
}

ucs_status_t RpcServerImpl::OnRequestAm(void* arg, const void* header, size_t header_length,
                                        void* data, size_t length,
                                        const ucp_am_recv_param_t* param) {
  auto* slot = static_cast<LoopSlot*>(arg);
  RpcServerImpl* self = slot->server;
  const std::span<const uint8_t> head(static_cast<const uint8_t*>(header), header_length);
  // The reply ep identifies the connection: the server's own endpoint,
  // created at the handshake, which UCX pairs with the client's.
  auto it = (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) ? slot->conns.find(param->reply_ep)
                                                                 : slot->conns.end();
  // Nothing is served before the connection's hello with its ticket.
  if (it == slot->conns.end() || (!it->second->bound && !self->TryBind(it->second.get(), head))) {
    self->counters_.Add(&RpcServerStats::malformed_frames);
    return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_REJECTED : UCS_OK;
  }
  return self->HandleRequest(slot, head, data, length, param);
}

void RpcServerImpl::HandleControl(const std::shared_ptr<ServerConnection>& conn,
                                  const FrameHeader& h) {
  counters_.Add(&RpcServerStats::control_frames);
  if (h.opcode == kControlOpGoodbye) {
    // Not from inside the AM callback (closing progresses the worker).
    conn->slot()->own_loop->Post(
        [this, conn] { RemoveConnection(conn.get(), "the client closed it"); });
    return;
  }
  std::unique_ptr<ServerCall> call(new ServerCall(conn, h, {}));
  if (h.opcode == kControlOpHello) {
    const std::string info = "kvcake-transport wire=" + std::to_string(kWireVersion) +
                             " io_threads=" + std::to_string(options_.io_threads) +
                             " tls=" + context_->options().Tls();
    call->Reply(Status::Ok(), std::span<const uint8_t>(
                                  reinterpret_cast<const uint8_t*>(info.data()), info.size()));
  } else {
    call->Reply(Status::Ok());
  }
}

ucs_status_t RpcServerImpl::HandleRequest(LoopSlot* slot, std::span<const uint8_t> head, void* data,
                                          size_t length, const ucp_am_recv_param_t* param) {
  const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  auto it = slot->conns.find(param->reply_ep);
  std::shared_ptr<ServerConnection> conn = it->second;
  conn->Touch();
  {
    MutexLock lock(&conn->info_mu);
    if (conn->transport.empty()) {
      const std::string t = DescribeEndpointTransports(conn->ep());
      conn->transport = t;
      const size_t am = t.find("am:");
      const std::string am_tl = am == std::string::npos ? "" : t.substr(am + 3, 5);
      if (am_tl.rfind("tcp", 0) == 0) {
        counters_.Add(&RpcServerStats::connections_tcp);
      } else if (am_tl.rfind("posix", 0) == 0 || am_tl.rfind("sysv", 0) == 0) {
        counters_.Add(&RpcServerStats::connections_shm);
      } else {
        counters_.Add(&RpcServerStats::connections_other);
      }
      KVCAKE_LOG(INFO) << "connection " << conn->id() << " from " << conn->peer()
                       << " uses UCX lanes: " << conn->transport;
    }
  }

  Result<FrameHeader> decoded = DecodeFrameHead(head, options_.limits);
  Status bad;
  if (!decoded.ok()) {
    bad = decoded.status();
  } else if (decoded->is_response()) {
    bad = InvalidArgumentError("response frame sent to the server");
  } else if (decoded->data_size() != length) {
    bad = InvalidArgumentError("frame announces " + std::to_string(decoded->data_size()) +
                               " bytes of data but " + std::to_string(length) + " arrived");
  }
  if (!bad.ok()) {
    counters_.Add(&RpcServerStats::malformed_frames);
    uint64_t id = 0;
    uint32_t flags = 0;
    if (internal::PeekRequestId(head, &id, &flags)) {
      KVCAKE_LOG(WARNING) << "malformed frame from " << conn->peer() << ": " << bad.ToString();
      FrameHeader h;
      h.opcode = 1;
      h.request_id = id;
      h.flags = flags & kFlagControl;
      std::unique_ptr<ServerCall> call(new ServerCall(conn, h, {}));
      call->Reply(bad);
    } else {
      KVCAKE_LOG(WARNING) << "unreadable frame from " << conn->peer() << " (" << bad.ToString()
                          << "); closing the connection";
      // Not from inside the AM callback (closing progresses the worker).
      slot->own_loop->Post([this, conn] { RemoveConnection(conn.get(), "unreadable frame"); });
    }
    return rndv ? UCS_ERR_INVALID_PARAM : UCS_OK;
  }
  const FrameHeader& h = *decoded;
  if (h.is_control()) {
    HandleControl(conn, h);
    return rndv ? UCS_ERR_INVALID_PARAM : UCS_OK;
  }
  counters_.Add(&RpcServerStats::requests);
  if (Status admitted = handler_->CheckRequestHeader(h); !admitted.ok()) {
    counters_.Add(&RpcServerStats::payloads_refused);
    std::unique_ptr<ServerCall> call(new ServerCall(conn, h, {}));
    call->Reply(admitted);
    return rndv ? UCS_ERR_NO_RESOURCE : UCS_OK;
  }
  if (h.meta_in_data()) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (!rndv) {
      DeliverEager(conn, h, std::span<const uint8_t>(bytes, h.meta_size), bytes + h.meta_size,
                   h.payload_size);
      return UCS_OK;
    }
    // Slow path for oversized meta with a large payload: stage meta+payload,
    // then deliver as if eager (one extra copy of the payload).
    // Bounded: a request is refused before anything is allocated when the
    // staged total would pass the limit, and an allocation failure is a
    // refusal too, never an abort.
    const uint64_t before = staged_bytes_.fetch_add(length, std::memory_order_acq_rel);
    std::unique_ptr<uint8_t[]> staging;
    if (before + length <= options_.max_staged_bytes) {
      staging.reset(new (std::nothrow) uint8_t[length]);
    }
    if (!staging) {
      staged_bytes_.fetch_sub(length, std::memory_order_acq_rel);
      counters_.Add(&RpcServerStats::payloads_refused);
      std::unique_ptr<ServerCall> call(new ServerCall(conn, h, {}));
      call->Reply(ResourceExhaustedError("request of " + std::to_string(length) +
                                         " bytes would pass the server's staging limit"));
      return UCS_ERR_NO_RESOURCE;
    }
    auto staged = std::make_unique<StagedRecv>();
    staged->conn = conn;
    staged->header = h;
    staged->bytes = std::move(staging);
    staged->size = length;
    ucp_request_param_t rp{};
    rp.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
    rp.cb.recv_am = &RpcServerImpl::OnStagedReceived;
    rp.user_data = staged.get();
    rp.datatype = ucp_dt_make_contig(1);
    ucs_status_ptr_t req =
        ucp_am_recv_data_nbx(slot->own_loop->worker(), data, staged->bytes.get(), length, &rp);
    if (req == nullptr) {
      OnStagedReceived(nullptr, UCS_OK, length, staged.release());
    } else if (UCS_PTR_IS_ERR(req)) {
      OnStagedReceived(nullptr, UCS_PTR_STATUS(req), 0, staged.release());
    } else {
      (void)staged.release();  // owned by the UCX request
    }
    return UCS_INPROGRESS;
  }
  if (!rndv) {
    DeliverEager(conn, h, head.subspan(kFrameHeaderSize, h.meta_size),
                 static_cast<const uint8_t*>(data), length);
    return UCS_OK;
  }
  std::unique_ptr<ServerCall> call(
      new ServerCall(conn, h, head.subspan(kFrameHeaderSize, h.meta_size)));
  Status accepted = AcceptInto(*call);
  if (!accepted.ok()) {
    // Backpressure: the sender's rendezvous send completes with this status
    // and no bytes move.
    return UCS_ERR_NO_RESOURCE;
  }
  auto recv = std::make_unique<InboundRecv>();
  internal::DataDesc d = internal::DescribeRecv(call->payload_buffers_, length, &recv->iov);
  recv->call = std::move(call);
  ucp_request_param_t rp{};
  rp.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
  rp.cb.recv_am = &RpcServerImpl::OnPayloadReceived;
  rp.user_data = recv.get();
  rp.datatype = d.datatype;
  ucs_status_ptr_t req =
      ucp_am_recv_data_nbx(slot->own_loop->worker(), data, d.buffer, d.count, &rp);
  if (req == nullptr) {
    OnPayloadReceived(nullptr, UCS_OK, length, recv.release());
  } else if (UCS_PTR_IS_ERR(req)) {
    OnPayloadReceived(nullptr, UCS_PTR_STATUS(req), 0, recv.release());
  } else {
    (void)recv.release();  // owned by the UCX request until OnPayloadReceived
  }
  return UCS_INPROGRESS;
}

Status RpcServerImpl::AcceptInto(ServerCall& call) {
  Status accepted = handler_->AcceptPayload(call, &call.payload_buffers_);
  if (accepted.ok() && TotalSize(call.payload_buffers_) != call.payload_size()) {
    accepted = InternalError("handler gave " + std::to_string(TotalSize(call.payload_buffers_)) +
                             " bytes of buffers for a " + std::to_string(call.payload_size()) +
                             "-byte payload");
  }
  if (!accepted.ok()) {
    counters_.Add(&RpcServerStats::payloads_refused);
    call.payload_buffers_.clear();
    call.Reply(accepted);
  }
  return accepted;
}

void RpcServerImpl::DeliverEager(const std::shared_ptr<ServerConnection>& conn,
                                 const FrameHeader& h, std::span<const uint8_t> meta,
                                 const uint8_t* payload, size_t payload_size) {
  std::unique_ptr<ServerCall> call(new ServerCall(conn, h, meta));
  if (payload_size > 0) {
    if (!AcceptInto(*call).ok()) return;  // refused: already answered
    internal::ScatterCopy(payload, payload_size, call->payload_buffers_);
    counters_.Add(&RpcServerStats::bytes_received, payload_size);
  }
  handler_->OnRequest(std::move(call));
}

StagedRecv::~StagedRecv() {
  conn->server()->staged_bytes_.fetch_sub(size, std::memory_order_acq_rel);
}

void RpcServerImpl::OnStagedReceived(void* request, ucs_status_t status, size_t length,
                                     void* user_data) {
  std::unique_ptr<StagedRecv> staged(static_cast<StagedRecv*>(user_data));
  if (request != nullptr) ucp_request_free(request);
  RpcServerImpl* self = staged->conn->server();
  const FrameHeader& h = staged->header;
  if (status != UCS_OK) {
    std::unique_ptr<ServerCall> call(new ServerCall(staged->conn, h, {}));
    call->Reply(UcsToStatus(status, "receiving request"));
    return;
  }
  self->DeliverEager(staged->conn, h, std::span<const uint8_t>(staged->bytes.get(), h.meta_size),
                     staged->bytes.get() + h.meta_size, h.payload_size);
}

void RpcServerImpl::OnPayloadReceived(void* request, ucs_status_t status, size_t length,
                                      void* user_data) {
  std::unique_ptr<InboundRecv> recv(static_cast<InboundRecv*>(user_data));
  if (request != nullptr) ucp_request_free(request);
  std::unique_ptr<ServerCall> call = std::move(recv->call);
  RpcServerImpl* self = call->conn_->server();
  if (status == UCS_OK) {
    self->counters_.Add(&RpcServerStats::bytes_received, length);
  } else {
    call->payload_status_ = UcsToStatus(status, "receiving request payload");
  }
  self->handler_->OnRequest(std::move(call));
}

// ---------------------------------------------------------------------------
// RpcServer

RpcServer::RpcServer(std::unique_ptr<RpcServerImpl> impl) : impl_(std::move(impl)) {}
RpcServer::~RpcServer() { Stop(); }

Result<std::unique_ptr<RpcServer>> RpcServer::Start(const RpcServerOptions& options,
                                                    RpcHandler* handler) {
  auto impl = std::make_unique<RpcServerImpl>(options, handler);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<RpcServer>(new RpcServer(std::move(impl)));
}

void RpcServer::Stop() { impl_->Stop(); }
uint16_t RpcServer::bound_port() const { return impl_->port_; }
std::string RpcServer::address() const { return impl_->host_ + ":" + std::to_string(impl_->port_); }
const RpcServerOptions& RpcServer::options() const { return impl_->options_; }

RpcServerStats RpcServer::stats() const { return impl_->counters_.Snapshot(); }

std::vector<ConnectionInfo> RpcServer::Connections() const {
  std::vector<ConnectionInfo> out;
  for (size_t i = 0; i < impl_->loops_.size(); ++i) {
    LoopSlot* slot = impl_->slots_[i].get();
    impl_->loops_[i]->RunSync([&] {
      for (auto& [ep, conn] : slot->conns) {
        ConnectionInfo ci;
        ci.id = conn->id();
        ci.peer = conn->peer();
        {
          MutexLock lock(&conn->info_mu);
          ci.transport = conn->transport.empty() ? DescribeEndpointTransports(ep) : conn->transport;
        }
        ci.io_thread = slot->index;
        out.push_back(std::move(ci));
      }
    });
  }
  return out;
}

}  // namespace kvcake::transport
