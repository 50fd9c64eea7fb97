// dla/qat/kernels.hpp — the integer kernels of the QAT ops, in plain C++ on raw pointers.
//
// The torch ops (ops.hpp) validate their arguments, recover the integers of their
// inputs and call these kernels; the kernels compute exactly the integers of
// isa/README.md section 1 by calling dla/numerics.hpp for every rounding, clamp,
// wrap and saturation. Nothing here rounds, clamps or wraps by itself.
//
// Conventions:
//   * a quantized tensor of frac f holds real = q * 2^-f; the ops pass floats
//     (float or double) whose values are exactly such reals; `recover_ints` gets q back
//     and refuses anything else;
//   * integer inputs of the MAC kernels are int16 (every activation and weight type fits);
//   * outputs are written as real values y = q * 2^-f_y (exact: |q| < 2^16) plus a mask
//     bool per element, true where the output clamp did not change the value (the STE mask);
//   * every kernel returns its overflow and saturation counts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dla/numerics.hpp"

namespace dla::qat {

/// Events counted by every op: accumulator overflows (the exact sum left the acc_bits
/// range, whatever the policy did with it) and saturations (a clamp changed a value:
/// an output clamp, the clamp of a quantized input or of a quantized bias).
struct Counts {
  std::int64_t overflows = 0;
  std::int64_t saturations = 0;
  Counts& operator+=(const Counts& o) {
    overflows += o.overflows;
    saturations += o.saturations;
    return *this;
  }
};

// ---------------------------------------------------------------------------
// Reals <-> integers
// ---------------------------------------------------------------------------

/// q = requantize(x * 2^frac) = clamp(round_shift(x * 2^frac, mode), lo, hi), exactly.
/// The real x * 2^frac is written as an integer m times a power of two (m * 2^-s, both
/// exact: a double's 53-bit significand, or for floats of moderate size floor(x * 2^(frac+32))
/// with s = 32, see the .cpp for the proof) and rounded by dla::requantize(m, s, out).
/// NaN gives clamp(0) and counts as saturated; +-inf saturate.
std::int64_t quantize_real(double x, int frac, const OutputSpec& out, bool* saturated = nullptr);
std::int64_t quantize_real(float x, int frac, const OutputSpec& out, bool* saturated = nullptr);

/// Recovers q = x * 2^frac for values that are exact multiples of 2^-frac in [lo, hi]
/// (lo, hi inside the int16 range). Returns the index of the first element that is not
/// (also NaN / inf), or -1 when all are; `out` receives the integers up to that point.
template <typename T>
std::int64_t recover_ints(const T* x, std::int64_t n, int frac, std::int64_t lo, std::int64_t hi,
                          std::int16_t* out);

/// Per-channel fake quantization of reals: for a tensor seen as [outer][channels][inner],
/// y = requantize(x * 2^fracs[c]) * 2^-fracs[c] (quantize_real per element), mask = 1
/// where the clamp did not change the value. `fracs` has `channels` entries. With
/// `scales` (one per channel), the reals are x * scales[c] rounded to T first, exactly the
/// tensor a separate multiply would give (a BatchNorm folded into weights without a copy);
/// with `shifts` too, x * scales[c] + shifts[c], each operation rounded (a BatchNorm's
/// output without its two temporaries). shifts needs scales. A null mask is not written.
/// With `ints`, the integers q are written there instead of the reals into y (y unused).
template <typename T>
Counts quantize_forward(const T* x, std::int64_t outer, std::int64_t channels, std::int64_t inner,
                        const int* fracs, const OutputSpec& out, T* y, bool* mask, const T* scales = nullptr,
                        const T* shifts = nullptr, std::int16_t* ints = nullptr);

// ---------------------------------------------------------------------------
// MAC ops: conv2d and linear
// ---------------------------------------------------------------------------

/// Shape of a 2-D convolution: input [n][c][h][w], weight [oc][c / groups][kh][kw],
/// output [n][oc][out_h][out_w] with out = (in + 2 pad - dil (k - 1) - 1) / stride + 1.
struct Conv2dGeometry {
  std::int64_t n = 1, c = 1, h = 1, w = 1;
  std::int64_t oc = 1, kh = 1, kw = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dil_h = 1, dil_w = 1;
  std::int64_t groups = 1;

  std::int64_t out_h() const { return (h + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1; }
  std::int64_t out_w() const { return (w + 2 * pad_w - dil_w * (kw - 1) - 1) / stride_w + 1; }
  /// Empty when the geometry is valid; otherwise a message naming the bad argument.
  std::string validate() const;
};

/// The requantization fused after a MAC op, per output channel `oc`:
///   exact = sum_k x[k] w[oc,k] + bias[oc]            (int64, exact)
///   acc   = finalize_acc(exact, acc)                 (wrap or saturate; overflow counted)
///   q     = requantize(acc, shift[oc], out)          (round, clip; saturation counted)
struct MacRequant {
  AccSpec acc;
  OutputSpec out;
  const int* shift = nullptr;              ///< [oc]: f_x + f_w[oc] - f_y
  const std::int64_t* bias = nullptr;      ///< [oc] integers at f_x + f_w[oc], or nullptr
  int frac_y = 0;                          ///< output frac: y = q * 2^-frac_y
  std::int64_t max_abs_x = 32768;          ///< bound on |x|, for exact int32 partial sums
  std::int64_t max_abs_w = 128;            ///< bound on |w|
  /// No accumulator or output stage: y = (exact + bias) * 2^-shift[oc] rounded to T, no
  /// mask written (training glue: the exact sums as reals, not DLA numerics).
  bool sums_only = false;
};

/// Bit-exact conv2d of images [n_begin, n_end): x int16 [n][c][h][w], w int16
/// [oc][c/groups][kh][kw] (integers), y and mask [n][oc][out_h][out_w] (written only for
/// those images). The exact sum is accumulated in int32 over blocks of K short enough
/// never to overflow (from max_abs_x * max_abs_w) and in int64 across blocks.
template <typename T>
Counts conv2d_forward(const Conv2dGeometry& g, const std::int16_t* x, const std::int16_t* w,
                      const MacRequant& rq, T* y, bool* mask, std::int64_t n_begin,
                      std::int64_t n_end);

/// conv2d_forward of images [n_begin, n_end) in pieces that threads share: the constructor
/// sizes the zero-padded activation tiles; pack(b, e) packs weight kernels [b, e) (a group's
/// slice of output channels each; w must stay valid until then), fill_tiles(b, e) lays out
/// tiles [b, e) (one per image and group) and run(b, e) computes tasks [b, e) (an image, a
/// group and a chunk of output pixels each); calls on disjoint ranges may run on any
/// threads at once, every pack and fill_tiles before any run. Nothing is allocated per
/// image, so worker threads do not churn their malloc arenas.
template <typename T>
class Conv2dPlan {
 public:
  Conv2dPlan(const Conv2dGeometry& g, const std::int16_t* x, const std::int16_t* w, const MacRequant& rq, T* y,
             bool* mask, std::int64_t n_begin, std::int64_t n_end);
  ~Conv2dPlan();
  Conv2dPlan(const Conv2dPlan&) = delete;
  Conv2dPlan& operator=(const Conv2dPlan&) = delete;

  std::int64_t packs() const;
  std::int64_t tiles() const;
  std::int64_t tasks() const;
  void pack(std::int64_t begin, std::int64_t end);
  void fill_tiles(std::int64_t begin, std::int64_t end);
  Counts run(std::int64_t begin, std::int64_t end) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Bit-exact linear layer for rows [row_begin, row_end): x int16 [m][k], w int16 [n][k],
/// y and mask [m][n]; output channel = column n.
template <typename T>
Counts linear_forward(std::int64_t m, std::int64_t k, std::int64_t n, const std::int16_t* x,
                      const std::int16_t* w, const MacRequant& rq, T* y, bool* mask,
                      std::int64_t row_begin, std::int64_t row_end);

/// The GEMM micro-kernel in use ("avx512vnni", "avx2" or "scalar"; chosen from the CPU at
/// start-up) and the ones this CPU can run. set_gemm_kernel selects one (for tests and
/// benchmarks); it returns false for a name that is not available.
std::string gemm_kernel();
std::vector<std::string> available_gemm_kernels();
bool set_gemm_kernel(const std::string& name);

// ---------------------------------------------------------------------------
// Vector-unit ops
// ---------------------------------------------------------------------------

/// Eltwise add of n elements: y = eltwise_add(a, b, shifts, out) (dla numerics).
template <typename T>
Counts add_forward(const std::int16_t* a, const std::int16_t* b, std::int64_t n,
                   const AddShifts& shifts, const OutputSpec& out, int frac_y, T* y,
                   bool* mask);

/// Window geometry of a pooling op over [n][c][h][w] (n folds batch and channels).
struct Pool2dGeometry {
  std::int64_t n = 1, c = 1, h = 1, w = 1;
  std::int64_t kh = 1, kw = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;

  std::int64_t out_h() const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  std::int64_t out_w() const { return (w + 2 * pad_w - kw) / stride_w + 1; }
  std::string validate() const;
};

/// Average pool (the vector unit's VAVGPOOL): padding counts as zeros, N = kh * kw,
///   y = avgpool(sum, M, shift, out) with M = avgpool_multiplier(N, S), shift = S + f_x - f_y.
template <typename T>
Counts avg_pool2d_forward(const Pool2dGeometry& g, const std::int16_t* x, std::int64_t multiplier,
                          int shift, const OutputSpec& out, int frac_y, T* y, bool* mask);

/// Max pool (VMAXPOOL): padding is skipped; a window without input elements gives
/// type_min. indices[o] is the flat index h * w_in + w of the maximum inside its plane
/// (the first one in window order), or -1. Frac unchanged: y = q * 2^-frac.
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const std::int16_t* x, std::int64_t type_min,
                        int frac, T* y, std::int64_t* indices);

}  // namespace dla::qat
