#include "common/split.h"

#include <algorithm>

namespace kvcake {

std::vector<std::string> SplitNonEmpty(std::string_view text, char sep) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const size_t end = std::min(text.find(sep), text.size());
    if (end > 0) items.emplace_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return items;
}

}  // namespace kvcake
