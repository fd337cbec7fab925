#pragma once

// The prefill to decode hand-offs a daemon receives (docs/cluster.md
// "Prefill to decode hand-off"), and the requests parked until one of them
// delivers what they ask for.
//
// A hand-off is announced by the prefill member's notice (sent when the
// prefill engine's first put naming it arrives there, before its values are
// committed) or by the first forwarded put that names it: from then on, a get of a block of that
// hand-off that is not stored yet is parked rather than answered with a miss,
// until the block arrives, the hand-off completes or goes stale, or the
// get's deadline passes. A hand-off can fail on the prefill side (its engine
// disconnected, its member died): waiters then get that failure at once.
// Parked requests run on the registry's own waiter
// thread, so no I/O thread is held while they wait.
//
// Thread-safety: thread-safe. Callbacks passed to Park run on the waiter
// thread (or in the destructor) without the registry's lock held.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/mutex.h"
#include "common/status.h"
#include "transport/messages.h"

namespace kvcake::daemon {

struct HandoffRegistryStats {
  uint64_t announced = 0;        // hand-offs this daemon started receiving
  uint64_t completed = 0;        // ... that delivered all their values
  uint64_t received_blocks = 0;  // values stored for hand-offs
  uint64_t parked = 0;           // requests that waited for a hand-off
  uint64_t parked_expired = 0;   // ... and whose deadline passed first
  uint64_t failed = 0;           // hand-offs failed on the prefill side, of which
  uint64_t aborted = 0;          // ... its engine disconnected or aborted (ABORTED)
  uint64_t unavailable = 0;      // ... its member left the cluster (UNAVAILABLE)
};

class HandoffRegistry {
 public:
  using Clock = std::chrono::steady_clock;

  // Remembers at most `max_handoffs` hand-offs (the oldest are forgotten); a
  // hand-off that received nothing for `stale_after` no longer makes gets
  // wait. Starts the waiter thread.
  explicit HandoffRegistry(size_t max_handoffs = 4096,
                           std::chrono::milliseconds stale_after = std::chrono::seconds(30));
  // Runs every parked callback with ready = false, then stops the thread.
  ~HandoffRegistry();
  HandoffRegistry(const HandoffRegistry&) = delete;
  HandoffRegistry& operator=(const HandoffRegistry&) = delete;

  // Values `keys` of hand-off `id` (namespace `ns_id`, `expected` values in
  // all) are on their way from member `source` ("" if unknown). The first
  // call announces the hand-off.
  void Announce(uint64_t id, uint64_t ns_id, uint32_t expected,
                std::span<const transport::BlockRef> keys, const std::string& source = "");
  // Hand-off `id` failed on the prefill side with `why` (not OK): WaitHandoff
  // and parked gets of it end with `why`. Remembered even if never announced;
  // no effect on a hand-off that completed.
  void Fail(uint64_t id, const Status& why) EXCLUDES(mu_);
  // Fails, with UNAVAILABLE, every hand-off in flight whose source member is
  // not in `live` (sorted node ids).
  void FailSourcesNotIn(std::span<const std::string> live) EXCLUDES(mu_);
  // The failure of a failed hand-off in `ns_id` that carries block `hash`.
  std::optional<Status> FailureOf(uint64_t ns_id, uint64_t hash) const;
  // `n` values of hand-off `id` were stored.
  void Arrived(uint64_t id, uint32_t n) EXCLUDES(mu_);
  // True if a hand-off in flight (announced, not complete, not stale) in
  // `ns_id` carries block `hash`.
  bool Expecting(uint64_t ns_id, uint64_t hash) const;
  // OK once hand-off `id` delivered every value, its failure once it failed;
  // nullopt while neither (or never announced).
  std::optional<Status> Outcome(uint64_t id) const;

  // Runs `run(true)` on the waiter thread as soon as `ready()` holds (checked
  // now and after every arrival), or `run(false)` at `deadline`. `ready` is
  // called without the registry's lock and must be cheap.
  void Park(Clock::time_point deadline, std::function<bool()> ready,
            std::function<void(bool ready)> run) EXCLUDES(mu_);

  HandoffRegistryStats stats() const;

 private:
  struct Handoff {
    uint64_t ns_id = 0;
    uint32_t expected = 0;
    uint32_t arrived = 0;
    Clock::time_point last;
    std::unordered_set<uint64_t> hashes;
    std::string source;
    Status failure;  // not OK once failed
  };
  struct Parked {
    Clock::time_point deadline;
    std::function<bool()> ready;
    std::function<void(bool)> run;
  };
  bool InFlightLocked(const Handoff& h, Clock::time_point now) const REQUIRES(mu_);
  // The entry of `id`, created (and the oldest forgotten) if new.
  Handoff& EntryLocked(uint64_t id, bool* inserted) REQUIRES(mu_);
  void FailLocked(Handoff& h, const Status& why) REQUIRES(mu_);
  void WaiterLoop() EXCLUDES(mu_);

  const size_t max_handoffs_;
  const std::chrono::milliseconds stale_after_;

  mutable Mutex mu_;
  CondVar cv_;
  std::unordered_map<uint64_t, Handoff> handoffs_ GUARDED_BY(mu_);
  std::deque<uint64_t> order_ GUARDED_BY(mu_);
  std::list<Parked> parked_ GUARDED_BY(mu_);
  uint64_t generation_ GUARDED_BY(mu_) = 0;  // arrivals + parks
  bool stop_ GUARDED_BY(mu_) = false;
  HandoffRegistryStats stats_ GUARDED_BY(mu_);
  std::thread waiter_;
};

}  // namespace kvcake::daemon
