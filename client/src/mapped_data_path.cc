#include "client/src/mapped_data_path.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "client/src/ucx_data_path.h"
#include "client/src/wire.h"
#include "common/bulk_copy.h"
#include "common/copy_and_hash.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "common/tier.h"

namespace kvcake::internal {
namespace {

using transport::BlockRef;
using transport::RpcOp;

// Copies the value of pinned slot i of `slots` into blocks[i].data: from the
// GPU-tier arena or the host segment, checking its checksum when ctx asks.
// Returns whether it was read; `elsewhere` gets i when the arena cannot be read
// here (the value then comes over UCX).
bool CopyPinned(const DataPathContext& ctx, const Connection& conn,
                const transport::SlotsResponse& slots, size_t i, const GetBlock& block,
                std::vector<size_t>* elsewhere) {
  const uint64_t size = ctx.value_bytes;
  if (slots.tiers[i] == static_cast<uint8_t>(kvcake::Tier::kDevice)) {
    if (conn.CopyFromDeviceSegment(slots.offsets[i], block.data, size)) return true;
    elsewhere->push_back(i);  // pinned in an arena we cannot read: over UCX
    return false;
  }
  const char* src = conn.segment->At(slots.offsets[i], size);
  if (!src) return false;
  if (ctx.checksum_failures == nullptr) {
    BulkCopy(block.data, src, size);
    return true;
  }
  // Copy and hash in one pass; a block scribbled in the segment since it was
  // committed is a miss, never wrong bytes.
  if (CopyAndHash(block.data, src, size) != slots.checksums[i]) {
    KVCAKE_LOG(WARNING) << "kvcake client: block " << block.hash << " layer " << block.layer
                        << " failed its checksum; treated as a miss";
    ctx.checksum_failures->fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

// Releases the pins of `slots`. The pins were valid while we copied if the
// copy finished well inside the lease (measured from `t0`, before the pin
// request): release without waiting. Otherwise the release confirms it; if
// the lease had expired the bytes may be stale and every value is a miss.
// Gives lease `lease_id` back without waiting for the answer.
void ReleaseAsync(const DataPathContext& ctx, Connection& conn, uint64_t lease_id) {
  conn.rpc->CallAsync(MakeCall(RpcOp::kRelease,
                               transport::Encode(transport::ReleaseRequest{lease_id}), ctx.timeout),
                      [](transport::RpcReply&& reply) {
                        if (!reply.status.ok()) {
                          KVCAKE_LOG(DEBUG)
                              << "kvcake client: release failed: " << reply.status.ToString();
                        }
                      });
}

Status ReleasePins(const DataPathContext& ctx, Connection& conn,
                   const transport::SlotsResponse& slots, std::chrono::steady_clock::time_point t0,
                   std::vector<bool>* found) {
  auto elapsed_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (static_cast<uint64_t>(elapsed_us) < slots.lease_us / 2) {
    ReleaseAsync(ctx, conn, slots.lease_id);
    return Status::Ok();
  }
  const std::string rel_meta = transport::Encode(transport::ReleaseRequest{slots.lease_id});
  Result<std::vector<uint8_t>> r = conn.Call(RpcOp::kRelease, rel_meta, ctx.timeout);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kAborted) {
      found->assign(found->size(), false);
      return Status::Ok();
    }
    return r.status();
  }
  return Status::Ok();
}

// Copies the values `slots` (the reply to a pin of `blocks`, sent at `t0`)
// pinned, then releases the pins. `found` gets one entry per block;
// `elsewhere` the indices (plus `base`) of blocks the daemon has but not in a
// segment this client can read.
Status CopyPinnedAndRelease(const DataPathContext& ctx, Connection& conn,
                            std::span<const GetBlock> blocks, const std::vector<uint8_t>& meta,
                            std::chrono::steady_clock::time_point t0, size_t base,
                            std::vector<bool>* found, std::vector<size_t>* elsewhere) {
  transport::SlotsResponse slots;
  RETURN_IF_ERROR(transport::Decode(AsView(meta), &slots));
  if (slots.codes.size() != blocks.size()) return InternalError("PIN: wrong code count");
  found->assign(blocks.size(), false);
  std::vector<size_t> unreadable;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (slots.codes[i] == static_cast<transport::KeyCode>(StatusCode::kUnavailable)) {
      unreadable.push_back(i);
    }
    if (slots.codes[i] != 0) continue;
    if (CopyPinned(ctx, conn, slots, i, blocks[i], &unreadable)) (*found)[i] = true;
  }
  for (size_t i : unreadable) elsewhere->push_back(base + i);
  return ReleasePins(ctx, conn, slots, t0, found);
}

transport::GetPinRequest PinRequest(const DataPathContext& ctx, std::span<const GetBlock> blocks) {
  transport::GetPinRequest req = ctx.Request();
  for (const GetBlock& b : blocks) req.keys.push_back(BlockRef{b.hash, b.layer});
  return req;
}

// A mapped get of at least two chunks of this many bytes is pinned chunk by
// chunk (see GetMappedHost).
constexpr uint64_t kPinChunkBytes = 8 << 20;

// The replies to the pin requests of a chunked get, filled by the RPC
// client's I/O thread. Thread-safe.
class PinReplies {
 public:
  explicit PinReplies(size_t n) : replies_(n) {}
  void Set(size_t i, transport::RpcReply&& reply) EXCLUDES(mu_) {
    {
      MutexLock lock(&mu_);
      replies_[i] = std::move(reply);
    }
    cv_.NotifyAll();
  }
  // Waits for reply i and takes it.
  transport::RpcReply Take(size_t i) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    cv_.Wait(&lock, [&]() REQUIRES(mu_) { return replies_[i].has_value(); });
    transport::RpcReply r = std::move(*replies_[i]);
    return r;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<std::optional<transport::RpcReply>> replies_ GUARDED_BY(mu_);
};

// The host-segment part of GetMapped; `elsewhere` gets the indices of the
// blocks the daemon has but not in a segment this client can read. A large
// get is pinned in chunks of kPinChunkBytes, all requested at once and each
// copied as soon as its pins arrived, while the daemon still pins the later
// ones: blocks it must first bring from another cluster member (or from its
// SSD) then reach the engine chunk by chunk instead of all after the last.
Status GetMappedHost(const DataPathContext& ctx, Connection& conn, std::span<const GetBlock> blocks,
                     std::vector<bool>* found, std::vector<size_t>* elsewhere) {
  for (const GetBlock& b : blocks) {
    if (!b.data) return InvalidArgumentError("null buffer");
  }
  const size_t per_chunk =
      std::max<size_t>(1, kPinChunkBytes / std::max<uint64_t>(ctx.value_bytes, 1));
  if (blocks.size() < 2 * per_chunk) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(
        std::vector<uint8_t> meta,
        conn.Call(RpcOp::kGetPin, transport::Encode(PinRequest(ctx, blocks)), ctx.timeout));
    return CopyPinnedAndRelease(ctx, conn, blocks, meta, t0, 0, found, elsewhere);
  }
  const size_t chunks = (blocks.size() + per_chunk - 1) / per_chunk;
  auto replies = std::make_shared<PinReplies>(chunks);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < chunks; ++c) {
    const std::span<const GetBlock> part =
        blocks.subspan(c * per_chunk, std::min(per_chunk, blocks.size() - c * per_chunk));
    const std::string meta = transport::Encode(PinRequest(ctx, part));
    conn.rpc->CallAsync(MakeCall(RpcOp::kGetPin, meta, ctx.timeout),
                        [replies, c](transport::RpcReply&& r) { replies->Set(c, std::move(r)); });
  }
  found->assign(blocks.size(), false);
  Status first;
  for (size_t c = 0; c < chunks; ++c) {
    const size_t begin = c * per_chunk;
    const std::span<const GetBlock> part =
        blocks.subspan(begin, std::min(per_chunk, blocks.size() - begin));
    transport::RpcReply reply = replies->Take(c);
    Status s = reply.status;
    if (!s.ok()) {
      conn.Note(s);
      s = s.WithContext("kvcake GET_PIN");
    } else if (!first.ok()) {
      // An earlier chunk failed: only give these pins back.
      transport::SlotsResponse slots;
      if (transport::Decode(AsView(reply.meta), &slots).ok())
        ReleaseAsync(ctx, conn, slots.lease_id);
      continue;
    } else {
      std::vector<bool> part_found;
      s = CopyPinnedAndRelease(ctx, conn, part, reply.meta, t0, begin, &part_found, elsewhere);
      for (size_t i = 0; i < part_found.size(); ++i) (*found)[begin + i] = part_found[i];
    }
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

// Copies each reserved slot's value into the segment; `commit` gets the keys
// and checksums to commit, `committed_index` their positions in `blocks`.
void FillReserved(const DataPathContext& ctx, const Connection& conn,
                  std::span<const PutBlock> blocks, const transport::PutRequest& req,
                  const transport::SlotsResponse& slots, transport::PutCommitRequest* commit,
                  std::vector<size_t>* committed_index, std::vector<Status>* codes) {
  const uint64_t size = ctx.value_bytes;
  codes->assign(blocks.size(), Status::Ok());
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (slots.codes[i] != 0) {
      (*codes)[i] = PutKeyStatus(slots.codes[i], "put reservation refused by the daemon");
      continue;
    }
    char* dst = conn.segment->At(slots.offsets[i], size);
    if (!dst) {
      (*codes)[i] = InternalError("reserved slot outside the mapped segment");
      continue;
    }
    commit->keys.push_back(req.keys[i]);
    commit->checksums.push_back(CopyAndHash(dst, blocks[i].data, size));
    committed_index->push_back(i);
  }
}

}  // namespace

Status PutMapped(const DataPathContext& ctx, Connection& conn, std::span<const PutBlock> blocks,
                 const HandoffTarget* target, std::vector<Status>* codes) {
  transport::PutRequest req = ctx.Request();
  for (const PutBlock& b : blocks) {
    if (!b.data) return InvalidArgumentError("null buffer");
    req.keys.push_back(BlockRef{b.hash, b.layer});
  }
  ctx.Decorate(target, &req);
  ASSIGN_OR_RETURN(std::vector<uint8_t> meta,
                   conn.Call(RpcOp::kPutReserve, transport::Encode(req), ctx.timeout));
  transport::SlotsResponse slots;
  RETURN_IF_ERROR(transport::Decode(AsView(meta), &slots));
  if (slots.codes.size() != blocks.size()) return InternalError("RESERVE: wrong code count");
  transport::PutCommitRequest commit{ctx.ns_id, ctx.fingerprint, slots.lease_id, {}, {}};
  std::vector<size_t> committed_index;
  FillReserved(ctx, conn, blocks, req, slots, &commit, &committed_index, codes);
  if (commit.keys.empty()) {
    transport::ReleaseRequest rel{slots.lease_id};
    (void)conn.Call(RpcOp::kRelease, transport::Encode(rel), ctx.timeout);
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> cmeta,
                   conn.Call(RpcOp::kPutCommit, transport::Encode(commit), ctx.timeout));
  transport::KeyCodesResponse resp;
  RETURN_IF_ERROR(transport::Decode(AsView(cmeta), &resp));
  if (resp.codes.size() != commit.keys.size()) return InternalError("COMMIT: wrong code count");
  for (size_t j = 0; j < committed_index.size(); ++j) {
    (*codes)[committed_index[j]] = PutKeyStatus(resp.codes[j], "commit refused by the daemon");
  }
  return Status::Ok();
}

Status GetMapped(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                 std::span<const GetBlock> blocks, std::vector<bool>* found) {
  std::vector<size_t> elsewhere;
  RETURN_IF_ERROR(GetMappedHost(ctx, *conn, blocks, found, &elsewhere));
  if (elsewhere.empty()) return Status::Ok();
  std::vector<GetBlock> rest;
  for (size_t i : elsewhere) rest.push_back(blocks[i]);
  std::vector<bool> f;
  RETURN_IF_ERROR(GetOverUcx(ctx, conn, rest, &f));
  for (size_t k = 0; k < elsewhere.size(); ++k) (*found)[elsewhere[k]] = f[k];
  return Status::Ok();
}

}  // namespace kvcake::internal
