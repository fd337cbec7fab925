#include "store/namespace_config.h"

#include <xxhash.h>

#include <string>

#include "common/coding.h"

namespace kvcake::store {

Status NamespaceConfig::Validate() const {
  if (name.empty()) return InvalidArgumentError("namespace: empty name");
  if (num_layers == 0) return InvalidArgumentError("namespace " + name + ": num_layers is 0");
  if (block_tokens == 0) return InvalidArgumentError("namespace " + name + ": block_tokens is 0");
  if (layer_block_bytes == 0) {
    return InvalidArgumentError("namespace " + name + ": layer_block_bytes is 0");
  }
  if (static_cast<uint8_t>(serving) > policy::kMaxServingMode) {
    return InvalidArgumentError("namespace " + name + ": serving mode " +
                                std::to_string(static_cast<unsigned>(serving)) +
                                " is neither exact (0) nor budgeted (1)");
  }
  return Status::Ok();
}

std::string NamespaceConfig::GeometryText() const {
  return "num_layers=" + std::to_string(num_layers) +
         " block_tokens=" + std::to_string(block_tokens) +
         " layer_block_bytes=" + std::to_string(layer_block_bytes) +
         " kv_dtype=" + (kv_dtype.empty() ? "''" : kv_dtype) +
         " layout=" + (layout.empty() ? "''" : layout);
}

uint64_t NamespaceConfig::Fingerprint() const {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  auto add_u64 = [&](uint64_t v) {
    unsigned char b[8];
    EncodeFixed<uint64_t>(b, v);
    XXH3_64bits_update(state, b, sizeof(b));
  };
  auto add_str = [&](const std::string& s) {
    add_u64(s.size());
    XXH3_64bits_update(state, s.data(), s.size());
  };
  add_u64(1);  // fingerprint format version
  add_u64(id);
  add_u64(num_layers);
  add_u64(block_tokens);
  add_u64(layer_block_bytes);
  add_str(kv_dtype);
  add_str(layout);
  uint64_t fp = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return fp == 0 ? 1 : fp;
}

}  // namespace kvcake::store
