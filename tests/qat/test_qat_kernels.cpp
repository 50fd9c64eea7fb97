// tests/qat/test_qat_kernels.cpp — the integer kernels of the QAT bridge (no libtorch in
// this file) against references written here: naive loops over int64 with their own
// rounding, wrapping and clamping (not dla numerics), and every GEMM micro-kernel the CPU
// has against the same reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "dla/error.hpp"
#include "dla/qat/hw_options.hpp"
#include "dla/qat/kernels.hpp"

namespace {

using dla::DType;
using dla::OverflowPolicy;
using dla::RoundMode;
using namespace dla::qat;

constexpr RoundMode kModes[] = {RoundMode::HALF_UP, RoundMode::HALF_AWAY, RoundMode::HALF_EVEN,
                                RoundMode::FLOOR};
constexpr DType kActTypes[] = {DType::I4, DType::U4, DType::I8, DType::U8, DType::I16};

// ---------------------------------------------------------------------------
// Independent reference arithmetic
// ---------------------------------------------------------------------------

__extension__ typedef __int128 i128;  // wide enough for every intermediate here

struct Range {
  std::int64_t lo, hi;
};

Range type_range(DType t) {
  switch (t) {
    case DType::I4: return {-8, 7};
    case DType::U4: return {0, 15};
    case DType::I8: return {-128, 127};
    case DType::U8: return {0, 255};
    case DType::I16: return {-32768, 32767};
    case DType::I32: return {-2147483648LL, 2147483647LL};
  }
  return {0, 0};
}

// v / 2^s rounded (s >= 0): written with a remainder compared as 2r vs 2^s.
std::int64_t ref_shift(std::int64_t v, int s, RoundMode mode) {
  if (s <= 0) return v * (std::int64_t{1} << -s);
  const i128 d = static_cast<i128>(1) << s;
  i128 q = v / d;  // truncates toward zero
  i128 r = v - q * d;
  if (r < 0) {  // make it floor
    q -= 1;
    r += d;
  }
  const i128 twice = 2 * r;
  bool up = false;
  switch (mode) {
    case RoundMode::FLOOR: up = false; break;
    case RoundMode::HALF_UP: up = twice >= d; break;
    case RoundMode::HALF_AWAY: up = twice > d || (twice == d && v >= 0); break;
    case RoundMode::HALF_EVEN: up = twice > d || (twice == d && (q % 2 != 0)); break;
  }
  return static_cast<std::int64_t>(q + (up ? 1 : 0));
}

std::int64_t ref_wrap(std::int64_t v, int bits) {
  const i128 m = static_cast<i128>(1) << bits;
  i128 r = (static_cast<i128>(v) + m / 2) % m;
  if (r < 0) r += m;
  return static_cast<std::int64_t>(r - m / 2);
}

struct RefOut {
  std::int64_t q;
  bool overflow, saturated;
};

RefOut ref_mac_out(std::int64_t exact, int acc_bits, OverflowPolicy policy, int shift, RoundMode mode,
                   std::int64_t lo, std::int64_t hi) {
  const std::int64_t amin = -(std::int64_t{1} << (acc_bits - 1)), amax = (std::int64_t{1} << (acc_bits - 1)) - 1;
  const bool overflow = exact < amin || exact > amax;
  std::int64_t acc = exact;
  if (overflow) acc = policy == OverflowPolicy::WRAP ? ref_wrap(exact, acc_bits) : (exact < amin ? amin : amax);
  const std::int64_t r = ref_shift(acc, shift, mode);
  const std::int64_t q = r < lo ? lo : (r > hi ? hi : r);
  return {q, overflow, q != r};
}

// Rounding of a real v (a double whose fractional part is exact: |v| < 2^52).
std::int64_t ref_round_real(double v, RoundMode mode) {
  const double f = std::floor(v);
  const double r = v - f;  // exact
  bool up = false;
  switch (mode) {
    case RoundMode::FLOOR: up = false; break;
    case RoundMode::HALF_UP: up = r >= 0.5; break;
    case RoundMode::HALF_AWAY: up = r > 0.5 || (r == 0.5 && v >= 0); break;
    case RoundMode::HALF_EVEN: up = r > 0.5 || (r == 0.5 && std::fmod(f, 2.0) != 0); break;
  }
  return static_cast<std::int64_t>(f) + (up ? 1 : 0);
}

dla::OutputSpec spec(DType t, RoundMode m, std::int64_t clip_lo = std::numeric_limits<std::int64_t>::min(),
                     std::int64_t clip_hi = std::numeric_limits<std::int64_t>::max()) {
  dla::OutputSpec s;
  s.type = t;
  s.mode = m;
  s.clip_lo = clip_lo;
  s.clip_hi = clip_hi;
  return s;
}

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// ---------------------------------------------------------------------------
// Reals -> integers
// ---------------------------------------------------------------------------

TEST(QatQuantizeReal, FloatsEqualTheExactRounding) {
  std::mt19937_64 rng(1);
  for (RoundMode mode : kModes) {
    for (DType t : kActTypes) {
      const Range r = type_range(t);
      for (int i = 0; i < 4000; ++i) {
        const int frac = static_cast<int>(uniform(rng, -8, 20));
        float x = 0;
        switch (i % 4) {
          case 0:  // ties and near-ties of the output grid
            x = std::ldexp(static_cast<float>(2 * uniform(rng, -40000, 40000) + 1), -frac - 1);
            break;
          case 1: x = std::ldexp(static_cast<float>(uniform(rng, -(1 << 23), 1 << 23)), static_cast<int>(uniform(rng, -40, 8))); break;
          case 2: x = std::ldexp(static_cast<float>(uniform(rng, -1000, 1000)), -frac - static_cast<int>(uniform(rng, 10, 40))); break;
          default: x = std::ldexp(static_cast<float>(uniform(rng, -255, 255)), -frac); break;
        }
        const double v = std::ldexp(static_cast<double>(x), frac);
        const std::int64_t rounded = ref_round_real(v, mode);
        const std::int64_t want = rounded < r.lo ? r.lo : (rounded > r.hi ? r.hi : rounded);
        bool saturated = false;
        ASSERT_EQ(quantize_real(x, frac, spec(t, mode), &saturated), want)
            << "x=" << x << " frac=" << frac << " mode=" << static_cast<int>(mode);
        ASSERT_EQ(saturated, want != rounded);
        ASSERT_EQ(quantize_real(static_cast<double>(x), frac, spec(t, mode)), want);
      }
    }
  }
}

TEST(QatQuantizeReal, DoublesWithLowBitsBelowTheFloatFastPath) {
  std::mt19937_64 rng(2);
  for (RoundMode mode : kModes) {
    for (int i = 0; i < 4000; ++i) {
      // 0.5 +- 2^-40 and friends: a float path that dropped low bits would see a tie.
      const double base = static_cast<double>(uniform(rng, -1000, 1000)) + 0.5;
      const double x = base + std::ldexp(static_cast<double>(uniform(rng, -3, 3)), -40);
      const std::int64_t rounded = ref_round_real(x, mode);
      const std::int64_t want = rounded < -32768 ? -32768 : (rounded > 32767 ? 32767 : rounded);
      ASSERT_EQ(quantize_real(x, 0, spec(DType::I16, mode)), want) << x;
    }
  }
}

TEST(QatQuantizeReal, NanSaturatesAndInfinitiesClamp) {
  bool saturated = false;
  EXPECT_EQ(quantize_real(std::nanf(""), 3, spec(DType::I8, RoundMode::HALF_UP), &saturated), 0);
  EXPECT_TRUE(saturated);
  EXPECT_EQ(quantize_real(std::numeric_limits<float>::infinity(), 3, spec(DType::I8, RoundMode::HALF_UP), &saturated), 127);
  EXPECT_TRUE(saturated);
  EXPECT_EQ(quantize_real(-std::numeric_limits<double>::infinity(), 3, spec(DType::U8, RoundMode::FLOOR)), 0);
  EXPECT_EQ(quantize_real(3.0e38f, 32, spec(DType::I16, RoundMode::HALF_UP)), 32767);
  EXPECT_EQ(quantize_real(-1e-30f, -32, spec(DType::I8, RoundMode::FLOOR)), -1);
  EXPECT_EQ(quantize_real(-1e-30f, -32, spec(DType::I8, RoundMode::HALF_UP)), 0);
}

// quantize_forward on floats runs in blocks through the vectorized requantize_rows, with
// the values it cannot scale exactly (huge, NaN, inf) taken apart: every element must be
// quantize_real's (the scalar rounding checked above), and the count its saturations.
TEST(QatQuantizeForward, FloatBlocksEqualTheScalarQuantizationElementByElement) {
  std::mt19937_64 rng(7);
  const std::int64_t n = 2600;  // two full blocks and a part
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    float v = 0;
    switch (i % 7) {
      case 0: v = std::ldexp(static_cast<float>(2 * uniform(rng, -4000, 4000) + 1), -static_cast<int>(uniform(rng, 1, 12))); break;
      case 1: v = std::ldexp(static_cast<float>(uniform(rng, -(1 << 23), 1 << 23)), static_cast<int>(uniform(rng, -60, 40))); break;
      case 2: v = std::ldexp(static_cast<float>(uniform(rng, -1000, 1000)), -static_cast<int>(uniform(rng, 20, 60))); break;
      case 3: v = static_cast<float>(uniform(rng, -300, 300)) / 8.0f; break;
      case 4: v = i % 3 == 0 ? std::numeric_limits<float>::quiet_NaN()
                             : (i % 3 == 1 ? std::numeric_limits<float>::infinity() : -3.0e38f); break;
      case 5: v = i % 2 == 0 ? 0.0f : -0.0f; break;
      default: v = std::ldexp(static_cast<float>(uniform(rng, -255, 255)), -static_cast<int>(uniform(rng, 0, 8))); break;
    }
    x[static_cast<std::size_t>(i)] = v;
  }
  std::vector<float> y(x.size());
  std::unique_ptr<bool[]> mask(new bool[x.size()]);
  for (RoundMode mode : kModes) {
    for (DType t : kActTypes) {
      for (const auto& [lo, hi] : {std::pair<std::int64_t, std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                                                          std::numeric_limits<std::int64_t>::max()},
                                   {1, 5}}) {
        for (int frac : {-3, 0, 5, 31}) {
          const dla::OutputSpec out = spec(t, mode, lo, hi);
          const Counts c = quantize_forward<float>(x.data(), 1, 1, n, &frac, out, y.data(), mask.get());
          std::int64_t saturations = 0;
          for (std::int64_t i = 0; i < n; ++i) {
            bool saturated = false;
            const std::int64_t want = quantize_real(x[static_cast<std::size_t>(i)], frac, out, &saturated);
            saturations += saturated ? 1 : 0;
            ASSERT_EQ(y[static_cast<std::size_t>(i)], std::ldexp(static_cast<float>(want), -frac))
                << "element " << i << " x=" << x[static_cast<std::size_t>(i)] << " frac " << frac << " mode "
                << static_cast<int>(mode) << " type " << static_cast<int>(t);
            ASSERT_EQ(mask[static_cast<std::size_t>(i)], !saturated) << "element " << i;
          }
          ASSERT_EQ(c.saturations, saturations);
          ASSERT_EQ(c.overflows, 0);
        }
      }
    }
  }
}

TEST(QatRecoverInts, ReturnsIntegersAndTheFirstBadElement) {
  for (int n : {3, 8, 13, 5000}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>((i % 256) - 128) / 16.0f;
    std::vector<std::int16_t> q(x.size());
    ASSERT_EQ(recover_ints<float>(x.data(), n, 4, -128, 127, q.data()), -1);
    for (int i = 0; i < n; ++i) ASSERT_EQ(q[static_cast<std::size_t>(i)], (i % 256) - 128);
    const std::size_t bad = static_cast<std::size_t>(n) - 1;
    for (float v : {0.03125f, 8.0f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
      std::vector<float> y = x;
      y[bad] = v;
      EXPECT_EQ(recover_ints<float>(y.data(), n, 4, -128, 127, q.data()), static_cast<std::int64_t>(bad)) << v;
    }
  }
  // A nonzero value that underflows to zero when scaled is not a multiple of 2^-frac.
  const double tiny = 1e-300;
  std::int16_t q = 0;
  EXPECT_EQ(recover_ints<double>(&tiny, 1, -32, -128, 127, &q), 0);
}

// ---------------------------------------------------------------------------
// conv2d / linear against naive loops, for every GEMM kernel
// ---------------------------------------------------------------------------

struct MacCase {
  Conv2dGeometry g;
  DType xt, wt, yt;
  RoundMode mode;
  int acc_bits;
  OverflowPolicy policy;
  bool bias;
  std::int64_t clip_lo, clip_hi;
};

struct MacData {
  std::vector<std::int16_t> x, w;
  std::vector<std::int64_t> bias;
  std::vector<int> shift;
};

MacData random_data(std::mt19937_64& rng, const MacCase& c, std::int64_t x_count, std::int64_t w_count,
                    std::int64_t oc) {
  MacData d;
  const Range xr = type_range(c.xt), wr = type_range(c.wt);
  for (std::int64_t i = 0; i < x_count; ++i) {
    // Mostly extremes, so that sums grow large.
    const std::int64_t v = uniform(rng, 0, 3) == 0 ? uniform(rng, xr.lo, xr.hi) : (uniform(rng, 0, 1) ? xr.hi : xr.lo);
    d.x.push_back(static_cast<std::int16_t>(v));
  }
  for (std::int64_t i = 0; i < w_count; ++i) d.w.push_back(static_cast<std::int16_t>(uniform(rng, wr.lo, wr.hi)));
  for (std::int64_t o = 0; o < oc; ++o) {
    d.bias.push_back(c.bias ? uniform(rng, -(std::int64_t{1} << (c.acc_bits - 2)), std::int64_t{1} << (c.acc_bits - 2)) : 0);
    d.shift.push_back(static_cast<int>(uniform(rng, -2, 14)));
  }
  return d;
}

MacRequant requant_of(const MacCase& c, const MacData& d) {
  MacRequant rq;
  rq.acc = {c.acc_bits, c.policy};
  rq.out = spec(c.yt, c.mode, c.clip_lo, c.clip_hi);
  rq.shift = d.shift.data();
  rq.bias = c.bias ? d.bias.data() : nullptr;
  rq.frac_y = 3;
  rq.max_abs_x = max_abs(c.xt);
  rq.max_abs_w = max_abs(c.wt);
  return rq;
}

void expect_output(const MacCase& c, const MacData& d, std::int64_t oc, std::int64_t exact, double y, bool mask,
                   Counts& want, const std::string& where) {
  const Range yr = type_range(c.yt);
  const std::int64_t lo = std::max(yr.lo, c.clip_lo), hi = std::min(yr.hi, c.clip_hi);
  const RefOut r = ref_mac_out(exact + d.bias[static_cast<std::size_t>(oc)], c.acc_bits, c.policy,
                               d.shift[static_cast<std::size_t>(oc)], c.mode, lo, hi);
  ASSERT_EQ(y, std::ldexp(static_cast<double>(r.q), -3)) << where;
  ASSERT_EQ(mask, !r.saturated) << where;
  want.overflows += r.overflow;
  want.saturations += r.saturated;
}

void check_conv(const MacCase& c, std::uint64_t seed) {
  const Conv2dGeometry& g = c.g;
  ASSERT_EQ(g.validate(), "");
  std::mt19937_64 rng(seed);
  const std::int64_t cg = g.c / g.groups, ocg = g.oc / g.groups;
  const MacData d = random_data(rng, c, g.n * g.c * g.h * g.w, g.oc * cg * g.kh * g.kw, g.oc);
  const MacRequant rq = requant_of(c, d);
  const std::int64_t oh_n = g.out_h(), ow_n = g.out_w();
  const std::size_t out_count = static_cast<std::size_t>(g.n * g.oc * oh_n * ow_n);
  for (const std::string& kernel : available_gemm_kernels()) {
    ASSERT_TRUE(set_gemm_kernel(kernel));
    std::vector<double> y(out_count, -1);
    std::unique_ptr<bool[]> mask(new bool[out_count]);
    const Counts got = conv2d_forward<double>(g, d.x.data(), d.w.data(), rq, y.data(), mask.get(), 0, g.n);
    Counts want;
    for (std::int64_t n = 0; n < g.n; ++n) {
      for (std::int64_t oc = 0; oc < g.oc; ++oc) {
        const std::int64_t gi = oc / ocg;
        for (std::int64_t oh = 0; oh < oh_n; ++oh) {
          for (std::int64_t ow = 0; ow < ow_n; ++ow) {
            std::int64_t exact = 0;
            for (std::int64_t ic = 0; ic < cg; ++ic) {
              for (std::int64_t ki = 0; ki < g.kh; ++ki) {
                for (std::int64_t kj = 0; kj < g.kw; ++kj) {
                  const std::int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dil_h;
                  const std::int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dil_w;
                  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                  exact += static_cast<std::int64_t>(d.x[static_cast<std::size_t>(((n * g.c + gi * cg + ic) * g.h + ih) * g.w + iw)]) *
                           d.w[static_cast<std::size_t>(((oc * cg + ic) * g.kh + ki) * g.kw + kj)];
                }
              }
            }
            const std::size_t o = static_cast<std::size_t>(((n * g.oc + oc) * oh_n + oh) * ow_n + ow);
            expect_output(c, d, oc, exact, y[o], mask[o], want,
                          kernel + " n=" + std::to_string(n) + " oc=" + std::to_string(oc) + " oh=" +
                              std::to_string(oh) + " ow=" + std::to_string(ow));
          }
        }
      }
    }
    EXPECT_EQ(got.overflows, want.overflows) << kernel;
    EXPECT_EQ(got.saturations, want.saturations) << kernel;
  }
  set_gemm_kernel(available_gemm_kernels().front());
}

Conv2dGeometry geometry(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t oc,
                        std::int64_t k, std::int64_t stride, std::int64_t pad, std::int64_t dil, std::int64_t groups) {
  Conv2dGeometry g;
  g.n = n, g.c = c, g.h = h, g.w = w, g.oc = oc, g.kh = k, g.kw = k;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.dil_h = g.dil_w = dil;
  g.groups = groups;
  return g;
}

TEST(QatConv2dKernel, EveryKernelEqualsNaiveLoops) {
  std::mt19937_64 rng(7);
  const std::vector<Conv2dGeometry> shapes = {
      geometry(2, 3, 7, 9, 5, 3, 1, 1, 1, 1),     // odd everything
      geometry(1, 8, 11, 6, 12, 3, 2, 1, 1, 1),   // stride 2
      geometry(2, 6, 10, 10, 9, 3, 1, 2, 2, 3),   // dilation, groups
      geometry(3, 16, 5, 5, 16, 3, 1, 1, 1, 16),  // depthwise
      geometry(1, 5, 9, 9, 7, 1, 1, 0, 1, 1),     // 1x1
      geometry(2, 3, 12, 12, 6, 7, 2, 3, 1, 1),   // 7x7 stem
      geometry(5, 64, 2, 3, 70, 3, 1, 1, 1, 1),   // several images share a GEMM panel
  };
  int index = 0;
  for (const Conv2dGeometry& g : shapes) {
    for (int variant = 0; variant < 4; ++variant) {
      MacCase c;
      c.g = g;
      c.xt = kActTypes[uniform(rng, 0, 4)];
      c.wt = uniform(rng, 0, 1) ? DType::I8 : DType::I4;
      c.yt = kActTypes[uniform(rng, 0, 4)];
      c.mode = kModes[variant];
      c.acc_bits = variant % 2 == 0 ? 32 : static_cast<int>(uniform(rng, 8, 20));
      c.policy = (index + variant) % 2 == 0 ? OverflowPolicy::WRAP : OverflowPolicy::SATURATE_FINAL;
      c.bias = variant != 3;
      c.clip_lo = variant == 2 ? 0 : std::numeric_limits<std::int64_t>::min();
      c.clip_hi = variant == 1 ? 5 : std::numeric_limits<std::int64_t>::max();
      SCOPED_TRACE("shape " + std::to_string(index) + " variant " + std::to_string(variant));
      check_conv(c, rng());
    }
    ++index;
  }
}

TEST(QatConv2dKernel, Int16ActivationsPastTheInt32BlockBound) {
  // 3x3x64 i16 x i8: 576 products of up to 2^22 -- more than one int32 block.
  MacCase c;
  c.g = geometry(1, 64, 5, 5, 6, 3, 1, 1, 1, 1);
  c.xt = DType::I16, c.wt = DType::I8, c.yt = DType::I16;
  c.mode = RoundMode::HALF_EVEN;
  c.acc_bits = 32;
  c.policy = OverflowPolicy::SATURATE_FINAL;
  c.bias = true;
  c.clip_lo = std::numeric_limits<std::int64_t>::min();
  c.clip_hi = std::numeric_limits<std::int64_t>::max();
  check_conv(c, 11);
  c.policy = OverflowPolicy::WRAP;
  check_conv(c, 12);
}

TEST(QatConv2dKernel, WritesOnlyTheRequestedImages) {
  const Conv2dGeometry g = geometry(3, 2, 4, 4, 2, 3, 1, 1, 1, 1);
  std::vector<std::int16_t> x(static_cast<std::size_t>(3 * 2 * 16), 1), w(static_cast<std::size_t>(2 * 2 * 9), 1);
  const std::vector<int> shift{0, 0};
  MacRequant rq;
  rq.out = spec(DType::I16, RoundMode::HALF_UP);
  rq.shift = shift.data();
  std::vector<float> y(3 * 2 * 16, -7.0f);
  std::unique_ptr<bool[]> mask(new bool[y.size()]);
  conv2d_forward<float>(g, x.data(), w.data(), rq, y.data(), mask.get(), 1, 2);
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (i < 32 || i >= 64) {
      EXPECT_EQ(y[i], -7.0f) << i;
    } else {
      EXPECT_GT(y[i], 0.0f) << i;
    }
  }
}

TEST(QatLinearKernel, EveryKernelEqualsNaiveLoops) {
  std::mt19937_64 rng(5);
  for (auto [m, k, n] : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{
           {1, 1, 1}, {3, 7, 5}, {70, 33, 9}, {130, 4096, 3}, {9, 600, 66}}) {
    MacCase c;
    c.xt = kActTypes[uniform(rng, 0, 4)];
    c.wt = uniform(rng, 0, 1) ? DType::I8 : DType::I4;
    c.yt = kActTypes[uniform(rng, 0, 4)];
    c.mode = kModes[uniform(rng, 0, 3)];
    c.acc_bits = static_cast<int>(uniform(rng, 12, 32));
    c.policy = uniform(rng, 0, 1) ? OverflowPolicy::WRAP : OverflowPolicy::SATURATE_FINAL;
    c.bias = true;
    c.clip_lo = std::numeric_limits<std::int64_t>::min();
    c.clip_hi = std::numeric_limits<std::int64_t>::max();
    const MacData d = random_data(rng, c, m * k, n * k, n);
    const MacRequant rq = requant_of(c, d);
    for (const std::string& kernel : available_gemm_kernels()) {
      ASSERT_TRUE(set_gemm_kernel(kernel));
      std::vector<double> y(static_cast<std::size_t>(m * n));
      std::unique_ptr<bool[]> mask(new bool[y.size()]);
      const Counts got = linear_forward<double>(m, k, n, d.x.data(), d.w.data(), rq, y.data(), mask.get(), 0, m);
      Counts want;
      for (std::int64_t r = 0; r < m; ++r) {
        for (std::int64_t o = 0; o < n; ++o) {
          std::int64_t exact = 0;
          for (std::int64_t i = 0; i < k; ++i) {
            exact += static_cast<std::int64_t>(d.x[static_cast<std::size_t>(r * k + i)]) * d.w[static_cast<std::size_t>(o * k + i)];
          }
          const std::size_t idx = static_cast<std::size_t>(r * n + o);
          expect_output(c, d, o, exact, y[idx], mask[idx], want, kernel + " row " + std::to_string(r));
        }
      }
      EXPECT_EQ(got.overflows, want.overflows);
      EXPECT_EQ(got.saturations, want.saturations);
    }
  }
  set_gemm_kernel(available_gemm_kernels().front());
}

TEST(QatGemmKernels, ScalarIsAlwaysAvailableAndUnknownNamesAreRefused) {
  const std::vector<std::string> k = available_gemm_kernels();
  EXPECT_EQ(k.back(), "scalar");
  EXPECT_EQ(gemm_kernel(), k.front());
  EXPECT_FALSE(set_gemm_kernel("avx9000"));
}

// ---------------------------------------------------------------------------
// Vector-unit kernels
// ---------------------------------------------------------------------------

TEST(QatAddKernel, EqualsAlignedSumShiftedAndClamped) {
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 300; ++trial) {
    const DType at = kActTypes[uniform(rng, 0, 4)], bt = kActTypes[uniform(rng, 0, 4)], yt = kActTypes[uniform(rng, 0, 4)];
    const int fa = static_cast<int>(uniform(rng, -6, 10)), fb = static_cast<int>(uniform(rng, -6, 10));
    const int fy = static_cast<int>(uniform(rng, -6, 10));
    const RoundMode mode = kModes[uniform(rng, 0, 3)];
    const Range ar = type_range(at), br = type_range(bt), yr = type_range(yt);
    std::vector<std::int16_t> a, b;
    for (int i = 0; i < 40; ++i) {
      a.push_back(static_cast<std::int16_t>(uniform(rng, ar.lo, ar.hi)));
      b.push_back(static_cast<std::int16_t>(uniform(rng, br.lo, br.hi)));
    }
    std::vector<float> y(a.size());
    std::unique_ptr<bool[]> mask(new bool[a.size()]);
    const Counts got = add_forward<float>(a.data(), b.data(), 40, dla::add_shifts(fa, fb, fy), spec(yt, mode), fy,
                                          y.data(), mask.get());
    std::int64_t sats = 0;
    const int f = std::max(fa, fb);
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::int64_t sum = a[i] * (std::int64_t{1} << (f - fa)) + b[i] * (std::int64_t{1} << (f - fb));
      const std::int64_t r = ref_shift(sum, f - fy, mode);
      const std::int64_t q = std::min(std::max(r, yr.lo), yr.hi);
      ASSERT_EQ(y[i], std::ldexp(static_cast<float>(q), -fy));
      ASSERT_EQ(mask[i], q == r);
      sats += q != r;
    }
    EXPECT_EQ(got.saturations, sats);
  }
}

TEST(QatPoolKernels, AveragePoolUsesTheHardwareMultiplier) {
  std::mt19937_64 rng(10);
  for (int trial = 0; trial < 60; ++trial) {
    Pool2dGeometry g;
    g.n = 2, g.c = 3, g.h = uniform(rng, 3, 9), g.w = uniform(rng, 3, 9);
    g.kh = uniform(rng, 1, 3), g.kw = uniform(rng, 1, 3);
    g.stride_h = uniform(rng, 1, 2), g.stride_w = uniform(rng, 1, 2);
    g.pad_h = uniform(rng, 0, g.kh / 2), g.pad_w = uniform(rng, 0, g.kw / 2);
    ASSERT_EQ(g.validate(), "");
    const int s = static_cast<int>(uniform(rng, 4, 16)), fx = 4, fy = static_cast<int>(uniform(rng, 2, 6));
    const RoundMode mode = kModes[uniform(rng, 0, 3)];
    const std::int64_t n = g.kh * g.kw;
    // M = round(2^S / N), ties up, computed here with doubles (exact at these sizes).
    const auto m = static_cast<std::int64_t>(std::floor(std::ldexp(1.0, s) / static_cast<double>(n) + 0.5));
    std::vector<std::int16_t> x;
    for (std::int64_t i = 0; i < g.n * g.c * g.h * g.w; ++i) x.push_back(static_cast<std::int16_t>(uniform(rng, -128, 127)));
    const std::int64_t oh_n = g.out_h(), ow_n = g.out_w();
    std::vector<double> y(static_cast<std::size_t>(g.n * g.c * oh_n * ow_n));
    std::unique_ptr<bool[]> mask(new bool[y.size()]);
    avg_pool2d_forward<double>(g, x.data(), m, s + fx - fy, spec(DType::I8, mode), fy, y.data(), mask.get());
    for (std::int64_t p = 0; p < g.n * g.c; ++p) {
      for (std::int64_t oh = 0; oh < oh_n; ++oh) {
        for (std::int64_t ow = 0; ow < ow_n; ++ow) {
          std::int64_t sum = 0;
          for (std::int64_t ki = 0; ki < g.kh; ++ki) {
            for (std::int64_t kj = 0; kj < g.kw; ++kj) {
              const std::int64_t ih = oh * g.stride_h - g.pad_h + ki, iw = ow * g.stride_w - g.pad_w + kj;
              if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) sum += x[static_cast<std::size_t>((p * g.h + ih) * g.w + iw)];
            }
          }
          const std::int64_t r = ref_shift(sum * m, s + fx - fy, mode);
          const std::int64_t q = std::min<std::int64_t>(std::max<std::int64_t>(r, -128), 127);
          ASSERT_EQ(y[static_cast<std::size_t>((p * oh_n + oh) * ow_n + ow)], std::ldexp(static_cast<double>(q), -fy));
        }
      }
    }
  }
}

TEST(QatPoolKernels, MaxPoolSkipsPaddingAndReportsArgmax) {
  Pool2dGeometry g;
  g.n = 1, g.c = 1, g.h = 3, g.w = 3, g.kh = 3, g.kw = 3, g.stride_h = 2, g.stride_w = 2, g.pad_h = 1, g.pad_w = 1;
  const std::vector<std::int16_t> x{-5, -3, -9, -1, -7, -2, -8, -6, -4};
  std::vector<float> y(4);
  std::vector<std::int64_t> idx(4);
  max_pool2d_forward<float>(g, x.data(), -128, 1, y.data(), idx.data());
  // Windows: rows {-1..1} x cols {-1..1} etc.; padding never wins although it would be 0.
  EXPECT_EQ(y, (std::vector<float>{-0.5f, -1.0f, -0.5f, -1.0f}));
  EXPECT_EQ(idx, (std::vector<std::int64_t>{3, 5, 3, 5}));
}

// ---------------------------------------------------------------------------
// Hardware options and checks
// ---------------------------------------------------------------------------

TEST(QatHwOptions, PresetsRoundTripThroughTheList) {
  for (const char* name : {"small", "default", "large"}) {
    const HwOptions o = HwOptions::preset(name);
    EXPECT_EQ(HwOptions::from_list(o.to_list()), o) << name;
  }
  const HwOptions d = HwOptions::preset("default");
  EXPECT_EQ(d.to_list(), (std::vector<std::int64_t>{32, 0, 0, 15, 1, 1, 1}));
}

TEST(QatHwOptions, BadListsNameTheEntry) {
  auto message = [](std::vector<std::int64_t> v) {
    try {
      HwOptions::from_list(v);
    } catch (const dla::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({32, 0, 0}).find("expected 7 entries"), std::string::npos);
  EXPECT_NE(message({33, 0, 0, 15, 1, 1, 1}).find("acc_bits"), std::string::npos);
  EXPECT_NE(message({32, 2, 0, 15, 1, 1, 1}).find("overflow_policy"), std::string::npos);
  EXPECT_NE(message({32, 0, 4, 15, 1, 1, 1}).find("rounding_mode"), std::string::npos);
  EXPECT_NE(message({32, 0, 0, 40, 1, 1, 1}).find("avgpool_shift"), std::string::npos);
  EXPECT_NE(message({32, 0, 0, 15, 1, 2, 1}).find("supports_a8w4"), std::string::npos);
}

TEST(QatHwOptions, MacModesAndSupport) {
  using dla::isa::MacMode;
  EXPECT_EQ(mac_mode(DType::U4, DType::I4), MacMode::A4W4);
  EXPECT_EQ(mac_mode(DType::I8, DType::I4), MacMode::A8W4);
  EXPECT_EQ(mac_mode(DType::U8, DType::I8), MacMode::A8W8);
  EXPECT_EQ(mac_mode(DType::I4, DType::I8), MacMode::A8W8);
  EXPECT_EQ(mac_mode(DType::I16, DType::I4), MacMode::A16W8);
  HwOptions hw;
  hw.supports_a4w4 = false;
  EXPECT_NE(check_mac_support(DType::I4, DType::I4, hw).find("supports_a4w4"), std::string::npos);
  EXPECT_EQ(check_mac_support(DType::I8, DType::I4, hw), "");
  hw.supports_a16w8 = false;
  EXPECT_NE(check_mac_support(DType::I16, DType::I8, hw).find("a16w8"), std::string::npos);
  EXPECT_EQ(check_frac(32, "f"), "");
  EXPECT_NE(check_frac(33, "x_frac").find("x_frac: frac 33 is out of range [-32, 32]"), std::string::npos);
  EXPECT_NE(check_weight_dtype(3, "w_dtype").find("u8"), std::string::npos);
  EXPECT_NE(check_activation_dtype(5, "x_dtype").find("not an activation type"), std::string::npos);
  EXPECT_EQ(check_clip(DType::U8, -5, 300), "");
  EXPECT_NE(check_clip(DType::U8, 300, 400), "");
}

}  // namespace
