#include "daemon/service.h"

#include <chrono>
#include <cstring>
#include <new>

#include "common/block_hash.h"
#include "common/logging.h"
#include "store/checksum.h"

namespace kvcake::daemon {
namespace {

using transport::BlockRef;
using transport::KeyCode;

// Constant-time comparison so a token cannot be guessed byte by byte.
bool TokenEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

KeyCode CodeOf(const Status& s) { return static_cast<KeyCode>(s.code()); }

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
  return Status::Ok();
}

Service::Service(ServiceOptions options, store::TierManager* store)
    : options_(std::move(options)), store_(store) {}

Service::~Service() { ReleaseAllLeases(); }

uint64_t Service::NowUs() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Result<std::string> Service::Handle(uint16_t op, std::string_view header, std::string_view data,
                                    std::string* response_data) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  Result<std::string> r = Dispatch(op, header, data, response_data);
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

template <typename Request>
Result<store::NamespaceConfig> Service::DecodeKeyed(std::string_view header, Request* req) {
  RETURN_IF_ERROR(transport::Decode(header, req));
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, CheckNamespace(req->ns_id, req->fingerprint));
  RETURN_IF_ERROR(CheckKeys(ns, req->keys));
  return ns;
}

Result<std::string> Service::Dispatch(uint16_t op, std::string_view header, std::string_view data,
                                      std::string* response_data) {
  using transport::RpcOp;
  if (!data.empty() && op != static_cast<uint16_t>(RpcOp::kPut)) {
    return InvalidArgumentError(std::string(transport::RpcOpName(op)) + " carries no data, got " +
                                std::to_string(data.size()) + " bytes");
  }
  switch (static_cast<RpcOp>(op)) {
    case RpcOp::kPing:
      return Ping(header);
    case RpcOp::kRegisterNamespace:
      return RegisterNamespace(header);
    case RpcOp::kLookupPrefix:
      return LookupPrefix(header);
    case RpcOp::kPut:
      return Put(header, data);
    case RpcOp::kGet:
      return Get(header, response_data);
    case RpcOp::kReportStats:
      return ReportStats(header);
    case RpcOp::kDelete:
      return Delete(header);
    case RpcOp::kPutReserve:
      return PutReserve(header);
    case RpcOp::kPutCommit:
      return PutCommit(header);
    case RpcOp::kGetPin:
      return GetPin(header);
    case RpcOp::kRelease:
      return Release(header);
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

Result<std::string> Service::RegisterNamespace(std::string_view header) {
  transport::RegisterNamespaceRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  if (!options_.token.empty()) {
    if (req.token.empty()) return UnauthenticatedError("this daemon requires a token");
    if (!TokenEquals(req.token, options_.token)) return PermissionDeniedError("bad token");
  }
  store::NamespaceConfig cfg;
  cfg.id = NamespaceSeed(req.name);
  cfg.name = req.name;
  cfg.num_layers = req.num_layers;
  cfg.block_tokens = req.block_tokens;
  cfg.layer_block_bytes = req.layer_block_bytes;
  cfg.kv_dtype = req.kv_dtype;
  cfg.layout = req.layout;
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
  RETURN_IF_ERROR(store_->RegisterNamespace(cfg));
  transport::RegisterNamespaceResponse resp;
  resp.ns_id = cfg.id;
  resp.fingerprint = cfg.Fingerprint();
  resp.created = existed ? 0 : 1;
  if (!existed) {
    KVCAKE_LOG(INFO) << "registered namespace '" << cfg.name << "' layers=" << cfg.num_layers
                     << " block_tokens=" << cfg.block_tokens
                     << " layer_block_bytes=" << cfg.layer_block_bytes
                     << " quota_bytes=" << cfg.quota_bytes;
  }
  return transport::Encode(resp);
}

Result<store::NamespaceConfig> Service::CheckNamespace(uint64_t ns_id, uint64_t fingerprint) {
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
  for (const BlockRef& k : keys) {
    if (k.layer >= ns.num_layers) {
      return InvalidArgumentError("layer " + std::to_string(k.layer) + " >= num_layers " +
                                  std::to_string(ns.num_layers) + " of namespace '" + ns.name +
                                  "'");
    }
  }
  return Status::Ok();
}

Result<std::string> Service::LookupPrefix(std::string_view header) {
  transport::LookupPrefixRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, CheckNamespace(req.ns_id, req.fingerprint));
  if (req.layer >= ns.num_layers) {
    return InvalidArgumentError("layer " + std::to_string(req.layer) + " >= num_layers " +
                                std::to_string(ns.num_layers));
  }
  transport::LookupPrefixResponse resp;
  resp.prefix_len = static_cast<uint32_t>(store_->LookupPrefix(req.ns_id, req.hashes, req.layer));
  return transport::Encode(resp);
}

Result<std::string> Service::Put(std::string_view header, std::string_view data) {
  transport::PutRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeKeyed(header, &req));
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
  return transport::Encode(resp);
}

Result<std::string> Service::Get(std::string_view header, std::string* response_data) {
  transport::GetRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeKeyed(header, &req));
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

Result<std::string> Service::ReportStats(std::string_view header) {
  transport::ReportStatsRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, CheckNamespace(req.ns_id, req.fingerprint));
  if (req.layer >= ns.num_layers) {
    return InvalidArgumentError("layer " + std::to_string(req.layer) + " >= num_layers " +
                                std::to_string(ns.num_layers));
  }
  policy::LayerSignal signal;
  signal.layer = req.layer;
  signal.preference = req.preference;
  signal.block_hashes = std::move(req.block_hashes);
  signal.block_scores = std::move(req.block_scores);
  signal.window_blocks = req.window_blocks;
  store_->ReportLayerSignal(req.ns_id, signal);
  return transport::Encode(transport::EmptyResponse{});
}

Result<std::string> Service::Delete(std::string_view header) {
  transport::DeleteRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeKeyed(header, &req));
  transport::DeleteResponse resp;
  for (const BlockRef& k : req.keys) {
    if (store_->Delete(BlockKey{req.ns_id, k.hash, k.layer}).ok()) ++resp.deleted;
  }
  return transport::Encode(resp);
}

// ---- zero-copy put / get -------------------------------------------------------

Result<std::unique_ptr<Service::PutState>> Service::BeginPut(std::string_view header,
                                                             uint64_t payload_size) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto fail = [this](Status s) { return CountError(std::move(s)); };
  transport::PutRequest req;
  Result<store::NamespaceConfig> ns = DecodeKeyed(header, &req);
  if (!ns.ok()) return fail(ns.status());
  const uint64_t size = ns->layer_block_bytes;
  if (payload_size != size * req.keys.size()) {
    return fail(InvalidArgumentError("put data is " + std::to_string(payload_size) +
                                     " bytes, expected " + std::to_string(req.keys.size()) + " x " +
                                     std::to_string(size)));
  }
  auto state = std::make_unique<PutState>();
  state->ns_id = req.ns_id;
  state->value_bytes = size;
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
    if (state.staging) {
      std::memcpy(state.targets[i].data, state.staging.get() + i * state.value_bytes,
                  state.value_bytes);
    }
    Status s = store_->Commit(state.reservations[i]);
    if (s.ok()) puts_.fetch_add(1, std::memory_order_relaxed);
    resp.codes[i] = CodeOf(s);
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

Result<std::unique_ptr<Service::GetState>> Service::BeginGet(std::string_view header) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto fail = [this](Status s) { return CountError(std::move(s)); };
  transport::GetRequest req;
  Result<store::NamespaceConfig> ns = DecodeKeyed(header, &req);
  if (!ns.ok()) return fail(ns.status());
  const uint64_t size = ns->layer_block_bytes;
  auto state = std::make_unique<GetState>();
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size());
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Result<store::PinnedBlock> p = store_->Pin(key);
    if (p.ok() && p->size != size) {
      store_->Release(*p).IgnoreError();
      p = DataLossError("stored block size differs from layer_block_bytes");
    }
    if (!p.ok()) {
      resp.codes[i] = CodeOf(p.status());
      get_misses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    get_hits_.fetch_add(1, std::memory_order_relaxed);
    if (p->tier == Tier::kDevice && store_->device_is_cuda()) {
      // Stage real device memory through host memory (UCX has no CUDA lanes).
      store_->Release(*p).IgnoreError();
      auto buf = std::make_unique<char[]>(size);
      Result<uint64_t> got = store_->Get(key, buf.get(), size);
      if (!got.ok() || *got != size) {
        resp.codes[i] =
            got.ok() ? static_cast<KeyCode>(StatusCode::kDataLoss) : CodeOf(got.status());
        continue;
      }
      state->payload.push_back(transport::ConstBuffer{buf.get(), size});
      state->staged.push_back(std::move(buf));
      continue;
    }
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
Result<store::NamespaceConfig> Service::BeginSameNode(std::string_view header, Request* req,
                                                      Lease* lease,
                                                      transport::SlotsResponse* resp) {
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeKeyed(header, req));
  if (options_.host_segment_path.empty()) {
    return FailedPreconditionError("this daemon exposes no host segment (same-node path off)");
  }
  ExpireLeases();
  lease->deadline_us = NowUs() + options_.lease_ms * 1000;
  resp->codes.resize(req->keys.size());
  resp->offsets.resize(req->keys.size());
  resp->tiers.assign(req->keys.size(), static_cast<uint8_t>(Tier::kHost));
  return ns;
}

std::string Service::GrantLease(Lease lease, transport::SlotsResponse* resp) {
  std::lock_guard<std::mutex> lock(mu_);
  resp->lease_id = next_lease_id_++;
  resp->lease_us = options_.lease_ms * 1000;
  leases_.emplace(resp->lease_id, std::move(lease));
  return transport::Encode(*resp);
}

Result<Service::Lease> Service::TakeLease(uint64_t lease_id, std::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) {
    return AbortedError("lease " + std::to_string(lease_id) + " unknown or expired" +
                        std::string(what));
  }
  Lease lease = std::move(it->second);
  leases_.erase(it);
  return lease;
}

Result<std::string> Service::PutReserve(std::string_view header) {
  transport::PutRequest req;
  Lease lease;
  transport::SlotsResponse resp;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, BeginSameNode(header, &req, &lease, &resp));
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    Result<store::Reservation> r = store_->Reserve(key, ns.layer_block_bytes, Tier::kHost);
    if (r.ok() && r->tier != Tier::kHost) {
      store_->Abort(*r).IgnoreError();
      r = InternalError("reservation not in the host tier");
    }
    resp.codes[i] = r.ok() ? 0 : CodeOf(r.status());
    if (r.ok()) {
      resp.offsets[i] = r->offset;
      lease.reservations.push_back(*r);
    }
  }
  return GrantLease(std::move(lease), &resp);
}

Result<std::string> Service::PutCommit(std::string_view header) {
  transport::PutCommitRequest req;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, DecodeKeyed(header, &req));
  ASSIGN_OR_RETURN(Lease lease, TakeLease(req.lease_id, ""));
  transport::KeyCodesResponse resp;
  resp.codes.resize(req.keys.size(), static_cast<KeyCode>(StatusCode::kNotFound));
  std::vector<bool> used(lease.reservations.size(), false);
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
    for (size_t j = 0; j < lease.reservations.size(); ++j) {
      if (!used[j] && lease.reservations[j].key == key) {
        used[j] = true;
        Status s = store_->Commit(lease.reservations[j], req.checksums[i]);
        if (s.ok()) puts_.fetch_add(1, std::memory_order_relaxed);
        resp.codes[i] = CodeOf(s);
        break;
      }
    }
  }
  for (size_t j = 0; j < lease.reservations.size(); ++j) {
    if (!used[j]) store_->Abort(lease.reservations[j]).IgnoreError();
  }
  return transport::Encode(resp);
}

Result<std::string> Service::GetPin(std::string_view header) {
  transport::GetRequest req;
  Lease lease;
  transport::SlotsResponse resp;
  ASSIGN_OR_RETURN(store::NamespaceConfig ns, BeginSameNode(header, &req, &lease, &resp));
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockKey key{req.ns_id, req.keys[i].hash, req.keys[i].layer};
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
      lease.pins.push_back(*p);
      get_hits_.fetch_add(1, std::memory_order_relaxed);
    } else {
      get_misses_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return GrantLease(std::move(lease), &resp);
}

Result<std::string> Service::Release(std::string_view header) {
  transport::ReleaseRequest req;
  RETURN_IF_ERROR(transport::Decode(header, &req));
  ASSIGN_OR_RETURN(Lease lease, TakeLease(req.lease_id, ": discard what was read"));
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
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.deadline_us <= now) {
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
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(leases_);
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
    std::lock_guard<std::mutex> lock(mu_);
    s.open_leases = leases_.size();
  }
  for (const auto& c : errors_by_code_) s.errors_by_code.push_back(c.load());
  return s;
}

}  // namespace kvcake::daemon
