#pragma once

// The same-node data path: when the daemon runs on this machine and exposes
// its host segment, the client maps it (Connection::segment) and copies
// values in and out itself; the daemon only reserves, commits, pins and
// releases slots. Blocks the daemon holds outside the host segment (the GPU
// tier) are copied from its mapped arena or fetched over UCX.

#include <memory>
#include <span>
#include <vector>

#include "client/src/connection.h"
#include "client/src/data_path.h"
#include "kvcake/client.h"

namespace kvcake::internal {

// Reserves slots for `blocks`, copies the values into them (hashing as it
// copies) and commits them (as a hand-off put to `target` if not null): the
// request's status, and in `codes` each value's (ALREADY_EXISTS is OK).
Status PutMapped(const DataPathContext& ctx, Connection& conn, std::span<const PutBlock> blocks,
                 const HandoffTarget* target, std::vector<Status>* codes);

// Pins `blocks` and copies them out of the mapped segments (verifying each
// value's checksum when ctx asks for it); the rest of what the daemon holds
// comes over UCX. (*found)[i] tells whether value i was read.
Status GetMapped(const DataPathContext& ctx, const std::shared_ptr<Connection>& conn,
                 std::span<const GetBlock> blocks, std::vector<bool>* found);

}  // namespace kvcake::internal
