#include "transport/messages.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "common/tier.h"

namespace kvcake::transport {
namespace {

// Little-endian writer into a std::string.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(v); }
  void U64(uint64_t v) { Raw(v); }
  void F64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    U64(bits);
  }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Keys(const std::vector<BlockRef>& keys) {
    U32(static_cast<uint32_t>(keys.size()));
    for (const BlockRef& k : keys) {
      U64(k.hash);
      U32(k.layer);
    }
  }
  void U64s(const std::vector<uint64_t>& v) {
    U32(static_cast<uint32_t>(v.size()));
    if constexpr (std::endian::native == std::endian::little) {
      // The wire order is the host's: one copy (a lookup carries 1000 hashes).
      if (!v.empty()) {
        out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(uint64_t));
      }
    } else {
      for (uint64_t x : v) U64(x);
    }
  }
  void Codes(const std::vector<KeyCode>& v) {
    U32(static_cast<uint32_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), v.size());
  }
  std::string Take() { return std::move(out_); }

 private:
  template <typename T>
  void Raw(T v) {
    char b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(b, sizeof(T));
  }
  std::string out_;
};

// Bounds-checked little-endian reader. The first failure sticks; status()
// names the field that failed.
class Reader {
 public:
  explicit Reader(std::string_view in, std::string_view what) : in_(in), what_(what) {}

  bool U8(const char* field, uint8_t* v) {
    if (!Need(field, 1)) return false;
    *v = static_cast<uint8_t>(in_[pos_]);
    pos_ += 1;
    return true;
  }
  bool U32(const char* field, uint32_t* v) { return Raw(field, v); }
  bool U64(const char* field, uint64_t* v) { return Raw(field, v); }
  bool F64(const char* field, double* v) {
    uint64_t bits;
    if (!Raw(field, &bits)) return false;
    std::memcpy(v, &bits, sizeof bits);
    return true;
  }
  bool Str(const char* field, uint32_t max_len, std::string* s) {
    uint32_t n;
    if (!U32(field, &n)) return false;
    if (n > max_len)
      return Fail(field,
                  "length " + std::to_string(n) + " exceeds limit " + std::to_string(max_len));
    if (!Need(field, n)) return false;
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Count(const char* field, uint32_t min, uint32_t max, size_t elem_bytes, uint32_t* n) {
    if (!U32(field, n)) return false;
    if (*n < min || *n > max) {
      return Fail(field, "count " + std::to_string(*n) + " outside [" + std::to_string(min) + ", " +
                             std::to_string(max) + "]");
    }
    // Refuse before allocating: the elements must actually be present.
    if (static_cast<uint64_t>(*n) * elem_bytes > in_.size() - pos_) {
      return Fail(field, "count " + std::to_string(*n) + " larger than the message");
    }
    return true;
  }
  bool Keys(const char* field, uint32_t min, uint32_t max, std::vector<BlockRef>* keys) {
    uint32_t n;
    if (!Count(field, min, max, 12, &n)) return false;
    keys->resize(n);
    for (BlockRef& k : *keys) {
      if (!U64(field, &k.hash) || !U32(field, &k.layer)) return false;
      if (k.layer >= kMaxLayers)
        return Fail(field,
                    "layer " + std::to_string(k.layer) + " >= " + std::to_string(kMaxLayers));
    }
    return true;
  }
  bool U64s(const char* field, uint32_t min, uint32_t max, std::vector<uint64_t>* v) {
    uint32_t n;
    if (!Count(field, min, max, 8, &n)) return false;  // the n values are present
    v->resize(n);
    if constexpr (std::endian::native == std::endian::little) {
      if (n > 0) std::memcpy(v->data(), in_.data() + pos_, static_cast<size_t>(n) * 8);
      pos_ += static_cast<size_t>(n) * 8;
      return true;
    }
    for (uint64_t& x : *v) {
      if (!U64(field, &x)) return false;
    }
    return true;
  }
  bool Codes(const char* field, uint32_t max, std::vector<KeyCode>* v) {
    uint32_t n;
    if (!Count(field, 0, max, 1, &n)) return false;
    v->resize(n);
    for (KeyCode& c : *v) {
      if (!U8(field, &c)) return false;
      if (c > static_cast<uint8_t>(StatusCode::kUnauthenticated)) {
        return Fail(field, "unknown status code " + std::to_string(c));
      }
    }
    return true;
  }
  bool Fail(const char* field, const std::string& why) {
    if (status_.ok()) {
      status_ = InvalidArgumentError(std::string(what_) + "." + field + ": " + why);
    }
    return false;
  }
  // True iff every read succeeded and nothing is left (optional last fields).
  bool AtEnd() const { return status_.ok() && pos_ == in_.size(); }
  // OK iff every read succeeded and the whole input was consumed.
  Status Finish() {
    if (status_.ok() && pos_ != in_.size()) {
      status_ = InvalidArgumentError(std::string(what_) + ": " + std::to_string(in_.size() - pos_) +
                                     " trailing bytes");
    }
    return status_;
  }

 private:
  bool Need(const char* field, size_t n) {
    if (!status_.ok()) return false;
    if (in_.size() - pos_ < n) return Fail(field, "truncated message");
    return true;
  }
  template <typename T>
  bool Raw(const char* field, T* v) {
    if (!Need(field, sizeof(T))) return false;
    T x = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      x |= static_cast<T>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    *v = x;
    return true;
  }

  std::string_view in_;
  std::string_view what_;
  size_t pos_ = 0;
  Status status_;
};

bool CheckRange(Reader& r, const char* field, uint64_t v, uint64_t min, uint64_t max) {
  if (v < min || v > max) {
    return r.Fail(field, "value " + std::to_string(v) + " outside [" + std::to_string(min) + ", " +
                             std::to_string(max) + "]");
  }
  return true;
}

}  // namespace

std::string_view RpcOpName(uint16_t op) {
  switch (static_cast<RpcOp>(op)) {
    case RpcOp::kPing:
      return "PING";
    case RpcOp::kRegisterNamespace:
      return "REGISTER_NAMESPACE";
    case RpcOp::kLookupPrefix:
      return "LOOKUP_PREFIX";
    case RpcOp::kPut:
      return "PUT";
    case RpcOp::kGet:
      return "GET";
    case RpcOp::kReportStats:
      return "REPORT_STATS";
    case RpcOp::kDelete:
      return "DELETE";
    case RpcOp::kPutReserve:
      return "PUT_RESERVE";
    case RpcOp::kPutCommit:
      return "PUT_COMMIT";
    case RpcOp::kGetPin:
      return "GET_PIN";
    case RpcOp::kRelease:
      return "RELEASE";
    case RpcOp::kDirectoryPublish:
      return "DIRECTORY_PUBLISH";
    case RpcOp::kDirectoryLookup:
      return "DIRECTORY_LOOKUP";
    case RpcOp::kHandoffWait:
      return "HANDOFF_WAIT";
    case RpcOp::kNcclConnect:
      return "NCCL_CONNECT";
    case RpcOp::kHandoffNotice:
      return "HANDOFF_NOTICE";
    case RpcOp::kHandoffAbort:
      return "HANDOFF_ABORT";
  }
  return "UNKNOWN";
}

// ---- Ping ------------------------------------------------------------------

std::string Encode(const PingRequest& m) {
  Writer w;
  w.U64(m.nonce);
  return w.Take();
}
Status Decode(std::string_view bytes, PingRequest* out) {
  Reader r(bytes, "PingRequest");
  r.U64("nonce", &out->nonce);
  return r.Finish();
}

std::string Encode(const PingResponse& m) {
  Writer w;
  w.U64(m.nonce);
  w.Str(m.server_version);
  w.Str(m.host_segment);
  w.U64(m.host_segment_bytes);
  w.U64(m.host_segment_inode);
  w.U32(m.device_segment_kind);
  w.Str(m.device_segment);
  w.U64(m.device_segment_bytes);
  w.U64(m.device_segment_inode);
  return w.Take();
}
Status Decode(std::string_view bytes, PingResponse* out) {
  Reader r(bytes, "PingResponse");
  r.U64("nonce", &out->nonce) && r.Str("server_version", 256, &out->server_version) &&
      r.Str("host_segment", 256, &out->host_segment) &&
      r.U64("host_segment_bytes", &out->host_segment_bytes) &&
      r.U64("host_segment_inode", &out->host_segment_inode) &&
      r.U32("device_segment_kind", &out->device_segment_kind) &&
      CheckRange(r, "device_segment_kind", out->device_segment_kind, 0, 2) &&
      r.Str("device_segment", 256, &out->device_segment) &&
      r.U64("device_segment_bytes", &out->device_segment_bytes) &&
      r.U64("device_segment_inode", &out->device_segment_inode);
  return r.Finish();
}

// ---- RegisterNamespace -----------------------------------------------------

std::string Encode(const RegisterNamespaceRequest& m) {
  Writer w;
  w.Str(m.name);
  w.Str(m.token);
  w.U32(m.num_layers);
  w.U32(m.block_tokens);
  w.U64(m.layer_block_bytes);
  w.Str(m.kv_dtype);
  w.Str(m.layout);
  w.U64(m.quota_bytes);
  w.U8(m.serving);
  return w.Take();
}
Status Decode(std::string_view bytes, RegisterNamespaceRequest* out) {
  Reader r(bytes, "RegisterNamespaceRequest");
  out->serving = 0;
  bool ok = r.Str("name", kMaxNameBytes, &out->name) &&
            (!out->name.empty() || r.Fail("name", "must not be empty")) &&
            r.Str("token", kMaxTokenBytes, &out->token) && r.U32("num_layers", &out->num_layers) &&
            CheckRange(r, "num_layers", out->num_layers, 1, kMaxLayers) &&
            r.U32("block_tokens", &out->block_tokens) &&
            CheckRange(r, "block_tokens", out->block_tokens, 1, kMaxBlockTokens) &&
            r.U64("layer_block_bytes", &out->layer_block_bytes) &&
            CheckRange(r, "layer_block_bytes", out->layer_block_bytes, 1, kMaxLayerBlockBytes) &&
            r.Str("kv_dtype", kMaxNameBytes, &out->kv_dtype) &&
            r.Str("layout", kMaxLayoutBytes, &out->layout) &&
            r.U64("quota_bytes", &out->quota_bytes);
  // Optional last field: older clients do not send it (exact serving).
  ok = ok && (r.AtEnd() || (r.U8("serving", &out->serving) &&
                            CheckRange(r, "serving", out->serving, 0, kMaxServing)));
  (void)ok;
  return r.Finish();
}

std::string Encode(const RegisterNamespaceResponse& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.U8(m.created);
  return w.Take();
}
Status Decode(std::string_view bytes, RegisterNamespaceResponse* out) {
  Reader r(bytes, "RegisterNamespaceResponse");
  r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
      r.U8("created", &out->created) && CheckRange(r, "created", out->created, 0, 1);
  return r.Finish();
}

// ---- LookupPrefix ----------------------------------------------------------

namespace {

// The optional trailing holder list of a lookup answer: written only when
// not empty, read only when bytes are left.
void WriteHolders(Writer& w, const std::vector<PrefixHolder>& holders) {
  if (holders.empty()) return;
  w.U32(static_cast<uint32_t>(holders.size()));
  for (const PrefixHolder& h : holders) {
    w.Str(h.node);
    w.U32(h.prefix_len);
  }
}
bool ReadHolders(Reader& r, std::vector<PrefixHolder>* holders) {
  if (r.AtEnd()) return true;
  uint32_t n = 0;
  // Each holder is at least 4 + 1 + 4 bytes.
  if (!r.Count("holders", 1, kMaxPrefixHolders, 9, &n)) return false;
  holders->resize(n);
  for (PrefixHolder& h : *holders) {
    if (!(r.Str("holders.node", kMaxNodeIdBytes, &h.node) &&
          (!h.node.empty() || r.Fail("holders.node", "empty")) &&
          r.U32("holders.prefix_len", &h.prefix_len) &&
          CheckRange(r, "holders.prefix_len", h.prefix_len, 1, kMaxLookupHashes))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string Encode(const LookupPrefixRequest& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.U32(m.layer);
  w.U64s(m.hashes);
  w.U32(m.flags);
  return w.Take();
}
Status Decode(std::string_view bytes, LookupPrefixRequest* out) {
  Reader r(bytes, "LookupPrefixRequest");
  r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
      r.U32("layer", &out->layer) && CheckRange(r, "layer", out->layer, 0, kMaxLayers - 1) &&
      r.U64s("hashes", 0, kMaxLookupHashes, &out->hashes) && r.U32("flags", &out->flags) &&
      ((out->flags & ~kLookupFlagsMask) == 0 || r.Fail("flags", "unknown bits"));
  return r.Finish();
}

std::string Encode(const LookupPrefixResponse& m) {
  Writer w;
  w.U32(m.prefix_len);
  w.U32(m.local_len);
  w.Str(m.remote_node);
  WriteHolders(w, m.holders);
  return w.Take();
}
Status Decode(std::string_view bytes, LookupPrefixResponse* out) {
  Reader r(bytes, "LookupPrefixResponse");
  r.U32("prefix_len", &out->prefix_len) &&
      CheckRange(r, "prefix_len", out->prefix_len, 0, kMaxLookupHashes) &&
      r.U32("local_len", &out->local_len) &&
      CheckRange(r, "local_len", out->local_len, 0, out->prefix_len) &&
      r.Str("remote_node", kMaxNodeIdBytes, &out->remote_node) && ReadHolders(r, &out->holders);
  return r.Finish();
}

// ---- Cluster ---------------------------------------------------------------

std::string Encode(const DirectoryPublishRequest& m) {
  Writer w;
  w.Str(m.cluster_token);
  w.Str(m.holder);
  w.U8(m.withdraw);
  w.U32(static_cast<uint32_t>(m.chains.size()));
  for (const ChainRecord& c : m.chains) {
    w.U64(c.ns_id);
    w.U64(c.root);
    w.U32(c.layer);
    w.U64s(c.hashes);
  }
  return w.Take();
}
Status Decode(std::string_view bytes, DirectoryPublishRequest* out) {
  Reader r(bytes, "DirectoryPublishRequest");
  uint32_t n = 0;
  // Each chain is at least 8 + 8 + 4 + 4 + 8 bytes.
  bool ok = r.Str("cluster_token", kMaxTokenBytes, &out->cluster_token) &&
            r.Str("holder", kMaxNodeIdBytes, &out->holder) &&
            (!out->holder.empty() || r.Fail("holder", "empty")) &&
            r.U8("withdraw", &out->withdraw) && CheckRange(r, "withdraw", out->withdraw, 0, 1) &&
            r.Count("chains", 1, kMaxPublishChains, 32, &n);
  if (ok) {
    out->chains.resize(n);
    for (ChainRecord& c : out->chains) {
      if (!(r.U64("ns_id", &c.ns_id) && r.U64("root", &c.root) && r.U32("layer", &c.layer) &&
            CheckRange(r, "layer", c.layer, 0, kMaxLayers - 1) &&
            r.U64s("hashes", 1, kMaxLookupHashes, &c.hashes))) {
        break;
      }
    }
  }
  return r.Finish();
}

std::string Encode(const DirectoryLookupRequest& m) {
  Writer w;
  w.Str(m.cluster_token);
  w.Str(m.asker);
  w.U64(m.ns_id);
  w.U32(m.layer);
  w.U64s(m.hashes);
  if (m.all_holders != 0) w.U8(m.all_holders);
  return w.Take();
}
Status Decode(std::string_view bytes, DirectoryLookupRequest* out) {
  Reader r(bytes, "DirectoryLookupRequest");
  r.Str("cluster_token", kMaxTokenBytes, &out->cluster_token) &&
      r.Str("asker", kMaxNodeIdBytes, &out->asker) && r.U64("ns_id", &out->ns_id) &&
      r.U32("layer", &out->layer) && CheckRange(r, "layer", out->layer, 0, kMaxLayers - 1) &&
      r.U64s("hashes", 1, kMaxLookupHashes, &out->hashes) &&
      (r.AtEnd() || (r.U8("all_holders", &out->all_holders) &&
                     CheckRange(r, "all_holders", out->all_holders, 1, 1)));
  return r.Finish();
}

std::string Encode(const DirectoryLookupResponse& m) {
  Writer w;
  w.Str(m.holder);
  w.U32(m.prefix_len);
  WriteHolders(w, m.holders);
  return w.Take();
}
Status Decode(std::string_view bytes, DirectoryLookupResponse* out) {
  Reader r(bytes, "DirectoryLookupResponse");
  r.Str("holder", kMaxNodeIdBytes, &out->holder) && r.U32("prefix_len", &out->prefix_len) &&
      CheckRange(r, "prefix_len", out->prefix_len, 0, kMaxLookupHashes) &&
      ReadHolders(r, &out->holders);
  return r.Finish();
}

// ---- Put / Get / Delete (keyed) -------------------------------------------

std::string Encode(const KeyedRequest& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.Keys(m.keys);
  w.U64s(m.roots);
  w.Str(m.target_node);
  w.U64(m.handoff_id);
  w.U32(m.handoff_blocks);
  if (!m.source_node.empty()) w.Str(m.source_node);
  return w.Take();
}
Status Decode(std::string_view bytes, KeyedRequest* out) {
  Reader r(bytes, "KeyedRequest");
  const bool ok = r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
                  r.Keys("keys", 1, kMaxBatchBlocks, &out->keys) &&
                  r.U64s("roots", 0, kMaxBatchBlocks, &out->roots) &&
                  (out->roots.empty() || out->roots.size() == out->keys.size() ||
                   r.Fail("roots", "must be empty or one per key")) &&
                  r.Str("target_node", kMaxNodeIdBytes, &out->target_node) &&
                  r.U64("handoff_id", &out->handoff_id) &&
                  r.U32("handoff_blocks", &out->handoff_blocks);
  if (ok) {
    if (out->target_node.empty()) {
      (out->handoff_id == 0 || r.Fail("handoff_id", "set without a target_node")) &&
          (out->handoff_blocks == 0 || r.Fail("handoff_blocks", "set without a target_node"));
    } else {
      (out->handoff_id != 0 || r.Fail("handoff_id", "0 with a target_node")) &&
          CheckRange(r, "handoff_blocks", out->handoff_blocks, 1, kMaxHandoffBlocks);
    }
  }
  out->source_node.clear();
  if (ok && !r.AtEnd()) {
    r.Str("source_node", kMaxNodeIdBytes, &out->source_node) &&
        (!out->source_node.empty() || r.Fail("source_node", "sent empty")) &&
        (!out->target_node.empty() || r.Fail("source_node", "set without a target_node"));
  }
  return r.Finish();
}

std::string Encode(const HandoffWaitRequest& m) {
  Writer w;
  w.U64(m.handoff_id);
  w.U32(m.timeout_ms);
  return w.Take();
}
Status Decode(std::string_view bytes, HandoffWaitRequest* out) {
  Reader r(bytes, "HandoffWaitRequest");
  r.U64("handoff_id", &out->handoff_id) &&
      (out->handoff_id != 0 || r.Fail("handoff_id", "must be > 0")) &&
      r.U32("timeout_ms", &out->timeout_ms) &&
      CheckRange(r, "timeout_ms", out->timeout_ms, 0, kMaxHandoffWaitMs);
  return r.Finish();
}

std::string Encode(const NcclConnectRequest& m) {
  Writer w;
  w.Str(m.cluster_token);
  w.Str(m.sender);
  w.U32(m.sender_device);
  w.Str(m.unique_id);
  return w.Take();
}
Status Decode(std::string_view bytes, NcclConnectRequest* out) {
  Reader r(bytes, "NcclConnectRequest");
  r.Str("cluster_token", kMaxTokenBytes, &out->cluster_token) &&
      r.Str("sender", kMaxNodeIdBytes, &out->sender) &&
      (!out->sender.empty() || r.Fail("sender", "empty")) &&
      r.U32("sender_device", &out->sender_device) &&
      CheckRange(r, "sender_device", out->sender_device, 0, kMaxCudaDevice) &&
      r.Str("unique_id", kNcclUniqueIdBytes, &out->unique_id) &&
      (out->unique_id.size() == kNcclUniqueIdBytes ||
       r.Fail("unique_id", "length " + std::to_string(out->unique_id.size()) + ", want " +
                               std::to_string(kNcclUniqueIdBytes)));
  return r.Finish();
}

std::string Encode(const NcclConnectResponse& m) {
  Writer w;
  w.U32(m.receiver_device);
  return w.Take();
}
Status Decode(std::string_view bytes, NcclConnectResponse* out) {
  Reader r(bytes, "NcclConnectResponse");
  r.U32("receiver_device", &out->receiver_device) &&
      CheckRange(r, "receiver_device", out->receiver_device, 0, kMaxCudaDevice);
  return r.Finish();
}

std::string Encode(const HandoffNoticeRequest& m) {
  Writer w;
  w.Str(m.cluster_token);
  w.Str(m.source);
  w.U64(m.ns_id);
  w.U64(m.handoff_id);
  w.U32(m.handoff_blocks);
  w.U32(m.failure);
  w.Str(m.message);
  w.Keys(m.keys);
  return w.Take();
}
Status Decode(std::string_view bytes, HandoffNoticeRequest* out) {
  Reader r(bytes, "HandoffNoticeRequest");
  uint32_t failure = 0;
  r.Str("cluster_token", kMaxTokenBytes, &out->cluster_token) &&
      r.Str("source", kMaxNodeIdBytes, &out->source) && r.U64("ns_id", &out->ns_id) &&
      r.U64("handoff_id", &out->handoff_id) &&
      (out->handoff_id != 0 || r.Fail("handoff_id", "must be > 0")) &&
      r.U32("handoff_blocks", &out->handoff_blocks) &&
      CheckRange(r, "handoff_blocks", out->handoff_blocks, 1, kMaxHandoffBlocks) &&
      r.U32("failure", &failure) &&
      CheckRange(r, "failure", failure, 0, static_cast<uint32_t>(StatusCode::kUnauthenticated)) &&
      r.Str("message", kMaxNameBytes, &out->message) &&
      r.Keys("keys", failure == 0 ? 1 : 0, failure == 0 ? kMaxBatchBlocks : 0, &out->keys);
  out->failure = static_cast<uint16_t>(failure);
  return r.Finish();
}

std::string Encode(const HandoffAbortRequest& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.U64(m.handoff_id);
  w.Str(m.message);
  return w.Take();
}
Status Decode(std::string_view bytes, HandoffAbortRequest* out) {
  Reader r(bytes, "HandoffAbortRequest");
  r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
      r.U64("handoff_id", &out->handoff_id) &&
      (out->handoff_id != 0 || r.Fail("handoff_id", "must be > 0")) &&
      r.Str("message", kMaxNameBytes, &out->message);
  return r.Finish();
}

std::string Encode(const KeyCodesResponse& m) {
  Writer w;
  w.Codes(m.codes);
  w.U64s(m.checksums);
  return w.Take();
}
Status Decode(std::string_view bytes, KeyCodesResponse* out) {
  Reader r(bytes, "KeyCodesResponse");
  r.Codes("codes", kMaxBatchBlocks, &out->codes) &&
      r.U64s("checksums", 0, kMaxBatchBlocks, &out->checksums) &&
      (out->checksums.size() <= out->codes.size() ||
       r.Fail("checksums", "more checksums than keys"));
  return r.Finish();
}

std::string Encode(const DeleteResponse& m) {
  Writer w;
  w.U32(m.deleted);
  return w.Take();
}
Status Decode(std::string_view bytes, DeleteResponse* out) {
  Reader r(bytes, "DeleteResponse");
  r.U32("deleted", &out->deleted) && CheckRange(r, "deleted", out->deleted, 0, kMaxBatchBlocks);
  return r.Finish();
}

// ---- ReportStats -----------------------------------------------------------

std::string Encode(const ReportStatsRequest& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.U32(m.layer);
  w.F64(m.preference);
  w.U64s(m.block_hashes);
  w.U32(static_cast<uint32_t>(m.block_scores.size()));
  for (double s : m.block_scores) w.F64(s);
  w.U32(m.window_blocks);
  return w.Take();
}
Status Decode(std::string_view bytes, ReportStatsRequest* out) {
  Reader r(bytes, "ReportStatsRequest");
  uint32_t n_scores = 0;
  bool ok = r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
            r.U32("layer", &out->layer) && CheckRange(r, "layer", out->layer, 0, kMaxLayers - 1) &&
            r.F64("preference", &out->preference) &&
            ((std::isfinite(out->preference) && out->preference >= 0) ||
             r.Fail("preference", "must be finite and >= 0")) &&
            r.U64s("block_hashes", 0, kMaxLookupHashes, &out->block_hashes) &&
            r.Count("block_scores", 0, kMaxLookupHashes, 8, &n_scores) &&
            (n_scores == out->block_hashes.size() ||
             r.Fail("block_scores", "length differs from block_hashes"));
  if (ok) {
    out->block_scores.resize(n_scores);
    for (double& s : out->block_scores) {
      if (!r.F64("block_scores", &s)) break;
      if (!std::isfinite(s)) {
        r.Fail("block_scores", "not finite");
        break;
      }
    }
    r.U32("window_blocks", &out->window_blocks) &&
        CheckRange(r, "window_blocks", out->window_blocks, 0, kMaxLookupHashes);
  }
  return r.Finish();
}

std::string Encode(const EmptyResponse&) { return std::string(); }
Status Decode(std::string_view bytes, EmptyResponse*) {
  Reader r(bytes, "EmptyResponse");
  return r.Finish();
}

// ---- Same-node path --------------------------------------------------------

std::string Encode(const SlotsResponse& m) {
  Writer w;
  w.U64(m.lease_id);
  w.U64(m.lease_us);
  w.Codes(m.codes);
  w.U64s(m.offsets);
  w.Codes(m.tiers);
  w.U64s(m.checksums);
  return w.Take();
}
Status Decode(std::string_view bytes, SlotsResponse* out) {
  Reader r(bytes, "SlotsResponse");
  r.U64("lease_id", &out->lease_id) && r.U64("lease_us", &out->lease_us) &&
      r.Codes("codes", kMaxBatchBlocks, &out->codes) &&
      r.U64s("offsets", 0, kMaxBatchBlocks, &out->offsets) &&
      (out->offsets.size() == out->codes.size() ||
       r.Fail("offsets", "length differs from codes")) &&
      r.Codes("tiers", kMaxBatchBlocks, &out->tiers) &&
      (out->tiers.size() == out->codes.size() || r.Fail("tiers", "length differs from codes")) &&
      std::all_of(out->tiers.begin(), out->tiers.end(),
                  [&](uint8_t t) {
                    return t == static_cast<uint8_t>(Tier::kHost) ||
                           t == static_cast<uint8_t>(Tier::kDevice) ||
                           r.Fail("tiers", "not host or device");
                  }) &&
      r.U64s("checksums", 0, kMaxBatchBlocks, &out->checksums) &&
      (out->checksums.size() == out->codes.size() ||
       r.Fail("checksums", "length differs from codes"));
  return r.Finish();
}

std::string Encode(const PutCommitRequest& m) {
  Writer w;
  w.U64(m.ns_id);
  w.U64(m.fingerprint);
  w.U64(m.lease_id);
  w.Keys(m.keys);
  w.U64s(m.checksums);
  return w.Take();
}
Status Decode(std::string_view bytes, PutCommitRequest* out) {
  Reader r(bytes, "PutCommitRequest");
  r.U64("ns_id", &out->ns_id) && r.U64("fingerprint", &out->fingerprint) &&
      r.U64("lease_id", &out->lease_id) && r.Keys("keys", 1, kMaxBatchBlocks, &out->keys) &&
      r.U64s("checksums", 1, kMaxBatchBlocks, &out->checksums) &&
      (out->checksums.size() == out->keys.size() ||
       r.Fail("checksums", "length differs from keys"));
  return r.Finish();
}

std::string Encode(const ReleaseRequest& m) {
  Writer w;
  w.U64(m.lease_id);
  return w.Take();
}
Status Decode(std::string_view bytes, ReleaseRequest* out) {
  Reader r(bytes, "ReleaseRequest");
  r.U64("lease_id", &out->lease_id);
  return r.Finish();
}

// ---- Errors ----------------------------------------------------------------

std::string Encode(const ErrorResponse& m) {
  Writer w;
  w.U8(m.code);
  w.Str(m.message);
  return w.Take();
}
Status Decode(std::string_view bytes, ErrorResponse* out) {
  Reader r(bytes, "ErrorResponse");
  r.U8("code", &out->code) &&
      CheckRange(r, "code", out->code, 1, static_cast<uint8_t>(StatusCode::kUnauthenticated)) &&
      r.Str("message", 64 * 1024, &out->message);
  return r.Finish();
}

ErrorResponse ToErrorResponse(const Status& status) {
  ErrorResponse e;
  e.code = static_cast<uint8_t>(status.code());
  std::string_view msg = status.message();
  e.message.assign(msg.substr(0, 64 * 1024));
  return e;
}

Status FromErrorResponse(const ErrorResponse& response) {
  if (response.code == 0) return InternalError("error response with code OK");
  return Status(static_cast<StatusCode>(response.code), response.message);
}

}  // namespace kvcake::transport
