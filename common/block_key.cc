#include "common/block_key.h"

#include <cstdio>

namespace kvcake {
namespace {

inline void PutBe(uint64_t v, int bytes, char* out) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
}
inline uint64_t GetBe(const char* in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

}  // namespace

std::string BlockKey::ToString() const {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%016llx:%016llx:%u", static_cast<unsigned long long>(ns),
                static_cast<unsigned long long>(hash), layer);
  return buf;
}

EncodedBlockKey EncodeBlockKey(const BlockKey& key) {
  EncodedBlockKey out;
  PutBe(key.ns, 8, out.data());
  PutBe(key.hash, 8, out.data() + 8);
  PutBe(key.layer, 4, out.data() + 16);
  return out;
}

Result<BlockKey> DecodeBlockKey(std::string_view bytes) {
  if (bytes.size() != kEncodedBlockKeySize) {
    return InvalidArgumentError("block key must be 20 bytes, got " + std::to_string(bytes.size()));
  }
  BlockKey key;
  key.ns = GetBe(bytes.data(), 8);
  key.hash = GetBe(bytes.data() + 8, 8);
  key.layer = static_cast<uint32_t>(GetBe(bytes.data() + 16, 4));
  return key;
}

std::string EncodeNamespacePrefix(uint64_t ns) {
  std::string out(8, '\0');
  PutBe(ns, 8, out.data());
  return out;
}

}  // namespace kvcake
