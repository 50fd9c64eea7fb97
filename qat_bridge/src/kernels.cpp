// kernels.cpp — integer kernels of the QAT ops (see dla/qat/kernels.hpp).
//
// The MAC kernels are dla/gemm.hpp's exact integer convolution (the same kernels as the
// emulator's MAC instruction): a conv2d image's group is zero-padded into an [h][w][c]
// tile of the narrowest activation type that holds its integers (u8, s8 or s16), the
// weights [oc][c][kh][kw] are reordered to [oc][kh][kw][c] s8 and packed once per call,
// and the kernel returns the exact int64 sums [pixel][oc]; a linear layer is the 1x1
// case with the rows as pixels. The fused requantization of dla/requant_batch.hpp (the
// loops of the emulator's REQUANT) follows. Every ISA path of dla/gemm.hpp returns the
// same integers; tests/qat checks each against naive loops.
#include "dla/qat/kernels.hpp"

#include "dla/gemm.hpp"
#include "dla/requant_batch.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DLA_QAT_X86 1
#else
#define DLA_QAT_X86 0
#endif

namespace dla::qat {
namespace {

/// The ISA the MAC ops use (set_gemm_kernel); the fastest one this CPU runs by default.
std::atomic<gemm::Isa>& current_isa() {
  static std::atomic<gemm::Isa> isa{gemm::best_isa()};
  return isa;
}

/// The narrowest kernel activation type holding every integer of x[0, n).
gemm::ActType act_type_of(const std::int16_t* x, std::int64_t n) {
  std::int16_t lo = 0, hi = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (lo >= 0 && hi <= 255) return gemm::ActType::kU8;
  if (lo >= -128 && hi <= 127) return gemm::ActType::kS8;
  return gemm::ActType::kS16;
}

/// The weights' integers as s8 (every weight type of the ISA fits: i8, i4).
std::int8_t weight_s8(std::int16_t v) {
  if (v < -128 || v > 127) throw std::invalid_argument("dla::qat: weight integer " + std::to_string(v) + " outside s8");
  return static_cast<std::int8_t>(v);
}

/// Activations of one kernel call, stored as the kernel's type.
class ActTile {
 public:
  ActTile(gemm::ActType t, std::int64_t n) : type_(t) {
    if (t == gemm::ActType::kS16) {
      s16_.assign(static_cast<std::size_t>(n), 0);
    } else {
      b8_.assign(static_cast<std::size_t>(n), 0);
    }
  }
  /// Element at + i * stride = src[i] for i < n (one type test per run, not per element).
  void set_run(std::int64_t at, std::int64_t stride, const std::int16_t* src, std::int64_t n) {
    if (type_ == gemm::ActType::kS16) {
      std::int16_t* d = s16_.data() + at;
      for (std::int64_t i = 0; i < n; ++i) d[i * stride] = src[i];
    } else {
      std::uint8_t* d = b8_.data() + at;
      for (std::int64_t i = 0; i < n; ++i) d[i * stride] = static_cast<std::uint8_t>(src[i]);
    }
  }
  const void* data() const { return at(0); }
  /// Element i's address.
  const void* at(std::int64_t i) const {
    return type_ == gemm::ActType::kS16 ? static_cast<const void*>(s16_.data() + i) : b8_.data() + i;
  }

 private:
  gemm::ActType type_;
  std::vector<std::uint8_t> b8_;
  std::vector<std::int16_t> s16_;
};

/// Space for the integers and saturation flags of one requant_mac_sums call.
struct RequantScratch {
  explicit RequantScratch(std::int64_t n)
      : q(static_cast<std::size_t>(n)), saturated(new bool[static_cast<std::size_t>(n)]) {}
  std::vector<std::int32_t> q;
  std::unique_ptr<bool[]> saturated;
};

/// The fused requantization of a MAC op (dla/requant_batch.hpp) of the exact sums
/// sums[r * channels + c] of output channels oc0 + c (the bias is added to them here):
/// the output of (r, c) goes to y[r * y_row + c * y_channel] as q * 2^-frac_y, and mask
/// there is whether the clamp left q unchanged.
template <typename T>
void requant_mac_sums(const MacRequant& rq, std::int64_t oc0, std::int64_t* sums, std::int64_t rows,
                      std::int64_t channels, RequantScratch& scratch, T* y, bool* mask, std::int64_t y_row,
                      std::int64_t y_channel, Counts& counts) {
  if (rq.bias != nullptr) {
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < channels; ++c) sums[r * channels + c] += rq.bias[oc0 + c];
    }
  }
  if (rq.sums_only) {
    for (std::int64_t c = 0; c < channels; ++c) {
      const T scale = std::ldexp(T(1), -rq.shift[oc0 + c]);
      for (std::int64_t r = 0; r < rows; ++r) {
        y[r * y_row + c * y_channel] = static_cast<T>(sums[r * channels + c]) * scale;
      }
    }
    return;
  }
  const RequantCounts n =
      requantize_rows(sums, channels, static_cast<std::size_t>(rows), static_cast<std::size_t>(channels),
                      rq.shift + oc0, rq.acc, rq.out, scratch.q.data(), channels, scratch.saturated.get());
  const T scale = std::ldexp(T(1), -rq.frac_y);
  auto put = [&](std::int64_t r, std::int64_t c) {
    const auto i = static_cast<std::size_t>(r * channels + c);
    y[r * y_row + c * y_channel] = static_cast<T>(scratch.q[i]) * scale;
    mask[r * y_row + c * y_channel] = !scratch.saturated[i];
  };
  // The inner loop walks the output's unit stride (a conv's pixels, a linear's features):
  // the other order scatters every store to a new cache line.
  if (y_row == 1) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t r = 0; r < rows; ++r) put(r, c);
    }
  } else {
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < channels; ++c) put(r, c);
    }
  }
  counts.overflows += static_cast<std::int64_t>(n.overflows);
  counts.saturations += static_cast<std::int64_t>(n.saturations);
}

template <typename T>
T pow2(int e) {
  return std::ldexp(T(1), e);
}

// float -> q with a precomputed scale 2^(frac + 32) (see quantize_real(float)).
inline std::int64_t quantize_float_scaled(float x, double scale32, int frac, const OutputSpec& out,
                                          bool* saturated) {
  const double t = static_cast<double>(x) * scale32;  // exact: a power-of-two scaling
  if (t > -0x1p62 && t < 0x1p62) {
    auto m = static_cast<std::int64_t>(t);              // exact or truncated toward zero
    if (static_cast<double>(m) > t) m -= 1;             // floor(t), exactly
    return requantize(m, 32, out, saturated);
  }
  const OutputSpec copy = out;  // keeps `out` from escaping, so callers' specs stay in registers
  return quantize_real(static_cast<double>(x), frac, copy, saturated);
}

}  // namespace

// ---------------------------------------------------------------------------
// Reals <-> integers
// ---------------------------------------------------------------------------

std::int64_t quantize_real(double x, int frac, const OutputSpec& out, bool* saturated) {
  if (std::isnan(x)) {
    if (saturated != nullptr) *saturated = true;
    return requantize(0, 0, out);
  }
  if (std::isinf(x)) {
    return requantize(x > 0 ? std::numeric_limits<std::int64_t>::max()
                            : std::numeric_limits<std::int64_t>::min(),
                      0, out, saturated);
  }
  if (x == 0) return requantize(0, 0, out, saturated);
  int e = 0;
  const double mant = std::frexp(x, &e);  // x = mant * 2^e, 0.5 <= |mant| < 1
  const auto m = static_cast<std::int64_t>(std::ldexp(mant, 53));  // exact: |m| < 2^53
  // x * 2^frac = m * 2^(e - 53 + frac) = m * 2^-s; requantize rounds it by the mode.
  return requantize(m, 53 - e - frac, out, saturated);
}

// For a float x, t = x * 2^(frac + 32) is exact in double. When |t| < 2^62,
// m = floor(t) and q = requantize(m, 32) equal the exact result:
//  * if |x 2^frac| >= 2^-9, its lowest significand bit (24-bit significand) is at least
//    2^-9-23 = 2^-32, so t is an integer and m = t exactly;
//  * otherwise |x 2^frac| < 2^-9 and |m| <= 2^23: the HALF_* modes round to 0 either way
//    (for m < 0 the remainder 2^32 + m exceeds one half) and FLOOR gives floor(x 2^frac),
//    which is -1 for negative and 0 for positive x, as floor(m / 2^32) does.
// Larger values (and NaN, inf) take the double path.
std::int64_t quantize_real(float x, int frac, const OutputSpec& out, bool* saturated) {
  return quantize_float_scaled(x, std::ldexp(1.0, frac + 32), frac, out, saturated);
}

namespace {

#if DLA_QAT_X86
/// recover_ints' fast pass for floats, 8 at a time: writes q for every element and returns
/// false when some element of [0, n) is not an integer of [lo, hi] after scaling (the
/// caller then finds it). Same tests as the scalar pass.
__attribute__((target("avx2"))) bool recover_floats_avx2(const float* x, std::int64_t n, float scale,
                                                         float flo, float fhi, std::int16_t* out) {
  const __m256 vscale = _mm256_set1_ps(scale), vlo = _mm256_set1_ps(flo), vhi = _mm256_set1_ps(fhi);
  const __m256 zero = _mm256_setzero_ps();
  int ok = 0xFF;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 v = _mm256_mul_ps(xv, vscale);
    const __m256 in_range = _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ));
    const __m256i q = _mm256_cvttps_epi32(_mm256_and_ps(v, in_range));
    const __m256 exact = _mm256_cmp_ps(_mm256_cvtepi32_ps(q), v, _CMP_EQ_OQ);
    const __m256 not_lost = _mm256_or_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ), _mm256_cmp_ps(xv, zero, _CMP_EQ_OQ));
    ok &= _mm256_movemask_ps(_mm256_and_ps(_mm256_and_ps(in_range, exact), not_lost));
    const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), packed);
  }
  bool all = ok == 0xFF;
  for (; i < n; ++i) {
    const float v = x[i] * scale;
    if (!(v >= flo && v <= fhi)) return false;
    const auto q = static_cast<std::int32_t>(v);
    if (static_cast<float>(q) != v || (v == 0.0f && x[i] != 0.0f)) return false;
    out[i] = static_cast<std::int16_t>(q);
  }
  return all;
}

bool use_avx2_recover() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

}  // namespace

template <typename T>
std::int64_t recover_ints(const T* x, std::int64_t n, int frac, std::int64_t lo, std::int64_t hi,
                          std::int16_t* out) {
  const T scale = pow2<T>(frac);
  const T flo = static_cast<T>(lo);
  const T fhi = static_cast<T>(hi);
  constexpr std::int64_t kBlock = 4096;
  for (std::int64_t begin = 0; begin < n; begin += kBlock) {
    const std::int64_t end = std::min(n, begin + kBlock);
#if DLA_QAT_X86
    if constexpr (std::is_same_v<T, float>) {
      if (use_avx2_recover()) {
        if (recover_floats_avx2(x + begin, end - begin, scale, flo, fhi, out + begin)) continue;
        for (std::int64_t i = begin; i < end; ++i) {
          const T v = x[i] * scale;
          if (!(v >= flo && v <= fhi)) return i;
          const auto q = static_cast<std::int32_t>(v);
          if (static_cast<T>(q) != v || (v == T(0) && x[i] != T(0))) return i;
        }
        continue;
      }
    }
#endif
    // Branch-free pass; the slow scan below only runs to report an error.
    int bad = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const T v = x[i] * scale;
      const int in_range = static_cast<int>(v >= flo) & static_cast<int>(v <= fhi);  // 0 for NaN
      const auto q = static_cast<std::int32_t>(in_range != 0 ? v : T(0));
      const int exact = static_cast<int>(static_cast<T>(q) == v) &
                        (static_cast<int>(v != T(0)) | static_cast<int>(x[i] == T(0)));
      bad |= (in_range & exact) ^ 1;
      out[i] = static_cast<std::int16_t>(q);
    }
    if (bad != 0) {
      for (std::int64_t i = begin; i < end; ++i) {
        const T v = x[i] * scale;
        if (!(v >= flo && v <= fhi)) return i;
        const auto q = static_cast<std::int32_t>(v);
        if (static_cast<T>(q) != v || (v == T(0) && x[i] != T(0))) return i;
      }
    }
  }
  return -1;
}

namespace {

/// What quantize_forward does to x before it quantizes: nothing, x * scale, or
/// x * scale + shift, each operation rounded to the element type as torch's separate
/// multiply and add round (kernels.cpp builds with -ffp-contract=off: no fused multiply-add).
enum class Pre { kNone, kScale, kAffine };

template <Pre kPre, typename T>
T pre_op(T x, T scale, T shift) {
  if constexpr (kPre == Pre::kNone) {
    return x;
  } else if constexpr (kPre == Pre::kScale) {
    return static_cast<T>(x * scale);
  } else {
    const T product = x * scale;
    return static_cast<T>(product + shift);
  }
}

/// |t| < 2^62: floor(t) is exact in int64 (quantize_float_scaled's fast case).
inline bool floors_exactly(double t) { return t > -0x1p62 && t < 0x1p62; }

/// m[i] = floor(pre(x[i]) * scale32) for i < n where that floors exactly, 0 elsewhere;
/// returns whether any element was elsewhere.
template <Pre kPre>
bool floor_scaled(const float* x, float scale, float shift, std::size_t n, double scale32, std::int64_t* m) {
  bool any_slow = false;
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(pre_op<kPre>(x[i], scale, shift)) * scale32;  // exact: 2^k
    const bool ok = floors_exactly(t);
    const auto v = static_cast<std::int64_t>(ok ? t : 0.0);  // truncated toward zero
    m[i] = v - static_cast<std::int64_t>(ok && static_cast<double>(v) > t);  // floor(t)
    any_slow |= !ok;
  }
  return any_slow;
}

#if DLA_QAT_X86
// GCC's AVX-512 headers start some conversions from _mm512_undefined_pd(), which
// -Wmaybe-uninitialized reports once they are inlined here (as in isa/src/gemm.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// floor_scaled 16 floats at a time: the same float operations (vmulps, vaddps), the exact
/// double scaling, and floor then conversion, which are exact for |t| < 2^62.
template <Pre kPre>
__attribute__((target("avx512f,avx512dq"))) bool floor_scaled_avx512(const float* x, float scale, float shift,
                                                                      std::size_t n, double scale32, std::int64_t* m) {
  const __m512 vscale = _mm512_set1_ps(scale), vshift = _mm512_set1_ps(shift);
  const __m512d v32 = _mm512_set1_pd(scale32), hi = _mm512_set1_pd(0x1p62), lo = _mm512_set1_pd(-0x1p62);
  unsigned slow = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    if constexpr (kPre != Pre::kNone) v = _mm512_mul_ps(v, vscale);
    if constexpr (kPre == Pre::kAffine) v = _mm512_add_ps(v, vshift);
    const __m256 halves[2] = {_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)};
    for (int h = 0; h < 2; ++h) {
      const __m512d t = _mm512_mul_pd(_mm512_cvtps_pd(halves[h]), v32);
      const __mmask8 ok = _mm512_cmp_pd_mask(t, hi, _CMP_LT_OQ) & _mm512_cmp_pd_mask(t, lo, _CMP_GT_OQ);
      slow |= static_cast<unsigned>(static_cast<__mmask8>(~ok));
      const __m512d f = _mm512_roundscale_pd(_mm512_maskz_mov_pd(ok, t), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      _mm512_storeu_si512(m + i + 8 * h, _mm512_cvttpd_epi64(f));
    }
  }
  const bool tail_slow = floor_scaled<kPre>(x + i, scale, shift, n - i, scale32, m + i);
  return slow != 0 || tail_slow;
}
#pragma GCC diagnostic pop

bool use_avx512dq() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has;
}
#endif

/// quantize_span for floats, in blocks: m = floor(pre(x) * 2^(frac + 32)), exact where
/// |m| < 2^62 (quantize_float_scaled's fast case), then q = requantize(m, 32) for the block
/// by dla::requantize_rows, which vectorizes; the rest (huge values, NaN, inf) take
/// quantize_real afterwards. Same integers as quantize_real(float), element by element.
template <Pre kPre>
void quantize_floats(const float* x, float scale, float shift, std::int64_t n, int frac, const OutputSpec& out,
                     float* y, bool* mask, std::int16_t* ints, Counts& counts) {
  auto real = [&](std::int64_t i) { return pre_op<kPre>(x[i], scale, shift); };
  constexpr std::size_t kBlock = 1024;
  constexpr int kShift32 = 32;
  const AccSpec exact{64, OverflowPolicy::WRAP};  // the integers as they are: nothing to finalize
  const double scale32 = std::ldexp(1.0, frac + 32);
  const float inv = pow2<float>(-frac);
  std::array<std::int64_t, kBlock> m;
  std::array<std::int32_t, kBlock> q;
  std::array<bool, kBlock> saturated;
  for (std::int64_t begin = 0; begin < n; begin += static_cast<std::int64_t>(kBlock)) {
    const auto len = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(kBlock), n - begin));
#if DLA_QAT_X86
    const bool any_slow = use_avx512dq() ? floor_scaled_avx512<kPre>(x + begin, scale, shift, len, scale32, m.data())
                                         : floor_scaled<kPre>(x + begin, scale, shift, len, scale32, m.data());
#else
    const bool any_slow = floor_scaled<kPre>(x + begin, scale, shift, len, scale32, m.data());
#endif
    const RequantCounts c =
        requantize_rows(m.data(), 1, len, 1, &kShift32, exact, out, q.data(), 1, saturated.data());  // a run, one shift
    std::int64_t saturations = static_cast<std::int64_t>(c.saturations);
    if (any_slow) {
      for (std::size_t i = 0; i < len; ++i) {
        const float v = real(begin + static_cast<std::int64_t>(i));
        if (floors_exactly(static_cast<double>(v) * scale32)) continue;
        saturations -= saturated[i] ? 1 : 0;
        bool s = false;
        q[i] = static_cast<std::int32_t>(quantize_real(static_cast<double>(v), frac, out, &s));
        saturated[i] = s;
        saturations += s ? 1 : 0;
      }
    }
    if (ints != nullptr) {
      for (std::size_t i = 0; i < len; ++i) ints[begin + static_cast<std::int64_t>(i)] = static_cast<std::int16_t>(q[i]);
    } else {
      for (std::size_t i = 0; i < len; ++i) y[begin + static_cast<std::int64_t>(i)] = static_cast<float>(q[i]) * inv;
    }
    if (mask != nullptr) {
      for (std::size_t i = 0; i < len; ++i) mask[begin + static_cast<std::int64_t>(i)] = !saturated[i];
    }
    counts.saturations += saturations;
  }
}

/// Fake-quantizes n reals with one frac (the inner loop of quantize_forward).
template <RoundMode M, typename T>
void quantize_span(const T* x, const T* scale, const T* shift, std::int64_t n, int frac, const OutputSpec& out_in,
                   T* y, bool* mask, std::int16_t* ints, Counts& counts) {
  if constexpr (std::is_same_v<T, float>) {
    if (shift != nullptr) {
      quantize_floats<Pre::kAffine>(x, *scale, *shift, n, frac, out_in, y, mask, ints, counts);
    } else if (scale != nullptr) {
      quantize_floats<Pre::kScale>(x, *scale, 0.0f, n, frac, out_in, y, mask, ints, counts);
    } else {
      quantize_floats<Pre::kNone>(x, 1.0f, 0.0f, n, frac, out_in, y, mask, ints, counts);
    }
    return;
  }
  const OutputSpec out = constant_spec<M>(out_in);
  const T inv = pow2<T>(-frac);
  std::int64_t saturations = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    bool saturated = false;
    const T v = shift != nullptr ? pre_op<Pre::kAffine>(x[i], *scale, *shift)
                : scale != nullptr ? pre_op<Pre::kScale>(x[i], *scale, T(0))
                                   : x[i];
    const std::int64_t q = quantize_real(static_cast<double>(v), frac, out, &saturated);
    if (ints != nullptr) {
      ints[i] = static_cast<std::int16_t>(q);
    } else {
      y[i] = static_cast<T>(q) * inv;
    }
    if (mask != nullptr) mask[i] = !saturated;
    saturations += saturated ? 1 : 0;
  }
  counts.saturations += saturations;
}

}  // namespace

template <typename T>
Counts quantize_forward(const T* x, std::int64_t outer, std::int64_t channels, std::int64_t inner,
                        const int* fracs, const OutputSpec& out, T* y, bool* mask, const T* scales,
                        const T* shifts, std::int16_t* ints) {
  Counts counts;
  with_round_mode(out.mode, [&](auto m) {
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t c = 0; c < channels; ++c) {
        const std::int64_t base = (o * channels + c) * inner;
        quantize_span<decltype(m)::value, T>(x + base, scales == nullptr ? nullptr : scales + c,
                                             shifts == nullptr ? nullptr : shifts + c, inner, fracs[c], out,
                                             ints != nullptr ? nullptr : y + base,
                                             mask == nullptr ? nullptr : mask + base,
                                             ints == nullptr ? nullptr : ints + base, counts);
      }
    }
  });
  return counts;
}

// ---------------------------------------------------------------------------
// MAC ops
// ---------------------------------------------------------------------------

std::string Conv2dGeometry::validate() const {
  auto pos = [](const char* what, std::int64_t v, std::int64_t min) -> std::string {
    if (v >= min) return {};
    return std::string(what) + " must be >= " + std::to_string(min) + ", got " + std::to_string(v);
  };
  for (const std::string& m :
       {pos("batch", n, 0), pos("input channels", c, 1), pos("input height", h, 1),
        pos("input width", w, 1), pos("output channels", oc, 1), pos("kernel height", kh, 1),
        pos("kernel width", kw, 1), pos("stride", stride_h, 1), pos("stride", stride_w, 1),
        pos("padding", pad_h, 0), pos("padding", pad_w, 0), pos("dilation", dil_h, 1),
        pos("dilation", dil_w, 1), pos("groups", groups, 1)}) {
    if (!m.empty()) return m;
  }
  if (c % groups != 0 || oc % groups != 0) {
    return "groups (" + std::to_string(groups) + ") must divide input channels (" +
           std::to_string(c) + ") and output channels (" + std::to_string(oc) + ")";
  }
  if (out_h() < 1 || out_w() < 1) {
    return "input " + std::to_string(h) + "x" + std::to_string(w) + " with padding " +
           std::to_string(pad_h) + "x" + std::to_string(pad_w) + " is smaller than the dilated kernel " +
           std::to_string(dil_h * (kh - 1) + 1) + "x" + std::to_string(dil_w * (kw - 1) + 1);
  }
  return {};
}

template <typename T>
struct Conv2dPlan<T>::Impl {
  /// Output channels per packed kernel: the kernels' widest register block, so slicing
  /// costs no efficiency, and a layer's weights are packed by several threads at once.
  static constexpr std::int64_t kSlice = 64;

  Conv2dGeometry g;
  const std::int16_t* x;
  const std::int16_t* w;
  MacRequant rq;
  T* y;
  bool* mask;
  // A depthwise conv (one input and one output channel per group) runs as one group of all
  // channels through gemm::depthwise instead of a tiny GEMM per channel.
  bool depthwise;
  std::int64_t groups, n_begin, cg, ocg, p_n, hp, wp, chunk, chunks_per_tile, tile_elems, slices;
  gemm::ActType type;
  gemm::ConvShape shape;
  gemm::Isa isa;
  std::vector<std::unique_ptr<gemm::ConvKernel>> kernels;  // [group][slice] (none when depthwise)
  std::vector<std::int8_t> dw_weights;                     // depthwise: [c][kh][kw] s8
  std::int64_t n_tiles;                                    // one per image and group
  ActTile act;                                             // every tile: [image - n_begin][group][hp][wp][cg]

  Impl(const Conv2dGeometry& geo, const std::int16_t* x_, const std::int16_t* w_, const MacRequant& rq_, T* y_,
       bool* mask_, std::int64_t n_begin_, std::int64_t n_end)
      : g(geo), x(x_), w(w_), rq(rq_), y(y_), mask(mask_),
        depthwise(geo.groups > 1 && geo.groups == geo.c && geo.oc == geo.c),
        groups(depthwise ? 1 : geo.groups), n_begin(n_begin_), cg(geo.c / groups), ocg(geo.oc / groups),
        p_n(geo.out_h() * geo.out_w()), hp(geo.h + 2 * geo.pad_h),
        wp(geo.w + 2 * geo.pad_w),
        // Pixels are requantized in chunks of about 8 Ki sums, right after the kernel wrote
        // them (still in cache), and stored channel by channel into the [oc][pixel] output.
        chunk(std::clamp<std::int64_t>(8192 / std::max<std::int64_t>(ocg, 1), 1, std::max<std::int64_t>(p_n, 1))),
        chunks_per_tile((p_n + chunk - 1) / chunk), tile_elems(hp * wp * cg),
        slices(depthwise ? 0 : (ocg + kSlice - 1) / kSlice),
        type(act_type_of(x_ + n_begin_ * geo.c * geo.h * geo.w, (n_end - n_begin_) * geo.c * geo.h * geo.w)),
        isa(current_isa().load()), n_tiles(std::max<std::int64_t>(n_end - n_begin_, 0) * groups),
        act(type, n_tiles * tile_elems) {
    shape.in_h = hp;
    shape.in_w = wp;
    shape.in_c = cg;
    shape.out_h = g.out_h();
    shape.out_w = g.out_w();
    shape.out_c = ocg;
    shape.kernel_h = g.kh;
    shape.kernel_w = g.kw;
    shape.stride_h = g.stride_h;
    shape.stride_w = g.stride_w;
    shape.dilation_h = g.dil_h;
    shape.dilation_w = g.dil_w;
    if (depthwise) {
      dw_weights.resize(static_cast<std::size_t>(g.oc * g.kh * g.kw));
      for (std::size_t i = 0; i < dw_weights.size(); ++i) dw_weights[i] = weight_s8(w[i]);  // [c][1][kh][kw]
      return;
    }
    kernels.resize(static_cast<std::size_t>(groups * slices));
  }

  /// Packs kernels [begin, end) (group k / slices, output channels of slice k % slices).
  void pack(std::int64_t begin, std::int64_t end) {
    std::vector<std::int8_t> ws;
    for (std::int64_t k = begin; k < end; ++k) {
      const std::int64_t gi = k / slices, oc0 = (k % slices) * kSlice, oc1 = std::min(ocg, oc0 + kSlice);
      // The slice's weights as [oc][kh][kw][c] s8: per output channel, its [c][kh][kw]
      // block checked in one pass (the compiler vectorizes the bounds), then transposed.
      const std::int64_t taps = g.kh * g.kw, per_oc = cg * taps;
      ws.resize(static_cast<std::size_t>((oc1 - oc0) * per_oc));
      for (std::int64_t o = oc0; o < oc1; ++o) {
        const std::int16_t* src = w + (gi * ocg + o) * per_oc;
        std::int8_t* dst = ws.data() + (o - oc0) * per_oc;
        std::int16_t lo = 0, hi = 0;
        for (std::int64_t i = 0; i < per_oc; ++i) {
          lo = std::min(lo, src[i]);
          hi = std::max(hi, src[i]);
        }
        weight_s8(lo);  // throws for a weight outside s8
        weight_s8(hi);
        for (std::int64_t ic = 0; ic < cg; ++ic) {
          for (std::int64_t t = 0; t < taps; ++t) dst[t * cg + ic] = static_cast<std::int8_t>(src[ic * taps + t]);
        }
      }
      gemm::ConvShape slice = shape;
      slice.out_c = oc1 - oc0;
      kernels[static_cast<std::size_t>(k)] = std::make_unique<gemm::ConvKernel>(slice, type, ws.data(), isa);
    }
  }
};

template <typename T>
Conv2dPlan<T>::Conv2dPlan(const Conv2dGeometry& g, const std::int16_t* x, const std::int16_t* w,
                          const MacRequant& rq, T* y, bool* mask, std::int64_t n_begin, std::int64_t n_end)
    : impl_(std::make_unique<Impl>(g, x, w, rq, y, mask, n_begin, n_end)) {}

template <typename T>
Conv2dPlan<T>::~Conv2dPlan() = default;

template <typename T>
std::int64_t Conv2dPlan<T>::packs() const {
  return static_cast<std::int64_t>(impl_->kernels.size());
}

template <typename T>
void Conv2dPlan<T>::pack(std::int64_t begin, std::int64_t end) {
  impl_->pack(begin, end);
}

template <typename T>
std::int64_t Conv2dPlan<T>::tiles() const {
  return impl_->n_tiles;
}

template <typename T>
std::int64_t Conv2dPlan<T>::tasks() const {
  return tiles() * impl_->chunks_per_tile;
}

template <typename T>
void Conv2dPlan<T>::fill_tiles(std::int64_t begin, std::int64_t end) {
  Impl& m = *impl_;
  const Conv2dGeometry& g = m.g;
  const std::int64_t plane = g.h * g.w;
  for (std::int64_t t = begin; t < end; ++t) {
    const std::int64_t img = m.n_begin + t / m.groups, gi = t % m.groups;
    // The image's group channels, zero-padded, as [hp][wp][cg], row by row so that the
    // stores of all channels of a row stay in cache.
    for (std::int64_t ih = 0; ih < g.h; ++ih) {
      for (std::int64_t ic = 0; ic < m.cg; ++ic) {
        const std::int16_t* src = m.x + (img * g.c + gi * m.cg + ic) * plane + ih * g.w;
        m.act.set_run(t * m.tile_elems + ((ih + g.pad_h) * m.wp + g.pad_w) * m.cg + ic, m.cg, src, g.w);
      }
    }
  }
}

template <typename T>
Counts Conv2dPlan<T>::run(std::int64_t begin, std::int64_t end) const {
  const Impl& m = *impl_;
  Counts counts;
  if (begin >= end) return counts;
  std::vector<std::int64_t> sums(static_cast<std::size_t>(m.chunk * m.ocg));
  RequantScratch scratch(m.chunk * m.ocg);
  for (std::int64_t task = begin; task < end; ++task) {
    const std::int64_t t = task / m.chunks_per_tile;
    const std::int64_t p0 = (task % m.chunks_per_tile) * m.chunk, p1 = std::min(m.p_n, p0 + m.chunk);
    const std::int64_t img = m.n_begin + t / m.groups, gi = t % m.groups;
    if (m.depthwise) {
      gemm::depthwise(m.shape, m.type, m.act.at(t * m.tile_elems), m.dw_weights.data(), sums.data(),
                      gemm::Store::kOverwrite, p0, p1, m.isa, p0);
    } else {
      for (std::int64_t s = 0; s < m.slices; ++s) {
        m.kernels[static_cast<std::size_t>(gi * m.slices + s)]->run(m.act.at(t * m.tile_elems),
                                                                    sums.data() + s * Impl::kSlice,
                                                                    gemm::Store::kOverwrite, p0, p1, m.ocg, p0);
      }
    }
    const std::int64_t at = (img * m.g.oc + gi * m.ocg) * m.p_n + p0;  // y [oc][pixel]
    bool* mask = m.mask == nullptr ? nullptr : m.mask + at;  // none when only the sums are wanted
    requant_mac_sums(m.rq, gi * m.ocg, sums.data(), p1 - p0, m.ocg, scratch, m.y + at, mask, 1, m.p_n, counts);
  }
  return counts;
}

template <typename T>
Counts conv2d_forward(const Conv2dGeometry& g, const std::int16_t* x, const std::int16_t* w,
                      const MacRequant& rq, T* y, bool* mask, std::int64_t n_begin,
                      std::int64_t n_end) {
  if (n_begin >= n_end) return {};
  Conv2dPlan<T> plan(g, x, w, rq, y, mask, n_begin, n_end);
  plan.pack(0, plan.packs());
  plan.fill_tiles(0, plan.tiles());
  return plan.run(0, plan.tasks());
}

template <typename T>
Counts linear_forward(std::int64_t m, std::int64_t k, std::int64_t n, const std::int16_t* x,
                      const std::int16_t* w, const MacRequant& rq, T* y, bool* mask,
                      std::int64_t row_begin, std::int64_t row_end) {
  (void)m;
  Counts counts;
  if (row_begin >= row_end) return counts;
  const gemm::Isa isa = current_isa().load();
  constexpr std::int64_t kRows = 256;  // rows per kernel call (bounds the int64 sums)
  const gemm::ActType type = act_type_of(x + row_begin * k, (row_end - row_begin) * k);
  std::vector<std::int8_t> w8(static_cast<std::size_t>(n * k));
  for (std::int64_t i = 0; i < n * k; ++i) w8[static_cast<std::size_t>(i)] = weight_s8(w[i]);
  const std::int64_t rows_max = std::min(kRows, row_end - row_begin);
  const gemm::ConvKernel kernel(gemm::ConvShape::gemm(rows_max, k, n), type, w8.data(), isa);
  std::vector<std::int64_t> sums(static_cast<std::size_t>(rows_max * n));
  RequantScratch scratch(rows_max * n);
  for (std::int64_t r0 = row_begin; r0 < row_end; r0 += rows_max) {
    const std::int64_t rows = std::min(rows_max, row_end - r0);
    ActTile act(type, rows_max * k);
    act.set_run(0, 1, x + r0 * k, rows * k);
    kernel.run(act.data(), sums.data(), gemm::Store::kOverwrite, 0, rows);
    requant_mac_sums(rq, 0, sums.data(), rows, n, scratch, y + r0 * n, mask + r0 * n, n, 1, counts);
  }
  return counts;
}

std::string gemm_kernel() { return std::string(gemm::isa_name(current_isa().load())); }

std::vector<std::string> available_gemm_kernels() {
  std::vector<std::string> out;
  for (const gemm::Isa isa : gemm::supported_isas()) out.emplace_back(gemm::isa_name(isa));
  return out;
}

bool set_gemm_kernel(const std::string& name) {
  for (const gemm::Isa isa : gemm::supported_isas()) {
    if (name == gemm::isa_name(isa)) {
      current_isa().store(isa);
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Vector-unit ops
// ---------------------------------------------------------------------------

template <typename T>
Counts add_forward(const std::int16_t* a, const std::int16_t* b, std::int64_t n,
                   const AddShifts& shifts_in, const OutputSpec& out_in, int frac_y, T* y,
                   bool* mask) {
  // Blocks through dla::eltwise_add_run (vectorized), then scaled to reals.
  constexpr std::int64_t kBlock = 1024;
  std::array<std::int32_t, kBlock> q;
  std::array<bool, kBlock> saturated;
  Counts counts;
  const T scale = pow2<T>(-frac_y);
  for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const std::int64_t len = std::min(kBlock, n - i0);
    counts.saturations += static_cast<std::int64_t>(
        eltwise_add_run(a + i0, b + i0, static_cast<std::size_t>(len), shifts_in, out_in, q.data(), saturated.data()));
    for (std::int64_t k = 0; k < len; ++k) {
      y[i0 + k] = static_cast<T>(q[static_cast<std::size_t>(k)]) * scale;
      mask[i0 + k] = !saturated[static_cast<std::size_t>(k)];
    }
  }
  return counts;
}

std::string Pool2dGeometry::validate() const {
  if (kh < 1 || kw < 1) return "kernel_size must be >= 1";
  if (stride_h < 1 || stride_w < 1) return "stride must be >= 1";
  if (pad_h < 0 || pad_w < 0) return "padding must be >= 0";
  if (2 * pad_h > kh || 2 * pad_w > kw) {
    return "padding (" + std::to_string(pad_h) + ", " + std::to_string(pad_w) +
           ") must be at most half the kernel size (" + std::to_string(kh) + ", " +
           std::to_string(kw) + ")";
  }
  if (out_h() < 1 || out_w() < 1) {
    return "input " + std::to_string(h) + "x" + std::to_string(w) + " is smaller than the window " +
           std::to_string(kh) + "x" + std::to_string(kw);
  }
  return {};
}

template <typename T>
Counts avg_pool2d_forward(const Pool2dGeometry& g, const std::int16_t* x, std::int64_t multiplier,
                          int shift, const OutputSpec& out_in, int frac_y, T* y, bool* mask) {
  const OutputSpec out = out_in;
  Counts counts;
  const T scale = pow2<T>(-frac_y);
  const std::int64_t oh_n = g.out_h(), ow_n = g.out_w();
  for (std::int64_t plane = 0; plane < g.n * g.c; ++plane) {
    const std::int16_t* xp = x + plane * g.h * g.w;
    for (std::int64_t oh = 0; oh < oh_n; ++oh) {
      const std::int64_t h0 = oh * g.stride_h - g.pad_h;
      const std::int64_t h_lo = std::max<std::int64_t>(h0, 0), h_hi = std::min(h0 + g.kh, g.h);
      for (std::int64_t ow = 0; ow < ow_n; ++ow) {
        const std::int64_t w0 = ow * g.stride_w - g.pad_w;
        const std::int64_t w_lo = std::max<std::int64_t>(w0, 0), w_hi = std::min(w0 + g.kw, g.w);
        std::int64_t sum = 0;  // padding contributes zeros
        for (std::int64_t ih = h_lo; ih < h_hi; ++ih) {
          for (std::int64_t iw = w_lo; iw < w_hi; ++iw) sum += xp[ih * g.w + iw];
        }
        bool saturated = false;
        const std::int64_t q = avgpool(sum, multiplier, shift, out, &saturated);
        const std::int64_t o = (plane * oh_n + oh) * ow_n + ow;
        y[o] = static_cast<T>(q) * scale;
        mask[o] = !saturated;
        counts.saturations += saturated ? 1 : 0;
      }
    }
  }
  return counts;
}

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const std::int16_t* x, std::int64_t type_min,
                        int frac, T* y, std::int64_t* indices) {
  const T scale = pow2<T>(-frac);
  const std::int64_t oh_n = g.out_h(), ow_n = g.out_w();
  for (std::int64_t plane = 0; plane < g.n * g.c; ++plane) {
    const std::int16_t* xp = x + plane * g.h * g.w;
    for (std::int64_t oh = 0; oh < oh_n; ++oh) {
      const std::int64_t h0 = oh * g.stride_h - g.pad_h;
      const std::int64_t h_lo = std::max<std::int64_t>(h0, 0), h_hi = std::min(h0 + g.kh, g.h);
      for (std::int64_t ow = 0; ow < ow_n; ++ow) {
        const std::int64_t w0 = ow * g.stride_w - g.pad_w;
        const std::int64_t w_lo = std::max<std::int64_t>(w0, 0), w_hi = std::min(w0 + g.kw, g.w);
        std::int64_t best = type_min;
        std::int64_t best_index = -1;
        for (std::int64_t ih = h_lo; ih < h_hi; ++ih) {
          for (std::int64_t iw = w_lo; iw < w_hi; ++iw) {
            const std::int64_t v = xp[ih * g.w + iw];
            if (best_index < 0 || v > best) {
              best = v;
              best_index = ih * g.w + iw;
            }
          }
        }
        const std::int64_t o = (plane * oh_n + oh) * ow_n + ow;
        y[o] = static_cast<T>(best) * scale;
        indices[o] = best_index;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Instantiations
// ---------------------------------------------------------------------------

#define DLA_QAT_INSTANTIATE(T)                                                                   \
  template std::int64_t recover_ints<T>(const T*, std::int64_t, int, std::int64_t, std::int64_t, \
                                        std::int16_t*);                                          \
  template Counts quantize_forward<T>(const T*, std::int64_t, std::int64_t, std::int64_t,       \
                                      const int*, const OutputSpec&, T*, bool*, const T*, const T*,  \
                                      std::int16_t*);                                                \
  template Counts conv2d_forward<T>(const Conv2dGeometry&, const std::int16_t*,                 \
                                    const std::int16_t*, const MacRequant&, T*, bool*,          \
                                    std::int64_t, std::int64_t);                                 \
  template Counts linear_forward<T>(std::int64_t, std::int64_t, std::int64_t,                   \
                                    const std::int16_t*, const std::int16_t*, const MacRequant&, \
                                    T*, bool*,         std::int64_t, std::int64_t);             \
  template Counts add_forward<T>(const std::int16_t*, const std::int16_t*, std::int64_t,        \
                                 const AddShifts&, const OutputSpec&, int, T*, bool*);  \
  template Counts avg_pool2d_forward<T>(const Pool2dGeometry&, const std::int16_t*,             \
                                        std::int64_t, int, const OutputSpec&, int, T*,          \
                                        bool*);                                          \
  template void max_pool2d_forward<T>(const Pool2dGeometry&, const std::int16_t*, std::int64_t, \
                                      int, T*, std::int64_t*);

DLA_QAT_INSTANTIATE(float)
DLA_QAT_INSTANTIATE(double)
template class Conv2dPlan<float>;
template class Conv2dPlan<double>;
#undef DLA_QAT_INSTANTIATE

}  // namespace dla::qat
