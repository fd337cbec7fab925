#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "client/kvcakectl/http_client.h"
#include "common/status.h"

namespace kvcake::ctl {

// Exit codes of kvcakectl (documented in docs/operations.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad command line
  kExitUnavailable = 2,  // daemon not reachable / timed out
  kExitAuth = 3,         // 401: missing or wrong token
  kExitApiError = 4,     // any other error answer (4xx/5xx)
};

// Everything a command needs besides its positional arguments; main() fills
// it from flags and the environment. Plain value type.
struct CtlOptions {
  HttpClientOptions http;
  bool json = false;  // print the API's JSON instead of tables
  // Block filter flags (ls, evict, pin, unpin): empty = unset.
  std::string ns, hash, layer, tier;
  uint32_t limit = 100;
  // lookup: the prompt's tokens or its block hashes, comma-separated.
  std::string tokens, hashes;
  // drain: wait with a progress bar until done.
  bool wait = true;
  // top / drain polling.
  uint32_t interval_ms = 1000;
  int iterations = 0;  // top: 0 = until interrupted
  bool tty = false;    // stdout is a terminal (top clears the screen)
};

// Runs one kvcakectl command (`args[0]` is the command name) and returns the
// process exit code. Output goes to `out`, diagnostics to `err`. Never throws.
int RunCommand(const CtlOptions& options, const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// The usage text.
std::string Usage();

// Formats bytes for humans: "512 B", "1.5 KiB", "2.0 GiB".
std::string HumanBytes(double bytes);

// Renders rows as an aligned text table (first row = header). Numeric-looking
// cells are right-aligned.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace kvcake::ctl
