#include "tests/integration/daemon_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

namespace kvcake::testing {

TempDir::TempDir() {
  std::random_device rd;
  std::string tmpl =
      "/tmp/kvcake-it-" + std::to_string(::getpid()) + "-" + std::to_string(rd()) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* p = ::mkdtemp(buf.data());
  path_ = p ? p : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
}

std::string KvcakedPath() {
  const char* dir = std::getenv("KVCAKE_BIN_DIR");
  return std::string(dir ? dir : "./build/release/bin") + "/kvcaked";
}

Result<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(const std::vector<std::string>& flags) {
  std::string bin = KvcakedPath();
  if (::access(bin.c_str(), X_OK) != 0) return NotFoundError("kvcaked not found at " + bin);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  // Ephemeral ports for both listeners so daemons of parallel tests never collide;
  // `flags` come later and override them.
  std::vector<std::string> args = {bin, "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0"};
  args.insert(args.end(), flags.begin(), flags.end());
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // The daemon dies with the test (or bench) process, even on a crash.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(pipefd[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::unique_ptr<DaemonProcess> d(new DaemonProcess());
  d->pid_ = pid;
  d->stdout_fd_ = pipefd[0];
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const std::string marker = "kvcaked listening on ";
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{d->stdout_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r > 0) {
      char buf[512];
      ssize_t n = ::read(d->stdout_fd_, buf, sizeof buf);
      if (n <= 0) break;  // exited
      out.append(buf, static_cast<size_t>(n));
      size_t at = out.find(marker);
      size_t nl = at == std::string::npos ? std::string::npos : out.find('\n', at);
      if (nl != std::string::npos) {
        d->address_ = out.substr(at + marker.size(), nl - at - marker.size());
        const std::string admin = "kvcaked admin listening on ";
        size_t a = out.find(admin);
        size_t anl = a == std::string::npos ? a : out.find('\n', a);
        if (anl != std::string::npos) {
          d->admin_address_ = out.substr(a + admin.size(), anl - a - admin.size());
        }
        return d;
      }
    }
    if (!d->Alive()) break;
  }
  return UnavailableError("kvcaked did not report its address; output: " + out);
}

uint16_t DaemonProcess::port() const {
  return static_cast<uint16_t>(std::stoi(address_.substr(address_.rfind(':') + 1)));
}

bool DaemonProcess::Alive() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

Result<int> DaemonProcess::Stop(int timeout_s) {
  if (pid_ <= 0) return FailedPreconditionError("daemon not running");
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return DeadlineExceededError("kvcaked did not exit after SIGTERM");
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

}  // namespace kvcake::testing
