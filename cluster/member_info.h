#pragma once

// MemberInfo: what a kvcaked publishes about itself in etcd (the value of its
// membership key), and its JSON form.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kvcake::cluster {

// One cluster member. Plain value type.
struct MemberInfo {
  // Published in etcd (the JSON value of the member's key):
  std::string node_id;            // unique in the cluster
  std::string advertise_address;  // HOST:PORT of the data (UCX) listener
  std::string admin_address;      // HOST:PORT of the admin HTTP API ("" if none)
  std::string version;            // kvcaked version
  int64_t start_time_unix_ms = 0;
  uint64_t host_capacity_bytes = 0;
  uint64_t ssd_capacity_bytes = 0;
  uint64_t gpu_capacity_bytes = 0;

  // Local observations of Membership, not published:
  // When this member's key was last read from etcd (Unix ms; for the local
  // member, also when its own lease was last renewed).
  int64_t last_seen_unix_ms = 0;
  // True while etcd is unreachable: the entry is the last known state.
  bool stale = false;

  // Equality of the published fields (ignores last_seen_unix_ms and stale).
  bool SamePublished(const MemberInfo& other) const;
};

// The published fields as a JSON object:
// {"node_id":"n1","advertise_address":"10.0.0.1:18515","admin_address":
//  "10.0.0.1:18516","version":"0.1.0","start_time_unix_ms":1700000000000,
//  "host_capacity_bytes":..,"ssd_capacity_bytes":..,"gpu_capacity_bytes":..}
std::string MemberInfoToJson(const MemberInfo& info);

// Parses MemberInfoToJson's output. Unknown fields are ignored (newer
// members may add some); missing ones keep their defaults. INVALID_ARGUMENT
// if `text` is not a JSON object, a field has the wrong type, or node_id is
// missing.
Result<MemberInfo> MemberInfoFromJson(std::string_view text);

}  // namespace kvcake::cluster
