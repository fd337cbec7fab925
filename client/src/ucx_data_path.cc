#include "client/src/ucx_data_path.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "client/src/wire.h"
#include "common/copy_and_hash.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"

namespace kvcake::internal {
namespace {

using transport::BlockRef;
using transport::RpcOp;

// Values of at least this size travel one per request (several requests
// in flight), straight from/into the caller's buffer; smaller ones are
// grouped up to this many bytes per request.
constexpr uint64_t kSingleValueBytes = 64 * 1024;

// The [begin, end) ranges of `n` values of `size` bytes, one per request.
std::vector<std::pair<size_t, size_t>> Chunks(size_t n, uint64_t size) {
  size_t per = size >= kSingleValueBytes ? 1 : static_cast<size_t>((kSingleValueBytes - 1) / size);
  per = std::max<size_t>(1, per);
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t b = 0; b < n; b += per) out.emplace_back(b, std::min(n, b + per));
  return out;
}

// State shared by the requests of one put or get. Thread-safe: the start
// closures are all added before the first request starts and only read
// after; the rest is guarded by mu.
struct MultiOp {
  std::shared_ptr<Connection> conn;  // the requests' connection
  Mutex mu;
  CondVar cv;
  size_t remaining GUARDED_BY(mu) = 0;
  Status first GUARDED_BY(mu);
  std::vector<bool> found GUARDED_BY(mu);                // gets
  std::vector<transport::KeyCode> codes GUARDED_BY(mu);  // puts
  std::function<void(Status, std::vector<bool>)> done;   // gets
  // Gets: check values against the reply's checksums; mismatches counted here.
  std::atomic<uint64_t>* checksum_failures = nullptr;
  bool finished GUARDED_BY(mu) = false;
  // Requests not started yet (started in order as earlier ones finish, at
  // most ClientOptions::max_inflight_requests at a time).
  std::vector<std::function<void()>> starts;
  size_t next_start GUARDED_BY(mu) = 0;

  void Fail(const Status& s) REQUIRES(mu) {
    if (first.ok()) first = s;
  }
};

// One request of a MultiOp and the buffers it refers to.
struct SubRequest {
  std::string meta;
  std::vector<transport::ConstBuffer> payload;
  std::vector<transport::MutableBuffer> reply;
  std::unique_ptr<char[]> staging;
};

// Starts the first `window` requests of `op`; each completion calls
// StartNext(op) to keep the window full.
void StartWindow(MultiOp& op, int window) {
  std::vector<std::function<void()>*> now;
  {
    MutexLock lock(&op.mu);
    while (op.next_start < op.starts.size() && now.size() < static_cast<size_t>(window)) {
      now.push_back(&op.starts[op.next_start++]);
    }
  }
  for (auto* f : now) (*f)();
}

// Starts the next pending request of `op`, if any. Call without op.mu.
void StartNext(MultiOp& op) {
  std::function<void()>* f = nullptr;
  {
    MutexLock lock(&op.mu);
    if (op.next_start < op.starts.size()) f = &op.starts[op.next_start++];
  }
  if (f) (*f)();
}

// Checks a get reply covering blocks [b, e): its status, its codes and a
// payload that holds every hit.
Status CheckGetReply(const transport::RpcReply& reply, size_t n, uint64_t size,
                     transport::KeyCodesResponse* resp, size_t* hits) {
  if (!reply.status.ok()) return reply.status.WithContext("kvcake GET");
  RETURN_IF_ERROR(transport::Decode(AsView(reply.meta), resp));
  if (resp->codes.size() != n) return InternalError("GET: wrong number of codes");
  *hits = 0;
  for (auto c : resp->codes) *hits += (c == 0);
  if (reply.payload_size != *hits * size) {
    return InternalError("GET: payload of " + std::to_string(reply.payload_size) + " bytes for " +
                         std::to_string(*hits) + " values");
  }
  return Status::Ok();
}

// Finishes one request of a get covering blocks [b, e).
void FinishSubGet(MultiOp& op, const std::vector<GetBlock>& blocks, size_t b, size_t e,
                  SubRequest& sub, uint64_t size, transport::RpcReply& reply) {
  transport::KeyCodesResponse resp;
  size_t hits = 0;
  Status s = CheckGetReply(reply, e - b, size, &resp, &hits);
  MutexLock lock(&op.mu);
  if (!s.ok()) {
    op.Fail(s);
    return;
  }
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

// The request of a get of blocks [b, e): its keys, and where the reply's
// values land (the caller's buffer for one value, a staging buffer for more).
transport::CallRequest MakeSubGet(const DataPathContext& ctx, const std::vector<GetBlock>& blocks,
                                  size_t b, size_t e, SubRequest* sub) {
  const uint64_t size = ctx.value_bytes;
  transport::GetRequest req = ctx.Request();
  for (size_t i = b; i < e; ++i) req.keys.push_back(BlockRef{blocks[i].hash, blocks[i].layer});
  sub->meta = transport::Encode(req);
  if (e - b == 1) {
    sub->reply.push_back(transport::MutableBuffer{blocks[b].data, size});
  } else {
    sub->staging = std::make_unique<char[]>((e - b) * size);
    sub->reply.push_back(transport::MutableBuffer{sub->staging.get(), (e - b) * size});
  }
  transport::CallRequest call = MakeCall(RpcOp::kGet, sub->meta, ctx.timeout);
  call.reply_buffers = sub->reply;
  return call;
}

// Sends one request of a get (or, once the client is closing, cancels it);
// the last reply runs op->done.
void SendSubGet(const std::shared_ptr<MultiOp>& op, const transport::CallRequest& call,
                const std::shared_ptr<std::vector<GetBlock>>& blocks,
                const std::shared_ptr<SubRequest>& sub, size_t b, size_t e, uint64_t size,
                const AsyncState& async) {
  auto on_reply = [op, blocks, sub, b, e, size](transport::RpcReply&& reply) {
    op->conn->Note(reply.status);
    FinishSubGet(*op, *blocks, b, e, *sub, size, reply);
    StartNext(*op);
    Status first;
    std::vector<bool> found;
    {
      MutexLock lock(&op->mu);
      if (--op->remaining != 0) return;
      first = op->first;
      if (first.ok()) found = op->found;
    }
    op->done(std::move(first), std::move(found));
  };
  // Started from a completion (StartNext) while the client is being
  // destroyed: cancel instead of touching the RPC client.
  if (async.Closing()) {
    transport::RpcReply cancelled;
    cancelled.status = ClosingError();
    on_reply(std::move(cancelled));
    return;
  }
  op->conn->rpc->CallAsync(call, std::move(on_reply));
}

// The request of a put of blocks [b, e): keys, roots, hand-off and payload
// (straight from the caller's buffers).
transport::CallRequest MakeSubPut(const DataPathContext& ctx, std::span<const PutBlock> blocks,
                                  size_t b, size_t e, const HandoffTarget* target,
                                  SubRequest* sub) {
  transport::PutRequest req = ctx.Request();
  for (size_t i = b; i < e; ++i) {
    req.keys.push_back(BlockRef{blocks[i].hash, blocks[i].layer});
    sub->payload.push_back(transport::ConstBuffer{blocks[i].data, ctx.value_bytes});
  }
  ctx.Decorate(target, &req);
  sub->meta = transport::Encode(req);
  transport::CallRequest call = MakeCall(RpcOp::kPut, sub->meta, ctx.timeout);
  call.payload = sub->payload;
  return call;
}

// Finishes one request of a put covering blocks [b, e); the last one wakes
// the caller.
void FinishSubPut(MultiOp& op, size_t b, size_t e, transport::RpcReply& reply) {
  op.conn->Note(reply.status);
  StartNext(op);
  MutexLock lock(&op.mu);
  transport::KeyCodesResponse resp;
  Status s = reply.status.ok() ? transport::Decode(AsView(reply.meta), &resp)
                               : reply.status.WithContext("kvcake PUT");
  if (s.ok() && resp.codes.size() != e - b) s = InternalError("PUT: wrong number of codes");
  if (!s.ok()) {
    op.Fail(s);
  } else {
    std::copy(resp.codes.begin(), resp.codes.end(), op.codes.begin() + b);
  }
  if (--op.remaining == 0) {
    op.finished = true;
    op.cv.NotifyAll();
  }
}

}  // namespace

void StartGetOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                     std::shared_ptr<std::vector<GetBlock>> blocks,
                     std::function<void(Status, std::vector<bool>)> done) {
  const uint64_t size = ctx.value_bytes;
  auto op = std::make_shared<MultiOp>();
  op->conn = conn;
  op->done = std::move(done);
  op->checksum_failures = ctx.checksum_failures;
  auto chunks = Chunks(blocks->size(), size);
  {
    MutexLock lock(&op->mu);
    op->found.assign(blocks->size(), false);
    op->remaining = chunks.size();
  }
  if (chunks.empty()) {
    op->done(Status::Ok(), {});
    return;
  }
  for (auto [b, e] : chunks) {
    auto sub = std::make_shared<SubRequest>();
    transport::CallRequest call = MakeSubGet(ctx, *blocks, b, e, sub.get());
    // `op` owns the start closures, so they hold it weakly (no cycle).
    std::weak_ptr<MultiOp> weak = op;
    op->starts.push_back([weak, call, blocks, sub, b = b, e = e, size, async = ctx.async] {
      if (auto op = weak.lock()) SendSubGet(op, call, blocks, sub, b, e, size, *async);
    });
  }
  StartWindow(*op, ctx.max_inflight_requests);
}

Status GetOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                  std::span<const GetBlock> blocks, std::vector<bool>* found) {
  for (const GetBlock& b : blocks) {
    if (!b.data) return InvalidArgumentError("null buffer");
  }
  // What the completion hands the waiting caller. Thread-safe (mu).
  struct Wait {
    Mutex mu;
    CondVar cv;
    bool done GUARDED_BY(mu) = false;
    Status status GUARDED_BY(mu);
    std::vector<bool> found GUARDED_BY(mu);
  };
  auto w = std::make_shared<Wait>();
  StartGetOverUcx(ctx, conn, std::make_shared<std::vector<GetBlock>>(blocks.begin(), blocks.end()),
                  [w](Status s, std::vector<bool> f) {
                    MutexLock lock(&w->mu);
                    w->status = std::move(s);
                    w->found = std::move(f);
                    w->done = true;
                    w->cv.NotifyAll();
                  });
  MutexLock lock(&w->mu);
  if (!w->cv.WaitFor(&lock, ctx.timeout + std::chrono::seconds(10),
                     [&]() REQUIRES(w->mu) { return w->done; })) {
    return DeadlineExceededError("kvcake GET: no reply");
  }
  RETURN_IF_ERROR(w->status);
  *found = std::move(w->found);
  return Status::Ok();
}

Status PutOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                  std::span<const PutBlock> blocks, const HandoffTarget* target,
                  std::vector<Status>* codes) {
  for (const PutBlock& b : blocks) {
    if (!b.data) return InvalidArgumentError("null buffer");
  }
  auto op = std::make_shared<MultiOp>();
  op->conn = conn;
  auto chunks = Chunks(blocks.size(), ctx.value_bytes);
  {
    MutexLock lock(&op->mu);
    op->codes.assign(blocks.size(), static_cast<transport::KeyCode>(StatusCode::kUnknown));
    op->remaining = chunks.size();
  }
  for (auto [b, e] : chunks) {
    auto sub = std::make_shared<SubRequest>();
    transport::CallRequest call = MakeSubPut(ctx, blocks, b, e, target, sub.get());
    std::weak_ptr<MultiOp> weak = op;
    op->starts.push_back([weak, call, sub, b = b, e = e] {
      auto op = weak.lock();
      if (!op) return;
      op->conn->rpc->CallAsync(
          call, [op, sub, b, e](transport::RpcReply&& reply) { FinishSubPut(*op, b, e, reply); });
    });
  }
  StartWindow(*op, ctx.max_inflight_requests);
  MutexLock lock(&op->mu);
  // Every call has its own deadline, so this wait ends; the bound is a safety net.
  if (!op->cv.WaitFor(&lock, ctx.timeout + std::chrono::seconds(10),
                      [&]() REQUIRES(op->mu) { return op->finished; })) {
    return DeadlineExceededError("kvcake PUT: no reply");
  }
  RETURN_IF_ERROR(op->first);
  codes->clear();
  for (auto c : op->codes) codes->push_back(PutKeyStatus(c, "put refused by the daemon"));
  return Status::Ok();
}

}  // namespace kvcake::internal
