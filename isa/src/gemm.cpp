// Exact integer convolution / GEMM kernels (dla/gemm.hpp).
//
// Dense convolution = a direct convolution, no im2col: for a pixel, the reduction
// (kh, kw, ic) is a short list of segments that are contiguous both in the activation
// tile [h][w][c] (kw and ic are adjacent when dilation_w == 1; a whole kernel row is one
// segment) and in the weight rows [oc][kh][kw][ic]. Weights are packed per block of
// output channels (one SIMD lane per output channel) and per "step" of the reduction
// (4 u8 or 2 s16 elements: one dword per lane); a micro-kernel keeps NB x NP accumulators
// (NB blocks of output channels x NP pixels), broadcasts one activation dword per pixel
// and step and multiplies it into every block. Segment lengths that are not a multiple of
// the step are padded with zero weights; the activation dword of such a last step is read
// with a masked load, so nothing past the segment is touched.
//
// Exactness: the int32 accumulators are summed over "chunks" of steps whose bound
// steps * (elements per step) * max|a| * max|w| <= INT32_MAX, so no partial sum can
// overflow; chunks are summed in int64. s8 activations on the u8 (vpdpbusd) path are
// a + 128 in [0, 255]; sum (a + 128) w - 128 sum w is the exact sum, computed in int64.
#include "dla/gemm.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DLA_GEMM_X86 1
#else
#define DLA_GEMM_X86 0
#endif

namespace dla::gemm {
namespace {

constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

/// o + v saturated to the int64 range, branch-free (vectorizes).
inline std::int64_t add_sat(std::int64_t o, std::int64_t v) {
  const auto r = static_cast<std::int64_t>(static_cast<std::uint64_t>(o) + static_cast<std::uint64_t>(v));
  const bool overflow = ((o ^ r) & (v ^ r)) < 0;
  return overflow ? ((v >> 63) ^ kInt64Max) : r;
}

using Segment = ConvKernel::Segment;

/// What the run loops need of a ConvKernel.
struct View {
  const ConvShape* shape;
  const Segment* segs;
  const std::uint32_t* chunk_end;
  std::size_t chunks;
  std::int64_t total_steps;
  const std::uint8_t* packed;
  const std::int64_t* correction;
  std::uint32_t flip;  ///< xor applied to u8-path activation dwords (0x80808080 for s8)
};

/// Element offset of pixel p's receptive-field origin in the activation tile.
inline std::int64_t origin(const ConvShape& s, std::int64_t p) {
  const std::int64_t oh = p / s.out_w, ow = p % s.out_w;
  return (oh * s.stride_h * s.in_w + ow * s.stride_w) * s.in_c;
}

// ---------------------------------------------------------------------------
// Scalar: packed weights are [oc][total_steps] s8 (one element per step).
// ---------------------------------------------------------------------------

template <typename T>
void scalar_run(const View& v, const T* act, std::int64_t* out, std::int64_t out_stride, Store store,
                std::int64_t p_begin, std::int64_t p_end, std::int64_t out_pixel0) {
  const ConvShape& s = *v.shape;
  const auto* w = reinterpret_cast<const std::int8_t*>(v.packed);
  for (std::int64_t p = p_begin; p < p_end; ++p) {
    const T* a = act + origin(s, p);
    std::int64_t* o = out + (p - out_pixel0) * out_stride;
    for (std::int64_t oc = 0; oc < s.out_c; ++oc) {
      const std::int8_t* wr = w + oc * v.total_steps;
      std::int64_t sum = 0;
      std::size_t sg = 0;
      for (std::size_t c = 0; c < v.chunks; ++c) {
        std::int32_t part = 0;  // exact: the chunk bound
        for (; sg < v.chunk_end[c]; ++sg) {
          const Segment& seg = v.segs[sg];
          const T* as = a + seg.act_off;
          const std::int8_t* ws = wr + seg.w_step;
          for (std::int64_t e = 0; e < seg.len; ++e) part += static_cast<std::int32_t>(as[e]) * ws[e];
        }
        sum += part;
      }
      o[oc] = store == Store::kOverwrite ? sum : add_sat(o[oc], sum);
    }
  }
}

#if DLA_GEMM_X86

// GCC 12's AVX-512 intrinsics start from self-initialized _mm512_undefined_*() values,
// which -Wmaybe-uninitialized reports once they are inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

inline std::uint32_t load_u32(const void* p) {
  std::uint32_t x = 0;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

// ---------------------------------------------------------------------------
// AVX2: activations widened to s16 (a copy padded by one element), weights packed as
// [group][step][block (<= 2)][8 lanes][2 x s16]; vpmaddwd + vpaddd.
// ---------------------------------------------------------------------------

constexpr int kAvx2Lanes = 8;
constexpr int kAvx2GroupBlocks = 2;
constexpr int kAvx2MaxPixels = 4;
constexpr std::int64_t kAvx2StepBytes = kAvx2Lanes * 4;

template <int NB, int NP>
__attribute__((target("avx2"))) void avx2_block(const View& v, const std::int16_t* const* px,
                                                const std::uint8_t* wg, std::int64_t* const* po, int valid_last,
                                                Store store) {
  __m256i acc[NB][NP] = {};
  std::int64_t wide[NB][NP][kAvx2Lanes];
  const bool multi = v.chunks > 1;
  if (multi) std::memset(wide, 0, sizeof(wide));
  std::size_t sg = 0;
  for (std::size_t c = 0; c < v.chunks; ++c) {
#pragma GCC unroll 8
    for (int i = 0; i < NB; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) acc[i][j] = _mm256_setzero_si256();
    }
    for (; sg < v.chunk_end[c]; ++sg) {
      const Segment& seg = v.segs[sg];
      const std::uint8_t* wp = wg + seg.w_step * NB * kAvx2StepBytes;
      const std::int64_t off = seg.act_off;
      for (std::int64_t t = 0; t < seg.steps; ++t) {
        __m256i wv[NB];
#pragma GCC unroll 8
        for (int i = 0; i < NB; ++i) wv[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + i * kAvx2StepBytes));
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) {
          const __m256i a = _mm256_set1_epi32(static_cast<int>(load_u32(px[j] + off + 2 * t)));
#pragma GCC unroll 8
          for (int i = 0; i < NB; ++i) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(a, wv[i]));
        }
        wp += NB * kAvx2StepBytes;
      }
    }
    if (multi) {
      for (int i = 0; i < NB; ++i) {
        for (int j = 0; j < NP; ++j) {
          alignas(32) std::int32_t tmp[kAvx2Lanes];
          _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][j]);
          for (int l = 0; l < kAvx2Lanes; ++l) wide[i][j][l] += tmp[l];
        }
      }
    }
  }
  for (int i = 0; i < NB; ++i) {
    const int lanes = i == NB - 1 ? valid_last : kAvx2Lanes;
    for (int j = 0; j < NP; ++j) {
      alignas(32) std::int32_t tmp[kAvx2Lanes];
      if (!multi) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][j]);
      std::int64_t* o = po[j] + i * kAvx2Lanes;
      for (int l = 0; l < lanes; ++l) {
        const std::int64_t x = multi ? wide[i][j][l] : tmp[l];
        o[l] = store == Store::kOverwrite ? x : add_sat(o[l], x);
      }
    }
  }
}

using Avx2Fn = void (*)(const View&, const std::int16_t* const*, const std::uint8_t*, std::int64_t* const*, int, Store);

template <int NB, std::size_t... P>
constexpr std::array<Avx2Fn, kAvx2MaxPixels> avx2_row(std::index_sequence<P...>) {
  return {{&avx2_block<NB, static_cast<int>(P) + 1>...}};
}

constexpr std::array<std::array<Avx2Fn, kAvx2MaxPixels>, kAvx2GroupBlocks> kAvx2Table = {
    {avx2_row<1>(std::make_index_sequence<kAvx2MaxPixels>{}), avx2_row<2>(std::make_index_sequence<kAvx2MaxPixels>{})}};

// ---------------------------------------------------------------------------
// AVX-512 VNNI: weights packed as [group][step][block (<= 4)][16 lanes][4 x s8 | 2 x s16];
// vpdpbusd (u8 activations, s8 made u8 by the flip) or vpdpwssd (s16 activations).
// ---------------------------------------------------------------------------

constexpr int kVnniLanes = 16;
constexpr int kVnniGroupBlocks = 4;
constexpr int kVnniMaxPixels = 6;
constexpr std::int64_t kVnniStepBytes = 64;

#define DLA_GEMM_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

DLA_GEMM_VNNI_TARGET inline void vnni_put(std::int64_t* p, __m512i x, __mmask8 m, Store store) {
  if (store == Store::kOverwrite) {
    _mm512_mask_storeu_epi64(p, m, x);
    return;
  }
  const __m512i o = _mm512_maskz_loadu_epi64(m, p);
  __m512i r = _mm512_add_epi64(o, x);
  const __m512i sign = _mm512_and_si512(_mm512_xor_si512(o, r), _mm512_xor_si512(x, r));
  const __mmask8 over = _mm512_mask_cmplt_epi64_mask(m, sign, _mm512_setzero_si512());
  if (over != 0) {
    const __m512i sat = _mm512_xor_si512(_mm512_srai_epi64(x, 63), _mm512_set1_epi64(kInt64Max));
    r = _mm512_mask_mov_epi64(r, over, sat);
  }
  _mm512_mask_storeu_epi64(p, m, r);
}

template <int NB, int NP, bool S16>
DLA_GEMM_VNNI_TARGET void vnni_block(const View& v, const std::uint8_t* const* px, const std::uint8_t* wg,
                                     std::int64_t* const* po, int valid_last, Store store,
                                     const std::int64_t* corr) {
  constexpr int kElemBytes = S16 ? 2 : 1;
  constexpr int kStepElems = S16 ? 2 : 4;
  const __m512i flip = _mm512_set1_epi32(static_cast<int>(v.flip));
  __m512i acc[NB][NP] = {};
  alignas(64) std::int64_t wide[NB][NP][kVnniLanes];
  const bool multi = v.chunks > 1;
  if (multi) std::memset(wide, 0, sizeof(wide));
  std::size_t sg = 0;
  for (std::size_t c = 0; c < v.chunks; ++c) {
#pragma GCC unroll 8
    for (int i = 0; i < NB; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_si512();
    }
    for (; sg < v.chunk_end[c]; ++sg) {
      const Segment& seg = v.segs[sg];
      const std::uint8_t* wp = wg + seg.w_step * NB * kVnniStepBytes;
      const std::uint8_t* a0[NP];
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) a0[j] = px[j] + seg.act_off * kElemBytes;
      const std::int64_t full = seg.len / kStepElems;
      const int tail = static_cast<int>(seg.len % kStepElems);
      for (std::int64_t t = 0; t < full; ++t) {
        __m512i wv[NB];
#pragma GCC unroll 8
        for (int i = 0; i < NB; ++i) wv[i] = _mm512_loadu_si512(wp + i * kVnniStepBytes);
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) {
          __m512i a = _mm512_set1_epi32(static_cast<int>(load_u32(a0[j] + 4 * t)));
          if constexpr (S16) {
#pragma GCC unroll 8
            for (int i = 0; i < NB; ++i) acc[i][j] = _mm512_dpwssd_epi32(acc[i][j], a, wv[i]);
          } else {
            a = _mm512_xor_si512(a, flip);
#pragma GCC unroll 8
            for (int i = 0; i < NB; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, wv[i]);
          }
        }
        wp += NB * kVnniStepBytes;
      }
      if (tail != 0) {
        __m512i wv[NB];
#pragma GCC unroll 8
        for (int i = 0; i < NB; ++i) wv[i] = _mm512_loadu_si512(wp + i * kVnniStepBytes);
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) {
          const std::uint8_t* p = a0[j] + 4 * full;
          if constexpr (S16) {
            const __m512i a = _mm512_broadcastd_epi32(_mm_maskz_loadu_epi16(1, p));
#pragma GCC unroll 8
            for (int i = 0; i < NB; ++i) acc[i][j] = _mm512_dpwssd_epi32(acc[i][j], a, wv[i]);
          } else {
            const auto m = static_cast<__mmask16>((1u << tail) - 1u);
            const __m512i a = _mm512_xor_si512(_mm512_broadcastd_epi32(_mm_maskz_loadu_epi8(m, p)), flip);
#pragma GCC unroll 8
            for (int i = 0; i < NB; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, wv[i]);
          }
        }
      }
    }
    if (multi) {
#pragma GCC unroll 8
      for (int i = 0; i < NB; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) {
          std::int64_t* d = wide[i][j];
          const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc[i][j]));
          const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc[i][j], 1));
          _mm512_store_si512(d, _mm512_add_epi64(_mm512_load_si512(d), lo));
          _mm512_store_si512(d + 8, _mm512_add_epi64(_mm512_load_si512(d + 8), hi));
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < NB; ++i) {
    __mmask8 m_lo = 0xFF, m_hi = 0xFF;
    if (i == NB - 1) {
      m_lo = static_cast<__mmask8>((1u << std::min(valid_last, 8)) - 1u);
      m_hi = static_cast<__mmask8>((1u << std::max(valid_last - 8, 0)) - 1u);
    }
    const __m512i c_lo = _mm512_loadu_si512(corr + i * kVnniLanes);
    const __m512i c_hi = _mm512_loadu_si512(corr + i * kVnniLanes + 8);
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) {
      __m512i lo, hi;
      if (multi) {
        lo = _mm512_load_si512(wide[i][j]);
        hi = _mm512_load_si512(wide[i][j] + 8);
      } else {
        lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc[i][j]));
        hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc[i][j], 1));
      }
      std::int64_t* o = po[j] + i * kVnniLanes;
      vnni_put(o, _mm512_sub_epi64(lo, c_lo), m_lo, store);
      if (m_hi != 0) vnni_put(o + 8, _mm512_sub_epi64(hi, c_hi), m_hi, store);
    }
  }
}

using VnniFn = void (*)(const View&, const std::uint8_t* const*, const std::uint8_t*, std::int64_t* const*, int, Store,
                        const std::int64_t*);

template <int NB, bool S16, std::size_t... P>
constexpr std::array<VnniFn, kVnniMaxPixels> vnni_row(std::index_sequence<P...>) {
  return {{&vnni_block<NB, static_cast<int>(P) + 1, S16>...}};
}

template <bool S16>
constexpr std::array<std::array<VnniFn, kVnniMaxPixels>, kVnniGroupBlocks> vnni_table() {
  constexpr auto seq = std::make_index_sequence<kVnniMaxPixels>{};
  return {{vnni_row<1, S16>(seq), vnni_row<2, S16>(seq), vnni_row<3, S16>(seq), vnni_row<4, S16>(seq)}};
}

constexpr auto kVnniTableU8 = vnni_table<false>();
constexpr auto kVnniTableS16 = vnni_table<true>();


/// In-place transpose of a 16 x 16 matrix of dwords (r[i] = row i).
DLA_GEMM_VNNI_TARGET inline void transpose16x16(__m512i r[16]) {
  __m512i t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // u[4q + m] holds, in each 128-bit lane L, dword 4L + m of rows 4q .. 4q + 3.
#pragma GCC unroll 8
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
#pragma GCC unroll 8
  for (int m = 0; m < 4; ++m) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x88);       // lanes 0, 2 of rows 0-7
    const __m512i w0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xDD);       // lanes 1, 3
    const __m512i v1 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x88);  // rows 8-15
    const __m512i w1 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xDD);
    r[m] = _mm512_shuffle_i32x4(v0, v1, 0x88);
    r[8 + m] = _mm512_shuffle_i32x4(v0, v1, 0xDD);
    r[4 + m] = _mm512_shuffle_i32x4(w0, w1, 0x88);
    r[12 + m] = _mm512_shuffle_i32x4(w0, w1, 0xDD);
  }
}

/// Packs w [out_c][k_len] for the VNNI kernels (layout in ConvKernel's constructor):
/// 16 rows x 16 steps at a time, loaded with masks (zero past a segment or out_c) and
/// transposed so that each step's dwords of 16 output channels form one vector. Writes
/// 128 * sum(w[oc]) to corr (when not null).
DLA_GEMM_VNNI_TARGET void pack_vnni(const std::int8_t* w, std::int64_t out_c, std::int64_t k_len,
                                            const Segment* segs, std::size_t nsegs, std::int64_t total_steps,
                                            bool s16, std::uint8_t* packed, std::int64_t* corr) {
  const std::int64_t blocks = (out_c + kVnniLanes - 1) / kVnniLanes;
  const std::int64_t e = s16 ? 2 : 4;
  const __m512i ones = _mm512_set1_epi8(1);
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t g = b / kVnniGroupBlocks, i = b % kVnniGroupBlocks;
    const std::int64_t nb = std::min<std::int64_t>(kVnniGroupBlocks, blocks - g * kVnniGroupBlocks);
    std::uint8_t* group = packed + g * kVnniGroupBlocks * total_steps * kVnniStepBytes;
    const std::int64_t rows = std::min<std::int64_t>(kVnniLanes, out_c - b * kVnniLanes);
    __m512i sum = _mm512_setzero_si512();
    for (std::size_t sg = 0; sg < nsegs; ++sg) {
      const Segment& seg = segs[sg];
      for (std::int64_t t0 = 0; t0 < seg.steps; t0 += 16) {
        const std::int64_t steps = std::min<std::int64_t>(16, seg.steps - t0);
        const std::int64_t elems = std::min<std::int64_t>(16 * e, seg.len - e * t0);
        // One mask of the s8 source elements for every row (rows past out_c load nothing);
        // unrolled, so that r stays in registers.
        const auto m = static_cast<__mmask64>(elems >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << elems) - 1u);
        const std::int8_t* src = w + b * kVnniLanes * k_len + seg.k_begin + e * t0;
        __m512i r[16];
#pragma GCC unroll 16
        for (int row = 0; row < 16; ++row) {
          const bool real = row < rows;
          const std::int8_t* p = real ? src + row * k_len : w;
          if (s16) {
            r[row] = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(real ? static_cast<__mmask32>(m) : 0, p));
          } else {
            r[row] = _mm512_maskz_loadu_epi8(real ? m : 0, p);
          }
        }
        transpose16x16(r);
        std::uint8_t* dst = group + ((seg.w_step + t0) * nb + i) * kVnniStepBytes;
#pragma GCC unroll 16
        for (int t = 0; t < 16; ++t) {
          if (t >= steps) break;
          _mm512_storeu_si512(dst + t * nb * kVnniStepBytes, r[t]);
          if (corr != nullptr) sum = _mm512_dpbusd_epi32(sum, ones, r[t]);
        }
      }
    }
    if (corr != nullptr) {
      // 128 * sum, as int64 (exact: |sum| <= 128 * k_len).
      _mm512_storeu_si512(corr + b * kVnniLanes,
                          _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(sum)), 7));
      _mm512_storeu_si512(corr + b * kVnniLanes + 8,
                          _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(sum, 1)), 7));
    }
  }
}

#pragma GCC diagnostic pop
#endif  // DLA_GEMM_X86

/// Splits [begin, end) into ceil(n / max_block) blocks whose sizes differ by at most one
/// and calls f(first, count) for each.
template <typename F>
void for_each_block(std::int64_t begin, std::int64_t end, std::int64_t max_block, F&& f) {
  const std::int64_t n = end - begin;
  if (n <= 0) return;
  const std::int64_t blocks = (n + max_block - 1) / max_block;
  const std::int64_t base = n / blocks, extra = n % blocks;
  std::int64_t p = begin;
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t count = base + (b < extra ? 1 : 0);
    f(p, count);
    p += count;
  }
}

// ---------------------------------------------------------------------------
// Depthwise: channels are contiguous in act and out; weights transposed to [tap][c].
// One body, compiled for each ISA by the target-attributed wrappers below.
// ---------------------------------------------------------------------------

template <typename T>
__attribute__((always_inline)) inline void depthwise_body(const ConvShape& s, std::int64_t amax, const T* act,
                                                          const std::int8_t* w, std::int64_t* out, Store store,
                                                          std::int64_t p_begin, std::int64_t p_end,
                                                          std::int64_t out_pixel0) {
  const std::int64_t ch = s.out_c, taps = s.kernel_h * s.kernel_w;
  std::int64_t wmax = 1;
  std::vector<std::int32_t> wt(static_cast<std::size_t>(taps * ch));
  for (std::int64_t c = 0; c < ch; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) {
      const std::int8_t x = w[c * taps + t];
      wt[static_cast<std::size_t>(t * ch + c)] = x;
      wmax = std::max<std::int64_t>(wmax, x < 0 ? -x : x);
    }
  }
  // Taps per int32 chunk: taps_chunk * max|a| * max|w| <= INT32_MAX.
  const std::int64_t chunk = std::max<std::int64_t>(1, kInt32Max / (amax * wmax));
  const bool multi = taps > chunk;
  std::vector<std::int32_t> s32(static_cast<std::size_t>(ch));
  std::vector<std::int64_t> s64(static_cast<std::size_t>(multi ? ch : 0));
  std::int32_t* __restrict sum = s32.data();
  std::int64_t* __restrict wide = s64.data();
  for (std::int64_t p = p_begin; p < p_end; ++p) {
    const std::int64_t base = origin(s, p);
    std::fill(s32.begin(), s32.end(), 0);
    if (multi) std::fill(s64.begin(), s64.end(), 0);
    std::int64_t in_chunk = 0;
    for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
        if (in_chunk == chunk) {
          for (std::int64_t c = 0; c < ch; ++c) {
            wide[c] += sum[c];
            sum[c] = 0;
          }
          in_chunk = 0;
        }
        const T* __restrict a = act + base + (kh * s.dilation_h * s.in_w + kw * s.dilation_w) * ch;
        const std::int32_t* __restrict wr = wt.data() + (kh * s.kernel_w + kw) * ch;
        for (std::int64_t c = 0; c < ch; ++c) sum[c] += static_cast<std::int32_t>(a[c]) * wr[c];
        ++in_chunk;
      }
    }
    std::int64_t* __restrict o = out + (p - out_pixel0) * ch;
    if (multi) {
      for (std::int64_t c = 0; c < ch; ++c) wide[c] += sum[c];
      if (store == Store::kOverwrite) {
        for (std::int64_t c = 0; c < ch; ++c) o[c] = wide[c];
      } else {
        for (std::int64_t c = 0; c < ch; ++c) o[c] = add_sat(o[c], wide[c]);
      }
    } else if (store == Store::kOverwrite) {
      for (std::int64_t c = 0; c < ch; ++c) o[c] = sum[c];
    } else {
      for (std::int64_t c = 0; c < ch; ++c) o[c] = add_sat(o[c], sum[c]);
    }
  }
}

template <typename T>
void depthwise_scalar(const ConvShape& s, std::int64_t amax, const T* act, const std::int8_t* w, std::int64_t* out,
                      Store store, std::int64_t p_begin, std::int64_t p_end, std::int64_t out_pixel0) {
  depthwise_body(s, amax, act, w, out, store, p_begin, p_end, out_pixel0);
}

#if DLA_GEMM_X86
template <typename T>
__attribute__((target("avx2"))) void depthwise_avx2(const ConvShape& s, std::int64_t amax, const T* act,
                                                    const std::int8_t* w, std::int64_t* out, Store store,
                                                    std::int64_t p_begin, std::int64_t p_end,
                                                    std::int64_t out_pixel0) {
  depthwise_body(s, amax, act, w, out, store, p_begin, p_end, out_pixel0);
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void depthwise_avx512(
    const ConvShape& s, std::int64_t amax, const T* act, const std::int8_t* w, std::int64_t* out, Store store,
    std::int64_t p_begin, std::int64_t p_end, std::int64_t out_pixel0) {
  depthwise_body(s, amax, act, w, out, store, p_begin, p_end, out_pixel0);
}
#endif

template <typename T>
void depthwise_typed(const ConvShape& s, std::int64_t amax, const T* act, const std::int8_t* w, std::int64_t* out,
                     Store store, std::int64_t p_begin, std::int64_t p_end, Isa isa, std::int64_t out_pixel0) {
  switch (isa) {
#if DLA_GEMM_X86
    case Isa::kAvx512Vnni: depthwise_avx512(s, amax, act, w, out, store, p_begin, p_end, out_pixel0); return;
    case Isa::kAvx2: depthwise_avx2(s, amax, act, w, out, store, p_begin, p_end, out_pixel0); return;
#else
    case Isa::kAvx512Vnni:
    case Isa::kAvx2:
#endif
    case Isa::kScalar: depthwise_scalar(s, amax, act, w, out, store, p_begin, p_end, out_pixel0); return;
  }
}

void check_out_pixel0(std::int64_t out_pixel0, std::int64_t p_begin) {
  if (out_pixel0 < 0 || out_pixel0 > p_begin) {
    throw std::invalid_argument("dla::gemm: output origin pixel " + std::to_string(out_pixel0) +
                                " is outside [0, p_begin = " + std::to_string(p_begin) + "]");
  }
}

void check_or_throw(const ConvShape& s, Isa isa) {
  const std::string problem = s.check();
  if (!problem.empty()) throw std::invalid_argument("dla::gemm: " + problem);
  if (!isa_supported(isa)) {
    throw std::invalid_argument("dla::gemm: ISA " + std::string(isa_name(isa)) + " is not supported by this CPU");
  }
}

void check_pixels(const ConvShape& s, std::int64_t p_begin, std::int64_t p_end) {
  if (p_begin < 0 || p_begin > p_end || p_end > s.pixels()) {
    throw std::invalid_argument("dla::gemm: pixel range [" + std::to_string(p_begin) + ", " + std::to_string(p_end) +
                                ") is outside [0, " + std::to_string(s.pixels()) + ")");
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// ISA selection
// ---------------------------------------------------------------------------

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#if DLA_GEMM_X86
    case Isa::kAvx2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2");
    case Isa::kAvx512Vnni:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
#else
    case Isa::kAvx2:
    case Isa::kAvx512Vnni: return false;
#endif
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::kAvx512Vnni, Isa::kAvx2}) {
    if (isa_supported(isa)) return isa;
  }
  return Isa::kScalar;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx512Vnni, Isa::kAvx2, Isa::kScalar}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

std::int64_t act_max_abs(ActType t) {
  switch (t) {
    case ActType::kU8: return 255;
    case ActType::kS8: return 128;
    case ActType::kS16: return 32768;
  }
  return 32768;
}

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------

ConvShape ConvShape::gemm(std::int64_t m, std::int64_t k, std::int64_t n) {
  ConvShape s;
  s.in_w = s.out_w = m;
  s.in_c = k;
  s.out_c = n;
  return s;
}

std::string ConvShape::check() const {
  const std::pair<const char*, std::int64_t> sizes[] = {
      {"in_h", in_h},         {"in_w", in_w},         {"in_c", in_c},         {"out_h", out_h},
      {"out_w", out_w},       {"out_c", out_c},       {"kernel_h", kernel_h}, {"kernel_w", kernel_w},
      {"stride_h", stride_h}, {"stride_w", stride_w}, {"dilation_h", dilation_h}, {"dilation_w", dilation_w}};
  for (const auto& [name, v] : sizes) {
    if (v < 1) return std::string(name) + " = " + std::to_string(v) + " must be >= 1";
  }
  const std::int64_t need_h = (out_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1;
  const std::int64_t need_w = (out_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1;
  if (need_h > in_h || need_w > in_w) {
    return "the outputs read a " + std::to_string(need_h) + "x" + std::to_string(need_w) + " input, larger than the " +
           std::to_string(in_h) + "x" + std::to_string(in_w) + " tile";
  }
  return {};
}

// ---------------------------------------------------------------------------
// ConvKernel
// ---------------------------------------------------------------------------

ConvKernel::ConvKernel(const ConvShape& shape, ActType act, const std::int8_t* w, Isa isa)
    : shape_(shape), act_(act), isa_(isa) {
  check_or_throw(shape, isa);
  const ConvShape& s = shape_;
  const std::int64_t k_len = s.kernel_h * s.kernel_w * s.in_c;
  int weight_bytes = 1;  // bytes of one packed weight element
  switch (isa) {
    case Isa::kAvx512Vnni:
      step_elems_ = act == ActType::kS16 ? 2 : 4;
      weight_bytes = act == ActType::kS16 ? 2 : 1;
      lanes_ = 16;
      group_blocks_ = 4;
      break;
    case Isa::kAvx2:
      step_elems_ = 2;
      weight_bytes = 2;
      lanes_ = 8;
      group_blocks_ = 2;
      break;
    case Isa::kScalar:
      step_elems_ = 1;
      lanes_ = 1;
      group_blocks_ = 1;
      break;
  }
  const std::int64_t e = step_elems_;

  // The reduction as contiguous segments, in the order of w's rows; neighbours that are
  // contiguous in both act and w merge (a 1x1 kernel, or a kernel as wide as the tile).
  std::vector<Segment> raw;
  auto add = [&](std::int64_t act_off, std::int64_t k_begin, std::int64_t len) {
    if (!raw.empty() && raw.back().act_off + raw.back().len == act_off && raw.back().k_begin + raw.back().len == k_begin) {
      raw.back().len += len;
    } else {
      raw.push_back({act_off, k_begin, len, 0, 0});
    }
  };
  for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
    if (s.dilation_w == 1) {
      add(kh * s.dilation_h * s.in_w * s.in_c, kh * s.kernel_w * s.in_c, s.kernel_w * s.in_c);
    } else {
      for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
        add((kh * s.dilation_h * s.in_w + kw * s.dilation_w) * s.in_c, (kh * s.kernel_w + kw) * s.in_c, s.in_c);
      }
    }
  }
  for (Segment& seg : raw) {
    seg.steps = (seg.len + e - 1) / e;
    seg.w_step = total_steps_;
    total_steps_ += seg.steps;
  }

  // Packing: block b of `lanes_` output channels lies in group b / group_blocks_;
  // group g starts at g * group_blocks_ * total_steps * step_bytes and is laid out
  // [step][block of the group][lane][element of the step]. Padding is zero.
  const std::int64_t blocks = (s.out_c + lanes_ - 1) / lanes_;
  const std::int64_t step_bytes = static_cast<std::int64_t>(lanes_) * e * weight_bytes;
  correction_.assign(static_cast<std::size_t>(blocks * lanes_), 0);
  const bool biased = isa == Isa::kAvx512Vnni && act == ActType::kS8;
  const auto packed_bytes = static_cast<std::size_t>(blocks * total_steps_ * step_bytes);
#if DLA_GEMM_X86
  if (isa == Isa::kAvx512Vnni) {
    packed_.reset(new std::uint8_t[packed_bytes]);  // every byte is written
    pack_vnni(w, s.out_c, k_len, raw.data(), raw.size(), total_steps_, act == ActType::kS16, packed_.get(),
              biased ? correction_.data() : nullptr);
  }
#endif
  if (!packed_) {
    packed_.reset(new std::uint8_t[packed_bytes]());
    for (std::int64_t oc = 0; oc < s.out_c; ++oc) {
      const std::int64_t b = oc / lanes_, lane = oc % lanes_;
      const std::int64_t g = b / group_blocks_, i = b % group_blocks_;
      const std::int64_t nb = std::min<std::int64_t>(group_blocks_, blocks - g * group_blocks_);
      std::uint8_t* group = packed_.get() + g * group_blocks_ * total_steps_ * step_bytes;
      const std::int8_t* row = w + oc * k_len;
      std::int64_t sum = 0;
      for (const Segment& seg : raw) {
        const std::int8_t* src = row + seg.k_begin;
        for (std::int64_t t = 0; t < seg.steps; ++t) {
          std::uint8_t* dst = group + ((seg.w_step + t) * nb + i) * step_bytes + lane * e * weight_bytes;
          const std::int64_t n = std::min(e, seg.len - t * e);
          for (std::int64_t r = 0; r < n; ++r) {
            const std::int8_t v = src[t * e + r];
            sum += v;
            if (weight_bytes == 1) {
              dst[r] = static_cast<std::uint8_t>(v);
            } else {
              const auto v16 = static_cast<std::int16_t>(v);
              std::memcpy(dst + 2 * r, &v16, sizeof(v16));
            }
          }
        }
      }
      if (biased) correction_[static_cast<std::size_t>(oc)] = 128 * sum;
    }
  }

  // Chunks of at most `bound` steps keep every int32 partial sum exact (|w| <= 128).
  // Segments longer than a chunk are cut at whole steps (their packed steps stay where
  // they are).
  const std::int64_t wmax = 128;
  const std::int64_t amax = isa == Isa::kAvx512Vnni && act != ActType::kS16 ? 255 : act_max_abs(act);
  const std::int64_t bound = std::max<std::int64_t>(1, kInt32Max / (e * amax * wmax));
  std::int64_t in_chunk = 0;
  auto close_chunk = [&] {
    chunk_end_.push_back(static_cast<std::uint32_t>(segments_.size()));
    in_chunk = 0;
  };
  for (Segment seg : raw) {
    if (in_chunk + seg.steps > bound && in_chunk > 0) close_chunk();
    while (seg.steps > bound) {
      segments_.push_back({seg.act_off, seg.k_begin, bound * e, seg.w_step, bound});
      close_chunk();
      seg.act_off += bound * e;
      seg.k_begin += bound * e;
      seg.len -= bound * e;
      seg.w_step += bound;
      seg.steps -= bound;
    }
    segments_.push_back(seg);
    in_chunk += seg.steps;
  }
  if (in_chunk > 0) close_chunk();
}

void ConvKernel::run(const void* act, std::int64_t* out, Store store, std::int64_t p_begin, std::int64_t p_end,
                     std::int64_t out_stride, std::int64_t out_pixel0) const {
  check_pixels(shape_, p_begin, p_end);
  check_out_pixel0(out_pixel0, p_begin);
  if (out_stride == 0) out_stride = shape_.out_c;
  if (out_stride < shape_.out_c) {
    throw std::invalid_argument("dla::gemm: output stride " + std::to_string(out_stride) + " is less than out_c = " +
                                std::to_string(shape_.out_c));
  }
  if (p_begin == p_end) return;
  const ConvShape& s = shape_;
  View v{&s,
         segments_.data(),
         chunk_end_.data(),
         chunk_end_.size(),
         total_steps_,
         packed_.get(),
         correction_.data(),
         isa_ == Isa::kAvx512Vnni && act_ == ActType::kS8 ? 0x80808080u : 0u};
  switch (isa_) {
    case Isa::kScalar:
      switch (act_) {
        case ActType::kU8:
          scalar_run(v, static_cast<const std::uint8_t*>(act), out, out_stride, store, p_begin, p_end, out_pixel0);
          return;
        case ActType::kS8:
          scalar_run(v, static_cast<const std::int8_t*>(act), out, out_stride, store, p_begin, p_end, out_pixel0);
          return;
        case ActType::kS16:
          scalar_run(v, static_cast<const std::int16_t*>(act), out, out_stride, store, p_begin, p_end, out_pixel0);
          return;
      }
      return;
#if DLA_GEMM_X86
    case Isa::kAvx2: {
      // Widened copy of the elements these pixels read, [lo, hi), one element longer: the
      // last step of an odd segment reads it (its weight is zero).
      std::int64_t reach = 0;
      for (const Segment& seg : segments_) reach = std::max(reach, seg.act_off + seg.len);
      const std::int64_t lo = origin(s, p_begin);
      const std::int64_t hi = std::max(origin(s, p_end - 1), lo) + reach;
      const std::int64_t n = hi - lo;
      std::vector<std::int16_t> buffer(static_cast<std::size_t>(n + 1), 0);
      switch (act_) {
        case ActType::kU8: std::copy_n(static_cast<const std::uint8_t*>(act) + lo, n, buffer.begin()); break;
        case ActType::kS8: std::copy_n(static_cast<const std::int8_t*>(act) + lo, n, buffer.begin()); break;
        case ActType::kS16: std::copy_n(static_cast<const std::int16_t*>(act) + lo, n, buffer.begin()); break;
      }
      const std::int64_t blocks = (s.out_c + kAvx2Lanes - 1) / kAvx2Lanes;
      for (std::int64_t b0 = 0; b0 < blocks; b0 += kAvx2GroupBlocks) {
        const std::int64_t nb = std::min<std::int64_t>(kAvx2GroupBlocks, blocks - b0);
        const int valid_last = static_cast<int>(std::min<std::int64_t>(kAvx2Lanes, s.out_c - (b0 + nb - 1) * kAvx2Lanes));
        const std::uint8_t* wg = packed_.get() + b0 * total_steps_ * kAvx2StepBytes;
        for_each_block(p_begin, p_end, kAvx2MaxPixels, [&](std::int64_t p0, std::int64_t np) {
          const std::int16_t* px[kAvx2MaxPixels];
          std::int64_t* po[kAvx2MaxPixels];
          for (std::int64_t j = 0; j < np; ++j) {
            px[j] = buffer.data() + (origin(s, p0 + j) - lo);
            po[j] = out + (p0 + j - out_pixel0) * out_stride + b0 * kAvx2Lanes;
          }
          kAvx2Table[static_cast<std::size_t>(nb - 1)][static_cast<std::size_t>(np - 1)](v, px, wg, po, valid_last,
                                                                                          store);
        });
      }
      return;
    }
    case Isa::kAvx512Vnni: {
      const auto* bytes = static_cast<const std::uint8_t*>(act);
      const std::int64_t elem_bytes = act_ == ActType::kS16 ? 2 : 1;
      const auto& table = act_ == ActType::kS16 ? kVnniTableS16 : kVnniTableU8;
      const std::int64_t blocks = (s.out_c + kVnniLanes - 1) / kVnniLanes;
      for (std::int64_t b0 = 0; b0 < blocks; b0 += kVnniGroupBlocks) {
        const std::int64_t nb = std::min<std::int64_t>(kVnniGroupBlocks, blocks - b0);
        const int valid_last = static_cast<int>(std::min<std::int64_t>(kVnniLanes, s.out_c - (b0 + nb - 1) * kVnniLanes));
        const std::uint8_t* wg = packed_.get() + b0 * total_steps_ * kVnniStepBytes;
        const std::int64_t* corr = correction_.data() + b0 * kVnniLanes;
        for_each_block(p_begin, p_end, kVnniMaxPixels, [&](std::int64_t p0, std::int64_t np) {
          const std::uint8_t* px[kVnniMaxPixels];
          std::int64_t* po[kVnniMaxPixels];
          for (std::int64_t j = 0; j < np; ++j) {
            px[j] = bytes + origin(s, p0 + j) * elem_bytes;
            po[j] = out + (p0 + j - out_pixel0) * out_stride + b0 * kVnniLanes;
          }
          table[static_cast<std::size_t>(nb - 1)][static_cast<std::size_t>(np - 1)](v, px, wg, po, valid_last, store,
                                                                                    corr);
        });
      }
      return;
    }
#else
    case Isa::kAvx2:
    case Isa::kAvx512Vnni: break;
#endif
  }
}

void depthwise(const ConvShape& shape, ActType act_type, const void* act, const std::int8_t* w, std::int64_t* out,
               Store store, std::int64_t p_begin, std::int64_t p_end, Isa isa, std::int64_t out_pixel0) {
  check_or_throw(shape, isa);
  if (shape.in_c != shape.out_c) {
    throw std::invalid_argument("dla::gemm: depthwise needs in_c == out_c (in_c = " + std::to_string(shape.in_c) +
                                ", out_c = " + std::to_string(shape.out_c) + ")");
  }
  check_pixels(shape, p_begin, p_end);
  check_out_pixel0(out_pixel0, p_begin);
  const std::int64_t amax = act_max_abs(act_type);
  switch (act_type) {
    case ActType::kU8:
      depthwise_typed(shape, amax, static_cast<const std::uint8_t*>(act), w, out, store, p_begin, p_end, isa,
                      out_pixel0);
      return;
    case ActType::kS8:
      depthwise_typed(shape, amax, static_cast<const std::int8_t*>(act), w, out, store, p_begin, p_end, isa,
                      out_pixel0);
      return;
    case ActType::kS16:
      depthwise_typed(shape, amax, static_cast<const std::int16_t*>(act), w, out, store, p_begin, p_end, isa,
                      out_pixel0);
      return;
  }
}

}  // namespace dla::gemm
