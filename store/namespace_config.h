#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "policy/serving_mode.h"

namespace kvcake::store {

// Geometry and KV layout of one namespace (one model deployment, docs/design.md §2).
// Every block of the namespace is one layer of one block of `block_tokens`
// tokens: at most `layer_block_bytes` bytes. The fingerprint of the geometry
// and layout is stored with every block and checked on every load, so a
// layout mismatch is FAILED_PRECONDITION, never silently wrong KV.
// Plain value type.
struct NamespaceConfig {
  uint64_t id = 0;                 // namespace id: NamespaceSeed(name) (common/block_hash.h)
  std::string name;                // human name (model id, revision/LoRA)
  uint32_t num_layers = 0;         // > 0
  uint32_t block_tokens = 0;       // tokens per block, > 0
  uint64_t layer_block_bytes = 0;  // bytes of one layer of one block (K and V), > 0
  std::string kv_dtype;            // e.g. "fp16", "bf16", "fp8_e4m3"
  std::string layout;              // e.g. "NHD;tp=2;rank=0" (free text, part of the fingerprint)
  uint64_t quota_bytes = 0;        // bytes across all tiers; 0 = unlimited (not fingerprinted)
  // How the engine serves (policy/serving_mode.h; not fingerprinted): the
  // default policy ranks exact-serving namespaces by GDSF and gives CAKE's
  // budgets to budgeted ones. The first registration sets it.
  policy::ServingMode serving = policy::ServingMode::kExact;

  // INVALID_ARGUMENT when a geometry field is zero, the name is empty or
  // `serving` is not a ServingMode.
  Status Validate() const;

  // "num_layers=32 block_tokens=16 layer_block_bytes=262144 kv_dtype=fp16
  // layout=''": the fingerprinted fields, for error messages.
  std::string GeometryText() const;

  // xxh3 over (id, num_layers, block_tokens, layer_block_bytes, kv_dtype,
  // layout). Never 0. Quota and name are not part of it.
  uint64_t Fingerprint() const;
};

}  // namespace kvcake::store
