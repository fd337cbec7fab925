#pragma once

// Parsing of the comma-separated list flags of the test tools (header-only).

#include <sstream>
#include <string>
#include <vector>

namespace kvcake::testing {

// The non-empty items of comma-separated `s` ("a,,b" -> {"a", "b"}).
inline std::vector<std::string> SplitCommaList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace kvcake::testing
