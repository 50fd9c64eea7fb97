// test_rtl_mac_array.cpp — the Verilated MAC array (rtl_models/rtl/dla_mac_array.sv)
// against exact integer sums: in every MAC mode, with signed and unsigned activations,
// each column's output must equal its partial sum plus sum_k x[k] * w[k] over the
// elements its PEs hold. Operand lanes are built with dla::store_element, the memory
// format of packed tensors, so the test also fixes the nibble order.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "Vdla_mac_array.h"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::DType;
using dla::isa::MacMode;
using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;

// RTL choices of dla_core_pkg.sv.
constexpr int kAccWordBits = 48;
constexpr int kPeLaneBits = 16;

/// Element types and elements per PE lane of a mode (one pass).
struct ModeShape {
  DType act;
  DType wgt;
  int per_pe;  ///< MACs one PE does per cycle
};

ModeShape shape(MacMode mode, bool act_unsigned) {
  switch (mode) {
    case MacMode::A8W8: return {act_unsigned ? DType::U8 : DType::I8, DType::I8, 1};
    case MacMode::A8W4: return {act_unsigned ? DType::U8 : DType::I8, DType::I4, 2};
    case MacMode::A4W4: return {act_unsigned ? DType::U4 : DType::I4, DType::I4, 4};
    case MacMode::A16W8: return {DType::I16, DType::I8, 1};
  }
  return {DType::I8, DType::I8, 1};
}

/// The 16-bit lane holding `values` stored as elements 0.. of type `t`.
std::int64_t lane(DType t, const std::vector<std::int64_t>& values) {
  std::array<std::uint8_t, 2> bytes{};
  for (std::size_t i = 0; i < values.size(); ++i) dla::store_element(bytes.data(), t, i, values[i]);
  return bytes[0] | (bytes[1] << 8);
}

class MacBench {
 public:
  // The Verilated model is DLA_RTL_TB_MAC_ROWS x DLA_RTL_TB_MAC_COLS (rtl_models/CMakeLists.txt).
  MacBench() : rows_(DLA_RTL_TB_MAC_ROWS), cols_(DLA_RTL_TB_MAC_COLS) {
    EXPECT_EQ(sizeof(dut_->psum_i) * 8, static_cast<std::size_t>((cols_ * kAccWordBits + 31) / 32 * 32))
        << "psum_i is not mac_cols x " << kAccWordBits << " bits";
    EXPECT_EQ(dut_->valid_o, 0) << "valid_o after reset";
  }

  /// A cycle without valid_i, with the partial sums changed: valid_o falls, psum_o holds.
  void idle() {
    std::vector<std::int64_t> held;
    for (int c = 0; c < cols_; ++c) {
      held.push_back(get_signed(dut_->psum_o, c * kAccWordBits, kAccWordBits));
      put(dut_->psum_i, c * kAccWordBits, kAccWordBits, held.back() + 1);
    }
    dut_->valid_i = 0;
    dut_.tick();
    ASSERT_EQ(dut_->valid_o, 0);
    for (int c = 0; c < cols_; ++c)
      ASSERT_EQ(get_signed(dut_->psum_o, c * kAccWordBits, kAccWordBits), held[static_cast<std::size_t>(c)]);
  }

  /// A new weight set with random weights, written one column a clock into the load
  /// register, then two beats (both passes each for A16W8) with random activations and
  /// partial sums, checking every column: the set's first beat (wswap_i) and one more on
  /// the held weights. A column of junk is written into the load register during both
  /// beats: neither may see it (the swap takes the register as it was before the clock).
  /// `extremes` draws every operand from its type's bounds only.
  void run_beat(EdgeRandom& rnd, MacMode mode, bool act_unsigned, bool extremes = false) {
    const auto pick = [&](std::int64_t lo, std::int64_t hi) {
      return extremes ? (rnd.coin() ? lo : hi) : rnd.value(lo, hi);
    };
    const ModeShape s = shape(mode, act_unsigned);
    const auto wi = dla::dtype_info(s.wgt);
    w_.assign(static_cast<std::size_t>(rows_ * cols_), {});
    for (int c = 0; c < cols_; ++c) {
      for (int r = 0; r < rows_; ++r) {
        auto& w = w_[static_cast<std::size_t>(r * cols_ + c)];
        for (int j = 0; j < s.per_pe; ++j) w.push_back(pick(wi.min, wi.max));
        put(dut_->wlanes_i, r * kPeLaneBits, kPeLaneBits, lane(s.wgt, w));
      }
      dut_->wcol_i = static_cast<std::uint8_t>(c);
      dut_->wload_i = 1;
      dut_->valid_i = 0;
      dut_.tick();
      ASSERT_EQ(dut_->valid_o, 0) << "a weight write is not a beat";
    }
    for (const bool swap : {true, false}) {
      for (int r = 0; r < rows_; ++r) put(dut_->wlanes_i, r * kPeLaneBits, kPeLaneBits, rnd.value(0, 0xffff));
      dut_->wcol_i = static_cast<std::uint8_t>(rnd.value(0, cols_ - 1));
      dut_->wload_i = 1;
      ASSERT_NO_FATAL_FAILURE(check_beat(rnd, s, mode, act_unsigned, pick, swap)) << (swap ? "swap beat" : "held beat");
    }
    dut_->wload_i = 0;
  }

  /// After a reset both weight registers hold zeros, whatever was loaded before: a beat
  /// with and one without wswap_i give their partial sums back.
  void reset_clears_weights(EdgeRandom& rnd, MacMode mode) {
    const ModeShape s = shape(mode, false);
    dut_.reset();
    w_.assign(static_cast<std::size_t>(rows_ * cols_), std::vector<std::int64_t>(static_cast<std::size_t>(s.per_pe), 0));
    const auto pick = [&](std::int64_t lo, std::int64_t hi) { return rnd.value(lo, hi); };
    dut_->wload_i = 0;
    for (const bool swap : {false, true}) {
      ASSERT_NO_FATAL_FAILURE(check_beat(rnd, s, mode, false, pick, swap)) << (swap ? "swap beat" : "held beat");
    }
  }

 private:
  /// One beat on the weights w_ (both passes for A16W8), wswap_i = swap on its first clock.
  template <class Pick>
  void check_beat(EdgeRandom& rnd, const ModeShape& s, MacMode mode, bool act_unsigned, const Pick& pick, bool swap) {
    const auto ai = dla::dtype_info(s.act);
    std::vector<std::int64_t> expected(static_cast<std::size_t>(cols_));
    for (int c = 0; c < cols_; ++c) {
      const std::int64_t psum = rnd.value(-(std::int64_t{1} << 40), std::int64_t{1} << 40);
      expected[static_cast<std::size_t>(c)] = psum;
      put(dut_->psum_i, c * kAccWordBits, kAccWordBits, psum);
    }
    for (int r = 0; r < rows_; ++r) {
      std::vector<std::int64_t> xr;
      for (int j = 0; j < s.per_pe; ++j) xr.push_back(pick(ai.min, ai.max));
      put(dut_->act_i, r * kPeLaneBits, kPeLaneBits, lane(s.act, xr));
      for (int c = 0; c < cols_; ++c) {
        const auto& w = w_[static_cast<std::size_t>(r * cols_ + c)];
        for (int j = 0; j < s.per_pe; ++j) expected[static_cast<std::size_t>(c)] += xr[static_cast<std::size_t>(j)] * w[static_cast<std::size_t>(j)];
      }
    }
    dut_->valid_i = 1;
    dut_->wswap_i = swap ? 1 : 0;
    dut_->mode_i = static_cast<std::uint8_t>(mode);
    dut_->act_unsigned_i = act_unsigned ? 1 : 0;
    dut_->hi_pass_i = 0;
    dut_.tick();
    dut_->wswap_i = 0;
    if (mode == MacMode::A16W8) {  // second pass onto the first pass's partial sums
      for (int c = 0; c < cols_; ++c)
        put(dut_->psum_i, c * kAccWordBits, kAccWordBits, get_signed(dut_->psum_o, c * kAccWordBits, kAccWordBits));
      dut_->hi_pass_i = 1;
      dut_.tick();
    }
    dut_->valid_i = 0;
    ASSERT_EQ(dut_->valid_o, 1);
    for (int c = 0; c < cols_; ++c)
      ASSERT_EQ(get_signed(dut_->psum_o, c * kAccWordBits, kAccWordBits), expected[static_cast<std::size_t>(c)])
          << "column " << c << ", mode " << dla::isa::mac_mode_name(mode) << (act_unsigned ? ", unsigned" : "");
  }

  int rows_, cols_;
  std::vector<std::vector<std::int64_t>> w_;  ///< PE (r, c)'s weights at r * cols + c
  Block<Vdla_mac_array> dut_;
};

class RtlMacArray : public ::testing::TestWithParam<std::tuple<MacMode, bool>> {};

TEST_P(RtlMacArray, ColumnsEqualExactSums) {
  const auto [mode, act_unsigned] = GetParam();
  MacBench bench;
  EdgeRandom rnd(0x5eed0100 + static_cast<std::uint64_t>(mode) * 2 + act_unsigned);
  for (int n = 0; n < 300; ++n) {
    ASSERT_NO_FATAL_FAILURE(bench.run_beat(rnd, mode, act_unsigned)) << "beat " << n;
    if (n % 7 == 0) {
      ASSERT_NO_FATAL_FAILURE(bench.idle()) << "idle after beat " << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, RtlMacArray,
    ::testing::Values(std::make_tuple(MacMode::A8W8, false), std::make_tuple(MacMode::A8W8, true),
                      std::make_tuple(MacMode::A8W4, false), std::make_tuple(MacMode::A8W4, true),
                      std::make_tuple(MacMode::A4W4, false), std::make_tuple(MacMode::A4W4, true),
                      std::make_tuple(MacMode::A16W8, false)),
    [](const auto& param_info) {
      return std::string(dla::isa::mac_mode_name(std::get<0>(param_info.param))) +
             (std::get<1>(param_info.param) ? "_unsigned" : "_signed");
    });

TEST(RtlMacArrayWeights, AResetClearsBothWeightRegisters) {
  MacBench bench;
  EdgeRandom rnd(11);
  for (const auto mode : {MacMode::A8W8, MacMode::A4W4}) {
    ASSERT_NO_FATAL_FAILURE(bench.run_beat(rnd, mode, false));
    ASSERT_NO_FATAL_FAILURE(bench.run_beat(rnd, mode, false));  // both registers hold weights
    ASSERT_NO_FATAL_FAILURE(bench.reset_clears_weights(rnd, mode)) << dla::isa::mac_mode_name(mode);
  }
}

/// Only extreme operands (type minimum or maximum): the largest products of both signs,
/// in every mode.
TEST(RtlMacArrayEdges, ExtremeOperandsInEveryMode) {
  MacBench bench;
  EdgeRandom rnd(7);
  for (int n = 0; n < 50; ++n)
    for (const auto mode : {MacMode::A8W8, MacMode::A8W4, MacMode::A4W4, MacMode::A16W8})
      ASSERT_NO_FATAL_FAILURE(bench.run_beat(rnd, mode, rnd.coin() && mode != MacMode::A16W8, true));
}

}  // namespace
