// Chaos tests: the real kvcaked (a child process) and real clients over UCX
// on loopback, with faults injected on purpose. Every test ends by checking
// that the daemon is alive and serves what was committed, byte for byte.
//
// KVCAKE_SOAK_S=<seconds> repeats each fault loop for that long instead of a
// fixed, CI-sized number of rounds.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvcake/client.h"
#include "tests/integration/daemon_process.h"

namespace kvcake {
namespace {

using testing::DaemonProcess;
using testing::TempDir;

constexpr uint64_t kValueBytes = 1 << 20;  // 1 MiB: replies take a while to send
constexpr uint32_t kLayers = 4;
constexpr size_t kBlocks = 16;  // 64 values of 1 MiB

std::vector<char> ValueOf(uint64_t hash, uint32_t layer) {
  std::vector<char> v(kValueBytes);
  std::mt19937_64 rng(hash * 2654435761u + layer);
  for (size_t i = 0; i < v.size(); i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  return v;
}

int SoakSeconds() {
  const char* s = std::getenv("KVCAKE_SOAK_S");
  return s ? std::atoi(s) : 0;
}

// Forks `n` processes that spin until killed: the kills must land while the
// daemon is slow to send, as on a busy inference node.
class CpuLoad {
 public:
  explicit CpuLoad(int n) {
    for (int i = 0; i < n; ++i) {
      pid_t p = ::fork();
      if (p == 0) {
        volatile uint64_t x = 0;
        for (;;) x = x + 1;
      }
      if (p > 0) pids_.push_back(p);
    }
  }
  ~CpuLoad() {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }

 private:
  std::vector<pid_t> pids_;
};

std::unique_ptr<Client> Connect(const std::string& address, const std::string& tls) {
  ClientOptions o;
  o.address = address;
  o.namespace_name = "chaos-model";
  o.ucx_tls = tls;
  o.use_mapped_path = false;
  o.timeout = std::chrono::milliseconds(30000);
  Result<std::unique_ptr<Client>> c = Client::Connect(o);
  if (!c.ok()) return nullptr;
  NamespaceGeometry g;
  g.num_layers = kLayers;
  g.block_tokens = 16;
  g.layer_block_bytes = kValueBytes;
  g.kv_dtype = "fp16";
  if (!(*c)->RegisterNamespace(g).ok()) return nullptr;
  return std::move(c).value();
}

std::vector<uint64_t> Chain(Client& c) {
  std::vector<uint32_t> tokens(kBlocks * 16);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = 4242 + static_cast<uint32_t>(i);
  return c.HashTokens(tokens);
}

// Stores every layer of the chain (already stored blocks stay as they are).
bool PutChain(Client& c) {
  std::vector<uint64_t> chain = Chain(c);
  std::vector<std::vector<char>> values;
  std::vector<PutBlock> blocks;
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kLayers; ++l) values.push_back(ValueOf(h, l));
  }
  size_t k = 0;
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back(PutBlock{h, l, values[k++].data()});
  }
  std::vector<Status> per;
  return c.Put(blocks, &per).ok();
}

// Gets the whole chain; the number of values that came back wrong (a value
// not found counts as wrong too), or -1 if the call failed.
int GetChainErrors(Client& c) {
  std::vector<uint64_t> chain = Chain(c);
  std::vector<std::vector<char>> bufs(chain.size() * kLayers, std::vector<char>(kValueBytes));
  std::vector<GetBlock> blocks;
  size_t k = 0;
  for (uint64_t h : chain) {
    for (uint32_t l = 0; l < kLayers; ++l) blocks.push_back(GetBlock{h, l, bufs[k++].data()});
  }
  std::vector<bool> found;
  if (!c.Get(blocks, &found).ok()) return -1;
  int wrong = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!found[i] || bufs[i] != ValueOf(blocks[i].hash, blocks[i].layer)) ++wrong;
  }
  return wrong;
}

std::vector<std::string> Flags(const TempDir& dir) {
  return {"--ssd_path=" + dir.path() + "/ssd",
          "--host_bytes=256M",
          "--slot_bytes=1M",
          "--ssd_bytes=2G",
          "--io_threads=2",
          "--log_level=warning"};
}

// A client SIGKILLed while 1 MiB get replies are in flight must cost the
// daemon nothing but the connection.
class ClientKilledMidGet : public ::testing::TestWithParam<const char*> {};

TEST_P(ClientKilledMidGet, DaemonSurvivesUnderLoad) {
  TempDir dir;
  auto flags = Flags(dir);
  flags.push_back(std::string("--ucx_tls=") + GetParam());
  Result<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(flags);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();
  CpuLoad load(2);
  std::mt19937 rng(12345);
  const int soak = SoakSeconds();
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(soak);
  int rounds = 0;
  // The children are forked before this process uses UCX. The first one
  // stores the chain; every child then gets it in a loop and is killed at a
  // random point once its gets are running.
  while (rounds < 16 || std::chrono::steady_clock::now() < end) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(ready[0]);
      auto c = Connect(address, GetParam());
      if (!c) ::_exit(2);
      if (rounds == 0 && !PutChain(*c)) ::_exit(2);
      bool told = false;
      for (;;) {
        if (GetChainErrors(*c) != 0) ::_exit(3);
        if (!told) {
          told = ::write(ready[1], "r", 1) == 1;
        }
      }
    }
    ::close(ready[1]);
    char byte = 0;
    const bool started = ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
    if (started) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 600)(rng)));
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (!started) std::this_thread::sleep_for(std::chrono::seconds(1));  // a crash takes a moment
    ASSERT_TRUE((*d)->Alive()) << "kvcaked died in round " << rounds;
    ASSERT_TRUE(started) << "round " << rounds << ": the client never completed a get (exit "
                         << WEXITSTATUS(status) << ")";
    // Exit 3 would be wrong bytes; a killed child is the expected end.
    ASSERT_TRUE(WIFSIGNALED(status))
        << "round " << rounds << ": client exited with " << WEXITSTATUS(status);
    ASSERT_TRUE((*d)->Alive()) << "kvcaked died after client kill " << rounds + 1;
    ++rounds;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE((*d)->Alive()) << "kvcaked died after the last kill";
  auto c = Connect(address, GetParam());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(GetChainErrors(*c), 0);
  c.reset();
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0) << "kvcaked did not exit cleanly";
}

INSTANTIATE_TEST_SUITE_P(Transports, ClientKilledMidGet, ::testing::Values("tcp", "shm"));

}  // namespace
}  // namespace kvcake
