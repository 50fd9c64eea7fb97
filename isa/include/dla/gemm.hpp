// dla/gemm.hpp — exact integer convolution / GEMM kernels, shared by the emulator's MAC
// instruction and the QAT bridge's conv2d and linear ops.
//
// Contract (every kernel, every ISA):
//   * activations are u8, s8 or s16 integers, weights are s8 integers (every activation
//     and weight type of the ISA fits: i4/u4 are passed widened to s8/u8);
//   * every output is the EXACT integer sum of the products, whatever the ISA, the
//     reduction order, the blocking or the split of the pixels between calls: partial
//     sums are kept in int32 only over runs of the reduction short enough that no int32
//     can overflow (bounded from the activation type and |w| <= 128), and are added in
//     int64 beyond that;
//   * outputs are int64 and either overwrite the destination or are added to it with
//     saturation to the int64 range (Store::kAddSaturate, the MAC array's accumulate);
//   * the kernels read only the elements the convolution reads (no over-reading past the
//     tile), write only the outputs of the requested pixels, hold no global mutable state
//     and are safe to call from several threads at once on disjoint outputs.
//
// ISAs are chosen at run time: best_isa() asks the CPU (__builtin_cpu_supports) on every
// call (cheap); a kernel object is built for one ISA and runs only that code path, so the
// caller decides (tests run every supported ISA against naive loops).
//   avx512vnni: u8/s8 activations with vpdpbusd (s8 activations are biased by +128 to u8
//               and 128 * sum(w) is subtracted in int64, exactly as oneDNN does);
//               s16 activations with vpdpwssd. 16 output channels per zmm.
//   avx2:       activations widened to s16, vpmaddwd (exact: |a w| <= 2^22, so a pair
//               sum never saturates), 8 output channels per ymm.
//   scalar:     portable loops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dla::gemm {

enum class Isa : std::uint8_t { kAvx512Vnni, kAvx2, kScalar };

/// "avx512vnni", "avx2", "scalar".
std::string_view isa_name(Isa isa);
/// Whether this CPU (and OS) runs the code path; kScalar always.
bool isa_supported(Isa isa);
/// The fastest supported ISA.
Isa best_isa();
/// Every supported ISA, fastest first (ends with kScalar).
std::vector<Isa> supported_isas();

enum class ActType : std::uint8_t { kU8, kS8, kS16 };

/// Largest |a| of the type: 255, 128, 32768.
std::int64_t act_max_abs(ActType t);

/// A convolution over an activation tile, without padding (callers pad):
///   act [in_h][in_w][in_c], w [out_c][kernel_h][kernel_w][in_c] (depthwise: [c][kh][kw]),
///   out [out_h][out_w][out_c]; pixel p = oh * out_w + ow;
///   out[p][oc] = sum over kh, kw, ic of
///       act[oh * stride_h + kh * dilation_h][ow * stride_w + kw * dilation_w][ic] * w[oc][kh][kw][ic].
/// A GEMM C[m][n] = sum_k A[m][k] B[n][k] is the 1x1 case gemm(m, k, n).
struct ConvShape {
  std::int64_t in_h = 1, in_w = 1, in_c = 1;
  std::int64_t out_h = 1, out_w = 1, out_c = 1;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;

  static ConvShape gemm(std::int64_t m, std::int64_t k, std::int64_t n);
  std::int64_t pixels() const { return out_h * out_w; }
  /// Empty when every size is >= 1 and the tile holds every input the outputs read;
  /// otherwise what is wrong.
  std::string check() const;
};

enum class Store : std::uint8_t {
  kOverwrite,    ///< out = sum
  kAddSaturate,  ///< out = sat_int64(out + sum)
};

/// A dense convolution's weights packed for one ISA and activation type; run() computes
/// output pixels. Building costs O(out_c * kernel_h * kernel_w * in_c); run() is const and
/// thread-safe.
class ConvKernel {
 public:
  /// w: [out_c][kernel_h][kernel_w][in_c] s8 integers. Throws std::invalid_argument for a
  /// bad shape or an ISA this CPU does not support.
  ConvKernel(const ConvShape& shape, ActType act, const std::int8_t* w, Isa isa = best_isa());

  const ConvShape& shape() const { return shape_; }
  ActType act_type() const { return act_; }
  Isa isa() const { return isa_; }

  /// Pixels [p_begin, p_end) of the output (0 <= p_begin <= p_end <= shape().pixels()).
  /// act points to in_h * in_w * in_c elements of act_type() (uint8_t, int8_t or int16_t).
  /// Pixel p's out_c outputs are out[(p - out_pixel0) * out_stride + oc] (out_stride 0
  /// means out_c; a larger one lets kernels of output-channel slices write into one wider
  /// array; out_pixel0 in [0, p_begin] lets a caller keep only the pixels it runs).
  void run(const void* act, std::int64_t* out, Store store, std::int64_t p_begin, std::int64_t p_end,
           std::int64_t out_stride = 0, std::int64_t out_pixel0 = 0) const;

  /// One piece of the reduction: `len` elements contiguous in the activation tile (at
  /// act_off from a pixel's first element) and in the weight rows (at k_begin).
  struct Segment {
    std::int64_t act_off = 0;  ///< elements from the pixel's receptive-field origin
    std::int64_t k_begin = 0;  ///< index into w[oc][...] flattened
    std::int64_t len = 0;      ///< elements
    std::int64_t w_step = 0;   ///< first packed step of the segment
    std::int64_t steps = 0;    ///< packed steps (ceil(len / elements per step))
  };

 private:
  ConvShape shape_;
  ActType act_;
  Isa isa_;
  int step_elems_ = 1;    ///< reduction elements per packed lane step
  int lanes_ = 1;         ///< output channels per packed block
  int group_blocks_ = 1;  ///< blocks per register group
  std::int64_t total_steps_ = 0;
  std::vector<Segment> segments_;
  /// Chunks of segments whose int32 partial sums are exact: chunk c is segments
  /// [chunk_end_[c - 1], chunk_end_[c]).
  std::vector<std::uint32_t> chunk_end_;
  std::unique_ptr<std::uint8_t[]> packed_;
  /// Per output channel (padded to the blocks), subtracted in int64: 128 * sum(w) for s8
  /// activations on the u8 path, else 0.
  std::vector<std::int64_t> correction_;
};

/// Depthwise convolution (in_c == out_c == c): out[p - out_pixel0][c] = sum over kh, kw of
/// act[ih][iw][c] * w[c][kh][kw], for pixels [p_begin, p_end). Same exactness, store and
/// out_pixel0 contract as ConvKernel::run.
void depthwise(const ConvShape& shape, ActType act_type, const void* act, const std::int8_t* w, std::int64_t* out,
               Store store, std::int64_t p_begin, std::int64_t p_end, Isa isa = best_isa(),
               std::int64_t out_pixel0 = 0);

}  // namespace dla::gemm
