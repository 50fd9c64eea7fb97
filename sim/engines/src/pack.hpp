// Private: converting SRAM bytes of a storage type to and from contiguous integer arrays,
// with the type switch outside the element loop (the loops vectorize). Element layout is
// that of dla/numerics.hpp (load_element / store_element): 4-bit types two per byte,
// element 2k in the low nibble; multi-byte types little endian.
#pragma once

#include <cstdint>
#include <cstring>

#include "dla/numerics.hpp"

namespace dla::sim::detail {

inline std::int32_t read_le_i32(const std::uint8_t* p) {
  const std::uint32_t u = static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
                          (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  return static_cast<std::int32_t>(u);
}

/// dst[i] = element i of the `t` buffer at src, for i in [0, n). T must hold every value
/// of `t` (int16_t for the MAC operand types, int32_t for everything).
template <typename T>
void unpack(const std::uint8_t* src, DType t, std::uint64_t n, T* dst) {
  switch (t) {
    case DType::I8:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<std::int8_t>(src[i]));
      return;
    case DType::U8:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
      return;
    case DType::I4:
    case DType::U4: {
      const bool is_signed = t == DType::I4;
      const std::uint64_t pairs = n / 2;
      for (std::uint64_t k = 0; k < pairs; ++k) {
        const unsigned lo = src[k] & 0xFu;
        const unsigned hi = (src[k] >> 4) & 0xFu;
        dst[2 * k] = static_cast<T>(is_signed ? static_cast<int>(lo ^ 8u) - 8 : static_cast<int>(lo));
        dst[2 * k + 1] = static_cast<T>(is_signed ? static_cast<int>(hi ^ 8u) - 8 : static_cast<int>(hi));
      }
      if (n & 1) dst[n - 1] = static_cast<T>(unpack4(src, n - 1, is_signed));
      return;
    }
    case DType::I16:
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto u = static_cast<std::uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
        dst[i] = static_cast<T>(static_cast<std::int16_t>(u));
      }
      return;
    case DType::I32:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(read_le_i32(src + 4 * i));
      return;
  }
}

/// Element i of the `t` buffer at dst = src[i] for i in [0, n); every value must already
/// be in the range of `t`. A 4-bit buffer with odd n keeps the high nibble of its last byte.
inline void pack(std::uint8_t* dst, DType t, std::uint64_t n, const std::int32_t* src) {
  switch (t) {
    case DType::I8:
    case DType::U8:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = static_cast<std::uint8_t>(src[i]);
      return;
    case DType::I4:
    case DType::U4: {
      const std::uint64_t pairs = n / 2;
      for (std::uint64_t k = 0; k < pairs; ++k) {
        dst[k] = static_cast<std::uint8_t>((static_cast<unsigned>(src[2 * k]) & 0xFu) |
                                           ((static_cast<unsigned>(src[2 * k + 1]) & 0xFu) << 4));
      }
      if (n & 1) pack4(dst, n - 1, src[n - 1]);
      return;
    }
    case DType::I16:
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto u = static_cast<std::uint32_t>(src[i]);
        dst[2 * i] = static_cast<std::uint8_t>(u);
        dst[2 * i + 1] = static_cast<std::uint8_t>(u >> 8);
      }
      return;
    case DType::I32:
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto u = static_cast<std::uint32_t>(src[i]);
        for (int b = 0; b < 4; ++b) dst[4 * i + static_cast<std::uint64_t>(b)] = static_cast<std::uint8_t>(u >> (8 * b));
      }
      return;
  }
}

}  // namespace dla::sim::detail
