// The admin HTTP API over real HTTP (loopback, ephemeral port): every
// endpoint, status codes, auth, malformed input, limits, slow clients. The
// backend is the in-memory MemoryBackend; tests against the real daemon live
// in kvcaked_admin_test.cc.

#include "daemon/admin/admin_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/kvcakectl/http_client.h"
#include "common/block_hash.h"
#include "common/metrics.h"
#include "daemon/admin/admin_router.h"
#include "tests/admin/memory_backend.h"
#include "tests/common/loopback_socket.h"

namespace kvcake::admin {
namespace {

using json = nlohmann::json;
using ctl::HttpClient;
using ctl::HttpClientOptions;
using ctl::HttpResponse;

constexpr char kToken[] = "s3cret-token-for-tests";

// A loopback TCP connection to `port` (-1 on failure), with 10 s send and
// receive timeouts so a test never hangs on it.
int ConnectLoopback(uint16_t port) {
  const int fd = kvcake::testing::ConnectLoopback(port);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// True once the peer has closed `fd` (EOF or a reset); does not block.
bool PeerClosed(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// Slowloris: holds `count` connections to `port` from a background thread.
// Even ones send a request header one byte per `interval` and never finish
// it; odd ones send nothing. A connection the server closes is reopened on
// the next round, so the pressure stays on until destruction.
//
// Thread-safety: the public methods are thread-safe.
class SlowClients {
 public:
  SlowClients(uint16_t port, int count, std::chrono::milliseconds interval)
      : port_(port), interval_(interval), fds_(count, -1), sent_(count, 0) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~SlowClients() {
    stop_.store(true);
    thread_.join();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  // Blocks until every connection has been opened once (false after 20 s).
  bool WaitAllOpened() const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!all_opened_.load()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }
  // Connections the server has closed so far.
  int closed_by_server() const { return closed_.load(); }

 private:
  void Loop() {
    const std::string header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    while (!stop_.load()) {
      bool all_open = true;
      for (size_t i = 0; i < fds_.size() && !stop_.load(); ++i) {
        int& fd = fds_[i];
        if (fd >= 0 && PeerClosed(fd)) {
          close(fd);
          fd = -1;
          closed_.fetch_add(1);
        }
        if (fd < 0) {
          fd = ConnectLoopback(port_);
          sent_[i] = 0;
          if (fd < 0) {
            all_open = false;
            continue;
          }
        }
        if (i % 2 == 0) {
          // The header, then an endless header value: never a blank line.
          char c = sent_[i] < header.size() ? header[sent_[i]] : 'a';
          if (send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++sent_[i];
        }
      }
      if (all_open) all_opened_.store(true);
      std::this_thread::sleep_for(interval_);
    }
  }

  const uint16_t port_;
  const std::chrono::milliseconds interval_;
  std::vector<int> fds_;      // used by thread_ only until it is joined
  std::vector<size_t> sent_;  // used by thread_ only
  std::atomic<bool> stop_{false};
  std::atomic<bool> all_opened_{false};
  std::atomic<int> closed_{0};
  std::thread thread_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  // A server on an ephemeral 127.0.0.1 port that wants kToken; default
  // limits and timeouts.
  static AdminServerOptions LoopbackOptions() {
    AdminServerOptions o;
    o.listen = "127.0.0.1:0";
    o.token = kToken;
    return o;
  }
  void StartServer(AdminServerOptions options) {
    auto server = AdminServer::Start(options, &backend_, &registry_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }
  void SetUp() override {
    AdminServerOptions o = LoopbackOptions();
    o.max_body_bytes = 4096;
    StartServer(o);
  }

  HttpClient Client(std::string token = kToken) {
    HttpClientOptions o;
    o.host = "127.0.0.1";
    o.port = server_->port();
    o.token = std::move(token);
    o.timeout_ms = 10'000;
    return HttpClient(o);
  }

  HttpResponse Do(std::string_view method, std::string_view target, std::string_view body = "",
                  std::string token = kToken) {
    auto r = Client(std::move(token)).Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }

  static json Json(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }

  // Sends raw bytes on a fresh connection and returns everything read back.
  std::string Raw(const std::string& bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
  }

  metrics::Registry registry_;
  testing::MemoryBackend backend_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, HealthzNeedsNoToken) {
  HttpResponse r = Do("GET", "/healthz", "", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json(r)["status"], "ok");
  EXPECT_EQ(r.content_type, "application/json");
}

TEST_F(AdminServerTest, V1EndpointsRequireValidToken) {
  for (const std::string& token : {std::string(), std::string("wrong"), std::string(kToken) + "x",
                                   std::string(kToken).substr(0, 5)}) {
    HttpResponse r = Do("GET", "/v1/status", "", token);
    EXPECT_EQ(r.status, 401) << "token '" << token << "'";
    EXPECT_EQ(Json(r)["code"], "UNAUTHENTICATED");
    EXPECT_FALSE(Json(r)["message"].get<std::string>().empty());
  }
  // POSTs too, and nothing happens.
  HttpResponse r = Do("POST", "/v1/evict", R"({"ns":"llama"})", "nope");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Json(Do("GET", "/v1/namespaces"))["namespaces"][0]["blocks"], 12);
  // Scheme is case-insensitive.
  auto raw = Raw("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: bearer " +
                 std::string(kToken) + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 200", 0), 0u) << raw;
}

TEST_F(AdminServerTest, Status) {
  HttpResponse r = Do("GET", "/v1/status");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Json(r);
  EXPECT_EQ(j["version"], "0.1.0-test");
  EXPECT_EQ(j["node_id"], "node-a");
  EXPECT_EQ(j["policy"], "cake");
  EXPECT_EQ(j["transports"][0], "ucx:tcp");
  EXPECT_EQ(j["peers"][0]["transport"], "tcp");
  ASSERT_EQ(j["tiers"].size(), 3u);
  EXPECT_EQ(j["tiers"][0]["tier"], "gpu");
  EXPECT_EQ(j["tiers"][0]["blocks"], 6);
  EXPECT_EQ(j["tiers"][1]["used_bytes"], 6 * 4096);
  EXPECT_EQ(j["draining"], false);
}

TEST_F(AdminServerTest, StatsAndNamespaces) {
  json s = Json(Do("GET", "/v1/stats"));
  EXPECT_EQ(s["puts"], 12);
  EXPECT_EQ(s["tiers"][0]["tier"], "gpu");
  EXPECT_EQ(s["tiers"][0]["hits"], 5);
  EXPECT_DOUBLE_EQ(s["tiers"][0]["hit_ratio"].get<double>(), 5.0 / 7.0);
  EXPECT_EQ(s["tiers"][0]["drop_reasons"], json::object());
  EXPECT_EQ(s["tiers"][1]["drops"], 3);
  EXPECT_EQ(s["tiers"][1]["drop_reasons"], json({{"admission", 2}, {"corrupt", 1}}));
  json n = Json(Do("GET", "/v1/namespaces"));
  ASSERT_EQ(n["namespaces"].size(), 1u);
  EXPECT_EQ(n["namespaces"][0]["name"], "llama");
  EXPECT_EQ(n["namespaces"][0]["num_layers"], 4);
  EXPECT_EQ(n["namespaces"][0]["layer_budgets"]["gpu"], json::array({2, 3, 1, 2}));
  char id[32];
  snprintf(id, sizeof(id), "0x%016llx", static_cast<unsigned long long>(NamespaceSeed("llama")));
  EXPECT_EQ(n["namespaces"][0]["id"], id);
}

TEST_F(AdminServerTest, BlocksWithFilters) {
  json all = Json(Do("GET", "/v1/blocks"));
  EXPECT_EQ(all["count"], 12);
  json some = Json(Do("GET", "/v1/blocks?ns=llama&layer=1&tier=host&limit=2"));
  EXPECT_EQ(some["count"], 2);
  for (const auto& b : some["blocks"]) {
    EXPECT_EQ(b["layer"], 1);
    EXPECT_EQ(b["tier"], "host");
  }
  BlockFilter f = backend_.last_filter();
  EXPECT_EQ(f.ns, NamespaceSeed("llama"));
  EXPECT_EQ(f.layer, 1u);
  EXPECT_EQ(f.tier, Tier::kHost);
  EXPECT_EQ(f.limit, 2u);
  // By hex id and hash, percent-encoded name.
  char target[128];
  snprintf(target, sizeof(target), "/v1/blocks?ns=0x%llx&hash=0x2",
           static_cast<unsigned long long>(NamespaceSeed("llama")));
  EXPECT_EQ(Json(Do("GET", target))["count"], 4);
  EXPECT_EQ(Json(Do("GET", "/v1/blocks?ns=ll%61ma&tier=gpu"))["count"], 6);
}

TEST_F(AdminServerTest, BadQueriesAre400) {
  for (const char* target :
       {"/v1/blocks?tier=tape", "/v1/blocks?layer=x", "/v1/blocks?layer=-1", "/v1/blocks?limit=0",
        "/v1/blocks?limit=100000", "/v1/blocks?bogus=1", "/v1/blocks?ns=%zz", "/v1/blocks?hash=0xg",
        "/v1/blocks?layer=1&layer=2", "/v1/blocks?ns=0x"}) {
    HttpResponse r = Do("GET", target);
    EXPECT_EQ(r.status, 400) << target << " " << r.body;
    EXPECT_EQ(Json(r)["code"], "INVALID_ARGUMENT") << target;
  }
  HttpResponse r = Do("GET", "/v1/blocks?ns=unknown-model");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Json(r)["code"], "NOT_FOUND");
}

TEST_F(AdminServerTest, UnknownPathsAndMethods) {
  HttpResponse r = Do("GET", "/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Json(r)["code"], "NOT_FOUND");
  EXPECT_EQ(Do("GET", "/").status, 404);
  EXPECT_EQ(Do("GET", "/v1/status/extra").status, 404);
  EXPECT_EQ(Do("POST", "/v1/status", "{}").status, 405);
  EXPECT_EQ(Do("GET", "/v1/evict").status, 405);
  EXPECT_EQ(Do("DELETE", "/v1/config").status, 405);
  EXPECT_EQ(Do("POST", "/healthz", "").status, 405);
  // Trailing slash is tolerated.
  EXPECT_EQ(Do("GET", "/v1/status/").status, 200);
}

TEST_F(AdminServerTest, EvictPinUnpin) {
  // Pin hash 1 (4 layers), then evict the whole namespace: pinned survive.
  json p = Json(Do("POST", "/v1/pin", R"({"ns":"llama","hash":"0x1"})"));
  EXPECT_EQ(p["pinned"], 4);
  json e = Json(Do("POST", "/v1/evict", R"({"ns":"llama","tier":"gpu"})"));
  EXPECT_EQ(e["evicted"], 4);  // 6 gpu blocks, 2 of them pinned (hash 1, layers 0 and 2)
  EXPECT_EQ(e["skipped_pinned"], 2);
  EXPECT_EQ(e["skipped_busy"], 0);
  EXPECT_EQ(Json(Do("GET", "/v1/blocks?ns=llama"))["count"], 8);
  json u = Json(Do("POST", "/v1/unpin", R"({"ns":"llama","hash":1,"layer":0})"));
  EXPECT_EQ(u["unpinned"], 1);
  EXPECT_EQ(backend_.last_filter().hash, 1u);
  EXPECT_EQ(Json(Do("POST", "/v1/evict", R"({"ns":"llama"})"))["evicted"], 5);
  EXPECT_EQ(Json(Do("GET", "/v1/blocks?ns=llama"))["count"], 3);
}

TEST_F(AdminServerTest, MutationsRejectBadBodies) {
  for (const char* body : {"", "{", "[]", "42", R"({"layer":1})", R"({"ns":"llama","x":1})",
                           R"({"ns":"llama","layer":-1})", R"({"ns":"llama","layer":1.5})",
                           R"({"ns":{"a":1}})", R"({"ns":"llama","tier":"tape"})"}) {
    for (const char* path : {"/v1/evict", "/v1/pin", "/v1/unpin"}) {
      HttpResponse r = Do("POST", path, body);
      EXPECT_EQ(r.status, 400) << path << " " << body << " " << r.body;
      EXPECT_EQ(Json(r)["code"], "INVALID_ARGUMENT");
    }
  }
  EXPECT_EQ(Do("POST", "/v1/evict", R"({"ns":"nope"})").status, 404);
  EXPECT_EQ(Json(Do("GET", "/v1/blocks"))["count"], 12);  // nothing happened
}

TEST_F(AdminServerTest, DrainProgressIsObservable) {
  HttpResponse start = Do("POST", "/v1/drain", "");
  EXPECT_EQ(start.status, 202);
  json s = Json(start);
  EXPECT_EQ(s["total_blocks"], 12);
  EXPECT_TRUE(Json(Do("GET", "/v1/status"))["draining"].get<bool>());
  uint64_t last = s["moved_blocks"];
  json d;
  for (int i = 0; i < 100; ++i) {
    d = Json(Do("GET", "/v1/drain"));
    EXPECT_GE(d["moved_blocks"].get<uint64_t>(), last);
    last = d["moved_blocks"];
    if (d["done"].get<bool>()) break;
  }
  EXPECT_TRUE(d["done"].get<bool>());
  EXPECT_FALSE(d["active"].get<bool>());
  EXPECT_EQ(d["moved_blocks"], 12);
  EXPECT_EQ(Json(Do("GET", "/v1/blocks?tier=ssd"))["count"], 12);
}

TEST_F(AdminServerTest, ConfigGetAndSet) {
  json c = Json(Do("GET", "/v1/config"));
  ASSERT_EQ(c["config"].size(), 2u);
  HttpResponse set =
      Do("POST", "/v1/config", R"({"policy.gamma": 150, "tier.host.capacity_bytes": "2048"})");
  ASSERT_EQ(set.status, 200) << set.body;
  json after = Json(Do("GET", "/v1/config"));
  for (const auto& e : after["config"]) {
    if (e["name"] == "policy.gamma") {
      EXPECT_EQ(e["value"], "150");
    }
    if (e["name"] == "tier.host.capacity_bytes") {
      EXPECT_EQ(e["value"], "2048");
    }
  }
  // Unknown knob → 404, bad value → 400, and neither applies anything.
  EXPECT_EQ(Do("POST", "/v1/config", R"({"policy.gamma": 1, "nope": 2})").status, 404);
  EXPECT_EQ(Do("POST", "/v1/config", R"({"policy.gamma": "abc"})").status, 400);
  EXPECT_EQ(Do("POST", "/v1/config", R"({"policy.gamma": [1]})").status, 400);
  EXPECT_EQ(Do("POST", "/v1/config", R"({})").status, 400);
  EXPECT_EQ(Do("POST", "/v1/config", "not json").status, 400);
  json final_config = Json(Do("GET", "/v1/config"));
  for (const auto& e : final_config["config"]) {
    if (e["name"] == "policy.gamma") {
      EXPECT_EQ(e["value"], "150");
    }
  }
}

TEST_F(AdminServerTest, MetricsAreOpenAndCountAdminRequests) {
  Do("GET", "/v1/status");
  Do("GET", "/v1/nothing");
  HttpResponse r = Do("GET", "/metrics", "", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("kvcake_admin_requests_total{path=\"/v1/status\",status=\"200\"} 1\n"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("kvcake_admin_requests_total{path=\"other\",status=\"404\"} 1\n"),
            std::string::npos)
      << r.body;
  // The counter moves with traffic.
  Do("GET", "/v1/status");
  EXPECT_NE(Do("GET", "/metrics")
                .body.find("kvcake_admin_requests_total{path=\"/v1/status\",status=\"200\"} 2\n"),
            std::string::npos);
}

TEST_F(AdminServerTest, MetricsTokenCanBeRequired) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();
  o.metrics_require_token = true;
  StartServer(o);
  EXPECT_EQ(Do("GET", "/metrics", "", "").status, 401);
  EXPECT_EQ(Do("GET", "/metrics").status, 200);
  EXPECT_EQ(Do("GET", "/healthz", "", "").status, 200);
}

TEST_F(AdminServerTest, OversizedBodyIs413AndServerSurvives) {
  std::string big = R"({"ns":")" + std::string(8000, 'a') + R"("})";
  HttpResponse r = Do("POST", "/v1/evict", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Json(r)["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(Do("GET", "/healthz").status, 200);
}

TEST_F(AdminServerTest, MalformedHttpNeverCrashesIt) {
  std::string r1 = Raw("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(r1.rfind("HTTP/1.1 400", 0), 0u) << r1;
  std::string r2 = Raw("GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
  EXPECT_EQ(r2.rfind("HTTP/1.1 400", 0), 0u) << r2;
  std::string r3 = Raw("GET /healthz HTTP/1.1\r\nX: " + std::string(20000, 'x') + "\r\n\r\n");
  EXPECT_EQ(r3.rfind("HTTP/1.1 431", 0), 0u) << r3.substr(0, 200);
  Raw(std::string("\0\1\2\3\xff\xfe", 6));
  Raw("POST /v1/evict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ns\"");  // truncated
  Raw("");
  // Binary garbage in the JSON body.
  HttpResponse r = Do("POST", "/v1/config", std::string("{\"\xff\xfe\": 1}"));
  EXPECT_GE(r.status, 400);
  EXPECT_EQ(Do("GET", "/healthz").status, 200);
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string out =
      Raw(req + req + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t count = 0;
  for (size_t pos = out.find("HTTP/1.1 200"); pos != std::string::npos;
       pos = out.find("HTTP/1.1 200", pos + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u) << out;
}

TEST_F(AdminServerTest, ConcurrentClients) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = Client().Get(i % 2 ? "/v1/status" : "/metrics");
        if (r.ok() && r->status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 100);
}

// More slow connections than the server admits (each sending a partial
// header byte by byte, or nothing) must not lock /healthz or /metrics out:
// every probe is answered, promptly, while the slow connections are held.
TEST_F(AdminServerTest, SlowClientsDoNotStarveHealthz) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();  // default limits and timeouts
  StartServer(o);
  const int slow_count = static_cast<int>(o.max_connections) + 16;
  SlowClients slow(server_->port(), slow_count, std::chrono::milliseconds(50));
  ASSERT_TRUE(slow.WaitAllOpened());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server accept them
  for (int i = 0; i < 10; ++i) {
    const char* target = i % 5 == 4 ? "/metrics" : "/healthz";
    auto start = std::chrono::steady_clock::now();
    auto r = Client("").Get(target);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(r.ok()) << "probe " << i << " " << target << " with " << slow_count
                        << " slow connections: " << r.status().ToString() << " after " << seconds
                        << " s";
    EXPECT_EQ(r->status, 200) << target;
    // Generous for a loaded machine; the failure this guards against is a
    // probe stuck behind the slow connections for the whole idle timeout.
    EXPECT_LT(seconds, 3.0) << "probe " << i << " " << target;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  AdminServerStats stats = server_->stats();
  EXPECT_LE(stats.open_connections, o.max_connections);
  EXPECT_GT(stats.slow_closed(), 0u);
  EXPECT_GT(slow.closed_by_server(), 0);
}

// Waits up to 20 s for the server to close `fd`; returns the seconds from
// `since` (or -1 if it stayed open). Keeps sending the bytes of `dribble`,
// then 'a's, one per 20 ms when `dribble` is non-empty.
double SecondsUntilClosed(int fd, std::chrono::steady_clock::time_point since,
                          const std::string& dribble = "") {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  size_t sent = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (PeerClosed(fd)) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    }
    if (!dribble.empty()) {
      char c = sent < dribble.size() ? dribble[sent] : 'a';
      if (send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++sent;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// Polls `done` for up to 20 s.
template <typename Pred>
bool Eventually(Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// A connection that has not delivered a whole request header within
// header_timeout_ms is closed and counted, whether it trickles bytes or sends
// nothing; the long idle timeout does not apply to it.
TEST_F(AdminServerTest, SlowHeaderIsClosedAfterHeaderTimeout) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();
  o.header_timeout_ms = 200;
  o.idle_timeout_ms = 60'000;
  StartServer(o);
  auto start = std::chrono::steady_clock::now();
  int silent = ConnectLoopback(server_->port());
  ASSERT_GE(silent, 0);
  int trickle = ConnectLoopback(server_->port());
  ASSERT_GE(trickle, 0);
  double trickle_s =
      SecondsUntilClosed(trickle, start, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  double silent_s = SecondsUntilClosed(silent, start);
  close(trickle);
  close(silent);
  // Upper bounds are generous for a loaded machine; the idle timeout is 60 s.
  EXPECT_GE(trickle_s, 0.1);
  EXPECT_LT(trickle_s, 20.0) << "a trickling header was never closed";
  EXPECT_GE(silent_s, 0.1);
  EXPECT_LT(silent_s, 20.0) << "a silent connection was never closed";
  ASSERT_TRUE(Eventually([&] { return server_->stats().header_timeouts == 2; }))
      << server_->stats().header_timeouts;
  EXPECT_EQ(server_->stats().slow_closed(), 2u);
  EXPECT_EQ(server_->stats().open_connections, 0u);
  // A normal request is well within the header timeout.
  HttpResponse r = Do("GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("kvcake_admin_connections_closed_total{reason=\"header_timeout\"} 2\n"),
            std::string::npos)
      << r.body;
}

// A kept-alive connection is closed after idle_timeout_ms without a new
// request, counted as routine (not slow); one that sent a request in time
// gets its answer.
TEST_F(AdminServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();
  o.idle_timeout_ms = 300;
  StartServer(o);
  int fd = ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  while (out.find("\r\n\r\n") == std::string::npos || out.find('}') == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);  // 10 s receive timeout
    ASSERT_GT(n, 0) << out;
    out.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  auto replied = std::chrono::steady_clock::now();
  double idle_s = SecondsUntilClosed(fd, replied);
  close(fd);
  EXPECT_GE(idle_s, 0.1);
  EXPECT_LT(idle_s, 20.0) << "an idle kept-alive connection was never closed";
  ASSERT_TRUE(Eventually([&] { return server_->stats().idle_timeouts == 1; }));
  EXPECT_EQ(server_->stats().slow_closed(), 0u);
}

// At max_connections a new connection is admitted and the one without
// progress for the longest is closed, oldest first.
TEST_F(AdminServerTest, ConnectionLimitClosesTheLongestStalled) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();
  o.max_connections = 4;
  o.header_timeout_ms = 60'000;  // only the limit closes anything here
  StartServer(o);
  std::vector<int> fds;
  for (uint64_t i = 0; i < o.max_connections; ++i) {
    fds.push_back(ConnectLoopback(server_->port()));
    ASSERT_GE(fds.back(), 0);
    // One at a time, so the server's order is the connect order.
    ASSERT_TRUE(Eventually([&] { return server_->stats().open_connections == i + 1; }));
  }
  for (size_t round = 0; round < 2; ++round) {
    auto start = std::chrono::steady_clock::now();
    HttpResponse r = Do("GET", "/healthz", "", "");
    EXPECT_EQ(r.status, 200);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 3.0);
    EXPECT_EQ(server_->stats().evicted, round + 1);
    EXPECT_GE(SecondsUntilClosed(fds[round], start), 0) << "connection " << round;
    // Back to the limit: the probe has gone, a new stalled connection comes.
    ASSERT_TRUE(Eventually([&] { return server_->stats().open_connections == 3; }));
    fds.push_back(ConnectLoopback(server_->port()));
    ASSERT_GE(fds.back(), 0);
    ASSERT_TRUE(Eventually([&] { return server_->stats().open_connections == 4; }));
  }
  for (size_t i = 2; i < fds.size(); ++i) EXPECT_FALSE(PeerClosed(fds[i])) << i;
  for (int fd : fds) close(fd);
}

// At the limit, a connection part-way through sending its request header (a
// slow sender) is closed before an older one that has sent nothing yet: a
// client whose request has not been read (it or the server was slow to run)
// keeps its slot while slow senders hold the others.
TEST_F(AdminServerTest, ConnectionLimitClosesSlowSendersFirst) {
  server_.reset();
  AdminServerOptions o = LoopbackOptions();
  o.max_connections = 4;
  o.header_timeout_ms = 60'000;  // only the limit closes anything here
  StartServer(o);
  // The quiet client connects first, so it has made no progress for longest.
  const int quiet = ConnectLoopback(server_->port());
  ASSERT_GE(quiet, 0);
  ASSERT_TRUE(Eventually([&] { return server_->stats().open_connections == 1; }));
  std::vector<int> slow;
  for (int i = 0; i < 5; ++i) {
    slow.push_back(ConnectLoopback(server_->port()));
    ASSERT_GE(slow.back(), 0);
    const std::string part = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // no blank line
    ASSERT_EQ(::send(slow.back(), part.data(), part.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(part.size()));
    // Let the server read the partial header before the next one connects.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(Eventually([&] { return server_->stats().evicted == 2; }));
  EXPECT_FALSE(PeerClosed(quiet)) << "the connection that had sent nothing was closed";
  // The quiet client now sends its request and is answered.
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(quiet, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string reply;
  char buf[512];
  for (ssize_t n; (n = ::recv(quiet, buf, sizeof buf, 0)) > 0;) reply.append(buf, n);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  // The two closed were the oldest slow senders.
  EXPECT_TRUE(PeerClosed(slow[0]));
  EXPECT_TRUE(PeerClosed(slow[1]));
  for (size_t i = 2; i < slow.size(); ++i) EXPECT_FALSE(PeerClosed(slow[i])) << i;
  close(quiet);
  for (int fd : slow) close(fd);
}

TEST_F(AdminServerTest, ClientReportsDaemonDown) {
  uint16_t port = server_->port();
  server_.reset();
  HttpClientOptions o;
  o.port = port;
  o.timeout_ms = 5000;
  auto r = HttpClient(o).Get("/healthz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("is kvcaked running"), std::string_view::npos);
}

TEST(AdminOptionsTest, ListenParsingAndLoopbackRule) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(ParseHostPort("127.0.0.1:18516", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 18516);
  EXPECT_TRUE(ParseHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  for (const char* bad : {"", "host", ":80", "h:", "h:99999", "h:12a", "::1:80", "[::1:80"}) {
    EXPECT_FALSE(ParseHostPort(bad, &host, &port).ok()) << bad;
  }
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.2.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.1.2.3"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));

  AdminServerOptions o;
  EXPECT_TRUE(ValidateAdminOptions(o).ok());  // default: loopback, no token
  o.listen = "0.0.0.0:18516";
  Status s = ValidateAdminOptions(o);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  o.token_file = "/nonexistent/kvcake-token";
  EXPECT_FALSE(ValidateAdminOptions(o).ok());

  std::string path = "/tmp/kvcake_admin_token_" + std::to_string(getpid());
  { std::ofstream(path) << "\n"; }
  o.token_file = path;
  EXPECT_EQ(ValidateAdminOptions(o).code(), StatusCode::kInvalidArgument);  // empty token
  { std::ofstream(path) << "  abc123 \n"; }
  EXPECT_TRUE(ValidateAdminOptions(o).ok());
  auto token = ReadTokenFile(path);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, "abc123");
  unlink(path.c_str());

  o = AdminServerOptions();
  o.max_body_bytes = 0;
  EXPECT_FALSE(o.Validate().ok());
  for (uint32_t AdminServerOptions::*field :
       {&AdminServerOptions::max_connections, &AdminServerOptions::header_timeout_ms,
        &AdminServerOptions::idle_timeout_ms, &AdminServerOptions::write_timeout_ms}) {
    o = AdminServerOptions();
    o.*field = 0;
    EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  }
}

TEST(AdminOptionsTest, StartRefusesNonLoopbackWithoutToken) {
  testing::MemoryBackend backend;
  AdminServerOptions o;
  o.listen = "0.0.0.0:0";
  auto s = AdminServer::Start(o, &backend);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
}

TEST(AdminOptionsTest, PortInUseIsUnavailable) {
  testing::MemoryBackend backend;
  metrics::Registry registry;
  AdminServerOptions o;
  o.listen = "127.0.0.1:0";
  auto first = AdminServer::Start(o, &backend, &registry);
  ASSERT_TRUE(first.ok());
  o.listen = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = AdminServer::Start(o, &backend, &registry);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(AdminRouterTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(AdminRouterTest, HttpStatusMapping) {
  EXPECT_EQ(HttpStatusForCode(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusForCode(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusForCode(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusForCode(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusForCode(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusForCode(StatusCode::kInternal), 500);
  HttpReply r = ErrorReply(NotFoundError("x"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body), json({{"code", "NOT_FOUND"}, {"message", "x"}}));
}

// Randomised requests straight into the router: never a crash, never a 500,
// always a JSON answer (or the metrics text).
TEST(AdminRouterTest, SurvivesRandomInput) {
  testing::MemoryBackend backend;
  metrics::Registry registry;
  AdminRouter router(&backend, &registry, kToken, false);
  std::mt19937_64 rng(12345);
  const std::vector<std::string> methods = {"GET", "POST", "HEAD", "PUT", "DELETE", "", "get"};
  const std::vector<std::string> paths = {"/v1/blocks", "/v1/evict",  "/v1/pin",    "/v1/unpin",
                                          "/v1/drain",  "/v1/config", "/v1/status", "/metrics",
                                          "/healthz",   "/v1/",       "",           "//"};
  const std::vector<std::string> pieces = {
      "ns=", "llama", "0x", "layer=", "tier=", "limit=", "hash=",
      "&",   "%",     "%4", "=",      "ssd",   "gpu",    "99999999999999999999",
      "-1",  "\xff",  "+",  "?"};
  const std::vector<std::string> bodies = {"",
                                           "{",
                                           "}",
                                           "{\"ns\":",
                                           "{\"ns\":\"llama\"}",
                                           "[]",
                                           "null",
                                           "{\"ns\":1e400}",
                                           "{\"policy.gamma\":{}}",
                                           "{\"ns\":\"llama\",\"layer\":4294967296}"};
  for (int i = 0; i < 20000; ++i) {
    std::string target = paths[rng() % paths.size()];
    if (rng() % 2) {
      target += "?";
      for (int k = rng() % 6; k > 0; --k) target += pieces[rng() % pieces.size()];
    }
    std::string body = bodies[rng() % bodies.size()];
    if (rng() % 4 == 0) {
      for (int k = rng() % 8; k > 0; --k) body += static_cast<char>(rng() % 256);
    }
    std::string auth =
        rng() % 3 ? "Bearer " + std::string(kToken) : std::string(rng() % 2 ? "Bearer x" : "");
    HttpRequestView req{methods[rng() % methods.size()], target, auth, body};
    HttpReply reply = router.Handle(req);
    ASSERT_NE(reply.status, 500) << req.method << " " << target << " " << body << " -> "
                                 << reply.body;
    ASSERT_TRUE(reply.status >= 200 && reply.status < 500) << reply.status;
    if (reply.content_type == "application/json") {
      ASSERT_FALSE(json::parse(reply.body, nullptr, false).is_discarded()) << reply.body;
    }
  }
}

}  // namespace
}  // namespace kvcake::admin
