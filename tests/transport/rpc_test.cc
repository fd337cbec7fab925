// Integration tests of the UCX RPC layer on loopback: real UCX, real
// listener, real sockets. Parameterised over the tcp and shared-memory
// transports.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "transport/am_message.h"
#include "transport/handshake.h"
#include "transport/rpc_client.h"
#include "transport/rpc_server.h"
#include "transport/ucx.h"
#include "transport/worker_loop.h"

#if defined(__SANITIZE_THREAD__)
// UCX's memory-event hooks (UCM) crash under TSan's interceptors, and UCM
// reads its configuration when the library loads. A TSan build of this test
// therefore re-executes itself once with UCX_MEM_EVENTS=no.
__attribute__((constructor)) static void DisableUcxMemEventsUnderTsan() {
  if (getenv("UCX_MEM_EVENTS") != nullptr) return;
  setenv("UCX_MEM_EVENTS", "no", 1);
  std::vector<char*> args;
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  static std::vector<std::string> storage;
  for (std::string a; std::getline(cmdline, a, '\0');) storage.push_back(a);
  for (auto& a : storage) args.push_back(a.data());
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
}
#endif

namespace kvcake::transport {
namespace {

using namespace std::chrono_literals;

enum TestOp : uint16_t {
  kEcho = 1,      // reply meta = request meta, reply payload = request payload
  kRefuse = 2,    // AcceptPayload refuses with RESOURCE_EXHAUSTED
  kLater = 3,     // replied from another thread after meta[0] ms
  kHold = 4,      // never replied until the handler is destroyed
  kGenerate = 5,  // reply payload of N bytes (N = u64 in meta), pattern i*7+N
  kFail = 6,      // error reply with a message
};

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v[i] = static_cast<uint8_t>(x);
  }
  return v;
}

class TestHandler : public RpcHandler {
 public:
  ~TestHandler() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.clear();
    }
    for (auto& t : threads_) t.join();
  }

  Status AcceptPayload(ServerCall& call, std::vector<MutableBuffer>* target) override {
    accept_calls_++;
    if (call.opcode() == kRefuse) return ResourceExhaustedError("test store is full");
    auto buf = std::make_shared<std::vector<uint8_t>>(call.payload_size());
    // Two pieces, to exercise scatter receive.
    const size_t half = buf->size() / 2;
    target->push_back({buf->data(), half});
    target->push_back({buf->data() + half, buf->size() - half});
    call.set_user_data(buf);
    return Status::Ok();
  }

  void OnRequest(std::unique_ptr<ServerCall> call) override {
    requests_++;
    if (!call->payload_status().ok()) {
      call->Reply(call->payload_status());
      return;
    }
    switch (call->opcode()) {
      case kEcho: {
        auto buf = std::static_pointer_cast<std::vector<uint8_t>>(call->user_data());
        std::vector<ConstBuffer> out;
        if (buf && !buf->empty()) out.push_back({buf->data(), buf->size()});
        // `buf` stays alive until the send completes.
        call->Reply(Status::Ok(), call->meta(), out, [buf](const Status&) {});
        return;
      }
      case kLater: {
        const int ms = call->meta().empty() ? 10 : call->meta()[0] * 10;
        std::lock_guard<std::mutex> lock(mu_);
        threads_.emplace_back([c = std::shared_ptr<ServerCall>(std::move(call)), ms] {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          const uint8_t m[1] = {0x5a};
          c->Reply(Status::Ok(), m);
        });
        return;
      }
      case kHold: {
        std::lock_guard<std::mutex> lock(mu_);
        held_.push_back(std::move(call));
        return;
      }
      case kGenerate: {
        uint64_t n = 0;
        std::memcpy(&n, call->meta().data(), std::min<size_t>(8, call->meta().size()));
        auto buf = std::make_shared<std::vector<uint8_t>>(Pattern(n, static_cast<uint32_t>(n)));
        ConstBuffer b{buf->data(), buf->size()};
        call->Reply(Status::Ok(), {}, {&b, 1}, [buf](const Status&) {});
        return;
      }
      case kFail:
        call->Reply(NotFoundError("no such block 42"));
        return;
      default:
        call->Reply(UnimplementedError("unknown test op"));
    }
  }

  std::atomic<int> accept_calls_{0};
  std::atomic<int> requests_{0};

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<ServerCall>> held_;
  std::vector<std::thread> threads_;
};

struct Param {
  UcxTransport transport;
  const char* name;
};

class RpcTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    RpcServerOptions so;
    so.listen = "127.0.0.1:0";
    so.io_threads = 2;
    so.ucx.transport = GetParam().transport;
    auto s = RpcServer::Start(so, &handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    ASSERT_NE(server_->bound_port(), 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  RpcClientOptions ClientOptions() const {
    RpcClientOptions co;
    co.ucx.transport = GetParam().transport;
    co.default_timeout = 20s;
    return co;
  }

  std::unique_ptr<RpcClient> MakeClient() {
    auto c = RpcClient::Connect(server_->address(), ClientOptions());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Echo of `size` bytes sent as 3 pieces and received into 2 buffers.
  void Echo(RpcClient& client, size_t size, uint32_t seed, size_t meta_size = 4) {
    auto data = Pattern(size, seed);
    const size_t a = size / 3, b = size / 3;
    ConstBuffer send[3] = {
        {data.data(), a}, {data.data() + a, b}, {data.data() + a + b, size - a - b}};
    std::vector<uint8_t> out(size + 16, 0xee);
    MutableBuffer recv[2] = {{out.data(), size / 2},
                             {out.data() + size / 2, out.size() - size / 2}};
    const std::vector<uint8_t> meta = Pattern(meta_size, seed + 77);
    CallRequest req;
    req.opcode = kEcho;
    req.meta = meta;
    req.payload = send;
    req.reply_buffers = recv;
    RpcReply r = client.Call(req);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_EQ(r.payload_size, size);
    ASSERT_EQ(r.meta, meta);
    if (size > 0) {
      ASSERT_EQ(0, std::memcmp(out.data(), data.data(), size)) << "payload bytes differ";
    }
    EXPECT_EQ(out[size], 0xee) << "wrote past the reply";
  }

  // Asks for a generated reply of `n` bytes, received into all of `*out`.
  static RpcReply Generate(RpcClient& client, uint64_t n, std::vector<uint8_t>* out) {
    MutableBuffer mb{out->data(), out->size()};
    CallRequest req;
    req.opcode = kGenerate;
    req.meta = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&n), 8);
    req.reply_buffers = {&mb, 1};
    return client.Call(req);
  }

  TestHandler handler_;
  std::unique_ptr<RpcServer> server_;
};

TEST_P(RpcTest, ConnectReportsTransport) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->connected());
  const std::string t = c->transport_info();
  EXPECT_NE(t.find("am:"), std::string::npos) << t;
  if (GetParam().transport == UcxTransport::kSharedMemory) {
    EXPECT_TRUE(t.find("posix") != std::string::npos || t.find("sysv") != std::string::npos)
        << "expected a shared-memory AM lane, got " << t;
  } else {
    EXPECT_NE(t.find("tcp"), std::string::npos) << t;
    // UCX's tcp PUT emulation is off by default (UcxOptions::tcp_zero_copy).
    EXPECT_EQ(t.find("rma_bw:tcp"), std::string::npos) << t;
  }
  EXPECT_NE(c->server_info().find("wire=1"), std::string::npos) << c->server_info();
  EXPECT_TRUE(c->Ping(5s).ok());
  EXPECT_GT(c->max_inline_meta_bytes(), 30000u);  // am_segment_bytes applied (shm: 32 KiB cap)
  auto conns = server_->Connections();
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_NE(conns[0].transport.find("am:"), std::string::npos);
  EXPECT_EQ(conns[0].transport.find("rma_bw:tcp"), std::string::npos) << conns[0].transport;
  const RpcServerStats st = server_->stats();
  if (GetParam().transport == UcxTransport::kSharedMemory) {
    EXPECT_EQ(st.connections_shm, 1u);
    EXPECT_EQ(st.connections_tcp, 0u);
  } else {
    EXPECT_EQ(st.connections_tcp, 1u);
    EXPECT_EQ(st.connections_shm, 0u);
  }
}

TEST_P(RpcTest, EchoSmallAndEmpty) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  Echo(*c, 0, 1);
  Echo(*c, 1, 2);
  Echo(*c, 1000, 3);
  Echo(*c, 60 * 1024, 4);  // below the rendezvous threshold
}

TEST_P(RpcTest, EchoLargeRendezvous) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  Echo(*c, 4 << 20, 5);
  Echo(*c, (8 << 20) + 13, 6);
  EXPECT_GE(server_->stats().bytes_received, (12u << 20));
}

TEST_P(RpcTest, ReplyLandsInCallerBuffers) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  for (uint64_t n : {uint64_t{100}, uint64_t{5 << 20}}) {
    std::vector<uint8_t> out(n);
    RpcReply r = Generate(*c, n, &out);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.payload_size, n);
    EXPECT_EQ(out, Pattern(n, static_cast<uint32_t>(n)));
  }
}

TEST_P(RpcTest, ReplyLargerThanBuffersIsOutOfRange) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  for (uint64_t n : {uint64_t{1000}, uint64_t{2 << 20}}) {
    std::vector<uint8_t> out(n - 1);
    RpcReply r = Generate(*c, n, &out);
    EXPECT_EQ(r.status.code(), StatusCode::kOutOfRange) << r.status.ToString();
  }
  Echo(*c, 3000, 7);  // still usable
}

TEST_P(RpcTest, ErrorStatusAndMessageReachTheCaller) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  CallRequest req;
  req.opcode = kFail;
  RpcReply r = c->Call(req);
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status.message(), "no such block 42");
  EXPECT_TRUE(r.meta.empty());
  EXPECT_EQ(c->stats().calls_error, 1u);
}

TEST_P(RpcTest, BackpressureRefusalKeepsConnectionUsable) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  for (size_t n : {size_t{100}, size_t{4 << 20}}) {  // eager and rendezvous
    auto data = Pattern(n, 9);
    ConstBuffer b{data.data(), data.size()};
    CallRequest req;
    req.opcode = kRefuse;
    req.payload = {&b, 1};
    RpcReply r = c->Call(req);
    EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted) << r.status.ToString();
    EXPECT_EQ(r.status.message(), "test store is full");
  }
  EXPECT_EQ(server_->stats().payloads_refused, 2u);
  EXPECT_TRUE(c->connected());
  Echo(*c, 4 << 20, 10);
}

TEST_P(RpcTest, ManyConcurrentCallsFromManyThreads) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  constexpr int kThreads = 4, kCallsPerThread = 100;
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread keeps up to 16 async calls in flight.
      struct Slot {
        std::vector<uint8_t> in, out;
        std::atomic<bool> done{true};
      };
      std::vector<Slot> slots(16);
      std::mutex mu;
      std::condition_variable cv;
      int outstanding = 0;
      for (int i = 0; i < kCallsPerThread; ++i) {
        Slot& s = slots[i % slots.size()];
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return s.done.load(); });
          ++outstanding;
        }
        s.done = false;
        const size_t n = (i % 5 == 0) ? (256 << 10) + i : 100 + i * 37;
        s.in = Pattern(n, t * 1000 + i);
        s.out.assign(n, 0);
        ConstBuffer b{s.in.data(), n};
        MutableBuffer mb{s.out.data(), n};
        CallRequest req;
        req.opcode = kEcho;
        req.payload = {&b, 1};
        req.reply_buffers = {&mb, 1};
        c->CallAsync(req, [&, sp = &s, n](RpcReply&& r) {
          if (r.status.ok() && r.payload_size == n && sp->in == sp->out) {
            ok++;
          } else {
            bad++;
          }
          std::lock_guard<std::mutex> lock(mu);
          sp->done = true;
          --outstanding;
          cv.notify_all();
        });
      }
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return outstanding == 0; });
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kCallsPerThread);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(c->stats().in_flight, 0u);
}

TEST_P(RpcTest, SeveralClientsAcrossIoThreads) {
  std::vector<std::unique_ptr<RpcClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(MakeClient());
    ASSERT_TRUE(clients.back());
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        auto data = Pattern(70000 + k, i * 100 + k);
        std::vector<uint8_t> out(data.size());
        ConstBuffer b{data.data(), data.size()};
        MutableBuffer mb{out.data(), out.size()};
        CallRequest req;
        req.opcode = kEcho;
        req.payload = {&b, 1};
        req.reply_buffers = {&mb, 1};
        RpcReply r = clients[i]->Call(req);
        if (!r.status.ok() || out != data) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::set<int> io_threads;
  for (const auto& ci : server_->Connections()) io_threads.insert(ci.io_thread);
  EXPECT_EQ(io_threads.size(), 2u) << "connections should be spread over both I/O threads";
}

TEST_P(RpcTest, ReplyFromAnotherThread) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  const uint8_t meta[1] = {2};
  CallRequest req;
  req.opcode = kLater;
  req.meta = meta;
  RpcReply r = c->Call(req);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.meta, std::vector<uint8_t>{0x5a});
}

TEST_P(RpcTest, TimeoutWithoutDataInFlightKeepsConnection) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  CallRequest req;
  req.opcode = kHold;
  req.timeout = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  RpcReply r = c->Call(req);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status.code(), StatusCode::kDeadlineExceeded) << r.status.ToString();
  EXPECT_LT(waited, 10s);  // bounded, not a hang (generous for a loaded box)
  EXPECT_TRUE(c->connected());
  Echo(*c, 500, 11);
  EXPECT_EQ(c->stats().calls_timed_out, 1u);
}

TEST_P(RpcTest, BadCallArgumentsFailFast) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  CallRequest req;
  req.opcode = 0;
  EXPECT_EQ(c->Call(req).status.code(), StatusCode::kInvalidArgument);
  req.opcode = kMaxOpcode + 1;
  EXPECT_EQ(c->Call(req).status.code(), StatusCode::kInvalidArgument);
  std::vector<uint8_t> big_meta(c->max_meta_bytes() + 1);
  req.opcode = kEcho;
  req.meta = big_meta;
  EXPECT_EQ(c->Call(req).status.code(), StatusCode::kInvalidArgument);
}

TEST_P(RpcTest, MetaLargerThanTheAmHeaderTravelsInTheData) {
  auto c = MakeClient();
  ASSERT_TRUE(c);
  const size_t big = c->max_inline_meta_bytes() + 1000;
  Echo(*c, 0, 21, big);                           // meta only (eager data)
  Echo(*c, 3000, 22, big);                        // meta + small payload
  Echo(*c, 4 << 20, 23, big);                     // meta + rendezvous payload (server stages)
  Echo(*c, 4 << 20, 24, 200 * 1024);              // meta itself rendezvous-sized
  Echo(*c, 100, 25, c->max_inline_meta_bytes());  // exactly inline
  EXPECT_EQ(server_->stats().malformed_frames, 0u);
}

// Sends raw bytes to the listening port with a plain TCP socket.
void SendGarbage(uint16_t port, const std::string& bytes, bool linger_open) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << strerror(errno);
  (void)!write(fd, bytes.data(), bytes.size());
  if (linger_open) std::this_thread::sleep_for(100ms);
  close(fd);
}

TEST_P(RpcTest, GarbageBytesOnTheListeningPort) {
  const uint16_t port = server_->bound_port();
  std::mt19937 rng(7);
  for (int i = 0; i < 8; ++i) {
    std::string junk(1 + rng() % 4096, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    SendGarbage(port, junk, i % 2 == 0);
  }
  SendGarbage(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true);
  SendGarbage(port, std::string(100000, 'A'), false);
  SendGarbage(port, "", false);
  // Still serving.
  auto c = MakeClient();
  ASSERT_TRUE(c);
  Echo(*c, 4 << 20, 12);
}

// A raw UCX peer that sends hand-made frames to the server's AM handler.
class RawPeer {
 public:
  static ucs_status_t OnResponse(void* arg, const void* header, size_t header_length, void* data,
                                 size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<RawPeer*>(arg);
    auto h = DecodeFrameHead(
        std::span<const uint8_t>(static_cast<const uint8_t*>(header), header_length));
    if (h.ok()) {
      self->last_ = *h;
      const auto* m = static_cast<const uint8_t*>(header) + kFrameHeaderSize;
      self->last_message_.assign(reinterpret_cast<const char*>(m), h->meta_size);
    }
    self->responses_++;
    return UCS_OK;
  }

  // Handshakes with the server and opens a UCX endpoint to the worker it
  // names; with `present_ticket` also sends the first frame (hello + ticket)
  // that binds the endpoint to a connection.
  Status Connect(const std::string& address, UcxTransport t, bool present_ticket = true) {
    UcxOptions o;
    o.transport = t;
    ASSIGN_OR_RETURN(ctx_, UcxContext::Create(o));
    ASSIGN_OR_RETURN(worker_, UcxWorker::Create(*ctx_));
    ucp_am_handler_param_t ap{};
    ap.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG;
    ap.id = internal::kAmIdResponse;
    ap.cb = &RawPeer::OnResponse;
    ap.arg = this;
    if (ucp_worker_set_am_recv_handler(worker_->get(), &ap) != UCS_OK) {
      return InternalError("am handler");
    }
    ucp_address_t* addr = nullptr;
    size_t addr_len = 0;
    if (ucp_worker_get_address(worker_->get(), &addr, &addr_len) != UCS_OK) {
      return InternalError("worker address");
    }
    std::vector<uint8_t> mine(reinterpret_cast<uint8_t*>(addr),
                              reinterpret_cast<uint8_t*>(addr) + addr_len);
    ucp_worker_release_address(worker_->get(), addr);
    const uint16_t flags =
        ctx_->err_mode() == UCP_ERR_HANDLING_MODE_PEER ? kHelloFlagPeerErrors : uint16_t{0};
    ASSIGN_OR_RETURN(HelloReply hello, ClientHandshake(address, mine, 10s, flags));
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    p.address = reinterpret_cast<const ucp_address_t*>(hello.body.data());
    p.err_mode = ctx_->err_mode();
    ucp_ep_h ep;
    if (ucp_ep_create(worker_->get(), &p, &ep) != UCS_OK) return InternalError("ep");
    ep_ = std::make_unique<UcxEndpoint>(worker_->get(), ep);
    if (!present_ticket) return Status::Ok();
    // The first frame: a hello control frame with the handshake's ticket.
    FrameHeader h;
    h.opcode = kControlOpHello;
    h.flags = kFlagControl;
    h.request_id = 1;
    std::vector<uint8_t> ticket(8);
    for (int b = 0; b < 8; ++b) ticket[b] = static_cast<uint8_t>(hello.ticket >> (8 * b));
    if (!SendAndWait(internal::BuildHead(h, ticket), {}, 10s) || last_.status != StatusCode::kOk) {
      return UnavailableError("hello with the ticket not answered");
    }
    return Status::Ok();
  }

  // Sends `head` (+ `data`) and progresses until a response arrives or
  // `wait` passes. Returns whether one arrived.
  bool SendAndWait(const std::vector<uint8_t>& head, const std::vector<uint8_t>& data,
                   std::chrono::milliseconds wait) {
    const int before = responses_;
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = UCP_AM_SEND_FLAG_REPLY;
    ucs_status_ptr_t req = ucp_am_send_nbx(ep_->get(), internal::kAmIdRequest, head.data(),
                                           head.size(), data.data(), data.size(), &rp);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline && responses_ == before) {
      ucp_worker_progress(worker_->get());
    }
    if (UCS_PTR_IS_PTR(req)) {
      while (ucp_request_check_status(req) == UCS_INPROGRESS &&
             std::chrono::steady_clock::now() < deadline + 1s) {
        ucp_worker_progress(worker_->get());
      }
      ucp_request_free(req);
    }
    return responses_ > before;
  }

  ~RawPeer() { ep_.reset(); }

  FrameHeader last_;
  std::string last_message_;
  int responses_ = 0;

 private:
  std::unique_ptr<UcxContext> ctx_;
  std::unique_ptr<UcxWorker> worker_;
  std::unique_ptr<UcxEndpoint> ep_;
};

std::vector<uint8_t> Head(FrameHeader h) {
  std::vector<uint8_t> b(kFrameHeaderSize);
  EncodeFrameHeader(h, b.data());
  return b;
}

TEST_P(RpcTest, MalformedFramesGetErrorsAndTheServerKeepsServing) {
  RawPeer peer;
  ASSERT_TRUE(peer.Connect(server_->address(), GetParam().transport).ok());
  // Wrong wire version: refused with a clear message, addressed by request id.
  FrameHeader h;
  h.opcode = kEcho;
  h.request_id = 77;
  h.version = 9;
  ASSERT_TRUE(peer.SendAndWait(Head(h), {}, 10s));
  EXPECT_EQ(peer.last_.request_id, 77u);
  EXPECT_TRUE(peer.last_.is_response());
  EXPECT_EQ(peer.last_.status, StatusCode::kUnimplemented);
  EXPECT_EQ(peer.last_message_, "unsupported wire version 9 (this build speaks 1)");
  // Payload size disagreeing with the data that arrived.
  h.version = kWireVersion;
  h.request_id = 78;
  h.payload_size = 10;
  ASSERT_TRUE(peer.SendAndWait(Head(h), std::vector<uint8_t>(3, 1), 10s));
  EXPECT_EQ(peer.last_.request_id, 78u);
  EXPECT_EQ(peer.last_.status, StatusCode::kInvalidArgument);
  // A corrupted header checksum (request id still readable).
  h.payload_size = 0;
  h.request_id = 79;
  auto bad = Head(h);
  bad[38] ^= 0xff;
  ASSERT_TRUE(peer.SendAndWait(bad, {}, 10s));
  EXPECT_EQ(peer.last_.request_id, 79u);
  EXPECT_EQ(peer.last_.status, StatusCode::kInvalidArgument);
  // A response frame sent to the server.
  h.request_id = 80;
  h.flags = kFlagResponse;
  ASSERT_TRUE(peer.SendAndWait(Head(h), {}, 10s));
  EXPECT_EQ(peer.last_.status, StatusCode::kInvalidArgument);
  // Unreadable bytes (no magic): no answer possible; the server drops the
  // connection instead.
  EXPECT_FALSE(peer.SendAndWait(std::vector<uint8_t>(13, 0x42), {}, 300ms));
  EXPECT_GE(server_->stats().malformed_frames, 5u);
  // A peer that reached the worker without presenting its ticket gets no
  // connection: its well-formed request is dropped unanswered.
  RawPeer stranger;
  ASSERT_TRUE(stranger
                  .Connect(server_->address(), GetParam().transport,
                           /*present_ticket=*/false)
                  .ok());
  h = FrameHeader();
  h.opcode = kEcho;
  h.request_id = 81;
  EXPECT_FALSE(stranger.SendAndWait(Head(h), {}, 500ms));
  // Nor does a replayed or invented ticket open one.
  h.opcode = kControlOpHello;
  h.flags = kFlagControl;
  EXPECT_FALSE(stranger.SendAndWait(internal::BuildHead(h, std::vector<uint8_t>(8, 7)), {}, 500ms));
  // Other clients are still served.
  auto c = MakeClient();
  ASSERT_TRUE(c);
  Echo(*c, 4 << 20, 30);
}

TEST_P(RpcTest, ClientsWithTheOtherTransportSettingInteroperate) {
  RpcClientOptions co = ClientOptions();
  co.ucx.transport =
      GetParam().transport == UcxTransport::kTcp ? UcxTransport::kSharedMemory : UcxTransport::kTcp;
  auto c = RpcClient::Connect(server_->address(), co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // Only tcp is common to both sides.
  EXPECT_NE((*c)->transport_info().find("am:tcp"), std::string::npos) << (*c)->transport_info();
  Echo(**c, 4 << 20, 31);
}

TEST_P(RpcTest, UnreachableServerFailsBounded) {
  // A port with nothing listening: bind a socket, read its port, close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const int port = ntohs(sa.sin_port);
  close(fd);
  RpcClientOptions co = ClientOptions();
  co.connect_timeout = 2s;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = RpcClient::Connect("127.0.0.1:" + std::to_string(port), co);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().code() == StatusCode::kUnavailable ||
              c.status().code() == StatusCode::kDeadlineExceeded)
      << c.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  if (c.status().code() == StatusCode::kUnavailable) {
    // UCX calls this "Endpoint timeout"; the message says what happened.
    EXPECT_NE(c.status().message().find("Connection refused"), std::string_view::npos)
        << c.status().ToString();
    EXPECT_NE(c.status().message().find("is kvcaked running?"), std::string_view::npos);
  }
}

TEST_P(RpcTest, IdleConnectionsAreClosedByTheServer) {
  server_->Stop();
  RpcServerOptions so;
  so.ucx.transport = GetParam().transport;
  // Long enough that a sanitizer build on a loaded machine sends the slow
  // client's request (below) before its connection counts as idle.
  so.idle_timeout = 1000ms;
  auto s = RpcServer::Start(so, &handler_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  server_ = std::move(s).value();
  RpcClientOptions co = ClientOptions();
  co.keepalive_interval = 0ms;  // silent client
  auto c = RpcClient::Connect(server_->address(), co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // The two counters are updated one after the other on the I/O thread:
  // wait for both.
  for (int i = 0; i < 200 && (server_->stats().connections_closed_idle == 0 ||
                              server_->stats().connections_open != 0);
       ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->stats().connections_closed_idle, 1u);
  EXPECT_EQ(server_->stats().connections_open, 0u);
  // A silent client whose request the server works on for longer than the
  // idle timeout is not cut off.
  auto slow = RpcClient::Connect(server_->address(), co);
  ASSERT_TRUE(slow.ok()) << slow.status().ToString();
  const uint8_t delay[1] = {200};  // 2 s
  CallRequest later;
  later.opcode = kLater;
  later.meta = delay;
  RpcReply lr = (*slow)->Call(later);
  EXPECT_TRUE(lr.status.ok()) << lr.status.ToString();
  EXPECT_EQ(server_->stats().connections_closed_idle, 1u);
  // A client with keepalive stays connected past the idle timeout.
  auto c2 = RpcClient::Connect(server_->address(), [&] {
    RpcClientOptions o = ClientOptions();
    o.keepalive_interval = 50ms;
    return o;
  }());
  ASSERT_TRUE(c2.ok());
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(server_->stats().connections_open, 1u);
  EXPECT_TRUE((*c2)->Ping(5s).ok());
}

// The server runs in a child process that is killed with SIGKILL.
TEST_P(RpcTest, KilledServerCostsABoundedTimeout) {
  server_->Stop();
  server_.reset();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    TestHandler h;
    RpcServerOptions so;
    so.ucx.transport = GetParam().transport;
    auto s = RpcServer::Start(so, &h);
    uint16_t port = s.ok() ? (*s)->bound_port() : 0;
    (void)!write(pipefd[1], &port, sizeof(port));
    for (;;) pause();
  }
  close(pipefd[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(pipefd[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  close(pipefd[0]);
  ASSERT_NE(port, 0);
  RpcClientOptions co = ClientOptions();
  co.keepalive_interval = 100ms;
  co.keepalive_timeout = 1s;
  auto c = RpcClient::Connect("127.0.0.1:" + std::to_string(port), co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  RpcClient& client = **c;
  // A call the server holds, then the server dies.
  std::promise<RpcReply> held;
  CallRequest hold;
  hold.opcode = kHold;
  hold.timeout = 3s;
  client.CallAsync(hold, [&](RpcReply&& r) { held.set_value(std::move(r)); });
  ASSERT_TRUE(client.Ping(5s).ok());
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  auto fut = held.get_future();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready) << "held call hung";
  RpcReply r = fut.get();
  EXPECT_TRUE(r.status.code() == StatusCode::kUnavailable ||
              r.status.code() == StatusCode::kDeadlineExceeded)
      << r.status.ToString();
  // The connection is declared broken within keepalive bounds, and later
  // calls fail fast instead of hanging.
  for (int i = 0; i < 500 && client.connected(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(client.connected());
  CallRequest echo;
  echo.opcode = kEcho;
  echo.timeout = 2s;
  RpcReply r2 = client.Call(echo);
  EXPECT_EQ(r2.status.code(), StatusCode::kUnavailable) << r2.status.ToString();
}

INSTANTIATE_TEST_SUITE_P(Transports, RpcTest,
                         ::testing::Values(Param{UcxTransport::kTcp, "tcp"},
                                           Param{UcxTransport::kSharedMemory, "shm"}),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return std::string(p.param.name);
                         });

TEST(RpcOptionsTest, Validation) {
  RpcServerOptions so;
  EXPECT_TRUE(so.Validate().ok());
  so.io_threads = 0;
  EXPECT_FALSE(so.Validate().ok());
  so.io_threads = 1;
  so.listen = "nonsense";
  EXPECT_FALSE(so.Validate().ok());
  so.listen = "127.0.0.1:70000";
  EXPECT_FALSE(so.Validate().ok());
  RpcClientOptions co;
  EXPECT_TRUE(co.Validate().ok());
  co.default_timeout = 0ms;
  EXPECT_FALSE(co.Validate().ok());
  EXPECT_EQ(*ParseUcxTransport("shm"), UcxTransport::kSharedMemory);
  EXPECT_FALSE(ParseUcxTransport("ib").ok());
  UcxOptions u;
  u.transport = UcxTransport::kCustom;
  EXPECT_FALSE(u.Validate().ok());
  u.custom_tls = "tcp";
  EXPECT_TRUE(u.Validate().ok());
}

// The server's endpoint to a client takes the client's error mode from the
// handshake, so clients with and without peer-failure handling (tcp-only and
// shared-memory clients) share one server.
TEST(RpcPeerModeTest, TheServerAdoptsEachClientsErrorMode) {
  for (bool server_peer : {false, true}) {
    TestHandler handler;
    RpcServerOptions so;
    so.ucx.peer_error_handling = server_peer;
    auto s = RpcServer::Start(so, &handler);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (bool client_peer : {true, false}) {
      RpcClientOptions co;
      // Generous: ctest runs this beside the chaos tests' busy loops.
      co.connect_timeout = 20s;
      co.ucx.peer_error_handling = client_peer;
      auto c = RpcClient::Connect((*s)->address(), co);
      ASSERT_TRUE(c.ok()) << "server " << server_peer << " client " << client_peer << ": "
                          << c.status().ToString();
      EXPECT_TRUE((*c)->Ping(5s).ok());
    }
  }
}

// An adaptive ticker that asked for a long delay fires soon after
// HurryTicker. The RPC client slows its deadline sweep while idle and hurries
// it when a call starts, so the call's deadline is watched at once.
TEST(WorkerLoopTest, HurryTickerBringsALongDelayForward) {
  auto ctx = UcxContext::Create(UcxOptions());
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  auto worker = UcxWorker::Create(**ctx);
  ASSERT_TRUE(worker.ok()) << worker.status().ToString();
  WorkerLoop loop(std::move(worker).value(), "hurry-test");
  std::promise<void> fired;
  std::atomic<int> calls{0};
  const std::chrono::milliseconds an_hour = std::chrono::hours(1);
  const size_t id = loop.AddAdaptiveTicker(an_hour, [&] {
    if (calls.fetch_add(1) == 0) fired.set_value();
    return an_hour;
  });
  loop.Start();
  auto done = fired.get_future();
  EXPECT_EQ(done.wait_for(200ms), std::future_status::timeout);  // not due for an hour
  loop.Post([&] { loop.HurryTicker(id, 1ms); });
  EXPECT_EQ(done.wait_for(30s), std::future_status::ready);
  // A later deadline than the one it has is a no-op.
  loop.Post([&] { loop.HurryTicker(id, 2 * an_hour); });
  std::this_thread::sleep_for(100ms);
  loop.Stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST(RpcOptionsTest, BadAddressIsInvalidArgument) {
  auto c = RpcClient::Connect("not-an-address", RpcClientOptions());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvcake::transport
