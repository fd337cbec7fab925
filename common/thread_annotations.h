// Clang thread-safety analysis attributes (no-ops on other compilers).
//
// Annotate every member a mutex protects with GUARDED_BY(mu_), every private
// function that expects the lock held with REQUIRES(mu_), and public entry
// points that take the lock with EXCLUDES(mu_). The clang build with
// -Wthread-safety (KVCAKE_THREAD_SAFETY=ON) then proves the discipline instead
// of trusting a naming convention. Use kvcake::Mutex (common/mutex.h): the
// standard library's mutexes carry no capability attributes in libstdc++.

#ifndef KVCAKE_COMMON_THREAD_ANNOTATIONS_H_
#define KVCAKE_COMMON_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define KVCAKE_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define KVCAKE_THREAD_ANNOTATION_(x)
#endif

#define CAPABILITY(x) KVCAKE_THREAD_ANNOTATION_(capability(x))
#define SCOPED_CAPABILITY KVCAKE_THREAD_ANNOTATION_(scoped_lockable)
#define GUARDED_BY(x) KVCAKE_THREAD_ANNOTATION_(guarded_by(x))
#define PT_GUARDED_BY(x) KVCAKE_THREAD_ANNOTATION_(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) KVCAKE_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) KVCAKE_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#define REQUIRES(...) KVCAKE_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) KVCAKE_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) KVCAKE_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) KVCAKE_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) KVCAKE_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) KVCAKE_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) KVCAKE_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) KVCAKE_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) KVCAKE_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) KVCAKE_THREAD_ANNOTATION_(assert_capability(x))
#define RETURN_CAPABILITY(x) KVCAKE_THREAD_ANNOTATION_(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS KVCAKE_THREAD_ANNOTATION_(no_thread_safety_analysis)

#endif  // KVCAKE_COMMON_THREAD_ANNOTATIONS_H_
