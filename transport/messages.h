#pragma once

// Op-level request/response payloads of the kvcake protocol (docs/design.md §5).
//
// A frame (transport/frame.h) carries an opcode and a header; the header of
// every kvcake operation is one of the messages below, encoded little-endian
// with the codecs in this file. Bulk values travel beside the header (AM data
// / rendezvous), never inside it. Every decoder validates every field (counts,
// lengths, enum ranges, exact total size) before the value is used and
// returns INVALID_ARGUMENT with a message naming the field otherwise.
//
// Thread-safety: free functions over plain value types; thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::transport {

// Operation codes of the kvcake protocol (the frame's opcode field).
enum class RpcOp : uint16_t {
  kPing = 1,
  kRegisterNamespace = 2,
  kLookupPrefix = 3,
  kPut = 4,  // values inline in the request's data (UCX path)
  kGet = 5,  // values inline in the response's data (UCX path)
  kReportStats = 6,
  kDelete = 7,
  kPutReserve = 8,  // same-node path: reserve host-segment slots
  kPutCommit = 9,   // same-node path: commit reserved slots (with checksums)
  kGetPin = 10,     // same-node path: pin committed slots, return offsets
  kRelease = 11,    // same-node path: release a lease (pins or reservations)
  // Daemon to daemon (cluster): every request carries the cluster token.
  kDirectoryPublish = 12,  // a holder tells a directory owner which chains it has
  kDirectoryLookup = 13,   // which member holds the longest prefix of a chain
  kHandoffWait = 14,       // wait until every block of a hand-off has arrived
  kNcclConnect = 15,       // join a 2-rank NCCL communicator for GPU hand-offs
  kHandoffNotice = 16,     // a prefill member announces a hand-off, or its failure
  // Client to its daemon again.
  kHandoffAbort = 17,  // the prefill engine gives up a hand-off it started
};
inline constexpr uint16_t kMaxRpcOp = 17;
// "PING", "PUT", ... ("UNKNOWN" for other values).
std::string_view RpcOpName(uint16_t op);

// Protocol limits enforced by every decoder.
inline constexpr uint32_t kMaxBatchBlocks = 4096;            // keys per request
inline constexpr uint32_t kMaxNameBytes = 256;               // namespace name
inline constexpr uint32_t kMaxTokenBytes = 4096;             // auth token
inline constexpr uint32_t kMaxLayoutBytes = 1024;            // free-form KV layout description
inline constexpr uint32_t kMaxLayers = 4096;                 // layers per namespace
inline constexpr uint32_t kMaxBlockTokens = 1u << 20;        // tokens per block
inline constexpr uint64_t kMaxLayerBlockBytes = 1ull << 30;  // bytes per value
inline constexpr uint32_t kMaxLookupHashes = 1u << 20;       // hashes in one lookup
inline constexpr uint8_t kMaxServing = 1;                    // RegisterNamespaceRequest::serving

// One value of a namespace: block `hash`, layer `layer`.
struct BlockRef {
  uint64_t hash = 0;
  uint32_t layer = 0;
  friend bool operator==(const BlockRef&, const BlockRef&) = default;
};

// Per-key outcome codes carried in responses (values of kvcake::StatusCode).
using KeyCode = uint8_t;

struct PingRequest {
  uint64_t nonce = 0;
  friend bool operator==(const PingRequest&, const PingRequest&) = default;
};
struct PingResponse {
  uint64_t nonce = 0;
  std::string server_version;
  // Name of the daemon's host segment for the same-node path (shm_open name,
  // e.g. "/kvcake-1234-host"), empty if it exposes none, and its size.
  std::string host_segment;
  uint64_t host_segment_bytes = 0;
  // st_ino of the segment: a client checks it after opening the path, so it
  // never maps some other file (e.g. when the daemon is on another machine).
  uint64_t host_segment_inode = 0;
  // The GPU tier's arena for the same-node path: kind 0 none, 1 an emulated
  // device (host memory: device_segment is a path like host_segment, checked
  // by inode), 2 a CUDA arena (device_segment is its cudaIpcMemHandle_t).
  uint32_t device_segment_kind = 0;
  std::string device_segment;
  uint64_t device_segment_bytes = 0;
  uint64_t device_segment_inode = 0;
  friend bool operator==(const PingResponse&, const PingResponse&) = default;
};

struct RegisterNamespaceRequest {
  std::string name;                // 1..kMaxNameBytes bytes
  std::string token;               // may be empty
  uint32_t num_layers = 0;         // 1..kMaxLayers
  uint32_t block_tokens = 0;       // 1..kMaxBlockTokens
  uint64_t layer_block_bytes = 0;  // 1..kMaxLayerBlockBytes
  std::string kv_dtype;            // e.g. "fp16" (part of the fingerprint)
  std::string layout;              // e.g. "NHD;tp=2;rank=0" (part of the fingerprint)
  uint64_t quota_bytes = 0;        // requested quota; 0 = the daemon's default
  // How the engine serves (policy/serving_mode.h): 0 exact, 1 budgeted.
  // Optional trailing field: a request without it (an older client) is exact.
  uint8_t serving = 0;
  friend bool operator==(const RegisterNamespaceRequest&,
                         const RegisterNamespaceRequest&) = default;
};
struct RegisterNamespaceResponse {
  uint64_t ns_id = 0;        // NamespaceSeed(name)
  uint64_t fingerprint = 0;  // geometry + layout fingerprint
  uint8_t created = 0;       // 1 if new, 0 if it already existed with the same fingerprint
  friend bool operator==(const RegisterNamespaceResponse&,
                         const RegisterNamespaceResponse&) = default;
};

// Every keyed request names the namespace id and the fingerprint the client
// registered; the daemon refuses a fingerprint mismatch (FAILED_PRECONDITION).
// LookupPrefixRequest::flags.
inline constexpr uint32_t kLookupLocalOnly = 1;   // never consult the cluster directory
inline constexpr uint32_t kLookupNoPrefetch = 2;  // do not start fetching a remote part
inline constexpr uint32_t kLookupAllHolders = 4;  // also list every member holding a prefix
inline constexpr uint32_t kLookupFlagsMask =
    kLookupLocalOnly | kLookupNoPrefetch | kLookupAllHolders;
inline constexpr uint32_t kMaxPrefixHolders = 4096;  // members listed in one answer

// A member and the leading hashes of a looked-up chain it published.
struct PrefixHolder {
  std::string node;  // node id, 1..kMaxNodeIdBytes
  uint32_t prefix_len = 0;
  friend bool operator==(const PrefixHolder&, const PrefixHolder&) = default;
};

struct LookupPrefixRequest {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  uint32_t layer = 0;
  std::vector<uint64_t> hashes;  // chained block hashes, in order; <= kMaxLookupHashes
  uint32_t flags = 0;            // kLookup* bits
  friend bool operator==(const LookupPrefixRequest&, const LookupPrefixRequest&) = default;
};
struct LookupPrefixResponse {
  // Leading hashes this daemon can serve: the first `local_len` from its own
  // tiers, the rest (prefix_len - local_len) fetched from `remote_node`.
  uint32_t prefix_len = 0;
  uint32_t local_len = 0;
  std::string remote_node;  // node id of the holder; empty if prefix_len == local_len
  // With kLookupAllHolders: every other live member the cluster directory
  // knows to hold a prefix of the chain, longest first (ties by node id).
  // Optional trailing field, sent only when not empty.
  std::vector<PrefixHolder> holders;
  friend bool operator==(const LookupPrefixResponse&, const LookupPrefixResponse&) = default;
};

// ---- Cluster (daemon to daemon) --------------------------------------------

inline constexpr uint32_t kMaxNodeIdBytes = 256;
inline constexpr uint32_t kMaxPublishChains = 4096;      // chains in one publish
inline constexpr uint32_t kMaxHandoffBlocks = 1u << 24;  // values in one hand-off
inline constexpr uint32_t kMaxHandoffWaitMs = 600'000;   // longest HandoffWait

// Blocks `hashes` (in chain order, all of one layer) of the chain rooted at
// `root` in namespace `ns_id`.
struct ChainRecord {
  uint64_t ns_id = 0;
  uint64_t root = 0;
  uint32_t layer = 0;
  std::vector<uint64_t> hashes;  // 1..kMaxLookupHashes
  friend bool operator==(const ChainRecord&, const ChainRecord&) = default;
};
// Holder `holder` (a node id) has, or (withdraw = 1) no longer has, `chains`.
struct DirectoryPublishRequest {
  std::string cluster_token;
  std::string holder;  // 1..kMaxNodeIdBytes
  uint8_t withdraw = 0;
  std::vector<ChainRecord> chains;  // 1..kMaxPublishChains
  friend bool operator==(const DirectoryPublishRequest&, const DirectoryPublishRequest&) = default;
};
// Reply to a publish: an empty message (status only).
struct DirectoryLookupRequest {
  std::string cluster_token;
  std::string asker;  // node id; never named as the holder
  uint64_t ns_id = 0;
  uint32_t layer = 0;
  std::vector<uint64_t> hashes;  // the chain from its root; 1..kMaxLookupHashes
  // 1: also list every holder (DirectoryLookupResponse::holders). Optional
  // trailing field, sent only when 1.
  uint8_t all_holders = 0;
  friend bool operator==(const DirectoryLookupRequest&, const DirectoryLookupRequest&) = default;
};
struct DirectoryLookupResponse {
  std::string holder;       // node id with the longest known prefix; empty: none
  uint32_t prefix_len = 0;  // leading hashes `holder` published
  // With all_holders: every holder but the asker, longest first (ties by
  // node id). Optional trailing field, sent only when not empty.
  std::vector<PrefixHolder> holders;
  friend bool operator==(const DirectoryLookupResponse&, const DirectoryLookupResponse&) = default;
};

// Waits (at most `timeout_ms`) until hand-off `handoff_id` (> 0) has
// delivered all its values to this daemon. Reply: an empty message; the
// status is OK, DEADLINE_EXCEEDED (not complete in time, or never announced)
// or the hand-off's failure.
struct HandoffWaitRequest {
  uint64_t handoff_id = 0;
  uint32_t timeout_ms = 0;  // 0..kMaxHandoffWaitMs
  friend bool operator==(const HandoffWaitRequest&, const HandoffWaitRequest&) = default;
};

// A member that pushes hand-off values GPU to GPU over NCCL (docs/design.md
// "NCCL hand-off channel") creates a 2-rank communicator as rank 0 and sends
// its id: the receiver joins it as rank 1 on the GPU of its device tier.
// Reply: NcclConnectResponse once the receiver started joining (the
// communicator's initialization completes on both sides afterwards).
inline constexpr uint32_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
inline constexpr uint32_t kMaxCudaDevice = 1023;     // largest CUDA device ordinal accepted
struct NcclConnectRequest {
  std::string cluster_token;
  std::string sender;          // node id of rank 0; 1..kMaxNodeIdBytes
  uint32_t sender_device = 0;  // rank 0's CUDA device; <= kMaxCudaDevice
  std::string unique_id;       // ncclUniqueId bytes: exactly kNcclUniqueIdBytes
  friend bool operator==(const NcclConnectRequest&, const NcclConnectRequest&) = default;
};
struct NcclConnectResponse {
  uint32_t receiver_device = 0;  // rank 1's CUDA device; <= kMaxCudaDevice
  friend bool operator==(const NcclConnectResponse&, const NcclConnectResponse&) = default;
};

// The prefill engine gives up hand-off `handoff_id` (> 0), which it started
// through this daemon in namespace `ns_id` (a cancelled request): the decode
// side's waits for it end at once with ABORTED and `message` instead of
// running to their deadlines. Reply: an empty message; NOT_FOUND if no
// hand-off of that id and namespace is in progress from this daemon.
struct HandoffAbortRequest {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  uint64_t handoff_id = 0;  // > 0
  std::string message;      // <= kMaxNameBytes
  friend bool operator==(const HandoffAbortRequest&, const HandoffAbortRequest&) = default;
};

// Member to member: the prefill member `source` tells the decode member of
// hand-off `handoff_id` before its values arrive. With `failure` 0 it
// announces `keys` (gets of them wait for the values); otherwise the hand-off
// failed on the prefill side (`failure` is a StatusCode, `message` says why)
// and the decode member fails its waiters with that status. Reply: an empty
// message.
struct HandoffNoticeRequest {
  std::string cluster_token;
  std::string source;  // node id of the prefill member
  uint64_t ns_id = 0;
  uint64_t handoff_id = 0;      // > 0
  uint32_t handoff_blocks = 0;  // values of the whole hand-off, 1..kMaxHandoffBlocks
  uint16_t failure = 0;         // 0 or a StatusCode
  std::string message;          // <= kMaxNameBytes
  std::vector<BlockRef> keys;   // announced keys (<= kMaxBatchBlocks; none with a failure)
  friend bool operator==(const HandoffNoticeRequest&, const HandoffNoticeRequest&) = default;
};

// Put (UCX path): the request's data is the concatenation of the values, each
// exactly layer_block_bytes long, in key order.
struct KeyedRequest {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  std::vector<BlockRef> keys;  // 1..kMaxBatchBlocks
  // Puts: empty, or one per key: the root (first block hash) of the chain
  // the key belongs to, 0 if unknown. A clustered daemon publishes chains
  // under their root (docs/cluster.md).
  std::vector<uint64_t> roots;
  // Puts and reservations of a prefill to decode hand-off (docs/cluster.md):
  // `target_node` is the member the committed values are pushed to, and the
  // hand-off named `handoff_id` (> 0) holds `handoff_blocks` values in all
  // (1..kMaxHandoffBlocks). All three empty / 0 otherwise (and for other ops).
  std::string target_node;  // <= kMaxNodeIdBytes
  uint64_t handoff_id = 0;
  uint32_t handoff_blocks = 0;
  // A hand-off put the prefill member `source_node` pushes to its target
  // (only with a target_node; empty for an engine's own puts). Optional on
  // the wire: sent only when set.
  std::string source_node;  // <= kMaxNodeIdBytes
  friend bool operator==(const KeyedRequest&, const KeyedRequest&) = default;
};
using PutRequest = KeyedRequest;
// Per-key outcome: OK, ALREADY_EXISTS (treated as success), RESOURCE_EXHAUSTED...
struct KeyCodesResponse {
  std::vector<KeyCode> codes;  // one per key of the request
  // Gets: the checksum recorded at commit of each value returned (in payload
  // order), so the client checks the bytes that reached it; empty otherwise.
  std::vector<uint64_t> checksums;
  friend bool operator==(const KeyCodesResponse&, const KeyCodesResponse&) = default;
};

// Get (UCX path): the response's data is the concatenation of the values
// found, in key order (missing keys contribute nothing). `codes` is OK or
// NOT_FOUND (or DATA_LOSS) per key.
using GetRequest = KeyedRequest;
using GetResponse = KeyCodesResponse;

struct ReportStatsRequest {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  uint32_t layer = 0;
  double preference = 0;               // finite, >= 0
  std::vector<uint64_t> block_hashes;  // <= kMaxLookupHashes
  std::vector<double> block_scores;    // same length, finite
  uint32_t window_blocks = 1;
  friend bool operator==(const ReportStatsRequest&, const ReportStatsRequest&) = default;
};
struct EmptyResponse {
  friend bool operator==(const EmptyResponse&, const EmptyResponse&) = default;
};

using DeleteRequest = KeyedRequest;
struct DeleteResponse {
  uint32_t deleted = 0;
  friend bool operator==(const DeleteResponse&, const DeleteResponse&) = default;
};

// Same-node path. Reserve/pin return offsets into the host segment and a
// lease; the client copies with memcpy and then commits/releases. A lease not
// renewed within the daemon's --lease_ms is reclaimed.
using PutReserveRequest = PutRequest;  // no data
struct SlotsResponse {
  uint64_t lease_id = 0;
  uint64_t lease_us = 0;          // lease length: the slots stay valid this long after the request
  std::vector<KeyCode> codes;     // per key: OK or the reason
  std::vector<uint64_t> offsets;  // per key: offset in its segment (valid if OK)
  // Per key: the segment `offsets` refers to, a Tier value (kHost, or kDevice
  // for the GPU tier's arena, see PingResponse::device_segment_kind).
  std::vector<uint8_t> tiers;
  // Per key: the block's XXH3-64 recorded at commit (pins; 0 for
  // reservations). A client verifies what it copied out of the segment.
  std::vector<uint64_t> checksums;
  friend bool operator==(const SlotsResponse&, const SlotsResponse&) = default;
};
struct PutCommitRequest {
  uint64_t ns_id = 0;
  uint64_t fingerprint = 0;
  uint64_t lease_id = 0;
  std::vector<BlockRef> keys;       // the reserved keys to commit (subset allowed)
  std::vector<uint64_t> checksums;  // xxh3_64 of each value, same length
  friend bool operator==(const PutCommitRequest&, const PutCommitRequest&) = default;
};
using GetPinRequest = GetRequest;
struct ReleaseRequest {
  uint64_t lease_id = 0;
  friend bool operator==(const ReleaseRequest&, const ReleaseRequest&) = default;
};

// Error responses: a non-OK status travels as code + message.
struct ErrorResponse {
  uint8_t code = 0;
  std::string message;
  friend bool operator==(const ErrorResponse&, const ErrorResponse&) = default;
};

// ---- codecs --------------------------------------------------------------
// Encode never fails (callers build valid messages; limits are checked on
// decode). Decode fills *out and returns OK, or INVALID_ARGUMENT naming the
// first bad field; *out is unspecified on error.

std::string Encode(const PingRequest& m);
std::string Encode(const PingResponse& m);
std::string Encode(const RegisterNamespaceRequest& m);
std::string Encode(const RegisterNamespaceResponse& m);
std::string Encode(const LookupPrefixRequest& m);
std::string Encode(const LookupPrefixResponse& m);
std::string Encode(const KeyedRequest& m);
std::string Encode(const KeyCodesResponse& m);
std::string Encode(const ReportStatsRequest& m);
std::string Encode(const EmptyResponse& m);
std::string Encode(const DeleteResponse& m);
std::string Encode(const SlotsResponse& m);
std::string Encode(const PutCommitRequest& m);
std::string Encode(const ReleaseRequest& m);
std::string Encode(const ErrorResponse& m);
std::string Encode(const DirectoryPublishRequest& m);
std::string Encode(const DirectoryLookupRequest& m);
std::string Encode(const DirectoryLookupResponse& m);
std::string Encode(const HandoffWaitRequest& m);
std::string Encode(const NcclConnectRequest& m);
std::string Encode(const NcclConnectResponse& m);
std::string Encode(const HandoffNoticeRequest& m);
std::string Encode(const HandoffAbortRequest& m);

Status Decode(std::string_view bytes, PingRequest* out);
Status Decode(std::string_view bytes, PingResponse* out);
Status Decode(std::string_view bytes, RegisterNamespaceRequest* out);
Status Decode(std::string_view bytes, RegisterNamespaceResponse* out);
Status Decode(std::string_view bytes, LookupPrefixRequest* out);
Status Decode(std::string_view bytes, LookupPrefixResponse* out);
Status Decode(std::string_view bytes, KeyedRequest* out);
Status Decode(std::string_view bytes, KeyCodesResponse* out);
Status Decode(std::string_view bytes, ReportStatsRequest* out);
Status Decode(std::string_view bytes, EmptyResponse* out);
Status Decode(std::string_view bytes, DeleteResponse* out);
Status Decode(std::string_view bytes, SlotsResponse* out);
Status Decode(std::string_view bytes, PutCommitRequest* out);
Status Decode(std::string_view bytes, ReleaseRequest* out);
Status Decode(std::string_view bytes, ErrorResponse* out);
Status Decode(std::string_view bytes, DirectoryPublishRequest* out);
Status Decode(std::string_view bytes, DirectoryLookupRequest* out);
Status Decode(std::string_view bytes, DirectoryLookupResponse* out);
Status Decode(std::string_view bytes, HandoffWaitRequest* out);
Status Decode(std::string_view bytes, NcclConnectRequest* out);
Status Decode(std::string_view bytes, NcclConnectResponse* out);
Status Decode(std::string_view bytes, HandoffNoticeRequest* out);
Status Decode(std::string_view bytes, HandoffAbortRequest* out);

// Convenience: decode into a fresh value.
template <typename T>
Result<T> DecodeAs(std::string_view bytes) {
  T out;
  Status s = Decode(bytes, &out);
  if (!s.ok()) return s;
  return out;
}

// Status <-> ErrorResponse.
ErrorResponse ToErrorResponse(const Status& status);
Status FromErrorResponse(const ErrorResponse& response);

}  // namespace kvcake::transport
