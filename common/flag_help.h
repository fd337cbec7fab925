#pragma once

// --help for kvcake's command-line tools: the tool's own flags, grouped,
// without gflags' internal flags, and exit status 0. Header-only so that
// kvcake_common does not depend on gflags; include it only from a program's
// main file (which links gflags).
//
// Thread-safety: call from main() before other threads start.

#include <gflags/gflags.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace kvcake {

// A heading and the flag-name prefixes it collects ("" matches any flag not
// taken by an earlier group).
struct FlagGroup {
  const char* title;
  std::vector<const char*> prefixes;
};

// If argv holds --help, -help, -h, --helpshort or --helpfull, prints `usage`
// and every flag defined in a file whose path contains `source` (the
// program's main file), grouped by `groups` in order, then exits 0.
inline void HandleHelpFlag(int argc, char** argv, const char* usage, const char* source,
                           const std::vector<FlagGroup>& groups) {
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    for (const char* h : {"--help", "-help", "-h", "--helpshort", "--helpfull"}) {
      help = help || std::strcmp(a, h) == 0;
    }
  }
  if (!help) return;
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  std::vector<bool> shown(flags.size(), false);
  std::printf("%s\n", usage);
  for (const FlagGroup& g : groups) {
    bool heading = false;
    for (size_t i = 0; i < flags.size(); ++i) {
      const gflags::CommandLineFlagInfo& f = flags[i];
      if (shown[i] || f.filename.find(source) == std::string::npos) continue;
      bool match = false;
      for (const char* p : g.prefixes) match = match || f.name.rfind(p, 0) == 0;
      if (!match) continue;
      if (!heading) {
        std::printf("\n%s:\n", g.title);
        heading = true;
      }
      shown[i] = true;
      std::printf("  --%s (%s, default %s)\n      %s\n", f.name.c_str(), f.type.c_str(),
                  f.default_value.empty() ? "\"\"" : f.default_value.c_str(),
                  f.description.c_str());
    }
  }
  std::printf("\nAlso: --flagfile=FILE reads flags from FILE, one per line.\n");
  std::exit(0);
}

}  // namespace kvcake
