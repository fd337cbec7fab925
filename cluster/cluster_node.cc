#include "cluster/cluster_node.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "cluster/rendezvous.h"
#include "common/logging.h"
#include "common/token_equals.h"

namespace kvcake::cluster {
namespace {

using transport::BlockRef;
using transport::ChainRecord;
using transport::RpcOp;

// The most one forwarded job grows to when the forwarder coalesces the
// layers queued for one hand-off.
constexpr uint64_t kMaxCoalescedBytes = 64ull << 20;
// A hand-off push sends about this many bytes per call and keeps this many
// calls in flight (over all hand-offs): the next layer goes out while the
// previous one's reply is on its way.
constexpr uint64_t kForwardCallBytes = 4ull << 20;
constexpr size_t kForwardWindow = 4;
// A fetch asks for about this many bytes per call, and keeps this many calls
// in flight: small calls let a get find its blocks as soon as they land.
constexpr uint64_t kFetchCallBytes = 1ull << 20;
constexpr size_t kFetchWindow = 8;
// Hand-offs the forwarder remembers (started / failed / announced blocks).
constexpr size_t kMaxHandoffsRemembered = 4096;

uint64_t HintKey(uint64_t ns_id, uint64_t hash) {
  const uint64_t parts[2] = {ns_id, hash};
  return XXH3_64bits(parts, sizeof(parts));
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string_view View(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

}  // namespace

struct ClusterNode::Peer {
  std::string address;
  std::unique_ptr<transport::RpcClient> rpc;
  Mutex mu;
  std::unordered_map<uint64_t, uint64_t> namespaces GUARDED_BY(mu);  // ns id -> fingerprint
};

ClusterNode::ClusterNode(ClusterNodeOptions options, store::TierManager* store, MembersFn members)
    : options_(std::move(options)),
      store_(store),
      members_(std::move(members)),
      directory_(options_.max_directory_chains) {
  publisher_ = std::thread([this] { PublisherLoop(); });
  if (options_.max_prefetch_bytes > 0) {
    for (int i = 0; i < std::max(1, options_.prefetch_threads); ++i) {
      fetchers_.emplace_back([this] { FetcherLoop(); });
    }
  }
  forwarder_ = std::thread([this] { ForwarderLoop(); });
}

ClusterNode::~ClusterNode() {
  {
    MutexLock lock(&pub_mu_);
    stop_ = true;
  }
  pub_cv_.NotifyAll();
  if (publisher_.joinable()) publisher_.join();
  {
    MutexLock lock(&fetch_mu_);
    fetch_stop_ = true;
    fetch_queue_.clear();
    in_flight_.clear();
  }
  fetch_cv_.NotifyAll();
  fetched_cv_.NotifyAll();
  for (std::thread& t : fetchers_) t.join();
  {
    MutexLock lock(&fwd_mu_);
    fwd_stop_ = true;
  }
  fwd_cv_.NotifyAll();
  if (forwarder_.joinable()) forwarder_.join();
  MutexLock lock(&peers_mu_);
  peers_.clear();
}

std::string ClusterNode::OwnerOf(const std::vector<PeerAddress>& members, uint64_t ns_id,
                                 uint64_t root) {
  char key[16];
  std::memcpy(key, &ns_id, 8);
  std::memcpy(key + 8, &root, 8);
  const std::string_view k(key, sizeof(key));
  const std::string* best = nullptr;
  uint64_t best_weight = 0;
  for (const PeerAddress& m : members) {
    const uint64_t w = RendezvousWeight(m.node_id, k);
    if (best == nullptr || w > best_weight || (w == best_weight && m.node_id < *best)) {
      best = &m.node_id;
      best_weight = w;
    }
  }
  return best ? *best : std::string();
}

bool ClusterNode::Members(std::vector<PeerAddress>* out) const {
  out->clear();
  return members_ && members_(out) && !out->empty();
}

std::string ClusterNode::AddressOf(const std::vector<PeerAddress>& members,
                                   const std::string& node) const {
  for (const PeerAddress& m : members) {
    if (m.node_id == node) return m.address;
  }
  return {};
}

bool ClusterNode::TokenOk(std::string_view token) {
  if (TokenEquals(token, options_.cluster_token)) return true;
  bad_cluster_tokens_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ClusterNode::MarkDown(const std::string& node_id) {
  MutexLock lock(&peers_mu_);
  peers_.erase(node_id);
  down_until_[node_id] = std::chrono::steady_clock::now() + options_.peer_retry;
}

std::shared_ptr<ClusterNode::Peer> ClusterNode::PeerFor(const std::string& node_id,
                                                        const std::string& address) {
  if (address.empty() || node_id == options_.node_id) return nullptr;
  {
    MutexLock lock(&peers_mu_);
    auto down = down_until_.find(node_id);
    if (down != down_until_.end()) {
      if (std::chrono::steady_clock::now() < down->second) return nullptr;
      down_until_.erase(down);
    }
    auto it = peers_.find(node_id);
    if (it != peers_.end()) {
      if (it->second->address == address && it->second->rpc->connected()) return it->second;
      peers_.erase(it);
    }
  }
  transport::RpcClientOptions o;
  o.ucx = options_.ucx;
  o.connect_timeout = options_.peer_timeout;
  o.default_timeout = options_.peer_timeout;
  auto rpc = transport::RpcClient::Connect(address, o);
  if (!rpc.ok()) {
    KVCAKE_LOG(WARNING) << "cluster: member " << node_id << " at " << address
                        << " unreachable: " << rpc.status().ToString();
    MarkDown(node_id);
    return nullptr;
  }
  auto peer = std::make_shared<Peer>();
  peer->address = address;
  peer->rpc = std::move(rpc).value();
  MutexLock lock(&peers_mu_);
  auto [it, inserted] = peers_.try_emplace(node_id, peer);
  return it->second;  // another thread may have connected first: use its connection
}

Result<std::pair<uint64_t, uint64_t>> ClusterNode::EnsureNamespace(
    Peer& peer, const store::NamespaceConfig& ns) {
  {
    MutexLock lock(&peer.mu);
    auto it = peer.namespaces.find(ns.id);
    if (it != peer.namespaces.end()) return std::make_pair(ns.id, it->second);
  }
  transport::RegisterNamespaceRequest req{ns.name,
                                          options_.cluster_token,
                                          ns.num_layers,
                                          ns.block_tokens,
                                          ns.layer_block_bytes,
                                          ns.kv_dtype,
                                          ns.layout,
                                          0,
                                          static_cast<uint8_t>(ns.serving)};
  transport::RpcReply reply = CallPeer(peer, RpcOp::kRegisterNamespace, transport::Encode(req));
  if (!reply.status.ok()) return reply.status.WithContext("register namespace on member");
  transport::RegisterNamespaceResponse resp;
  RETURN_IF_ERROR(transport::Decode(View(reply.meta), &resp));
  if (resp.ns_id != ns.id || resp.fingerprint != ns.Fingerprint()) {
    return FailedPreconditionError("member holds namespace '" + ns.name +
                                   "' with another geometry");
  }
  MutexLock lock(&peer.mu);
  peer.namespaces[ns.id] = resp.fingerprint;
  return std::make_pair(resp.ns_id, resp.fingerprint);
}

transport::RpcReply ClusterNode::CallPeer(Peer& peer, RpcOp op, const std::string& meta,
                                          std::span<const transport::MutableBuffer> into,
                                          std::span<const transport::ConstBuffer> payload) {
  transport::CallRequest call;
  call.opcode = static_cast<uint16_t>(op);
  call.meta = Bytes(meta);
  call.payload = payload;
  call.reply_buffers = into;
  call.timeout = options_.peer_timeout;
  return peer.rpc->Call(call);
}

// ---- Publishing ------------------------------------------------------------

void ClusterNode::TrimRootsLocked() {
  while (roots_.size() > options_.max_remote_hints && !roots_order_.empty()) {
    roots_.erase(roots_order_.front());
    roots_order_.pop_front();
  }
}

void ClusterNode::LearnRoots(std::span<const BlockRef> keys, std::span<const uint64_t> roots) {
  MutexLock lock(&hints_mu_);
  for (size_t i = 0; i < keys.size() && i < roots.size(); ++i) {
    if (roots[i] == 0) continue;
    auto [it, inserted] = roots_.insert_or_assign(keys[i].hash, roots[i]);
    if (inserted) roots_order_.push_back(keys[i].hash);
  }
  TrimRootsLocked();
}

void ClusterNode::OnCommitted(const store::NamespaceConfig& ns, std::span<const BlockRef> keys) {
  if (keys.empty()) return;
  std::vector<ChainRecord> records;
  {
    MutexLock lock(&hints_mu_);
    // Keys of one request come in chain order per layer. A batch whose first
    // block was never seen in a lookup starts a chain (its root).
    std::map<uint32_t, size_t> by_layer;  // layer -> index in records
    for (const BlockRef& k : keys) {
      auto [it, inserted] = by_layer.try_emplace(k.layer, records.size());
      if (inserted) {
        auto root = roots_.find(k.hash);
        records.push_back(
            ChainRecord{ns.id, root != roots_.end() ? root->second : k.hash, k.layer, {}});
      }
      ChainRecord& r = records[it->second];
      r.hashes.push_back(k.hash);
      if (roots_.emplace(k.hash, r.root).second) roots_order_.push_back(k.hash);
    }
    TrimRootsLocked();
  }
  {
    MutexLock lock(&pub_mu_);
    for (ChainRecord& r : records) pending_.push_back(std::move(r));
  }
}

void ClusterNode::OnMembershipChanged() {
  {
    MutexLock lock(&pub_mu_);
    republish_ = true;
  }
  pub_cv_.NotifyAll();
}

void ClusterNode::PublisherLoop() {
  MutexLock lock(&pub_mu_);
  while (!stop_) {
    pub_cv_.WaitFor(&lock, options_.publish_interval);
    if (stop_) break;
    std::vector<ChainRecord> batch = std::move(pending_);
    pending_.clear();
    const bool republish = std::exchange(republish_, false);
    lock.Unlock();
    if (republish) {
      std::vector<PeerAddress> members;
      if (Members(&members)) {
        std::vector<std::string> ids;
        for (const PeerAddress& m : members) ids.push_back(m.node_id);
        std::sort(ids.begin(), ids.end());
        for (const std::string& old : last_members_) {
          if (!std::binary_search(ids.begin(), ids.end(), old)) directory_.DropHolder(old);
        }
        last_members_ = std::move(ids);
      }
      for (const auto& [key, hashes] : published_) {
        batch.push_back(ChainRecord{key.ns_id, key.root, key.layer, hashes});
      }
    }
    if (!batch.empty()) PublishNow(std::move(batch));
    lock.Lock();
  }
}

void ClusterNode::PublishNow(std::vector<ChainRecord> chains) {
  // Remember what this node holds, so a change of owners can re-publish it.
  for (const ChainRecord& c : chains) {
    const ChainKey key{c.ns_id, c.root, c.layer};
    auto [it, inserted] = published_.try_emplace(key);
    if (inserted) published_order_.push_back(key);
    std::vector<uint64_t>& have = it->second;
    for (uint64_t h : c.hashes) {
      if (std::find(have.begin(), have.end(), h) == have.end()) have.push_back(h);
    }
  }
  while (published_.size() > options_.max_published_chains && !published_order_.empty()) {
    published_.erase(published_order_.front());
    published_order_.pop_front();
  }
  std::vector<PeerAddress> members;
  if (!Members(&members)) return;  // unknown: published again when membership returns
  std::map<std::string, std::vector<ChainRecord>> by_owner;
  for (ChainRecord& c : chains) {
    by_owner[OwnerOf(members, c.ns_id, c.root)].push_back(std::move(c));
  }
  for (auto& [owner, records] : by_owner) {
    if (owner == options_.node_id) {
      for (const ChainRecord& r : records) directory_.Publish(owner, r);
      published_chains_.fetch_add(records.size(), std::memory_order_relaxed);
      continue;
    }
    std::shared_ptr<Peer> peer = PeerFor(owner, AddressOf(members, owner));
    if (!peer) {
      publish_failures_.fetch_add(records.size(), std::memory_order_relaxed);
      continue;
    }
    for (size_t i = 0; i < records.size(); i += transport::kMaxPublishChains) {
      const size_t n = std::min<size_t>(transport::kMaxPublishChains, records.size() - i);
      transport::DirectoryPublishRequest req{options_.cluster_token,
                                             options_.node_id,
                                             0,
                                             {records.begin() + i, records.begin() + i + n}};
      transport::RpcReply reply = CallPeer(*peer, RpcOp::kDirectoryPublish, transport::Encode(req));
      if (reply.status.ok()) {
        published_chains_.fetch_add(n, std::memory_order_relaxed);
      } else {
        publish_failures_.fetch_add(n, std::memory_order_relaxed);
        KVCAKE_LOG(WARNING) << "cluster: publish to " << owner
                            << " failed: " << reply.status.ToString();
        if (reply.status.code() == StatusCode::kUnavailable) MarkDown(owner);
        break;
      }
    }
  }
}

// ---- Lookups and fetches ---------------------------------------------------

ClusterHooks::RemotePrefix ClusterNode::LookupRemote(
    const store::NamespaceConfig& ns, uint32_t layer, std::span<const uint64_t> hashes,
    size_t local, bool prefetch, std::vector<transport::PrefixHolder>* holders) {
  RemotePrefix out;
  if (hashes.empty() || (local >= hashes.size() && holders == nullptr)) return out;
  {
    // Learn the chain, so a put that continues it is published under its root.
    MutexLock lock(&hints_mu_);
    for (uint64_t h : hashes) {
      if (roots_.emplace(h, hashes[0]).second) roots_order_.push_back(h);
    }
    TrimRootsLocked();
  }
  std::vector<PeerAddress> members;
  if (!Members(&members) || members.size() < 2) return out;
  remote_lookups_.fetch_add(1, std::memory_order_relaxed);
  const std::string owner = OwnerOf(members, ns.id, hashes[0]);
  Directory::Hit hit;
  std::vector<transport::PrefixHolder> all;
  if (owner == options_.node_id) {
    if (holders != nullptr) {
      all = directory_.Holders(ns.id, layer, hashes, options_.node_id);
      if (!all.empty()) hit = Directory::Hit{all.front().node, all.front().prefix_len};
    } else {
      hit = directory_.Lookup(ns.id, layer, hashes, options_.node_id);
    }
  } else {
    std::shared_ptr<Peer> peer = PeerFor(owner, AddressOf(members, owner));
    if (!peer) {
      remote_lookup_failures_.fetch_add(1, std::memory_order_relaxed);
      return out;
    }
    transport::DirectoryLookupRequest req{options_.cluster_token,
                                          options_.node_id,
                                          ns.id,
                                          layer,
                                          {hashes.begin(), hashes.end()},
                                          static_cast<uint8_t>(holders != nullptr ? 1 : 0)};
    transport::RpcReply reply = CallPeer(*peer, RpcOp::kDirectoryLookup, transport::Encode(req));
    transport::DirectoryLookupResponse resp;
    Status s = reply.status.ok() ? transport::Decode(View(reply.meta), &resp) : reply.status;
    if (!s.ok()) {
      remote_lookup_failures_.fetch_add(1, std::memory_order_relaxed);
      if (s.code() == StatusCode::kUnavailable) MarkDown(owner);
      return out;
    }
    hit.holder = std::move(resp.holder);
    hit.prefix_len = std::min<uint32_t>(resp.prefix_len, hashes.size());
    all = std::move(resp.holders);
  }
  if (holders != nullptr) {
    // Live members only: the directory may still name one that left.
    for (transport::PrefixHolder& h : all) {
      if (h.node == options_.node_id || AddressOf(members, h.node).empty()) continue;
      h.prefix_len = std::min<uint32_t>(h.prefix_len, hashes.size());
      holders->push_back(std::move(h));
    }
  }
  if (hit.holder.empty() || hit.prefix_len <= local || hit.holder == options_.node_id ||
      AddressOf(members, hit.holder).empty()) {
    return out;
  }
  {
    MutexLock lock(&hints_mu_);
    for (size_t i = local; i < hit.prefix_len; ++i) {
      const uint64_t k = HintKey(ns.id, hashes[i]);
      if (remote_.insert_or_assign(k, hit.holder).second) remote_order_.push_back(k);
    }
    while (remote_.size() > options_.max_remote_hints && !remote_order_.empty()) {
      remote_.erase(remote_order_.front());
      remote_order_.pop_front();
    }
  }
  remote_lookup_hits_.fetch_add(1, std::memory_order_relaxed);
  if (prefetch) Prefetch(ns, hit.holder, hashes.subspan(local, hit.prefix_len - local));
  out.len = static_cast<uint32_t>(hit.prefix_len - local);
  out.node = std::move(hit.holder);
  return out;
}

uint64_t ClusterNode::FetchKey(uint64_t ns_id, const BlockRef& k) {
  const uint64_t parts[3] = {ns_id, k.hash, k.layer};
  return XXH3_64bits(parts, sizeof(parts));
}

void ClusterNode::Prefetch(const store::NamespaceConfig& ns, const std::string& holder,
                           std::span<const uint64_t> hashes) {
  if (options_.max_prefetch_bytes == 0 || hashes.empty()) return;
  const uint64_t size = std::max<uint64_t>(ns.layer_block_bytes, 1);
  const size_t budget = static_cast<size_t>(options_.max_prefetch_bytes / size);
  const size_t per_job =
      std::clamp<size_t>(options_.prefetch_batch_bytes / size, 1, transport::kMaxBatchBlocks);
  std::vector<FetchJob> jobs;
  size_t taken = 0;
  MutexLock lock(&fetch_mu_);
  if (fetch_stop_) return;
  // Layer by layer, the order an engine loads them in.
  for (uint32_t layer = 0; layer < ns.num_layers && taken < budget; ++layer) {
    for (size_t i = 0; i < hashes.size() && taken < budget; ++i) {
      const BlockRef k{hashes[i], layer};
      if (store_->Contains(BlockKey{ns.id, k.hash, k.layer})) continue;
      if (!in_flight_.insert(FetchKey(ns.id, k)).second) continue;
      if (jobs.empty() || jobs.back().keys.size() >= per_job) {
        jobs.push_back(FetchJob{ns, holder, {}});
      }
      jobs.back().keys.push_back(k);
      ++taken;
    }
  }
  for (FetchJob& j : jobs) fetch_queue_.push_back(std::move(j));
  if (!jobs.empty()) fetch_cv_.NotifyAll();
}

void ClusterNode::FetcherLoop() {
  MutexLock lock(&fetch_mu_);
  while (true) {
    fetch_cv_.Wait(&lock,
                   [this]() REQUIRES(fetch_mu_) { return fetch_stop_ || !fetch_queue_.empty(); });
    if (fetch_stop_) return;
    FetchJob job = std::move(fetch_queue_.front());
    fetch_queue_.pop_front();
    lock.Unlock();
    std::vector<PeerAddress> members;
    size_t stored = 0;
    // Keys leave in_flight_ as their call lands, so a get waiting for the
    // first of them need not wait for the whole job.
    auto landed = [this, ns_id = job.ns.id](std::span<const BlockRef> keys) {
      {
        MutexLock lock(&fetch_mu_);
        for (const BlockRef& k : keys) in_flight_.erase(FetchKey(ns_id, k));
      }
      fetched_cv_.NotifyAll();
    };
    if (Members(&members)) stored = FetchFrom(job.holder, members, job.ns, job.keys, landed);
    prefetched_blocks_.fetch_add(stored, std::memory_order_relaxed);
    lock.Lock();
    for (const BlockRef& k : job.keys) in_flight_.erase(FetchKey(job.ns.id, k));
    fetched_cv_.NotifyAll();
  }
}

bool ClusterNode::Fetchable(uint64_t ns_id, const BlockRef& key) {
  {
    MutexLock lock(&fetch_mu_);
    if (in_flight_.count(FetchKey(ns_id, key)) != 0) return true;
  }
  MutexLock lock(&hints_mu_);
  return remote_.count(HintKey(ns_id, key.hash)) != 0;
}

size_t ClusterNode::FetchMissing(const store::NamespaceConfig& ns, std::span<const BlockRef> keys) {
  // Blocks a prefetch has in flight: wait for them (bounded) rather than
  // fetching them twice.
  if (options_.max_prefetch_bytes > 0) {
    MutexLock lock(&fetch_mu_);
    if (!in_flight_.empty()) {
      fetched_cv_.WaitFor(&lock, options_.prefetch_wait, [&]() REQUIRES(fetch_mu_) {
        if (fetch_stop_) return true;
        for (const BlockRef& k : keys) {
          if (in_flight_.count(FetchKey(ns.id, k)) != 0) return false;
        }
        return true;
      });
    }
  }
  std::map<std::string, std::vector<BlockRef>> by_holder;
  {
    MutexLock lock(&hints_mu_);
    if (remote_.empty()) return 0;
    for (const BlockRef& k : keys) {
      if (store_->Contains(BlockKey{ns.id, k.hash, k.layer})) continue;  // prefetched meanwhile
      auto it = remote_.find(HintKey(ns.id, k.hash));
      if (it != remote_.end()) by_holder[it->second].push_back(k);
    }
  }
  if (by_holder.empty()) return 0;
  std::vector<PeerAddress> members;
  if (!Members(&members)) return 0;
  size_t stored = 0;
  for (auto& [holder, refs] : by_holder) stored += FetchFrom(holder, members, ns, refs, nullptr);
  return stored;
}

// One fetch call of FetchFrom: its keys and where the reply's values land
// (a reserved store slot per key, or scratch for a key that got none).
// Thread-safety: written by the fetching thread before the call starts; by
// the RPC client's I/O thread when the reply came (reply, outcome, stored);
// read by the fetching thread after that.
struct ClusterNode::FetchCall {
  size_t begin = 0;  // refs [begin, begin + slots.size())
  std::vector<std::optional<store::Reservation>> slots;
  std::vector<Status> refused;  // why a key got no slot (OK where it has one)
  std::vector<transport::MutableBuffer> into;
  std::unique_ptr<char[]> scratch;
  std::string meta;
  transport::RpcReply reply;
  Status outcome;     // FinishFetch's
  size_t stored = 0;  // values it stored
};

std::unique_ptr<ClusterNode::FetchCall> ClusterNode::PrepareFetch(const store::NamespaceConfig& ns,
                                                                  uint64_t fingerprint,
                                                                  std::span<const BlockRef> refs,
                                                                  size_t begin, size_t n) {
  const uint64_t size = ns.layer_block_bytes;
  auto call = std::make_unique<FetchCall>();
  call->begin = begin;
  call->slots.resize(n);
  call->refused.resize(n);
  call->into.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const BlockRef& k = refs[begin + j];
    Result<store::Reservation> r = store_->Reserve(BlockKey{ns.id, k.hash, k.layer}, size);
    if (r.ok()) {
      call->slots[j] = *r;
      call->into[j] = transport::MutableBuffer{r->data, size};
    } else {
      call->refused[j] = r.status();
    }
  }
  for (size_t j = 0; j < n; ++j) {
    if (call->slots[j]) continue;
    // Keys without a slot (held here already, or being written by another
    // writer) still take their place in the reply: each its own scratch.
    if (!call->scratch) call->scratch.reset(new (std::nothrow) char[n * size]);
    if (!call->scratch) {
      AbortFetch(*call);
      return nullptr;
    }
    call->into[j] = transport::MutableBuffer{call->scratch.get() + j * size, size};
  }
  transport::GetRequest req{ns.id, fingerprint, {refs.begin() + begin, refs.begin() + begin + n}};
  call->meta = transport::Encode(req);
  return call;
}

void ClusterNode::AbortFetch(FetchCall& call) {
  for (std::optional<store::Reservation>& r : call.slots) {
    if (r) store_->Abort(*r).IgnoreError();
    r.reset();
  }
}

Status ClusterNode::FinishFetch(FetchCall& call, uint64_t size, size_t* stored) {
  const size_t n = call.slots.size();
  transport::KeyCodesResponse resp;
  Status s =
      call.reply.status.ok() ? transport::Decode(View(call.reply.meta), &resp) : call.reply.status;
  size_t hits = 0;
  if (s.ok()) {
    for (transport::KeyCode c : resp.codes) hits += (c == 0);
    if (resp.codes.size() != n) {
      s = InternalError("member answered a short get");
    } else if (call.reply.payload_size != hits * size || resp.checksums.size() != hits) {
      s = InternalError("member answered " + std::to_string(call.reply.payload_size) +
                        " bytes for " + std::to_string(hits) + " values");
    }
  }
  if (!s.ok()) {
    AbortFetch(call);
    return s;
  }
  // The reply holds the hits back to back: the m-th hit landed in into[m].
  // Move each to its own key's place (only after a miss), last first.
  std::vector<size_t> hit_index;
  hit_index.reserve(hits);
  for (size_t j = 0; j < n; ++j) {
    if (resp.codes[j] == 0) hit_index.push_back(j);
  }
  for (size_t m = hit_index.size(); m-- > 0;) {
    if (hit_index[m] != m) std::memcpy(call.into[hit_index[m]].data, call.into[m].data, size);
  }
  size_t m = 0;
  for (size_t j = 0; j < n; ++j) {
    const bool hit = resp.codes[j] == 0;
    const uint64_t checksum = hit ? resp.checksums[m++] : 0;
    if (!call.slots[j]) {
      if (call.refused[j].code() == StatusCode::kAlreadyExists) ++*stored;
      continue;
    }
    Status done = hit ? store_->CommitSent(*call.slots[j], checksum, options_.verify_fetched)
                      : store_->Abort(*call.slots[j]);
    call.slots[j].reset();
    if (hit && done.ok()) {
      ++*stored;
      fetched_blocks_.fetch_add(1, std::memory_order_relaxed);
      fetched_bytes_.fetch_add(size, std::memory_order_relaxed);
    } else if (hit) {
      KVCAKE_LOG(WARNING) << "cluster: fetched value not kept: " << done.ToString();
    }
  }
  return Status::Ok();
}

size_t ClusterNode::FetchFrom(const std::string& holder, const std::vector<PeerAddress>& members,
                              const store::NamespaceConfig& ns, std::span<const BlockRef> refs,
                              const std::function<void(std::span<const BlockRef>)>& landed) {
  const uint64_t size = std::max<uint64_t>(ns.layer_block_bytes, 1);
  const size_t per_call = std::clamp<size_t>(kFetchCallBytes / size, 1, transport::kMaxBatchBlocks);
  const auto start = std::chrono::steady_clock::now();
  fetches_.fetch_add(1, std::memory_order_relaxed);
  size_t stored = 0;
  std::shared_ptr<Peer> peer = PeerFor(holder, AddressOf(members, holder));
  Result<std::pair<uint64_t, uint64_t>> reg =
      peer ? EnsureNamespace(*peer, ns) : UnavailableError("member unreachable");
  if (!reg.ok()) {
    fetch_failures_.fetch_add(1, std::memory_order_relaxed);
    if (reg.status().code() == StatusCode::kUnavailable ||
        reg.status().code() == StatusCode::kDeadlineExceeded) {
      MarkDown(holder);
    }
    return 0;
  }
  // Up to kFetchWindow calls in flight, each received straight into the
  // store slots reserved for its keys; a call is committed (and its keys
  // reported landed) while the next ones are still on the wire.
  struct Completions {
    Mutex mu;
    CondVar cv;
    std::deque<FetchCall*> done GUARDED_BY(mu);
  };
  auto completions = std::make_shared<Completions>();
  std::vector<std::unique_ptr<FetchCall>> calls;
  size_t next = 0;  // first ref not yet asked for
  size_t in_flight = 0;
  Status failed;
  while (true) {
    while (failed.ok() && next < refs.size() && in_flight < kFetchWindow) {
      const size_t n = std::min(per_call, refs.size() - next);
      std::unique_ptr<FetchCall> call = PrepareFetch(ns, reg->second, refs, next, n);
      if (!call) {
        failed = ResourceExhaustedError("no memory to receive a fetch");
        break;
      }
      next += n;
      transport::CallRequest request;
      request.opcode = static_cast<uint16_t>(RpcOp::kGet);
      request.meta = Bytes(call->meta);
      request.reply_buffers = call->into;
      request.timeout = options_.peer_timeout;
      FetchCall* raw = call.get();
      calls.push_back(std::move(call));
      ++in_flight;
      // The reply is committed (and its keys reported landed) on the RPC
      // client's I/O thread, the moment it arrives: a get waiting for them
      // needs no other thread to wake first. `landed` and `refs` outlive the
      // call: this function waits for every call it started.
      peer->rpc->CallAsync(
          request, [this, completions, raw, size, refs, &landed](transport::RpcReply&& reply) {
            raw->reply = std::move(reply);
            raw->outcome = FinishFetch(*raw, size, &raw->stored);
            if (landed) landed(refs.subspan(raw->begin, raw->slots.size()));
            MutexLock lock(&completions->mu);
            completions->done.push_back(raw);
            completions->cv.NotifyAll();
          });
    }
    if (in_flight == 0) break;
    FetchCall* call = nullptr;
    {
      MutexLock lock(&completions->mu);
      while (completions->done.empty()) completions->cv.Wait(&lock);
      call = completions->done.front();
      completions->done.pop_front();
    }
    --in_flight;
    stored += call->stored;
    const Status& s = call->outcome;
    if (!s.ok() && failed.ok()) {
      failed = s;
      fetch_failures_.fetch_add(1, std::memory_order_relaxed);
      KVCAKE_LOG(WARNING) << "cluster: fetch from " << holder << " failed: " << s.ToString();
      if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
        MarkDown(holder);
      }
    }
  }
  fetch_micros_.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count(),
                          std::memory_order_relaxed);
  return stored;
}

Result<std::string> ClusterNode::HandleDirectory(uint16_t op, std::string_view header) {
  directory_requests_.fetch_add(1, std::memory_order_relaxed);
  switch (static_cast<RpcOp>(op)) {
    case RpcOp::kDirectoryPublish: {
      transport::DirectoryPublishRequest req;
      RETURN_IF_ERROR(transport::Decode(header, &req));
      if (!TokenOk(req.cluster_token)) return PermissionDeniedError("bad cluster token");
      for (const ChainRecord& c : req.chains) {
        if (req.withdraw) {
          directory_.Withdraw(req.holder, c);
        } else {
          directory_.Publish(req.holder, c);
        }
      }
      return transport::Encode(transport::EmptyResponse{});
    }
    case RpcOp::kDirectoryLookup: {
      transport::DirectoryLookupRequest req;
      RETURN_IF_ERROR(transport::Decode(header, &req));
      if (!TokenOk(req.cluster_token)) return PermissionDeniedError("bad cluster token");
      transport::DirectoryLookupResponse resp;
      if (req.all_holders != 0) {
        resp.holders = directory_.Holders(req.ns_id, req.layer, req.hashes, req.asker);
        if (resp.holders.size() > transport::kMaxPrefixHolders) {
          resp.holders.resize(transport::kMaxPrefixHolders);
        }
        if (!resp.holders.empty()) {
          resp.holder = resp.holders.front().node;
          resp.prefix_len = resp.holders.front().prefix_len;
        }
      } else {
        Directory::Hit hit = directory_.Lookup(req.ns_id, req.layer, req.hashes, req.asker);
        resp.holder = std::move(hit.holder);
        resp.prefix_len = hit.prefix_len;
      }
      return transport::Encode(resp);
    }
    default:
      return InvalidArgumentError("not a directory opcode: " + std::to_string(op));
  }
}

// ---- Hand-offs -------------------------------------------------------------

void ClusterNode::Forward(const store::NamespaceConfig& ns, const HandoffTarget& target,
                          std::span<const BlockRef> keys) {
  if (keys.empty() || target.node.empty() || target.node == options_.node_id) return;
  {
    MutexLock lock(&fwd_mu_);
    auto [it, inserted] = fwd_handoffs_.try_emplace(target.id, false);
    if (inserted) {
      handoffs_started_.fetch_add(1, std::memory_order_relaxed);
      fwd_order_.push_back(target.id);
      while (fwd_handoffs_.size() > kMaxHandoffsRemembered && !fwd_order_.empty()) {
        fwd_handoffs_.erase(fwd_order_.front());
        fwd_order_.pop_front();
      }
    }
    if (fwd_queue_.size() < options_.max_forward_queue) {
      fwd_queue_.push_back(ForwardJob{ns, target, {keys.begin(), keys.end()}});
      fwd_cv_.NotifyOne();
      return;
    }
  }
  FailHandoff(target.id, target.node, ResourceExhaustedError("hand-off forward queue full"));
}

void ClusterNode::Announce(const store::NamespaceConfig& ns, const HandoffTarget& target,
                           std::span<const BlockRef> keys) {
  if (keys.empty() || target.node.empty() || target.node == options_.node_id) return;
  {
    // Layers of the same blocks share their hashes: announce each once.
    MutexLock lock(&fwd_mu_);
    auto [it, inserted] = announced_.try_emplace(target.id);
    if (inserted) {
      announced_order_.push_back(target.id);
      while (announced_.size() > kMaxHandoffsRemembered && !announced_order_.empty()) {
        announced_.erase(announced_order_.front());
        announced_order_.pop_front();
      }
    }
    bool fresh = false;
    for (const BlockRef& k : keys) fresh |= it->second.insert(k.hash).second;
    if (!fresh) return;
  }
  QueueNotice(ForwardJob{ns, target, {keys.begin(), keys.end()}, true, Status::Ok()});
}

void ClusterNode::AbortHandoff(uint64_t ns_id, const HandoffTarget& target, const Status& why) {
  if (why.ok() || target.node.empty() || target.node == options_.node_id) return;
  store::NamespaceConfig ns;
  ns.id = ns_id;
  QueueNotice(ForwardJob{std::move(ns), target, {}, true, why});
}

void ClusterNode::QueueNotice(ForwardJob job) {
  MutexLock lock(&fwd_mu_);
  if (fwd_queue_.size() >= options_.max_forward_queue) return;  // best effort
  fwd_queue_.push_front(std::move(job));
  fwd_cv_.NotifyOne();
}

Status ClusterNode::NoticeNow(const ForwardJob& job) {
  std::vector<PeerAddress> members;
  if (!Members(&members)) return UnavailableError("cluster membership unknown");
  std::shared_ptr<Peer> peer = PeerFor(job.target.node, AddressOf(members, job.target.node));
  if (!peer) return UnavailableError("member '" + job.target.node + "' unreachable");
  transport::HandoffNoticeRequest req;
  req.cluster_token = options_.cluster_token;
  req.source = options_.node_id;
  req.ns_id = job.ns.id;
  req.handoff_id = job.target.id;
  req.handoff_blocks = job.target.blocks;
  req.failure = static_cast<uint16_t>(job.failure.code());
  req.message = std::string(job.failure.message().substr(0, transport::kMaxNameBytes));
  req.keys = job.keys;
  transport::RpcReply reply = CallPeer(*peer, RpcOp::kHandoffNotice, transport::Encode(req));
  if (reply.status.code() == StatusCode::kUnavailable ||
      reply.status.code() == StatusCode::kDeadlineExceeded) {
    MarkDown(job.target.node);
  }
  return reply.status;
}

void ClusterNode::FailHandoff(uint64_t id, const std::string& target, const Status& why) {
  {
    MutexLock lock(&fwd_mu_);
    auto it = fwd_handoffs_.find(id);
    if (it != fwd_handoffs_.end()) {
      if (it->second) return;  // counted already
      it->second = true;
    }
  }
  handoffs_failed_.fetch_add(1, std::memory_order_relaxed);
  KVCAKE_LOG(WARNING) << "cluster: hand-off " << id << " to " << target
                      << " failed: " << why.ToString();
}

struct ClusterNode::PushCall {
  std::shared_ptr<Peer> peer;  // dropped on the forwarder thread, never on the peer's
  std::string target;
  uint64_t handoff_id = 0;
  std::string meta;
  std::vector<store::PinnedBlock> pins;
  std::vector<std::unique_ptr<char[]>> staged;  // values a pin could not send from
  std::vector<transport::ConstBuffer> payload;
  size_t keys = 0;
};

void ClusterNode::ForwarderLoop() {
  MutexLock lock(&fwd_mu_);
  while (true) {
    fwd_cv_.Wait(&lock, [&]() REQUIRES(fwd_mu_) {
      return fwd_stop_ || !pushes_done_.empty() ||
             (!fwd_queue_.empty() && pushes_in_flight_ < kForwardWindow);
    });
    if (!pushes_done_.empty()) {
      std::vector<std::unique_ptr<PushCall>> done = std::move(pushes_done_);
      pushes_done_.clear();
      lock.Unlock();
      done.clear();  // the last peer references go here, off the peer's thread
      lock.Lock();
      continue;
    }
    if (fwd_stop_) break;
    ForwardJob job = std::move(fwd_queue_.front());
    fwd_queue_.pop_front();
    if (!job.notice) {
      // A forwarder that fell behind sends the layers queued for the same
      // hand-off together: fewer, larger pushes catch up.
      const uint64_t size = std::max<uint64_t>(job.ns.layer_block_bytes, 1);
      while (!fwd_queue_.empty()) {
        const ForwardJob& next = fwd_queue_.front();
        if (next.notice || next.target.id != job.target.id || next.target.node != job.target.node ||
            next.ns.id != job.ns.id ||
            (job.keys.size() + next.keys.size()) * size > kMaxCoalescedBytes) {
          break;
        }
        job.keys.insert(job.keys.end(), next.keys.begin(), next.keys.end());
        fwd_queue_.pop_front();
      }
    }
    auto it = fwd_handoffs_.find(job.target.id);
    const bool failed = it != fwd_handoffs_.end() && it->second;
    lock.Unlock();
    if (job.notice) {
      Status s = NoticeNow(job);
      if (!s.ok()) {
        KVCAKE_LOG(WARNING) << "cluster: hand-off " << job.target.id << " notice to "
                            << job.target.node << " failed: " << s.ToString();
      }
    } else if (!failed) {
      Status s = ForwardNow(job);
      if (!s.ok()) FailHandoff(job.target.id, job.target.node, s);
    }
    lock.Lock();
  }
  lock.Unlock();
  ReapPushes(1);  // every push has a deadline: wait for all of them
}

void ClusterNode::ReapPushes(size_t limit) {
  std::vector<std::unique_ptr<PushCall>> done;
  {
    MutexLock lock(&fwd_mu_);
    fwd_cv_.Wait(&lock, [&]() REQUIRES(fwd_mu_) { return pushes_in_flight_ < limit; });
    done = std::move(pushes_done_);
    pushes_done_.clear();
  }
}

std::unique_ptr<ClusterNode::PushCall> ClusterNode::PreparePush(const ForwardJob& job,
                                                                uint64_t fingerprint, size_t begin,
                                                                size_t n) {
  const uint64_t size = job.ns.layer_block_bytes;
  auto call = std::make_unique<PushCall>();
  call->target = job.target.node;
  call->handoff_id = job.target.id;
  transport::PutRequest req;
  req.ns_id = job.ns.id;
  req.fingerprint = fingerprint;
  req.target_node = job.target.node;
  req.handoff_id = job.target.id;
  req.handoff_blocks = job.target.blocks;
  req.source_node = options_.node_id;
  for (size_t j = begin; j < begin + n; ++j) {
    const BlockRef& k = job.keys[j];
    const BlockKey key{job.ns.id, k.hash, k.layer};
    // Sent from its slot in place while pinned; CUDA memory (UCX has no CUDA
    // lanes here) and values a pin cannot reach are copied out first.
    Result<store::PinnedBlock> p = store_->Pin(key);
    if (p.ok() && p->size == size && !(p->tier == Tier::kDevice && store_->device_is_cuda())) {
      call->pins.push_back(*p);
      call->payload.push_back(transport::ConstBuffer{p->data, size});
      req.keys.push_back(k);
      continue;
    }
    if (p.ok()) store_->Release(*p).IgnoreError();
    std::unique_ptr<char[]> buf(new (std::nothrow) char[size]);
    if (!buf) continue;  // the target misses it
    Result<uint64_t> got = store_->Get(key, buf.get(), size);
    if (!got.ok() || *got != size) continue;  // evicted meanwhile: the target misses it
    call->payload.push_back(transport::ConstBuffer{buf.get(), size});
    call->staged.push_back(std::move(buf));
    req.keys.push_back(k);
  }
  if (req.keys.empty()) return nullptr;
  call->keys = req.keys.size();
  call->meta = transport::Encode(req);
  return call;
}

Status ClusterNode::ForwardNow(const ForwardJob& job) {
  std::vector<PeerAddress> members;
  if (!Members(&members)) return UnavailableError("cluster membership unknown");
  const std::string address = AddressOf(members, job.target.node);
  if (address.empty()) return NotFoundError("no live member '" + job.target.node + "'");
  std::shared_ptr<Peer> peer = PeerFor(job.target.node, address);
  if (!peer) return UnavailableError("member unreachable");
  Result<std::pair<uint64_t, uint64_t>> reg = EnsureNamespace(*peer, job.ns);
  if (!reg.ok()) {
    if (reg.status().code() == StatusCode::kUnavailable ||
        reg.status().code() == StatusCode::kDeadlineExceeded) {
      MarkDown(job.target.node);
    }
    return reg.status();
  }
  const uint64_t size = std::max<uint64_t>(job.ns.layer_block_bytes, 1);
  const size_t per_call =
      std::clamp<size_t>(kForwardCallBytes / size, 1, transport::kMaxBatchBlocks);
  for (size_t i = 0; i < job.keys.size(); i += per_call) {
    ReapPushes(kForwardWindow);
    {
      MutexLock lock(&fwd_mu_);
      auto it = fwd_handoffs_.find(job.target.id);
      if (it != fwd_handoffs_.end() && it->second) return Status::Ok();  // failed meanwhile
    }
    const size_t n = std::min(per_call, job.keys.size() - i);
    std::unique_ptr<PushCall> call = PreparePush(job, reg->second, i, n);
    if (!call) continue;
    call->peer = peer;
    transport::CallRequest request;
    request.opcode = static_cast<uint16_t>(RpcOp::kPut);
    request.meta = Bytes(call->meta);
    request.payload = call->payload;
    request.timeout = options_.peer_timeout;
    {
      MutexLock lock(&fwd_mu_);
      ++pushes_in_flight_;
    }
    PushCall* raw = call.release();
    // The reply is handled on the peer connection's I/O thread: pins end
    // there, the call itself (holding a peer reference) goes back to the
    // forwarder thread.
    peer->rpc->CallAsync(request, [this, raw, size](transport::RpcReply&& reply) {
      std::unique_ptr<PushCall> done(raw);
      for (const store::PinnedBlock& p : done->pins) store_->Release(p).IgnoreError();
      done->pins.clear();
      transport::KeyCodesResponse resp;
      Status s = reply.status.ok() ? transport::Decode(View(reply.meta), &resp) : reply.status;
      if (s.ok()) {
        handoff_blocks_forwarded_.fetch_add(done->keys, std::memory_order_relaxed);
        handoff_bytes_forwarded_.fetch_add(done->keys * size, std::memory_order_relaxed);
      } else {
        if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
          MarkDown(done->target);
        }
        FailHandoff(done->handoff_id, done->target, s.WithContext("push to " + done->target));
      }
      MutexLock lock(&fwd_mu_);
      --pushes_in_flight_;
      pushes_done_.push_back(std::move(done));
      fwd_cv_.NotifyAll();
    });
  }
  return Status::Ok();
}

ClusterStats ClusterNode::stats() const {
  ClusterStats s;
  s.remote_lookups = remote_lookups_.load(std::memory_order_relaxed);
  s.remote_lookup_hits = remote_lookup_hits_.load(std::memory_order_relaxed);
  s.remote_lookup_failures = remote_lookup_failures_.load(std::memory_order_relaxed);
  s.fetches = fetches_.load(std::memory_order_relaxed);
  s.fetched_blocks = fetched_blocks_.load(std::memory_order_relaxed);
  s.fetched_bytes = fetched_bytes_.load(std::memory_order_relaxed);
  s.fetch_failures = fetch_failures_.load(std::memory_order_relaxed);
  s.prefetched_blocks = prefetched_blocks_.load(std::memory_order_relaxed);
  s.published_chains = published_chains_.load(std::memory_order_relaxed);
  s.publish_failures = publish_failures_.load(std::memory_order_relaxed);
  s.directory_chains = directory_.chains();
  s.directory_requests = directory_requests_.load(std::memory_order_relaxed);
  s.bad_cluster_tokens = bad_cluster_tokens_.load(std::memory_order_relaxed);
  s.fetch_seconds_total = fetch_micros_.load(std::memory_order_relaxed) / 1e6;
  s.handoffs_started = handoffs_started_.load(std::memory_order_relaxed);
  s.handoffs_failed = handoffs_failed_.load(std::memory_order_relaxed);
  s.handoff_blocks_forwarded = handoff_blocks_forwarded_.load(std::memory_order_relaxed);
  s.handoff_bytes_forwarded = handoff_bytes_forwarded_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kvcake::cluster
