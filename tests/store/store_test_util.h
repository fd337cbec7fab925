#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/block_key.h"
#include "store/namespace_config.h"

namespace kvcake::store::testing {

// A unique temporary directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/kvcake_store_XXXXXX";
    char* p = mkdtemp(tmpl.data());
    path_ = p ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic payload for (key, size, version): every byte depends on them.
inline void FillPayload(const BlockKey& key, uint64_t version, void* dst, size_t size) {
  uint64_t x = key.ns * 0x9e3779b97f4a7c15ULL ^ key.hash ^ (uint64_t{key.layer} << 32) ^
               (version * 0xbf58476d1ce4e5b9ULL) ^ size;
  if (x == 0) x = 1;
  auto* out = static_cast<unsigned char*>(dst);
  size_t i = 0;
  while (i + 8 <= size) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out + i, &x, 8);
    i += 8;
  }
  for (; i < size; ++i) out[i] = static_cast<unsigned char>(x >> (8 * (i % 8)));
}

inline std::vector<char> Payload(const BlockKey& key, size_t size, uint64_t version = 0) {
  std::vector<char> v(size);
  FillPayload(key, version, v.data(), size);
  return v;
}

inline NamespaceConfig TestNamespace(uint64_t id = 42, uint64_t layer_block_bytes = 64 << 10,
                                     uint32_t num_layers = 4) {
  NamespaceConfig c;
  c.id = id;
  c.name = "test-model-" + std::to_string(id);
  c.num_layers = num_layers;
  c.block_tokens = 16;
  c.layer_block_bytes = layer_block_bytes;
  c.kv_dtype = "fp16";
  c.layout = "NHD";
  return c;
}

}  // namespace kvcake::store::testing
