#pragma once

// Prometheus-style metrics registry (docs/design.md §6): counters, gauges and
// histograms, each a family with a fixed list of label names, rendered in the
// Prometheus text exposition format 0.0.4 by Registry::Expose().
//
// Hot path: look a child up once (Family::WithLabels takes a mutex) and keep
// the returned pointer; Counter::Increment / Gauge::Set / Histogram::Observe
// are a few relaxed atomic operations and never lock or allocate. Children
// and families live as long as their Registry.
//
//   auto& gets = metrics::Registry::Default().AddCounter(
//       "kvcake_requests_total", "Requests handled, by operation.", {"op"});
//   metrics::Counter* get_ops = gets.WithLabels({"get"});   // once
//   get_ops->Increment();                                    // per request
//
// Naming (Prometheus conventions): counters end in `_total`; sizes in
// `_bytes`; durations are histograms in `_seconds`. Names and label names are
// checked at registration; a bad name or a re-registration with another type
// or other label names is a programming error and aborts (KVCAKE_LOG(FATAL)).

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace kvcake::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view MetricTypeName(MetricType type);  // "counter", "gauge", "histogram"

// OK if `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; INVALID_ARGUMENT otherwise.
Status ValidateMetricName(std::string_view name);
// OK if `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__"
// (reserved) and is not "le" (reserved for histograms).
Status ValidateLabelName(std::string_view name);
// Escapes a label value for the exposition format (\\, \", \n).
std::string EscapeLabelValue(std::string_view value);

// A monotonically increasing count. Thread-safe, lock-free.
class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }
  // Mirrors a monotonic count kept elsewhere (e.g. a component's stats
  // snapshot, copied in a collect hook). The source must never decrease;
  // don't mix with Increment on the same child.
  void Set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Thread-safe, lock-free.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Sub(double v) { value_.fetch_add(-v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Default latency buckets (seconds): 10 µs .. 10 s, roughly x2.5 steps.
const std::vector<double>& DefaultLatencyBuckets();

// A distribution over fixed, increasing upper bounds (plus +Inf). Thread-safe,
// lock-free: Observe is a bucket search plus three relaxed atomic adds.
class Histogram {
 public:
  // `bounds` must be strictly increasing and finite (checked by the family).
  explicit Histogram(std::vector<double> bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;        // upper bounds, without +Inf
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries, last = count
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative, bounds_.size() + 1
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Records the time from construction to destruction into a histogram (seconds).
class ScopedLatency {
 public:
  explicit ScopedLatency(Histogram* h);
  ~ScopedLatency();
  ScopedLatency(const ScopedLatency&) = delete;
  ScopedLatency& operator=(const ScopedLatency&) = delete;

 private:
  Histogram* h_;
  int64_t start_ns_;
};

// Common part of the three family kinds. Thread-safe.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family's HELP, TYPE and sample lines to `out`.
  virtual void Render(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  // "{a=\"x\",b=\"y\"}" (or "" without labels), with `extra` (already
  // formatted, e.g. le="0.5") appended inside the braces.
  std::string FormatLabels(const std::vector<std::string>& values, std::string_view extra) const;
  void RenderHeader(std::string* out) const;
  // True (and logs once) if `n` label values do not fit this family.
  bool BadArity(size_t n) const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  mutable std::atomic<bool> arity_warned_{false};
};

// A family of children of type T, one per distinct label-value tuple.
// WithLabels returns a pointer valid for the registry's lifetime. With the
// wrong number of values it logs an error once and returns a detached child
// that is never exported (metrics must not crash the daemon).
template <typename T>
class Family : public FamilyBase {
 public:
  T* WithLabels(const std::vector<std::string>& values);
  T* WithLabels(std::initializer_list<std::string_view> values) {
    return WithLabels(std::vector<std::string>(values.begin(), values.end()));
  }
  // The child without labels (families registered with no label names).
  T* Get() { return WithLabels(std::vector<std::string>{}); }

  // Removes every child (e.g. a namespace's per-layer budget gauges before
  // they are re-published). Pointers returned earlier stay valid but are no
  // longer exported.
  void Clear();

  void Render(std::string* out) const override;

 protected:
  using FamilyBase::FamilyBase;
  virtual std::unique_ptr<T> NewChild() const {
    if constexpr (std::is_default_constructible_v<T>) {
      return std::make_unique<T>();
    } else {
      return nullptr;  // overridden (HistogramFamily)
    }
  }

 private:
  friend class Registry;
  // Readers (lookups of existing children, rendering) share; inserts and
  // Clear are exclusive.
  mutable SharedMutex mu_;
  std::map<std::vector<std::string>, T*> children_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<T>> owned_ GUARDED_BY(mu_);  // never shrinks
  std::unique_ptr<T> detached_ GUARDED_BY(mu_);
};

template <>
void Family<Counter>::Render(std::string* out) const;
template <>
void Family<Gauge>::Render(std::string* out) const;
template <>
void Family<Histogram>::Render(std::string* out) const;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;

class HistogramFamily : public Family<Histogram> {
 public:
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class Registry;
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  std::unique_ptr<Histogram> NewChild() const override {
    return std::make_unique<Histogram>(bounds_);
  }
  const std::vector<double> bounds_;
};

// A set of metric families, rendered together. Thread-safe: registration,
// lookup and Expose may run concurrently with recording.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry the daemon exposes at /metrics.
  static Registry& Default();

  // Registers a family, or returns the existing one when `name` is already
  // registered with the same type and label names (so independent modules may
  // each "add" the same metric). Counters must end in "_total".
  CounterFamily& AddCounter(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {});
  // `bounds` empty → DefaultLatencyBuckets().
  HistogramFamily& AddHistogram(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {},
                                std::vector<double> bounds = {});

  // `hook` runs at the start of every Expose() (outside the registry lock), to
  // refresh gauges that mirror state owned elsewhere (tier occupancy, CAKE
  // budgets). Hooks must not call Expose(), AddCollectHook or
  // RemoveCollectHook. Returns an id for RemoveCollectHook.
  int AddCollectHook(std::function<void()> hook);
  // After it returns the hook is not running and never runs again.
  void RemoveCollectHook(int id);

  // The whole registry in text format 0.0.4, families in name order.
  std::string Expose() const;
  // Content-Type for the exposition.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Looks a family up by name (nullptr if absent). For tests and the admin API.
  const FamilyBase* Find(std::string_view name) const;

 private:
  FamilyBase* Register(std::string_view name, MetricType type,
                       const std::vector<std::string>& label_names,
                       const std::function<std::unique_ptr<FamilyBase>()>& make);

  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_ GUARDED_BY(mu_);
  mutable Mutex collect_mu_ ACQUIRED_BEFORE(hooks_mu_);  // held while hooks run; serialises Expose
  mutable Mutex hooks_mu_;
  std::map<int, std::shared_ptr<std::function<void()>>> hooks_ GUARDED_BY(hooks_mu_);
  int next_hook_id_ GUARDED_BY(hooks_mu_) = 1;
};

// ---- implementation of the template members -------------------------------

template <typename T>
T* Family<T>::WithLabels(const std::vector<std::string>& values) {
  if (values.size() == label_names_.size()) {
    ReaderLock lock(&mu_);
    auto it = children_.find(values);
    if (it != children_.end()) return it->second;
  }
  WriterLock lock(&mu_);
  if (BadArity(values.size())) {
    if (!detached_) detached_ = NewChild();
    return detached_.get();
  }
  auto it = children_.find(values);
  if (it != children_.end()) return it->second;
  owned_.push_back(NewChild());
  T* child = owned_.back().get();
  children_.emplace(values, child);
  return child;
}

template <typename T>
void Family<T>::Clear() {
  WriterLock lock(&mu_);
  children_.clear();
}

}  // namespace kvcake::metrics
