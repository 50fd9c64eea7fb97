// tests/compiler/test_lut_tables.cpp — the VLUT tables of dla::lut::build_table against
// a reference written here with other arithmetic:
//   * piecewise-rational functions (hardswish, hardsigmoid, LeakyReLU, ELU's linear half)
//     in exact rationals (boost cpp_rational), rounded by the contract's modes on the exact
//     quotient (the library uses 128-bit integer division);
//   * transcendental functions (SiLU, sigmoid, tanh, GELU tanh form, ELU) in 100-digit
//     binary floating point (boost cpp_bin_float_100), with other formulas than the
//     library's (sigmoid via tanh, SiLU via the sigmoid, ELU via exp). Where a value
//     comes out exactly on an integer or a half, it is the function's asymptote reached
//     to 100 digits (sigmoid(300) = 1 - e^-300): the true value lies on the side the
//     function approaches from, known in closed form (sigmoid < 1, SiLU(x) < x, ...);
//   * i16 interpolation: the contract's knot formula evaluated with exact floor division.
// Every 4- and 8-bit input of every function and of each chosen type/frac/mode, and all
// 65,536 i16 inputs for SiLU, sigmoid and tanh.
#include "dla/compiler/lut_tables.hpp"

#include <gtest/gtest.h>

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/cpp_int.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

namespace mp = boost::multiprecision;
using Real = mp::cpp_bin_float_100;
using Rat = mp::cpp_rational;
using dla::DType;
using dla::RoundMode;
using dla::lut::Activation;
using dla::lut::Function;
using dla::lut::TableFormat;

Rat pow2(int e) {
  Rat r = 1;
  for (int i = 0; i < (e < 0 ? -e : e); ++i) r *= 2;
  return e < 0 ? Rat(1) / r : r;
}

/// A double as an exact rational (m * 2^e with 53-bit m).
Rat exact(double v) {
  int e = 0;
  const double m = std::frexp(v, &e);
  return Rat(static_cast<long long>(std::ldexp(m, 53))) * pow2(e - 53);
}

/// round(v) by `mode`, on an exact rational: floor, then the tie decision.
mp::cpp_int round_rational(const Rat& v, RoundMode mode) {
  const mp::cpp_int num = mp::numerator(v), den = mp::denominator(v);
  mp::cpp_int q = num / den;  // truncates toward zero
  if (q * den > num) q -= 1;  // floor
  const Rat r = v - Rat(q);   // in [0, 1)
  const Rat half(1, 2);
  bool up = false;
  if (mode == RoundMode::HALF_UP) up = r >= half;
  if (mode == RoundMode::HALF_AWAY) up = r > half || (r == half && v >= 0);
  if (mode == RoundMode::HALF_EVEN) up = r > half || (r == half && mp::bit_test(mp::abs(q), 0));
  return q + (up ? 1 : 0);
}

/// round(v) by `mode` for a value that is a tie only when exact (side == 0); `side` is the
/// sign of (true value - v) where v sits on an integer or half it only approaches.
long long round_real(const Real& v, int side, RoundMode mode) {
  Real q = mp::floor(v);
  const Real r = v - q;
  if (r == 0 && side < 0) {  // just below an integer
    q -= 1;
    return static_cast<long long>(q) + (mode == RoundMode::FLOOR ? 0 : 1);
  }
  const bool tie = r == 0.5 && side == 0;
  const bool above_half = r > 0.5 || (r == 0.5 && side > 0);
  bool up = false;
  if (mode == RoundMode::HALF_UP) up = above_half || tie;
  if (mode == RoundMode::HALF_AWAY) up = above_half || (tie && v >= 0);
  if (mode == RoundMode::HALF_EVEN) up = above_half || (tie && mp::fmod(q, Real(2)) != 0);
  return static_cast<long long>(q) + (up ? 1 : 0);
}

Real sigmoid(const Real& x) { return (1 + mp::tanh(x / 2)) / 2; }

/// g(x) * 2^f_y rounded, for x = k * 2^-f_x, before the output clamp.
long long reference_entry(const Activation& a, long long k, const TableFormat& f) {
  const Rat x = Rat(k) * pow2(-f.in_frac);
  const Rat scale = pow2(f.out_frac);
  auto rational = [&](const Rat& v) {
    const mp::cpp_int r = round_rational(v * scale, f.mode);
    if (r > 40000) return 40000LL;  // beyond every 16-bit output; clamped by the caller
    if (r < -40000) return -40000LL;
    return static_cast<long long>(r);
  };
  const Rat relu6 = x + 3 < 0 ? Rat(0) : (x + 3 > 6 ? Rat(6) : x + 3);
  switch (a.function) {
    case Function::kHardswish: return rational(x * relu6 / 6);
    case Function::kHardsigmoid: return rational(relu6 / 6);
    case Function::kLeakyRelu: return rational(x >= 0 ? x : exact(a.alpha) * x);
    case Function::kElu:
      if (x >= 0) return rational(x);
      break;
    default: break;
  }
  const Real xr = Real(k) * mp::pow(Real(2), -f.in_frac);
  Real g;
  switch (a.function) {
    case Function::kSiLU: g = xr * sigmoid(xr); break;
    case Function::kSigmoid: g = sigmoid(xr); break;
    case Function::kTanh: g = 2 * sigmoid(2 * xr) - 1; break;
    case Function::kGeluTanh: {
      const Real c = mp::sqrt(Real(2) / boost::math::constants::pi<Real>());
      g = xr * sigmoid(2 * c * (xr + Real("0.044715") * xr * xr * xr));  // 0.5(1 + tanh(u)) = sigmoid(2u)
      break;
    }
    case Function::kElu: g = Real(exact(a.alpha).convert_to<Real>()) * (mp::exp(xr) - 1); break;
    default: ADD_FAILURE(); break;
  }
  const Real v = g * mp::pow(Real(2), f.out_frac);
  if (v > 40000) return 40000;
  if (v < -40000) return -40000;
  // Which side of its asymptote the function approaches from (0 at x = 0, where each
  // value is exact: 0, or 1/2 for the sigmoid).
  int side = 0;
  if (k > 0) side = -1;  // sigmoid, tanh below 1; SiLU, GELU below x
  if (k < 0) side = (a.function == Function::kSigmoid || a.function == Function::kTanh || a.function == Function::kElu) ? 1 : -1;
  return round_real(v, side, f.mode);
}

long long clamp_to(long long v, DType t) {
  return std::min<long long>(std::max<long long>(v, dla::dtype_info(t).min), dla::dtype_info(t).max);
}

/// Input integer of table position j (written from the contract, not from numerics.hpp).
long long position_input(DType in, long long j) {
  return dla::dtype_info(in).bits == 16 ? j * 256 - 32768 : dla::dtype_info(in).min + j;
}

std::vector<long long> reference_table(const Activation& a, const TableFormat& f) {
  const int bits = dla::dtype_info(f.in_type).bits;
  const long long n = bits == 16 ? 257 : (1LL << bits);
  std::vector<long long> t(static_cast<std::size_t>(n));
  for (long long j = 0; j < n; ++j)
    t[static_cast<std::size_t>(j)] = clamp_to(reference_entry(a, position_input(f.in_type, j), f), f.out_type);
  return t;
}

std::string describe(const Activation& a, const TableFormat& f) {
  return std::string(dla::lut::function_name(a.function)) + " alpha=" + std::to_string(a.alpha) + " " +
         std::string(dla::dtype_info(f.in_type).name) + "/" + std::to_string(f.in_frac) + " -> " +
         std::string(dla::dtype_info(f.out_type).name) + "/" + std::to_string(f.out_frac) + " " +
         std::string(dla::round_mode_name(f.mode));
}

/// Compares build_table with the reference; a constant reference table must be refused.
void expect_table(const Activation& a, const TableFormat& f) {
  SCOPED_TRACE(describe(a, f));
  const std::vector<long long> ref = reference_table(a, f);
  const bool constant = std::all_of(ref.begin(), ref.end(), [&](long long v) { return v == ref.front(); });
  if (constant) {
    EXPECT_THROW(dla::lut::build_table(a, f), dla::lut::LutError);
    return;
  }
  const std::vector<std::int16_t> got = dla::lut::build_table(a, f);
  ASSERT_EQ(got.size(), ref.size());
  for (std::size_t j = 0; j < ref.size(); ++j) ASSERT_EQ(got[j], ref[j]) << "entry " << j;
}

const Activation kActivations[] = {
    {Function::kSiLU, 0},       {Function::kSigmoid, 0},     {Function::kTanh, 0},
    {Function::kHardswish, 0},  {Function::kHardsigmoid, 0}, {Function::kGeluTanh, 0},
    {Function::kLeakyRelu, 0.1}, {Function::kLeakyRelu, 0.01}, {Function::kLeakyRelu, 0.125},
    {Function::kElu, 1.0},      {Function::kElu, 0.5},
};

TEST(LutTables, EveryNarrowInputMatchesTheReference) {
  struct Io {
    DType in;
    int fi;
    DType out;
    int fo;
  };
  const Io formats[] = {{DType::I8, 4, DType::I8, 4}, {DType::I8, 5, DType::I8, 7}, {DType::U8, 4, DType::U8, 8},
                        {DType::I8, 3, DType::I16, 12}, {DType::I4, 1, DType::I8, 5}, {DType::I8, 0, DType::I8, 6},
                        {DType::U4, 2, DType::U4, 3},  {DType::I8, 6, DType::I8, -1}, {DType::I8, -2, DType::I8, 2}};
  for (const Activation& a : kActivations)
    for (const Io& io : formats)
      for (int mode = 0; mode < 4; ++mode)
        expect_table(a, {io.in, io.fi, io.out, io.fo, static_cast<RoundMode>(mode)});
}

TEST(LutTables, TiesOfExactFunctionsFollowTheRoundingMode) {
  // hardswish(-1.5) = -0.375 and LeakyReLU(-1) * 1/8 land on halves at these fracs.
  for (int mode = 0; mode < 4; ++mode) {
    const TableFormat f{DType::I8, 1, DType::I8, 2, static_cast<RoundMode>(mode)};
    expect_table({Function::kHardswish, 0}, f);
    expect_table({Function::kLeakyRelu, 0.125}, {DType::I8, 0, DType::I8, 2, static_cast<RoundMode>(mode)});
  }
  const TableFormat up{DType::I8, 1, DType::I8, 2, RoundMode::HALF_UP};
  const TableFormat even{DType::I8, 1, DType::I8, 2, RoundMode::HALF_EVEN};
  // x = -1.5 is input -3, position -3 + 128; hardswish = -0.375 -> -1.5 at frac 2.
  EXPECT_EQ(dla::lut::build_table({Function::kHardswish, 0}, up)[125], -1);
  EXPECT_EQ(dla::lut::build_table({Function::kHardswish, 0}, even)[125], -2);
}

/// All 65,536 i16 inputs: the contract's interpolation between the reference knots, and
/// the distance to the function itself within the interpolation error bound.
TEST(LutTables, Int16InterpolationOnEveryInput) {
  struct Case {
    Activation a;
    double max_second_derivative;  // bound of |g''| for the interpolation error
  };
  const Case cases[] = {{{Function::kSiLU, 0}, 0.5}, {{Function::kSigmoid, 0}, 0.0963}, {{Function::kTanh, 0}, 0.7699}};
  for (const Case& c : cases)
    for (int mode = 0; mode < 4; ++mode) {
      const TableFormat f{DType::I16, 12, DType::I16, 12, static_cast<RoundMode>(mode)};
      SCOPED_TRACE(describe(c.a, f));
      const std::vector<long long> knots = reference_table(c.a, f);
      const std::vector<std::int16_t> table = dla::lut::build_table(c.a, f);
      ASSERT_EQ(std::vector<long long>(table.begin(), table.end()), knots);
      const double h = 256.0 / 4096.0;  // knot spacing in reals
      // Knot rounding and step rounding (each < 1 LSB, FLOOR included) plus h^2/8 max|g''|.
      const double bound = 2.0 + h * h / 8 * c.max_second_derivative * 4096.0 + 1e-9;
      double worst = 0;
      for (long long x = -32768; x <= 32767; ++x) {
        const long long pos = x + 32768, j = pos / 256, t = pos % 256;
        const long long lo = knots[static_cast<std::size_t>(j)], hi = knots[static_cast<std::size_t>(j + 1)];
        const long long num = (hi - lo) * t;  // the step in 1/256, rounded by exact floor division
        long long q = num / 256, rem = num % 256;
        if (rem < 0) {
          q -= 1;
          rem += 256;
        }
        bool up = false;
        if (f.mode == RoundMode::HALF_UP) up = rem >= 128;
        if (f.mode == RoundMode::HALF_AWAY) up = rem > 128 || (rem == 128 && num >= 0);
        if (f.mode == RoundMode::HALF_EVEN) up = rem > 128 || (rem == 128 && q % 2 != 0);
        const long long expected = clamp_to(lo + q + (up ? 1 : 0), f.out_type);
        const long long got = dla::lut::lookup(table, x, f);
        ASSERT_EQ(got, expected) << "x = " << x;
        const double truth = static_cast<double>(dla::lut::evaluate(c.a, std::ldexp(static_cast<double>(x), -12))) * 4096.0;
        worst = std::max(worst, std::abs(static_cast<double>(got) - truth));
      }
      EXPECT_LE(worst, bound);
    }
}

TEST(LutTables, DerivativeMatchesFiniteDifferences) {
  for (const Activation& a : kActivations) {
    SCOPED_TRACE(std::string(dla::lut::function_name(a.function)));
    for (double x = -6.1; x <= 6.1; x += 0.173) {
      if (std::abs(std::abs(x) - 3.0) < 0.01 || std::abs(x) < 0.01) continue;  // kinks
      const long double h = 1e-6L;
      const long double fd = (dla::lut::evaluate(a, x + h) - dla::lut::evaluate(a, x - h)) / (2 * h);
      EXPECT_NEAR(static_cast<double>(dla::lut::derivative(a, x)), static_cast<double>(fd), 1e-6) << "x = " << x;
    }
  }
}

TEST(LutTables, UnrepresentableTablesAreRefusedWithTheReason) {
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const dla::lut::LutError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Sigmoid lies in (0, 1): at output frac -4 every entry rounds to 0; at frac 30 every
  // u8 entry saturates (sigmoid(-8) * 2^30 is still far above 255).
  EXPECT_NE(message([] { dla::lut::build_table({Function::kSigmoid, 0}, {DType::I8, 4, DType::I8, -4, RoundMode::HALF_UP}); })
                .find("cannot represent it: every entry is 0"),
            std::string::npos);
  EXPECT_NE(message([] { dla::lut::build_table({Function::kSigmoid, 0}, {DType::I8, 4, DType::U8, 30, RoundMode::HALF_UP}); })
                .find("every entry is"),
            std::string::npos);
  EXPECT_NE(message([] { dla::lut::build_table({Function::kTanh, 0}, {DType::I32, 0, DType::I8, 4, RoundMode::HALF_UP}); })
                .find("cannot take i32 inputs"),
            std::string::npos);
  EXPECT_NE(message([] { dla::lut::build_table({Function::kTanh, 0}, {DType::I8, 0, DType::I32, 4, RoundMode::HALF_UP}); })
                .find("cannot produce i32 outputs"),
            std::string::npos);
  EXPECT_NE(message([] { dla::lut::build_table({Function::kTanh, 0}, {DType::I8, 40, DType::I8, 4, RoundMode::HALF_UP}); })
                .find("frac 40 is outside [-16, 31]"),
            std::string::npos);
  // i16 inputs: sigmoid over [-2^15, 2^15) with knots 2^8 apart is a ramp between the knots
  // at 0 and +-256, refused with the frac that works; at frac 7 (knots 2 apart) the middle
  // of a segment is within 1/8 of the range, so it builds; tanh, steeper, needs frac 8.
  const std::string coarse =
      message([] { dla::lut::build_table({Function::kSigmoid, 0}, {DType::I16, 0, DType::I16, 12, RoundMode::HALF_UP}); });
  EXPECT_NE(coarse.find("an i16 input at frac 0 spans [-2^15, 2^15), beyond the range the table's 257 knots (2^8 apart) "
                        "can follow sigmoid"),
            std::string::npos)
      << coarse;
  EXPECT_NE(coarse.find("give the input a frac of at least 7"), std::string::npos) << coarse;
  EXPECT_EQ(message([] { dla::lut::build_table({Function::kSigmoid, 0}, {DType::I16, 7, DType::I16, 12, RoundMode::HALF_UP}); }),
            "no error");
  EXPECT_NE(message([] { dla::lut::build_table({Function::kTanh, 0}, {DType::I16, 7, DType::I16, 12, RoundMode::HALF_UP}); })
                .find("give the input a frac of at least 8"),
            std::string::npos);
  EXPECT_NE(message([] { dla::lut::user_table(std::vector<std::int64_t>(255, 0), DType::I8, DType::I8); })
                .find("a table for i8 inputs has 256 entries, this one has 255"),
            std::string::npos);
  std::vector<std::int64_t> values(256, 0);
  values[7] = 128;
  EXPECT_NE(message([&] { dla::lut::user_table(values, DType::I8, DType::I8); })
                .find("table entry 7 = 128 is outside i8 [-128, 127]"),
            std::string::npos);
  values[7] = 255;
  EXPECT_EQ(dla::lut::user_table(values, DType::I8, DType::U8)[7], 255);
}

TEST(LutTables, FunctionNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(Function::kTable); ++i) {
    const auto f = static_cast<Function>(i);
    EXPECT_EQ(dla::lut::parse_function(dla::lut::function_name(f)), f);
  }
  EXPECT_FALSE(dla::lut::parse_function("swish"));
}

}  // namespace
