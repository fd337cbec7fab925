// kvcakectl: the operator CLI over kvcaked's admin HTTP API.
// See `kvcakectl help` and docs/operations.md.

#include <gflags/gflags.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/kvcakectl/commands.h"
#include "client/kvcakectl/http_client.h"
#include "common/flag_help.h"

DEFINE_string(admin, "", "admin API HOST:PORT (default: $KVCAKE_ADMIN, else 127.0.0.1:18516)");
DEFINE_string(token_file, "",
              "file holding the admin bearer token (default: "
              "$KVCAKE_ADMIN_TOKEN_FILE)");
DEFINE_bool(json, false, "print JSON (the API's answers) instead of tables");
DEFINE_uint32(timeout_ms, 10000, "per-request timeout");
DEFINE_string(ns, "", "namespace name or 0x<id> (ls, evict, pin, unpin)");
DEFINE_string(hash, "", "block hash, hex (ls, evict, pin, unpin)");
DEFINE_string(layer, "", "layer (ls, evict, pin, unpin)");
DEFINE_string(tier, "", "tier: gpu|host|ssd (ls, evict, pin, unpin)");
DEFINE_uint32(limit, 100, "ls: maximum blocks listed (1..10000)");
DEFINE_string(tokens, "", "lookup: the prompt's token ids, comma-separated");
DEFINE_string(hashes, "", "lookup: block hashes (hex), comma-separated");
DEFINE_bool(wait, true, "drain: wait and show progress (--nowait: start and return)");
DEFINE_uint32(interval_ms, 1000, "top / drain: refresh interval");
DEFINE_int32(iterations, 0, "top: number of refreshes (0: until interrupted)");

namespace {

// "host:port", "[v6]:port" or "host" (default port).
bool SplitAdmin(const std::string& text, std::string* host, uint16_t* port) {
  std::string h = text, p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return false;
    h = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      p = text.substr(close + 2);
    }
  } else if (size_t colon = text.rfind(':'); colon != std::string::npos) {
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (p.empty()) return false;
  }
  if (h.empty()) return false;
  *host = h;
  if (!p.empty()) {
    char* end = nullptr;
    unsigned long v = std::strtoul(p.c_str(), &end, 10);
    if (*end != '\0' || v == 0 || v > 65535) return false;
    *port = static_cast<uint16_t>(v);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  kvcake::HandleHelpFlag(
      argc, argv, kvcake::ctl::Usage().c_str(), "kvcakectl/main.cc",
      {{"Connection", {"admin", "token_file", "timeout_ms", "json"}},
       {"Block filters (ls, evict, pin, unpin)", {"ns", "hash", "layer", "tier", "limit"}},
       {"lookup", {"tokens", "hashes"}},
       {"drain and top", {"wait", "interval_ms", "iterations"}},
       {"Other", {""}}});
  gflags::SetUsageMessage(kvcake::ctl::Usage());
  gflags::SetVersionString("0.1.0");
  gflags::ParseCommandLineFlags(&argc, &argv, /*remove_flags=*/true);
  std::vector<std::string> args(argv + 1, argv + argc);

  kvcake::ctl::CtlOptions o;
  std::string admin = FLAGS_admin;
  if (admin.empty() && std::getenv("KVCAKE_ADMIN") != nullptr) admin = std::getenv("KVCAKE_ADMIN");
  o.http.host = "127.0.0.1";
  o.http.port = 18516;
  if (!admin.empty() && !SplitAdmin(admin, &o.http.host, &o.http.port)) {
    std::cerr << "kvcakectl: bad --admin '" << admin << "' (want HOST:PORT)\n";
    return kvcake::ctl::kExitUsage;
  }
  std::string token_file = FLAGS_token_file;
  if (token_file.empty() && std::getenv("KVCAKE_ADMIN_TOKEN_FILE") != nullptr) {
    token_file = std::getenv("KVCAKE_ADMIN_TOKEN_FILE");
  }
  if (!token_file.empty()) {
    // Same reading rule as the daemon: first line, whitespace trimmed.
    FILE* f = std::fopen(token_file.c_str(), "r");
    if (f == nullptr) {
      std::cerr << "kvcakectl: cannot read token file " << token_file << "\n";
      return kvcake::ctl::kExitAuth;
    }
    char buf[4096];
    std::string line = std::fgets(buf, sizeof(buf), f) != nullptr ? buf : "";
    std::fclose(f);
    size_t b = line.find_first_not_of(" \t\r\n"), e = line.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) {
      std::cerr << "kvcakectl: token file " << token_file << " is empty\n";
      return kvcake::ctl::kExitAuth;
    }
    o.http.token = line.substr(b, e - b + 1);
  }
  o.http.timeout_ms = FLAGS_timeout_ms;
  o.json = FLAGS_json;
  o.ns = FLAGS_ns;
  o.hash = FLAGS_hash;
  o.layer = FLAGS_layer;
  o.tier = FLAGS_tier;
  o.limit = FLAGS_limit;
  o.tokens = FLAGS_tokens;
  o.hashes = FLAGS_hashes;
  o.wait = FLAGS_wait;
  o.interval_ms = FLAGS_interval_ms == 0 ? 1 : FLAGS_interval_ms;
  o.iterations = FLAGS_iterations;
  o.tty = isatty(STDOUT_FILENO) != 0;
  if (kvcake::Status s = o.http.Validate(); !s.ok()) {
    std::cerr << "kvcakectl: " << s.message() << "\n";
    return kvcake::ctl::kExitUsage;
  }
  return kvcake::ctl::RunCommand(o, args, std::cout, std::cerr);
}
