// Table contents for VLUT (dla/compiler/lut_tables.hpp).
#include "dla/compiler/lut_tables.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

namespace dla::lut {

namespace {

__extension__ typedef __int128 i128;  // __extension__: no -Wpedantic warning

constexpr std::array<std::string_view, 9> kNames{"silu",      "sigmoid",    "tanh", "hardswish", "hardsigmoid",
                                                 "gelu_tanh", "leaky_relu", "elu",  "table"};

/// num / den, den > 0, rounded to an integer by `mode` (the contract's round_shift
/// generalised to any positive divisor: floor, then the tie decision on the remainder).
i128 round_div(i128 num, i128 den, RoundMode mode) {
  i128 q = num / den;
  i128 r = num % den;
  if (r < 0) {
    q -= 1;
    r += den;
  }
  const i128 twice = 2 * r;
  bool up = false;
  switch (mode) {
    case RoundMode::FLOOR: break;
    case RoundMode::HALF_UP: up = twice >= den; break;
    case RoundMode::HALF_AWAY: up = twice > den || (twice == den && num >= 0); break;
    case RoundMode::HALF_EVEN: up = twice > den || (twice == den && (q & 1) != 0); break;
  }
  return q + (up ? 1 : 0);
}

/// An exact rational num / den with den > 0.
struct Rational {
  i128 num;
  i128 den;
  /// This times 2^e.
  Rational scaled(int e) const {
    return e >= 0 ? Rational{num * (i128{1} << e), den} : Rational{num, den * (i128{1} << -e)};
  }
};

/// A finite double as an exact m * 2^e with integer m.
Rational exact_double(double v) {
  int e = 0;
  const double frac = std::frexp(v, &e);  // v = frac * 2^e, |frac| in [0.5, 1)
  const auto m = static_cast<i128>(std::ldexp(frac, 53));
  return Rational{m, 1}.scaled(e - 53);
}

/// g(x) exactly, for the piecewise-rational functions at x = k * 2^-f_x; nullopt for the
/// transcendental ones (and ELU's exponential half).
std::optional<Rational> exact_value(const Activation& a, std::int64_t k, int f_x) {
  const Rational x = Rational{k, 1}.scaled(-f_x);
  const Rational three = Rational{3, 1};
  // x + 3 and the clamp to [0, 6], over x's denominator.
  auto relu6_x_plus_3 = [&]() {
    const i128 den = x.den;
    const i128 v = std::clamp<i128>(x.num + three.num * den, 0, 6 * den);
    return Rational{v, den};
  };
  switch (a.function) {
    case Function::kHardswish: {
      const Rational r = relu6_x_plus_3();
      return Rational{x.num * r.num, x.den * r.den * 6};
    }
    case Function::kHardsigmoid: {
      const Rational r = relu6_x_plus_3();
      return Rational{r.num, r.den * 6};
    }
    case Function::kLeakyRelu: {
      if (k >= 0) return x;
      const Rational s = exact_double(a.alpha);
      return Rational{x.num * s.num, x.den * s.den};
    }
    case Function::kElu:
      if (k >= 0) return x;
      return std::nullopt;
    default: return std::nullopt;
  }
}

/// A value as A + D: A exact (a dyadic rational the function tends to, already scaled by
/// 2^f_y), D the rest, accurate to long double's relative precision however small it is.
/// Splitting keeps the side of an integer (FLOOR) or of a half (the HALF modes) that a
/// value like sigmoid(45) * 2^6 = 64 - 2^-59 lies on, which one long double would lose.
struct Split {
  long double a;
  long double d;
};

/// round(A + D) by `mode`. Every comparison is the sign of fl((exact dyadic) + D), which
/// equals the sign of the exact sum: rounding to nearest never flips a sign.
long double round_split(const Split& v, RoundMode mode) {
  const long double q0 = std::floor(v.a);
  const long double ra = v.a - q0;  // exact
  long double m = std::floor(ra + v.d);
  if ((ra - m) + v.d < 0) m -= 1;
  if ((ra - (m + 1)) + v.d >= 0) m += 1;
  // Now A + D = q0 + m + r with r in [0, 1); compare r with 1/2.
  const long double half = (ra - (m + 0.5L)) + v.d;
  const long double q = q0 + m;
  bool up = false;
  switch (mode) {
    case RoundMode::FLOOR: break;
    case RoundMode::HALF_UP: up = half >= 0; break;
    case RoundMode::HALF_AWAY: up = half > 0 || (half == 0 && q >= 0); break;
    case RoundMode::HALF_EVEN: up = half > 0 || (half == 0 && std::fmod(q, 2.0L) != 0); break;
  }
  return q + (up ? 1 : 0);
}

/// 1 / (1 + e^-z), accurate in relative terms for every z.
long double sigmoid(long double z) { return 1.0L / (1.0L + std::exp(-z)); }

/// g(x) as A + D (unscaled), for the functions without an exact_value.
Split split_value(const Activation& a, long double x) {
  const long double c = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
  switch (a.function) {
    case Function::kSigmoid: return x >= 0 ? Split{1.0L, -sigmoid(-x)} : Split{0.0L, sigmoid(x)};
    case Function::kTanh: return x >= 0 ? Split{1.0L, -2.0L * sigmoid(-2.0L * x)} : Split{-1.0L, 2.0L * sigmoid(2.0L * x)};
    case Function::kSiLU: return x >= 0 ? Split{x, -x * sigmoid(-x)} : Split{0.0L, x * sigmoid(x)};
    case Function::kGeluTanh: {
      // 0.5 x (1 + tanh(u)) = x * sigmoid(2u).
      const long double z = 2.0L * c * (x + 0.044715L * x * x * x);
      return x >= 0 ? Split{x, -x * sigmoid(-z)} : Split{0.0L, x * sigmoid(z)};
    }
    case Function::kElu: return Split{-static_cast<long double>(a.alpha), static_cast<long double>(a.alpha) * std::exp(x)};
    default: return Split{0.0L, evaluate(a, x)};
  }
}

std::string format_text(const TableFormat& f) {
  return std::string(dtype_info(f.in_type).name) + " (frac " + std::to_string(f.in_frac) + ") to " +
         std::string(dtype_info(f.out_type).name) + " (frac " + std::to_string(f.out_frac) + ")";
}

void check_types(DType in, DType out) {
  if (lut_entries(in) == 0) {
    throw LutError("a table cannot take " + std::string(dtype_info(in).name) +
                   " inputs (i4, u4, i8, u8 or i16)");
  }
  if (dtype_info(out).bits > 16) {
    throw LutError("a table cannot produce " + std::string(dtype_info(out).name) +
                   " outputs (its entries are 16-bit: i4, u4, i8, u8 or i16)");
  }
}

}  // namespace

std::string_view function_name(Function f) { return kNames[static_cast<std::size_t>(f)]; }

std::optional<Function> parse_function(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<Function>(i);
  }
  return std::nullopt;
}

long double evaluate(const Activation& a, long double x) {
  const long double alpha = a.alpha;
  switch (a.function) {
    case Function::kSiLU: return x / (1.0L + std::exp(-x));
    case Function::kSigmoid: return 1.0L / (1.0L + std::exp(-x));
    case Function::kTanh: return std::tanh(x);
    case Function::kHardswish: return x * std::clamp(x + 3.0L, 0.0L, 6.0L) / 6.0L;
    case Function::kHardsigmoid: return std::clamp(x + 3.0L, 0.0L, 6.0L) / 6.0L;
    case Function::kGeluTanh: {
      // 0.5 x (1 + tanh(u)) written as x * sigmoid(2u): no cancellation for large negative
      // x, where the value is tiny but its sign still decides FLOOR.
      const long double c = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
      return x / (1.0L + std::exp(-2.0L * c * (x + 0.044715L * x * x * x)));
    }
    case Function::kLeakyRelu: return x >= 0 ? x : alpha * x;
    case Function::kElu: return x >= 0 ? x : alpha * std::expm1(x);
    case Function::kTable: break;
  }
  throw LutError("a user table has no formula to evaluate");
}

long double derivative(const Activation& a, long double x) {
  const long double alpha = a.alpha;
  switch (a.function) {
    case Function::kSiLU: {
      const long double s = 1.0L / (1.0L + std::exp(-x));
      return s * (1.0L + x * (1.0L - s));
    }
    case Function::kSigmoid: {
      const long double s = 1.0L / (1.0L + std::exp(-x));
      return s * (1.0L - s);
    }
    case Function::kTanh: {
      const long double t = std::tanh(x);
      return 1.0L - t * t;
    }
    case Function::kHardswish:
      if (x < -3.0L) return 0.0L;
      if (x >= 3.0L) return 1.0L;
      return (2.0L * x + 3.0L) / 6.0L;
    case Function::kHardsigmoid: return (x > -3.0L && x < 3.0L) ? 1.0L / 6.0L : 0.0L;
    case Function::kGeluTanh: {
      const long double c = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
      const long double inner = c * (x + 0.044715L * x * x * x);
      const long double t = std::tanh(inner);
      return 0.5L * (1.0L + t) + 0.5L * x * (1.0L - t * t) * c * (1.0L + 3.0L * 0.044715L * x * x);
    }
    case Function::kLeakyRelu: return x >= 0 ? 1.0L : alpha;
    case Function::kElu: return x >= 0 ? 1.0L : alpha * std::exp(x);
    case Function::kTable: break;
  }
  throw LutError("a user table has no derivative");
}

namespace {

/// The entries of build_table, unchecked.
std::vector<std::int16_t> entries_of(const Activation& a, const TableFormat& format);

/// An i16 table's worst distance, in output steps, between its interpolation and the
/// (saturated) function at the middle of a segment, and that segment.
struct Gap {
  long double steps = 0;
  std::int64_t segment = 0;
};
Gap worst_midpoint_gap(const Activation& a, const TableFormat& f, const std::vector<std::int16_t>& table);

/// The knots follow the function when no segment's middle is off by more than 1/8 of the
/// table's range (and 2 steps, the rounding of knot and step): coarser, the function's
/// shape falls between knots (sigmoid over +-2^15 with knots 256 apart is a ramp).
constexpr int kFollowDivisor = 8;
bool follows(const Gap& gap, const std::vector<std::int16_t>& table);
std::int64_t range_of(const std::vector<std::int16_t>& table);
std::string real_text(std::int64_t q, int frac);

}  // namespace

std::vector<std::int16_t> build_table(const Activation& a, const TableFormat& format) {
  check_types(format.in_type, format.out_type);
  if (a.function == Function::kTable) throw LutError("a user table is given, not built (dla::lut::user_table)");
  for (const int f : {format.in_frac, format.out_frac}) {
    if (f < kMinFrac || f > kMaxFrac) {
      throw LutError("frac " + std::to_string(f) + " is outside [" + std::to_string(kMinFrac) + ", " +
                     std::to_string(kMaxFrac) + "] for a table of " + std::string(function_name(a.function)));
    }
  }
  if ((a.function == Function::kLeakyRelu || a.function == Function::kElu) && !std::isfinite(a.alpha)) {
    throw LutError(std::string(function_name(a.function)) + " needs a finite alpha");
  }
  std::vector<std::int16_t> table = entries_of(a, format);
  if (std::all_of(table.begin(), table.end(), [&](std::int16_t e) { return e == table.front(); })) {
    throw LutError("the table of " + std::string(function_name(a.function)) + " from " + format_text(format) +
                   " cannot represent it: every entry is " + std::to_string(table.front()) +
                   " (the output frac saturates or rounds away every input)");
  }
  if (lut_interpolates(format.in_type)) {
    if (const Gap gap = worst_midpoint_gap(a, format, table); !follows(gap, table)) {
      // The smallest input frac whose knots follow the function, for the message.
      int better = format.in_frac + 1;
      for (; better <= kMaxFrac; ++better) {
        TableFormat f = format;
        f.in_frac = better;
        const std::vector<std::int16_t> t = entries_of(a, f);
        if (follows(worst_midpoint_gap(a, f, t), t)) break;
      }
      const int spacing = kLutInterpBits - format.in_frac;  // log2 of the knot spacing in reals
      const std::int64_t x0 = lut_position_input(format.in_type, gap.segment);
      throw LutError("an i16 input at frac " + std::to_string(format.in_frac) + " spans [-2^" +
                     std::to_string(15 - format.in_frac) + ", 2^" + std::to_string(15 - format.in_frac) +
                     "), beyond the range the table's 257 knots (2^" + std::to_string(spacing) +
                     " apart) can follow " + std::string(function_name(a.function)) + ": between the knots at " +
                     real_text(x0, format.in_frac) + " and " + real_text(x0 + (1 << kLutInterpBits), format.in_frac) +
                     " the interpolation is off by " + std::to_string(static_cast<long long>(std::ceil(gap.steps))) +
                     " output steps of the table's " + std::to_string(range_of(table)) + " (more than 1/" +
                     std::to_string(kFollowDivisor) + ")" +
                     (better <= kMaxFrac ? "; give the input a frac of at least " + std::to_string(better) +
                                               " (a smaller range)"
                                         : ""));
    }
  }
  return table;
}

namespace {

std::vector<std::int16_t> entries_of(const Activation& a, const TableFormat& format) {
  const DTypeInfo out = dtype_info(format.out_type);
  const std::int64_t n = lut_entries(format.in_type);
  std::vector<std::int16_t> table(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t k = lut_position_input(format.in_type, j);
    std::int64_t y = 0;
    if (const std::optional<Rational> exact = exact_value(a, k, format.in_frac)) {
      const Rational v = exact->scaled(format.out_frac);
      const i128 r = round_div(v.num, v.den, format.mode);
      y = static_cast<std::int64_t>(std::clamp<i128>(r, out.min, out.max));
    } else {
      const long double x = std::ldexp(static_cast<long double>(k), -format.in_frac);
      const Split g = split_value(a, x);
      Split v{std::ldexp(g.a, format.out_frac), std::ldexp(g.d, format.out_frac)};
      if (v.d == 0 && k != 0) {
        // The rest underflowed (GELU(-100) ~ -10^-65000), but its sign still decides FLOOR
        // and near-halves: keep the side the function approaches its asymptote from.
        const bool above = k < 0 && (a.function == Function::kSigmoid || a.function == Function::kTanh ||
                                     (a.function == Function::kElu && a.alpha > 0));
        v.d = above ? std::numeric_limits<long double>::denorm_min() : -std::numeric_limits<long double>::denorm_min();
      }
      const long double sum = v.a + v.d;
      // Far outside the output range the side of an integer no longer matters.
      if (sum < out.min - 2.0L) {
        y = out.min;
      } else if (sum > out.max + 2.0L) {
        y = out.max;
      } else {
        y = saturate(static_cast<std::int64_t>(round_split(v, format.mode)), format.out_type);
      }
    }
    table[static_cast<std::size_t>(j)] = static_cast<std::int16_t>(y);
  }
  return table;
}

std::int64_t range_of(const std::vector<std::int16_t>& table) {
  const auto [lo, hi] = std::minmax_element(table.begin(), table.end());
  return static_cast<std::int64_t>(*hi) - *lo;
}

Gap worst_midpoint_gap(const Activation& a, const TableFormat& f, const std::vector<std::int16_t>& table) {
  const DTypeInfo out = dtype_info(f.out_type);
  Gap worst;
  for (std::size_t j = 0; j + 1 < table.size(); ++j) {
    const std::int64_t mid = lut_position_input(f.in_type, static_cast<std::int64_t>(j)) + (1 << (kLutInterpBits - 1));
    const long double g = std::ldexp(evaluate(a, std::ldexp(static_cast<long double>(mid), -f.in_frac)), f.out_frac);
    const long double truth = std::clamp<long double>(g, out.min, out.max);
    const long double steps = std::abs(truth - (static_cast<long double>(table[j]) + table[j + 1]) / 2);
    if (steps > worst.steps) worst = {steps, static_cast<std::int64_t>(j)};
  }
  return worst;
}

bool follows(const Gap& gap, const std::vector<std::int16_t>& table) {
  return gap.steps <= std::max<long double>(2.0L, static_cast<long double>(range_of(table)) / kFollowDivisor);
}

std::string real_text(std::int64_t q, int frac) {
  std::ostringstream o;
  o << static_cast<double>(std::ldexp(static_cast<double>(q), -frac));
  return o.str();
}

}  // namespace

std::vector<std::int16_t> user_table(const std::vector<std::int64_t>& values, DType in_type, DType out_type) {
  check_types(in_type, out_type);
  const std::int64_t n = lut_entries(in_type);
  if (static_cast<std::int64_t>(values.size()) != n) {
    throw LutError("a table for " + std::string(dtype_info(in_type).name) + " inputs has " + std::to_string(n) +
                   " entries, this one has " + std::to_string(values.size()));
  }
  const DTypeInfo out = dtype_info(out_type);
  std::vector<std::int16_t> table(values.size());
  for (std::size_t j = 0; j < values.size(); ++j) {
    if (values[j] < out.min || values[j] > out.max) {
      throw LutError("table entry " + std::to_string(j) + " = " + std::to_string(values[j]) + " is outside " +
                     std::string(out.name) + " [" + std::to_string(out.min) + ", " + std::to_string(out.max) + "]");
    }
    table[j] = static_cast<std::int16_t>(values[j]);
  }
  return table;
}

std::int64_t lookup(const std::vector<std::int16_t>& table, std::int64_t x, const TableFormat& format) {
  return lut_lookup(table, x, format.in_type, format.out_type, format.mode);
}

}  // namespace dla::lut
