#pragma once

// Small timing helpers shared by the benchmarks (header-only).

#include <algorithm>
#include <chrono>
#include <vector>

namespace kvcake::bench {

// `d` in seconds.
inline double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The median of `v` (the upper one of an even count); 0 when empty.
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace kvcake::bench
