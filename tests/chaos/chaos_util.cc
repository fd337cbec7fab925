#include "tests/chaos/chaos_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/common/loopback_socket.h"

namespace kvcake::chaos {

int SoakSeconds() {
  const char* s = std::getenv("KVCAKE_SOAK_S");
  return s ? std::atoi(s) : 0;
}

SoakRounds::SoakRounds(int min_rounds)
    : min_rounds_(min_rounds),
      end_(std::chrono::steady_clock::now() + std::chrono::seconds(SoakSeconds())) {}

bool SoakRounds::Next() {
  if (round_ >= min_rounds_ && std::chrono::steady_clock::now() >= end_) return false;
  ++round_;
  return true;
}

std::vector<char> Pattern(uint64_t seed, uint64_t index, size_t bytes) {
  std::vector<char> v(bytes);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + index * 2654435761u + 1);
  for (size_t i = 0; i < v.size(); i += 8) {
    const uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<size_t>(8, v.size() - i));
  }
  return v;
}

void SendRaw(uint16_t port, const std::string& bytes) {
  const int fd = testing::ConnectLoopback(port);
  if (fd < 0) return;
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::close(fd);
}

int ConnectTcp(uint16_t port) {
  const int fd = testing::ConnectLoopback(port);
  if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

uint16_t PortOf(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

namespace {

// One HTTP/1.1 exchange with 127.0.0.1:`port` (Connection: close).
Result<HttpReply> HttpExchange(uint16_t port, const std::string& method, const std::string& path,
                               const std::string& body, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  const int fd = ConnectTcp(port);
  if (fd < 0) return UnavailableError("connect to admin port " + std::to_string(port));
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  size_t sent = 0;
  std::string in;
  Status err;
  while (true) {
    pollfd p{fd, static_cast<short>(sent < req.size() ? POLLOUT : POLLIN), 0};
    const int left = left_ms();
    if (left == 0) {
      err = DeadlineExceededError(method + " " + path + " took longer than " +
                                  std::to_string(timeout.count()) + " ms");
      break;
    }
    if (::poll(&p, 1, left) <= 0) continue;
    if (sent < req.size()) {
      const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) {
        err = UnavailableError("send: " + std::string(std::strerror(errno)));
        break;
      }
      if (n > 0) sent += static_cast<size_t>(n);
      continue;
    }
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;  // the server closed: the reply is complete
    if (n < 0 && errno != EAGAIN) {
      err = UnavailableError("recv: " + std::string(std::strerror(errno)));
      break;
    }
    if (n > 0) in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!err.ok()) return err;
  HttpReply reply;
  if (in.rfind("HTTP/1.", 0) != 0 || in.size() < 12) {
    return InternalError("not an HTTP reply: '" + in.substr(0, 64) + "'");
  }
  reply.status = std::atoi(in.c_str() + 9);
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end != std::string::npos) reply.body = in.substr(head_end + 4);
  return reply;
}

}  // namespace

Result<HttpReply> HttpGet(uint16_t port, const std::string& path,
                          std::chrono::milliseconds timeout) {
  return HttpExchange(port, "GET", path, "", timeout);
}

Result<HttpReply> HttpPost(uint16_t port, const std::string& path, const std::string& body,
                           std::chrono::milliseconds timeout) {
  return HttpExchange(port, "POST", path, body, timeout);
}

Result<double> MetricValue(const std::string& body, const std::string& name) {
  std::istringstream in(body);
  std::string line;
  double sum = 0;
  bool seen = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;  // a longer name with this prefix
    const size_t sp = line.rfind(' ');
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
    seen = true;
  }
  if (!seen) return NotFoundError("no metric " + name);
  return sum;
}

Result<ProcMemory> ReadProcMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return NotFoundError("no process " + std::to_string(pid));
  ProcMemory m;
  std::string key;
  uint64_t kib = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (!(fields >> key >> kib)) continue;
    if (key == "VmRSS:") m.rss = kib << 10;
    if (key == "VmHWM:") m.hwm = kib << 10;
    if (key == "RssAnon:") m.anon = kib << 10;
  }
  if (m.rss == 0) return NotFoundError("no VmRSS for " + std::to_string(pid));
  return m;
}

Status FlipBytes(const std::string& path, uint64_t offset, size_t count) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || size == 0) return NotFoundError("cannot size " + path);
  count = std::min<uint64_t>(count, size);
  offset = std::min<uint64_t>(offset, size - count);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return UnavailableError("cannot open " + path);
  std::vector<char> bytes(count);
  f.seekg(static_cast<std::streamoff>(offset));
  f.read(bytes.data(), static_cast<std::streamsize>(count));
  for (char& b : bytes) b = static_cast<char>(b ^ 0xA5);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(count));
  f.flush();
  if (!f) return UnavailableError("cannot rewrite " + path);
  return Status::Ok();
}

std::vector<std::string> FilesIn(const std::string& dir, const std::string& prefix,
                                 const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (!prefix.empty() && name.rfind(prefix, 0) != 0) continue;
    if (!suffix.empty() &&
        (name.size() < suffix.size() || name.substr(name.size() - suffix.size()) != suffix)) {
      continue;
    }
    out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status MountTmpfs(const std::string& dir, const std::string& size) {
  if (::geteuid() != 0) return FailedPreconditionError("not root: cannot mount a tmpfs");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string opts = "size=" + size;
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    return FailedPreconditionError("mount -t tmpfs -o " + opts + " " + dir + ": " +
                                   std::strerror(errno));
  }
  return Status::Ok();
}

Status Unmount(const std::string& dir) {
  if (::umount2(dir.c_str(), MNT_DETACH) != 0) {
    return UnavailableError("umount " + dir + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace kvcake::chaos
