#include "daemon/service.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <optional>

#include "common/block_hash.h"
#include "common/copy_and_hash.h"
#include "common/logging.h"
#include "common/token_equals.h"
#include "policy/serving_mode.h"
#include "store/checksum.h"

namespace kvcake::daemon {
namespace {

using transport::BlockRef;
using transport::KeyCode;

// The daemon-wide token opens every namespace; it joins the file's grants.
std::vector<TokenGrant> AllGrants(const ServiceOptions& o) {
  std::vector<TokenGrant> g = o.grants;
  if (!o.token.empty()) g.push_back(TokenGrant{o.token, {"*"}});
  // Other members fetch with the cluster token; an open daemon stays open.
  if (!g.empty() && !o.cluster_token.empty()) g.push_back(TokenGrant{o.cluster_token, {"*"}});
  return g;
}

// Largest total of device-tier copies and SSD reads one get stages in daemon
// memory instead of pinning in place; keys beyond it are reported missing.
constexpr uint64_t kMaxStagedGetBytes = 256ull << 20;

KeyCode CodeOf(const Status& s) { return static_cast<KeyCode>(s.code()); }

// INVALID_ARGUMENT unless `layer` is one of the layers of namespace `ns`.
Status CheckLayer(const store::NamespaceConfig& ns, uint32_t layer) {
  if (layer < ns.num_layers) return Status::Ok();
  return InvalidArgumentError("layer " + std::to_string(layer) + " >= num_layers " +
                              std::to_string(ns.num_layers) + " of namespace '" + ns.name + "'");
}

}  // namespace

Status ServiceOptions::Validate() const {
  if (lease_ms == 0 || lease_ms > 3'600'000) {
    return InvalidArgumentError("lease_ms must be in [1, 3600000], got " +
                                std::to_string(lease_ms));
  }
  if (max_batch_blocks == 0 || max_batch_blocks > transport::kMaxBatchBlocks) {
    return InvalidArgumentError("max_batch_blocks must be in [1, " +
                                std::to_string(transport::kMaxBatchBlocks) + "]");
  }
  if (max_quota_bytes != 0 && default_quota_bytes > max_quota_bytes) {
    return InvalidArgumentError("default quota exceeds max quota");
  }
  if (max_namespaces == 0) return InvalidArgumentError("max_namespaces must be > 0");
  return Status::Ok();
}

Service::Service(ServiceOptions options, store::TierManager* store)
    : options_(std::move(options)),
      store_(store),
      clock_(options_.clock != nullptr ? options_.clock : &steady_clock_),
      access_(AllGrants(options_)),
      lease_ids_(std::random_device{}()) {
  if (options_.handoff_transport != HandoffTransport::kUcx && transport::NcclCommPool::Built() &&
      store_->device_is_cuda()) {
    nccl_ = std::make_unique<transport::NcclCommPool>();
  } else if (options_.handoff_transport != HandoffTransport::kUcx) {
    KVCAKE_LOG(WARNING) << "--handoff_transport: NCCL hand-offs stay off ("
                        << (transport::NcclCommPool::Built() ? "the device tier is not a CUDA arena"
                                                             : "built without CUDA")
                        << "); hand-offs go over UCX";
  }
}

Service::~Service() { ReleaseAllLeases(); }

uint64_t Service::NowUs() const { return clock_->NowMicros(); }

uint64_t Service::MaxPutPayloadBytes() const {
  return static_cast<uint64_t>(options_.max_batch_blocks) * store_->options().slot_bytes;
}

Result<std::string> Service::Handle(uint64_t caller, uint16_t op, std::string_view header,
                                    std::string_view data, std::string* response_data) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  Result<std::string> r = Dispatch(caller, op, header, data, response_data);
  if (!r.ok()) {
    CountError(r.status()).IgnoreError();
    KVCAKE_LOG(DEBUG) << transport::RpcOpName(op) << " failed: " << r.status().ToString();
  }
  return r;
}

Status Service::CountError(Status s) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  const int code = static_cast<int>(s.code());
  if (code >= 0 && code < static_cast<int>(std::size(errors_by_code_))) {
    errors_by_code_[code].fetch_add(1, std::memory_order_relaxed);
  }
  return s;
}

void Service::ForgetCaller(uint64_t caller) {
  access_.Forget(caller);
  std::vector<Lease> owned;
  std::vector<PrefillHandoff> abandoned;
  {
    MutexLock lock(&mu_);
    for (auto it = prefill_handoffs_.begin(); it != prefill_handoffs_.end();) {
      if (it->second.caller == caller) {
        abandoned.push_back(std::move(it->second));
        it = prefill_handoffs_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.owner == caller) {
        UncountLeaseLocked(it->second);
        owned.push_back(std::move(it->second));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    leased_bytes_.erase(caller);
  }
  for (Lease& l : owned) ReleaseLease(l);
  for (const PrefillHandoff& h : abandoned) {
    FailPrefillHandoff(h, AbortedError("the prefill engine disconnected " + h.Progress()));
  }
}

void Service::FailPrefillHandoff(const PrefillHandoff& h, const Status& why) {
  cluster::ClusterHooks* hooks = cluster();
  if (hooks == nullptr) return;
  if (h.target.node == hooks->node_id()) {
    handoffs_.Fail(h.target.id, why);
  } else {
    hooks->AbortHandoff(h.ns_id, h.target, why);
  }
}

void Service::CountPrefillCommitted(uint64_t id, size_t n) {
  MutexLock lock(&mu_);
  auto it = prefill_handoffs_.find(id);
  if (it == prefill_handoffs_.end()) return;
  it->second.committed += n;
  if (it->second.committed >= it->second.target.blocks) prefill_handoffs_.erase(it);
}

template <typename Request>
Result<store::NamespaceConfig> Service::DecodeRequest(uint64_t caller, std::string_view header,
                                                      Request* req) {
  RETURN_IF_ERROR(transport::Decode(header, req));
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, CheckNamespace(caller, req->ns_id, req->fingerprint));
  if constexpr (requires { req->keys; }) {
    RETURN_IF_ERROR(CheckKeys(ns, req->keys));
  } else {
    RETURN_IF_ERROR(CheckLayer(ns, req->layer));
  }
  return ns;
}

Result<std::string> Service::Dispatch(uint64_t caller, uint16_t op, std::string_view header,
                                      std::string_view data, std::string* response_data) {
  using transport::RpcOp;
  if (!data.empty() && op != static_cast<uint16_t>(RpcOp::kPut)) {
    return InvalidArgumentError(std::string(transport::RpcOpName(op)) + " carries no data, got " +
                                std::to_string(data.size()) + " bytes");
  }
  switch (static_cast<RpcOp>(op)) {
    case RpcOp::kPing:
      return Ping(header);
    case RpcOp::kRegisterNamespace:
      return RegisterNamespace(caller, header);
    case RpcOp::kLookupPrefix:
      return LookupPrefix(caller, header);
    case RpcOp::kPut:
      return Put(caller, header, data);
    case RpcOp::kGet:
      return Get(caller, header, response_data);
    case RpcOp::kReportStats:
      return ReportStats(caller, header);
    case RpcOp::kDelete:
      return Delete(caller, header);
    case RpcOp::kPutReserve:
      return PutReserve(caller, header);
    case RpcOp::kPutCommit:
      return PutCommit(caller, header);
    case RpcOp::kGetPin:
      return GetPin(caller, header);
    case RpcOp::kRelease:
      return Release(caller, header);
    case RpcOp::kHandoffWait:
      return HandoffWaitNow(header);
    case RpcOp::kNcclConnect:
      return NcclConnect(header);
    case RpcOp::kHandoffNotice:
      return HandoffNotice(header);
    case RpcOp::kHandoffAbort:
      return HandoffAbort(caller, header);
    case RpcOp::kDirectoryPublish:
    case RpcOp::kDirectoryLookup:
      if (cluster() == nullptr) {
        // Malformed requests are INVALID_ARGUMENT here too.
        if (op == static_cast<uint16_t>(RpcOp::kDirectoryPublish)) {
          transport::DirectoryPublishRequest req;
          RETURN_IF_ERROR(transport::Decode(header, &req));
        } else {
          transport::DirectoryLookupRequest req;
          RETURN_IF_ERROR(transport::Decode(header, &req));
        }
        return FailedPreconditionError("this daemon is in no cluster");
      }
      return cluster()->HandleDirectory(op, header);
  }
  return UnimplementedError("unknown opcode " + std::to_string(op));
}

Result<std::string> Service::Ping(std::string_view header) {
  transport::PingRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  transport::PingResponse resp;
  resp.nonce = req.nonce;
  resp.server_version = options_.server_version;
  if (!options_.host_segment_path.empty()) {
    resp.host_segment = options_.host_segment_path;
    resp.host_segment_bytes = store_->host_segment().size;
    resp.host_segment_inode = options_.host_segment_inode;
    resp.device_segment_kind = options_.device_segment_kind;
    resp.device_segment = options_.device_segment;
    resp.device_segment_bytes = options_.device_segment_bytes;
    resp.device_segment_inode = options_.device_segment_inode;
  }
  return transport::Encode(resp);
}

Result<std::string> Service::RegisterNamespace(uint64_t caller, std::string_view header) {
  transport::RegisterNamespaceRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  RETURN_IF_ERROR(access_.Authorize(req.token, req.name));
  store::NamespaceConfig cfg;
  cfg.id = NamespaceSeed(req.name);
  cfg.name = req.name;
  cfg.num_layers = req.num_layers;
  cfg.block_tokens = req.block_tokens;
  cfg.layer_block_bytes = req.layer_block_bytes;
  cfg.kv_dtype = req.kv_dtype;
  cfg.layout = req.layout;
  cfg.serving = static_cast<policy::ServingMode>(req.serving);  // range-checked by Decode
  cfg.quota_bytes = req.quota_bytes ? req.quota_bytes : options_.default_quota_bytes;
  if (options_.max_quota_bytes != 0 &&
      (cfg.quota_bytes == 0 || cfg.quota_bytes > options_.max_quota_bytes)) {
    cfg.quota_bytes = options_.max_quota_bytes;
  }
  RETURN_IF_ERROR(cfg.Validate());
  uint64_t slot = store_->options().slot_bytes;
  if (cfg.layer_block_bytes > slot) {
    return InvalidArgumentError("layer_block_bytes " + std::to_string(cfg.layer_block_bytes) +
                                " exceeds the daemon's slot size " + std::to_string(slot) +
                                " (--slot_bytes)");
  }
  bool existed = store_->GetNamespace(cfg.id).ok();
  if (!existed && store_->ListNamespaces().size() >= options_.max_namespaces) {
    return ResourceExhaustedError("the daemon holds its maximum of " +
                                  std::to_string(options_.max_namespaces) +
                                  " namespaces (--max_namespaces)");
  }
  RETURN_IF_ERROR(store_->RegisterNamespace(cfg));
  access_.Grant(caller, cfg.id);
  transport::RegisterNamespaceResponse resp;
  resp.ns_id = cfg.id;
  resp.fingerprint = cfg.Fingerprint();
  resp.created = existed ? 0 : 1;
  if (!existed) {
    KVCAKE_LOG(INFO) << "registered namespace '" << cfg.name << "' layers=" << cfg.num_layers
                     << " block_tokens=" << cfg.block_tokens
                     << " layer_block_bytes=" << cfg.layer_block_bytes
                     << " quota_bytes=" << cfg.quota_bytes
                     << " serving=" << policy::ServingModeName(cfg.serving);
  }
  return transport::Encode(resp);
}

Result<store::NamespaceConfig> Service::CheckNamespace(uint64_t caller, uint64_t ns_id,
                                                       uint64_t fingerprint) {
  if (caller != kInProcessCaller && !access_.Granted(caller, ns_id)) {
    return PermissionDeniedError("namespace id " + std::to_string(ns_id) +
                                 " is not open on this connection (RegisterNamespace first)");
  }
  Result<store::NamespaceConfig> cfg = store_->GetNamespace(ns_id);
  if (!cfg.ok()) {
    return NotFoundError("unknown namespace id " + std::to_string(ns_id) + " (register it first)");
  }
  if (cfg->Fingerprint() != fingerprint) {
    return FailedPreconditionError("layout fingerprint mismatch for namespace '" + cfg->name +
                                   "': the daemon holds a different geometry/layout");
  }
  return cfg;
}

Status Service::CheckKeys(const store::NamespaceConfig& ns, const std::vector<BlockRef>& keys) {
  if (keys.size() > options_.max_batch_blocks) {
    return InvalidArgumentError("batch of " + std::to_string(keys.size()) + " keys exceeds " +
                                std::to_string(options_.max_batch_blocks));
  }
  for (const BlockRef& k : keys) RETURN_IF_ERROR(CheckLayer(ns, k.layer));
  return Status::Ok();
}

Result<std::string> Service::LookupPrefix(uint64_t caller, std::string_view header) {
  transport::LookupPrefixRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, &req));
  transport::LookupPrefixResponse resp;
  resp.prefix_len = static_cast<uint32_t>(store_->LookupPrefix(req.ns_id, req.hashes, req.layer));
  resp.local_len = resp.prefix_len;
  const bool all_holders = (req.flags & transport::kLookupAllHolders) != 0;
  if (cluster() != nullptr && (req.flags & transport::kLookupLocalOnly) == 0 &&
      (resp.prefix_len < req.hashes.size() || all_holders)) {
    cluster::ClusterHooks::RemotePrefix remote = cluster()->LookupRemote(
        ns, req.layer, req.hashes, resp.prefix_len, (req.flags & transport::kLookupNoPrefetch) == 0,
        all_holders ? &resp.holders : nullptr);
    if (remote.len > 0) {
      resp.prefix_len += remote.len;
      resp.remote_node = std::move(remote.node);
    }
  }
  return transport::Encode(resp);
}

bool Service::WaitsForCluster(std::string_view header) const {
  cluster::ClusterHooks* hooks = cluster();
  if (hooks == nullptr) return false;
  transport::GetRequest req;
  if (!transport::Decode(header, &req).ok()) return false;
  for (const BlockRef& k : req.keys) {
    if (!store_->Contains(BlockKey{req.ns_id, k.hash, k.layer}) && hooks->Fetchable(req.ns_id, k)) {
      return true;
    }
  }
  return false;
}

void Service::FetchRemote(const store::NamespaceConfig& ns, const std::vector<BlockRef>& keys) {
  cluster::ClusterHooks* hooks = cluster();
  if (hooks == nullptr) return;
  std::vector<BlockRef> missing;
  for (const BlockRef& k : keys) {
    if (!store_->Contains(BlockKey{ns.id, k.hash, k.layer})) missing.push_back(k);
  }
  if (!missing.empty()) hooks->FetchMissing(ns, missing);
}

void Service::LearnRoots(const transport::KeyedRequest& req) {
  cluster::ClusterHooks* hooks = cluster();
  if (hooks != nullptr && !req.roots.empty()) hooks->LearnRoots(req.keys, req.roots);
}

void Service::Published(const store::NamespaceConfig& ns, const std::vector<BlockRef>& keys,
                        const std::vector<transport::KeyCode>& codes,
                        const std::optional<cluster::HandoffTarget>& handoff) {
  cluster::ClusterHooks* hooks = cluster();
  if (hooks == nullptr) return;
  std::vector<BlockRef> committed;
  committed.reserve(keys.size());
  for (size_t i = 0; i < keys.size() && i < codes.size(); ++i) {
    if (codes[i] == 0 || codes[i] == static_cast<transport::KeyCode>(StatusCode::kAlreadyExists)) {
      committed.push_back(keys[i]);
    }
  }
  if (committed.empty()) return;
  hooks->OnCommitted(ns, committed);
  if (!handoff) return;
  if (handoff->node == hooks->node_id()) {
    handoffs_.Arrived(handoff->id, static_cast<uint32_t>(committed.size()));
  } else {
    hooks->Forward(ns, *handoff, committed);
  }
  CountPrefillCommitted(handoff->id, committed.size());
}

std::optional<cluster::HandoffTarget> Service::HandoffOf(uint64_t caller,
                                                         const store::NamespaceConfig& ns,
                                                         const transport::KeyedRequest& req) {
  cluster::ClusterHooks* hooks = cluster();
  if (req.target_node.empty() || hooks == nullptr) return std::nullopt;
  cluster::HandoffTarget t{req.target_node, req.handoff_id, req.handoff_blocks};
  if (!req.source_node.empty()) {
    // Pushed here by the prefill member: it tracks its engine, not us.
    if (t.node == hooks->node_id()) {
      handoffs_.Announce(t.id, ns.id, t.blocks, req.keys, req.source_node);
    }
    return t;
  }
  {
    // Remember who sends it until all its values were committed here: if
    // that engine disconnects or aborts first, the target learns the
    // hand-off failed.
    MutexLock lock(&mu_);
    auto it = prefill_handoffs_.find(t.id);
    if (it == prefill_handoffs_.end() && prefill_handoffs_.size() < kMaxPrefillHandoffs) {
      prefill_handoffs_.emplace(t.id, PrefillHandoff{caller, ns.id, t, 0});
    }
  }
  if (t.node == hooks->node_id()) {
    handoffs_.Announce(t.id, ns.id, t.blocks, req.keys);
  } else {
    hooks->Announce(ns, t, req.keys);
  }
  return t;
}

Result<std::string> Service::HandoffAbort(uint64_t caller, std::string_view header) {
  transport::HandoffAbortRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  RETURN_IF_ERROR(CheckNamespace(caller, req.ns_id, req.fingerprint).status());
  std::optional<PrefillHandoff> aborted;
  {
    MutexLock lock(&mu_);
    auto it = prefill_handoffs_.find(req.handoff_id);
    if (it != prefill_handoffs_.end() && it->second.ns_id == req.ns_id) {
      aborted = std::move(it->second);
      prefill_handoffs_.erase(it);
    }
  }
  if (!aborted) {
    return NotFoundError("no hand-off " + std::to_string(req.handoff_id) +
                         " of this namespace is in progress from this daemon");
  }
  FailPrefillHandoff(*aborted,
                     AbortedError("the prefill engine aborted the hand-off " + aborted->Progress() +
                                  (req.message.empty() ? "" : ": " + req.message)));
  return transport::Encode(transport::EmptyResponse{});
}

Result<std::string> Service::HandoffNotice(std::string_view header) {
  transport::HandoffNoticeRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  if (cluster() == nullptr) return FailedPreconditionError("this daemon is in no cluster");
  if (!TokenEquals(req.cluster_token, options_.cluster_token)) {
    return PermissionDeniedError("bad cluster token");
  }
  if (req.failure == 0) {
    handoffs_.Announce(req.handoff_id, req.ns_id, req.handoff_blocks, req.keys, req.source);
  } else {
    handoffs_.Fail(req.handoff_id,
                   Status(static_cast<StatusCode>(req.failure),
                          "hand-off failed on member '" + req.source + "': " + req.message));
  }
  return transport::Encode(transport::EmptyResponse{});
}

void Service::OnMembersChanged(std::vector<std::string> live) {
  std::sort(live.begin(), live.end());
  handoffs_.FailSourcesNotIn(live);
}

bool Service::ParkForHandoff(uint64_t caller, uint16_t op, std::string_view header,
                             std::function<void(Status)> resume) {
  if (options_.handoff_wait_ms == 0 || cluster() == nullptr) return false;
  if (op != static_cast<uint16_t>(transport::RpcOp::kGet) &&
      op != static_cast<uint16_t>(transport::RpcOp::kGetPin)) {
    return false;
  }
  transport::GetRequest req;
  if (!transport::Decode(header, &req).ok()) return false;
  if (!CheckNamespace(caller, req.ns_id, req.fingerprint).ok()) return false;
  std::vector<BlockKey> awaited;
  for (const BlockRef& k : req.keys) {
    const BlockKey key{req.ns_id, k.hash, k.layer};
    if (!store_->Contains(key) && handoffs_.Expecting(req.ns_id, k.hash)) awaited.push_back(key);
  }
  if (awaited.empty()) return false;
  const uint64_t ns_id = req.ns_id;
  // Ready once the blocks are here, or their hand-off is over (complete,
  // stale or failed on the prefill side).
  auto ready = [this, ns_id, awaited] {
    for (const BlockKey& key : awaited) {
      if (!store_->Contains(key) && handoffs_.Expecting(ns_id, key.hash)) return false;
    }
    return true;
  };
  handoffs_.Park(
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.handoff_wait_ms),
      std::move(ready),
      [this, ns_id, awaited = std::move(awaited), resume = std::move(resume)](bool) {
        for (const BlockKey& key : awaited) {
          if (store_->Contains(key)) continue;
          if (std::optional<Status> failed = handoffs_.FailureOf(ns_id, key.hash)) {
            resume(*failed);
            return;
          }
        }
        resume(Status::Ok());
      });
  return true;
}

Result<std::string> Service::NcclConnect(std::string_view header) {
  transport::NcclConnectRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  if (cluster() == nullptr) return FailedPreconditionError("this daemon is in no cluster");
  if (!options_.cluster_token.empty() && !TokenEquals(req.cluster_token, options_.cluster_token)) {
    return PermissionDeniedError("bad cluster token");
  }
  if (nccl_ == nullptr) {
    return FailedPreconditionError(
        "NCCL hand-offs are off on this daemon (--handoff_transport=ucx, a build without CUDA, "
        "or no CUDA device tier)");
  }
  const int device = store_->device_segment().cuda_device;
  transport::NcclUniqueId id;
  std::copy(req.unique_id.begin(), req.unique_id.end(), id.begin());
  RETURN_IF_ERROR(nccl_->Join(
      transport::NcclPeer{device, req.sender, static_cast<int>(req.sender_device)}, id));
  return transport::Encode(transport::NcclConnectResponse{static_cast<uint32_t>(device)});
}

Result<std::string> Service::HandoffWaitNow(std::string_view header) {
  transport::HandoffWaitRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  std::optional<Status> outcome = handoffs_.Outcome(req.handoff_id);
  if (!outcome) {
    return DeadlineExceededError("hand-off " + std::to_string(req.handoff_id) + " not complete");
  }
  RETURN_IF_ERROR(*outcome);
  return transport::Encode(transport::EmptyResponse{});
}

void Service::WaitHandoff(std::string_view header, std::function<void(Status)> reply) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  transport::HandoffWaitRequest req;
  Status decoded = transport::Decode(header, &req);
  if (!decoded.ok()) {
    reply(CountError(decoded));
    return;
  }
  const uint64_t id = req.handoff_id;
  handoffs_.Park(
      std::chrono::steady_clock::now() + std::chrono::milliseconds(req.timeout_ms),
      [this, id] { return handoffs_.Outcome(id).has_value(); },
      [this, id, reply = std::move(reply)](bool) {
        std::optional<Status> outcome = handoffs_.Outcome(id);
        reply(outcome ? *outcome
                      : DeadlineExceededError("hand-off " + std::to_string(id) +
                                              " did not complete in time"));
      });
}

Result<std::string> Service::Put(uint64_t caller, std::string_view header, std::string_view data) {
  transport::PutRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, &req));
  LearnRoots(req);
  const std::optional<cluster::HandoffTarget> handoff = HandoffOf(caller, ns, req);
  const uint64_t size = ns.layer_block_bytes;
  if (data.size() != size * req.keys.size()) {
    return InvalidArgumentError("put data is " + std::to_string(data.size()) + " bytes, expected " +
                                std::to_string(req.keys.size()) + " x " + std::to_string(size));
  }
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size());
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Status s = store_->Put(key, data.data() + i * size, size, Tier::kHost);
    if (s.ok()) puts_.fetch_add(1, std::memory_order_relaxed);
    resp.codes[i] = CodeOf(s);
  }
  Published(ns, req.keys, resp.codes, handoff);
  return transport::Encode(resp);
}

Result<std::string> Service::Get(uint64_t caller, std::string_view header,
                                 std::string* response_data) {
  transport::GetRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, &req));
  FetchRemote(ns, req.keys);
  const uint64_t size = ns.layer_block_bytes;
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size());
  size_t base = response_data->size();
  response_data->resize(base + size * req.keys.size());
  size_t used = base;
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Result<uint64_t> got = store_->Get(key, response_data->data() + used, size);
    if (got.ok() && *got == size) {
      resp.checksums.push_back(Xxh3(response_data->data() + used, size));
      used += size;
      resp.codes[i] = 0;
      get_hits_.fetch_add(1, std::memory_order_relaxed);
    } else {
      resp.codes[i] = got.ok() ? static_cast<KeyCode>(StatusCode::kDataLoss) : CodeOf(got.status());
      get_misses_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  response_data->resize(used);
  return transport::Encode(resp);
}

Result<std::string> Service::ReportStats(uint64_t caller, std::string_view header) {
  transport::ReportStatsRequest req;
  RETURN_IF_ERROR(DecodeRequest(caller, header, &req).status());
  policy::LayerSignal signal;
  signal.layer = req.layer;
  signal.preference = req.preference;
  signal.block_hashes = std::move(req.block_hashes);
  signal.block_scores = std::move(req.block_scores);
  signal.window_blocks = req.window_blocks;
  store_->ReportLayerSignal(req.ns_id, signal);
  return transport::Encode(transport::EmptyResponse{});
}

Result<std::string> Service::Delete(uint64_t caller, std::string_view header) {
  transport::DeleteRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, &req));
  transport::DeleteResponse resp;
  for (const BlockRef& k : req.keys) {
    if (store_->Delete(BlockKey{req.ns_id, k.hash, k.layer}).ok()) ++resp.deleted;
  }
  return transport::Encode(resp);
}

// ---- zero-copy put / get -------------------------------------------------------

Result<std::unique_ptr<Service::PutState>> Service::BeginPut(uint64_t caller,
                                                             std::string_view header,
                                                             uint64_t payload_size) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto fail = [this](Status s) { return CountError(std::move(s)); };
  transport::PutRequest req;
  Result<store::NamespaceConfig> ns = DecodeRequest(caller, header, &req);
  if (!ns.ok()) return fail(ns.status());
  LearnRoots(req);
  const uint64_t size = ns->layer_block_bytes;
  if (payload_size != size * req.keys.size()) {
    return fail(InvalidArgumentError("put data is " + std::to_string(payload_size) +
                                     " bytes, expected " + std::to_string(req.keys.size()) + " x " +
                                     std::to_string(size)));
  }
  auto state = std::make_unique<PutState>();
  state->ns_id = req.ns_id;
  state->value_bytes = size;
  state->handoff = HandoffOf(caller, *ns, req);
  if (state->handoff) state->keys = req.keys;
  state->codes.resize(req.keys.size());
  state->reservations.resize(req.keys.size());
  state->targets.resize(req.keys.size());
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Result<store::Reservation> r = store_->Reserve(key, size, Tier::kHost);
    if (r.ok() && r->tier == Tier::kDevice && store_->device_is_cuda()) {
      store_->Abort(*r).IgnoreError();  // UCX cannot write device memory here
      r = UnavailableError("device-tier reservation on the UCX path");
    }
    if (r.ok()) {
      state->reservations[i] = *r;
      state->targets[i] = transport::MutableBuffer{r->data, size};
    } else {
      state->codes[i] = CodeOf(r.status());
      if (!state->scratch) state->scratch = std::make_unique<char[]>(size);
      // Every refused key lands in the same scratch block (discarded).
      state->targets[i] = transport::MutableBuffer{state->scratch.get(), size};
    }
  }
  if (req.keys.size() > 1) {
    state->staging.reset(new (std::nothrow) char[payload_size]);
    if (!state->staging) {
      AbortPut(*state);
      return fail(ResourceExhaustedError("no memory to stage a put of " +
                                         std::to_string(payload_size) + " bytes"));
    }
  }
  return state;
}

Result<std::string> Service::FinishPut(PutState& state, const Status& payload_status) {
  if (state.finished) return FailedPreconditionError("put already finished");
  state.finished = true;
  if (!payload_status.ok()) {
    for (size_t i = 0; i < state.codes.size(); ++i) {
      if (state.codes[i] == 0) store_->Abort(state.reservations[i]).IgnoreError();
    }
    errors_.fetch_add(1, std::memory_order_relaxed);
    return payload_status.WithContext("put payload not received");
  }
  transport::KeyCodesResponse resp;
  resp.codes = state.codes;
  for (size_t i = 0; i < state.codes.size(); ++i) {
    if (state.codes[i] != 0) continue;
    std::optional<uint64_t> copied_sum;
    if (state.staging) {
      // Copy into the slot and take the checksum in the same pass.
      copied_sum = CopyAndHash(state.targets[i].data, state.staging.get() + i * state.value_bytes,
                               state.value_bytes);
    }
    Status s = store_->Commit(state.reservations[i], std::nullopt, copied_sum);
    if (s.ok()) puts_.fetch_add(1, std::memory_order_relaxed);
    resp.codes[i] = CodeOf(s);
  }
  if (cluster() != nullptr) {
    Result<store::NamespaceConfig> ns = store_->GetNamespace(state.ns_id);
    std::vector<BlockRef> keys;
    std::vector<transport::KeyCode> codes;
    for (size_t i = 0; i < resp.codes.size(); ++i) {
      if (state.codes[i] != 0) {
        // Never reserved: no key recorded, unless a hand-off names it (one
        // that already existed still goes to / counts for the hand-off).
        if (state.handoff && i < state.keys.size()) {
          keys.push_back(state.keys[i]);
          codes.push_back(resp.codes[i]);
        }
        continue;
      }
      keys.push_back(BlockRef{state.reservations[i].key.hash, state.reservations[i].key.layer});
      codes.push_back(resp.codes[i]);
    }
    if (ns.ok()) Published(*ns, keys, codes, state.handoff);
  }
  return transport::Encode(resp);
}

void Service::AbortPut(PutState& state) {
  if (state.finished) return;
  state.finished = true;
  for (size_t i = 0; i < state.codes.size(); ++i) {
    if (state.codes[i] == 0) store_->Abort(state.reservations[i]).IgnoreError();
  }
}

Result<std::unique_ptr<Service::GetState>> Service::BeginGet(uint64_t caller,
                                                             std::string_view header) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto fail = [this](Status s) { return CountError(std::move(s)); };
  transport::GetRequest req;
  Result<store::NamespaceConfig> ns = DecodeRequest(caller, header, &req);
  if (!ns.ok()) return fail(ns.status());
  FetchRemote(*ns, req.keys);
  const uint64_t size = ns->layer_block_bytes;
  auto state = std::make_unique<GetState>();
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size());
  uint64_t staged_bytes = 0;
  // Copies the block into daemon memory (store_->Get reads any tier, SSD
  // straight into the buffer); false, with the key's code set, if it cannot.
  auto stage = [&](const BlockKey& key, size_t i) {
    if (staged_bytes + size > kMaxStagedGetBytes) {
      resp.codes[i] = static_cast<KeyCode>(StatusCode::kResourceExhausted);
      return false;
    }
    std::unique_ptr<char[]> buf(new (std::nothrow) char[size]);
    if (!buf) {
      resp.codes[i] = static_cast<KeyCode>(StatusCode::kResourceExhausted);
      return false;
    }
    Result<uint64_t> got = store_->Get(key, buf.get(), size);
    if (!got.ok() || *got != size) {
      resp.codes[i] = got.ok() ? static_cast<KeyCode>(StatusCode::kDataLoss) : CodeOf(got.status());
      return false;
    }
    staged_bytes += size;
    resp.checksums.push_back(Xxh3(buf.get(), size));
    state->payload.push_back(transport::ConstBuffer{buf.get(), size});
    state->staged.push_back(std::move(buf));
    return true;
  };
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Result<store::PinnedBlock> p = store_->Pin(key);
    if (p.ok() && p->size != size) {
      store_->Release(*p).IgnoreError();
      p = DataLossError("stored block size differs from layer_block_bytes");
    }
    if (!p.ok()) {
      // A block that exists but could not be pinned in place (on SSD while
      // the host tier has no free slot to load it into) is read directly.
      const bool found = p.status().code() != StatusCode::kNotFound &&
                         p.status().code() != StatusCode::kDataLoss && store_->Contains(key);
      if (found && stage(key, i)) {
        get_hits_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (!found) resp.codes[i] = CodeOf(p.status());
      get_misses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (options_.verify_reads && !store_->VerifyPinned(*p).ok()) {
      // Scribbled in memory since it was committed: a miss, never wrong bytes.
      store_->Release(*p).IgnoreError();
      resp.codes[i] = static_cast<KeyCode>(StatusCode::kDataLoss);
      get_misses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    get_hits_.fetch_add(1, std::memory_order_relaxed);
    if (p->tier == Tier::kDevice && store_->device_is_cuda()) {
      // Stage real device memory through host memory (UCX has no CUDA lanes).
      store_->Release(*p).IgnoreError();
      if (!stage(key, i)) {
        get_hits_.fetch_sub(1, std::memory_order_relaxed);
        get_misses_.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    resp.checksums.push_back(p->checksum);
    state->payload.push_back(transport::ConstBuffer{p->data, size});
    state->pins.push_back(*p);
  }
  state->meta = transport::Encode(resp);
  return state;
}

void Service::EndGet(GetState& state) {
  for (const store::PinnedBlock& p : state.pins) {
    Status s = store_->Release(p);
    if (!s.ok()) {
      KVCAKE_LOG(WARNING) << "get: pin of " << p.key.ToString()
                          << " released late: " << s.ToString();
    }
  }
  state.pins.clear();
}

// ---- same-node path ----------------------------------------------------------

template <typename Request>
Result<store::NamespaceConfig> Service::BeginSameNode(uint64_t caller, std::string_view header,
                                                      Request* req, Lease* lease,
                                                      transport::SlotsResponse* resp) {
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, req));
  if (options_.host_segment_path.empty()) {
    return FailedPreconditionError("this daemon exposes no host segment (same-node path off)");
  }
  ExpireLeases();
  lease->owner = caller;
  lease->deadline_us = NowUs() + options_.lease_ms * 1000;
  resp->codes.resize(req->keys.size());
  resp->offsets.resize(req->keys.size());
  resp->checksums.resize(req->keys.size());
  resp->tiers.assign(req->keys.size(), static_cast<uint8_t>(Tier::kHost));
  return ns;
}

std::string Service::GrantLease(Lease lease, transport::SlotsResponse* resp) {
  MutexLock lock(&mu_);
  // Unguessable ids (0 is never used): a lease is its owner's alone, and an
  // id says nothing about other connections' leases.
  do {
    resp->lease_id = lease_ids_();
  } while (resp->lease_id == 0 || leases_.contains(resp->lease_id));
  resp->lease_us = options_.lease_ms * 1000;
  leased_bytes_[lease.owner] += lease.bytes;
  leases_.emplace(resp->lease_id, std::move(lease));
  return transport::Encode(*resp);
}

void Service::UncountLeaseLocked(const Lease& lease) {
  auto it = leased_bytes_.find(lease.owner);
  if (it == leased_bytes_.end()) return;
  it->second -= std::min(it->second, lease.bytes);
  if (it->second == 0) leased_bytes_.erase(it);
}

uint64_t Service::LeaseBytesLeft(uint64_t caller) const {
  if (options_.max_lease_bytes_per_connection == 0) return UINT64_MAX;
  MutexLock lock(&mu_);
  auto it = leased_bytes_.find(caller);
  const uint64_t used = it == leased_bytes_.end() ? 0 : it->second;
  return used >= options_.max_lease_bytes_per_connection
             ? 0
             : options_.max_lease_bytes_per_connection - used;
}

Result<Service::Lease> Service::TakeLease(uint64_t caller, uint64_t lease_id,
                                          std::string_view what) {
  MutexLock lock(&mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end() || it->second.owner != caller) {
    return AbortedError("lease " + std::to_string(lease_id) + " unknown or expired" +
                        std::string(what));
  }
  Lease lease = std::move(it->second);
  leases_.erase(it);
  UncountLeaseLocked(lease);
  return lease;
}

Result<std::string> Service::PutReserve(uint64_t caller, std::string_view header) {
  transport::PutRequest req;
  Lease lease;
  transport::SlotsResponse resp;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, BeginSameNode(caller, header, &req, &lease, &resp));
  LearnRoots(req);
  lease.handoff = HandoffOf(caller, ns, req);
  const uint64_t allowed = LeaseBytesLeft(caller);
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    if (lease.bytes + ns.layer_block_bytes > allowed) {
      resp.codes[i] = static_cast<KeyCode>(StatusCode::kResourceExhausted);
      continue;
    }
    Result<store::Reservation> r = store_->Reserve(key, ns.layer_block_bytes, Tier::kHost);
    if (r.ok() && r->tier != Tier::kHost) {
      store_->Abort(*r).IgnoreError();
      r = InternalError("reservation not in the host tier");
    }
    resp.codes[i] = r.ok() ? 0 : CodeOf(r.status());
    if (r.ok()) {
      resp.offsets[i] = r->offset;
      lease.reservations.push_back(*r);
      lease.bytes += ns.layer_block_bytes;
    }
  }
  return GrantLease(std::move(lease), &resp);
}

Result<std::string> Service::PutCommit(uint64_t caller, std::string_view header) {
  transport::PutCommitRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeRequest(caller, header, &req));
  ASSIGN_OR_RETURN(Lease lease, TakeLease(caller, req.lease_id, ""));
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size(), static_cast<KeyCode>(StatusCode::kNotFound));
  std::vector<bool> used(lease.reservations.size(), false);
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    for (size_t j = 0; j < lease.reservations.size(); ++j) {
      if (!used[j] && lease.reservations[j].key == key) {
        used[j] = true;
        Status s =
            store_->CommitSent(lease.reservations[j], req.checksums[i], options_.verify_commits);
        if (s.ok()) puts_.fetch_add(1, std::memory_order_relaxed);
        resp.codes[i] = CodeOf(s);
        break;
      }
    }
  }
  for (size_t j = 0; j < lease.reservations.size(); ++j) {
    if (!used[j]) store_->Abort(lease.reservations[j]).IgnoreError();
  }
  Published(ns, req.keys, resp.codes, lease.handoff);
  return transport::Encode(resp);
}

Result<std::string> Service::GetPin(uint64_t caller, std::string_view header) {
  transport::GetRequest req;
  Lease lease;
  transport::SlotsResponse resp;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, BeginSameNode(caller, header, &req, &lease, &resp));
  FetchRemote(ns, req.keys);
  const uint64_t allowed = LeaseBytesLeft(caller);
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    if (lease.bytes + ns.layer_block_bytes > allowed) {
      resp.codes[i] = static_cast<KeyCode>(StatusCode::kResourceExhausted);
      get_misses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    Result<store::PinnedBlock> p = store_->Pin(key);
    if (p.ok() && p->tier != Tier::kHost &&
        !(p->tier == Tier::kDevice && options_.device_segment_kind != 0)) {
      // A block in no segment this daemon exposes: UNAVAILABLE tells the
      // client to fetch it over UCX (Client GetMapped does).
      store_->Release(*p).IgnoreError();
      p = UnavailableError("block is in the device tier, which is not exposed");
    }
    if (p.ok() && p->size != ns.layer_block_bytes) {
      store_->Release(*p).IgnoreError();
      p = DataLossError("block size differs from the namespace's layer_block_bytes");
    }
    resp.codes[i] = p.ok() ? 0 : CodeOf(p.status());
    if (p.ok()) {
      resp.offsets[i] = p->offset;
      resp.tiers[i] = static_cast<uint8_t>(p->tier);
      resp.checksums[i] = p->checksum;
      lease.pins.push_back(*p);
      lease.bytes += ns.layer_block_bytes;
      get_hits_.fetch_add(1, std::memory_order_relaxed);
    } else {
      get_misses_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return GrantLease(std::move(lease), &resp);
}

Result<std::string> Service::Release(uint64_t caller, std::string_view header) {
  transport::ReleaseRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  ASSIGN_OR_RETURN(Lease lease, TakeLease(caller, req.lease_id, ": discard what was read"));
  Status first;
  for (const store::PinnedBlock& p : lease.pins) {
    Status s = store_->Release(p);
    if (!s.ok() && first.ok()) first = s;
  }
  for (const store::Reservation& r : lease.reservations) store_->Abort(r).IgnoreError();
  RETURN_IF_ERROR(first);
  return transport::Encode(transport::EmptyResponse{});
}

void Service::ReleaseLease(Lease& lease) {
  for (const store::PinnedBlock& p : lease.pins) store_->Release(p).IgnoreError();
  for (const store::Reservation& r : lease.reservations) store_->Abort(r).IgnoreError();
}

size_t Service::ExpireLeases() {
  std::vector<Lease> expired;
  uint64_t now = NowUs();
  {
    MutexLock lock(&mu_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.deadline_us <= now) {
        UncountLeaseLocked(it->second);
        expired.push_back(std::move(it->second));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Lease& l : expired) ReleaseLease(l);
  return expired.size();
}

void Service::ReleaseAllLeases() {
  std::unordered_map<uint64_t, Lease> all;
  {
    MutexLock lock(&mu_);
    all.swap(leases_);
    leased_bytes_.clear();
  }
  for (auto& [id, l] : all) ReleaseLease(l);
}

ServiceStats Service::stats() const {
  ServiceStats s;
  s.requests = requests_.load();
  s.errors = errors_.load();
  s.get_hits = get_hits_.load();
  s.get_misses = get_misses_.load();
  s.puts = puts_.load();
  {
    MutexLock lock(&mu_);
    s.open_leases = leases_.size();
  }
  for (const auto& c : errors_by_code_) s.errors_by_code.push_back(c.load());
  s.handoffs = handoffs_.stats();
  return s;
}

}  // namespace kvcake::daemon
