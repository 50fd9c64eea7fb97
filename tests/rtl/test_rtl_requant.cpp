// test_rtl_requant.cpp — the Verilated requantizer (rtl_models/rtl/dla_requant.sv) against
// dla::finalize_acc and dla::requantize: every lane's value, saturation and overflow flag
// and the two counters, over random and edge inputs in every output type, rounding mode
// and overflow policy.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "Vdla_requant.h"
#include "Vdla_requant_narrow.h"
#include "dla/hw_config.hpp"
#include "dla/numerics.hpp"
#include "rtl_harness.hpp"

namespace {

using dla::rtl_test::Block;
using dla::rtl_test::EdgeRandom;
using dla::rtl_test::get_signed;
using dla::rtl_test::put;

// RTL choices of dla_core_pkg.sv; the port-width check below catches a disagreement.
constexpr int kAccWordBits = 48;
constexpr int kShiftBits = 8;
constexpr int kValueBits = 32;

struct Beat {
  dla::DType type;
  dla::RoundMode mode;
  dla::OverflowPolicy policy;
  std::int64_t clip_lo, clip_hi;
  std::vector<std::int64_t> acc;
  std::vector<int> shift;
  std::vector<bool> enabled;
};

/// A requantizer model and the acc_bits it runs at (its acc_bits_i input): Vdla_requant is
/// built for the widest acc_bits (ACC_BITS_MAX) and runs any; Vdla_requant_narrow is built
/// with ACC_W = DLA_RTL_TB_NARROW_ACC_BITS (rtl_models/CMakeLists.txt).
template <class Model>
class RequantBench {
 public:
  explicit RequantBench(int acc_bits)
      : lanes_(static_cast<int>(dla::HwConfig::preset(DLA_RTL_PRESET).requant_lanes)), acc_bits_(acc_bits) {
    EXPECT_EQ(sizeof(dut_->acc_i) * 8, static_cast<std::size_t>((lanes_ * kAccWordBits + 31) / 32 * 32))
        << "acc_i is not requant_lanes x " << kAccWordBits << " bits";
    EXPECT_EQ(dut_->valid_o, 0) << "valid_o after reset";
  }
  int lanes() const { return lanes_; }
  int acc_bits() const { return acc_bits_; }

  /// Drives one beat, clocks it and checks every lane and both counters.
  void check(const Beat& b) {
    dut_->valid_i = 1;
    dut_->out_type_i = static_cast<std::uint8_t>(b.type);
    dut_->mode_i = static_cast<std::uint8_t>(b.mode);
    dut_->policy_i = static_cast<std::uint8_t>(b.policy);
    dut_->acc_bits_i = static_cast<std::uint8_t>(acc_bits_);
    dut_->clip_lo_i = static_cast<std::uint32_t>(b.clip_lo);
    dut_->clip_hi_i = static_cast<std::uint32_t>(b.clip_hi);
    for (int l = 0; l < lanes_; ++l) {
      put(dut_->acc_i, l * kAccWordBits, kAccWordBits, b.acc[static_cast<std::size_t>(l)]);
      put(dut_->shift_i, l * kShiftBits, kShiftBits, b.shift[static_cast<std::size_t>(l)]);
      put(dut_->lane_en_i, l, 1, b.enabled[static_cast<std::size_t>(l)] ? 1 : 0);
    }
    dut_.tick();
    ASSERT_EQ(dut_->valid_o, 1);

    const dla::AccSpec spec{acc_bits(), b.policy};
    const dla::OutputSpec out{b.type, b.mode, b.clip_lo, b.clip_hi};
    for (int l = 0; l < lanes_; ++l) {
      const auto i = static_cast<std::size_t>(l);
      bool ovf = false, sat = false;
      const std::int64_t fin = dla::finalize_acc(b.acc[i], spec, &ovf);
      const std::int64_t y = dla::requantize(fin, b.shift[i], out, &sat);
      const bool en = b.enabled[i];
      sat_total_ += en && sat;
      ovf_total_ += en && ovf;
      ASSERT_EQ(get_signed(dut_->y_o, l * kValueBits, kValueBits), y)
          << "lane " << l << ": acc " << b.acc[i] << ", shift " << b.shift[i] << ", type "
          << dla::dtype_info(b.type).name << ", " << dla::round_mode_name(b.mode) << ", "
          << dla::overflow_policy_name(b.policy) << ", clip [" << b.clip_lo << ", " << b.clip_hi << "]";
      ASSERT_EQ(get_signed(dut_->sat_o, l, 1) != 0, en && sat) << "saturation flag, lane " << l;
      ASSERT_EQ(get_signed(dut_->ovf_o, l, 1) != 0, en && ovf) << "overflow flag, lane " << l;
    }
    ASSERT_EQ(dut_->sat_count_o, sat_total_);
    ASSERT_EQ(dut_->ovf_count_o, ovf_total_);
  }

  /// A cycle without valid_i, with other inputs changed: valid_o falls, and the outputs
  /// and counters hold.
  void idle() {
    std::vector<std::int64_t> y;
    for (int l = 0; l < lanes_; ++l) y.push_back(get_signed(dut_->y_o, l * kValueBits, kValueBits));
    const auto sat = get_signed(dut_->sat_o, 0, lanes_), ovf = get_signed(dut_->ovf_o, 0, lanes_);
    dut_->valid_i = 0;
    for (int l = 0; l < lanes_; ++l) put(dut_->acc_i, l * kAccWordBits, kAccWordBits, -(std::int64_t{1} << 46) + l);
    dut_.tick();
    ASSERT_EQ(dut_->valid_o, 0);
    for (int l = 0; l < lanes_; ++l) ASSERT_EQ(get_signed(dut_->y_o, l * kValueBits, kValueBits), y[static_cast<std::size_t>(l)]);
    ASSERT_EQ(get_signed(dut_->sat_o, 0, lanes_), sat);
    ASSERT_EQ(get_signed(dut_->ovf_o, 0, lanes_), ovf);
    ASSERT_EQ(dut_->sat_count_o, sat_total_);
    ASSERT_EQ(dut_->ovf_count_o, ovf_total_);
  }

 private:
  int lanes_;
  int acc_bits_;
  Block<Model> dut_;
  std::uint32_t sat_total_ = 0, ovf_total_ = 0;
};

template <class Model>
void random_and_edge_inputs(RequantBench<Model>& bench) {
  EdgeRandom rnd(0x5eed0001);
  const std::int64_t word_max = (std::int64_t{1} << (kAccWordBits - 1)) - 1;
  const std::int64_t acc_max = (std::int64_t{1} << (bench.acc_bits() - 1)) - 1;
  for (int n = 0; n < 4000; ++n) {
    Beat b;
    b.type = static_cast<dla::DType>(rnd.uniform(0, dla::kNumDTypes - 1));
    b.mode = static_cast<dla::RoundMode>(rnd.uniform(0, dla::kNumRoundModes - 1));
    b.policy = static_cast<dla::OverflowPolicy>(rnd.uniform(0, 1));
    const auto info = dla::dtype_info(b.type);
    switch (rnd.uniform(0, 3)) {
      case 0: b.clip_lo = INT32_MIN; b.clip_hi = INT32_MAX; break;            // no clip
      case 1: b.clip_lo = 0; b.clip_hi = rnd.value(0, info.max); break;        // ReLU / ReLU6
      case 2: b.clip_lo = rnd.value(info.min, info.max); b.clip_hi = rnd.value(info.min, info.max); break;  // may cross
      default: b.clip_lo = rnd.value(INT32_MIN, INT32_MAX); b.clip_hi = rnd.value(INT32_MIN, INT32_MAX); break;
    }
    for (int l = 0; l < bench.lanes(); ++l) {
      // Mostly inside or near the acc_bits range, sometimes anywhere in the ACC word.
      const std::int64_t bound = rnd.uniform(0, 3) == 0 ? word_max : 4 * acc_max + 3;
      b.acc.push_back(rnd.value(-bound - 1, bound));
      b.shift.push_back(static_cast<int>(rnd.uniform(0, 2) == 0 ? rnd.value(-128, 127) : rnd.value(-3, 40)));
      b.enabled.push_back(rnd.uniform(0, 7) != 0);
    }
    ASSERT_NO_FATAL_FAILURE(bench.check(b)) << "beat " << n;
    if (n % 7 == 0) {
      ASSERT_NO_FATAL_FAILURE(bench.idle()) << "idle after beat " << n;
    }
  }
}

/// Every small value against every small shift: all rounding ties, both signs, every type.
template <class Model>
void ties_in_every_mode_and_type(RequantBench<Model>& bench) {
  const int lanes = bench.lanes();
  for (int t = 0; t < dla::kNumDTypes; ++t)
    for (int m = 0; m < dla::kNumRoundModes; ++m)
      for (int s = -3; s <= 5; ++s)
        for (std::int64_t v0 = -40; v0 <= 40; v0 += lanes) {
          Beat b{static_cast<dla::DType>(t), static_cast<dla::RoundMode>(m), dla::OverflowPolicy::WRAP,
                 INT32_MIN, INT32_MAX, {}, {}, {}};
          for (int l = 0; l < lanes; ++l) {
            b.acc.push_back(v0 + l);
            b.shift.push_back(s);
            b.enabled.push_back(true);
          }
          ASSERT_NO_FATAL_FAILURE(bench.check(b));
        }
}

/// The accumulator bounds: exactly representable, one past, far past, under both policies.
template <class Model>
void accumulator_bounds(RequantBench<Model>& bench) {
  const std::int64_t hi = (std::int64_t{1} << (bench.acc_bits() - 1)) - 1, lo = -hi - 1;
  const std::int64_t word_hi = (std::int64_t{1} << (kAccWordBits - 1)) - 1;
  const std::vector<std::int64_t> values = {lo, hi, lo - 1, hi + 1, 2 * lo, 2 * hi + 1, 3 * hi,
                                            -word_hi - 1, word_hi, 0, -1, 1};
  for (const auto policy : {dla::OverflowPolicy::WRAP, dla::OverflowPolicy::SATURATE_FINAL})
    for (const int shift : {0, 1, 8, 31, -1})
      for (std::size_t first = 0; first < values.size(); ++first) {
        Beat b{dla::DType::I32, dla::RoundMode::HALF_UP, policy, INT32_MIN, INT32_MAX, {}, {}, {}};
        for (int l = 0; l < bench.lanes(); ++l) {
          b.acc.push_back(values[(first + static_cast<std::size_t>(l)) % values.size()]);
          b.shift.push_back(shift);
          b.enabled.push_back(true);
        }
        ASSERT_NO_FATAL_FAILURE(bench.check(b));
      }
}

int preset_acc_bits() { return static_cast<int>(dla::HwConfig::preset(DLA_RTL_PRESET).acc_bits); }

TEST(RtlRequant, MatchesTheContractOnRandomAndEdgeInputs) {
  RequantBench<Vdla_requant> bench(preset_acc_bits());
  random_and_edge_inputs(bench);
}
TEST(RtlRequant, SweepsTiesInEveryModeAndType) {
  RequantBench<Vdla_requant> bench(preset_acc_bits());
  ties_in_every_mode_and_type(bench);
}
TEST(RtlRequant, FinalizesAtTheAccumulatorBoundsUnderBothPolicies) {
  RequantBench<Vdla_requant> bench(preset_acc_bits());
  accumulator_bounds(bench);
}
TEST(RtlRequant, FinalizesAtEveryAccBitsOfTheConfigAtRunTime) {
  // acc_bits is an input: the one model finalizes at 8 (the config's minimum), 16 and 24.
  for (const int acc_bits : {8, 16, 24}) {
    SCOPED_TRACE("acc_bits " + std::to_string(acc_bits));
    RequantBench<Vdla_requant> bench(acc_bits);
    accumulator_bounds(bench);
    random_and_edge_inputs(bench);
  }
}
TEST(RtlRequantNarrowAcc, MatchesTheContractOnRandomAndEdgeInputs) {
  RequantBench<Vdla_requant_narrow> bench(DLA_RTL_TB_NARROW_ACC_BITS);
  random_and_edge_inputs(bench);
}
TEST(RtlRequantNarrowAcc, FinalizesAtTheAccumulatorBoundsUnderBothPolicies) {
  RequantBench<Vdla_requant_narrow> bench(DLA_RTL_TB_NARROW_ACC_BITS);
  accumulator_bounds(bench);
}

}  // namespace
