// Annotated mutex, shared mutex, scoped locks and condition variable.
//
// Thin wrappers over the standard primitives that carry clang's capability
// attributes, so -Wthread-safety can check GUARDED_BY/REQUIRES annotations.
// They add no state and no cost. All types are thread-safe by definition;
// none is copyable or movable.
//
//   class Queue {
//    public:
//     void Push(int v) EXCLUDES(mu_) {
//       MutexLock lock(&mu_);
//       items_.push_back(v);
//       cv_.NotifyOne();
//     }
//     int Pop() EXCLUDES(mu_) {
//       MutexLock lock(&mu_);
//       cv_.Wait(&lock, [&]() REQUIRES(mu_) { return !items_.empty(); });
//       ...
//     }
//    private:
//     Mutex mu_;
//     CondVar cv_;
//     std::deque<int> items_ GUARDED_BY(mu_);
//   };

#ifndef KVCAKE_COMMON_MUTEX_H_
#define KVCAKE_COMMON_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "common/thread_annotations.h"

namespace kvcake {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the lock is held where it cannot see it (callbacks).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

  // BasicLockable, for std::scoped_lock and friends where annotations are
  // not needed (prefer MutexLock).
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
};

// Holds a Mutex for its scope. Unlock()/Lock() allow a temporary release
// (for example around a slow call) inside the scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : lock_(mu->native()) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// Condition variable for Mutex. Waits take the MutexLock that holds the
// mutex; the analysis treats the mutex as held throughout, which matches the
// caller's view (it is re-acquired before Wait returns).
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(MutexLock* lock) { cv_.wait(lock->native()); }
  template <typename Pred>
  void Wait(MutexLock* lock, Pred pred) {
    cv_.wait(lock->native(), pred);
  }
  // Returns false on timeout.
  template <typename Rep, typename Period>
  bool WaitFor(MutexLock* lock, std::chrono::duration<Rep, Period> d) {
    return cv_.wait_for(lock->native(), d) == std::cv_status::no_timeout;
  }
  // Returns pred() at the end of the wait.
  template <typename Rep, typename Period, typename Pred>
  bool WaitFor(MutexLock* lock, std::chrono::duration<Rep, Period> d, Pred pred) {
    return cv_.wait_for(lock->native(), d, pred);
  }
  template <typename Clock, typename Duration, typename Pred>
  bool WaitUntil(MutexLock* lock, std::chrono::time_point<Clock, Duration> t, Pred pred) {
    return cv_.wait_until(lock->native(), t, pred);
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace kvcake

#endif  // KVCAKE_COMMON_MUTEX_H_
