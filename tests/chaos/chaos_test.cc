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
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kvcake/client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/test_engine.h"

namespace kvcake {
namespace {

using chaos::SendRaw;
using chaos::SoakSeconds;
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
  ClientOptions o = testing::EngineOptions(address, "chaos-model");
  o.ucx_tls = tls;
  o.timeout = std::chrono::milliseconds(30000);
  Result<std::unique_ptr<Client>> c =
      testing::ConnectEngine(o, testing::TestGeometry(kLayers, kValueBytes));
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

std::vector<uint64_t> Chain(Client& c) {
  std::vector<uint32_t> tokens(kBlocks * 16);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = 4242 + static_cast<uint32_t>(i);
  return c.HashTokens(tokens);
}

// Stores every layer of the chain (already stored blocks stay as they are).
bool PutChain(Client& c) {
  std::vector<testing::LayerValue> values = testing::LayerValues(Chain(c), kLayers, ValueOf);
  std::vector<Status> per;
  return c.Put(testing::PutBlocksOf(values), &per).ok();
}

// Gets the whole chain; the number of values that came back wrong (a value
// not found counts as wrong too), or -1 if the call failed.
int GetChainErrors(Client& c) {
  std::vector<testing::LayerValue> bufs = testing::LayerBuffers(Chain(c), kLayers, kValueBytes);
  std::vector<bool> found;
  if (!c.Get(testing::GetBlocksOf(bufs), &found).ok()) return -1;
  int wrong = 0;
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (!found[i] || bufs[i].bytes != ValueOf(bufs[i].hash, bufs[i].layer)) ++wrong;
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

// A kvcaked with Flags(dir) whose UCX transports are `tls`, then `extra`.
Result<std::unique_ptr<DaemonProcess>> StartDaemon(const TempDir& dir, const std::string& tls,
                                                   const std::vector<std::string>& extra = {}) {
  std::vector<std::string> flags = Flags(dir);
  flags.push_back("--ucx_tls=" + tls);
  flags.insert(flags.end(), extra.begin(), extra.end());
  return DaemonProcess::Start(flags);
}

// A client SIGKILLed while 1 MiB get replies are in flight must cost the
// daemon nothing but the connection.
class ClientKilledMidGet : public ::testing::TestWithParam<const char*> {};

TEST_P(ClientKilledMidGet, DaemonSurvivesUnderLoad) {
  TempDir dir;
  Result<std::unique_ptr<DaemonProcess>> d = StartDaemon(dir, GetParam());
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

// Every TCP port process `pid` listens on (its sockets in /proc/net/tcp).
std::vector<uint16_t> ListeningPorts(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(fd_dir)) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  std::vector<uint16_t> ports;
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
    in >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state == "0A" && inodes.contains(inode)) {
      ports.push_back(
          static_cast<uint16_t>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16)));
    }
  }
  return ports;
}

// A crafted packet on the listening port aborted kvcaked before any
// authentication (UCX 1.13's sockaddr connection manager asserted on a
// length field smaller than the bytes sent). Every port the daemon listens
// on (the handshake port, the admin port, UCX's own tcp lanes) gets that
// packet and other malformed input; the daemon must keep serving.
TEST(CraftedPackets, NoPacketKillsTheDaemon) {
  TempDir dir;
  Result<std::unique_ptr<DaemonProcess>> d = StartDaemon(dir, "tcp");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto pack = [](uint64_t len, uint8_t status) {
    std::string s(9, '\0');
    std::memcpy(s.data(), &len, 8);
    s[8] = static_cast<char>(status);
    return s;
  };
  std::mt19937_64 rng(99);
  std::string random(1500, '\0');
  for (char& ch : random) ch = static_cast<char>(rng());
  const std::vector<std::string> variants = {
      pack(4, 0) + std::string(200, 'A'),                   // the one that killed it
      pack(0, 0) + std::string(64, 'B'),                    // empty private data, then more
      pack(~0ull, 0) + std::string(64, 'C'),                // absurd length
      pack(2048, 0) + std::string(2048, 'D') + pack(16, 1)  // a second message at once
          + std::string(16, 'E'),
      pack(16, 0xff) + std::string(16, 'F'),
      std::string(200, 'A'),
      std::string(4096, '\xff'),
      std::string(3, '\0'),
      "KVCAKEHI" + std::string(8, '\xff'),  // the handshake magic, a bad tail
      random,
  };
  const std::vector<uint16_t> ports = ListeningPorts((*d)->pid());
  ASSERT_GE(ports.size(), 2u);  // at least the handshake and admin ports
  const int soak = SoakSeconds();
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(soak);
  int rounds = 0;
  do {
    for (uint16_t port : ports) {
      for (const std::string& v : variants) SendRaw(port, v);
      ASSERT_TRUE((*d)->Alive()) << "kvcaked died after packets to port " << port;
    }
    ++rounds;
  } while (std::chrono::steady_clock::now() < end);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE((*d)->Alive());
  auto c = Connect((*d)->address(), "tcp");
  ASSERT_NE(c, nullptr) << "kvcaked stopped serving after " << rounds << " rounds on "
                        << ports.size() << " ports";
  ASSERT_TRUE(PutChain(*c));
  EXPECT_EQ(GetChainErrors(*c), 0);
  c.reset();
  Result<int> rc = (*d)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
}

// kill -9 with clients connected, then an immediate restart on the same
// port: it must bind at once (connections of the old daemon sit in
// TIME_WAIT), and the engine's existing Client works again.
TEST(DaemonCrash, RestartBindsItsPortAtOnceAndClientsComeBack) {
  TempDir dir;
  Result<std::unique_ptr<DaemonProcess>> d = StartDaemon(dir, "tcp");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const std::string address = (*d)->address();
  // The clients live in a child: this process forks daemons.
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = Connect(address, "tcp");
    if (!c || !PutChain(*c) || GetChainErrors(*c) != 0) ::_exit(2);
    char b = 'r';
    if (::write(ready[1], &b, 1) != 1 || ::read(go[0], &b, 1) != 1) ::_exit(3);
    // The daemon was killed and restarted (its memory is gone): the same
    // Client stores and reads the chain again within a few attempts.
    for (int attempt = 0; attempt < 20; ++attempt) {
      if (PutChain(*c) && GetChainErrors(*c) == 0) ::_exit(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ::_exit(4);
  }
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  ::kill((*d)->pid(), SIGKILL);
  while ((*d)->Alive()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  Result<std::unique_ptr<DaemonProcess>> again = StartDaemon(dir, "tcp", {"--listen=" + address});
  ASSERT_TRUE(again.ok()) << "restart on " << address << ": " << again.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "client exit " << WEXITSTATUS(status);
  Result<int> rc = (*again)->Stop();
  EXPECT_TRUE(rc.ok() && *rc == 0);
}

}  // namespace
}  // namespace kvcake
