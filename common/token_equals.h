#pragma once

// Secret comparison that does not leak where two strings differ.
//
// Thread-safety: a pure function.

#include <string_view>

namespace kvcake {

// True iff `a == b`. For equal lengths the time does not depend on the
// contents, so a token cannot be guessed byte by byte from response times.
bool TokenEquals(std::string_view a, std::string_view b);

}  // namespace kvcake
