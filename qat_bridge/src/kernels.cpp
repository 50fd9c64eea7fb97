// kernels.cpp — integer kernels of the QAT ops (see dla/qat/kernels.hpp).
//
// The MAC kernels are an int16 GEMM: weights A [oc][K] against an im2col matrix B [K][P]
// (P output positions), accumulated exactly, then the fused requantization of
// dla/numerics.hpp per element. Layouts:
//   A is packed per tile of kOcTile output channels as int32 pairs [K2][kOcTile], a pair
//     holding (w[2k], w[2k+1]) in its low and high 16 bits (K2 = ceil(K / 2));
//   B is packed per panel of kPanel positions as [K2][kPanel][2] int16.
// A micro-kernel adds, for one tile and one panel, the pair products of a range of K2 into
// kOcTile x kPanel int32 accumulators. int32 is exact because the driver bounds the number
// of pairs summed into an accumulator by INT32_MAX / (2 max|x| max|w|) and moves the
// partial sums into int64 before that bound is reached (only i16 activations ever need it).
// The AVX-512 VNNI kernel (vpdpwssd) and the AVX2 kernel (vpmaddwd) compute pair sums
// exactly in int32 (|x w| <= 2^22 with 8-bit weights), so every kernel returns the same
// integers; tests/qat checks each against the scalar one.
#include "dla/qat/kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
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

constexpr std::int64_t kPanel = 64;       // output positions per packed B panel
constexpr std::int64_t kOcTile = 4;       // output channels per micro-kernel tile
constexpr std::int64_t kChunkPairs = 96;  // K pairs per cache block (96 x 256 B = 24 KiB of B)

// a: tile [K2][kOcTile] int32 pairs; b: panel [K2][kPanel][2] int16;
// c: [kOcTile][kPanel] int32, c += sum over k2 in [k2_begin, k2_end) of the pair products.
using MicroKernel = void (*)(const std::int32_t* a, const std::int16_t* b, std::int64_t k2_begin,
                             std::int64_t k2_end, std::int32_t* c);

void micro_kernel_scalar(const std::int32_t* a, const std::int16_t* b, std::int64_t k2_begin,
                         std::int64_t k2_end, std::int32_t* c) {
  for (std::int64_t k = k2_begin; k < k2_end; ++k) {
    const std::int16_t* bp = b + k * kPanel * 2;
    for (std::int64_t i = 0; i < kOcTile; ++i) {
      std::int16_t wp[2];
      std::memcpy(wp, &a[k * kOcTile + i], sizeof(wp));
      std::int32_t* ci = c + i * kPanel;
      for (std::int64_t j = 0; j < kPanel; ++j) {
        ci[j] += wp[0] * bp[2 * j] + wp[1] * bp[2 * j + 1];
      }
    }
  }
}

#if DLA_QAT_X86
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void micro_kernel_avx512vnni(
    const std::int32_t* a, const std::int16_t* b, std::int64_t k2_begin, std::int64_t k2_end,
    std::int32_t* c) {
  __m512i c00 = _mm512_loadu_si512(c + 0), c01 = _mm512_loadu_si512(c + 16),
          c02 = _mm512_loadu_si512(c + 32), c03 = _mm512_loadu_si512(c + 48);
  __m512i c10 = _mm512_loadu_si512(c + 64), c11 = _mm512_loadu_si512(c + 80),
          c12 = _mm512_loadu_si512(c + 96), c13 = _mm512_loadu_si512(c + 112);
  __m512i c20 = _mm512_loadu_si512(c + 128), c21 = _mm512_loadu_si512(c + 144),
          c22 = _mm512_loadu_si512(c + 160), c23 = _mm512_loadu_si512(c + 176);
  __m512i c30 = _mm512_loadu_si512(c + 192), c31 = _mm512_loadu_si512(c + 208),
          c32 = _mm512_loadu_si512(c + 224), c33 = _mm512_loadu_si512(c + 240);
  for (std::int64_t k = k2_begin; k < k2_end; ++k) {
    const std::int16_t* bp = b + k * kPanel * 2;
    const __m512i b0 = _mm512_loadu_si512(bp);
    const __m512i b1 = _mm512_loadu_si512(bp + 32);
    const __m512i b2 = _mm512_loadu_si512(bp + 64);
    const __m512i b3 = _mm512_loadu_si512(bp + 96);
    const std::int32_t* ap = a + k * kOcTile;
    __m512i w = _mm512_set1_epi32(ap[0]);
    c00 = _mm512_dpwssd_epi32(c00, b0, w);
    c01 = _mm512_dpwssd_epi32(c01, b1, w);
    c02 = _mm512_dpwssd_epi32(c02, b2, w);
    c03 = _mm512_dpwssd_epi32(c03, b3, w);
    w = _mm512_set1_epi32(ap[1]);
    c10 = _mm512_dpwssd_epi32(c10, b0, w);
    c11 = _mm512_dpwssd_epi32(c11, b1, w);
    c12 = _mm512_dpwssd_epi32(c12, b2, w);
    c13 = _mm512_dpwssd_epi32(c13, b3, w);
    w = _mm512_set1_epi32(ap[2]);
    c20 = _mm512_dpwssd_epi32(c20, b0, w);
    c21 = _mm512_dpwssd_epi32(c21, b1, w);
    c22 = _mm512_dpwssd_epi32(c22, b2, w);
    c23 = _mm512_dpwssd_epi32(c23, b3, w);
    w = _mm512_set1_epi32(ap[3]);
    c30 = _mm512_dpwssd_epi32(c30, b0, w);
    c31 = _mm512_dpwssd_epi32(c31, b1, w);
    c32 = _mm512_dpwssd_epi32(c32, b2, w);
    c33 = _mm512_dpwssd_epi32(c33, b3, w);
  }
  _mm512_storeu_si512(c + 0, c00);
  _mm512_storeu_si512(c + 16, c01);
  _mm512_storeu_si512(c + 32, c02);
  _mm512_storeu_si512(c + 48, c03);
  _mm512_storeu_si512(c + 64, c10);
  _mm512_storeu_si512(c + 80, c11);
  _mm512_storeu_si512(c + 96, c12);
  _mm512_storeu_si512(c + 112, c13);
  _mm512_storeu_si512(c + 128, c20);
  _mm512_storeu_si512(c + 144, c21);
  _mm512_storeu_si512(c + 160, c22);
  _mm512_storeu_si512(c + 176, c23);
  _mm512_storeu_si512(c + 192, c30);
  _mm512_storeu_si512(c + 208, c31);
  _mm512_storeu_si512(c + 224, c32);
  _mm512_storeu_si512(c + 240, c33);
}

__attribute__((target("avx2"))) void micro_kernel_avx2(const std::int32_t* a, const std::int16_t* b,
                                                       std::int64_t k2_begin, std::int64_t k2_end,
                                                       std::int32_t* c) {
  // Four slices of 16 positions; each keeps kOcTile x 2 ymm accumulators.
  for (std::int64_t s = 0; s < kPanel; s += 16) {
    __m256i c00 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 0 * kPanel + s));
    __m256i c01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 0 * kPanel + s + 8));
    __m256i c10 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 1 * kPanel + s));
    __m256i c11 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 1 * kPanel + s + 8));
    __m256i c20 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 2 * kPanel + s));
    __m256i c21 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 2 * kPanel + s + 8));
    __m256i c30 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 3 * kPanel + s));
    __m256i c31 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 3 * kPanel + s + 8));
    for (std::int64_t k = k2_begin; k < k2_end; ++k) {
      const std::int16_t* bp = b + k * kPanel * 2 + 2 * s;
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 16));
      const std::int32_t* ap = a + k * kOcTile;
      __m256i w = _mm256_set1_epi32(ap[0]);
      c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(b0, w));
      c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(b1, w));
      w = _mm256_set1_epi32(ap[1]);
      c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(b0, w));
      c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(b1, w));
      w = _mm256_set1_epi32(ap[2]);
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(b0, w));
      c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(b1, w));
      w = _mm256_set1_epi32(ap[3]);
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(b0, w));
      c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(b1, w));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 0 * kPanel + s), c00);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 0 * kPanel + s + 8), c01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 1 * kPanel + s), c10);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 1 * kPanel + s + 8), c11);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 2 * kPanel + s), c20);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 2 * kPanel + s + 8), c21);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 3 * kPanel + s), c30);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 3 * kPanel + s + 8), c31);
  }
}
#endif

struct KernelEntry {
  const char* name;
  MicroKernel fn;
  bool (*supported)();
};

bool always() { return true; }
#if DLA_QAT_X86
bool has_avx512vnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}
bool has_avx2() { return __builtin_cpu_supports("avx2"); }
#endif

// Fastest first.
const KernelEntry kKernels[] = {
#if DLA_QAT_X86
    {"avx512vnni", micro_kernel_avx512vnni, has_avx512vnni},
    {"avx2", micro_kernel_avx2, has_avx2},
#endif
    {"scalar", micro_kernel_scalar, always},
};

const KernelEntry* default_kernel() {
  for (const KernelEntry& e : kKernels) {
    if (e.supported()) return &e;
  }
  return &kKernels[std::size(kKernels) - 1];
}

std::atomic<const KernelEntry*>& current_kernel() {
  static std::atomic<const KernelEntry*> k{default_kernel()};
  return k;
}

// ---------------------------------------------------------------------------
// GEMM driver
// ---------------------------------------------------------------------------

std::int32_t pair_of(std::int16_t lo, std::int16_t hi) {
  const std::int16_t v[2] = {lo, hi};
  std::int32_t p = 0;
  std::memcpy(&p, v, sizeof(p));
  return p;
}

/// Packs rows [row0, row0 + rows) of A [*][k] (row-major) into tiles of kOcTile.
std::vector<std::int32_t> pack_a(const std::int16_t* a, std::int64_t row0, std::int64_t rows,
                                 std::int64_t k) {
  const std::int64_t k2 = (k + 1) / 2;
  const std::int64_t tiles = (rows + kOcTile - 1) / kOcTile;
  std::vector<std::int32_t> out(static_cast<std::size_t>(tiles * k2 * kOcTile), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int16_t* src = a + (row0 + r) * k;
    std::int32_t* dst = out.data() + (r / kOcTile) * k2 * kOcTile + (r % kOcTile);
    for (std::int64_t p = 0; p < k2; ++p) {
      const std::int16_t lo = src[2 * p];
      const std::int16_t hi = 2 * p + 1 < k ? src[2 * p + 1] : std::int16_t{0};
      dst[p * kOcTile] = pair_of(lo, hi);
    }
  }
  return out;
}

/// Largest number of K pairs whose products can be summed in int32 without overflow.
std::int64_t int32_bound_pairs(std::int64_t max_abs_x, std::int64_t max_abs_w) {
  const std::int64_t per_pair = 2 * std::max<std::int64_t>(1, max_abs_x) * std::max<std::int64_t>(1, max_abs_w);
  return std::max<std::int64_t>(1, std::numeric_limits<std::int32_t>::max() / per_pair);
}

/// Multiplies the packed A tiles (`rows` output channels) by one packed B panel and hands
/// the exact sums of each row to `epilogue(i, c32_row, c64_row, cols)` for row i < rows:
/// exact[j] = c32_row[j] + (c64_row ? c64_row[j] : 0) for j < cols.
/// c32 and c64 are scratch of kOcTile * tiles * kPanel elements.
template <typename Epilogue>
void gemm_panel(MicroKernel mk, const std::int32_t* a, std::int64_t rows, std::int64_t k2,
                const std::int16_t* panel, std::int64_t cols, std::int64_t bound_pairs,
                std::vector<std::int32_t>& c32, std::vector<std::int64_t>& c64,
                Epilogue&& epilogue) {
  const std::int64_t tiles = (rows + kOcTile - 1) / kOcTile;
  const std::int64_t tile_elems = kOcTile * kPanel;
  const bool multi = bound_pairs < k2;
  const std::int64_t chunk = std::min(kChunkPairs, bound_pairs);
  std::fill(c32.begin(), c32.begin() + tiles * tile_elems, 0);
  if (multi) std::fill(c64.begin(), c64.begin() + tiles * tile_elems, 0);
  std::int64_t since_flush = 0;
  for (std::int64_t kc = 0; kc < k2; kc += chunk) {
    const std::int64_t kend = std::min(k2, kc + chunk);
    if (multi && since_flush + (kend - kc) > bound_pairs) {
      for (std::int64_t e = 0; e < tiles * tile_elems; ++e) {
        c64[static_cast<std::size_t>(e)] += c32[static_cast<std::size_t>(e)];
        c32[static_cast<std::size_t>(e)] = 0;
      }
      since_flush = 0;
    }
    for (std::int64_t t = 0; t < tiles; ++t) {
      mk(a + t * k2 * kOcTile, panel, kc, kend, c32.data() + t * tile_elems);
    }
    since_flush += kend - kc;
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t offset = (i / kOcTile) * tile_elems + (i % kOcTile) * kPanel;
    epilogue(i, c32.data() + offset, multi ? c64.data() + offset : nullptr, cols);
  }
}

/// The output spec with its range made explicit: type I32 and clip [lo, hi] of `out`
/// (every activation range lies inside I32), and the rounding mode fixed to M. requantize
/// gives identical results for it, and the constant type and mode let the compiler fold
/// the switches of dla numerics out of the loops.
template <RoundMode M>
OutputSpec constant_spec(const OutputSpec& out) {
  OutputSpec o;
  o.type = DType::I32;
  o.mode = M;
  o.clip_lo = out.lo();
  o.clip_hi = out.hi();
  return o;
}

/// Calls body(std::integral_constant<RoundMode, M>) for the runtime mode `mode`.
template <typename Body>
void with_round_mode(RoundMode mode, Body&& body) {
  switch (mode) {
    case RoundMode::HALF_UP: body(std::integral_constant<RoundMode, RoundMode::HALF_UP>{}); return;
    case RoundMode::HALF_AWAY: body(std::integral_constant<RoundMode, RoundMode::HALF_AWAY>{}); return;
    case RoundMode::HALF_EVEN: body(std::integral_constant<RoundMode, RoundMode::HALF_EVEN>{}); return;
    case RoundMode::FLOOR: body(std::integral_constant<RoundMode, RoundMode::FLOOR>{}); return;
  }
}

/// The fused requantization of one row of outputs (one output channel) of a MAC op.
/// Everything the loop reads is copied into locals first, so that the stores to y and
/// mask cannot force reloads.
template <RoundMode M, typename T>
void mac_requant_row_mode(const MacRequant& rq, std::int64_t oc, const std::int32_t* c32,
                          const std::int64_t* c64, std::int64_t cols, T* y, bool* mask,
                          std::int64_t stride, Counts& counts) {
  const AccSpec acc = rq.acc;
  const OutputSpec out = constant_spec<M>(rq.out);
  const int shift = rq.shift[oc];
  const std::int64_t bias = rq.bias != nullptr ? rq.bias[oc] : 0;
  const T scale = std::ldexp(T(1), -rq.frac_y);
  std::int64_t overflows = 0, saturations = 0;
  for (std::int64_t j = 0; j < cols; ++j) {
    const std::int64_t exact = (c64 != nullptr ? c64[j] : 0) + c32[j] + bias;
    bool overflowed = false;
    bool saturated = false;
    const std::int64_t a = finalize_acc(exact, acc, &overflowed);
    const std::int64_t q = requantize(a, shift, out, &saturated);
    y[j * stride] = static_cast<T>(q) * scale;
    mask[j * stride] = !saturated;
    overflows += overflowed ? 1 : 0;
    saturations += saturated ? 1 : 0;
  }
  counts.overflows += overflows;
  counts.saturations += saturations;
}

template <typename T>
void mac_requant_row(const MacRequant& rq, std::int64_t oc, const std::int32_t* c32,
                     const std::int64_t* c64, std::int64_t cols, T* y, bool* mask,
                     std::int64_t stride, Counts& counts) {
  with_round_mode(rq.out.mode, [&](auto m) {
    mac_requant_row_mode<decltype(m)::value>(rq, oc, c32, c64, cols, y, mask, stride, counts);
  });
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

/// Fake-quantizes n reals with one frac (the inner loop of quantize_forward).
template <RoundMode M, typename T>
void quantize_span(const T* x, std::int64_t n, int frac, const OutputSpec& out_in, T* y, bool* mask,
                   Counts& counts) {
  const OutputSpec out = constant_spec<M>(out_in);
  const T inv = pow2<T>(-frac);
  const double scale32 = std::ldexp(1.0, frac + 32);
  std::int64_t saturations = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    bool saturated = false;
    std::int64_t q = 0;
    if constexpr (std::is_same_v<T, float>) {
      q = quantize_float_scaled(x[i], scale32, frac, out, &saturated);
    } else {
      q = quantize_real(static_cast<double>(x[i]), frac, out, &saturated);
    }
    y[i] = static_cast<T>(q) * inv;
    mask[i] = !saturated;
    saturations += saturated ? 1 : 0;
  }
  counts.saturations += saturations;
}

}  // namespace

template <typename T>
Counts quantize_forward(const T* x, std::int64_t outer, std::int64_t channels, std::int64_t inner,
                        const int* fracs, const OutputSpec& out, T* y, bool* mask) {
  Counts counts;
  with_round_mode(out.mode, [&](auto m) {
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::int64_t c = 0; c < channels; ++c) {
        const std::int64_t base = (o * channels + c) * inner;
        quantize_span<decltype(m)::value, T>(x + base, inner, fracs[c], out, y + base, mask + base,
                                             counts);
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
Counts conv2d_forward(const Conv2dGeometry& g, const std::int16_t* x, const std::int16_t* w,
                      const MacRequant& rq, T* y, bool* mask, std::int64_t n_begin,
                      std::int64_t n_end) {
  const MicroKernel mk = current_kernel().load()->fn;
  const std::int64_t cg = g.c / g.groups, ocg = g.oc / g.groups;
  const std::int64_t oh_n = g.out_h(), ow_n = g.out_w(), p_n = oh_n * ow_n;
  const std::int64_t k = cg * g.kh * g.kw, k2 = (k + 1) / 2;
  const std::int64_t hp = g.h + 2 * g.pad_h, wp = g.w + 2 * g.pad_w;
  const std::int64_t tiles = (ocg + kOcTile - 1) / kOcTile;
  const std::int64_t bound = int32_bound_pairs(rq.max_abs_x, rq.max_abs_w);
  // Output positions of several images form the columns of one GEMM (small feature maps
  // would waste most of a panel otherwise); the im2col matrix stays below ~8 MiB.
  const std::int64_t per_image_bytes = 2 * (k2 * 2) * p_n;
  const std::int64_t batch = std::max<std::int64_t>(1, (std::int64_t{8} << 20) / std::max<std::int64_t>(1, per_image_bytes));

  std::vector<std::vector<std::int32_t>> a_packed;
  for (std::int64_t gi = 0; gi < g.groups; ++gi) a_packed.push_back(pack_a(w, gi * ocg, ocg, k));
  std::vector<std::int32_t> c32(static_cast<std::size_t>(tiles * kOcTile * kPanel));
  std::vector<std::int64_t> c64(c32.size());
  std::vector<std::int16_t> xpad, rows, b;
  Counts counts;

  for (std::int64_t n0 = n_begin; n0 < n_end; n0 += batch) {
    const std::int64_t images = std::min(batch, n_end - n0);
    const std::int64_t p_total = images * p_n;
    const std::int64_t panels = (p_total + kPanel - 1) / kPanel, p_pad = panels * kPanel;
    xpad.assign(static_cast<std::size_t>(images * cg * hp * wp), 0);
    rows.assign(static_cast<std::size_t>(2 * p_pad), 0);
    b.resize(static_cast<std::size_t>(panels * k2 * kPanel * 2));
    for (std::int64_t gi = 0; gi < g.groups; ++gi) {
      // Zero-padded copies of the images' group channels: [image][cg][hp][wp].
      for (std::int64_t img = 0; img < images; ++img) {
        for (std::int64_t ic = 0; ic < cg; ++ic) {
          const std::int16_t* src = x + (((n0 + img) * g.c + gi * cg + ic) * g.h) * g.w;
          std::int16_t* dst = xpad.data() + (img * cg + ic) * hp * wp;
          for (std::int64_t ih = 0; ih < g.h; ++ih) {
            std::memcpy(dst + (ih + g.pad_h) * wp + g.pad_w, src + ih * g.w,
                        static_cast<std::size_t>(g.w) * sizeof(std::int16_t));
          }
        }
      }
      // im2col, two K rows at a time, interleaved into the panels.
      for (std::int64_t kp = 0; kp < k2; ++kp) {
        for (std::int64_t half = 0; half < 2; ++half) {
          std::int16_t* row = rows.data() + half * p_pad;
          const std::int64_t kk = 2 * kp + half;
          if (kk >= k) {
            std::fill(row, row + p_total, std::int16_t{0});
            continue;
          }
          const std::int64_t ic = kk / (g.kh * g.kw), rem = kk % (g.kh * g.kw);
          const std::int64_t ki = rem / g.kw, kj = rem % g.kw;
          for (std::int64_t img = 0; img < images; ++img) {
            const std::int16_t* plane = xpad.data() + (img * cg + ic) * hp * wp;
            for (std::int64_t oh = 0; oh < oh_n; ++oh) {
              const std::int16_t* src = plane + (oh * g.stride_h + ki * g.dil_h) * wp + kj * g.dil_w;
              std::int16_t* dst = row + img * p_n + oh * ow_n;
              if (g.stride_w == 1) {
                std::memcpy(dst, src, static_cast<std::size_t>(ow_n) * sizeof(std::int16_t));
              } else {
                for (std::int64_t ow = 0; ow < ow_n; ++ow) dst[ow] = src[ow * g.stride_w];
              }
            }
          }
        }
        const std::int16_t* r0 = rows.data();
        const std::int16_t* r1 = rows.data() + p_pad;
        for (std::int64_t pp = 0; pp < panels; ++pp) {
          std::int16_t* dst = b.data() + (pp * k2 + kp) * kPanel * 2;
          const std::int16_t* s0 = r0 + pp * kPanel;
          const std::int16_t* s1 = r1 + pp * kPanel;
          for (std::int64_t j = 0; j < kPanel; ++j) {
            dst[2 * j] = s0[j];
            dst[2 * j + 1] = s1[j];
          }
        }
      }
      // GEMM and fused requantization, panel by panel; a panel's columns may span images.
      const std::int32_t* a = a_packed[static_cast<std::size_t>(gi)].data();
      for (std::int64_t pp = 0; pp < panels; ++pp) {
        const std::int64_t p0 = pp * kPanel;
        const std::int64_t cols = std::min(kPanel, p_total - p0);
        gemm_panel(mk, a, ocg, k2, b.data() + pp * k2 * kPanel * 2, cols, bound, c32, c64,
                   [&](std::int64_t i, const std::int32_t* r32, const std::int64_t* r64,
                       std::int64_t count) {
                     const std::int64_t oc = gi * ocg + i;
                     for (std::int64_t j = 0; j < count;) {
                       const std::int64_t img = (p0 + j) / p_n, local = (p0 + j) % p_n;
                       const std::int64_t len = std::min(count - j, p_n - local);
                       const std::int64_t o = ((n0 + img) * g.oc + oc) * p_n + local;
                       mac_requant_row(rq, oc, r32 + j, r64 != nullptr ? r64 + j : nullptr, len,
                                       y + o, mask + o, 1, counts);
                       j += len;
                     }
                   });
      }
    }
  }
  return counts;
}

template <typename T>
Counts linear_forward(std::int64_t m, std::int64_t k, std::int64_t n, const std::int16_t* x,
                      const std::int16_t* w, const MacRequant& rq, T* y, bool* mask,
                      std::int64_t row_begin, std::int64_t row_end) {
  (void)m;
  const MicroKernel mk = current_kernel().load()->fn;
  const std::int64_t k2 = (k + 1) / 2;
  const std::int64_t tiles = (n + kOcTile - 1) / kOcTile;
  const std::int64_t bound = int32_bound_pairs(rq.max_abs_x, rq.max_abs_w);
  const std::vector<std::int32_t> a = pack_a(w, 0, n, k);
  std::vector<std::int16_t> panel(static_cast<std::size_t>(k2 * kPanel * 2));
  std::vector<std::int32_t> c32(static_cast<std::size_t>(tiles * kOcTile * kPanel));
  std::vector<std::int64_t> c64(c32.size());
  Counts counts;
  for (std::int64_t r0 = row_begin; r0 < row_end; r0 += kPanel) {
    const std::int64_t cols = std::min(kPanel, row_end - r0);
    std::fill(panel.begin(), panel.end(), std::int16_t{0});
    for (std::int64_t j = 0; j < cols; ++j) {
      const std::int16_t* src = x + (r0 + j) * k;
      for (std::int64_t kk = 0; kk < k; ++kk) panel[static_cast<std::size_t>(((kk / 2) * kPanel + j) * 2 + kk % 2)] = src[kk];
    }
    gemm_panel(mk, a.data(), n, k2, panel.data(), cols, bound, c32, c64,
               [&](std::int64_t i, const std::int32_t* r32, const std::int64_t* r64,
                   std::int64_t count) {
                 const std::int64_t o = r0 * n + i;
                 mac_requant_row(rq, i, r32, r64, count, y + o, mask + o, n, counts);
               });
  }
  return counts;
}

std::string gemm_kernel() { return current_kernel().load()->name; }

std::vector<std::string> available_gemm_kernels() {
  std::vector<std::string> out;
  for (const KernelEntry& e : kKernels) {
    if (e.supported()) out.emplace_back(e.name);
  }
  return out;
}

bool set_gemm_kernel(const std::string& name) {
  for (const KernelEntry& e : kKernels) {
    if (name == e.name && e.supported()) {
      current_kernel().store(&e);
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
  const AddShifts shifts = shifts_in;  // locals: the stores below cannot alias them
  const OutputSpec out = out_in;
  Counts counts;
  const T scale = pow2<T>(-frac_y);
  for (std::int64_t i = 0; i < n; ++i) {
    bool saturated = false;
    const std::int64_t q = eltwise_add(a[i], b[i], shifts, out, &saturated);
    y[i] = static_cast<T>(q) * scale;
    mask[i] = !saturated;
    counts.saturations += saturated ? 1 : 0;
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
                                      const int*, const OutputSpec&, T*, bool*);        \
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
#undef DLA_QAT_INSTANTIATE

}  // namespace dla::qat
