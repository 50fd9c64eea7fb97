// tests/isa/test_requant_batch.cpp — dla/requant_batch.hpp against a reference written
// here on __int128 with other methods than dla/numerics.hpp:
//   * accumulator: the range test, the wrap ((v mod 2^b) + 2^b) mod 2^b, shifted down by
//     2^b from 2^(b-1) up, and the saturation, all in __int128;
//   * rounding: floor division of rationals (HALF_UP = floor((2v + d) / 2d), HALF_AWAY
//     by symmetry, HALF_EVEN by comparing twice the remainder with d), and v * 2^-s for
//     s <= 0, exact in __int128;
//   * output range: the literal type ranges of isa/README.md section 1 with the clips.
// Every value the batch writes (and every count and flag it returns) is compared with
// the reference; bytes the batch must not write are checked unchanged. The blocks are
// laid out so that every path of the header runs: shifts uniform (contiguous and
// strided), usual per-channel shifts, and unusual ones (negative, >= 63).

#include "dla/requant_batch.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using dla::AccSpec;
using dla::AddShifts;
using dla::DType;
using dla::OutputSpec;
using dla::OverflowPolicy;
using dla::RequantCounts;
using dla::RoundMode;
using dla::batch_detail::Isa;

/// The public functions (kBest) and every vector copy of the header this CPU runs.
std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kBest, Isa::kAvx512, Isa::kAvx2, Isa::kPortable}) {
    if (dla::batch_detail::isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

const char* isa_str(Isa isa) {
  switch (isa) {
    case Isa::kBest: return "best";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kPortable: return "portable";
  }
  return "?";
}

__extension__ typedef __int128 i128;  // __extension__: no -Wpedantic warning

constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();

constexpr std::array<RoundMode, 4> kModes = {RoundMode::HALF_UP, RoundMode::HALF_AWAY, RoundMode::HALF_EVEN,
                                             RoundMode::FLOOR};

i128 pow2(int k) { return static_cast<i128>(1) << k; }

/// floor(n / d) for d > 0.
i128 floor_div(i128 n, i128 d) {
  const i128 q = n / d;
  return (n % d != 0 && n < 0) ? q - 1 : q;
}

/// v * 2^-s rounded by mode (-40 <= s <= 120, |v| <= 2^63).
i128 ref_round(i128 v, int s, RoundMode mode) {
  if (s <= 0) return v * pow2(-s);
  const i128 d = pow2(s);
  switch (mode) {
    case RoundMode::FLOOR: return floor_div(v, d);
    case RoundMode::HALF_UP: return floor_div(2 * v + d, 2 * d);
    case RoundMode::HALF_AWAY: return v >= 0 ? floor_div(2 * v + d, 2 * d) : -floor_div(-2 * v + d, 2 * d);
    case RoundMode::HALF_EVEN: {
      const i128 q = floor_div(v, d);
      const i128 twice_r = 2 * (v - q * d);
      if (twice_r != d) return twice_r > d ? q + 1 : q;
      return (q % 2 == 0) ? q : q + 1;
    }
  }
  return 0;
}

/// The accumulator value of an exact sum: acc_bits and the overflow policy.
i128 ref_acc(i128 v, int bits, OverflowPolicy policy, bool& overflowed) {
  const i128 lo = -pow2(bits - 1), hi = pow2(bits - 1) - 1;
  overflowed = v < lo || v > hi;
  if (!overflowed) return v;
  if (policy == OverflowPolicy::SATURATE_FINAL) return v < lo ? lo : hi;
  const i128 m = pow2(bits);
  const i128 w = ((v % m) + m) % m;
  return w >= pow2(bits - 1) ? w - m : w;
}

struct Range {
  std::int64_t lo, hi;
};

/// The literal type range narrowed by the clips.
Range out_range(DType t, std::int64_t clip_lo, std::int64_t clip_hi) {
  Range r{};
  switch (t) {
    case DType::I4: r = {-8, 7}; break;
    case DType::U4: r = {0, 15}; break;
    case DType::I8: r = {-128, 127}; break;
    case DType::U8: r = {0, 255}; break;
    case DType::I16: r = {-32768, 32767}; break;
    case DType::I32: r = {-2147483648LL, 2147483647LL}; break;
  }
  return {std::max(r.lo, clip_lo), std::min(r.hi, clip_hi)};
}

struct RefOut {
  std::int64_t y;
  bool overflowed;
  bool saturated;
};

RefOut ref_requant(std::int64_t acc, int bits, OverflowPolicy policy, int shift, RoundMode mode, Range r) {
  RefOut o{};
  const i128 rounded = ref_round(ref_acc(acc, bits, policy, o.overflowed), shift, mode);
  o.saturated = rounded < r.lo || rounded > r.hi;
  o.y = static_cast<std::int64_t>(rounded < r.lo ? r.lo : rounded > r.hi ? r.hi : rounded);
  return o;
}

const char* mode_str(RoundMode m) { return dla::round_mode_name(m).data(); }

/// Accumulators that reach every case: small values, ties and their neighbours for the
/// shifts in use, both sides of the acc_bits range, and the int64 extremes.
std::vector<std::int64_t> accumulators(std::mt19937_64& rng, std::size_t n, const std::vector<int>& shifts,
                                       int bits) {
  std::vector<std::int64_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int s = shifts[rng() % shifts.size()];
    const std::int64_t small = static_cast<std::int64_t>(rng() % 2001) - 1000;
    switch (rng() % 8) {
      case 0: v[i] = small; break;
      case 1:
      case 2: {
        // k * 2^s + 2^(s-1) + {-1, 0, 1}: ties and the values next to them.
        const int e = std::min(std::max(s, 1), 40);
        const std::int64_t k = static_cast<std::int64_t>(rng() % 4001) - 2000;
        v[i] = k * (std::int64_t{1} << e) + (std::int64_t{1} << (e - 1)) + static_cast<std::int64_t>(rng() % 3) - 1;
        break;
      }
      case 3: {
        // Around the edges of the acc_bits range (inside and outside it).
        const std::int64_t edge = bits >= 64 ? kI64Max : (std::int64_t{1} << (bits - 1));
        const std::int64_t d = static_cast<std::int64_t>(rng() % 5) - 2;
        v[i] = (rng() % 2 == 0) ? (bits >= 64 ? kI64Max - 2 - d : edge + d) : (bits >= 64 ? kI64Min + 2 + d : -edge + d);
        break;
      }
      case 4: v[i] = static_cast<std::int64_t>(rng()); break;  // anything in int64
      case 5: {
        const std::array<std::int64_t, 6> extremes = {kI64Min, kI64Min + 1, kI64Max, kI64Max - 1, -1, 0};
        v[i] = extremes[rng() % extremes.size()];
        break;
      }
      default: {
        // Magnitudes of up to 2^(bits + 2): inside and just outside the accumulator.
        const int m = std::min(bits + 2, 62);
        v[i] = static_cast<std::int64_t>(rng() % (std::uint64_t{1} << m)) - (std::int64_t{1} << (m - 1));
        break;
      }
    }
  }
  return v;
}

/// One requantize_rows case: a block of rows x channels inside strided arrays, checked
/// element by element, with the gaps between rows left unchanged.
template <typename Out, typename Shift>
void check_block(std::mt19937_64& rng, std::size_t rows, std::size_t channels, std::size_t acc_pad,
                 std::size_t y_pad, const std::vector<int>& shift_set, bool uniform, AccSpec acc, const OutputSpec& out,
                 bool with_flags, Isa isa) {
  const auto acc_stride = static_cast<std::ptrdiff_t>(channels + acc_pad);
  const auto y_stride = static_cast<std::ptrdiff_t>(channels + y_pad);
  std::vector<Shift> shifts(channels);
  const int first = shift_set[rng() % shift_set.size()];
  std::vector<int> used;
  for (std::size_t c = 0; c < channels; ++c) {
    const int s = uniform ? first : shift_set[rng() % shift_set.size()];
    shifts[c] = static_cast<Shift>(s);
    used.push_back(s);
  }
  const std::vector<std::int64_t> acc_values = accumulators(rng, rows * static_cast<std::size_t>(acc_stride), used,
                                                            acc.bits);
  constexpr Out kSentinel = static_cast<Out>(0x5A);
  std::vector<Out> y(rows * static_cast<std::size_t>(y_stride), kSentinel);
  std::vector<unsigned char> flag_bytes(y.size(), 2);  // 2: never written as a bool
  bool* flags = reinterpret_cast<bool*>(flag_bytes.data());
  RequantCounts got;
  if (isa == Isa::kBest) {
    got = with_flags ? dla::requantize_rows(acc_values.data(), acc_stride, rows, channels, shifts.data(), acc, out,
                                            y.data(), y_stride, flags)
                     : dla::requantize_rows(acc_values.data(), acc_stride, rows, channels, shifts.data(), acc, out,
                                            y.data(), y_stride);
  } else if (with_flags) {
    got = dla::batch_detail::requant_block<true>(acc_values.data(), acc_stride, rows, channels, shifts.data(), acc,
                                                 out, y.data(), y_stride, flags, isa);
  } else {
    got = dla::batch_detail::requant_block<false>(acc_values.data(), acc_stride, rows, channels, shifts.data(), acc,
                                                  out, y.data(), y_stride, nullptr, isa);
  }
  const Range r = out_range(out.type, out.clip_lo, out.clip_hi);
  std::uint64_t overflows = 0, saturations = 0;
  for (std::size_t row = 0; row < rows; ++row) {
    for (std::size_t c = 0; c < static_cast<std::size_t>(y_stride); ++c) {
      const std::size_t yi = row * static_cast<std::size_t>(y_stride) + c;
      if (c >= channels) {
        ASSERT_EQ(y[yi], kSentinel) << "wrote the gap after row " << row;
        ASSERT_EQ(flag_bytes[yi], 2) << "wrote the flag gap after row " << row;
        continue;
      }
      const std::int64_t a = acc_values[row * static_cast<std::size_t>(acc_stride) + c];
      const RefOut want = ref_requant(a, acc.bits, acc.policy, shifts[c], out.mode, r);
      overflows += want.overflowed ? 1 : 0;
      saturations += want.saturated ? 1 : 0;
      ASSERT_EQ(static_cast<std::int64_t>(y[yi]), want.y)
          << "acc " << a << " shift " << static_cast<int>(shifts[c]) << " mode " << mode_str(out.mode)
          << " acc_bits " << acc.bits << " policy " << dla::overflow_policy_name(acc.policy) << " range [" << r.lo
          << ", " << r.hi << "] rows " << rows << " channels " << channels << " uniform " << uniform << " isa "
          << isa_str(isa);
      if (with_flags) {
        ASSERT_EQ(flag_bytes[yi], want.saturated ? 1 : 0) << "saturation flag of acc " << a << " shift "
                                                          << static_cast<int>(shifts[c]);
      }
    }
  }
  EXPECT_EQ(got.overflows, overflows);
  EXPECT_EQ(got.saturations, saturations);
}

struct OutCase {
  DType type;
  std::int64_t clip_lo, clip_hi;
};

const std::vector<OutCase>& out_cases() {
  static const std::vector<OutCase> cases = {
      {DType::I8, kI64Min, kI64Max},  {DType::I8, 0, kI64Max},      {DType::I8, -5, 6},
      {DType::U8, kI64Min, kI64Max},  {DType::I16, kI64Min, kI64Max}, {DType::I16, 0, 6 * 256},
      {DType::I32, kI64Min, kI64Max}, {DType::I4, kI64Min, kI64Max}, {DType::U4, 0, 6},
  };
  return cases;
}

/// Every output case, through the narrowest Out that holds it (what an engine passes),
/// on one vector copy.
template <typename Shift>
void check_all_outputs_on(std::mt19937_64& rng, std::size_t rows, std::size_t channels, std::size_t acc_pad,
                          std::size_t y_pad, const std::vector<int>& shift_set, bool uniform, AccSpec acc,
                          RoundMode mode, bool with_flags, Isa isa) {
  for (const OutCase& oc : out_cases()) {
    const OutputSpec out{oc.type, mode, oc.clip_lo, oc.clip_hi};
    SCOPED_TRACE(std::string("type ") + std::string(dla::dtype_info(oc.type).name));
    switch (oc.type) {
      case DType::I8:
        check_block<std::int8_t, Shift>(rng, rows, channels, acc_pad, y_pad, shift_set, uniform, acc, out,
                                        with_flags, isa);
        break;
      case DType::U8:
        check_block<std::uint8_t, Shift>(rng, rows, channels, acc_pad, y_pad, shift_set, uniform, acc, out,
                                         with_flags, isa);
        break;
      case DType::I16:
        check_block<std::int16_t, Shift>(rng, rows, channels, acc_pad, y_pad, shift_set, uniform, acc, out,
                                         with_flags, isa);
        break;
      default:
        check_block<std::int32_t, Shift>(rng, rows, channels, acc_pad, y_pad, shift_set, uniform, acc, out,
                                         with_flags, isa);
        break;
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
}

/// check_all_outputs_on for the public functions and every vector copy.
template <typename Shift>
void check_all_outputs(std::mt19937_64& rng, std::size_t rows, std::size_t channels, std::size_t acc_pad,
                       std::size_t y_pad, const std::vector<int>& shift_set, bool uniform, AccSpec acc, RoundMode mode,
                       bool with_flags) {
  for (const Isa isa : isas()) {
    check_all_outputs_on<Shift>(rng, rows, channels, acc_pad, y_pad, shift_set, uniform, acc, mode, with_flags, isa);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

std::vector<int> range_of(int lo, int hi) {
  std::vector<int> v;
  for (int s = lo; s <= hi; ++s) v.push_back(s);
  return v;
}

TEST(RequantBatch, EveryModeShiftAndAccumulatorAgainstInt128Reference) {
  std::mt19937_64 rng(20240611);
  const std::vector<AccSpec> accs = {{16, OverflowPolicy::WRAP},           {16, OverflowPolicy::SATURATE_FINAL},
                                     {24, OverflowPolicy::WRAP},           {24, OverflowPolicy::SATURATE_FINAL},
                                     {32, OverflowPolicy::WRAP},           {32, OverflowPolicy::SATURATE_FINAL},
                                     {64, OverflowPolicy::WRAP}};
  const std::vector<int> usual = range_of(0, 40);
  const std::vector<int> mixed = range_of(-4, 40);
  for (const RoundMode mode : kModes) {
    for (const AccSpec& acc : accs) {
      SCOPED_TRACE(std::string(mode_str(mode)) + " acc_bits " + std::to_string(acc.bits) + " " +
                   std::string(dla::overflow_policy_name(acc.policy)));
      // Every single shift of -4..40, uniform over a contiguous block (one long run).
      for (int s = -4; s <= 40; ++s) {
        check_all_outputs<std::int8_t>(rng, 5, 19, 0, 0, {s}, true, acc, mode, false);
        if (HasFatalFailure()) return;
      }
      // Uniform shift over strided rows; per-channel shifts, usual or not; int shifts;
      // with flags; a strided run with one shift (channels = 1).
      check_all_outputs<std::int8_t>(rng, 7, 33, 3, 5, usual, true, acc, mode, false);
      check_all_outputs<std::int8_t>(rng, 7, 33, 0, 3, usual, true, acc, mode, false);
      check_all_outputs<int>(rng, 7, 33, 2, 0, usual, true, acc, mode, true);
      check_all_outputs<std::int8_t>(rng, 6, 70, 0, 0, usual, false, acc, mode, false);
      check_all_outputs<std::int8_t>(rng, 6, 45, 2, 1, mixed, false, acc, mode, false);
      check_all_outputs<int>(rng, 4, 64, 0, 0, usual, false, acc, mode, true);
      check_all_outputs<int>(rng, 3, 17, 9, 4, mixed, false, acc, mode, true);
      check_all_outputs<int>(rng, 97, 1, 6, 2, usual, true, acc, mode, true);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(RequantBatch, ExtremeShifts) {
  // Shifts far outside the usual range take the portable path; large accumulators with
  // large left shifts saturate, large right shifts round to 0 or -1.
  std::mt19937_64 rng(7);
  const std::vector<int> extreme = {-40, -33, -31, -1, 61, 62, 63, 64, 65, 100, 120};
  for (const RoundMode mode : kModes) {
    SCOPED_TRACE(mode_str(mode));
    check_all_outputs<std::int8_t>(rng, 4, 40, 0, 0, extreme, false, {64, OverflowPolicy::WRAP}, mode, false);
    check_all_outputs<int>(rng, 4, 40, 1, 1, extreme, false, {32, OverflowPolicy::SATURATE_FINAL}, mode, true);
    for (int s : extreme) check_all_outputs<int>(rng, 2, 9, 0, 0, {s}, true, {40, OverflowPolicy::WRAP}, mode, true);
    if (HasFatalFailure()) return;
  }
}

TEST(RequantBatch, EmptyBlocks) {
  const std::int8_t shift = 3;
  std::int8_t y = 7;
  const std::int64_t acc = 1000;
  const RequantCounts a = dla::requantize_rows(&acc, 1, 0, 1, &shift, AccSpec{}, OutputSpec{}, &y, 1);
  const RequantCounts b = dla::requantize_rows(&acc, 1, 1, 0, &shift, AccSpec{}, OutputSpec{}, &y, 1);
  EXPECT_EQ(a.overflows + a.saturations + b.overflows + b.saturations, 0u);
  EXPECT_EQ(y, 7);
}

// eltwise_add_run: y = clamp(round((a << sa) + (b << sb), shift_y), lo, hi).
TEST(RequantBatch, EltwiseAddAgainstInt128Reference) {
  std::mt19937_64 rng(11);
  for (const RoundMode mode : kModes) {
    for (const OutCase& oc : out_cases()) {
      const OutputSpec out{oc.type, mode, oc.clip_lo, oc.clip_hi};
      const Range r = out_range(oc.type, oc.clip_lo, oc.clip_hi);
      for (int trial = 0; trial < 40; ++trial) {
        const AddShifts sh{static_cast<int>(rng() % 32), static_cast<int>(rng() % 32),
                           static_cast<int>(rng() % 45) - 4};
        const std::size_t n = 1 + rng() % 300;
        std::vector<std::int32_t> a(n), b(n), y(n + 3, 0x5A5A);
        for (std::size_t i = 0; i < n; ++i) {
          a[i] = static_cast<std::int32_t>(rng() % 65536) - 32768;
          b[i] = static_cast<std::int32_t>(rng() % 65536) - 32768;
        }
        const Isa isa = isas()[static_cast<std::size_t>(trial) % isas().size()];
        // Every other trial asks for the per-element flags too.
        const bool with_flags = trial % 2 == 1;
        std::unique_ptr<bool[]> flags(new bool[n + 3]);
        for (std::size_t i = 0; i < n + 3; ++i) flags[i] = (i % 3) == 0;
        bool* flags_ptr = with_flags ? flags.get() : nullptr;
        const std::uint64_t got =
            isa == Isa::kBest ? dla::eltwise_add_run(a.data(), b.data(), n, sh, out, y.data(), flags_ptr)
                              : dla::batch_detail::add_block(a.data(), b.data(), n, sh, out, y.data(), flags_ptr, isa);
        std::uint64_t saturations = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const i128 sum = static_cast<i128>(a[i]) * pow2(sh.shift_a) + static_cast<i128>(b[i]) * pow2(sh.shift_b);
          const i128 rounded = ref_round(sum, sh.shift_y, mode);
          const bool sat = rounded < r.lo || rounded > r.hi;
          saturations += sat ? 1 : 0;
          const auto want = static_cast<std::int64_t>(rounded < r.lo ? r.lo : rounded > r.hi ? r.hi : rounded);
          ASSERT_EQ(y[i], want) << "a " << a[i] << " b " << b[i] << " shifts " << sh.shift_a << " " << sh.shift_b
                                << " " << sh.shift_y << " mode " << mode_str(mode) << " isa " << isa_str(isa);
          if (with_flags) {
            ASSERT_EQ(flags[i], sat) << "flag of element " << i << " isa " << isa_str(isa);
          }
        }
        for (std::size_t i = n; i < n + 3; ++i) {
          ASSERT_EQ(y[i], 0x5A5A) << "wrote past n";
          ASSERT_EQ(flags[i], (i % 3) == 0) << "flag written past n";
        }
        EXPECT_EQ(got, saturations);
      }
    }
  }
}

}  // namespace
