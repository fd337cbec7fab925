#include "tests/cluster/etcd_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "cluster/etcd_client.h"

namespace kvcake::cluster::testing {

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool EtcdProcess::Available() { return ::access(kEtcdBinary, X_OK) == 0; }

Result<std::unique_ptr<EtcdProcess>> EtcdProcess::Start() {
  std::unique_ptr<EtcdProcess> etcd(new EtcdProcess());
  std::string templ = (std::filesystem::temp_directory_path() / "kvcake-etcd-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  etcd->dir_ = templ;
  etcd->client_port_ = FreePort();
  etcd->peer_port_ = FreePort();
  while (etcd->peer_port_ == etcd->client_port_) etcd->peer_port_ = FreePort();
  if (etcd->client_port_ == 0 || etcd->peer_port_ == 0) {
    return UnavailableError("no free port for etcd");
  }
  RETURN_IF_ERROR(etcd->Spawn());
  RETURN_IF_ERROR(etcd->WaitReady());
  return etcd;
}

EtcdProcess::~EtcdProcess() {
  Kill();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string EtcdProcess::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(client_port_);
}

Status EtcdProcess::Spawn() {
  std::string client_url = endpoint();
  std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> args = {
      kEtcdBinary,
      "--name=kvcake-test",
      "--data-dir=" + dir_ + "/data",
      "--listen-client-urls=" + client_url,
      "--advertise-client-urls=" + client_url,
      "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url,
      "--initial-cluster=kvcake-test=" + peer_url,
      "--initial-cluster-state=new",
      // A quick election after a restart; the minimum lease TTL stays 1 s.
      "--heartbeat-interval=50",
      "--election-timeout=500",
      "--logger=zap",
      "--log-level=warn",
  };
  std::string log = dir_ + "/etcd.log";
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Child: dies with the test process; output to the log file.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(kEtcdBinary, argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  return Status::Ok();
}

Status EtcdProcess::WaitReady() {
  GatewayEtcdClientOptions options;
  options.endpoints = {endpoint()};
  options.request_timeout_ms = 300;
  auto client = GatewayEtcdClient::Create(options);
  if (!client.ok()) return client.status();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("etcd exited at start:\n" + LogTail());
    }
    auto range = (*client)->Range("/kvcake-harness-probe");
    if (range.ok()) return Status::Ok();
    last = range.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return UnavailableError("etcd not ready within 10 s (" + last.ToString() + "):\n" + LogTail());
}

void EtcdProcess::Signal(int sig, int wait_ms) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void EtcdProcess::Stop() {
  Signal(SIGTERM, 5'000);
  Kill();
}

void EtcdProcess::Kill() { Signal(SIGKILL, 10'000); }

Status EtcdProcess::Restart() {
  Stop();
  RETURN_IF_ERROR(Spawn());
  return WaitReady();
}

std::string EtcdProcess::LogTail() const {
  std::ifstream in(dir_ + "/etcd.log");
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
}

void EtcdTest::SetUp() {
  if (!EtcdProcess::Available()) GTEST_SKIP() << kEtcdBinary << " not installed";
  auto etcd = EtcdProcess::Start();
  ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
  etcd_ = std::move(*etcd);
}

}  // namespace kvcake::cluster::testing
