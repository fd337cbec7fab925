#pragma once

// The UCX data path: puts and gets whose values travel as active-message
// payloads straight from/into the caller's buffers (values under 64 KiB are
// grouped into one request and staged), several requests in flight per call
// (ClientOptions::max_inflight_requests).

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "client/src/connection.h"
#include "client/src/data_path.h"
#include "kvcake/client.h"

namespace kvcake::internal {

// Starts a get of `blocks` over `conn`; `done` runs once, on an I/O thread,
// when every request has finished: OK with each value's found flag, or the
// first error. Requests not yet sent when the client starts closing complete
// with CANCELLED. The buffers must stay valid until then.
void StartGetOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                     std::shared_ptr<std::vector<GetBlock>> blocks,
                     std::function<void(Status, std::vector<bool>)> done);

// StartGetOverUcx and wait (bounded by the client timeout + 10 s).
Status GetOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                  std::span<const GetBlock> blocks, std::vector<bool>* found);

// Stores `blocks` over `conn` (as a hand-off put to `target` if not null):
// the request's status, and in `codes` each value's (ALREADY_EXISTS is OK).
Status PutOverUcx(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                  std::span<const PutBlock> blocks, const HandoffTarget* target,
                  std::vector<Status>* codes);

}  // namespace kvcake::internal
