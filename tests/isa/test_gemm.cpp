// dla/gemm.hpp: every supported ISA's kernels against naive int64 loops, on random and
// extreme operands, for the shapes that exercise segment merging, tails, oc blocking,
// pixel blocking, int32 chunking and both store modes.
#include "dla/gemm.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace dla::gemm {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

std::int64_t add_sat_ref(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kMax : kMin;
  return r;
}

/// Activations as int16 values (every type fits) plus their bytes in the type.
struct Act {
  ActType type;
  std::vector<std::int16_t> values;
  std::vector<std::uint8_t> u8;
  std::vector<std::int8_t> s8;
  std::vector<std::int16_t> s16;
  const void* data() const {
    switch (type) {
      case ActType::kU8: return u8.data();
      case ActType::kS8: return s8.data();
      case ActType::kS16: return s16.data();
    }
    return nullptr;
  }
};

/// kRandom: uniform over the types. kMaxNeg / kMaxPos: every activation at its largest magnitude (255 or the type's
/// minimum), every weight -128 (kMaxNeg: negative products for u8, positive for signed) or 127 (kMaxPos), so all products have the same sign and the
/// largest magnitude the types allow.
enum class Fill { kRandom, kMaxNeg, kMaxPos };

std::int64_t act_lo(ActType t) { return t == ActType::kU8 ? 0 : t == ActType::kS8 ? -128 : -32768; }
std::int64_t act_hi(ActType t) { return t == ActType::kU8 ? 255 : t == ActType::kS8 ? 127 : 32767; }

Act make_act(ActType t, std::int64_t n, std::mt19937_64& rng, Fill fill) {
  Act a;
  a.type = t;
  std::uniform_int_distribution<std::int64_t> d(act_lo(t), act_hi(t));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = fill == Fill::kRandom ? d(rng) : (t == ActType::kU8 ? 255 : act_lo(t));
    a.values.push_back(static_cast<std::int16_t>(v));
    a.u8.push_back(static_cast<std::uint8_t>(v));
    a.s8.push_back(static_cast<std::int8_t>(v));
    a.s16.push_back(static_cast<std::int16_t>(v));
  }
  // Exactly n elements: ASan sees any read past the tile.
  a.u8.shrink_to_fit();
  a.s8.shrink_to_fit();
  a.s16.shrink_to_fit();
  return a;
}

std::vector<std::int8_t> make_weights(std::int64_t n, std::mt19937_64& rng, Fill fill) {
  std::vector<std::int8_t> w;
  std::uniform_int_distribution<int> d(-128, 127);
  for (std::int64_t i = 0; i < n; ++i) w.push_back(static_cast<std::int8_t>(fill == Fill::kRandom ? d(rng) : fill == Fill::kMaxNeg ? -128 : 127));
  w.shrink_to_fit();
  return w;
}

/// The exact sums, by the definition in dla/gemm.hpp.
std::vector<std::int64_t> reference(const ConvShape& s, const std::vector<std::int16_t>& act,
                                    const std::vector<std::int8_t>& w, bool dw) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(s.pixels() * s.out_c), 0);
  for (std::int64_t oh = 0; oh < s.out_h; ++oh) {
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      for (std::int64_t oc = 0; oc < s.out_c; ++oc) {
        std::int64_t sum = 0;
        for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
          for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const std::int64_t ih = oh * s.stride_h + kh * s.dilation_h, iw = ow * s.stride_w + kw * s.dilation_w;
            if (dw) {
              sum += std::int64_t{act[static_cast<std::size_t>((ih * s.in_w + iw) * s.in_c + oc)]} *
                     w[static_cast<std::size_t>((oc * s.kernel_h + kh) * s.kernel_w + kw)];
              continue;
            }
            for (std::int64_t ic = 0; ic < s.in_c; ++ic) {
              sum += std::int64_t{act[static_cast<std::size_t>((ih * s.in_w + iw) * s.in_c + ic)]} *
                     w[static_cast<std::size_t>(((oc * s.kernel_h + kh) * s.kernel_w + kw) * s.in_c + ic)];
            }
          }
        }
        out[static_cast<std::size_t>((oh * s.out_w + ow) * s.out_c + oc)] = sum;
      }
    }
  }
  return out;
}

ConvShape conv_shape(std::int64_t out_h, std::int64_t out_w, std::int64_t in_c, std::int64_t out_c, std::int64_t kh,
                     std::int64_t kw, std::int64_t stride, std::int64_t dilation, std::int64_t extra_w = 0) {
  ConvShape s;
  s.out_h = out_h;
  s.out_w = out_w;
  s.in_c = in_c;
  s.out_c = out_c;
  s.kernel_h = kh;
  s.kernel_w = kw;
  s.stride_h = s.stride_w = stride;
  s.dilation_h = s.dilation_w = dilation;
  s.in_h = (out_h - 1) * stride + (kh - 1) * dilation + 1;
  s.in_w = (out_w - 1) * stride + (kw - 1) * dilation + 1 + extra_w;
  return s;
}

std::string describe(const ConvShape& s, ActType t, Isa isa) {
  return std::string(isa_name(isa)) + " act " + std::to_string(static_cast<int>(t)) + " out " + std::to_string(s.out_h) +
         "x" + std::to_string(s.out_w) + "x" + std::to_string(s.out_c) + " in " + std::to_string(s.in_h) + "x" +
         std::to_string(s.in_w) + "x" + std::to_string(s.in_c) + " k" + std::to_string(s.kernel_h) + "x" +
         std::to_string(s.kernel_w) + " s" + std::to_string(s.stride_h) + " d" + std::to_string(s.dilation_h);
}

/// Runs every supported ISA on (shape, type, fill): overwrite over all pixels, then
/// add-saturate on a middle pixel range over preset values (some near the int64 limits),
/// checking that pixels outside the range are untouched.
void check_conv(const ConvShape& s, ActType t, Fill fill, std::mt19937_64& rng, bool dw = false) {
  const Act act = make_act(t, s.in_h * s.in_w * s.in_c, rng, fill);
  const std::vector<std::int8_t> w =
      make_weights(dw ? s.out_c * s.kernel_h * s.kernel_w : s.out_c * s.kernel_h * s.kernel_w * s.in_c, rng, fill);
  const std::vector<std::int64_t> want = reference(s, act.values, w, dw);
  const auto n = want.size();
  std::vector<std::int64_t> preset(n);
  std::uniform_int_distribution<std::int64_t> big(kMin, kMax);
  for (std::size_t i = 0; i < n; ++i) preset[i] = i % 3 == 0 ? big(rng) : (i % 3 == 1 ? kMax - 5 : kMin + 5);
  const std::int64_t pixels = s.pixels(), p0 = pixels / 3, p1 = pixels - pixels / 4;
  for (Isa isa : supported_isas()) {
    SCOPED_TRACE(describe(s, t, isa) + (dw ? " depthwise" : ""));
    std::vector<std::int64_t> got(n, 12345), part(n, 12345);
    std::vector<std::int64_t> acc = preset;
    if (dw) {
      depthwise(s, t, act.data(), w.data(), got.data(), Store::kOverwrite, 0, pixels, isa);
      depthwise(s, t, act.data(), w.data(), part.data(), Store::kOverwrite, p0, p1, isa);
      depthwise(s, t, act.data(), w.data(), acc.data(), Store::kAddSaturate, p0, p1, isa);
      // Only the pixels run, kept from out_pixel0 = p0 on: row p - p0 of a short buffer.
      std::vector<std::int64_t> from_p0(static_cast<std::size_t>((p1 - p0) * s.out_c + 2), 999);
      depthwise(s, t, act.data(), w.data(), from_p0.data(), Store::kOverwrite, p0, p1, isa, p0);
      for (std::int64_t i = 0; i < (p1 - p0) * s.out_c; ++i) {
        ASSERT_EQ(from_p0[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(p0 * s.out_c + i)])
            << "depthwise out_pixel0 " << p0 << ", output " << i << " of the buffer";
      }
      ASSERT_EQ(from_p0.back(), 999) << "a depthwise write past pixel p1 - 1";
    } else {
      const ConvKernel k(s, t, w.data(), isa);
      k.run(act.data(), got.data(), Store::kOverwrite, 0, pixels);
      k.run(act.data(), part.data(), Store::kOverwrite, p0, p1);
      k.run(act.data(), acc.data(), Store::kAddSaturate, p0, p1);
      // Rows wider than out_c: the gaps stay untouched.
      const std::int64_t stride = s.out_c + 3;
      std::vector<std::int64_t> wide(static_cast<std::size_t>(pixels * stride), 777);
      k.run(act.data(), wide.data(), Store::kOverwrite, 0, pixels, stride);
      for (std::int64_t p = 0; p < pixels; ++p) {
        for (std::int64_t c = 0; c < stride; ++c) {
          ASSERT_EQ(wide[static_cast<std::size_t>(p * stride + c)],
                    c < s.out_c ? want[static_cast<std::size_t>(p * s.out_c + c)] : 777)
              << "out_stride " << stride << ", pixel " << p << ", column " << c;
        }
      }
      // Only the pixels run, kept from out_pixel0 = p0 on: row p - p0 of a short buffer.
      std::vector<std::int64_t> from_p0(static_cast<std::size_t>((p1 - p0) * s.out_c + 2), 999);
      k.run(act.data(), from_p0.data(), Store::kOverwrite, p0, p1, 0, p0);
      for (std::int64_t i = 0; i < (p1 - p0) * s.out_c; ++i) {
        ASSERT_EQ(from_p0[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(p0 * s.out_c + i)])
            << "out_pixel0 " << p0 << ", output " << i << " of the buffer";
      }
      ASSERT_EQ(from_p0.back(), 999) << "a write past pixel p1 - 1";
    }
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(got[i], want[i]) << "overwrite, output " << i << " (pixel " << i / static_cast<std::size_t>(s.out_c)
                                 << ", channel " << i % static_cast<std::size_t>(s.out_c) << ")";
      const auto p = static_cast<std::int64_t>(i) / s.out_c;
      const bool inside = p >= p0 && p < p1;
      ASSERT_EQ(part[i], inside ? want[i] : 12345) << "overwrite of pixels [" << p0 << ", " << p1 << "), output " << i;
      ASSERT_EQ(acc[i], inside ? add_sat_ref(preset[i], want[i]) : preset[i]) << "add-saturate, output " << i;
    }
  }
}

const ActType kTypes[] = {ActType::kU8, ActType::kS8, ActType::kS16};

TEST(Gemm, ScalarIsAlwaysSupportedAndListedLast) {
  const std::vector<Isa> isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.back(), Isa::kScalar);
  EXPECT_EQ(isas.front(), best_isa());
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_EQ(isa_name(Isa::kAvx512Vnni), "avx512vnni");
  EXPECT_EQ(isa_name(Isa::kAvx2), "avx2");
  EXPECT_EQ(isa_name(Isa::kScalar), "scalar");
}

TEST(Gemm, ShapesOfResNetTiles) {
  std::mt19937_64 rng(1);
  for (ActType t : kTypes) {
    check_conv(conv_shape(2, 7, 16, 512, 3, 3, 1, 1), t, Fill::kRandom, rng);   // deep 3x3, ic chunk
    check_conv(conv_shape(1, 13, 3, 64, 7, 7, 2, 1), t, Fill::kRandom, rng);   // first layer: 21-element rows
    check_conv(conv_shape(2, 9, 64, 128, 1, 1, 2, 1), t, Fill::kRandom, rng);  // 1x1 stride 2 shortcut
    check_conv(conv_shape(3, 5, 64, 64, 3, 3, 1, 1), t, Fill::kRandom, rng);
  }
}

TEST(Gemm, OddChannelCountsTailsAndPixelBlocks) {
  std::mt19937_64 rng(2);
  for (ActType t : kTypes) {
    for (std::int64_t oc : {1, 7, 8, 9, 15, 16, 17, 33, 47, 63, 65, 80, 129}) {
      for (std::int64_t ic : {1, 2, 3, 5}) {
        check_conv(conv_shape(1 + oc % 3, 1 + (oc + ic) % 8, ic, oc, 1 + ic % 3, 1 + oc % 3, 1 + ic % 2, 1), t,
                   Fill::kRandom, rng);
      }
    }
  }
}

TEST(Gemm, DilationStrideAndWideTiles) {
  std::mt19937_64 rng(3);
  for (ActType t : kTypes) {
    check_conv(conv_shape(3, 4, 6, 20, 3, 3, 1, 2), t, Fill::kRandom, rng);
    check_conv(conv_shape(2, 3, 5, 18, 2, 3, 3, 3), t, Fill::kRandom, rng);
    check_conv(conv_shape(2, 5, 4, 24, 3, 2, 2, 1, 3), t, Fill::kRandom, rng);  // tile wider than read
    // Kernel as wide as the tile: the kernel rows merge into one segment.
    ConvShape s = conv_shape(1, 1, 3, 17, 3, 4, 1, 1);
    check_conv(s, t, Fill::kRandom, rng);
  }
}

TEST(Gemm, GemmShapes) {
  std::mt19937_64 rng(4);
  for (ActType t : kTypes) {
    for (std::int64_t k : {1, 3, 4, 5, 31, 64, 255, 513}) {
      check_conv(ConvShape::gemm(1 + k % 13, k, 1 + (k * 7) % 70), t, Fill::kRandom, rng);
    }
  }
}

TEST(Gemm, ExtremeOperandsAtTheInt32ChunkBounds) {
  // All products at their largest magnitude with one sign: the int32 partial sums reach
  // the chunk bound (u8 path: 16448 steps of 4; s16: 255 steps of 2; scalar s8: 131072).
  std::mt19937_64 rng(5);
  for (ActType t : kTypes) {
    for (Fill f : {Fill::kMaxNeg, Fill::kMaxPos}) {
      for (std::int64_t k : {509, 510, 511, 1021, 65791, 65792, 65793, 65800, 131073}) {
        check_conv(ConvShape::gemm(2, k, 3), t, f, rng);
      }
      check_conv(conv_shape(1, 2, 4095, 2, 3, 7, 1, 1), t, f, rng);   // segments longer than a chunk
      check_conv(conv_shape(1, 1, 1023, 3, 15, 15, 1, 2), t, f, rng);  // many segments, dilated
    }
  }
}

TEST(Gemm, DepthwiseMatchesTheDefinition) {
  std::mt19937_64 rng(6);
  for (ActType t : kTypes) {
    for (std::int64_t c : {1, 5, 16, 33, 64}) {
      check_conv(conv_shape(3, 4, c, c, 3, 3, 1, 1), t, Fill::kRandom, rng, true);
      check_conv(conv_shape(2, 3, c, c, 5, 3, 2, 2), t, Fill::kRandom, rng, true);
    }
    for (Fill f : {Fill::kMaxNeg, Fill::kMaxPos}) check_conv(conv_shape(1, 2, 9, 9, 15, 15, 1, 1), t, f, rng, true);
  }
}

TEST(Gemm, RefusesBadShapesAndRanges) {
  const std::vector<std::int8_t> w(64, 1);
  ConvShape s = conv_shape(2, 2, 4, 4, 3, 3, 1, 1);
  s.in_w -= 1;
  EXPECT_NE(s.check(), "");
  EXPECT_THROW(ConvKernel(s, ActType::kU8, w.data(), Isa::kScalar), std::invalid_argument);
  s.in_w += 1;
  EXPECT_EQ(s.check(), "");
  s.stride_h = 0;
  EXPECT_NE(s.check(), "");
  const ConvKernel k(ConvShape::gemm(2, 4, 4), ActType::kU8, w.data(), Isa::kScalar);
  std::vector<std::uint8_t> act(8, 1);
  std::vector<std::int64_t> out(8, 0);
  EXPECT_THROW(k.run(act.data(), out.data(), Store::kOverwrite, 1, 3), std::invalid_argument);
  EXPECT_THROW(k.run(act.data(), out.data(), Store::kOverwrite, 2, 1), std::invalid_argument);
  EXPECT_THROW(k.run(act.data(), out.data(), Store::kOverwrite, 0, 1, 3), std::invalid_argument);  // stride < out_c
  EXPECT_THROW(k.run(act.data(), out.data(), Store::kOverwrite, 1, 2, 0, 2), std::invalid_argument);  // origin > p_begin
  EXPECT_THROW(k.run(act.data(), out.data(), Store::kOverwrite, 1, 2, 0, -1), std::invalid_argument);
  EXPECT_THROW(depthwise(ConvShape::gemm(2, 4, 3), ActType::kU8, act.data(), w.data(), out.data(), Store::kOverwrite,
                         0, 2, Isa::kScalar),
               std::invalid_argument);
}

}  // namespace
}  // namespace dla::gemm
