#include "daemon/access_control.h"

#include <set>

#include "common/token_equals.h"

namespace kvcake::daemon {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool TokenGrant::Covers(std::string_view name) const {
  for (const std::string& p : namespaces) {
    if (!p.empty() && p.back() == '*') {
      if (name.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1)) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

Result<std::vector<TokenGrant>> ParseTokenGrants(std::string_view text) {
  std::vector<TokenGrant> out;
  std::set<std::string> seen;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "token file line " + std::to_string(line_no);
    TokenGrant g;
    const size_t sp = line.find_first_of(" \t");
    g.token = std::string(line.substr(0, sp));
    std::string_view rest = sp == std::string_view::npos ? "" : Trim(line.substr(sp));
    if (!seen.insert(g.token).second) return InvalidArgumentError(where + ": token listed twice");
    if (rest.empty()) rest = "*";
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view p = Trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      if (p.empty()) continue;
      if (p.find('*') != std::string_view::npos && p.find('*') != p.size() - 1) {
        return InvalidArgumentError(where + ": '*' may only end a namespace pattern");
      }
      g.namespaces.emplace_back(p);
    }
    out.push_back(std::move(g));
  }
  if (out.empty()) return InvalidArgumentError("token file holds no token");
  return out;
}

AccessControl::AccessControl(std::vector<TokenGrant> grants) : grants_(std::move(grants)) {}

Status AccessControl::Authorize(std::string_view token, std::string_view name) const {
  if (grants_.empty()) return Status::Ok();
  if (token.empty()) return UnauthenticatedError("this daemon requires a token");
  // Every grant is compared, so the time taken does not tell which matched.
  bool known = false;
  bool covers = false;
  for (const TokenGrant& g : grants_) {
    if (TokenEquals(token, g.token)) {
      known = true;
      covers = covers || g.Covers(name);
    }
  }
  if (!known) return PermissionDeniedError("bad token");
  if (!covers) {
    return PermissionDeniedError("the token does not grant namespace '" + std::string(name) + "'");
  }
  return Status::Ok();
}

void AccessControl::Grant(uint64_t connection, uint64_t ns_id) {
  MutexLock lock(&mu_);
  opened_[connection].insert(ns_id);
}

bool AccessControl::Granted(uint64_t connection, uint64_t ns_id) const {
  MutexLock lock(&mu_);
  auto it = opened_.find(connection);
  return it != opened_.end() && it->second.contains(ns_id);
}

void AccessControl::Forget(uint64_t connection) {
  MutexLock lock(&mu_);
  opened_.erase(connection);
}

size_t AccessControl::connections() const {
  MutexLock lock(&mu_);
  return opened_.size();
}

}  // namespace kvcake::daemon
