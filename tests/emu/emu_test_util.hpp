// Helpers shared by the emulator suites: random data, an independent wrap, error
// matchers. References in the suites are naive int64 loops; they may call the numerics
// primitives (round_shift, load_element, store_element), which have their own tests, and
// nothing from dla/semantics.hpp.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dla/device.hpp"

namespace emu_test {

inline std::int64_t rand_int(std::mt19937_64& g, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(g);
}

template <class Bytes>
void fill_random(Bytes& v, std::mt19937_64& g) {
  for (auto& b : v) b = static_cast<std::uint8_t>(g());
}

/// Two's-complement reduction to `bits` bits, written independently of numerics.hpp.
inline std::int64_t ref_wrap(std::int64_t v, int bits) {
  const std::uint64_t m = (std::uint64_t{1} << bits) - 1;
  const std::uint64_t x = static_cast<std::uint64_t>(v) & m;
  if ((x >> (bits - 1)) & 1) return static_cast<std::int64_t>(x) - (std::int64_t{1} << bits);
  return static_cast<std::int64_t>(x);
}

inline std::int64_t ref_clamp(std::int64_t v, std::int64_t lo, std::int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/// Runs fn and expects a dla::sim::ExecutionError at `index` whose message contains `text`.
template <typename Fn>
void expect_exec_error(Fn&& fn, std::uint32_t index, const std::string& text) {
  try {
    fn();
    ADD_FAILURE() << "expected an ExecutionError containing: " << text;
  } catch (const dla::sim::ExecutionError& e) {
    EXPECT_EQ(e.instruction(), index) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << "message: " << e.what() << "\nexpected: " << text;
  }
}

/// Runs fn and expects a dla::Error (any kind) whose message contains `text`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& text) {
  try {
    fn();
    ADD_FAILURE() << "expected an Error containing: " << text;
  } catch (const dla::Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << "message: " << e.what() << "\nexpected: " << text;
  }
}

}  // namespace emu_test
