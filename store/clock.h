#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kvcake::store {

// Source of wall time for leases (microseconds, monotonic). Injectable so
// tests can expire leases without sleeping. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t NowMicros() const = 0;
};

// std::chrono::steady_clock. Thread-safe.
class SteadyClock final : public Clock {
 public:
  uint64_t NowMicros() const override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
};

// A clock that only moves when told to (tests). Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t start_us = 1'000'000) : now_(start_us) {}
  uint64_t NowMicros() const override { return now_.load(std::memory_order_acquire); }
  void Advance(uint64_t us) { now_.fetch_add(us, std::memory_order_acq_rel); }

 private:
  std::atomic<uint64_t> now_;
};

}  // namespace kvcake::store
