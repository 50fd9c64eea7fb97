// test_rtl_vpool.cpp — the Verilated window datapath of the vector unit
// (rtl_models/rtl/dla_vpool.sv): average pools against dla::avgpool (window sum times
// M = avgpool_multiplier(N, S), any int8 shift, every rounding mode, output type and clip
// pair, the largest window at the extremes of i16), max pools against the ISA's
// definition (the maximum over the positions inside the input, T.min for a window wholly
// in the padding), and the one-position windows of VCOPY and VUPSAMPLE.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "Vdla_vpool.h"
#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;
namespace isa = dla::isa;

// RTL choices of dla_core_pkg.sv.
constexpr int kInBits = 16;
constexpr int kValueBits = 32;

int funct_of(const isa::Instruction& insn) { return isa::info_of(insn).funct; }

class Pool {
 public:
  Pool() : lanes_(static_cast<int>(dla::HwConfig::preset(DLA_RTL_PRESET).vector_lanes)) {}
  int lanes() const { return lanes_; }
  Block<Vdla_vpool>& dut() { return dut_; }

  /// Runs one window: x[k][l] at position k of lane l, taken where take[k][l]; returns
  /// y_o's lanes after the last beat.
  std::vector<std::int64_t> window(int op, const std::vector<std::vector<std::int64_t>>& x,
                                   const std::vector<std::vector<bool>>& take, const std::vector<bool>& en) {
    dut_->op_i = static_cast<std::uint8_t>(op);
    for (std::size_t k = 0; k < x.size(); ++k) {
      dut_->valid_i = 1;
      dut_->first_i = k == 0;
      dut_->last_i = k + 1 == x.size();
      for (int l = 0; l < lanes_; ++l) {
        const auto i = static_cast<std::size_t>(l);
        put(dut_->x_i, l * kInBits, kInBits, x[k][i]);
        put(dut_->take_i, l, 1, take[k][i] ? 1 : 0);
        put(dut_->lane_en_i, l, 1, en[i] ? 1 : 0);
      }
      dut_.tick();
      EXPECT_EQ(dut_->valid_o, 1) << "beat " << k;
    }
    dut_->valid_i = 0;
    std::vector<std::int64_t> y;
    for (int l = 0; l < lanes_; ++l) y.push_back(get_signed(dut_->y_o, l * kValueBits, kValueBits));
    return y;
  }

 private:
  int lanes_;
  Block<Vdla_vpool> dut_;
};

TEST(RtlVpool, AveragePoolsMatchAvgpool) {
  Pool pool;
  ASSERT_EQ(pool.dut()->valid_o, 0) << "valid_o after reset";
  const int lanes = pool.lanes();
  const int avg = funct_of(isa::VAvgPool{});
  EdgeRandom rnd(0x5eed0400);
  std::uint32_t sat_total = 0;
  for (int n = 0; n < 3000; ++n) {
    const auto in_type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto out_type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto mode = static_cast<dla::RoundMode>(rnd.uniform(0, dla::kNumRoundModes - 1));
    const std::int64_t window = rnd.coin() ? rnd.uniform(1, 9) : rnd.uniform(1, 40);
    // M from the contract for a config shift S, or any 16-bit multiplier.
    std::int64_t mult = rnd.value(1, 65535);
    if (rnd.coin()) {
      const auto m = dla::avgpool_multiplier(window, static_cast<int>(rnd.uniform(0, 31)));
      if (m) mult = *m;
    }
    const int shift = static_cast<int>(rnd.coin() ? rnd.value(-128, 127) : rnd.value(-4, 40));
    const auto oi = dla::dtype_info(out_type);
    std::int64_t clip_lo = INT32_MIN, clip_hi = INT32_MAX;
    if (rnd.coin()) {
      clip_lo = rnd.value(oi.min - 2, oi.max + 2);
      clip_hi = rnd.value(oi.min - 2, oi.max + 2);
    }
    const dla::OutputSpec out{out_type, mode, clip_lo, clip_hi};
    pool.dut()->in_type_i = static_cast<std::uint8_t>(in_type);
    pool.dut()->out_type_i = static_cast<std::uint8_t>(out_type);
    pool.dut()->mode_i = static_cast<std::uint8_t>(mode);
    pool.dut()->mult_i = static_cast<std::uint16_t>(mult);
    pool.dut()->shift_i = static_cast<std::uint8_t>(shift);
    pool.dut()->clip_lo_i = static_cast<std::uint32_t>(clip_lo);
    pool.dut()->clip_hi_i = static_cast<std::uint32_t>(clip_hi);
    std::vector<std::vector<std::int64_t>> x(static_cast<std::size_t>(window));
    std::vector<std::vector<bool>> take(static_cast<std::size_t>(window), std::vector<bool>(static_cast<std::size_t>(lanes), true));
    std::vector<std::int64_t> sum(static_cast<std::size_t>(lanes), 0);
    for (auto& pos : x) {
      for (int l = 0; l < lanes; ++l) {
        pos.push_back(rnd.value(dla::dtype_info(in_type).min, dla::dtype_info(in_type).max));
        sum[static_cast<std::size_t>(l)] += pos.back();
      }
    }
    std::vector<bool> en;
    for (int l = 0; l < lanes; ++l) en.push_back(rnd.uniform(0, 7) != 0);
    const std::vector<std::int64_t> y = pool.window(avg, x, take, en);
    for (int l = 0; l < lanes; ++l) {
      const auto i = static_cast<std::size_t>(l);
      bool sat = false;
      const std::int64_t want = dla::avgpool(sum[i], mult, shift, out, &sat);
      sat_total += en[i] && sat;
      ASSERT_EQ(y[i], want) << "window " << n << ", lane " << l << ": sum " << sum[i] << " * " << mult << " >> " << shift
                            << ", " << dla::round_mode_name(mode) << ", " << oi.name << " clip [" << clip_lo << ", "
                            << clip_hi << "]";
      ASSERT_EQ(get_signed(pool.dut()->sat_o, l, 1) != 0, en[i] && sat) << "window " << n << ", lane " << l;
    }
    ASSERT_EQ(pool.dut()->sat_count_o, sat_total) << "window " << n;
  }
}

TEST(RtlVpool, TheLargestWindowAtTheExtremesOfI16IsExact) {
  // 255 x 255 positions of -32768 (and of 32767): the sum needs all of the block's
  // accumulator, its product with the largest M all of the multiplier's width.
  Pool pool;
  const int lanes = pool.lanes();
  const std::int64_t window = 255 * 255;
  for (const std::int64_t v : {std::int64_t{-32768}, std::int64_t{32767}}) {
    const dla::OutputSpec out{dla::DType::I16, dla::RoundMode::HALF_EVEN};
    const int shift = 16;
    pool.dut()->in_type_i = static_cast<std::uint8_t>(dla::DType::I16);
    pool.dut()->out_type_i = static_cast<std::uint8_t>(out.type);
    pool.dut()->mode_i = static_cast<std::uint8_t>(out.mode);
    pool.dut()->mult_i = 65535;
    pool.dut()->shift_i = static_cast<std::uint8_t>(shift);
    pool.dut()->clip_lo_i = static_cast<std::uint32_t>(INT32_MIN);
    pool.dut()->clip_hi_i = static_cast<std::uint32_t>(INT32_MAX);
    const std::vector<std::vector<std::int64_t>> x(static_cast<std::size_t>(window), std::vector<std::int64_t>(static_cast<std::size_t>(lanes), v));
    const std::vector<std::vector<bool>> take(static_cast<std::size_t>(window), std::vector<bool>(static_cast<std::size_t>(lanes), true));
    const std::vector<std::int64_t> y = pool.window(funct_of(isa::VAvgPool{}), x, take, std::vector<bool>(static_cast<std::size_t>(lanes), true));
    for (int l = 0; l < lanes; ++l) EXPECT_EQ(y[static_cast<std::size_t>(l)], dla::avgpool(v * window, 65535, shift, out)) << v;
  }
}

TEST(RtlVpool, MaxPoolsTakeTheMaximumOverTheInputAndTypeMinInThePadding) {
  Pool pool;
  const int lanes = pool.lanes();
  const int max = funct_of(isa::VMaxPool{});
  EdgeRandom rnd(0x5eed0401);
  for (int n = 0; n < 3000; ++n) {
    const auto type = static_cast<dla::DType>(rnd.uniform(0, 4));
    const auto info = dla::dtype_info(type);
    // The engine passes T as the output type with open clips: the clamp never acts.
    pool.dut()->in_type_i = static_cast<std::uint8_t>(type);
    pool.dut()->out_type_i = static_cast<std::uint8_t>(type);
    pool.dut()->mode_i = static_cast<std::uint8_t>(rnd.uniform(0, dla::kNumRoundModes - 1));
    pool.dut()->mult_i = static_cast<std::uint16_t>(rnd.value(0, 65535));    // unused by max
    pool.dut()->shift_i = static_cast<std::uint8_t>(rnd.value(-128, 127));  // unused by max
    pool.dut()->clip_lo_i = static_cast<std::uint32_t>(INT32_MIN);
    pool.dut()->clip_hi_i = static_cast<std::uint32_t>(INT32_MAX);
    const auto window = static_cast<std::size_t>(rnd.uniform(1, 12));
    // Some windows lie wholly in the padding, some positions in all lanes.
    const int pad_odds = static_cast<int>(rnd.uniform(0, 3));
    std::vector<std::vector<std::int64_t>> x(window);
    std::vector<std::vector<bool>> take(window);
    std::vector<std::int64_t> want(static_cast<std::size_t>(lanes), info.min);
    for (std::size_t k = 0; k < window; ++k) {
      for (int l = 0; l < lanes; ++l) {
        x[k].push_back(rnd.value(info.min, info.max));
        take[k].push_back(rnd.uniform(0, 3) >= pad_odds);
        if (take[k].back()) want[static_cast<std::size_t>(l)] = std::max(want[static_cast<std::size_t>(l)], x[k].back());
      }
    }
    const std::vector<std::int64_t> y = pool.window(max, x, take, std::vector<bool>(static_cast<std::size_t>(lanes), true));
    for (int l = 0; l < lanes; ++l) {
      ASSERT_EQ(y[static_cast<std::size_t>(l)], want[static_cast<std::size_t>(l)]) << "window " << n << ", lane " << l << ", " << info.name;
    }
    ASSERT_EQ(pool.dut()->sat_count_o, 0u);
  }
}

TEST(RtlVpool, CopyAndUpsampleAreOnePositionWindowsThatPassTheValue) {
  Pool pool;
  const int lanes = pool.lanes();
  EdgeRandom rnd(0x5eed0402);
  for (const int op : {funct_of(isa::VCopy{}), funct_of(isa::VUpsample{})}) {
    for (int n = 0; n < 500; ++n) {
      const auto type = static_cast<dla::DType>(rnd.uniform(0, 4));
      const auto info = dla::dtype_info(type);
      pool.dut()->in_type_i = static_cast<std::uint8_t>(type);
      pool.dut()->out_type_i = static_cast<std::uint8_t>(type);
      pool.dut()->clip_lo_i = static_cast<std::uint32_t>(INT32_MIN);
      pool.dut()->clip_hi_i = static_cast<std::uint32_t>(INT32_MAX);
      std::vector<std::vector<std::int64_t>> x(1);
      for (int l = 0; l < lanes; ++l) x[0].push_back(rnd.value(info.min, info.max));
      const std::vector<std::int64_t> y = pool.window(op, x, {std::vector<bool>(static_cast<std::size_t>(lanes), true)},
                                                      std::vector<bool>(static_cast<std::size_t>(lanes), true));
      ASSERT_EQ(y, x[0]) << "op " << op << ", " << info.name;
    }
  }
}

}  // namespace
