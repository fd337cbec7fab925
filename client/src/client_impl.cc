// ClientImpl's namespace, lookups, puts, gets, layer-wise operations and
// maintenance calls. The connection's life (connect, discovery, reconnect) is
// in client_connection.cc; the data paths in mapped_data_path.cc and
// ucx_data_path.cc.
#include "client/src/client_impl.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "client/src/mapped_data_path.h"
#include "client/src/pending_get.h"
#include "client/src/put_stream.h"
#include "client/src/ucx_data_path.h"
#include "client/src/wire.h"
#include "common/logging.h"
#ifdef KVCAKE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kvcake::internal {

using transport::BlockRef;
using transport::RpcOp;

ClientImpl::ClientImpl(ClientOptions options)
    : options_(std::move(options)), seed_(NamespaceSeed(options_.namespace_name)) {}

ClientImpl::~ClientImpl() {
  // Layer-wise gets and put streams may outlive the client (PendingGet and
  // PutStream are the engine's): stop sending their remaining requests, tell
  // put streams to stop, and wait for what is already running, so nothing
  // below is used after it is gone. Mapped-path and put-stream workers are
  // waited for without a bound (each of their calls has a deadline); UCX
  // groups up to the client timeout, after which destroying the RPC clients
  // cancels them (their callbacks touch only async_ and their connection).
  for (const auto& weak : async_->BeginClose()) {
    if (auto q = weak.lock()) q->Stop();
  }
  if (int left = async_->WaitIdle(options_.timeout + std::chrono::seconds(1)); left > 0) {
    KVCAKE_LOG(WARNING) << "kvcake client: " << left
                        << " layer groups still in flight at close; cancelling them";
  }
  std::vector<std::shared_ptr<Connection>> conns;
  {
    MutexLock lock(&conn_mu_);
    conns.swap(retired_);
    if (conn_) conns.push_back(std::move(conn_));
  }
  // Destroying an RPC client runs its pending callbacks (cancelled), which
  // drop their references to the connection; the mappings go after that.
  for (const auto& conn : conns) conn->rpc.reset();
}

Status ClientImpl::Init() {
#ifdef KVCAKE_HAVE_CUDA
  int devices = 0;
  cuda_available_ = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  if (!cuda_available_) (void)cudaGetLastError();
#endif
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, OpenConnection(options_.timeout));
  MutexLock lock(&conn_mu_);
  conn_ = std::move(conn);
  return Status::Ok();
}

Status ClientImpl::RegisterNamespace(const NamespaceGeometry& g) {
  if (g.num_layers == 0 || g.block_tokens == 0 || g.layer_block_bytes == 0) {
    return InvalidArgumentError(
        "namespace geometry: num_layers, block_tokens and "
        "layer_block_bytes must be > 0");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  ASSIGN_OR_RETURN(transport::RegisterNamespaceResponse resp, SendRegister(*conn, g));
  MutexLock lock(&mu_);
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

const NamespaceGeometry& ClientImpl::geometry() const {
  MutexLock lock(&mu_);
  return geometry_;
}

std::vector<uint64_t> ClientImpl::HashTokens(std::span<const uint32_t> tokens) const {
  uint32_t bt;
  {
    MutexLock lock(&mu_);
    bt = geometry_.block_tokens ? geometry_.block_tokens : 16;
  }
  std::vector<uint64_t> chain = HashChain::Compute(tokens, seed_, bt);
  roots_.Remember(chain);
  return chain;
}

Result<uint32_t> ClientImpl::LookupPrefix(std::span<const uint64_t> hashes, uint32_t layer) {
  ASSIGN_OR_RETURN(PrefixLookup where, LookupPrefixDetail(hashes, layer, LookupOptions{}));
  return where.total;
}

Result<Client::PrefixLookup> ClientImpl::LookupPrefixDetail(std::span<const uint64_t> hashes,
                                                            uint32_t layer, LookupOptions options) {
  RETURN_IF_ERROR(CheckRegistered());
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  roots_.Remember(hashes);
  PrefixLookup out;
  bool all_local = true;
  // Split very long chains; stop at the first incomplete chunk.
  for (size_t pos = 0; pos < hashes.size() || pos == 0;) {
    size_t n = std::min<size_t>(hashes.size() - pos, transport::kMaxLookupHashes);
    transport::LookupPrefixRequest req{
        ns_id_, fingerprint_, layer,
        std::vector<uint64_t>(hashes.begin() + pos, hashes.begin() + pos + n),
        (options.local_only ? transport::kLookupLocalOnly : 0u) |
            (options.prefetch ? 0u : transport::kLookupNoPrefetch) |
            (options.all_holders && pos == 0 ? transport::kLookupAllHolders : 0u)};
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                     Call(*conn, RpcOp::kLookupPrefix, transport::Encode(req)));
    transport::LookupPrefixResponse resp;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
    if (resp.prefix_len > n) return InternalError("daemon returned a prefix longer than asked");
    for (transport::PrefixHolder& h : resp.holders) {
      if (h.prefix_len > n) return InternalError("daemon named a holder of more than asked");
      out.holders.push_back(PrefixHolder{std::move(h.node), h.prefix_len});
    }
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

Status ClientImpl::Put(std::span<const PutBlock> blocks, std::vector<Status>* per_value) {
  return PutTo(blocks, per_value, nullptr);
}

Status ClientImpl::PutHandoff(const HandoffTarget& target, std::span<const PutBlock> blocks,
                              std::vector<Status>* per_value) {
  RETURN_IF_ERROR(target.Validate());
  return PutTo(blocks, per_value, &target);
}

Result<std::unique_ptr<PutStream>> ClientImpl::OpenHandoffStream(const HandoffTarget& target) {
  RETURN_IF_ERROR(target.Validate());
  return OpenStream(std::make_shared<HandoffTarget>(target));
}

Status ClientImpl::AbortHandoff(uint64_t handoff_id, std::string_view reason) {
  if (handoff_id == 0) return InvalidArgumentError("handoff_id must be > 0");
  if (reason.size() > transport::kMaxNameBytes) {
    return InvalidArgumentError("AbortHandoff reason longer than " +
                                std::to_string(transport::kMaxNameBytes) + " bytes");
  }
  RETURN_IF_ERROR(CheckRegistered());
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  const std::string meta = transport::Encode(
      transport::HandoffAbortRequest{ns_id_, fingerprint_, handoff_id, std::string(reason)});
  transport::RpcReply reply =
      conn->rpc->Call(MakeCall(RpcOp::kHandoffAbort, meta, options_.timeout));
  conn->Note(reply.status);
  return reply.status;
}

Status ClientImpl::WaitHandoff(uint64_t handoff_id, std::chrono::milliseconds timeout) {
  if (handoff_id == 0) return InvalidArgumentError("handoff_id must be > 0");
  if (timeout.count() < 0 || timeout.count() > transport::kMaxHandoffWaitMs) {
    return InvalidArgumentError("WaitHandoff timeout must be in [0, " +
                                std::to_string(transport::kMaxHandoffWaitMs) + "] ms");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  const std::string meta = transport::Encode(
      transport::HandoffWaitRequest{handoff_id, static_cast<uint32_t>(timeout.count())});
  // The daemon answers at `timeout`.
  transport::RpcReply reply =
      conn->rpc->Call(MakeCall(RpcOp::kHandoffWait, meta, timeout + options_.timeout));
  conn->Note(reply.status);
  return reply.status;
}

Status ClientImpl::PutTo(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
                         const HandoffTarget* target) {
  RETURN_IF_ERROR(CheckRegistered());
#ifdef KVCAKE_HAVE_CUDA
  if (AnyDevice(blocks)) return PutStagingDevice(blocks, per_value, target);
#endif
  return PutHost(blocks, per_value, target);
}

Status ClientImpl::PutHost(std::span<const PutBlock> blocks, std::vector<Status>* per_value,
                           const HandoffTarget* target) {
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
    Status s = PutBatch(conn, part, target, &codes);
    if (!s.ok() && first.ok()) first = s;
    for (size_t i = 0; i < part.size(); ++i) {
      if (per_value) (*per_value)[pos + i] = codes[i];
      if (!codes[i].ok() && first.ok()) first = codes[i];
    }
  }
  return first;
}

Status ClientImpl::PutOnce(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> part,
                           const HandoffTarget* target, std::vector<Status>* codes) {
  return conn->segment ? PutMapped(Context(), *conn, part, target, codes)
                       : PutOverUcx(Context(), conn, part, target, codes);
}

Status ClientImpl::PutBatch(const std::shared_ptr<Connection>& conn, std::span<const PutBlock> part,
                            const HandoffTarget* target, std::vector<Status>* codes) {
  Status s = PutOnce(conn, part, target, codes);
  if (!s.ok()) {
    codes->assign(part.size(), s);
    return s;
  }
  // ABORTED: another writer holds the key's reservation (e.g. two engines
  // saving the same prefix). Retry those keys with backoff for up to
  // kPutContentionBudget (the client timeout if shorter): the other writer
  // usually commits meanwhile, and the retry then sees ALREADY_EXISTS. A
  // writer that died holds its reservation until the lease expires, so the
  // keys stay ABORTED past the budget.
  constexpr std::chrono::milliseconds kPutContentionBudget{2000};
  const auto deadline =
      std::chrono::steady_clock::now() + std::min(kPutContentionBudget, options_.timeout);
  std::chrono::milliseconds backoff{2};
  for (;;) {
    std::vector<PutBlock> retry;
    std::vector<size_t> where;
    for (size_t i = 0; i < part.size(); ++i) {
      if ((*codes)[i].code() == StatusCode::kAborted) {
        retry.push_back(part[i]);
        where.push_back(i);
      }
    }
    if (retry.empty() || std::chrono::steady_clock::now() + backoff > deadline) break;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
    std::vector<Status> again;
    if (!PutOnce(conn, retry, target, &again).ok()) break;
    for (size_t k = 0; k < where.size(); ++k) (*codes)[where[k]] = again[k];
  }
  return Status::Ok();
}

Status ClientImpl::Get(std::span<const GetBlock> blocks, std::vector<bool>* found) {
  RETURN_IF_ERROR(CheckRegistered());
#ifdef KVCAKE_HAVE_CUDA
  if (AnyDevice(blocks)) return GetStagingDevice(blocks, found);
#endif
  return GetHost(blocks, found);
}

Status ClientImpl::GetHost(std::span<const GetBlock> blocks, std::vector<bool>* found) {
  found->assign(blocks.size(), false);
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  const size_t batch = BatchSize();
  for (size_t pos = 0; pos < blocks.size(); pos += batch) {
    auto part = blocks.subspan(pos, std::min(batch, blocks.size() - pos));
    std::vector<bool> f;
    RETURN_IF_ERROR(conn->segment ? GetMapped(Context(), conn, part, &f)
                                  : GetOverUcx(Context(), conn, part, &f));
    std::copy(f.begin(), f.end(), found->begin() + pos);
  }
  return Status::Ok();
}

Result<std::unique_ptr<PendingGet>> ClientImpl::GetAsync(
    std::vector<std::vector<GetBlock>> groups) {
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
  if (conn->segment) return GetAsyncMapped(std::move(conn), std::move(groups));
  return GetAsyncUcx(conn, std::move(groups));
}

Result<std::unique_ptr<PendingGet>> ClientImpl::GetAsyncMapped(
    std::shared_ptr<Connection> conn, std::vector<std::vector<GetBlock>> groups) {
  auto pending = std::make_unique<PendingGetImpl>(groups.size(), options_.timeout);
  auto shared = std::make_shared<std::vector<std::vector<GetBlock>>>(std::move(groups));
  auto states = pending->groups();
  if (!async_->Add(AsyncState::Work::kWorker)) return ClosingError();
  // The client waits for this worker before it is destroyed; once it is
  // closing, the groups not started yet are cancelled.
  Status started = StartThread(
      pending->worker(), [ctx = Context(), conn, shared, states, async = async_]() mutable {
        for (size_t i = 0; i < shared->size(); ++i) {
          if (async->Closing()) {
            states[i]->Complete(ClosingError(), {});
            continue;
          }
          std::vector<bool> f;
          Status s = GetMapped(ctx, conn, (*shared)[i], &f);
          states[i]->Complete(s, std::move(f));
        }
        conn.reset();  // the client may be destroyed once the worker is done
        async->Done(AsyncState::Work::kWorker);  // last use of the client
      });
  if (!started.ok()) {
    async_->Done(AsyncState::Work::kWorker);
    for (const auto& state : states) state->Complete(started, {});
    return started;
  }
  return std::unique_ptr<PendingGet>(std::move(pending));
}

Result<std::unique_ptr<PendingGet>> ClientImpl::GetAsyncUcx(
    const std::shared_ptr<Connection>& conn, std::vector<std::vector<GetBlock>> groups) {
  auto pending = std::make_unique<PendingGetImpl>(groups.size(), options_.timeout);
  const DataPathContext ctx = Context();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    std::shared_ptr<GroupState> state = pending->groups()[gi];
    if (!async_->Add(AsyncState::Work::kUcxGroup)) {
      state->Complete(ClosingError(), {});
      continue;
    }
    StartGetOverUcx(ctx, conn, std::make_shared<std::vector<GetBlock>>(std::move(groups[gi])),
                    [state, async = async_](Status s, std::vector<bool> found) {
                      state->Complete(std::move(s), std::move(found));
                      async->Done(AsyncState::Work::kUcxGroup);
                    });
  }
  return std::unique_ptr<PendingGet>(std::move(pending));
}

Result<std::unique_ptr<PutStream>> ClientImpl::OpenStream(
    std::shared_ptr<const HandoffTarget> target) {
  RETURN_IF_ERROR(CheckRegistered());
  std::function<bool(const void*)> is_device;
#ifdef KVCAKE_HAVE_CUDA
  if (cuda_available_) is_device = IsCudaDeviceMemory;  // the stream may outlive the client
#endif
  auto stream = std::make_unique<PutStreamImpl>(BatchSize(), std::move(is_device));
  if (!async_->AddPutStream(stream->queue())) return ClosingError();
  PutStreamImpl::PutFn put = [this, target](std::span<const PutBlock> blocks,
                                            std::vector<Status>* per_value) {
    return PutHost(blocks, per_value, target.get());
  };
  Status started = StartThread(stream->worker(), [queue = stream->queue(), async = async_, put] {
    PutStreamImpl::Run(queue, async, put);
  });
  if (!started.ok()) {
    async_->Done(AsyncState::Work::kWorker);
    return started;
  }
  return std::unique_ptr<PutStream>(std::move(stream));
}

Status ClientImpl::ReportLayerStats(uint32_t layer, double preference,
                                    std::span<const uint64_t> block_hashes,
                                    std::span<const double> block_scores, uint32_t window_blocks) {
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

Result<uint32_t> ClientImpl::Delete(std::span<const BlockId> ids) {
  RETURN_IF_ERROR(CheckRegistered());
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  uint32_t deleted = 0;
  const size_t batch = BatchSize();
  for (size_t pos = 0; pos < ids.size(); pos += batch) {
    transport::DeleteRequest req = Context().Request();
    for (size_t i = pos; i < std::min(ids.size(), pos + batch); ++i) {
      req.keys.push_back(BlockRef{ids[i].hash, ids[i].layer});
    }
    ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                     Call(*conn, RpcOp::kDelete, transport::Encode(req)));
    transport::DeleteResponse resp;
    RETURN_IF_ERROR(transport::Decode(AsView(meta), &resp));
    deleted += resp.deleted;
  }
  return deleted;
}

Status ClientImpl::Ping() {
  transport::PingRequest ping{1};
  ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, Acquire());
  ASSIGN_OR_RETURN(std::vector<uint8_t> meta, Call(*conn, RpcOp::kPing, transport::Encode(ping)));
  return Status::Ok();
}

DataPathContext ClientImpl::Context() const {
  DataPathContext ctx;
  ctx.ns_id = ns_id_;
  ctx.fingerprint = fingerprint_;
  ctx.value_bytes = geometry_.layer_block_bytes;
  ctx.timeout = options_.timeout;
  ctx.max_inflight_requests = options_.max_inflight_requests;
  ctx.checksum_failures = options_.verify_mapped_reads ? &checksum_failures_ : nullptr;
  ctx.roots = &roots_;
  ctx.async = async_;
  return ctx;
}

size_t ClientImpl::BatchSize() const {
  // At most kMaxBatchBlocks values and about 256 MiB per request.
  uint64_t by_bytes = (256ull << 20) / std::max<uint64_t>(1, geometry_.layer_block_bytes);
  return static_cast<size_t>(std::clamp<uint64_t>(by_bytes, 1, transport::kMaxBatchBlocks));
}

Status ClientImpl::CheckRegistered() const {
  MutexLock lock(&mu_);
  if (!registered_) {
    return FailedPreconditionError("namespace '" + options_.namespace_name +
                                   "' not registered: call RegisterNamespace first");
  }
  return Status::Ok();
}

bool ClientImpl::Registered() const {
  MutexLock lock(&mu_);
  return registered_;
}

#ifdef KVCAKE_HAVE_CUDA
bool ClientImpl::IsDevicePointer(const void* p) const {
  return cuda_available_ && IsCudaDeviceMemory(p);
}

bool ClientImpl::IsCudaDeviceMemory(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice;
}

Status ClientImpl::PutStagingDevice(std::span<const PutBlock> blocks,
                                    std::vector<Status>* per_value, const HandoffTarget* target) {
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

Status ClientImpl::GetStagingDevice(std::span<const GetBlock> blocks, std::vector<bool>* found) {
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

}  // namespace kvcake::internal
