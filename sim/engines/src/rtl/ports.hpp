// Bit fields of Verilated ports: Verilator maps a port of up to 64 bits to an integer and a
// wider one to VlWide (32-bit words). The rtl engine packs operand lanes into them and
// unpacks result lanes out of them, one field of at most 64 bits at a time.
#pragma once

#include <cstdint>
#include <type_traits>

namespace dla::sim::rtl {

template <class Port>
void put_field(Port& port, int lsb, int width, std::uint64_t value) {
  const std::uint64_t mask = width >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width) - 1;
  value &= mask;
  if constexpr (std::is_integral_v<Port>) {
    const auto m = static_cast<std::uint64_t>(mask) << lsb;
    port = static_cast<Port>((static_cast<std::uint64_t>(port) & ~m) | (value << lsb));
  } else {
    int bit = lsb;
    int done = 0;
    while (done < width) {
      const int word = bit / 32, off = bit % 32;
      const int n = width - done < 32 - off ? width - done : 32 - off;
      const std::uint32_t m = (n == 32 ? ~std::uint32_t{0} : ((std::uint32_t{1} << n) - 1)) << off;
      auto& w = port[static_cast<std::size_t>(word)];
      w = (w & ~m) | (static_cast<std::uint32_t>(value >> done) << off & m);
      done += n;
      bit += n;
    }
  }
}

/// Bits [lsb, lsb + width) of a port, zero-extended (width <= 64).
template <class Port>
std::uint64_t get_field(const Port& port, int lsb, int width) {
  const std::uint64_t mask = width >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width) - 1;
  if constexpr (std::is_integral_v<Port>) {
    return (static_cast<std::uint64_t>(port) >> lsb) & mask;
  } else {
    std::uint64_t v = 0;
    int bit = lsb;
    int done = 0;
    while (done < width) {
      const int word = bit / 32, off = bit % 32;
      const int n = width - done < 32 - off ? width - done : 32 - off;
      v |= static_cast<std::uint64_t>(port[static_cast<std::size_t>(word)] >> off) << done;
      done += n;
      bit += n;
    }
    return v & mask;
  }
}

/// The same field, sign-extended.
template <class Port>
std::int64_t get_signed_field(const Port& port, int lsb, int width) {
  std::uint64_t v = get_field(port, lsb, width);
  if (width < 64 && ((v >> (width - 1)) & 1) != 0) v |= ~std::uint64_t{0} << width;
  return static_cast<std::int64_t>(v);
}

}  // namespace dla::sim::rtl
