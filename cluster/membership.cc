#include "cluster/membership.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "common/logging.h"
#include "transport/ucx.h"

namespace kvcake::cluster {

namespace {

constexpr std::chrono::milliseconds kInitialBackoff{100};

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool ValidName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos;
}

bool SameMembers(const std::vector<MemberInfo>& a, const std::vector<MemberInfo>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].SamePublished(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string MembersPrefix(std::string_view cluster_name) {
  return "/kvcake/" + std::string(cluster_name) + "/members/";
}

const char* MembershipStateName(MembershipState state) {
  switch (state) {
    case MembershipState::kUp:
      return "up";
    case MembershipState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

Status MembershipOptions::Validate() const {
  if (endpoints.empty()) return InvalidArgumentError("membership: no etcd endpoints");
  if (!ValidName(cluster_name)) {
    return InvalidArgumentError("membership: cluster name must be non-empty without '/': '" +
                                cluster_name + "'");
  }
  const std::string& id = node_id.empty() ? self.node_id : node_id;
  if (!ValidName(id)) {
    return InvalidArgumentError("membership: node id must be non-empty without '/': '" + id + "'");
  }
  if (!node_id.empty() && !self.node_id.empty() && node_id != self.node_id) {
    return InvalidArgumentError("membership: node_id '" + node_id + "' and self.node_id '" +
                                self.node_id + "' differ");
  }
  if (ttl_s < 1) return InvalidArgumentError("membership: ttl_s must be >= 1");
  if (request_timeout_ms == 0) return InvalidArgumentError("membership: request timeout is 0");
  if (max_backoff_ms == 0) return InvalidArgumentError("membership: max backoff is 0");
  return Status::Ok();
}

bool TcpListenerMayBeAlive(std::string_view address, std::chrono::milliseconds timeout) {
  sockaddr_storage ss;
  size_t len = 0;
  if (!transport::ParseHostPort(address, &ss, &len).ok()) return true;
  const uint16_t port = ss.ss_family == AF_INET6
                            ? ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port)
                            : ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (port == 0) return true;
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  int err = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&ss), static_cast<socklen_t>(len)) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
      socklen_t l = sizeof(err);
      if (ready <= 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = ETIMEDOUT;
    }
  }
  ::close(fd);
  return err != ECONNREFUSED;
}

Result<std::unique_ptr<Membership>> Membership::Start(MembershipOptions options) {
  RETURN_IF_ERROR(options.Validate());
  GatewayEtcdClientOptions client_options;
  client_options.endpoints = options.endpoints;
  client_options.request_timeout_ms = options.request_timeout_ms;
  ASSIGN_OR_RETURN(std::unique_ptr<GatewayEtcdClient> client,
                   GatewayEtcdClient::Create(std::move(client_options)));
  return Start(std::move(options), std::move(client));
}

Result<std::unique_ptr<Membership>> Membership::Start(MembershipOptions options,
                                                      std::unique_ptr<EtcdClient> client) {
  RETURN_IF_ERROR(options.Validate());
  if (client == nullptr) return InvalidArgumentError("membership: null etcd client");
  if (options.self.node_id.empty()) options.self.node_id = options.node_id;
  if (options.node_id.empty()) options.node_id = options.self.node_id;
  std::unique_ptr<Membership> m(new Membership(std::move(options), std::move(client)));
  Status s = m->Register(/*at_start=*/true);
  if (s.code() == StatusCode::kAlreadyExists) return s;
  if (s.ok()) s = m->Poll();
  if (s.ok()) {
    m->SetState(MembershipState::kUp);
  } else if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
    KVCAKE_LOG(WARNING) << "cluster: etcd unreachable at start, membership unknown until it "
                           "answers: "
                        << s.ToString();
  } else {
    return s.WithContext("cluster: joining '" + m->options_.cluster_name + "' as " +
                         m->self_.node_id);
  }
  m->notified_members_ = m->Members();
  m->notified_state_ = m->state();
  m->thread_ = std::thread([raw = m.get()] { raw->Run(); });
  return m;
}

Membership::Membership(MembershipOptions options, std::unique_ptr<EtcdClient> client)
    : options_(std::move(options)),
      client_(std::move(client)),
      self_(options_.self),
      prefix_(MembersPrefix(options_.cluster_name)),
      key_(prefix_ + options_.self.node_id),
      value_(MemberInfoToJson(options_.self)) {}

Membership::~Membership() { Stop(); }

Status Membership::Register(bool at_start) {
  bool took_over = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (lease_id_ == 0) {
      ASSIGN_OR_RETURN(lease_id_, client_->LeaseGrant(options_.ttl_s));
    }
    KeyValue existing;
    Result<bool> created = client_->PutIfAbsent(key_, value_, lease_id_, &existing);
    if (created.status().code() == StatusCode::kNotFound) {
      lease_id_ = 0;  // the lease expired between grant and put: take a new one
      continue;
    }
    if (!created.ok()) return created.status();
    if (!*created && existing.lease != lease_id_) {
      std::string holder = "?";
      Result<MemberInfo> info = MemberInfoFromJson(existing.value);
      if (info.ok()) holder = info->advertise_address;
      if (at_start && !took_over && info.ok() && options_.holder_alive &&
          info->node_id == self_.node_id && info->advertise_address == self_.advertise_address &&
          info->admin_address == self_.admin_address && !options_.holder_alive(*info)) {
        // A previous incarnation of this member that died less than a TTL
        // ago: its lease (and with it the key) goes now.
        KVCAKE_LOG(WARNING) << "cluster: node id '" << self_.node_id
                            << "' is held by a dead previous incarnation (admin "
                            << info->admin_address << " refuses connections); taking it over";
        Status revoked = client_->LeaseRevoke(existing.lease);
        if (!revoked.ok() && revoked.code() != StatusCode::kNotFound) return revoked;
        took_over = true;
        continue;
      }
      // Our lease holds nothing; let it go rather than keep it alive.
      client_->LeaseRevoke(lease_id_).IgnoreError();
      lease_id_ = 0;
      return AlreadyExistsError("cluster: node id '" + self_.node_id +
                                "' is held by a live member at " + holder + " (key " + key_ +
                                "); another kvcaked with this node id is running, or a previous "
                                "one died less than the lease TTL ago");
    }
    if (!*created && existing.value != value_) {
      RETURN_IF_ERROR(client_->Put(key_, value_, lease_id_));
    }
    registered_ = true;
    MutexLock lock(&mu_);
    self_last_seen_unix_ms_ = NowUnixMs();
    return Status::Ok();
  }
  return UnavailableError("cluster: lease of " + self_.node_id + " expired while registering");
}

Status Membership::Round() {
  if (registered_) {
    Result<int64_t> ttl = client_->LeaseKeepAliveOnce(lease_id_);
    if (!ttl.ok()) {
      keepalive_failures_.fetch_add(1, std::memory_order_relaxed);
      if (ttl.status().code() != StatusCode::kNotFound) return ttl.status();
      KVCAKE_LOG(WARNING) << "cluster: lease of " << self_.node_id
                          << " expired; re-creating its key";
      lease_id_ = 0;
      registered_ = false;
    } else {
      MutexLock lock(&mu_);
      self_last_seen_unix_ms_ = NowUnixMs();
    }
  }
  if (!registered_) {
    Status s = Register();
    if (s.code() == StatusCode::kAlreadyExists) KVCAKE_LOG(ERROR) << s.message();
    RETURN_IF_ERROR(s);
  }
  return Poll();
}

Status Membership::Poll() {
  ASSIGN_OR_RETURN(RangeResult range, client_->RangePrefix(prefix_));
  int64_t now = NowUnixMs();
  std::map<std::string, MemberInfo> members;
  bool self_present = false;
  for (const KeyValue& kv : range.kvs) {
    std::string node_id = kv.key.substr(prefix_.size());
    Result<MemberInfo> info = MemberInfoFromJson(kv.value);
    if (!info.ok() || info->node_id != node_id) {
      KVCAKE_LOG(DEBUG) << "cluster: ignoring malformed member key " << kv.key << ": "
                        << (info.ok() ? "node id differs from the key" : info.status().ToString());
      continue;
    }
    if (node_id == self_.node_id) self_present = registered_ && kv.lease == lease_id_;
    info->last_seen_unix_ms = now;
    members.emplace(node_id, std::move(*info));
  }
  if (registered_ && !self_present) {
    // The key was deleted behind our back (the lease is alive): put it back.
    KVCAKE_LOG(WARNING) << "cluster: key " << key_ << " disappeared; re-creating it";
    registered_ = false;
    Status s = Register();
    if (s.code() == StatusCode::kAlreadyExists) KVCAKE_LOG(ERROR) << s.message();
    RETURN_IF_ERROR(s);
  }
  MutexLock lock(&mu_);
  members_ = std::move(members);
  return Status::Ok();
}

void Membership::SetState(MembershipState state) {
  MembershipState old = state_.exchange(state, std::memory_order_acq_rel);
  if (old == state) return;
  if (state == MembershipState::kUp) {
    if (ever_up_) {
      reconnects_.fetch_add(1, std::memory_order_relaxed);
      KVCAKE_LOG(INFO) << "cluster: " << self_.node_id << " is up again in '"
                       << options_.cluster_name << "'";
    } else {
      KVCAKE_LOG(INFO) << "cluster: joined '" << options_.cluster_name << "' as " << self_.node_id
                       << " (key " << key_ << ", lease TTL " << options_.ttl_s << " s)";
    }
    ever_up_ = true;
  }
}

std::vector<MemberInfo> Membership::Members() const {
  bool unknown = state() == MembershipState::kUnknown;
  std::vector<MemberInfo> out;
  MutexLock lock(&mu_);
  out.reserve(members_.size() + 1);
  bool self_added = false;
  for (const auto& [node_id, info] : members_) {
    if (node_id == self_.node_id) continue;
    if (!self_added && self_.node_id < node_id) {
      out.push_back(self_);
      out.back().last_seen_unix_ms = self_last_seen_unix_ms_;
      self_added = true;
    }
    out.push_back(info);
    out.back().stale = unknown;
  }
  if (!self_added) {
    out.push_back(self_);
    out.back().last_seen_unix_ms = self_last_seen_unix_ms_;
  }
  return out;
}

MembershipStats Membership::stats() const {
  MembershipStats stats;
  stats.keepalive_failures = keepalive_failures_.load(std::memory_order_relaxed);
  stats.reconnects = reconnects_.load(std::memory_order_relaxed);
  stats.membership_changes = membership_changes_.load(std::memory_order_relaxed);
  return stats;
}

void Membership::SetChangeCallback(ChangeCallback callback) {
  MutexLock lock(&mu_);
  callback_ = std::move(callback);
}

void Membership::NotifyIfChanged() {
  std::vector<MemberInfo> members = Members();
  MembershipState state = this->state();
  bool members_changed = !SameMembers(members, notified_members_);
  if (!members_changed && state == notified_state_) return;
  if (members_changed) membership_changes_.fetch_add(1, std::memory_order_relaxed);
  notified_members_ = members;
  notified_state_ = state;
  ChangeCallback callback;
  {
    MutexLock lock(&mu_);
    callback = callback_;
  }
  if (callback) callback(members, state);
}

void Membership::Run() {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(options_.ttl_s * 1000 / 3);
  const auto max_backoff = std::chrono::milliseconds(options_.max_backoff_ms);
  auto backoff = std::min<std::chrono::milliseconds>(kInitialBackoff, max_backoff);
  auto next = Clock::now() + (state() == MembershipState::kUp ? interval : backoff);
  MembershipState reported = state();
  while (true) {
    {
      MutexLock lock(&mu_);
      if (cv_.WaitUntil(&lock, next, [this]() REQUIRES(mu_) { return stopping_; })) return;
    }
    Status s = Round();
    if (s.ok()) {
      SetState(MembershipState::kUp);
      backoff = std::min<std::chrono::milliseconds>(kInitialBackoff, max_backoff);
      next = Clock::now() + interval;
    } else {
      if (reported == MembershipState::kUp) {
        KVCAKE_LOG(WARNING) << "cluster: " << self_.node_id
                            << " lost etcd, membership unknown: " << s.ToString();
      }
      SetState(MembershipState::kUnknown);
      next = Clock::now() + backoff;
      backoff = std::min(backoff * 2, max_backoff);
    }
    reported = state();
    NotifyIfChanged();
  }
}

void Membership::StopThread() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void Membership::Stop() {
  MutexLock lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  StopThread();
  if (lease_id_ != 0) {
    Status s = client_->LeaseRevoke(lease_id_);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      KVCAKE_LOG(WARNING) << "cluster: could not revoke the lease of " << self_.node_id
                          << " (peers drop it within " << options_.ttl_s << " s): " << s.ToString();
    }
    lease_id_ = 0;
  }
  registered_ = false;
  SetState(MembershipState::kUnknown);
}

void Membership::Abandon() {
  MutexLock lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  StopThread();
  lease_id_ = 0;
  registered_ = false;
  SetState(MembershipState::kUnknown);
}

}  // namespace kvcake::cluster
