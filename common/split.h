#pragma once

// Splitting flag values such as "a,b,c".
//
// Thread-safety: a pure function.

#include <string>
#include <string_view>
#include <vector>

namespace kvcake {

// The `sep`-separated items of `text`, empty items dropped ("a,,b," -> a, b).
std::vector<std::string> SplitNonEmpty(std::string_view text, char sep);

}  // namespace kvcake
