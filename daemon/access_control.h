#pragma once

// Who may use which namespace (docs/security.md).
//
// A daemon is configured with token grants: each token opens a set of
// namespaces, named exactly or by a prefix ending in '*' ("*" opens all).
// A connection authenticates per namespace: RegisterNamespace presents a
// token, and on success the namespace is granted to that connection. Every
// keyed operation (lookup, get, put, delete, stats, same-node reserve / pin /
// commit / release) is checked against the connection's grants. Grants end
// with the connection. With no token configured the daemon is open: any
// connection may open any namespace, but still only uses what it opened.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "common/result.h"
#include "common/status.h"

namespace kvcake::daemon {

// One token and the namespaces it opens.
struct TokenGrant {
  std::string token;
  // Exact names, or prefixes ending in '*'; "*" is every namespace.
  std::vector<std::string> namespaces;

  // True if this grant opens namespace `name`.
  bool Covers(std::string_view name) const;
};

// Parses a token file: one grant per line, `TOKEN [NAMESPACE[,NAMESPACE...]]`,
// blank lines and lines starting with '#' ignored. A line with a token only
// opens every namespace (a single-token file is the daemon-wide token).
// INVALID_ARGUMENT on a file without a token, a bad pattern ('*' other than
// last) or a token listed twice.
Result<std::vector<TokenGrant>> ParseTokenGrants(std::string_view text);

// The grants of a daemon and of its live connections.
//
// Thread-safety: thread-safe (one internal mutex; nothing is called under it).
class AccessControl {
 public:
  explicit AccessControl(std::vector<TokenGrant> grants);

  // True when no token is configured (every namespace may be opened).
  bool open() const { return grants_.empty(); }

  // Whether `token` opens namespace `name`: OK; UNAUTHENTICATED when a token
  // is required and none was given; PERMISSION_DENIED for an unknown token or
  // one that does not cover `name`. Compares tokens in constant time.
  Status Authorize(std::string_view token, std::string_view name) const;

  // Records that `connection` opened namespace `ns_id`.
  void Grant(uint64_t connection, uint64_t ns_id);
  // True if `connection` opened `ns_id`.
  bool Granted(uint64_t connection, uint64_t ns_id) const;
  // Drops every grant of `connection` (it closed).
  void Forget(uint64_t connection);
  // Connections holding at least one grant.
  size_t connections() const;

 private:
  const std::vector<TokenGrant> grants_;
  mutable Mutex mu_;
  std::unordered_map<uint64_t, std::unordered_set<uint64_t>> opened_ GUARDED_BY(mu_);
};

}  // namespace kvcake::daemon
