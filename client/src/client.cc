#include "kvcake/client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "common/bulk_copy.h"
#include "common/copy_and_hash.h"
#include "common/logging.h"
#include "common/tier.h"
#ifdef KVCAKE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#include "transport/messages.h"
#include "transport/rpc_client.h"

namespace kvcake {
namespace {

using transport::BlockRef;
using transport::RpcOp;

std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
std::string_view AsView(const std::vector<uint8_t>& v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}
Status KeyStatus(transport::KeyCode code, std::string_view what) {
  if (code == 0) return Status::Ok();
  return Status(static_cast<StatusCode>(code), what);
}

// Loopback addresses are the only ones the mapped path is tried for.
bool IsLoopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address.rfind("localhost:", 0) == 0;
}

// RAII mapping of one of the daemon's segments (same-node path): the host
// segment, or the emulated GPU tier's arena.
class MappedSegment {
 public:
  static Result<std::unique_ptr<MappedSegment>> Open(const std::string& path, uint64_t size,
                                                     uint64_t inode) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, "open segment " + path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Status s = ErrnoToStatus(errno, "fstat segment");
      ::close(fd);
      return s;
    }
    if (static_cast<uint64_t>(st.st_ino) != inode || static_cast<uint64_t>(st.st_size) < size) {
      ::close(fd);
      return FailedPreconditionError("segment " + path +
                                     " is not the daemon's (inode/size differ)");
    }
    // MAP_POPULATE: fault the mapping in now, not on the first copy of each page.
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (base == MAP_FAILED) return ErrnoToStatus(err, "mmap segment");
    return std::unique_ptr<MappedSegment>(new MappedSegment(static_cast<char*>(base), size));
  }
  ~MappedSegment() { ::munmap(base_, size_); }
  MappedSegment(const MappedSegment&) = delete;
  MappedSegment& operator=(const MappedSegment&) = delete;

  // The slot at `offset` if [offset, offset + n) lies inside the segment.
  char* At(uint64_t offset, uint64_t n) const {
    if (offset > size_ || n > size_ - offset) return nullptr;
    return base_ + offset;
  }

 private:
  MappedSegment(char* base, uint64_t size) : base_(base), size_(size) {}
  char* base_;
  uint64_t size_;
};

// One connection to the daemon and what was discovered over it: the RPC
// client and, on the same node, the mappings of the daemon's segments. A
// client replaces its connection as a whole when it reconnects. Calls and
// asynchronous operations hold the connection they started on, so its
// mappings stay valid while they copy; only the client releases it for good
// (an RpcClient must not be destroyed on its own I/O thread, where
// completion callbacks drop their references). Thread-safe: the members are
// set before the connection is shared, except the two flags.
struct Connection {
  ~Connection() {
    rpc.reset();  // before the segments: cancelled callbacks must not find them gone
#ifdef KVCAKE_HAVE_CUDA
    if (device_ipc_base != nullptr) (void)cudaIpcCloseMemHandle(device_ipc_base);
#endif
  }
  // False once a call on it failed with UNAVAILABLE or the RPC client lost
  // its endpoint (the daemon went away).
  bool Healthy() const { return !failed.load(std::memory_order_relaxed) && rpc->connected(); }
  // Records a call's status: UNAVAILABLE marks the connection broken.
  void Note(const Status& s) {
    if (s.code() == StatusCode::kUnavailable) failed.store(true, std::memory_order_relaxed);
  }

  // Copies a pinned block of the GPU-tier arena at `offset` into `dst`;
  // false if this connection cannot read that arena.
  bool CopyFromDeviceSegment(uint64_t offset, void* dst, uint64_t size) const {
    if (device_segment) {
      const char* src = device_segment->At(offset, size);
      if (src == nullptr) return false;
      BulkCopy(dst, src, size);
      return true;
    }
#ifdef KVCAKE_HAVE_CUDA
    if (device_ipc_base != nullptr && offset <= device_ipc_bytes &&
        size <= device_ipc_bytes - offset) {
      return cudaMemcpy(dst, device_ipc_base + offset, size, cudaMemcpyDefault) == cudaSuccess;
    }
#endif
    return false;
  }

  std::unique_ptr<transport::RpcClient> rpc;
  std::unique_ptr<MappedSegment> segment;         // the daemon's host segment
  std::unique_ptr<MappedSegment> device_segment;  // emulated GPU-tier arena
#ifdef KVCAKE_HAVE_CUDA
  char* device_ipc_base = nullptr;  // CUDA GPU-tier arena opened by IPC handle
  uint64_t device_ipc_bytes = 0;
#endif
  std::atomic<bool> failed{false};
  // The namespace is registered over this connection (the daemon authorizes
  // each connection separately).
  std::atomic<bool> registered{false};
};

// One outstanding group of a layer-wise get or of a put stream.
struct GroupState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  std::vector<bool> found;        // gets
  std::vector<Status> per_value;  // puts
};

// Waits for `groups[index]`; its status, or DEADLINE_EXCEEDED / OUT_OF_RANGE.
Status WaitGroup(const std::vector<std::shared_ptr<GroupState>>& groups, size_t index,
                 std::chrono::milliseconds timeout) {
  if (index >= groups.size()) return OutOfRangeError("no such group");
  GroupState& g = *groups[index];
  std::unique_lock<std::mutex> lock(g.mu);
  if (!g.cv.wait_for(lock, timeout, [&] { return g.done; })) {
    return DeadlineExceededError("group " + std::to_string(index) + " not complete after " +
                                 std::to_string(timeout.count()) + " ms");
  }
  return g.status;
}

class PendingGetImpl final : public PendingGet {
 public:
  explicit PendingGetImpl(size_t n, std::chrono::milliseconds max_wait) : max_wait_(max_wait) {
    for (size_t i = 0; i < n; ++i) groups_.push_back(std::make_shared<GroupState>());
  }
  ~PendingGetImpl() override {
    // Buffers must not be written after we return: wait for every group.
    for (size_t i = 0; i < groups_.size(); ++i) {
      Status s = Wait(i, max_wait_ + std::chrono::milliseconds(1000));
      (void)s;
    }
    if (worker_.joinable()) worker_.join();
  }
  size_t size() const override { return groups_.size(); }
  Status Wait(size_t index, std::chrono::milliseconds timeout) override {
    return WaitGroup(groups_, index, timeout);
  }
  const std::vector<bool>& found(size_t index) const override { return groups_[index]->found; }

  std::vector<std::shared_ptr<GroupState>> groups_;
  std::thread worker_;  // mapped path: copies groups in order
  std::chrono::milliseconds max_wait_;
};

struct PutQueue;

// What a client's asynchronous work shares with the client, so a client can
// be destroyed while a layer-wise get is in flight: the destructor sets
// `closing` (requests not yet sent are cancelled instead of sent) and waits
// for the outstanding ones. Completion callbacks touch only this, never the
// client. Thread-safe (mu guards everything).
struct AsyncState {
  std::mutex mu;
  std::condition_variable cv;
  bool closing = false;
  int ucx_groups = 0;  // GetAsync groups whose UCX requests are running
  int workers = 0;     // GetAsync mapped-path workers and put-stream workers running
  // Put streams' queues, told to stop when the client closes.
  std::vector<std::weak_ptr<PutQueue>> put_queues;
  bool Closing() {
    std::lock_guard<std::mutex> lock(mu);
    return closing;
  }
  // Returns false (and changes nothing) once the client is closing.
  bool Add(int AsyncState::*counter) {
    std::lock_guard<std::mutex> lock(mu);
    if (closing) return false;
    ++(this->*counter);
    return true;
  }
  void Done(int AsyncState::*counter) {
    std::lock_guard<std::mutex> lock(mu);  // notify under the lock: the waiter
    --(this->*counter);                    // may destroy the client right after
    cv.notify_all();
  }
};

void Complete(GroupState& g, Status s, std::vector<bool> found) {
  {
    std::lock_guard<std::mutex> lock(g.mu);
    g.status = std::move(s);
    g.found = std::move(found);
    g.done = true;
  }
  g.cv.notify_all();
}

// Starts `fn` on `*thread`: RESOURCE_EXHAUSTED instead of the exception
// std::thread throws when the system has no thread to give.
template <typename Fn>
Status StartThread(std::thread* thread, Fn&& fn) {
  try {
    *thread = std::thread(std::forward<Fn>(fn));
  } catch (const std::system_error& e) {
    return ResourceExhaustedError(std::string("kvcake client: cannot start a thread: ") + e.what());
  }
  return Status::Ok();
}

// What a PutStream shares with its worker thread. Thread-safe (mu).
struct PutQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::vector<PutBlock>, std::shared_ptr<GroupState>>> items;
  bool stop = false;  // the stream or the client is going away: drain, then exit
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
  }
};

class PutStreamImpl final : public PutStream {
 public:
  // `max_group` bounds a group's size; `is_device` tells CUDA buffers apart.
  PutStreamImpl(size_t max_group, std::function<bool(const void*)> is_device,
                std::shared_ptr<AsyncState> async)
      : max_group_(max_group), is_device_(std::move(is_device)), async_(std::move(async)) {}
  ~PutStreamImpl() override {
    queue_->Stop();
    if (worker_.joinable()) worker_.join();
  }

  Result<size_t> Submit(std::vector<PutBlock> group) override {
    if (group.empty() || group.size() > max_group_) {
      return InvalidArgumentError("a put-stream group needs 1.." + std::to_string(max_group_) +
                                  " values, got " + std::to_string(group.size()));
    }
    for (size_t i = 0; i < group.size(); ++i) {
      if (!group[i].data) return InvalidArgumentError("null buffer at " + std::to_string(i));
      if (is_device_ && is_device_(group[i].data)) {
        return UnimplementedError("put streams take host buffers; use Put for CUDA buffers");
      }
    }
    auto state = std::make_shared<GroupState>();
    {
      // The worker exits only once `stop` is set with the queue empty, so a
      // group queued before `stop` is always stored (or cancelled).
      std::lock_guard<std::mutex> lock(queue_->mu);
      if (queue_->stop) return CancelledError("kvcake client closing");
      queue_->items.emplace_back(std::move(group), state);
    }
    queue_->cv.notify_one();
    groups_.push_back(std::move(state));
    return groups_.size() - 1;
  }
  size_t size() const override { return groups_.size(); }
  Status Wait(size_t index, std::chrono::milliseconds timeout) override {
    return WaitGroup(groups_, index, timeout);
  }
  const std::vector<Status>& per_value(size_t index) const override {
    return groups_[index]->per_value;
  }

  // The worker: stores queued groups in order with `put` until told to stop
  // with the queue empty. Once the client is closing, queued groups fail
  // with CANCELLED instead.
  static void Run(std::shared_ptr<PutQueue> queue, std::shared_ptr<AsyncState> async,
                  std::function<Status(std::span<const PutBlock>, std::vector<Status>*)> put) {
    for (;;) {
      std::pair<std::vector<PutBlock>, std::shared_ptr<GroupState>> item;
      {
        std::unique_lock<std::mutex> lock(queue->mu);
        queue->cv.wait(lock, [&] { return queue->stop || !queue->items.empty(); });
        if (queue->items.empty()) break;
        item = std::move(queue->items.front());
        queue->items.pop_front();
      }
      GroupState& g = *item.second;
      Status s;
      std::vector<Status> per_value;
      if (async->Closing()) {
        s = CancelledError("kvcake client closing");
      } else {
        s = put(item.first, &per_value);
      }
      if (per_value.size() != item.first.size()) per_value.assign(item.first.size(), s);
      {
        std::lock_guard<std::mutex> lock(g.mu);
        g.status = std::move(s);
        g.per_value = std::move(per_value);
        g.done = true;
      }
      g.cv.notify_all();
    }
    async->Done(&AsyncState::workers);  // the last use of the client
  }

  const size_t max_group_;
  const std::function<bool(const void*)> is_device_;
  const std::shared_ptr<AsyncState> async_;
  const std::shared_ptr<PutQueue> queue_ = std::make_shared<PutQueue>();
  std::vector<std::shared_ptr<GroupState>> groups_;
  std::thread worker_;
};

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(ClientOptions options)
      : options_(std::move(options)), seed_(NamespaceSeed(options_.namespace_name)) {}
  ~ClientImpl() override {
    // Layer-wise gets and put streams may outlive the client (PendingGet and
    // PutStream are the engine's): stop sending their remaining requests,
    // tell put streams to stop, and wait for what is already running, so
    // nothing below is used after it is gone. Mapped-path and put-stream
    // workers are waited for without a bound (each of their calls has a
    // deadline); UCX groups up to the client timeout, after which destroying
    // the RPC clients cancels them (their callbacks touch only async_ and
    // their connection).
    std::vector<std::weak_ptr<PutQueue>> queues;
    {
      std::lock_guard<std::mutex> lock(async_->mu);
      async_->closing = true;
      queues.swap(async_->put_queues);
    }
    for (const auto& weak : queues) {
      if (auto q = weak.lock()) q->Stop();
    }
    {
      std::unique_lock<std::mutex> lock(async_->mu);
      async_->cv.wait(lock, [&] { return async_->workers == 0; });
      if (!async_->cv.wait_for(lock, options_.timeout + std::chrono::seconds(1),
                               [&] { return async_->ucx_groups == 0; })) {
        KVCAKE_LOG(WARNING) << "kvcake client: " << async_->ucx_groups
                            << " layer groups still in flight at close; cancelling them";
      }
    }
    std::vector<std::shared_ptr<Connection>> conns;
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      conns.swap(retired_);
      if (conn_) conns.push_back(std::move(conn_));
    }
    // Destroying an RPC client runs its pending callbacks (cancelled), which
    // drop their references to the connection; the mappings go after that.
    for (const auto& conn : conns) conn->rpc.reset();
  }

#ifdef KVCAKE_HAVE_CUDA
  // True for CUDA device (or managed) memory. Without a usable device every
  // pointer is host memory.
  bool IsDevicePointer(const void* p) const { return cuda_available_ && IsCudaDeviceMemory(p); }
  static bool IsCudaDeviceMemory(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return a.type == cudaMemoryTypeDevice;
  }
  template <typename Block>
  bool AnyDevice(std::span<const Block> blocks) const {
    if (!cuda_available_) return false;
    for (const Block& b : blocks) {
      if (IsDevicePointer(b.data)) return true;
    }
    return false;
  }
#endif

  // Connects and runs the discovery (see OpenConnection).
  Status Init() {
#ifdef KVCAKE_HAVE_CUDA
    int devices = 0;
    cuda_available_ = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
    if (!cuda_available_) (void)cudaGetLastError();
#endif
    ASSIGN_OR_RETURN(conn_, OpenConnection(options_.timeout));
    return Status::Ok();
  }

  // Connects to the daemon (UCX handshake + ping) and, when possible, maps
  // its host segment and GPU-tier arena. `timeout` bounds the handshake.
  Result<std::shared_ptr<Connection>> OpenConnection(std::chrono::milliseconds timeout) const {
    transport::RpcClientOptions ropts;
    ASSIGN_OR_RETURN(ropts.ucx.transport, transport::ParseUcxTransport(options_.ucx_tls));
    ropts.connect_timeout = timeout;
    ropts.default_timeout = options_.timeout;
    ropts.ucx.busy_poll = options_.busy_poll;
    ropts.ucx.busy_poll_yield = options_.busy_poll_yield;
    ropts.caller_spin = options_.spin_wait;
    auto conn = std::make_shared<Connection>();
    ASSIGN_OR_RETURN(conn->rpc, transport::RpcClient::Connect(options_.address, ropts));
    transport::PingRequest ping{0x6b7663616b65};
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta, Call(*conn, RpcOp::kPing, transport::Encode(ping)));
    transport::PingResponse pong;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &pong));
    if (pong.nonce != ping.nonce) return InternalError("ping nonce mismatch");
    if (options_.use_mapped_path && !pong.host_segment.empty() && IsLoopback(options_.address)) {
      Result<std::unique_ptr<MappedSegment>> seg =
          MappedSegment::Open(pong.host_segment, pong.host_segment_bytes, pong.host_segment_inode);
      if (seg.ok()) {
        conn->segment = std::move(seg).value();
        KVCAKE_LOG(DEBUG) << "kvcake client: mapped the daemon's host segment ("
                          << pong.host_segment_bytes << " bytes)";
      } else {
        KVCAKE_LOG(INFO) << "kvcake client: same-node path unavailable (" << seg.status().ToString()
                         << "); using UCX for data";
      }
    }
    if (conn->segment) OpenDeviceSegment(pong, conn.get());
    return conn;
  }

  // Opens the daemon's GPU-tier arena for the same-node path: the emulated
  // device's memfd, or the CUDA arena by IPC handle. Without it, GPU-tier
  // blocks come over UCX.
  void OpenDeviceSegment(const transport::PingResponse& pong, Connection* conn) const {
    if (pong.device_segment_kind == 1) {
      Result<std::unique_ptr<MappedSegment>> seg = MappedSegment::Open(
          pong.device_segment, pong.device_segment_bytes, pong.device_segment_inode);
      if (seg.ok()) {
        conn->device_segment = std::move(seg).value();
      } else {
        KVCAKE_LOG(INFO) << "kvcake client: GPU-tier arena not mapped (" << seg.status().ToString()
                         << "); its blocks come over UCX";
      }
      return;
    }
#ifdef KVCAKE_HAVE_CUDA
    if (pong.device_segment_kind == 2 && cuda_available_ &&
        pong.device_segment.size() == sizeof(cudaIpcMemHandle_t)) {
      cudaIpcMemHandle_t h;
      std::memcpy(&h, pong.device_segment.data(), sizeof h);
      void* base = nullptr;
      cudaError_t err = cudaIpcOpenMemHandle(&base, h, cudaIpcMemLazyEnablePeerAccess);
      if (err == cudaSuccess) {
        conn->device_ipc_base = static_cast<char*>(base);
        conn->device_ipc_bytes = pong.device_segment_bytes;
      } else {
        (void)cudaGetLastError();
        KVCAKE_LOG(INFO) << "kvcake client: cudaIpcOpenMemHandle: " << cudaGetErrorString(err)
                         << "; GPU-tier blocks come over UCX";
      }
    }
#endif
  }

  Status RegisterNamespace(const NamespaceGeometry& g) override {
    if (g.num_layers == 0 || g.block_tokens == 0 || g.layer_block_bytes == 0) {
      return InvalidArgumentError(
          "namespace geometry: num_layers, block_tokens and "
          "layer_block_bytes must be > 0");
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    ASSIGN_OR_RETURN(transport::RegisterNamespaceResponse resp, SendRegister(*conn, g));
    std::lock_guard<std::mutex> lock(mu_);
    // The namespace fields are written once; later registrations (the daemon
    // accepted the same fingerprint) leave them alone, so calls running
    // concurrently never see them change.
    if (registered_) {
      if (resp.fingerprint != fingerprint_) {
        return FailedPreconditionError(
            "this client is registered with another geometry; "
            "create a new client for a new namespace layout");
      }
      conn->registered = true;
      return Status::Ok();
    }
    geometry_ = g;
    ns_id_ = resp.ns_id;
    fingerprint_ = resp.fingerprint;
    registered_ = true;
    conn->registered = true;
    return Status::Ok();
  }

  const NamespaceGeometry& geometry() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return geometry_;
  }
  uint64_t seed() const override { return seed_; }
  std::vector<uint64_t> HashTokens(std::span<const uint32_t> tokens) const override {
    uint32_t bt;
    {
      std::lock_guard<std::mutex> lock(mu_);
      bt = geometry_.block_tokens ? geometry_.block_tokens : 16;
    }
    std::vector<uint64_t> chain = HashChain::Compute(tokens, seed_, bt);
    RememberChain(chain);
    return chain;
  }

  // Remembers which chain (root) each hash belongs to, so puts can tell a
  // clustered daemon under which root to publish them. Bounded.
  void RememberChain(std::span<const uint64_t> chain) const {
    if (chain.empty()) return;
    std::lock_guard<std::mutex> lock(roots_mu_);
    if (chain_roots_.size() + chain.size() > kMaxRememberedHashes) chain_roots_.clear();
    for (uint64_t h : chain) chain_roots_.try_emplace(h, chain[0]);
  }
  // The roots of `req`'s keys (left empty if none is known).
  void FillRoots(transport::KeyedRequest* req) const {
    std::lock_guard<std::mutex> lock(roots_mu_);
    if (chain_roots_.empty()) return;
    bool any = false;
    req->roots.assign(req->keys.size(), 0);
    for (size_t i = 0; i < req->keys.size(); ++i) {
      auto it = chain_roots_.find(req->keys[i].hash);
      if (it != chain_roots_.end()) {
        req->roots[i] = it->second;
        any = true;
      }
    }
    if (!any) req->roots.clear();
  }

  Result<uint32_t> LookupPrefix(std::span<const uint64_t> hashes, uint32_t layer) override {
    ASSIGN_OR_RETURN(PrefixLookup where, LookupPrefixDetail(hashes, layer, LookupOptions{}));
    return where.total;
  }

  Result<PrefixLookup> LookupPrefixDetail(std::span<const uint64_t> hashes, uint32_t layer,
                                          LookupOptions options) override {
    RETURN_IF_ERROR(CheckRegistered());
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    RememberChain(hashes);
    PrefixLookup out;
    bool all_local = true;
    // Split very long chains; stop at the first incomplete chunk.
    for (size_t pos = 0; pos < hashes.size() || pos == 0;) {
      size_t n = std::min<size_t>(hashes.size() - pos, transport::kMaxLookupHashes);
      transport::LookupPrefixRequest req{
          ns_id_, fingerprint_, layer,
          std::vector<uint64_t>(hashes.begin() + pos, hashes.begin() + pos + n),
          (options.local_only ? transport::kLookupLocalOnly : 0u) |
              (options.prefetch ? 0u : transport::kLookupNoPrefetch)};
      ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                       Call(*conn, RpcOp::kLookupPrefix, transport::Encode(req)));
      transport::LookupPrefixResponse resp;
      RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
      if (resp.prefix_len > n) return InternalError("daemon returned a prefix longer than asked");
      out.total += resp.prefix_len;
      if (all_local) out.local += resp.local_len;
      if (resp.local_len < resp.prefix_len) {
        all_local = false;
        if (out.remote_node.empty()) out.remote_node = resp.remote_node;
      }
      if (resp.prefix_len < n || n == 0) break;
      pos += n;
    }
    return out;
  }

  Status Put(std::span<const PutBlock> blocks, std::vector<Status>* per_value) override {
    return PutTo(blocks, per_value, nullptr);
  }

  Status PutHandoff(const HandoffTarget& target, std::span<const PutBlock> blocks,
                    std::vector<Status>* per_value) override {
    RETURN_IF_ERROR(target.Validate());
    return PutTo(blocks, per_value, &target);
  }

  Result<std::unique_ptr<PutStream>> OpenHandoffStream(const HandoffTarget& target) override {
    RETURN_IF_ERROR(target.Validate());
    return OpenStream(std::make_shared<HandoffTarget>(target));
  }

  Status WaitHandoff(uint64_t handoff_id, std::chrono::milliseconds timeout) override {
    if (handoff_id == 0) return InvalidArgumentError("handoff_id must be > 0");
    if (timeout.count() < 0 || timeout.count() > transport::kMaxHandoffWaitMs) {
      return InvalidArgumentError("WaitHandoff timeout must be in [0, " +
                                  std::to_string(transport::kMaxHandoffWaitMs) + "] ms");
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    const std::string meta = transport::Encode(
        transport::HandoffWaitRequest{handoff_id, static_cast<uint32_t>(timeout.count())});
    transport::CallRequest call;
    call.opcode = static_cast<uint16_t>(RpcOp::kHandoffWait);
    call.meta = AsBytes(meta);
    call.timeout = timeout + options_.timeout;  // the daemon answers at `timeout`
    transport::RpcReply reply = conn->rpc->Call(call);
    conn->Note(reply.status);
    return reply.status;
  }

  Status PutTo(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
               const HandoffTarget* target) {
    RETURN_IF_ERROR(CheckRegistered());
#ifdef KVCAKE_HAVE_CUDA
    // CUDA buffers are staged through host memory (UCX here has no CUDA lanes).
    if (AnyDevice(blocks)) {
      const uint64_t size = geometry_.layer_block_bytes;
      std::vector<std::unique_ptr<char[]>> staged;
      std::vector<PutBlock> host(blocks.begin(), blocks.end());
      for (PutBlock& b : host) {
        if (!IsDevicePointer(b.data)) continue;
        staged.push_back(std::make_unique<char[]>(size));
        if (cudaMemcpy(staged.back().get(), b.data, size, cudaMemcpyDeviceToHost) != cudaSuccess) {
          return InternalError(std::string("cudaMemcpy D2H: ") +
                               cudaGetErrorString(cudaGetLastError()));
        }
        b.data = staged.back().get();
      }
      return PutHost(host, per_value, target);
    }
#endif
    return PutHost(blocks, per_value, target);
  }

  Status PutHost(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
                 const HandoffTarget* target = nullptr) {
    Result<std::shared_ptr<Connection>> acquired = Acquire();
    if (!acquired.ok()) {
      if (per_value) per_value->assign(blocks.size(), acquired.status());
      return acquired.status();
    }
    const std::shared_ptr<Connection>& conn = *acquired;
    if (per_value) per_value->assign(blocks.size(), Status::Ok());
    Status first;
    const size_t batch = BatchSize();
    for (size_t pos = 0; pos < blocks.size(); pos += batch) {
      auto part = blocks.subspan(pos, std::min(batch, blocks.size() - pos));
      std::vector<Status> codes;
      Status s = conn->segment ? PutMapped(conn, part, &codes, target)
                               : PutUcx(conn, part, &codes, target);
      if (!s.ok()) {
        if (first.ok()) first = s;
        codes.assign(part.size(), s);
      }
      // ABORTED: another writer holds the key's reservation (e.g. two
      // engines saving the same prefix). Retry those keys a few times: the
      // other writer usually commits, and the retry then sees ALREADY_EXISTS.
      for (int attempt = 1; s.ok() && attempt <= 5; ++attempt) {
        std::vector<PutBlock> retry;
        std::vector<size_t> where;
        for (size_t i = 0; i < part.size(); ++i) {
          if (codes[i].code() == StatusCode::kAborted) {
            retry.push_back(part[i]);
            where.push_back(i);
          }
        }
        if (retry.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2 * attempt));
        std::vector<Status> again;
        Status rs = conn->segment ? PutMapped(conn, retry, &again, target)
                                  : PutUcx(conn, retry, &again, target);
        if (!rs.ok()) break;
        for (size_t k = 0; k < where.size(); ++k) codes[where[k]] = again[k];
      }
      for (size_t i = 0; i < part.size(); ++i) {
        if (per_value) (*per_value)[pos + i] = codes[i];
        if (!codes[i].ok() && first.ok()) first = codes[i];
      }
    }
    return first;
  }

  Status Get(std::span<const GetBlock> blocks, std::vector<bool>* found) override {
    RETURN_IF_ERROR(CheckRegistered());
#ifdef KVCAKE_HAVE_CUDA
    if (AnyDevice(blocks)) {
      const uint64_t size = geometry_.layer_block_bytes;
      std::vector<std::unique_ptr<char[]>> staged;
      std::vector<GetBlock> host(blocks.begin(), blocks.end());
      std::vector<size_t> device_index;
      for (size_t i = 0; i < host.size(); ++i) {
        if (!IsDevicePointer(host[i].data)) continue;
        staged.push_back(std::make_unique<char[]>(size));
        host[i].data = staged.back().get();
        device_index.push_back(i);
      }
      RETURN_IF_ERROR(GetHost(host, found));
      for (size_t i : device_index) {
        if (!(*found)[i]) continue;
        if (cudaMemcpy(blocks[i].data, host[i].data, size, cudaMemcpyHostToDevice) != cudaSuccess) {
          return InternalError(std::string("cudaMemcpy H2D: ") +
                               cudaGetErrorString(cudaGetLastError()));
        }
      }
      return Status::Ok();
    }
#endif
    return GetHost(blocks, found);
  }

  Status GetHost(std::span<const GetBlock> blocks, std::vector<bool>* found) {
    found->assign(blocks.size(), false);
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    const size_t batch = BatchSize();
    for (size_t pos = 0; pos < blocks.size(); pos += batch) {
      auto part = blocks.subspan(pos, std::min(batch, blocks.size() - pos));
      std::vector<bool> f;
      RETURN_IF_ERROR(conn->segment ? GetMapped(conn, part, &f) : GetUcx(conn, part, &f));
      std::copy(f.begin(), f.end(), found->begin() + pos);
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<PendingGet>> GetAsync(std::vector<std::vector<GetBlock>> groups) override {
    RETURN_IF_ERROR(CheckRegistered());
    for (const auto& g : groups) {
      if (g.empty() || g.size() > BatchSize()) {
        return InvalidArgumentError("each group needs 1.." + std::to_string(BatchSize()) +
                                    " values, got " + std::to_string(g.size()));
      }
      for (const GetBlock& b : g) {
        if (!b.data) return InvalidArgumentError("null buffer");
      }
#ifdef KVCAKE_HAVE_CUDA
      if (AnyDevice(std::span<const GetBlock>(g))) {
        return UnimplementedError("GetAsync takes host buffers; use Get for CUDA buffers");
      }
#endif
    }
    // Every group runs on the connection of this moment: if it breaks, the
    // groups fail (UNAVAILABLE) and the next call reconnects.
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    auto pending = std::make_unique<PendingGetImpl>(groups.size(), options_.timeout);
    if (conn->segment) {
      // Same node: one worker copies the groups in order, completing each.
      auto shared = std::make_shared<std::vector<std::vector<GetBlock>>>(std::move(groups));
      auto states = pending->groups_;
      if (!async_->Add(&AsyncState::workers)) return ClosingError();
      // The client waits for this worker before it is destroyed; once it is
      // closing, the groups not started yet are cancelled.
      Status started =
          StartThread(&pending->worker_, [this, conn, shared, states, async = async_]() mutable {
            for (size_t i = 0; i < shared->size(); ++i) {
              if (async->Closing()) {
                Complete(*states[i], ClosingError(), {});
                continue;
              }
              std::vector<bool> f;
              Status s = GetMapped(conn, (*shared)[i], &f);
              Complete(*states[i], s, std::move(f));
            }
            conn.reset();  // the client may be destroyed once the worker is done
            async->Done(&AsyncState::workers);  // last use of the client
          });
      if (!started.ok()) {
        async_->Done(&AsyncState::workers);
        for (const auto& state : states) Complete(*state, started, {});
        return started;
      }
      return std::unique_ptr<PendingGet>(std::move(pending));
    }
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      std::shared_ptr<GroupState> state = pending->groups_[gi];
      if (!async_->Add(&AsyncState::ucx_groups)) {
        Complete(*state, ClosingError(), {});
        continue;
      }
      StartGetUcx(conn, std::make_shared<std::vector<GetBlock>>(std::move(groups[gi])),
                  [state, async = async_](Status s, std::vector<bool> found) {
                    Complete(*state, std::move(s), std::move(found));
                    async->Done(&AsyncState::ucx_groups);
                  });
    }
    return std::unique_ptr<PendingGet>(std::move(pending));
  }

  Result<std::unique_ptr<PutStream>> OpenPutStream() override { return OpenStream(nullptr); }

  // A put stream; with `target`, every group is a hand-off put.
  Result<std::unique_ptr<PutStream>> OpenStream(std::shared_ptr<const HandoffTarget> target) {
    RETURN_IF_ERROR(CheckRegistered());
    std::function<bool(const void*)> is_device;
#ifdef KVCAKE_HAVE_CUDA
    if (cuda_available_) is_device = IsCudaDeviceMemory;  // the stream may outlive the client
#endif
    auto stream = std::make_unique<PutStreamImpl>(BatchSize(), std::move(is_device), async_);
    {
      std::lock_guard<std::mutex> lock(async_->mu);
      if (async_->closing) return CancelledError("kvcake client closing");
      ++async_->workers;  // the client waits for this worker before it is destroyed
      auto& queues = async_->put_queues;
      std::erase_if(queues, [](const std::weak_ptr<PutQueue>& q) { return q.expired(); });
      queues.push_back(stream->queue_);
    }
    std::function<Status(std::span<const PutBlock>, std::vector<Status>*)> put =
        [this, target](std::span<const PutBlock> blocks, std::vector<Status>* per_value) {
          return PutHost(blocks, per_value, target.get());
        };
    Status started = StartThread(&stream->worker_, [queue = stream->queue_, async = async_, put] {
      PutStreamImpl::Run(queue, async, put);
    });
    if (!started.ok()) {
      async_->Done(&AsyncState::workers);
      return started;
    }
    return std::unique_ptr<PutStream>(std::move(stream));
  }

  Status ReportLayerStats(uint32_t layer, double preference, std::span<const uint64_t> block_hashes,
                          std::span<const double> block_scores, uint32_t window_blocks) override {
    RETURN_IF_ERROR(CheckRegistered());
    if (block_hashes.size() != block_scores.size()) {
      return InvalidArgumentError("block_hashes and block_scores differ in length");
    }
    transport::ReportStatsRequest req;
    req.ns_id = ns_id_;
    req.fingerprint = fingerprint_;
    req.layer = layer;
    req.preference = preference;
    req.block_hashes.assign(block_hashes.begin(), block_hashes.end());
    req.block_scores.assign(block_scores.begin(), block_scores.end());
    req.window_blocks = window_blocks;
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                     Call(*conn, RpcOp::kReportStats, transport::Encode(req)));
    return Status::Ok();
  }

  Result<uint32_t> Delete(std::span<const BlockId> keys) override {
    RETURN_IF_ERROR(CheckRegistered());
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    uint32_t deleted = 0;
    const size_t batch = BatchSize();
    for (size_t pos = 0; pos < keys.size(); pos += batch) {
      transport::DeleteRequest req{ns_id_, fingerprint_, {}};
      for (size_t i = pos; i < std::min(keys.size(), pos + batch); ++i) {
        req.keys.push_back(BlockRef{keys[i].hash, keys[i].layer});
      }
      ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                       Call(*conn, RpcOp::kDelete, transport::Encode(req)));
      transport::DeleteResponse resp;
      RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
      deleted += resp.deleted;
    }
    return deleted;
  }

  Status Ping() override {
    transport::PingRequest ping{1};
    ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta, Call(*conn, RpcOp::kPing, transport::Encode(ping)));
    return Status::Ok();
  }
  bool mapped_path() const override { return Current()->segment != nullptr; }
  std::string transport_info() const override { return Current()->rpc->transport_info(); }
  uint64_t reconnects() const override { return reconnects_.load(std::memory_order_relaxed); }
  uint64_t checksum_failures() const override {
    return checksum_failures_.load(std::memory_order_relaxed);
  }

 private:
  size_t BatchSize() const {
    // At most kMaxBatchBlocks values and about 256 MiB per request.
    uint64_t by_bytes = (256ull << 20) / std::max<uint64_t>(1, geometry_.layer_block_bytes);
    return static_cast<size_t>(std::clamp<uint64_t>(by_bytes, 1, transport::kMaxBatchBlocks));
  }

  Status CheckRegistered() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!registered_) {
      return FailedPreconditionError("namespace '" + options_.namespace_name +
                                     "' not registered: call RegisterNamespace first");
    }
    return Status::Ok();
  }

  bool Registered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return registered_;
  }

  std::shared_ptr<Connection> Current() const {
    std::lock_guard<std::mutex> lock(conn_mu_);
    return conn_;
  }

  // The connection a call runs on: the current one while it works (and,
  // once the namespace is registered, has it registered). Otherwise, with
  // ClientOptions::reconnect, re-establishes it first: a new connection to
  // the same address (with backoff between attempts), the discovery of
  // Connect, and the namespace registered again, all within the call's
  // timeout. One thread reconnects at a time; the others wait for it (up to
  // their timeout) and then use its connection.
  Result<std::shared_ptr<Connection>> Acquire() {
    std::shared_ptr<Connection> conn = Current();
    const bool need_namespace = Registered();
    if (!options_.reconnect || (conn->Healthy() && (!need_namespace || conn->registered.load()))) {
      return conn;
    }
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    // One reconnecting thread at a time (a gate rather than a timed mutex:
    // TSan cannot follow std::timed_mutex's clock-based lock).
    {
      std::unique_lock<std::mutex> gate(reconnect_mu_);
      if (!reconnect_cv_.wait_until(gate, deadline, [this] { return !reconnecting_; })) {
        return UnavailableError("kvcake: the connection to " + options_.address +
                                " is broken and another call's reconnect did not finish within " +
                                std::to_string(options_.timeout.count()) + " ms");
      }
      reconnecting_ = true;
    }
    struct GateRelease {
      ClientImpl* self;
      ~GateRelease() {
        {
          std::lock_guard<std::mutex> gate(self->reconnect_mu_);
          self->reconnecting_ = false;
        }
        self->reconnect_cv_.notify_all();
      }
    } release{this};
    conn = Current();  // another thread may have reconnected meanwhile
    if (!conn->Healthy()) {
      Status why = conn->rpc->connection_status();
      conn.reset();  // a retired connection is released once unused
      return ReconnectLocked(deadline, why);
    }
    if (Registered() && !conn->registered.load()) {
      // An earlier registration on this connection was refused.
      RETURN_IF_ERROR(RegisterAgainLocked(*conn));
    }
    return conn;
  }

  // Opens connections until one works or `deadline` comes; installs it as
  // the current one. Attempts are spaced by a backoff that grows from
  // kInitialBackoff to ClientOptions::reconnect_max_backoff and carries over
  // between calls until an attempt succeeds. Called by the thread that holds the reconnect gate
  // (reconnecting_).
  Result<std::shared_ptr<Connection>> ReconnectLocked(
      std::chrono::steady_clock::time_point deadline, const Status& why) {
    for (;;) {
      if (async_->Closing()) return ClosingError();
      auto now = std::chrono::steady_clock::now();
      if (next_attempt_ >= deadline || now >= deadline) {
        return UnavailableError(
            "kvcake: connection to " + options_.address + " lost (" +
            (why.ok() ? std::string("a call failed") : std::string(why.message())) + "); " +
            std::to_string(failed_attempts_) + " reconnect attempt(s) failed, the last: " +
            last_attempt_error_.ToString() + "; retrying on a later call");
      }
      if (next_attempt_ > now) {
        std::this_thread::sleep_until(next_attempt_);
        now = std::chrono::steady_clock::now();
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      Result<std::shared_ptr<Connection>> opened =
          OpenConnection(std::clamp(left, std::chrono::milliseconds(1), options_.timeout));
      if (!opened.ok()) {
        ++failed_attempts_;
        last_attempt_error_ = opened.status();
        next_attempt_ = std::chrono::steady_clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.reconnect_max_backoff);
        KVCAKE_LOG(DEBUG) << "kvcake client: reconnect attempt " << failed_attempts_ << " to "
                          << options_.address << " failed: " << last_attempt_error_.ToString();
        continue;
      }
      std::shared_ptr<Connection> conn = std::move(opened).value();
      Status registered;
      if (Registered()) {
        // Registered before it is installed, so other calls find it ready.
        // A refusal (e.g. the daemon now holds another layout) is not a
        // connection failure: the connection is installed and the
        // registration retried by the next call.
        registered = RegisterAgainLocked(*conn);
        if (!registered.ok() && !conn->Healthy()) {
          ++failed_attempts_;
          last_attempt_error_ = registered;
          next_attempt_ = std::chrono::steady_clock::now() + backoff_;
          backoff_ = std::min(backoff_ * 2, options_.reconnect_max_backoff);
          continue;
        }
      }
      const uint64_t n = reconnects_.fetch_add(1, std::memory_order_relaxed) + 1;
      KVCAKE_LOG(INFO) << "kvcake client: reconnected to " << options_.address << " after "
                       << failed_attempts_ + 1 << " attempt(s) (reconnect " << n
                       << "; data path: " << (conn->segment ? "mapped host segment" : "UCX") << ")";
      failed_attempts_ = 0;
      last_attempt_error_ = Status::Ok();
      backoff_ = std::min(kInitialBackoff, options_.reconnect_max_backoff);
      next_attempt_ = {};
      Install(conn);
      if (!registered.ok()) return registered;
      return conn;
    }
  }

  // Makes `conn` the current connection. The previous one is retired and
  // released (its RPC client closed, its segments unmapped) by a later
  // Install or the destructor once no call or operation uses it any more;
  // that check runs here, on a caller's thread, never on an I/O thread.
  void Install(std::shared_ptr<Connection> conn) {
    std::vector<std::shared_ptr<Connection>> unused;
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      retired_.push_back(std::move(conn_));
      conn_ = std::move(conn);
      // use_count() == 1: only retired_ holds it, and nothing can copy it
      // from there.
      auto idle = std::stable_partition(retired_.begin(), retired_.end(),
                                        [](const auto& c) { return c.use_count() > 1; });
      std::move(idle, retired_.end(), std::back_inserter(unused));
      retired_.erase(idle, retired_.end());
    }
    // `unused` goes here, outside the lock.
  }

  // Sends RegisterNamespace with the client's geometry and token over
  // `conn` (after a reconnect) and checks that the daemon agrees on the
  // layout. Called by the thread that holds the reconnect gate (reconnecting_).
  Status RegisterAgainLocked(Connection& conn) {
    NamespaceGeometry g;
    uint64_t ns_id, fingerprint;
    {
      std::lock_guard<std::mutex> lock(mu_);
      g = geometry_;
      ns_id = ns_id_;
      fingerprint = fingerprint_;
    }
    Result<transport::RegisterNamespaceResponse> resp = SendRegister(conn, g);
    if (!resp.ok()) {
      return resp.status().WithContext("kvcake: registering namespace '" + options_.namespace_name +
                                       "' again after reconnecting");
    }
    if (resp->fingerprint != fingerprint || resp->ns_id != ns_id) {
      return FailedPreconditionError("the daemon at " + options_.address +
                                     " now holds namespace '" + options_.namespace_name +
                                     "' with another layout; create a new client");
    }
    conn.registered = true;
    return Status::Ok();
  }

  // One RegisterNamespace request for this client's namespace over `conn`.
  Result<transport::RegisterNamespaceResponse> SendRegister(Connection& conn,
                                                            const NamespaceGeometry& g) const {
    transport::RegisterNamespaceRequest req;
    req.name = options_.namespace_name;
    req.token = options_.token;
    req.num_layers = g.num_layers;
    req.block_tokens = g.block_tokens;
    req.layer_block_bytes = g.layer_block_bytes;
    req.kv_dtype = g.kv_dtype;
    req.layout = g.layout;
    req.quota_bytes = g.quota_bytes;
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                     Call(conn, RpcOp::kRegisterNamespace, transport::Encode(req)));
    transport::RegisterNamespaceResponse resp;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
    return resp;
  }

  // One synchronous call over `conn`; the reply's meta, or its error with
  // context. UNAVAILABLE marks the connection broken.
  Result<std::vector<uint8_t>> Call(Connection& conn, RpcOp op, const std::string& meta) const {
    transport::CallRequest call;
    call.opcode = static_cast<uint16_t>(op);
    call.meta = AsBytes(meta);
    call.timeout = options_.timeout;
    transport::RpcReply reply = conn.rpc->Call(call);
    if (!reply.status.ok()) {
      conn.Note(reply.status);
      return reply.status.WithContext(std::string("kvcake ") +
                                      std::string(transport::RpcOpName(call.opcode)));
    }
    return std::move(reply.meta);
  }

  // Values of at least this size travel one per request (several requests
  // in flight), straight from/into the caller's buffer; smaller ones are
  // grouped up to this many bytes per request.
  static constexpr uint64_t kSingleValueBytes = 64 * 1024;

  std::vector<std::pair<size_t, size_t>> Chunks(size_t n) const {
    const uint64_t size = geometry_.layer_block_bytes;
    size_t per =
        size >= kSingleValueBytes ? 1 : static_cast<size_t>((kSingleValueBytes - 1) / size);
    per = std::max<size_t>(1, per);
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t b = 0; b < n; b += per) out.emplace_back(b, std::min(n, b + per));
    return out;
  }

  // State shared by the sub-requests of one multi-request operation.
  struct MultiOp {
    std::shared_ptr<Connection> conn;  // the requests' connection
    std::mutex mu;
    std::condition_variable cv;
    size_t remaining = 0;
    Status first;
    std::vector<bool> found;                              // gets
    std::vector<transport::KeyCode> codes;                // puts
    std::function<void(Status, std::vector<bool>)> done;  // gets (async)
    // Gets: check values against the reply's checksums; mismatches counted here.
    std::atomic<uint64_t>* checksum_failures = nullptr;
    bool finished = false;
    // Sub-requests not started yet (started in order as earlier ones finish,
    // at most ClientOptions::max_inflight_requests at a time).
    std::vector<std::function<void()>> starts;
    size_t next_start = 0;
    void Fail(const Status& s) {
      if (first.ok()) first = s;
    }
  };

  // Starts the first `window` sub-requests of `op`; each completion calls
  // StartNext(op) to keep the window full.
  static void StartWindow(MultiOp& op, int window) {
    std::vector<std::function<void()>*> now;
    {
      std::lock_guard<std::mutex> lock(op.mu);
      while (op.next_start < op.starts.size() && now.size() < static_cast<size_t>(window)) {
        now.push_back(&op.starts[op.next_start++]);
      }
    }
    for (auto* f : now) (*f)();
  }
  // Starts the next pending sub-request of `op`, if any. Call without op.mu.
  static void StartNext(MultiOp& op) {
    std::function<void()>* f = nullptr;
    {
      std::lock_guard<std::mutex> lock(op.mu);
      if (op.next_start < op.starts.size()) f = &op.starts[op.next_start++];
    }
    if (f) (*f)();
  }
  struct SubRequest {
    std::string meta;
    std::vector<transport::ConstBuffer> payload;
    std::vector<transport::MutableBuffer> reply;
    std::unique_ptr<char[]> staging;
  };

  // Finishes one sub-request of a get covering blocks [b, e).
  static void FinishSubGet(MultiOp& op, const std::vector<GetBlock>& blocks, size_t b, size_t e,
                           SubRequest& sub, uint64_t size, transport::RpcReply& reply) {
    Status s;
    transport::KeyCodesResponse resp;
    if (!reply.status.ok()) {
      s = reply.status.WithContext("kvcake GET");
    } else {
      s = transport::Decode(AsView(reply.meta), &resp);
      if (s.ok() && resp.codes.size() != e - b) s = InternalError("GET: wrong number of codes");
    }
    size_t hits = 0;
    if (s.ok()) {
      for (auto c : resp.codes) hits += (c == 0);
      if (reply.payload_size != hits * size) {
        s = InternalError("GET: payload of " + std::to_string(reply.payload_size) + " bytes for " +
                          std::to_string(hits) + " values");
      }
    }
    std::lock_guard<std::mutex> lock(op.mu);
    if (!s.ok()) {
      op.Fail(s);
    } else {
      size_t k = 0;
      const bool verify = op.checksum_failures != nullptr && resp.checksums.size() == hits;
      for (size_t i = b; i < e; ++i) {
        if (resp.codes[i - b] != 0) continue;
        if (sub.staging) std::memcpy(blocks[i].data, sub.staging.get() + k * size, size);
        // The bytes that reached this buffer, against the checksum taken at
        // commit: a transfer cut short or garbled is a miss, never wrong bytes.
        const bool intact = !verify || Xxh3(blocks[i].data, size) == resp.checksums[k];
        ++k;
        if (!intact) {
          op.checksum_failures->fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        op.found[i] = true;
      }
    }
  }

  // Starts a UCX get of `blocks` over `conn`; `done` runs once (on an I/O
  // thread) when every sub-request has finished.
  void StartGetUcx(const std::shared_ptr<Connection>& conn,
                   std::shared_ptr<std::vector<GetBlock>> blocks,
                   std::function<void(Status, std::vector<bool>)> done) {
    const uint64_t size = geometry_.layer_block_bytes;
    auto op = std::make_shared<MultiOp>();
    op->conn = conn;
    op->found.assign(blocks->size(), false);
    op->done = std::move(done);
    if (options_.verify_mapped_reads) op->checksum_failures = &checksum_failures_;
    auto chunks = Chunks(blocks->size());
    op->remaining = chunks.size();
    if (chunks.empty()) {
      op->done(Status::Ok(), {});
      return;
    }
    for (auto [b, e] : chunks) {
      auto sub = std::make_shared<SubRequest>();
      transport::GetRequest req{ns_id_, fingerprint_, {}};
      for (size_t i = b; i < e; ++i)
        req.keys.push_back(BlockRef{(*blocks)[i].hash, (*blocks)[i].layer});
      sub->meta = transport::Encode(req);
      if (e - b == 1) {
        sub->reply.push_back(transport::MutableBuffer{(*blocks)[b].data, size});
      } else {
        sub->staging = std::make_unique<char[]>((e - b) * size);
        sub->reply.push_back(transport::MutableBuffer{sub->staging.get(), (e - b) * size});
      }
      transport::CallRequest call;
      call.opcode = static_cast<uint16_t>(RpcOp::kGet);
      call.meta = AsBytes(sub->meta);
      call.reply_buffers = sub->reply;
      call.timeout = options_.timeout;
      // `op` owns the start closures, so they hold it weakly (no cycle).
      std::weak_ptr<MultiOp> weak = op;
      op->starts.push_back([weak, call, blocks, sub, b = b, e = e, size, async = async_] {
        auto op = weak.lock();
        if (!op) return;
        auto on_reply = [op, blocks, sub, b, e, size](transport::RpcReply&& reply) {
          op->conn->Note(reply.status);
          FinishSubGet(*op, *blocks, b, e, *sub, size, reply);
          StartNext(*op);
          bool last;
          {
            std::lock_guard<std::mutex> lock(op->mu);
            last = --op->remaining == 0;
          }
          if (last) op->done(op->first, op->first.ok() ? op->found : std::vector<bool>());
        };
        // Started from a completion (StartNext) while the client is being
        // destroyed: cancel instead of touching the RPC client.
        if (async->Closing()) {
          transport::RpcReply cancelled;
          cancelled.status = ClosingError();
          on_reply(std::move(cancelled));
          return;
        }
        op->conn->rpc->CallAsync(call, std::move(on_reply));
      });
    }
    StartWindow(*op, options_.max_inflight_requests);
  }

  // Names the hand-off (if any) in a put or reservation.
  static void FillHandoff(const HandoffTarget* target, transport::KeyedRequest* req) {
    if (target == nullptr) return;
    req->target_node = target->node_id;
    req->handoff_id = target->handoff_id;
    req->handoff_blocks = target->total_blocks;
  }

  Status PutUcx(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> blocks,
                std::vector<Status>* codes, const HandoffTarget* target) {
    const uint64_t size = geometry_.layer_block_bytes;
    for (const PutBlock& b : blocks) {
      if (!b.data) return InvalidArgumentError("null buffer");
    }
    auto op = std::make_shared<MultiOp>();
    op->conn = conn;
    op->codes.assign(blocks.size(), static_cast<transport::KeyCode>(StatusCode::kUnknown));
    auto chunks = Chunks(blocks.size());
    op->remaining = chunks.size();
    for (auto [b, e] : chunks) {
      auto sub = std::make_shared<SubRequest>();
      transport::PutRequest req{ns_id_, fingerprint_, {}};
      for (size_t i = b; i < e; ++i) {
        req.keys.push_back(BlockRef{blocks[i].hash, blocks[i].layer});
        sub->payload.push_back(transport::ConstBuffer{blocks[i].data, size});
      }
      FillRoots(&req);
      FillHandoff(target, &req);
      sub->meta = transport::Encode(req);
      transport::CallRequest call;
      call.opcode = static_cast<uint16_t>(RpcOp::kPut);
      call.meta = AsBytes(sub->meta);
      call.payload = sub->payload;
      call.timeout = options_.timeout;
      std::weak_ptr<MultiOp> weak = op;
      op->starts.push_back([weak, call, sub, b = b, e = e] {
        auto op = weak.lock();
        if (!op) return;
        op->conn->rpc->CallAsync(call, [op, sub, b, e](transport::RpcReply&& reply) {
          op->conn->Note(reply.status);
          StartNext(*op);
          std::lock_guard<std::mutex> lock(op->mu);
          transport::KeyCodesResponse resp;
          Status s = reply.status.ok() ? transport::Decode(AsView(reply.meta), &resp)
                                       : reply.status.WithContext("kvcake PUT");
          if (s.ok() && resp.codes.size() != e - b) {
            s = InternalError("PUT: wrong number of codes");
          }
          if (!s.ok()) {
            op->Fail(s);
          } else {
            std::copy(resp.codes.begin(), resp.codes.end(), op->codes.begin() + b);
          }
          if (--op->remaining == 0) {
            op->finished = true;
            op->cv.notify_all();
          }
        });
      });
    }
    StartWindow(*op, options_.max_inflight_requests);
    {
      std::unique_lock<std::mutex> lock(op->mu);
      // Every call has its own deadline, so this wait ends; the bound is a safety net.
      if (!op->cv.wait_for(lock, options_.timeout + std::chrono::seconds(10),
                           [&] { return op->finished; })) {
        return DeadlineExceededError("kvcake PUT: no reply");
      }
      RETURN_IF_ERROR(op->first);
    }
    codes->clear();
    for (auto c : op->codes) {
      codes->push_back(c == static_cast<uint8_t>(StatusCode::kAlreadyExists)
                           ? Status::Ok()
                           : KeyStatus(c, "put refused by the daemon"));
    }
    return Status::Ok();
  }

  Status PutMapped(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> blocks,
                   std::vector<Status>* codes, const HandoffTarget* target) {
    const uint64_t size = geometry_.layer_block_bytes;
    transport::PutRequest req{ns_id_, fingerprint_, {}};
    for (const PutBlock& b : blocks) {
      if (!b.data) return InvalidArgumentError("null buffer");
      req.keys.push_back(BlockRef{b.hash, b.layer});
    }
    FillRoots(&req);
    FillHandoff(target, &req);
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                     Call(*conn, RpcOp::kPutReserve, transport::Encode(req)));
    transport::SlotsResponse slots;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &slots));
    if (slots.codes.size() != blocks.size()) return InternalError("RESERVE: wrong code count");
    transport::PutCommitRequest commit{ns_id_, fingerprint_, slots.lease_id, {}, {}};
    std::vector<size_t> committed_index;
    codes->assign(blocks.size(), Status::Ok());
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (slots.codes[i] != 0) {
        if (slots.codes[i] != static_cast<uint8_t>(StatusCode::kAlreadyExists)) {
          (*codes)[i] = KeyStatus(slots.codes[i], "put reservation refused by the daemon");
        }
        continue;
      }
      char* dst = conn->segment->At(slots.offsets[i], size);
      if (!dst) {
        (*codes)[i] = InternalError("reserved slot outside the mapped segment");
        continue;
      }
      commit.keys.push_back(req.keys[i]);
      commit.checksums.push_back(CopyAndHash(dst, blocks[i].data, size));
      committed_index.push_back(i);
    }
    if (commit.keys.empty()) {
      transport::ReleaseRequest rel{slots.lease_id};
      (void)Call(*conn, RpcOp::kRelease, transport::Encode(rel));
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(std::vector<uint8_t> cmeta,
                     Call(*conn, RpcOp::kPutCommit, transport::Encode(commit)));
    transport::KeyCodesResponse resp;
    RETURN_IF_ERROR(transport::Decode(AsView(cmeta), &resp));
    if (resp.codes.size() != commit.keys.size()) return InternalError("COMMIT: wrong code count");
    for (size_t j = 0; j < committed_index.size(); ++j) {
      uint8_t c = resp.codes[j];
      (*codes)[committed_index[j]] = c == static_cast<uint8_t>(StatusCode::kAlreadyExists)
                                         ? Status::Ok()
                                         : KeyStatus(c, "commit refused by the daemon");
    }
    return Status::Ok();
  }

  Status GetUcx(const std::shared_ptr<Connection>& conn, std::span<const GetBlock> blocks,
                std::vector<bool>* found) {
    for (const GetBlock& b : blocks) {
      if (!b.data) return InvalidArgumentError("null buffer");
    }
    struct Wait {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      Status status;
      std::vector<bool> found;
    };
    auto w = std::make_shared<Wait>();
    StartGetUcx(conn, std::make_shared<std::vector<GetBlock>>(blocks.begin(), blocks.end()),
                [w](Status s, std::vector<bool> f) {
                  std::lock_guard<std::mutex> lock(w->mu);
                  w->status = std::move(s);
                  w->found = std::move(f);
                  w->done = true;
                  w->cv.notify_all();
                });
    std::unique_lock<std::mutex> lock(w->mu);
    if (!w->cv.wait_for(lock, options_.timeout + std::chrono::seconds(10),
                        [&] { return w->done; })) {
      return DeadlineExceededError("kvcake GET: no reply");
    }
    RETURN_IF_ERROR(w->status);
    *found = std::move(w->found);
    return Status::Ok();
  }

  // Same-node get: pin + copy out of the mapped host segment. Blocks the
  // daemon holds outside the host segment (the GPU tier) come through UCX.
  Status GetMapped(const std::shared_ptr<Connection>& conn, std::span<const GetBlock> blocks,
                   std::vector<bool>* found) {
    std::vector<size_t> elsewhere;
    RETURN_IF_ERROR(GetMappedHost(*conn, blocks, found, &elsewhere));
    if (elsewhere.empty()) return Status::Ok();
    std::vector<GetBlock> rest;
    for (size_t i : elsewhere) rest.push_back(blocks[i]);
    std::vector<bool> f;
    RETURN_IF_ERROR(GetUcx(conn, rest, &f));
    for (size_t k = 0; k < elsewhere.size(); ++k) (*found)[elsewhere[k]] = f[k];
    return Status::Ok();
  }

  // The host-segment part of GetMapped; `elsewhere` gets the indices of the
  // blocks the daemon has but not in the host segment (code UNAVAILABLE).
  Status GetMappedHost(Connection& conn, std::span<const GetBlock> blocks, std::vector<bool>* found,
                       std::vector<size_t>* elsewhere) {
    const uint64_t size = geometry_.layer_block_bytes;
    transport::GetPinRequest req{ns_id_, fingerprint_, {}};
    for (const GetBlock& b : blocks) {
      if (!b.data) return InvalidArgumentError("null buffer");
      req.keys.push_back(BlockRef{b.hash, b.layer});
    }
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta, Call(conn, RpcOp::kGetPin, transport::Encode(req)));
    transport::SlotsResponse slots;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &slots));
    if (slots.codes.size() != blocks.size()) return InternalError("PIN: wrong code count");
    found->assign(blocks.size(), false);
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (slots.codes[i] == static_cast<transport::KeyCode>(StatusCode::kUnavailable)) {
        elsewhere->push_back(i);
      }
      if (slots.codes[i] != 0) continue;
      if (slots.tiers[i] == static_cast<uint8_t>(kvcake::Tier::kDevice)) {
        if (conn.CopyFromDeviceSegment(slots.offsets[i], blocks[i].data, size)) {
          (*found)[i] = true;
        } else {
          elsewhere->push_back(i);  // pinned in an arena we cannot read: over UCX
        }
        continue;
      }
      const char* src = conn.segment->At(slots.offsets[i], size);
      if (!src) continue;
      if (options_.verify_mapped_reads) {
        // Copy and hash in one pass; a block scribbled in the segment since
        // it was committed is a miss, never wrong bytes.
        if (CopyAndHash(blocks[i].data, src, size) != slots.checksums[i]) {
          KVCAKE_LOG(WARNING) << "kvcake client: block " << blocks[i].hash << " layer "
                              << blocks[i].layer << " failed its checksum; treated as a miss";
          checksum_failures_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
      } else {
        BulkCopy(blocks[i].data, src, size);
      }
      (*found)[i] = true;
    }
    // The pins were valid while we copied if the copy finished well inside
    // the lease (measured from before the request): release without waiting.
    // Otherwise the release confirms it; if the lease had expired the bytes
    // may be stale and are reported as misses.
    transport::ReleaseRequest rel{slots.lease_id};
    std::string rel_meta = transport::Encode(rel);
    auto elapsed_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (static_cast<uint64_t>(elapsed_us) < slots.lease_us / 2) {
      transport::CallRequest call;
      call.opcode = static_cast<uint16_t>(RpcOp::kRelease);
      call.meta = AsBytes(rel_meta);
      call.timeout = options_.timeout;
      conn.rpc->CallAsync(call, [](transport::RpcReply&& reply) {
        if (!reply.status.ok()) {
          KVCAKE_LOG(DEBUG) << "kvcake client: release failed: " << reply.status.ToString();
        }
      });
      return Status::Ok();
    }
    Result<std::vector<uint8_t>> r = Call(conn, RpcOp::kRelease, rel_meta);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kAborted) {
        found->assign(blocks.size(), false);
        return Status::Ok();
      }
      return r.status();
    }
    return Status::Ok();
  }

  static Status ClosingError() { return CancelledError("kvcake client closing"); }

  // First wait between reconnect attempts (doubling up to
  // ClientOptions::reconnect_max_backoff).
  static constexpr std::chrono::milliseconds kInitialBackoff{50};

  const ClientOptions options_;
  const std::shared_ptr<AsyncState> async_ = std::make_shared<AsyncState>();
  const uint64_t seed_;
  bool cuda_available_ = false;  // set once by Init
  mutable std::mutex conn_mu_;
  std::shared_ptr<Connection> conn_;  // guarded by conn_mu_; never null after Init
  // Replaced connections still used by a call or an operation; guarded by
  // conn_mu_.
  std::vector<std::shared_ptr<Connection>> retired_;
  // reconnecting_ is true while one thread reconnects; it alone then uses
  // the backoff state below.
  std::mutex reconnect_mu_;
  std::condition_variable reconnect_cv_;
  bool reconnecting_ = false;  // guarded by reconnect_mu_
  std::chrono::milliseconds backoff_ =
      std::min<std::chrono::milliseconds>(kInitialBackoff, options_.reconnect_max_backoff);
  std::chrono::steady_clock::time_point next_attempt_{};
  int failed_attempts_ = 0;
  Status last_attempt_error_;
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> checksum_failures_{0};
  mutable std::mutex mu_;
  static constexpr size_t kMaxRememberedHashes = 1 << 20;
  mutable std::mutex roots_mu_;
  mutable std::unordered_map<uint64_t, uint64_t>
      chain_roots_;  // hash -> root; guarded by roots_mu_
  // Written once by the first successful RegisterNamespace under mu_, before
  // registered_ is set; read after CheckRegistered() (which takes mu_).
  NamespaceGeometry geometry_;
  uint64_t ns_id_ = 0;
  uint64_t fingerprint_ = 0;
  bool registered_ = false;  // guarded by mu_
};

}  // namespace

Status ClientOptions::Validate() const {
  if (address.empty() || address.find(':') == std::string::npos) {
    return InvalidArgumentError("address must be HOST:PORT, got '" + address + "'");
  }
  if (namespace_name.empty() || namespace_name.size() > transport::kMaxNameBytes) {
    return InvalidArgumentError("namespace name must be 1.." +
                                std::to_string(transport::kMaxNameBytes) + " bytes");
  }
  if (token.size() > transport::kMaxTokenBytes) return InvalidArgumentError("token too long");
  if (timeout.count() <= 0) return InvalidArgumentError("timeout must be > 0");
  if (busy_poll.count() < 0 || busy_poll > std::chrono::seconds(1)) {
    return InvalidArgumentError("busy_poll must be 0..1 s");
  }
  if (spin_wait.count() < 0 || spin_wait > std::chrono::seconds(1)) {
    return InvalidArgumentError("spin_wait must be 0..1 s");
  }
  if (max_inflight_requests < 1) return InvalidArgumentError("max_inflight_requests must be >= 1");
  if (reconnect_max_backoff.count() <= 0) {
    return InvalidArgumentError("reconnect_max_backoff must be > 0");
  }
  if (!transport::ParseUcxTransport(ucx_tls).ok()) {
    return InvalidArgumentError("ucx_tls must be 'tcp' or 'shm', got '" + ucx_tls + "'");
  }
  return Status::Ok();
}

namespace {

// Waits for groups 0..size()-1 of `w` within one overall `timeout`.
template <typename Waiter>
Status WaitEachGroup(Waiter& w, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (size_t i = 0; i < w.size(); ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    RETURN_IF_ERROR(w.Wait(i, std::max(left, std::chrono::milliseconds(0))));
  }
  return Status::Ok();
}

}  // namespace

Status PendingGet::WaitAll(std::chrono::milliseconds timeout) {
  return WaitEachGroup(*this, timeout);
}

Status HandoffTarget::Validate() const {
  if (node_id.empty() || node_id.size() > transport::kMaxNodeIdBytes) {
    return InvalidArgumentError("HandoffTarget.node_id must be 1.." +
                                std::to_string(transport::kMaxNodeIdBytes) + " bytes");
  }
  if (handoff_id == 0) return InvalidArgumentError("HandoffTarget.handoff_id must be > 0");
  if (total_blocks == 0 || total_blocks > transport::kMaxHandoffBlocks) {
    return InvalidArgumentError("HandoffTarget.total_blocks must be in [1, " +
                                std::to_string(transport::kMaxHandoffBlocks) + "]");
  }
  return Status::Ok();
}

Status PutStream::WaitAll(std::chrono::milliseconds timeout) {
  return WaitEachGroup(*this, timeout);
}

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  // An engine's log stays quiet: warnings and errors only, unless
  // KVCAKE_LOG_LEVEL asks for more (or less).
  static std::once_flag quiet;
  std::call_once(quiet, [] {
    if (std::getenv("KVCAKE_LOG_LEVEL") == nullptr && GetLogLevel() == LogLevel::kInfo) {
      SetLogLevel(LogLevel::kWarning);
    }
  });
  RETURN_IF_ERROR(options.Validate());
  auto client = std::make_unique<ClientImpl>(options);
  RETURN_IF_ERROR(client->Init().WithContext("kvcake connect " + options.address));
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace kvcake
