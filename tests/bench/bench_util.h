#pragma once

// Small timing helpers shared by the benchmarks (header-only).

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
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

// CPU seconds (user + system) the live threads of process `pid` have run
// so far (`pid` 0: this process), from each thread's /proc schedstat (in
// nanoseconds; the 10 ms ticks of /proc/PID/stat are too coarse for one
// get). 0 when /proc cannot tell.
inline double ProcessCpuSeconds(pid_t pid) {
  namespace fs = std::filesystem;
  const std::string tasks =
      "/proc/" + (pid == 0 ? std::string("self") : std::to_string(pid)) + "/task";
  std::error_code ec;
  double ns = 0;
  for (const fs::directory_entry& t : fs::directory_iterator(tasks, ec)) {
    std::ifstream f(t.path() / "schedstat");
    double run_ns = 0;
    if (f >> run_ns) ns += run_ns;
  }
  return ns / 1e9;
}

// ProcessCpuSeconds of each of `pids`, in order.
inline std::vector<double> ProcessesCpuSeconds(const std::vector<pid_t>& pids) {
  std::vector<double> v;
  for (pid_t p : pids) v.push_back(ProcessCpuSeconds(p));
  return v;
}

// The sum of `v`.
inline double Sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

}  // namespace kvcake::bench
