// transport_bench: quick throughput check of the RPC layer on loopback.
//
//   transport_bench [tcp|shm] [value_bytes] [seconds] [window] [values]
//
// "get": small request, `value_bytes` reply received into the caller's
// buffer; "put": `value_bytes` request payload received into a handler
// buffer, empty reply. Gets cycle over `values` distinct server-side values
// (default 1: cache-hot, as ucx_perftest's single buffer). Prints GB/s for both. Compare with
//   ucx_perftest -t tag_bw -s <value_bytes> (UCX_TLS=tcp or posix,sysv,cma).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "transport/rpc_client.h"
#include "transport/rpc_server.h"

using namespace kvcake;
using namespace kvcake::transport;

namespace {

class BenchHandler : public RpcHandler {
 public:
  BenchHandler(size_t n, int values) : values_(values, std::vector<uint8_t>(n, 0xab)), sink_(n) {}
  Status AcceptPayload(ServerCall& call, std::vector<MutableBuffer>* target) override {
    target->push_back({sink_.data(), call.payload_size()});  // concurrent puts overwrite: fine
    return Status::Ok();
  }
  void OnRequest(std::unique_ptr<ServerCall> call) override {
    if (call->opcode() == 1) {
      const auto& v = values_[next_++ % values_.size()];  // loop thread only
      ConstBuffer b{v.data(), v.size()};
      call->Reply(Status::Ok(), {}, {&b, 1}, [](const Status&) {});
    } else {
      call->Reply(Status::Ok());
    }
  }

 private:
  std::vector<std::vector<uint8_t>> values_;
  size_t next_ = 0;
  std::vector<uint8_t> sink_;
};

double Run(RpcClient& c, uint16_t op, size_t n, double seconds, int window) {
  std::vector<std::vector<uint8_t>> bufs(window, std::vector<uint8_t>(n));
  std::vector<uint8_t> src(n, 0xcd);
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0;
  uint64_t done = 0, failed = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::vector<int> free_slots;
  for (int i = 0; i < window; ++i) free_slots.push_back(i);
  while (std::chrono::steady_clock::now() < end) {
    int slot;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !free_slots.empty(); });
      slot = free_slots.back();
      free_slots.pop_back();
      ++outstanding;
    }
    MutableBuffer mb{bufs[slot].data(), n};
    ConstBuffer cb{src.data(), n};
    CallRequest req;
    req.opcode = op;
    if (op == 1) {
      req.reply_buffers = {&mb, 1};
    } else {
      req.payload = {&cb, 1};
    }
    c.CallAsync(req, [&, slot](RpcReply&& r) {
      std::lock_guard<std::mutex> lock(mu);
      if (r.status.ok()) {
        ++done;
      } else {
        ++failed;
      }
      --outstanding;
      free_slots.push_back(slot);
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return outstanding == 0; });
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) std::fprintf(stderr, "%llu calls failed\n", static_cast<unsigned long long>(failed));
  return static_cast<double>(done) * n / secs / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tls = argc > 1 ? argv[1] : "tcp";
  const size_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : (1 << 20);
  const double seconds = argc > 3 ? std::atof(argv[3]) : 3.0;
  const int window = argc > 4 ? std::atoi(argv[4]) : 8;
  const int values = argc > 5 ? std::max(1, std::atoi(argv[5])) : 1;
  // 6th argument "peer": the client asks for UCX peer-failure handling.
  const bool peer_errors = argc > 6 && std::string(argv[6]) == "peer";
  auto t = ParseUcxTransport(tls);
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
    return 2;
  }
  BenchHandler handler(n, values);
  RpcServerOptions so;
  so.ucx.transport = *t;
  auto server = RpcServer::Start(so, &handler);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  RpcClientOptions co;
  co.ucx.transport = *t;
  co.ucx.peer_error_handling = peer_errors;
  auto client = RpcClient::Connect((*server)->address(), co);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  std::printf("transport=%s lanes=[%s] value=%zu window=%d\n", tls.c_str(),
              (*client)->transport_info().c_str(), n, window);
  const double get = Run(**client, 1, n, seconds, window);
  const double put = Run(**client, 2, n, seconds, window);
  std::printf("get %.2f GB/s  put %.2f GB/s\n", get, put);
  // Small synchronous round trips (latency).
  std::vector<double> us;
  const uint8_t meta[64] = {};
  for (int i = 0; i < 2000; ++i) {
    CallRequest req;
    req.opcode = 2;
    req.meta = meta;
    const auto t0 = std::chrono::steady_clock::now();
    RpcReply r = (*client)->Call(req);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!r.status.ok()) return 1;
  }
  std::sort(us.begin(), us.end());
  std::printf("small sync call: p50 %.1f us  p99 %.1f us\n", us[us.size() / 2],
              us[us.size() * 99 / 100]);
  return 0;
}
