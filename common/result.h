#pragma once

// Internal additions to kvcake::Result<T> (client/include/kvcake/result.h):
// ASSIGN_OR_RETURN. Not installed.

#include "common/status.h"
#include "kvcake/result.h"

#define KVCAKE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, Foo()); returns Foo()'s status on error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  KVCAKE_ASSIGN_OR_RETURN_IMPL_(KVCAKE_CONCAT_(kvcake_result_, __LINE__), lhs, rexpr)
