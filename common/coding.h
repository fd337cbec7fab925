#pragma once

// Fixed-width little-endian integers in byte buffers: the byte order of the
// wire frames, the connect handshake, the SSD tier's value headers and the
// bytes kvcake hashes.
//
// `Byte` is any one-byte type (char, unsigned char, uint8_t); the caller
// provides sizeof(T) bytes at `dst` / `src`.
//
// Thread-safety: pure functions; thread-safe.

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace kvcake {

// Writes `value` to dst[0, sizeof(T)), least significant byte first.
template <typename T, typename Byte>
constexpr void EncodeFixed(Byte* dst, T value) {
  static_assert(std::is_unsigned_v<T> && sizeof(Byte) == 1);
  for (size_t i = 0; i < sizeof(T); ++i) dst[i] = static_cast<Byte>(value >> (8 * i));
}

// Reads the value EncodeFixed<T> wrote to src[0, sizeof(T)).
template <typename T, typename Byte>
constexpr T DecodeFixed(const Byte* src) {
  static_assert(std::is_unsigned_v<T> && sizeof(Byte) == 1);
  T value = 0;
  for (size_t i = sizeof(T); i-- > 0;) {
    value = static_cast<T>((value << 8) | static_cast<unsigned char>(src[i]));
  }
  return value;
}

}  // namespace kvcake
