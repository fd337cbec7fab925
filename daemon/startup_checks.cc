#include "daemon/startup_checks.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

namespace kvcake::daemon {
namespace {

// "HOST:PORT" or "[V6]:PORT" -> host and port.
Status SplitHostPort(const std::string& flag, const std::string& address, std::string* host,
                     uint16_t* port) {
  const std::string where = "--" + flag + " " + address;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return InvalidArgumentError(where + ": want HOST:PORT");
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string digits = address.substr(colon + 1);
  if (digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(digits) > 65535) {
    return InvalidArgumentError(where + ": port '" + digits + "' is not a number in 0..65535");
  }
  *port = static_cast<uint16_t>(std::stoul(digits));
  return Status::Ok();
}

bool IsWildcardHost(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "*";
}

}  // namespace

Status CheckListenAddress(const std::string& flag, const std::string& address) {
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(SplitHostPort(flag, address, &host, &port));
  const std::string where = "--" + flag + " " + address;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return InvalidArgumentError(where + ": cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  int err = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // As the listeners do: a port whose old connections linger in TIME_WAIT
    // is free, one with a listener is not.
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = ::bind(fd, ai->ai_addr, ai->ai_addrlen);
    err = rc == 0 ? 0 : errno;
    ::close(fd);
    if (rc == 0 || err == EADDRINUSE) break;
  }
  ::freeaddrinfo(found);
  switch (err) {
    case 0:
      return Status::Ok();
    case EADDRINUSE:
      return UnavailableError(where + ": port " + service +
                              " is in use (another kvcaked? pick a free port, or 0 for any)");
    case EADDRNOTAVAIL:
      return UnavailableError(where + ": " + host + " is not an address of this host");
    case EACCES:
      return UnavailableError(where + ": port " + service + " needs privileges (use >= 1024)");
    default:
      return UnavailableError(where + ": cannot bind: " + std::strerror(err));
  }
}

Status CheckDistinctPorts(const std::string& flag_a, const std::string& a,
                          const std::string& flag_b, const std::string& b) {
  std::string host_a, host_b;
  uint16_t port_a = 0, port_b = 0;
  RETURN_IF_ERROR(SplitHostPort(flag_a, a, &host_a, &port_a));
  RETURN_IF_ERROR(SplitHostPort(flag_b, b, &host_b, &port_b));
  if (port_a == 0 || port_a != port_b) return Status::Ok();
  if (host_a == host_b || IsWildcardHost(host_a) || IsWildcardHost(host_b)) {
    return FailedPreconditionError("--" + flag_b + " " + b + " uses the port of --" + flag_a + " " +
                                   a + " (each needs its own port)");
  }
  return Status::Ok();
}

Status CheckSsdPath(const std::string& path) {
  if (path.empty()) return Status::Ok();
  namespace fs = std::filesystem;
  const std::string where = "--ssd_path " + path;
  std::error_code ec;
  fs::path dir(path);
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return FailedPreconditionError(where + " is not a directory");
  } else {
    // Start creates it with its parents: the nearest existing ancestor must
    // be a directory it can write.
    fs::path up = fs::absolute(dir, ec).parent_path();
    while (!up.empty() && !fs::exists(up, ec) && up != up.parent_path()) up = up.parent_path();
    if (!fs::is_directory(up, ec)) {
      return FailedPreconditionError(where + " cannot be created: " + up.string() +
                                     " is not a directory");
    }
    if (::access(up.c_str(), W_OK | X_OK) != 0) {
      return FailedPreconditionError(where + " cannot be created in " + up.string() + ": " +
                                     std::strerror(errno));
    }
    return Status::Ok();
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return FailedPreconditionError(where + " is not usable: " + std::strerror(errno));
  }
  // RocksDB holds an fcntl write lock on <dir>/LOCK while the database is open.
  const std::string lock_path = (dir / "LOCK").string();
  int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Ok();  // never opened, or not a RocksDB directory yet
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  int rc = ::fcntl(fd, F_GETLK, &probe);
  ::close(fd);
  if (rc == 0 && probe.l_type != F_UNLCK) {
    return FailedPreconditionError(where + " is in use by process " + std::to_string(probe.l_pid) +
                                   " (it holds " + lock_path +
                                   "); every kvcaked needs its own --ssd_path");
  }
  return Status::Ok();
}

namespace {

// The number after `key` in a /proc/meminfo-style file, in bytes ("kB" units).
std::optional<uint64_t> MeminfoBytes(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string name;
  uint64_t value = 0;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == key + ":") return value * 1024;
  }
  return std::nullopt;
}

// The first number in a one-line file; nullopt for "max", unreadable or empty.
std::optional<uint64_t> FileNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

std::string GiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

}  // namespace

Status CheckMemoryFits(const std::string& flag, uint64_t bytes, const std::string& meminfo_path,
                       const std::string& cgroup_dir) {
  std::optional<uint64_t> room = MeminfoBytes(meminfo_path, "MemAvailable");
  std::string what = "available memory";
  const std::optional<uint64_t> limit = FileNumber(cgroup_dir + "/memory.max");
  const std::optional<uint64_t> used = FileNumber(cgroup_dir + "/memory.current");
  if (limit.has_value()) {
    const uint64_t left = *limit > used.value_or(0) ? *limit - used.value_or(0) : 0;
    if (!room.has_value() || left < *room) {
      room = left;
      what = "room under the memory cgroup's limit (" + GiB(*limit) + ")";
    }
  }
  if (!room.has_value() || bytes <= *room) return Status::Ok();
  return ResourceExhaustedError("--" + flag + " needs " + GiB(bytes) +
                                " of memory at start (it is pre-faulted), but this machine has " +
                                GiB(*room) + " of " + what + "; lower --" + flag);
}

Result<HandoffTransport> ParseHandoffTransport(const std::string& value, bool nccl_built) {
  if (value == "ucx") return HandoffTransport::kUcx;
  if (value == "auto") return HandoffTransport::kAuto;
  if (value == "nccl") {
    if (!nccl_built) {
      return FailedPreconditionError(
          "--handoff_transport nccl: this kvcaked was built without CUDA (use ucx or auto)");
    }
    return HandoffTransport::kNccl;
  }
  return InvalidArgumentError("--handoff_transport '" + value + "': want ucx, nccl or auto");
}

}  // namespace kvcake::daemon
