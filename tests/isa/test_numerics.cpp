// tests/isa/test_numerics.cpp — GoogleTest suite for dla/numerics.hpp (isa/README.md
// section 1, the normative numerics contract).
//
// Every expected value here comes from either a literal table written from the contract,
// or a reference written in this file with a different method from the header's:
//   * rounding: exact rational arithmetic on __int128 — truncated division of v by 2^s,
//     then the tie/near decision by comparing 2*|remainder| with the divisor (the header
//     uses an arithmetic shift and a masked remainder compared with 2^(s-1));
//   * wrap: ((v mod 2^b) + 2^b) mod 2^b, minus 2^b when >= 2^(b-1) (the header uses a
//     mask and a sign-bit xor);
//   * clamps: compared against the literal type ranges of the contract;
//   * avgpool multiplier: quotient/remainder of 2^S by N (the header uses one division of
//     2^(S+1) + N by 2N).
// No test calls the function under test to produce its own expected value.

#include "dla/numerics.hpp"

#include <gtest/gtest.h>

#include <array>
#include <climits>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using dla::DType;
using dla::OutputSpec;
using dla::OverflowPolicy;
using dla::RoundMode;

__extension__ typedef __int128 i128;  // __extension__: no -Wpedantic warning

constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kI32Max = std::numeric_limits<std::int32_t>::max();

constexpr std::array<RoundMode, 4> kModes = {RoundMode::HALF_UP, RoundMode::HALF_AWAY,
                                             RoundMode::HALF_EVEN, RoundMode::FLOOR};
constexpr std::array<DType, 6> kTypes = {DType::I4, DType::U4,  DType::I8,
                                         DType::U8, DType::I16, DType::I32};

// Literal type ranges of isa/README.md section 1 (i32 is the accumulator storage type).
struct Range {
  std::int64_t min, max;
};
Range literal_range(DType t) {
  switch (t) {
    case DType::I4: return {-8, 7};
    case DType::U4: return {0, 15};
    case DType::I8: return {-128, 127};
    case DType::U8: return {0, 255};
    case DType::I16: return {-32768, 32767};
    case DType::I32: return {-2147483648LL, 2147483647LL};
  }
  ADD_FAILURE() << "unknown dtype";
  return {0, 0};
}

const char* mode_str(RoundMode m) {
  switch (m) {
    case RoundMode::HALF_UP: return "HALF_UP";
    case RoundMode::HALF_AWAY: return "HALF_AWAY";
    case RoundMode::HALF_EVEN: return "HALF_EVEN";
    case RoundMode::FLOOR: return "FLOOR";
  }
  return "?";
}

const char* type_str(DType t) {
  switch (t) {
    case DType::I4: return "i4";
    case DType::U4: return "u4";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::I16: return "i16";
    case DType::I32: return "i32";
  }
  return "?";
}

std::string str128(i128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  // Work on the negative side so that the most negative value needs no negation.
  i128 n = neg ? v : -v;
  while (n != 0) {
    s.insert(s.begin(), static_cast<char>('0' - static_cast<int>(n % 10)));
    n /= 10;
  }
  return neg ? "-" + s : s;
}

i128 pow2(int k) { return static_cast<i128>(1) << k; }  // k <= 126

// ---------------------------------------------------------------------------
// Reference rounding: exact value v / 2^s rounded by `mode`, with truncated division
// and a 2*|r| versus d comparison.
// ---------------------------------------------------------------------------
i128 ref_div_pow2(i128 v, int s, RoundMode mode) {
  // requires 1 <= s <= 125 and |v| <= 2^64
  const i128 d = pow2(s);
  const i128 t = v / d;                     // truncated toward zero
  const i128 r = v % d;                     // sign of v
  if (r == 0) return t;                     // exact: every mode agrees
  const i128 away = v < 0 ? t - 1 : t + 1;  // neighbour farther from zero
  const i128 floor_q = v < 0 ? away : t;
  const i128 ceil_q = v < 0 ? t : away;
  if (mode == RoundMode::FLOOR) return floor_q;
  const i128 twice = 2 * (r < 0 ? -r : r);
  if (twice < d) return t;     // nearer to the truncated quotient
  if (twice > d) return away;  // nearer to the other neighbour
  switch (mode) {              // exact tie between floor_q and ceil_q
    case RoundMode::HALF_UP: return ceil_q;
    case RoundMode::HALF_AWAY: return away;
    case RoundMode::HALF_EVEN: return (floor_q % 2 == 0) ? floor_q : ceil_q;
    case RoundMode::FLOOR: break;
  }
  return floor_q;
}

i128 sat_i64(i128 v) {
  if (v > kI64Max) return kI64Max;
  if (v < kI64Min) return kI64Min;
  return v;
}

// round_shift contract: s > 0 divides and rounds; s == 0 is v; s < 0 multiplies by 2^-s,
// saturated to int64 (header's documented behaviour for products leaving int64).
i128 ref_round_shift(i128 v, long long s, RoundMode mode) {
  if (s == 0) return v;
  if (s > 0) {
    // For |v| <= 2^63 and s >= 65, |v / 2^s| <= 1/4, so every s >= 65 rounds exactly like
    // s = 125 (same sign, same side of 0 and of +-1/2): clamp to stay inside __int128.
    return ref_div_pow2(v, s > 125 ? 125 : static_cast<int>(s), mode);
  }
  const long long left = -s;
  if (v == 0) return 0;
  if (left >= 64) return v > 0 ? kI64Max : kI64Min;  // |v| * 2^64 > 2^63 always
  return sat_i64(v * pow2(static_cast<int>(left)));
}

i128 ref_clamp(i128 v, i128 lo, i128 hi) {
  if (v < lo) return lo;
  if (v > hi) return hi;
  return v;
}

// lo/hi of an output spec, from the literal type range and the clip.
Range ref_out_range(DType t, std::int64_t clip_lo, std::int64_t clip_hi) {
  const Range r = literal_range(t);
  return {clip_lo > r.min ? clip_lo : r.min, clip_hi < r.max ? clip_hi : r.max};
}

// wrap(v, b): ((v mod 2^b) + 2^b) mod 2^b, then subtract 2^b if >= 2^(b-1).
i128 ref_wrap(i128 v, int b) {
  const i128 m = pow2(b);
  i128 r = ((v % m) + m) % m;
  if (r >= pow2(b - 1)) r -= m;
  return r;
}

bool ref_fits(i128 v, int b) { return v >= -pow2(b - 1) && v <= pow2(b - 1) - 1; }

// Random int64 with a random magnitude (uniform bit length), so small and huge values
// are equally represented.
std::int64_t random_wide(std::mt19937_64& rng) {
  const int bits = static_cast<int>(rng() % 64);  // 0..63 magnitude bits
  const std::uint64_t mag = bits == 0 ? 0 : (rng() >> (64 - bits));
  const bool neg = (rng() & 1) != 0;
  if (neg) return mag == 0 && (rng() & 1) ? kI64Min : -static_cast<std::int64_t>(mag);
  return static_cast<std::int64_t>(mag);
}

// ===========================================================================
// round_shift
// ===========================================================================

TEST(RoundShift, ExhaustiveInt16AllShiftsAllModes) {
  std::uint64_t checked = 0, mismatches = 0;
  std::string first;
  for (RoundMode mode : kModes) {
    for (int s = -4; s <= 31; ++s) {
      for (std::int64_t v = -32768; v <= 32767; ++v) {
        const std::int64_t got = dla::round_shift(v, s, mode);
        const i128 want = ref_round_shift(v, s, mode);
        ++checked;
        if (got != want) {
          if (mismatches++ == 0) {
            std::ostringstream os;
            os << "v=" << v << " s=" << s << " mode=" << mode_str(mode) << " expected "
               << str128(want) << " got " << got;
            first = os.str();
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 65536ull * 36 * 4);
  EXPECT_EQ(mismatches, 0u) << "first mismatch: " << first;
}

// Values exactly +-0.5, +-1.5, +-2.5, +-5.5 steps: v = k * 2^(s-1) with k odd.
TEST(RoundShift, TieTableLiteral) {
  constexpr std::array<std::int64_t, 8> kHalfSteps = {1, -1, 3, -3, 5, -5, 11, -11};
  struct Row {
    RoundMode mode;
    std::array<std::int64_t, 8> expected;  // for 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 5.5, -5.5
  };
  const std::array<Row, 4> table = {{
      {RoundMode::HALF_UP, {1, 0, 2, -1, 3, -2, 6, -5}},
      {RoundMode::HALF_AWAY, {1, -1, 2, -2, 3, -3, 6, -6}},
      {RoundMode::HALF_EVEN, {0, 0, 2, -2, 2, -2, 6, -6}},
      {RoundMode::FLOOR, {0, -1, 1, -2, 2, -3, 5, -6}},
  }};
  for (int s : {1, 2, 3, 4, 8, 16, 24, 31, 32, 40, 59}) {
    for (const Row& row : table) {
      for (std::size_t i = 0; i < kHalfSteps.size(); ++i) {
        const std::int64_t v = kHalfSteps[i] * (std::int64_t{1} << (s - 1));
        EXPECT_EQ(dla::round_shift(v, s, row.mode), row.expected[i])
            << "v=" << v << " (" << kHalfSteps[i] << "/2 steps) s=" << s
            << " mode=" << mode_str(row.mode);
      }
    }
  }
}

// One unit off a tie (s >= 2): no ambiguity, so all three nearest modes agree.
TEST(RoundShift, NearTieTableLiteral) {
  constexpr std::array<std::int64_t, 8> kHalfSteps = {1, -1, 3, -3, 5, -5, 11, -11};
  // x.5 + epsilon and x.5 - epsilon for 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 5.5, -5.5
  constexpr std::array<std::int64_t, 8> kNearestAbove = {1, 0, 2, -1, 3, -2, 6, -5};
  constexpr std::array<std::int64_t, 8> kNearestBelow = {0, -1, 1, -2, 2, -3, 5, -6};
  constexpr std::array<std::int64_t, 8> kFloor = {0, -1, 1, -2, 2, -3, 5, -6};
  for (int s : {2, 3, 4, 8, 16, 31, 32, 59}) {
    for (RoundMode mode : kModes) {
      for (std::size_t i = 0; i < kHalfSteps.size(); ++i) {
        const std::int64_t tie = kHalfSteps[i] * (std::int64_t{1} << (s - 1));
        const bool fl = mode == RoundMode::FLOOR;
        EXPECT_EQ(dla::round_shift(tie + 1, s, mode), fl ? kFloor[i] : kNearestAbove[i])
            << "v=" << tie + 1 << " s=" << s << " mode=" << mode_str(mode);
        EXPECT_EQ(dla::round_shift(tie - 1, s, mode), fl ? kFloor[i] : kNearestBelow[i])
            << "v=" << tie - 1 << " s=" << s << " mode=" << mode_str(mode);
      }
    }
  }
}

TEST(RoundShift, SmallLiteralExamples) {
  // Contract examples: s == 0 is identity, s < 0 multiplies.
  EXPECT_EQ(dla::round_shift(7, 0, RoundMode::HALF_UP), 7);
  EXPECT_EQ(dla::round_shift(-7, 0, RoundMode::FLOOR), -7);
  EXPECT_EQ(dla::round_shift(3, -2, RoundMode::HALF_EVEN), 12);
  EXPECT_EQ(dla::round_shift(-3, -4, RoundMode::HALF_AWAY), -48);
  // HALF_UP == (v + 2^(s-1)) >> s written out for a few values.
  EXPECT_EQ(dla::round_shift(100, 3, RoundMode::HALF_UP), 13);    // 12.5 -> 13
  EXPECT_EQ(dla::round_shift(-100, 3, RoundMode::HALF_UP), -12);  // -12.5 -> -12
  EXPECT_EQ(dla::round_shift(-100, 3, RoundMode::HALF_AWAY), -13);
  EXPECT_EQ(dla::round_shift(-100, 3, RoundMode::HALF_EVEN), -12);
  EXPECT_EQ(dla::round_shift(-100, 3, RoundMode::FLOOR), -13);
  EXPECT_EQ(dla::round_shift(-101, 3, RoundMode::HALF_UP), -13);  // -12.625
  EXPECT_EQ(dla::round_shift(-1, 10, RoundMode::HALF_UP), 0);
  EXPECT_EQ(dla::round_shift(-1, 10, RoundMode::FLOOR), -1);
}

const std::vector<std::int64_t>& boundary_values() {
  static const std::vector<std::int64_t> v = {
      kI64Min,     kI64Min + 1, kI64Min + 2, -(std::int64_t{1} << 62),
      kI32Min - 1, kI32Min,     kI32Min + 1, -65536,
      -3,          -2,          -1,          0,
      1,           2,           3,           65535,
      kI32Max - 1, kI32Max,     kI32Max + 1, std::int64_t{1} << 62,
      kI64Max - 2, kI64Max - 1, kI64Max};
  return v;
}

TEST(RoundShift, BoundariesAgainstReference) {
  const std::vector<int> shifts = {0,   1,   2,   30,  31,   32,      33,   62,    63,         64,
                                   65,  66,  100, 125, 1000, INT_MAX, -1,   -2,    -30,        -31,
                                   -32, -33, -62, -63, -64,  -65,     -100, -1000, INT_MIN + 1};
  std::uint64_t checked = 0;
  for (RoundMode mode : kModes) {
    for (int s : shifts) {
      for (std::int64_t v : boundary_values()) {
        const i128 want = ref_round_shift(v, s, mode);
        ASSERT_EQ(static_cast<i128>(dla::round_shift(v, s, mode)), want)
            << "v=" << v << " s=" << s << " mode=" << mode_str(mode) << " expected "
            << str128(want);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 4u * shifts.size() * boundary_values().size());
}

TEST(RoundShift, BoundaryLiterals) {
  for (RoundMode m : kModes) {
    SCOPED_TRACE(mode_str(m));
    // Exact divisions: every mode agrees.
    EXPECT_EQ(dla::round_shift(kI64Min, 63, m), -1);
    EXPECT_EQ(dla::round_shift(kI64Min, 1, m), -(std::int64_t{1} << 62));
    EXPECT_EQ(dla::round_shift(kI32Min, 31, m), -1);
    EXPECT_EQ(dla::round_shift(kI32Min, 0, m), kI32Min);
    EXPECT_EQ(dla::round_shift(kI64Max, 0, m), kI64Max);
    // Left shifts that overflow int64 saturate; those that do not are exact.
    EXPECT_EQ(dla::round_shift(kI64Max, -1, m), kI64Max);
    EXPECT_EQ(dla::round_shift(kI64Min, -1, m), kI64Min);
    EXPECT_EQ(dla::round_shift(1, -62, m), std::int64_t{1} << 62);
    EXPECT_EQ(dla::round_shift(1, -63, m), kI64Max);
    EXPECT_EQ(dla::round_shift(-1, -63, m), kI64Min);  // exactly -2^63: representable
    EXPECT_EQ(dla::round_shift(-2, -62, m), kI64Min);  // exactly -2^63
    EXPECT_EQ(dla::round_shift(-3, -62, m), kI64Min);  // below: saturates
    EXPECT_EQ(dla::round_shift(2, -62, m), kI64Max);   // 2^63: one past, saturates
    EXPECT_EQ(dla::round_shift(1, -64, m), kI64Max);
    EXPECT_EQ(dla::round_shift(-1, -100, m), kI64Min);
    EXPECT_EQ(dla::round_shift(0, -100, m), 0);
    EXPECT_EQ(dla::round_shift(0, -1000, m), 0);
    EXPECT_EQ(dla::round_shift(kI32Max, -32, m), kI32Max * 4294967296LL);
    EXPECT_EQ(dla::round_shift(kI32Min, -32, m), kI64Min);
    EXPECT_EQ(dla::round_shift(kI32Max, -33, m), kI64Max);
    EXPECT_EQ(dla::round_shift(kI32Min, -33, m), kI64Min);
    EXPECT_EQ(dla::round_shift(5, INT_MIN + 1, m), kI64Max);
    EXPECT_EQ(dla::round_shift(-5, INT_MIN + 1, m), kI64Min);
  }
  // Right shifts of the extremes: INT64_MAX / 2^63 = 1 - 2^-63, INT64_MAX / 2^64 just below 1/2.
  EXPECT_EQ(dla::round_shift(kI64Max, 63, RoundMode::HALF_UP), 1);
  EXPECT_EQ(dla::round_shift(kI64Max, 63, RoundMode::FLOOR), 0);
  EXPECT_EQ(dla::round_shift(kI64Max, 64, RoundMode::HALF_AWAY), 0);
  EXPECT_EQ(dla::round_shift(kI64Max, 1, RoundMode::HALF_UP), std::int64_t{1} << 62);  // tie up
  EXPECT_EQ(dla::round_shift(kI64Max, 1, RoundMode::HALF_EVEN), std::int64_t{1} << 62);
  EXPECT_EQ(dla::round_shift(kI64Max, 1, RoundMode::FLOOR), (std::int64_t{1} << 62) - 1);
  EXPECT_EQ(dla::round_shift(kI32Max, 31, RoundMode::HALF_UP), 1);
  EXPECT_EQ(dla::round_shift(kI32Max, 31, RoundMode::FLOOR), 0);
  EXPECT_EQ(dla::round_shift(kI32Max, 32, RoundMode::HALF_UP), 0);  // just below 1/2
  EXPECT_EQ(dla::round_shift(kI32Min, 32, RoundMode::HALF_UP), 0);  // exactly -1/2
  EXPECT_EQ(dla::round_shift(kI32Min, 32, RoundMode::HALF_AWAY), -1);
  // INT64_MIN / 2^64 = -1/2 exactly: the widest tie.
  EXPECT_EQ(dla::round_shift(kI64Min, 64, RoundMode::HALF_UP), 0);
  EXPECT_EQ(dla::round_shift(kI64Min, 64, RoundMode::HALF_AWAY), -1);
  EXPECT_EQ(dla::round_shift(kI64Min, 64, RoundMode::HALF_EVEN), 0);
  EXPECT_EQ(dla::round_shift(kI64Min, 64, RoundMode::FLOOR), -1);
  // 2^62 / 2^63 = +1/2 exactly.
  EXPECT_EQ(dla::round_shift(std::int64_t{1} << 62, 63, RoundMode::HALF_UP), 1);
  EXPECT_EQ(dla::round_shift(std::int64_t{1} << 62, 63, RoundMode::HALF_EVEN), 0);
  EXPECT_EQ(dla::round_shift(std::int64_t{1} << 62, 63, RoundMode::FLOOR), 0);
  // Beyond 64 bits of shift: |v / 2^s| <= 1/4: 0, or -1 for FLOOR of a negative.
  for (int s : {65, 100, 1000, INT_MAX}) {
    EXPECT_EQ(dla::round_shift(kI64Min, s, RoundMode::HALF_AWAY), 0) << s;
    EXPECT_EQ(dla::round_shift(kI64Min, s, RoundMode::FLOOR), -1) << s;
    EXPECT_EQ(dla::round_shift(kI64Max, s, RoundMode::HALF_UP), 0) << s;
    EXPECT_EQ(dla::round_shift(kI64Max, s, RoundMode::FLOOR), 0) << s;
    EXPECT_EQ(dla::round_shift(-1, s, RoundMode::FLOOR), -1) << s;
    EXPECT_EQ(dla::round_shift(-1, s, RoundMode::HALF_EVEN), 0) << s;
  }
}

// Left shifts by every amount, for the values at and next to the largest and smallest that
// still fit in int64 after the shift (floor(INT64_MAX / 2^k) and -2^(63-k)).
TEST(RoundShift, LeftShiftSaturationEdges) {
  std::uint64_t checked = 0;
  for (int k = 1; k <= 64; ++k) {
    const i128 top = (pow2(63) - 1) / pow2(k);  // largest v with v * 2^k <= INT64_MAX
    const i128 bottom = -(pow2(63) / pow2(k));  // smallest v with v * 2^k >= INT64_MIN
    for (i128 base : {top, bottom}) {
      for (int d = -2; d <= 2; ++d) {
        const i128 v128 = base + d;
        if (v128 > kI64Max || v128 < kI64Min) continue;
        const std::int64_t v = static_cast<std::int64_t>(v128);
        for (RoundMode m : kModes) {
          const i128 want = ref_round_shift(v, -k, m);
          ASSERT_EQ(static_cast<i128>(dla::round_shift(v, -k, m)), want)
              << "v=" << v << " s=" << -k << " expected " << str128(want);
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 1000u);
}

// The contract says round_shift never overflows for any int s, including INT_MIN (whose
// negation does not fit in int). Expected: a left shift by 2^31 bits saturates.
TEST(RoundShift, IntMinShiftSaturates) {
  volatile int s = INT_MIN;  // volatile: keep the call a runtime one
  for (RoundMode m : kModes) {
    EXPECT_EQ(dla::round_shift(1, s, m), kI64Max) << mode_str(m);
    EXPECT_EQ(dla::round_shift(-5, s, m), kI64Min) << mode_str(m);
    EXPECT_EQ(dla::round_shift(0, s, m), 0) << mode_str(m);
  }
}

TEST(RoundShift, RandomInt64AgainstReference) {
  std::mt19937_64 rng(0x5eed0001);
  std::uniform_int_distribution<int> shift_dist(-70, 130);
  constexpr int kN = 1'000'000;
  for (int i = 0; i < kN; ++i) {
    const std::int64_t v = random_wide(rng);
    const int s = shift_dist(rng);
    const RoundMode mode = kModes[rng() % 4];
    const i128 want = ref_round_shift(v, s, mode);
    const std::int64_t got = dla::round_shift(v, s, mode);
    ASSERT_EQ(static_cast<i128>(got), want)
        << "v=" << v << " s=" << s << " mode=" << mode_str(mode) << " expected " << str128(want);
  }
}

// HALF_UP is documented as (v + 2^(s-1)) >> s; check that identity on random 32-bit values
// (computed on __int128 with floor division, so it cannot overflow).
TEST(RoundShift, HalfUpEqualsAddHalfThenFloor) {
  std::mt19937_64 rng(0x5eed0002);
  for (int i = 0; i < 200'000; ++i) {
    const std::int64_t v = static_cast<std::int32_t>(rng());
    const int s = 1 + static_cast<int>(rng() % 40);
    i128 num = static_cast<i128>(v) + pow2(s - 1);
    const i128 d = pow2(s);
    i128 q = num / d;
    if (num % d != 0 && num < 0) --q;  // floor
    ASSERT_EQ(static_cast<i128>(dla::round_shift(v, s, RoundMode::HALF_UP)), q)
        << "v=" << v << " s=" << s;
  }
}

// ===========================================================================
// wrap / fits_signed / finalize_acc
// ===========================================================================

TEST(Wrap, LiteralValues) {
  EXPECT_EQ(dla::wrap(32768, 16), -32768);
  EXPECT_EQ(dla::wrap(32767, 16), 32767);
  EXPECT_EQ(dla::wrap(-32769, 16), 32767);
  EXPECT_EQ(dla::wrap(65536, 16), 0);
  EXPECT_EQ(dla::wrap(65535, 16), -1);
  EXPECT_EQ(dla::wrap(128, 8), -128);
  EXPECT_EQ(dla::wrap(255, 8), -1);
  EXPECT_EQ(dla::wrap(-129, 8), 127);
  EXPECT_EQ(dla::wrap(8388608, 24), -8388608);
  EXPECT_EQ(dla::wrap(-8388609, 24), 8388607);
  EXPECT_EQ(dla::wrap(kI32Max + 1, 32), kI32Min);
  EXPECT_EQ(dla::wrap(kI32Min - 1, 32), kI32Max);
  EXPECT_EQ(dla::wrap(std::int64_t{1} << 32, 32), 0);
  EXPECT_EQ(dla::wrap(0x1'8000'0005LL, 32), kI32Min + 5);
  EXPECT_EQ(dla::wrap(kI64Max, 63), -1);
  EXPECT_EQ(dla::wrap(std::int64_t{1} << 62, 63), -(std::int64_t{1} << 62));
  EXPECT_EQ(dla::wrap(kI64Min, 63), 0);
  EXPECT_EQ(dla::wrap(kI64Min, 64), kI64Min);
  EXPECT_EQ(dla::wrap(kI64Max, 64), kI64Max);
  EXPECT_EQ(dla::wrap(1, 1), -1);
  EXPECT_EQ(dla::wrap(2, 1), 0);
  EXPECT_EQ(dla::wrap(-1, 1), -1);
}

TEST(Wrap, AgainstModularReference) {
  std::mt19937_64 rng(0x5eed0003);
  std::uint64_t checked = 0;
  for (int b : {1, 2, 4, 8, 15, 16, 17, 24, 31, 32, 33, 48, 62, 63, 64}) {
    std::vector<std::int64_t> vals = boundary_values();
    for (int k = -2; k <= 2; ++k) {  // around +-2^(b-1) and +-2^b
      if (b < 63) {
        vals.push_back((std::int64_t{1} << (b - 1)) + k);
        vals.push_back(-(std::int64_t{1} << (b - 1)) + k);
        vals.push_back((std::int64_t{1} << b) + k);
        vals.push_back(-(std::int64_t{1} << b) + k);
      }
    }
    for (int i = 0; i < 50'000; ++i) vals.push_back(random_wide(rng));
    for (std::int64_t v : vals) {
      const i128 want = ref_wrap(v, b);
      ASSERT_EQ(static_cast<i128>(dla::wrap(v, b)), want)
          << "v=" << v << " bits=" << b << " expected " << str128(want);
      ++checked;
    }
  }
  EXPECT_GT(checked, 750'000u);
}

TEST(Accumulator, SignedMinMaxLiteral) {
  EXPECT_EQ(dla::signed_min(1), -1);
  EXPECT_EQ(dla::signed_max(1), 0);
  EXPECT_EQ(dla::signed_min(8), -128);
  EXPECT_EQ(dla::signed_max(8), 127);
  EXPECT_EQ(dla::signed_min(16), -32768);
  EXPECT_EQ(dla::signed_max(16), 32767);
  EXPECT_EQ(dla::signed_min(24), -8388608);
  EXPECT_EQ(dla::signed_max(24), 8388607);
  EXPECT_EQ(dla::signed_min(32), kI32Min);
  EXPECT_EQ(dla::signed_max(32), kI32Max);
  EXPECT_EQ(dla::signed_min(63), -4611686018427387904LL);
  EXPECT_EQ(dla::signed_max(63), 4611686018427387903LL);
  EXPECT_EQ(dla::signed_min(64), kI64Min);
  EXPECT_EQ(dla::signed_max(64), kI64Max);
}

TEST(Accumulator, FitsSignedAndFinalizeAtRangeEnds) {
  for (int b : {8, 16, 24, 32, 63}) {
    const std::int64_t mn = -(std::int64_t{1} << (b - 1));
    const std::int64_t mx = (std::int64_t{1} << (b - 1)) - 1;
    SCOPED_TRACE("acc_bits=" + std::to_string(b));
    EXPECT_TRUE(dla::fits_signed(mn, b));
    EXPECT_TRUE(dla::fits_signed(mx, b));
    EXPECT_FALSE(dla::fits_signed(mn - 1, b));
    EXPECT_FALSE(dla::fits_signed(mx + 1, b));
    for (OverflowPolicy p : {OverflowPolicy::WRAP, OverflowPolicy::SATURATE_FINAL}) {
      const dla::AccSpec acc{b, p};
      const bool wrapping = p == OverflowPolicy::WRAP;
      bool over = true;
      EXPECT_EQ(dla::finalize_acc(mn, acc, &over), mn);
      EXPECT_FALSE(over);
      over = true;
      EXPECT_EQ(dla::finalize_acc(mx, acc, &over), mx);
      EXPECT_FALSE(over);
      over = false;
      EXPECT_EQ(dla::finalize_acc(mx + 1, acc, &over), wrapping ? mn : mx);
      EXPECT_TRUE(over);
      over = false;
      EXPECT_EQ(dla::finalize_acc(mn - 1, acc, &over), wrapping ? mx : mn);
      EXPECT_TRUE(over);
      over = false;
      EXPECT_EQ(dla::finalize_acc(mx + 2, acc, &over), wrapping ? mn + 1 : mx);
      EXPECT_TRUE(over);
      EXPECT_EQ(dla::finalize_acc(0, acc), 0);  // null flag pointer is allowed
    }
  }
  // acc_bits 64: nothing an int64 holds overflows.
  for (std::int64_t v : {kI64Min, kI64Max, std::int64_t{0}}) {
    EXPECT_TRUE(dla::fits_signed(v, 64));
    bool over = true;
    EXPECT_EQ(dla::finalize_acc(v, {64, OverflowPolicy::SATURATE_FINAL}, &over), v);
    EXPECT_FALSE(over);
  }
}

TEST(Accumulator, FinalizeAgainstReference) {
  std::mt19937_64 rng(0x5eed0004);
  std::uint64_t checked = 0;
  for (int b : {8, 16, 24, 32, 63, 64}) {
    for (OverflowPolicy p : {OverflowPolicy::WRAP, OverflowPolicy::SATURATE_FINAL}) {
      std::vector<std::int64_t> vals = boundary_values();
      for (int i = 0; i < 100'000; ++i) {
        // Every other value reduced modulo 2^(b+2), so many lie just inside or outside the range.
        std::int64_t v = random_wide(rng);
        if (b < 60 && (i & 1)) v = v % (std::int64_t{1} << (b + 2));
        vals.push_back(v);
      }
      for (std::int64_t v : vals) {
        bool over = ref_fits(v, b);  // start with the wrong answer
        const std::int64_t got = dla::finalize_acc(v, {b, p}, &over);
        const bool want_over = !ref_fits(v, b);
        const i128 want = !want_over                  ? static_cast<i128>(v)
                          : p == OverflowPolicy::WRAP ? ref_wrap(v, b)
                                                      : ref_clamp(v, -pow2(b - 1), pow2(b - 1) - 1);
        ASSERT_EQ(over, want_over) << "v=" << v << " bits=" << b;
        ASSERT_EQ(dla::fits_signed(v, b), !want_over) << "v=" << v << " bits=" << b;
        ASSERT_EQ(static_cast<i128>(got), want)
            << "v=" << v << " bits=" << b << " policy=" << dla::overflow_policy_name(p);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1'200'000u);
}

// ===========================================================================
// saturate / clamp / OutputSpec
// ===========================================================================

TEST(Saturate, EveryDTypeAtAndBeyondRange) {
  struct Case {
    DType t;
    std::int64_t in, out;
  };
  const std::vector<Case> cases = {
      {DType::I4, -9, -8},
      {DType::I4, -8, -8},
      {DType::I4, 7, 7},
      {DType::I4, 8, 7},
      {DType::I4, 0, 0},
      {DType::I4, kI64Min, -8},
      {DType::I4, kI64Max, 7},
      {DType::U4, -1, 0},
      {DType::U4, 0, 0},
      {DType::U4, 15, 15},
      {DType::U4, 16, 15},
      {DType::U4, kI64Min, 0},
      {DType::I8, -129, -128},
      {DType::I8, -128, -128},
      {DType::I8, 127, 127},
      {DType::I8, 128, 127},
      {DType::I8, 5, 5},
      {DType::I8, kI64Max, 127},
      {DType::U8, -1, 0},
      {DType::U8, 0, 0},
      {DType::U8, 255, 255},
      {DType::U8, 256, 255},
      {DType::U8, 100, 100},
      {DType::U8, kI64Max, 255},
      {DType::I16, -32769, -32768},
      {DType::I16, -32768, -32768},
      {DType::I16, 32767, 32767},
      {DType::I16, 32768, 32767},
      {DType::I16, -5, -5},
      {DType::I16, kI64Min, -32768},
      {DType::I32, kI32Min - 1, kI32Min},
      {DType::I32, kI32Min, kI32Min},
      {DType::I32, kI32Max, kI32Max},
      {DType::I32, kI32Max + 1, kI32Max},
      {DType::I32, kI64Min, kI32Min},
      {DType::I32, kI64Max, kI32Max},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(dla::saturate(c.in, c.t), c.out) << type_str(c.t) << " " << c.in;
  }
  // Every type, every value in a window around its range, vs the literal range.
  for (DType t : kTypes) {
    const Range r = literal_range(t);
    for (std::int64_t base : {r.min, r.max}) {
      for (std::int64_t d = -300; d <= 300; ++d) {
        const std::int64_t v = base + d;
        const std::int64_t want = v < r.min ? r.min : (v > r.max ? r.max : v);
        ASSERT_EQ(dla::saturate(v, t), want) << type_str(t) << " " << v;
      }
    }
  }
}

TEST(Clamp, Literal) {
  EXPECT_EQ(dla::clamp(5, 0, 10), 5);
  EXPECT_EQ(dla::clamp(-1, 0, 10), 0);
  EXPECT_EQ(dla::clamp(11, 0, 10), 10);
  EXPECT_EQ(dla::clamp(0, 0, 10), 0);
  EXPECT_EQ(dla::clamp(10, 0, 10), 10);
  EXPECT_EQ(dla::clamp(kI64Min, -3, 3), -3);
  EXPECT_EQ(dla::clamp(kI64Max, -3, 3), 3);
  EXPECT_EQ(dla::clamp(7, 7, 7), 7);
  EXPECT_EQ(dla::clamp(kI64Max, kI64Min, kI64Max), kI64Max);
}

TEST(OutputSpec, LoHiCombineClipAndType) {
  struct Case {
    DType t;
    std::int64_t clip_lo, clip_hi, lo, hi;
  };
  const std::vector<Case> cases = {
      {DType::I8, kI64Min, kI64Max, -128, 127},  // no clip: type range
      {DType::I8, 0, kI64Max, 0, 127},           // ReLU
      {DType::I8, 0, 96, 0, 96},                 // ReLU6 at f_y = 4: 6 * 16
      {DType::I8, -1000, 1000, -128, 127},       // clip wider than the type
      {DType::I8, -128, 127, -128, 127},         // clip equal to the type
      {DType::I8, -127, 126, -127, 126},         // one inside on both ends
      {DType::U8, -5, 300, 0, 255},
      {DType::U8, 0, 192, 0, 192},
      {DType::I4, 0, kI64Max, 0, 7},
      {DType::I4, -3, 100, -3, 7},
      {DType::U4, kI64Min, 6, 0, 6},
      {DType::I16, 0, 24576, 0, 24576},  // ReLU6 at f_y = 12
      {DType::I16, kI64Min, kI64Max, -32768, 32767},
      {DType::I32, 0, kI64Max, 0, kI32Max},
      {DType::I32, kI64Min, kI64Max, kI32Min, kI32Max},
  };
  for (const Case& c : cases) {
    OutputSpec o;
    o.type = c.t;
    o.clip_lo = c.clip_lo;
    o.clip_hi = c.clip_hi;
    EXPECT_EQ(o.lo(), c.lo) << type_str(c.t) << " clip_lo=" << c.clip_lo;
    EXPECT_EQ(o.hi(), c.hi) << type_str(c.t) << " clip_hi=" << c.clip_hi;
  }
  // Defaults: i8, HALF_UP, no clip.
  const OutputSpec d;
  EXPECT_EQ(d.type, DType::I8);
  EXPECT_EQ(d.mode, RoundMode::HALF_UP);
  EXPECT_EQ(d.lo(), -128);
  EXPECT_EQ(d.hi(), 127);
}

TEST(IsClamped, Literal) {
  EXPECT_FALSE(dla::is_clamped(0, 0, 10));
  EXPECT_FALSE(dla::is_clamped(10, 0, 10));
  EXPECT_TRUE(dla::is_clamped(-1, 0, 10));
  EXPECT_TRUE(dla::is_clamped(11, 0, 10));
}

// ===========================================================================
// requantize
// ===========================================================================

TEST(Requantize, LiteralExamples) {
  bool sat = true;
  OutputSpec o{DType::I8, RoundMode::HALF_UP};
  EXPECT_EQ(dla::requantize(1000, 4, o, &sat), 63);  // 62.5 -> 63
  EXPECT_FALSE(sat);
  EXPECT_EQ(dla::requantize(2040, 4, o, &sat), 127);  // 127.5 -> 128 -> clamp
  EXPECT_TRUE(sat);
  EXPECT_EQ(dla::requantize(2039, 4, o, &sat), 127);  // 127.4375 -> 127, not clamped
  EXPECT_FALSE(sat);
  EXPECT_EQ(dla::requantize(-2056, 4, o, &sat), -128);  // -128.5 -> -128 (HALF_UP)
  EXPECT_FALSE(sat);
  o.mode = RoundMode::HALF_AWAY;
  EXPECT_EQ(dla::requantize(-2056, 4, o, &sat), -128);  // -129 -> clamp
  EXPECT_TRUE(sat);
  o.mode = RoundMode::HALF_UP;
  o.clip_lo = 0;                                  // ReLU
  EXPECT_EQ(dla::requantize(-8, 4, o, &sat), 0);  // -0.5 -> 0: not a clamp
  EXPECT_FALSE(sat);
  EXPECT_EQ(dla::requantize(-9, 4, o, &sat), 0);  // -0.5625 -> -1 -> clamped to 0
  EXPECT_TRUE(sat);
  o.clip_hi = 96;  // ReLU6 at f_y = 4
  EXPECT_EQ(dla::requantize(97, 0, o, &sat), 96);
  EXPECT_TRUE(sat);
  EXPECT_EQ(dla::requantize(96, 0, o, &sat), 96);
  EXPECT_FALSE(sat);
  EXPECT_EQ(dla::requantize(3, -5, o, &sat), 96);  // 3 * 32
  EXPECT_FALSE(sat);
  EXPECT_EQ(dla::requantize(5, 0, o), 5);  // null flag pointer is allowed
  const OutputSpec u4{DType::U4, RoundMode::HALF_EVEN};
  EXPECT_EQ(dla::requantize(31, 1, u4, &sat), 15);  // 15.5 -> 16 (even) -> 15
  EXPECT_TRUE(sat);
  EXPECT_EQ(dla::requantize(29, 1, u4, &sat), 14);  // 14.5 -> 14
  EXPECT_FALSE(sat);
}

TEST(Requantize, RandomAgainstReference) {
  std::mt19937_64 rng(0x5eed0005);
  std::uint64_t checked = 0, saturations = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    std::int64_t acc;
    switch (rng() % 3) {
      case 0: acc = random_wide(rng); break;
      case 1: acc = static_cast<std::int32_t>(rng()); break;
      default: acc = static_cast<std::int64_t>(rng() % 4001) - 2000; break;
    }
    const int shift = static_cast<int>(rng() % 57) - 8;  // -8..48
    const RoundMode mode = kModes[rng() % 4];
    const DType t = kTypes[rng() % 6];
    OutputSpec o;
    o.type = t;
    o.mode = mode;
    switch (rng() % 4) {
      case 0: break;  // no clip
      case 1: o.clip_lo = 0; break;
      case 2:
        o.clip_lo = static_cast<std::int64_t>(rng() % 64) - 32;
        o.clip_hi = o.clip_lo + static_cast<std::int64_t>(rng() % 200);
        break;
      default:
        o.clip_lo = -static_cast<std::int64_t>(rng() % 100000);
        o.clip_hi = static_cast<std::int64_t>(rng() % 100000);
        break;
    }
    const Range r = ref_out_range(t, o.clip_lo, o.clip_hi);
    if (r.min > r.max) continue;  // empty range (e.g. clip_hi < 0 on u8): not valid
    const i128 rounded = ref_round_shift(acc, shift, mode);
    const i128 want = ref_clamp(rounded, r.min, r.max);
    const bool want_sat = rounded < r.min || rounded > r.max;
    bool sat = !want_sat;
    const std::int64_t got = dla::requantize(acc, shift, o, &sat);
    ASSERT_EQ(static_cast<i128>(got), want)
        << "acc=" << acc << " shift=" << shift << " mode=" << mode_str(mode)
        << " type=" << type_str(t) << " clip=[" << o.clip_lo << "," << o.clip_hi << "]";
    ASSERT_EQ(sat, want_sat) << "acc=" << acc << " shift=" << shift << " type=" << type_str(t);
    ++checked;
    saturations += want_sat ? 1 : 0;
  }
  EXPECT_GT(checked, 900'000u);
  // The sample must exercise both outcomes.
  EXPECT_GT(saturations, checked / 10);
  EXPECT_LT(saturations, checked - checked / 10);
}

// ===========================================================================
// eltwise add
// ===========================================================================

TEST(EltwiseAdd, AddShiftsLiteral) {
  auto eq = [](dla::AddShifts s, int a, int b, int y) {
    return s.shift_a == a && s.shift_b == b && s.shift_y == y;
  };
  EXPECT_TRUE(eq(dla::add_shifts(3, 5, 4), 2, 0, 1));
  EXPECT_TRUE(eq(dla::add_shifts(5, 3, 4), 0, 2, 1));
  EXPECT_TRUE(eq(dla::add_shifts(7, 7, 7), 0, 0, 0));
  EXPECT_TRUE(eq(dla::add_shifts(-4, 12, -4), 16, 0, 16));
  EXPECT_TRUE(eq(dla::add_shifts(12, -4, 12), 0, 16, 0));
  EXPECT_TRUE(eq(dla::add_shifts(0, 0, 12), 0, 0, -12));
  EXPECT_TRUE(eq(dla::add_shifts(-4, -2, 3), 2, 0, -5));
}

TEST(EltwiseAdd, AllFracsAllModesRandomOperands) {
  std::mt19937_64 rng(0x5eed0006);
  std::uint64_t checked = 0;
  for (int fa = -4; fa <= 12; ++fa) {
    for (int fb = -4; fb <= 12; ++fb) {
      for (int fy = -4; fy <= 12; ++fy) {
        // Reference shifts computed here.
        const int F = fa >= fb ? fa : fb;
        const dla::AddShifts sh = dla::add_shifts(fa, fb, fy);
        ASSERT_EQ(sh.shift_a, F - fa);
        ASSERT_EQ(sh.shift_b, F - fb);
        ASSERT_EQ(sh.shift_y, F - fy);
        for (RoundMode mode : kModes) {
          for (int k = 0; k < 12; ++k) {
            const bool wide = (k & 1) != 0;  // i16 operands, else i8
            const std::int64_t a =
                wide ? static_cast<std::int16_t>(rng()) : static_cast<std::int8_t>(rng());
            const std::int64_t b =
                wide ? static_cast<std::int16_t>(rng()) : static_cast<std::int8_t>(rng());
            const DType t = kTypes[rng() % 6];
            OutputSpec o{t, mode};
            if (rng() % 4 == 0) o.clip_lo = 0;
            const i128 sum =
                static_cast<i128>(a) * pow2(F - fa) + static_cast<i128>(b) * pow2(F - fb);
            const i128 rounded = ref_round_shift(sum, F - fy, mode);
            const Range r = ref_out_range(t, o.clip_lo, o.clip_hi);
            const i128 want = ref_clamp(rounded, r.min, r.max);
            const bool want_sat = rounded < r.min || rounded > r.max;
            bool sat = !want_sat;
            // Shifts written by hand (not from add_shifts) so the op is tested on its own.
            const dla::AddShifts mine{F - fa, F - fb, F - fy};
            const std::int64_t got = dla::eltwise_add(a, b, mine, o, &sat);
            ASSERT_EQ(static_cast<i128>(got), want)
                << "a=" << a << " b=" << b << " fa=" << fa << " fb=" << fb << " fy=" << fy
                << " mode=" << mode_str(mode) << " type=" << type_str(t);
            ASSERT_EQ(sat, want_sat)
                << "a=" << a << " b=" << b << " fa=" << fa << " fb=" << fb << " fy=" << fy;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 17ull * 17 * 17 * 4 * 12);
}

TEST(EltwiseAdd, LiteralExamples) {
  // a = 3 at f=1 (1.5), b = 5 at f=2 (1.25): 2.75, at f_y = 0 -> 3 (HALF_UP), 2 (FLOOR).
  const dla::AddShifts sh{1, 0, 2};
  EXPECT_EQ(dla::eltwise_add(3, 5, sh, OutputSpec{DType::I8, RoundMode::HALF_UP}), 3);
  EXPECT_EQ(dla::eltwise_add(3, 5, sh, OutputSpec{DType::I8, RoundMode::FLOOR}), 2);
  // 1.5 + 1.0 = 2.5 at f_y = 0: tie.
  const dla::AddShifts sh2{1, 0, 2};
  EXPECT_EQ(dla::eltwise_add(3, 4, sh2, OutputSpec{DType::I8, RoundMode::HALF_EVEN}), 2);
  EXPECT_EQ(dla::eltwise_add(3, 4, sh2, OutputSpec{DType::I8, RoundMode::HALF_UP}), 3);
  EXPECT_EQ(dla::eltwise_add(-3, -4, sh2, OutputSpec{DType::I8, RoundMode::HALF_UP}), -2);
  EXPECT_EQ(dla::eltwise_add(-3, -4, sh2, OutputSpec{DType::I8, RoundMode::HALF_AWAY}), -3);
  // Saturation: 127 + 127 at the same frac into i8.
  bool sat = false;
  EXPECT_EQ(dla::eltwise_add(127, 127, {0, 0, 0}, OutputSpec{DType::I8, RoundMode::HALF_UP}, &sat),
            127);
  EXPECT_TRUE(sat);
  // Output frac finer than the inputs: left shift by 3.
  EXPECT_EQ(dla::eltwise_add(1, 2, {0, 0, -3}, OutputSpec{DType::I16, RoundMode::HALF_UP}), 24);
}

// ===========================================================================
// average pool
// ===========================================================================

// Reference: M = round-half-up(2^S / N) from quotient and remainder of 2^S by N.
i128 ref_avg_m(i128 n, int s) {
  const i128 p = pow2(s);
  const i128 q = p / n;
  const i128 r = p % n;
  return q + ((2 * r >= n) ? 1 : 0);
}

TEST(AvgPool, MultiplierExhaustive) {
  std::uint64_t checked = 0, valid = 0;
  for (int s = 0; s <= 47; ++s) {
    for (std::int64_t n = 1; n <= 4096; ++n) {
      const i128 m = ref_avg_m(n, s);
      const std::optional<std::int64_t> got = dla::avgpool_multiplier(n, s);
      if (m == 0 || m > 65535) {
        ASSERT_FALSE(got.has_value()) << "N=" << n << " S=" << s << " M=" << str128(m);
      } else {
        ASSERT_TRUE(got.has_value()) << "N=" << n << " S=" << s << " M=" << str128(m);
        ASSERT_EQ(static_cast<i128>(*got), m) << "N=" << n << " S=" << s;
        ++valid;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 48u * 4096);
  // Both outcomes are exercised (about 70k valid multipliers, the rest out of 16 bits).
  EXPECT_GT(valid, 50'000u);
  EXPECT_GT(checked - valid, 50'000u);
}

// Wider windows (N up to 2^20) reach M = 65535 exactly and the 16-bit limit from both sides.
TEST(AvgPool, MultiplierRandomWideWindows) {
  std::mt19937_64 rng(0x5eed0009);
  std::uint64_t checked = 0, at_max = 0;
  for (int i = 0; i < 500'000; ++i) {
    const int s = static_cast<int>(rng() % 48);
    std::int64_t n = 1 + static_cast<std::int64_t>(rng() % (std::uint64_t{1} << 20));
    if (i % 4 == 0 && s >= 16) {
      // N around 2^S / 65535.5 .. 2^S / 65534.5: M near the limit.
      n = static_cast<std::int64_t>((static_cast<i128>(1) << s) / 65535) +
          static_cast<std::int64_t>(rng() % 5) - 2;
      if (n < 1) n = 1;
    }
    const i128 m = ref_avg_m(n, s);
    const std::optional<std::int64_t> got = dla::avgpool_multiplier(n, s);
    if (m == 0 || m > 65535) {
      ASSERT_FALSE(got.has_value()) << "N=" << n << " S=" << s << " M=" << str128(m);
    } else {
      ASSERT_TRUE(got.has_value()) << "N=" << n << " S=" << s << " M=" << str128(m);
      ASSERT_EQ(static_cast<i128>(*got), m) << "N=" << n << " S=" << s;
    }
    at_max += m == 65535 ? 1 : 0;
    ++checked;
  }
  EXPECT_GT(at_max, 100u);
}

TEST(AvgPool, MultiplierLiteralAndInvalid) {
  // 2^32 / 65537 = 65535 + 1/65537: the largest valid multiplier.
  EXPECT_EQ(dla::avgpool_multiplier(65537, 32), std::optional<std::int64_t>(65535));
  EXPECT_EQ(dla::avgpool_multiplier(65536, 32), std::nullopt);  // 65536
  EXPECT_EQ(dla::avgpool_multiplier(1, 0), std::optional<std::int64_t>(1));
  EXPECT_EQ(dla::avgpool_multiplier(1, 15), std::optional<std::int64_t>(32768));
  EXPECT_EQ(dla::avgpool_multiplier(1, 16), std::nullopt);  // 65536 does not fit
  EXPECT_EQ(dla::avgpool_multiplier(2, 16), std::optional<std::int64_t>(32768));
  EXPECT_EQ(dla::avgpool_multiplier(9, 16), std::optional<std::int64_t>(7282));   // 7281.78
  EXPECT_EQ(dla::avgpool_multiplier(3, 1), std::optional<std::int64_t>(1));       // 0.667
  EXPECT_EQ(dla::avgpool_multiplier(4, 1), std::optional<std::int64_t>(1));       // 0.5 tie up
  EXPECT_EQ(dla::avgpool_multiplier(5, 1), std::nullopt);                         // 0.4 -> 0
  EXPECT_EQ(dla::avgpool_multiplier(49, 16), std::optional<std::int64_t>(1337));  // 1337.47
  EXPECT_EQ(dla::avgpool_multiplier(3, 17), std::optional<std::int64_t>(43691));  // 43690.67
  // 2^S / N = 65535.5 (S = 17, N = 2^17 / 65535.5 is not an integer); use N = 2, S = 17:
  EXPECT_EQ(dla::avgpool_multiplier(2, 17), std::nullopt);  // 65536
  EXPECT_EQ(dla::avgpool_multiplier(0, 8), std::nullopt);
  EXPECT_EQ(dla::avgpool_multiplier(-4, 8), std::nullopt);
  EXPECT_EQ(dla::avgpool_multiplier(4, -1), std::nullopt);
  EXPECT_EQ(dla::avgpool_multiplier(4, 48), std::nullopt);
  EXPECT_EQ(dla::avgpool_multiplier(std::int64_t{1} << 40, 47), std::optional<std::int64_t>(128));
}

TEST(AvgPool, RandomSumsAgainstReference) {
  std::mt19937_64 rng(0x5eed0007);
  std::uint64_t checked = 0;
  for (int i = 0; i < 300'000; ++i) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 4096);
    const int s = static_cast<int>(rng() % 32);
    const i128 m = ref_avg_m(n, s);
    if (m == 0 || m > 65535) continue;
    const bool wide = (rng() & 1) != 0;  // window of i16 or i8 values
    const std::int64_t elem_max = wide ? 32768 : 128;
    const std::int64_t span = 2 * n * elem_max;
    const std::int64_t sum =
        static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span + 1)) - n * elem_max;
    const int fx = static_cast<int>(rng() % 17) - 4;
    const int fy = static_cast<int>(rng() % 17) - 4;
    const int shift = s + fx - fy;
    const RoundMode mode = kModes[rng() % 4];
    const DType t = kTypes[rng() % 6];
    const OutputSpec o{t, mode};
    const i128 rounded = ref_round_shift(static_cast<i128>(sum) * m, shift, mode);
    const Range r = literal_range(t);
    const i128 want = ref_clamp(rounded, r.min, r.max);
    bool sat = !(rounded < r.min || rounded > r.max);
    const std::int64_t got = dla::avgpool(sum, static_cast<std::int64_t>(m), shift, o, &sat);
    ASSERT_EQ(static_cast<i128>(got), want) << "sum=" << sum << " N=" << n << " S=" << s
                                            << " shift=" << shift << " mode=" << mode_str(mode);
    ASSERT_EQ(sat, rounded < r.min || rounded > r.max) << "sum=" << sum << " N=" << n;
    ++checked;
  }
  EXPECT_GT(checked, 100'000u);
}

TEST(AvgPool, LiteralExample) {
  // 3x3 window, S = 16: M = 7282. Sum of nine 10s = 90 -> 90 * 7282 / 65536 = 10.0005 -> 10.
  EXPECT_EQ(dla::avgpool(90, 7282, 16, OutputSpec{DType::I8, RoundMode::HALF_UP}), 10);
  // Sum 95 -> 10.556 -> 11; FLOOR -> 10.
  EXPECT_EQ(dla::avgpool(95, 7282, 16, OutputSpec{DType::I8, RoundMode::HALF_UP}), 11);
  EXPECT_EQ(dla::avgpool(95, 7282, 16, OutputSpec{DType::I8, RoundMode::FLOOR}), 10);
  EXPECT_EQ(dla::avgpool(-95, 7282, 16, OutputSpec{DType::I8, RoundMode::FLOOR}), -11);
}

// ===========================================================================
// 4-bit packing, element load/store
// ===========================================================================

TEST(Pack4, ByteLayoutLiteral) {
  std::array<std::uint8_t, 2> buf = {0, 0};
  dla::pack4(buf.data(), 0, 1);
  dla::pack4(buf.data(), 1, -2);
  EXPECT_EQ(buf[0], 0xE1);
  EXPECT_EQ(buf[1], 0x00);
  dla::pack4(buf.data(), 2, 7);
  dla::pack4(buf.data(), 3, -8);
  EXPECT_EQ(buf[1], 0x87);
  std::array<std::uint8_t, 1> u = {0};
  dla::pack4(u.data(), 0, 15);
  dla::pack4(u.data(), 1, 10);
  EXPECT_EQ(u[0], 0xAF);
  // Unpack of literal bytes.
  const std::array<std::uint8_t, 2> bytes = {0x9C, 0x70};
  EXPECT_EQ(dla::unpack4(bytes.data(), 0, true), -4);  // 0xC
  EXPECT_EQ(dla::unpack4(bytes.data(), 1, true), -7);  // 0x9
  EXPECT_EQ(dla::unpack4(bytes.data(), 2, true), 0);
  EXPECT_EQ(dla::unpack4(bytes.data(), 3, true), 7);
  EXPECT_EQ(dla::unpack4(bytes.data(), 0, false), 12);
  EXPECT_EQ(dla::unpack4(bytes.data(), 1, false), 9);
}

TEST(Pack4, RoundTripAllValuesEvenOddLeavesOtherNibble) {
  std::uint64_t checked = 0;
  for (bool is_signed : {true, false}) {
    const std::int64_t lo = is_signed ? -8 : 0;
    const std::int64_t hi = is_signed ? 7 : 15;
    for (std::uint64_t index : {0ull, 1ull, 6ull, 7ull, 10ull, 11ull}) {
      for (std::int64_t v = lo; v <= hi; ++v) {
        for (int other = 0; other < 16; ++other) {  // every prior content of the other nibble
          std::array<std::uint8_t, 8> buf;
          buf.fill(0x5A);
          const std::uint64_t byte = index / 2;
          const bool high = (index % 2) == 1;
          buf[byte] = static_cast<std::uint8_t>(high ? other : other << 4);  // other nibble set
          if (high)
            buf[byte] = static_cast<std::uint8_t>(buf[byte] | 0xB0);  // junk in target
          else
            buf[byte] = static_cast<std::uint8_t>(buf[byte] | 0x0B);
          dla::pack4(buf.data(), index, v);
          const unsigned nib = static_cast<unsigned>(v) & 0xFu;  // two's-complement nibble
          const std::uint8_t want_byte =
              static_cast<std::uint8_t>(high ? (nib << 4) | static_cast<unsigned>(other)
                                             : (static_cast<unsigned>(other) << 4) | nib);
          ASSERT_EQ(buf[byte], want_byte) << "v=" << v << " index=" << index << " other=" << other;
          for (std::size_t k = 0; k < buf.size(); ++k) {
            if (k != byte) {
              ASSERT_EQ(buf[k], 0x5A) << "byte " << k << " clobbered";
            }
          }
          ASSERT_EQ(dla::unpack4(buf.data(), index, is_signed), v);
          // The neighbour element reads back as the untouched nibble.
          const std::uint64_t nb = high ? index - 1 : index + 1;
          const std::int64_t other_val = is_signed && other >= 8 ? other - 16 : other;
          ASSERT_EQ(dla::unpack4(buf.data(), nb, is_signed), other_val);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 2u * 6 * 16 * 16);
}

TEST(Elements, StoreLiteralBytes) {
  std::array<std::uint8_t, 12> b;
  b.fill(0xCC);
  dla::store_element(b.data(), DType::I16, 1, -2);
  EXPECT_EQ(b[2], 0xFE);
  EXPECT_EQ(b[3], 0xFF);
  EXPECT_EQ(b[1], 0xCC);
  EXPECT_EQ(b[4], 0xCC);
  dla::store_element(b.data(), DType::I16, 0, 0x1234);
  EXPECT_EQ(b[0], 0x34);
  EXPECT_EQ(b[1], 0x12);
  b.fill(0xCC);
  dla::store_element(b.data(), DType::I32, 1, 0x12345678);
  EXPECT_EQ(b[3], 0xCC);
  EXPECT_EQ(b[4], 0x78);
  EXPECT_EQ(b[5], 0x56);
  EXPECT_EQ(b[6], 0x34);
  EXPECT_EQ(b[7], 0x12);
  EXPECT_EQ(b[8], 0xCC);
  dla::store_element(b.data(), DType::I32, 2, kI32Min);
  EXPECT_EQ(b[8], 0x00);
  EXPECT_EQ(b[9], 0x00);
  EXPECT_EQ(b[10], 0x00);
  EXPECT_EQ(b[11], 0x80);
  dla::store_element(b.data(), DType::I32, 0, -1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b[i], 0xFF);
  b.fill(0);
  dla::store_element(b.data(), DType::I8, 3, -1);
  EXPECT_EQ(b[3], 0xFF);
  dla::store_element(b.data(), DType::U8, 4, 200);
  EXPECT_EQ(b[4], 200);
  dla::store_element(b.data(), DType::I4, 0, 1);
  dla::store_element(b.data(), DType::I4, 1, -2);
  EXPECT_EQ(b[0], 0xE1);
  dla::store_element(b.data(), DType::U4, 3, 9);
  EXPECT_EQ(b[1], 0x90);
}

TEST(Elements, LoadLiteralBytes) {
  const std::array<std::uint8_t, 8> b = {0x01, 0x80, 0xFF, 0x7F, 0x78, 0x56, 0x34, 0x92};
  EXPECT_EQ(dla::load_element(b.data(), DType::I16, 0), -32767);  // 0x8001
  EXPECT_EQ(dla::load_element(b.data(), DType::I16, 1), 32767);   // 0x7FFF
  EXPECT_EQ(dla::load_element(b.data(), DType::I16, 2), 0x5678);
  EXPECT_EQ(dla::load_element(b.data(), DType::I32, 0), 0x7FFF8001LL);
  EXPECT_EQ(dla::load_element(b.data(), DType::I32, 1),
            static_cast<std::int64_t>(0x92345678u) - 4294967296LL);
  EXPECT_EQ(dla::load_element(b.data(), DType::I8, 1), -128);
  EXPECT_EQ(dla::load_element(b.data(), DType::I8, 2), -1);
  EXPECT_EQ(dla::load_element(b.data(), DType::U8, 1), 128);
  EXPECT_EQ(dla::load_element(b.data(), DType::U8, 2), 255);
  EXPECT_EQ(dla::load_element(b.data(), DType::I4, 14), 2);   // low nibble of 0x92
  EXPECT_EQ(dla::load_element(b.data(), DType::I4, 15), -7);  // high nibble 0x9
  EXPECT_EQ(dla::load_element(b.data(), DType::U4, 15), 9);
  EXPECT_EQ(dla::load_element(b.data(), DType::U4, 3), 8);  // high nibble of 0x80
  EXPECT_EQ(dla::load_element(b.data(), DType::I4, 3), -8);
}

TEST(Elements, RoundTripEveryDTypeFullRange) {
  std::mt19937_64 rng(0x5eed0008);
  std::uint64_t checked = 0;
  for (DType t : kTypes) {
    const Range r = literal_range(t);
    const int bits = t == DType::I4 || t == DType::U4   ? 4
                     : t == DType::I8 || t == DType::U8 ? 8
                     : t == DType::I16                  ? 16
                                                        : 32;
    std::vector<std::int64_t> vals;
    if (t != DType::I32) {
      for (std::int64_t v = r.min; v <= r.max; ++v) vals.push_back(v);
    } else {
      vals = {kI32Min, kI32Min + 1, -65536, -1, 0, 1, 65535, kI32Max - 1, kI32Max};
      for (int i = 0; i < 100'000; ++i) vals.push_back(static_cast<std::int32_t>(rng()));
    }
    for (std::int64_t v : vals) {
      for (std::uint64_t index : {0ull, 1ull, 2ull, 5ull}) {
        std::array<std::uint8_t, 32> buf;
        buf.fill(0xA5);
        dla::store_element(buf.data(), t, index, v);
        // Reference encoding: the two's-complement value, little endian, in bits/8 bytes
        // (or one nibble) at the element's position.
        std::array<std::uint8_t, 32> want;
        want.fill(0xA5);
        const std::uint64_t u = static_cast<std::uint64_t>(v);
        if (bits == 4) {
          const unsigned nib = static_cast<unsigned>(u & 0xF);
          std::uint8_t& w = want[index / 2];
          w = static_cast<std::uint8_t>(index % 2 ? (w & 0x0F) | (nib << 4) : (w & 0xF0) | nib);
        } else {
          const int nbytes = bits / 8;
          for (int k = 0; k < nbytes; ++k)
            want[index * static_cast<std::uint64_t>(nbytes) + static_cast<std::uint64_t>(k)] =
                static_cast<std::uint8_t>((u >> (8 * k)) & 0xFF);
        }
        ASSERT_EQ(buf, want) << type_str(t) << " v=" << v << " index=" << index;
        ASSERT_EQ(dla::load_element(buf.data(), t, index), v)
            << type_str(t) << " v=" << v << " index=" << index;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 4u * (16 + 16 + 256 + 256 + 65536 + 100'000));
}

// ===========================================================================
// Types, names, storage
// ===========================================================================

TEST(DTypes, InfoLiteral) {
  struct Row {
    DType t;
    const char* name;
    int bits;
    bool is_signed;
    std::int64_t min, max;
  };
  const std::array<Row, 6> rows = {{
      {DType::I4, "i4", 4, true, -8, 7},
      {DType::U4, "u4", 4, false, 0, 15},
      {DType::I8, "i8", 8, true, -128, 127},
      {DType::U8, "u8", 8, false, 0, 255},
      {DType::I16, "i16", 16, true, -32768, 32767},
      {DType::I32, "i32", 32, true, -2147483648LL, 2147483647LL},
  }};
  for (const Row& r : rows) {
    const dla::DTypeInfo info = dla::dtype_info(r.t);
    EXPECT_EQ(info.name, r.name);
    EXPECT_EQ(info.bits, r.bits) << r.name;
    EXPECT_EQ(info.is_signed, r.is_signed) << r.name;
    EXPECT_EQ(info.min, r.min) << r.name;
    EXPECT_EQ(info.max, r.max) << r.name;
  }
  EXPECT_EQ(dla::kNumDTypes, 6);
  EXPECT_EQ(static_cast<int>(DType::I4), 0);
  EXPECT_EQ(static_cast<int>(DType::U4), 1);
  EXPECT_EQ(static_cast<int>(DType::I8), 2);
  EXPECT_EQ(static_cast<int>(DType::U8), 3);
  EXPECT_EQ(static_cast<int>(DType::I16), 4);
  EXPECT_EQ(static_cast<int>(DType::I32), 5);
  EXPECT_FALSE(dla::is_valid_dtype(-1));
  for (int i = 0; i <= 5; ++i) EXPECT_TRUE(dla::is_valid_dtype(i)) << i;
  EXPECT_FALSE(dla::is_valid_dtype(6));
  EXPECT_FALSE(dla::is_valid_dtype(255));
}

TEST(DTypes, ParseDtype) {
  EXPECT_EQ(dla::parse_dtype("i4"), std::optional<DType>(DType::I4));
  EXPECT_EQ(dla::parse_dtype("u4"), std::optional<DType>(DType::U4));
  EXPECT_EQ(dla::parse_dtype("i8"), std::optional<DType>(DType::I8));
  EXPECT_EQ(dla::parse_dtype("u8"), std::optional<DType>(DType::U8));
  EXPECT_EQ(dla::parse_dtype("i16"), std::optional<DType>(DType::I16));
  EXPECT_EQ(dla::parse_dtype("i32"), std::optional<DType>(DType::I32));
  for (const char* bad : {"", "I8", "i", "i64", "u16", "i8 ", " i8", "int8", "u32", "?"}) {
    EXPECT_EQ(dla::parse_dtype(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(DTypes, StorageBytesLiteral) {
  EXPECT_EQ(dla::storage_bytes(DType::I4, 0), 0u);
  EXPECT_EQ(dla::storage_bytes(DType::I4, 1), 1u);
  EXPECT_EQ(dla::storage_bytes(DType::I4, 2), 1u);
  EXPECT_EQ(dla::storage_bytes(DType::I4, 3), 2u);
  EXPECT_EQ(dla::storage_bytes(DType::U4, 7), 4u);
  EXPECT_EQ(dla::storage_bytes(DType::U4, 1000), 500u);
  EXPECT_EQ(dla::storage_bytes(DType::I8, 0), 0u);
  EXPECT_EQ(dla::storage_bytes(DType::I8, 5), 5u);
  EXPECT_EQ(dla::storage_bytes(DType::U8, 5), 5u);
  EXPECT_EQ(dla::storage_bytes(DType::I16, 5), 10u);
  EXPECT_EQ(dla::storage_bytes(DType::I32, 5), 20u);
  EXPECT_EQ(dla::storage_bytes(DType::I32, std::uint64_t{1} << 40), std::uint64_t{1} << 42);
  EXPECT_EQ(dla::storage_bytes(DType::I4, (std::uint64_t{1} << 40) + 1),
            (std::uint64_t{1} << 39) + 1);
}

TEST(Names, ModeAndPolicyNames) {
  EXPECT_EQ(dla::round_mode_name(RoundMode::HALF_UP), "HALF_UP");
  EXPECT_EQ(dla::round_mode_name(RoundMode::HALF_AWAY), "HALF_AWAY");
  EXPECT_EQ(dla::round_mode_name(RoundMode::HALF_EVEN), "HALF_EVEN");
  EXPECT_EQ(dla::round_mode_name(RoundMode::FLOOR), "FLOOR");
  EXPECT_EQ(dla::kNumRoundModes, 4);
  EXPECT_EQ(static_cast<int>(RoundMode::HALF_UP), 0);  // hardware default is encoding 0
  EXPECT_EQ(dla::overflow_policy_name(OverflowPolicy::WRAP), "WRAP");
  EXPECT_EQ(dla::overflow_policy_name(OverflowPolicy::SATURATE_FINAL), "SATURATE_FINAL");
  const dla::AccSpec acc;
  EXPECT_EQ(acc.bits, 32);
  EXPECT_EQ(acc.policy, OverflowPolicy::WRAP);
}

// ===========================================================================
// Constant-expression usability (compile-time checks: a failure breaks the build)
// ===========================================================================

constexpr std::int64_t packed_roundtrip() {
  std::uint8_t buf[2] = {0, 0};
  dla::pack4(buf, 0, 1);
  dla::pack4(buf, 1, -2);
  dla::store_element(buf, DType::I4, 2, 7);
  return buf[0] * 1000 + dla::unpack4(buf, 1, true) * 10 + dla::load_element(buf, DType::I4, 2);
}

static_assert(dla::round_shift(5, 1, RoundMode::HALF_UP) == 3, "2.5 -> 3");
static_assert(dla::round_shift(5, 1, RoundMode::HALF_EVEN) == 2, "2.5 -> 2");
static_assert(dla::round_shift(-5, 1, RoundMode::HALF_AWAY) == -3, "-2.5 -> -3");
static_assert(dla::round_shift(-5, 1, RoundMode::FLOOR) == -3, "floor(-2.5)");
static_assert(dla::round_shift(3, -4, RoundMode::HALF_UP) == 48, "left shift");
static_assert(dla::wrap(128, 8) == -128, "wrap");
static_assert(dla::finalize_acc(40000, {16, OverflowPolicy::SATURATE_FINAL}) == 32767, "sat");
static_assert(dla::requantize(2040, 4, OutputSpec{DType::I8, RoundMode::HALF_UP}) == 127, "rq");
static_assert(dla::eltwise_add(3, 4, {1, 0, 2}, OutputSpec{DType::I8, RoundMode::HALF_EVEN}) == 2,
              "add");
static_assert(*dla::avgpool_multiplier(9, 16) == 7282, "avg M");
static_assert(!dla::avgpool_multiplier(1, 16).has_value(), "avg M overflow");
static_assert(dla::parse_dtype("i16") == DType::I16, "parse");
static_assert(dla::storage_bytes(DType::U4, 3) == 2, "storage");
static_assert(dla::dtype_info(DType::U8).max == 255, "info");
static_assert(dla::saturate(300, DType::I8) == 127, "saturate");
static_assert(OutputSpec{DType::I8, RoundMode::HALF_UP, 0, 96}.hi() == 96, "clip");
static_assert(packed_roundtrip() == 0xE1 * 1000 - 20 + 7, "pack4 in constexpr");

TEST(Constexpr, ValuesAlsoHoldAtRuntime) {
  // Mirror of the static_asserts (so a runtime divergence from constant evaluation shows).
  volatile int one = 1;
  EXPECT_EQ(dla::round_shift(5, one, RoundMode::HALF_UP), 3);
  EXPECT_EQ(dla::round_shift(5, one, RoundMode::HALF_EVEN), 2);
  EXPECT_EQ(packed_roundtrip(), 0xE1 * 1000 - 20 + 7);
}

}  // namespace
