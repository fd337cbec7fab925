#pragma once

// EtcdClient: the small part of etcd v3 that cluster membership needs (puts
// bound to leases, ranges, a conditional create, leases), behind an interface
// so that a gRPC client can replace the JSON-gateway one later.
//
// Watching: there is no Watch here. Membership polls RangePrefix every TTL/3
// instead of holding a /v3/watch stream. A poll needs no stream state (no
// resumption after a disconnect, no compaction handling, no half-dead
// connection to detect: every poll is a fresh request with a deadline), it
// notices etcd going away at the same cadence as the keep-alives, and for a
// cluster of tens of members one prefix range per member every ~1.7 s is
// negligible load for etcd. A streaming Watch can be added to this interface
// when a client that speaks gRPC streams natively implements it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace kvcake::cluster {

// One key as etcd stores it. Plain value type.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0: not bound to a lease
};

// The answer of a range: the keys (ascending by key) and the store revision
// at which they were read. Plain value type.
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// Client of one etcd cluster. Every call is bounded by the client's request
// deadline. Errors: UNAVAILABLE when no endpoint answered in time (the
// message names the endpoints tried); other codes are etcd's own answer
// (etcd's gRPC codes map one to one onto StatusCode). Implementations are
// thread-safe: calls may be made concurrently from several threads.
class EtcdClient {
 public:
  virtual ~EtcdClient() = default;

  // Sets `key` to `value`, bound to `lease_id` (0: no lease).
  virtual Status Put(std::string_view key, std::string_view value, int64_t lease_id) = 0;

  // Creates `key` = `value` (bound to `lease_id`, 0: none) only if the key
  // does not exist, atomically (a txn on create_revision == 0). Returns true
  // if it was created; false if the key exists, and then `*existing` (if not
  // null) receives the key as it is.
  virtual Result<bool> PutIfAbsent(std::string_view key, std::string_view value, int64_t lease_id,
                                   KeyValue* existing) = 0;

  // The key `key` (kvs empty if it does not exist).
  virtual Result<RangeResult> Range(std::string_view key) = 0;

  // Every key starting with `prefix` (non-empty).
  virtual Result<RangeResult> RangePrefix(std::string_view prefix) = 0;

  // Deletes `key`; returns how many keys were deleted (0 or 1).
  virtual Result<int64_t> Delete(std::string_view key) = 0;

  // Grants a lease of `ttl_s` seconds (etcd may round it up to its minimum);
  // returns its id.
  virtual Result<int64_t> LeaseGrant(int64_t ttl_s) = 0;

  // Renews `lease_id` once; returns the TTL it has again, in seconds.
  // NOT_FOUND if the lease expired or was revoked (its keys are gone).
  virtual Result<int64_t> LeaseKeepAliveOnce(int64_t lease_id) = 0;

  // Revokes `lease_id`, deleting every key bound to it. NOT_FOUND if there
  // is no such lease.
  virtual Status LeaseRevoke(int64_t lease_id) = 0;
};

// Options of GatewayEtcdClient.
struct GatewayEtcdClientOptions {
  // "http://HOST:PORT" of the etcd members (IPv6 hosts bracketed). A call
  // goes to the endpoint that answered last and moves on to the next one
  // when it cannot connect, the connection breaks, or etcd answers
  // UNAVAILABLE. https is not supported.
  std::vector<std::string> endpoints;
  // Deadline of one call, over all the endpoints it tries.
  uint32_t request_timeout_ms = 1'000;
  // Largest response body accepted.
  uint64_t max_response_bytes = 16 << 20;
};

// EtcdClient over etcd v3's JSON gRPC gateway (POST /v3/...; keys and values
// base64, int64 fields as JSON strings), speaking HTTP/1.1 with Boost.Beast.
// Each call opens its own connection with its own io_context on the caller's
// thread and closes it afterwards: no connection state is shared, so calls
// are independent and thread-safe (the only shared state is the index of the
// endpoint that answered last, an atomic).
class GatewayEtcdClient : public EtcdClient {
 public:
  // INVALID_ARGUMENT: no endpoints, an endpoint that is not http://HOST:PORT,
  // a zero timeout. Does not contact etcd.
  static Result<std::unique_ptr<GatewayEtcdClient>> Create(GatewayEtcdClientOptions options);

  Status Put(std::string_view key, std::string_view value, int64_t lease_id) override;
  Result<bool> PutIfAbsent(std::string_view key, std::string_view value, int64_t lease_id,
                           KeyValue* existing) override;
  Result<RangeResult> Range(std::string_view key) override;
  Result<RangeResult> RangePrefix(std::string_view prefix) override;
  Result<int64_t> Delete(std::string_view key) override;
  Result<int64_t> LeaseGrant(int64_t ttl_s) override;
  Result<int64_t> LeaseKeepAliveOnce(int64_t lease_id) override;
  Status LeaseRevoke(int64_t lease_id) override;

  // Endpoint as given, host and port.
  struct Endpoint {
    std::string url;
    std::string host;
    std::string port;
  };

 private:
  GatewayEtcdClient(GatewayEtcdClientOptions options, std::vector<Endpoint> endpoints);

  // POSTs `body` to `path` and returns the response body of a 200 answer.
  // Non-200 answers become the Status etcd reports.
  Result<std::string> Call(std::string_view path, const std::string& body);

  GatewayEtcdClientOptions options_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> preferred_{0};
};

// The key just after every key starting with `prefix` (etcd's range_end of
// a prefix range): the prefix with its last byte below 0xff incremented and
// the bytes after it dropped; "\0" if every byte is 0xff.
std::string PrefixRangeEnd(std::string_view prefix);

// Standard base64 with padding (the gateway's encoding of bytes fields).
std::string Base64Encode(std::string_view bytes);
// INVALID_ARGUMENT on a character outside the alphabet or a bad length.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace kvcake::cluster
