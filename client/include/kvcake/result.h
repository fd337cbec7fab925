// kvcake::Result<T>: a value of type T, or the non-OK Status that says why
// there is none (like absl::StatusOr). Returned by the C++ API where a call
// yields a value (Client::Connect, LookupPrefix, ...).
#pragma once

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>

#include "kvcake/status.h"

namespace kvcake {

// Result<T> holds either a value of type T or a non-OK Status (like
// absl::StatusOr). Accessing value() of an error Result is a bug (asserts in
// debug builds). Thread-compatible.
template <typename T>
class [[nodiscard]] Result {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit by design.
  Result(const T& value) : value_(value) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(T&& value) : value_(std::move(value)) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {
    assert(!status_.ok() && "Result constructed from an OK status");
    if (status_.ok()) status_ = InternalError("Result constructed from an OK status");
  }
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Status> && !std::is_same_v<std::decay_t<U>, Result<T>>)
      // The requires-clause keeps it from hiding the copy/move constructors.
      // NOLINTNEXTLINE(google-explicit-constructor,bugprone-forwarding-reference-overload)
      Result(U&& value)
      : value_(T(std::forward<U>(value))) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T& value() & {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kvcake
