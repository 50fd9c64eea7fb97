// test_rtl_vlut.cpp — the Verilated VLUT lanes of the vector unit (rtl_models/rtl/dla_vlut.sv)
// against dla::lut_lookup: random tables (any int16 entries, also ones the output type
// clamps) loaded block by block, every input of the 4- and 8-bit types, all 65,536 i16
// inputs (interpolated, two read ports per element) in every rounding mode, every output
// type, the saturation flags and the counter.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "Vdla_vlut.h"
#include "dla/hw_config.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;

// RTL choices of dla_core_pkg.sv and the record layout (int16 entries).
constexpr int kInBits = 16;
constexpr int kValueBits = 32;
constexpr int kEntryBits = 16;

class Lut {
 public:
  Lut() : lanes_(static_cast<int>(dla::HwConfig::preset(DLA_RTL_PRESET).lut_lanes)) {}
  int lanes() const { return lanes_; }
  Block<Vdla_vlut>& dut() { return dut_; }

  /// Loads `entry` block by block, as the rtl engine does; the slots past it get junk.
  void load(const std::vector<std::int64_t>& entry, EdgeRandom& rnd) {
    const int blocks = static_cast<int>((entry.size() + static_cast<std::size_t>(lanes_) - 1) / static_cast<std::size_t>(lanes_));
    dut_->load_i = 1;
    for (int b = 0; b < blocks; ++b) {
      dut_->load_block_i = static_cast<std::uint8_t>(b);
      for (int l = 0; l < lanes_; ++l) {
        const auto j = static_cast<std::size_t>(b * lanes_ + l);
        put(dut_->load_data_i, l * kEntryBits, kEntryBits, j < entry.size() ? entry[j] : rnd.uniform(-32768, 32767));
      }
      dut_.tick();
    }
    dut_->load_i = 0;
  }

  /// Looks up `xs` (at most lanes, or lanes / 2 for i16) and checks every lane and the
  /// saturation counter against dla::lut_lookup. The lanes without an element get junk
  /// inputs; in an i16 beat the upper half of the lanes, which only read knots, is also
  /// enabled and must count nothing.
  void check(const std::vector<std::int64_t>& entry, const std::vector<std::int64_t>& xs, dla::DType in, dla::DType out,
             dla::RoundMode mode, EdgeRandom& rnd) {
    dut_->valid_i = 1;
    dut_->in_type_i = static_cast<std::uint8_t>(in);
    dut_->out_type_i = static_cast<std::uint8_t>(out);
    dut_->mode_i = static_cast<std::uint8_t>(mode);
    const auto info = dla::dtype_info(in);
    const int per = dla::lut_interpolates(in) ? lanes_ / 2 : lanes_;
    for (int l = 0; l < lanes_; ++l) {
      const auto i = static_cast<std::size_t>(l);
      put(dut_->x_i, l * kInBits, kInBits, i < xs.size() ? xs[i] : rnd.value(info.min, info.max));
      put(dut_->lane_en_i, l, 1, i < xs.size() || l >= per ? 1 : 0);
    }
    dut_.tick();
    dut_->valid_i = 0;
    ASSERT_EQ(dut_->valid_o, 1);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      bool sat = false;
      const std::int64_t want = dla::lut_lookup(entry, xs[i], in, out, mode, &sat);
      const int l = static_cast<int>(i);
      ASSERT_EQ(get_signed(dut_->y_o, l * kValueBits, kValueBits), want)
          << dla::dtype_info(in).name << " -> " << dla::dtype_info(out).name << " " << dla::round_mode_name(mode)
          << ", lane " << l << ", x " << xs[i];
      ASSERT_EQ(get_signed(dut_->sat_o, l, 1) != 0, sat) << "lane " << l << ", x " << xs[i];
      sat_total_ += sat;
    }
    ASSERT_EQ(dut_->sat_count_o, sat_total_);
  }

 private:
  int lanes_;
  Block<Vdla_vlut> dut_;
  std::uint32_t sat_total_ = 0;
};

std::vector<std::int64_t> random_table(dla::DType in, dla::DType out, EdgeRandom& rnd) {
  std::vector<std::int64_t> e(static_cast<std::size_t>(dla::lut_entries(in)));
  // Mostly inside the output type (as build_table makes them), sometimes any int16.
  const bool wide = rnd.uniform(0, 3) == 0;
  const auto oi = dla::dtype_info(out);
  for (auto& v : e) v = wide ? rnd.value(-32768, 32767) : rnd.value(oi.min, oi.max);
  return e;
}

TEST(RtlVlut, EveryInputOfEveryTypeMatchesLutLookup) {
  Lut lut;
  ASSERT_EQ(lut.dut()->valid_o, 0) << "valid_o after reset";
  EdgeRandom rnd(0x5eed0300);
  for (int round = 0; round < 3; ++round) {
    for (int t = 0; t <= 4; ++t) {
      const auto in = static_cast<dla::DType>(t);
      const auto info = dla::dtype_info(in);
      for (int o = 0; o <= 4; ++o) {
        const auto out = static_cast<dla::DType>(o);
        // Every input (all 65,536 for i16, in each rounding mode) in the first round,
        // random inputs in random beat sizes after.
        const bool exhaustive = round == 0;
        for (int m = 0; m < dla::kNumRoundModes; ++m) {
          const auto mode = static_cast<dla::RoundMode>(m);
          if (dla::lut_interpolates(in) && !exhaustive && m != round) continue;
          const std::vector<std::int64_t> entry = random_table(in, out, rnd);
          lut.load(entry, rnd);
          const int per = dla::lut_interpolates(in) ? lut.lanes() / 2 : lut.lanes();
          std::vector<std::int64_t> xs;
          const std::int64_t n = exhaustive ? info.max - info.min + 1 : 600;
          for (std::int64_t k = 0; k < n; ++k) {
            xs.push_back(exhaustive ? info.min + k : rnd.value(info.min, info.max));
            // Full beats, and in the random rounds some partial ones.
            const bool full = static_cast<int>(xs.size()) == per || (!exhaustive && rnd.uniform(0, 7) == 0);
            if (full || k + 1 == n) {
              lut.check(entry, xs, in, out, mode, rnd);
              if (testing::Test::HasFatalFailure()) return;
              xs.clear();
            }
          }
          if (!dla::lut_interpolates(in)) break;  // the mode does not matter without interpolation
        }
      }
    }
  }
}

TEST(RtlVlut, AnIdleCycleHoldsTheOutputs) {
  Lut lut;
  EdgeRandom rnd(0x5eed0301);
  const std::vector<std::int64_t> entry = random_table(dla::DType::I8, dla::DType::I8, rnd);
  lut.load(entry, rnd);
  lut.check(entry, {-128, 127, 0, 5}, dla::DType::I8, dla::DType::I8, dla::RoundMode::HALF_UP, rnd);
  const std::int64_t held = get_signed(lut.dut()->y_o, 0, kValueBits);
  put(lut.dut()->x_i, 0, kInBits, 1);
  lut.dut().tick();
  EXPECT_EQ(lut.dut()->valid_o, 0);
  EXPECT_EQ(get_signed(lut.dut()->y_o, 0, kValueBits), held);
}

}  // namespace
