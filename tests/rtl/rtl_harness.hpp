// rtl_harness.hpp — small helpers for driving Verilated blocks from GoogleTest: bit
// fields of ports of any width (Verilator maps ports up to 64 bits to integers and wider
// ones to VlWide), clocking, and value generators biased toward edges.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#include "verilated.h"

namespace dla::rtl_test {

template <class Port>
void set_bit(Port& port, int bit, bool value) {
  if constexpr (std::is_integral_v<Port>) {
    const Port mask = static_cast<Port>(Port{1} << bit);
    port = static_cast<Port>(value ? (port | mask) : (port & ~mask));
  } else {
    const std::uint32_t mask = std::uint32_t{1} << (bit % 32);
    auto& word = port[static_cast<std::size_t>(bit / 32)];
    word = value ? (word | mask) : (word & ~mask);
  }
}

template <class Port>
bool get_bit(const Port& port, int bit) {
  if constexpr (std::is_integral_v<Port>) {
    return ((port >> bit) & 1) != 0;
  } else {
    return ((port[static_cast<std::size_t>(bit / 32)] >> (bit % 32)) & 1) != 0;
  }
}

/// Writes the low `width` bits of `value` to bits [lsb, lsb + width) of a port.
template <class Port>
void put(Port& port, int lsb, int width, std::int64_t value) {
  for (int i = 0; i < width; ++i) set_bit(port, lsb + i, ((static_cast<std::uint64_t>(value) >> i) & 1) != 0);
}

/// Bits [lsb, lsb + width) of a port, sign-extended (width <= 64).
template <class Port>
std::int64_t get_signed(const Port& port, int lsb, int width) {
  std::uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<std::uint64_t>(get_bit(port, lsb + i)) << i;
  if (width < 64 && ((v >> (width - 1)) & 1) != 0) v |= ~std::uint64_t{0} << width;
  return static_cast<std::int64_t>(v);
}

/// A Verilated block with its own context, reset and a clock.
template <class Model>
class Block {
 public:
  Block() : ctx_(std::make_unique<VerilatedContext>()), m_(std::make_unique<Model>(ctx_.get())) { reset(); }
  /// The reset is asynchronous on the falling edge of rst_ni: drive a real edge.
  void reset() {
    m_->clk_i = 0;
    m_->rst_ni = 1;
    m_->eval();
    m_->rst_ni = 0;
    m_->eval();
    m_->rst_ni = 1;
    m_->eval();
  }
  ~Block() { m_->final(); }
  Model* operator->() { return m_.get(); }
  /// One rising clock edge.
  void tick() {
    m_->clk_i = 0;
    m_->eval();
    m_->clk_i = 1;
    m_->eval();
  }

 private:
  std::unique_ptr<VerilatedContext> ctx_;
  std::unique_ptr<Model> m_;
};

/// Random values that hit the edges of [lo, hi] often: the bounds, their neighbours, 0,
/// +-1, powers of two and their neighbours, else uniform.
class EdgeRandom {
 public:
  explicit EdgeRandom(std::uint64_t seed) : rng_(seed) {}

  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }
  bool coin() { return uniform(0, 1) == 1; }

  std::int64_t value(std::int64_t lo, std::int64_t hi) {
    std::vector<std::int64_t> edges = {lo, hi, 0, 1, -1};
    if (lo < hi) edges.insert(edges.end(), {lo + 1, hi - 1});
    for (int b = 1; b < 63; ++b) {
      const std::int64_t p = std::int64_t{1} << b;
      edges.insert(edges.end(), {p, p - 1, p + 1, -p, -p - 1, -p + 1});
    }
    switch (uniform(0, 3)) {
      case 0: {
        const std::int64_t e = edges[static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(edges.size()) - 1))];
        if (e >= lo && e <= hi) return e;
        return uniform(lo, hi);
      }
      case 1: {  // small magnitudes, where the rounding ties live
        const std::int64_t a = lo > -64 ? lo : -64, b = hi < 64 ? hi : 64;
        return a <= b ? uniform(a, b) : uniform(lo, hi);
      }
      case 2: {  // a random width: every magnitude is exercised, not only the largest
        const int bits = static_cast<int>(uniform(1, 62));
        const std::int64_t a = lo > -(std::int64_t{1} << bits) ? lo : -(std::int64_t{1} << bits);
        const std::int64_t b = hi < (std::int64_t{1} << bits) ? hi : (std::int64_t{1} << bits);
        return a <= b ? uniform(a, b) : uniform(lo, hi);
      }
      default: return uniform(lo, hi);
    }
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace dla::rtl_test
