#include "common/metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/logging.h"

namespace kvcake::metrics {
namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Prometheus float formatting: shortest round-trip form, +Inf/-Inf/NaN.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // %.17g round-trips; try shorter first for readable output.
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

Status ValidateMetricName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("empty metric name");
  if (!IsNameStart(name[0]) && name[0] != ':') {
    return InvalidArgumentError("metric name must start with [a-zA-Z_:]: " + std::string(name));
  }
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c) && c != ':') {
      return InvalidArgumentError("bad character in metric name: " + std::string(name));
    }
  }
  return Status::Ok();
}

Status ValidateLabelName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("empty label name");
  if (!IsNameStart(name[0])) {
    return InvalidArgumentError("label name must start with [a-zA-Z_]: " + std::string(name));
  }
  for (char c : name) {
    if (!IsNameStart(c) && !IsDigit(c)) {
      return InvalidArgumentError("bad character in label name: " + std::string(name));
    }
  }
  if (name.substr(0, 2) == "__") {
    return InvalidArgumentError("label names starting with __ are reserved: " + std::string(name));
  }
  if (name == "le") return InvalidArgumentError("label name 'le' is reserved for histograms");
  return Status::Ok();
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10};
  return kBuckets;
}

// ---- Histogram -------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // First bucket whose upper bound is >= v ("le" semantics); NaN → +Inf.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  if (std::isnan(v)) i = bounds_.size();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // Count from the buckets so the +Inf bucket and _count always agree even
  // while observations race with the snapshot.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

ScopedLatency::ScopedLatency(Histogram* h) : h_(h), start_ns_(NowNanos()) {}
ScopedLatency::~ScopedLatency() {
  if (h_ != nullptr) h_->Observe(static_cast<double>(NowNanos() - start_ns_) * 1e-9);
}

// ---- FamilyBase ------------------------------------------------------------

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

std::string FamilyBase::FormatLabels(const std::vector<std::string>& values,
                                     std::string_view extra) const {
  if (values.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < values.size() && i < label_names_.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void FamilyBase::RenderHeader(std::string* out) const {
  *out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  *out += "# TYPE " + name_ + " " + std::string(MetricTypeName(type_)) + "\n";
}

bool FamilyBase::BadArity(size_t n) const {
  if (n == label_names_.size()) return false;
  if (!arity_warned_.exchange(true)) {
    KVCAKE_LOG(ERROR) << "metric " << name_ << ": " << n << " label values given, "
                      << label_names_.size() << " expected; samples are dropped";
  }
  return true;
}

template <>
void Family<Counter>::Render(std::string* out) const {
  RenderHeader(out);
  ReaderLock lock(&mu_);
  for (const auto& [values, child] : children_) {
    *out += name_ + FormatLabels(values, "") + " " + std::to_string(child->Value()) + "\n";
  }
}

template <>
void Family<Gauge>::Render(std::string* out) const {
  RenderHeader(out);
  ReaderLock lock(&mu_);
  for (const auto& [values, child] : children_) {
    *out += name_ + FormatLabels(values, "") + " " + FormatDouble(child->Value()) + "\n";
  }
}

template <>
void Family<Histogram>::Render(std::string* out) const {
  RenderHeader(out);
  ReaderLock lock(&mu_);
  for (const auto& [values, child] : children_) {
    Histogram::Snapshot s = child->Take();
    for (size_t i = 0; i <= s.bounds.size(); ++i) {
      std::string le = i < s.bounds.size() ? FormatDouble(s.bounds[i]) : "+Inf";
      *out += name_ + "_bucket" + FormatLabels(values, "le=\"" + le + "\"") + " " +
              std::to_string(s.cumulative[i]) + "\n";
    }
    std::string labels = FormatLabels(values, "");
    *out += name_ + "_sum" + labels + " " + FormatDouble(s.sum) + "\n";
    *out += name_ + "_count" + labels + " " + std::to_string(s.count) + "\n";
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : Family<Histogram>(std::move(name), std::move(help), MetricType::kHistogram,
                        std::move(label_names)),
      bounds_(std::move(bounds)) {}

// ---- Registry --------------------------------------------------------------

Registry& Registry::Default() {
  static Registry* registry = new Registry();  // never destroyed: used from any thread at exit
  return *registry;
}

FamilyBase* Registry::Register(std::string_view name, MetricType type,
                               const std::vector<std::string>& label_names,
                               const std::function<std::unique_ptr<FamilyBase>()>& make) {
  Status s = ValidateMetricName(name);
  for (const auto& l : label_names) {
    if (s.ok()) s = ValidateLabelName(l);
  }
  if (s.ok() && type == MetricType::kCounter &&
      (name.size() < 6 || name.substr(name.size() - 6) != "_total")) {
    s = InvalidArgumentError("counter name must end in _total: " + std::string(name));
  }
  if (!s.ok()) KVCAKE_LOG(FATAL) << "metrics: " << s.ToString();

  MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    FamilyBase* f = it->second.get();
    if (f->type() != type || f->label_names() != label_names) {
      KVCAKE_LOG(FATAL) << "metrics: " << name << " re-registered with another type or labels";
    }
    return f;
  }
  auto family = make();
  FamilyBase* raw = family.get();
  families_.emplace(std::string(name), std::move(family));
  return raw;
}

CounterFamily& Registry::AddCounter(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  struct Make : CounterFamily {
    Make(std::string n, std::string h, std::vector<std::string> l)
        : CounterFamily(std::move(n), std::move(h), MetricType::kCounter, std::move(l)) {}
  };
  return *static_cast<CounterFamily*>(
      Register(name, MetricType::kCounter, label_names, [&]() -> std::unique_ptr<FamilyBase> {
        return std::make_unique<Make>(std::string(name), std::string(help), label_names);
      }));
}

GaugeFamily& Registry::AddGauge(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names) {
  struct Make : GaugeFamily {
    Make(std::string n, std::string h, std::vector<std::string> l)
        : GaugeFamily(std::move(n), std::move(h), MetricType::kGauge, std::move(l)) {}
  };
  return *static_cast<GaugeFamily*>(
      Register(name, MetricType::kGauge, label_names, [&]() -> std::unique_ptr<FamilyBase> {
        return std::make_unique<Make>(std::string(name), std::string(help), label_names);
      }));
}

HistogramFamily& Registry::AddHistogram(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  if (bounds.empty()) bounds = DefaultLatencyBuckets();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
      KVCAKE_LOG(FATAL) << "metrics: " << name << ": bucket bounds must be finite and increasing";
    }
  }
  auto* f = static_cast<HistogramFamily*>(
      Register(name, MetricType::kHistogram, label_names, [&]() -> std::unique_ptr<FamilyBase> {
        return std::unique_ptr<FamilyBase>(
            new HistogramFamily(std::string(name), std::string(help), label_names, bounds));
      }));
  return *f;
}

int Registry::AddCollectHook(std::function<void()> hook) {
  MutexLock lock(&hooks_mu_);
  int id = next_hook_id_++;
  hooks_.emplace(id, std::make_shared<std::function<void()>>(std::move(hook)));
  return id;
}

void Registry::RemoveCollectHook(int id) {
  MutexLock run_lock(&collect_mu_);  // waits for a running Expose's hooks
  MutexLock lock(&hooks_mu_);
  hooks_.erase(id);
}

std::string Registry::Expose() const {
  {
    MutexLock run_lock(&collect_mu_);
    std::vector<std::shared_ptr<std::function<void()>>> hooks;
    {
      MutexLock lock(&hooks_mu_);
      for (const auto& [id, h] : hooks_) hooks.push_back(h);
    }
    for (const auto& h : hooks) (*h)();
  }

  std::vector<const FamilyBase*> families;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  std::string out;
  for (const FamilyBase* f : families) f->Render(&out);
  return out;
}

const FamilyBase* Registry::Find(std::string_view name) const {
  MutexLock lock(&mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.get();
}

}  // namespace kvcake::metrics
