// test_rtl_vadd.cpp — the Verilated VADD lanes of the vector unit (rtl_models/rtl/dla_vadd.sv)
// against dla::eltwise_add: values, saturation flags and the counter, over random and edge
// operands of every input and output type, alignment shifts in [0, 31], any int8 output
// shift, every rounding mode and clip pair.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "Vdla_vadd.h"
#include "dla/hw_config.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;

// RTL choices of dla_core_pkg.sv.
constexpr int kInBits = 16;
constexpr int kValueBits = 32;

TEST(RtlVadd, MatchesEltwiseAddOnRandomAndEdgeInputs) {
  const int lanes = static_cast<int>(dla::HwConfig::preset(DLA_RTL_PRESET).vector_lanes);
  Block<Vdla_vadd> dut;
  ASSERT_EQ(sizeof(dut->a_i) * 8, static_cast<std::size_t>((lanes * kInBits + 31) / 32 * 32))
      << "a_i is not vector_lanes x " << kInBits << " bits";
  ASSERT_EQ(dut->valid_o, 0) << "valid_o after reset";
  EdgeRandom rnd(0x5eed0200);
  std::uint32_t sat_total = 0;
  for (int n = 0; n < 4000; ++n) {
    // VADD's types are i4..i16 (the field's range); a and b may differ.
    const auto a_type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto b_type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto y_type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto mode = static_cast<dla::RoundMode>(rnd.uniform(0, dla::kNumRoundModes - 1));
    const dla::AddShifts sh{static_cast<int>(rnd.value(0, 31)), static_cast<int>(rnd.value(0, 31)),
                            static_cast<int>(rnd.coin() ? rnd.value(-128, 127) : rnd.value(-4, 40))};
    const auto yi = dla::dtype_info(y_type);
    std::int64_t clip_lo = INT32_MIN, clip_hi = INT32_MAX;
    if (rnd.coin()) {
      clip_lo = rnd.value(yi.min - 2, yi.max + 2);
      clip_hi = rnd.value(yi.min - 2, yi.max + 2);
    }
    const dla::OutputSpec out{y_type, mode, clip_lo, clip_hi};

    dut->valid_i = 1;
    dut->shift_a_i = static_cast<std::uint8_t>(sh.shift_a);
    dut->shift_b_i = static_cast<std::uint8_t>(sh.shift_b);
    dut->shift_y_i = static_cast<std::uint8_t>(sh.shift_y);
    dut->y_type_i = static_cast<std::uint8_t>(y_type);
    dut->mode_i = static_cast<std::uint8_t>(mode);
    dut->clip_lo_i = static_cast<std::uint32_t>(clip_lo);
    dut->clip_hi_i = static_cast<std::uint32_t>(clip_hi);
    std::vector<std::int64_t> a, b;
    std::vector<bool> en;
    for (int l = 0; l < lanes; ++l) {
      a.push_back(rnd.value(dla::dtype_info(a_type).min, dla::dtype_info(a_type).max));
      b.push_back(rnd.value(dla::dtype_info(b_type).min, dla::dtype_info(b_type).max));
      en.push_back(rnd.uniform(0, 7) != 0);
      put(dut->a_i, l * kInBits, kInBits, a.back());
      put(dut->b_i, l * kInBits, kInBits, b.back());
      put(dut->lane_en_i, l, 1, en.back() ? 1 : 0);
    }
    dut.tick();
    ASSERT_EQ(dut->valid_o, 1);
    for (int l = 0; l < lanes; ++l) {
      const auto i = static_cast<std::size_t>(l);
      bool sat = false;
      const std::int64_t y = dla::eltwise_add(a[i], b[i], sh, out, &sat);
      sat_total += en[i] && sat;
      ASSERT_EQ(get_signed(dut->y_o, l * kValueBits, kValueBits), y)
          << "beat " << n << ", lane " << l << ": a " << a[i] << " << " << sh.shift_a << ", b " << b[i]
          << " << " << sh.shift_b << ", >> " << sh.shift_y << ", " << dla::round_mode_name(mode) << ", "
          << dla::dtype_info(y_type).name << " clip [" << clip_lo << ", " << clip_hi << "]";
      ASSERT_EQ(get_signed(dut->sat_o, l, 1) != 0, en[i] && sat) << "beat " << n << ", lane " << l;
    }
    ASSERT_EQ(dut->sat_count_o, sat_total) << "beat " << n;
    if (n % 7 == 0) {  // an idle cycle, other inputs changed: valid_o falls, outputs hold
      const auto held_sat = get_signed(dut->sat_o, 0, lanes);
      std::vector<std::int64_t> held;
      for (int l = 0; l < lanes; ++l) {
        held.push_back(get_signed(dut->y_o, l * kValueBits, kValueBits));
        put(dut->a_i, l * kInBits, kInBits, a[static_cast<std::size_t>(l)] ^ 1);
      }
      dut->valid_i = 0;
      dut.tick();
      ASSERT_EQ(dut->valid_o, 0) << "idle after beat " << n;
      for (int l = 0; l < lanes; ++l) ASSERT_EQ(get_signed(dut->y_o, l * kValueBits, kValueBits), held[static_cast<std::size_t>(l)]);
      ASSERT_EQ(get_signed(dut->sat_o, 0, lanes), held_sat);
      ASSERT_EQ(dut->sat_count_o, sat_total);
    }
  }
}

}  // namespace
