#pragma once
// Relaxed atomic counters shaped like a plain statistics struct.

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace kvcake::transport {

// One atomic counter per member of `Stats`, a struct of uint64_t members
// only (RpcClientStats, RpcServerStats). Hot paths bump a member by pointer
// (relaxed: counters order nothing); stats() reads them into a `Stats`.
//
//   StatCounters<RpcClientStats> c;
//   c.Add(&RpcClientStats::calls);
//   RpcClientStats s = c.Snapshot();
//
// Thread-safety: all methods are thread-safe; a snapshot is not atomic as a
// whole (each member is read on its own).
template <typename Stats>
class StatCounters {
 public:
  static_assert(std::is_trivially_copyable_v<Stats> && sizeof(Stats) % sizeof(uint64_t) == 0,
                "Stats must hold uint64_t members only");
  static constexpr size_t kCount = sizeof(Stats) / sizeof(uint64_t);

  void Add(uint64_t Stats::*field, uint64_t n = 1) {
    counters_[Index(field)].fetch_add(n, std::memory_order_relaxed);
  }
  void Sub(uint64_t Stats::*field, uint64_t n = 1) {
    counters_[Index(field)].fetch_sub(n, std::memory_order_relaxed);
  }
  Stats Snapshot() const {
    std::array<uint64_t, kCount> values;
    for (size_t i = 0; i < kCount; ++i) values[i] = counters_[i].load();
    return std::bit_cast<Stats>(values);
  }

 private:
  static size_t Index(uint64_t Stats::*field) {
    static const Stats probe{};
    return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*field)) -
                               reinterpret_cast<const char*>(&probe)) /
           sizeof(uint64_t);
  }

  std::array<std::atomic<uint64_t>, kCount> counters_{};
};

}  // namespace kvcake::transport
