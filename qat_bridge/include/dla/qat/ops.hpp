// dla/qat/ops.hpp — the bit-exact QAT ops, C++ API.
//
// The ops are registered with the PyTorch dispatcher as `dla::<name>` (schemas in
// src/ops_schema.cpp, CPU and Autograd kernels in src/ops_kernels.cpp); these functions
// call them through the dispatcher, so C++ and Python (torch.ops.dla.<name>) run the same
// code, and a TorchScript trace records the same op.
//
// Every tensor between ops is a float (or double) tensor holding real values
// q * 2^-frac of a quantized tensor; an op that consumes one recovers q exactly and
// refuses (with an error naming the argument and the element) a value that is not such a
// real of the declared type. Forward computes the hardware's integers with dla numerics
// (isa/README.md section 1); backward is the straight-through estimator: the gradient
// of the float op, multiplied by the op's clamp mask.
//
// Requantizing ops return QResult: y (the output reals), mask (bool, true where the
// output clamp did not change the value: the STE mask) and counts (int64 [2]:
// accumulator overflows, saturations).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dla/qat/hw_options.hpp"
#include "dla/qat/kernels.hpp"

namespace dla::qat {

/// Type and frac of a quantized activation tensor: real = q * 2^-frac.
struct QFormat {
  DType dtype = DType::I8;
  int frac = 0;
};

/// Extra clip of a requantizing op's output, in output integers (ReLU: lo = 0).
struct Clip {
  std::optional<std::int64_t> lo;
  std::optional<std::int64_t> hi;
};

struct QResult {
  at::Tensor y;       ///< output reals q * 2^-frac_y, the input's floating dtype
  at::Tensor mask;    ///< bool, true where the clamp did not change the value
  at::Tensor counts;  ///< int64 [2]: {overflows, saturations}
};

/// Conv geometry as in torch.nn.functional.conv2d.
struct Conv2dArgs {
  std::array<std::int64_t, 2> stride{1, 1};
  std::array<std::int64_t, 2> padding{0, 0};
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
};

/// Pool geometry; an empty stride means stride = kernel_size.
struct Pool2dArgs {
  std::array<std::int64_t, 2> kernel_size{2, 2};
  std::array<std::int64_t, 2> stride{0, 0};
  std::array<std::int64_t, 2> padding{0, 0};
};

/// dla::quantize — activation fake-quant: y = requantize(x * 2^frac) * 2^-frac with the
/// hardware rounding mode and clip. Gradient: STE (grad * mask).
QResult quantize(const at::Tensor& x, QFormat fmt, const HwOptions& hw, Clip clip = {});

/// dla::quantize_per_channel — symmetric per-channel quantization along `axis` with one
/// frac per channel (weights: axis 0, type i4 or i8).
QResult quantize_per_channel(const at::Tensor& x, const std::vector<std::int64_t>& fracs,
                             std::int64_t axis, DType dtype, const HwOptions& hw, Clip clip = {});

/// dla::quantize_learnable — quantization with a learnable power-of-two scale held in
/// the log2 domain: `log2_scale` has one element (per tensor) or one per channel of
/// `axis`; the forward uses frac = frac_from_log2_scale(l) (an integer), the backward gives
/// x the STE gradient and log2_scale the TQT gradient ln2 * sum(grad * (y - x * mask)).
/// smooth = true replaces both roundings by the identity (y = clamp(x, lo 2^l, hi 2^l)):
/// a differentiable surrogate for gradcheck, not the hardware.
QResult quantize_learnable(const at::Tensor& x, const at::Tensor& log2_scale, std::int64_t axis,
                           DType dtype, const HwOptions& hw, Clip clip = {}, bool smooth = false);

/// The integer frac a log2 scale l stands for: -floor(l + 1/2) (scale 2^-frac).
int frac_from_log2_scale(double log2_scale);

/// dla::conv2d — bit-exact convolution: x (i4/u4/i8/u8/i16 at x.frac) with weights
/// (i4/i8, frac per output channel, w_fracs of size 1 or out_channels) and a bias
/// quantized to acc_bits at x.frac + w_fracs[oc]; exact sum, accumulator width and
/// overflow policy, requantized to y.
QResult conv2d(const at::Tensor& x, QFormat x_fmt, const at::Tensor& weight, DType w_dtype,
               const std::vector<std::int64_t>& w_fracs, const std::optional<at::Tensor>& bias,
               QFormat y_fmt, const Conv2dArgs& args, const HwOptions& hw, Clip clip = {});

/// dla::linear — bit-exact x [..., in] @ weight [out, in]^T + bias, like conv2d.
QResult linear(const at::Tensor& x, QFormat x_fmt, const at::Tensor& weight, DType w_dtype,
               const std::vector<std::int64_t>& w_fracs, const std::optional<at::Tensor>& bias,
               QFormat y_fmt, const HwOptions& hw, Clip clip = {});

/// dla::add — eltwise (residual) add with frac alignment (same shapes).
QResult add(const at::Tensor& a, QFormat a_fmt, const at::Tensor& b, QFormat b_fmt, QFormat y_fmt,
            const HwOptions& hw, Clip clip = {});

/// dla::avg_pool2d — average pool with the hardware's 1/N: M = round(2^S / N),
/// S = hw.avgpool_shift, N = kernel area (zero padding counts).
QResult avg_pool2d(const at::Tensor& x, QFormat x_fmt, QFormat y_fmt, const Pool2dArgs& args,
                   const HwOptions& hw, Clip clip = {});

/// Global average pool: avg_pool2d over the whole plane (output [n][c][1][1]).
QResult global_avg_pool2d(const at::Tensor& x, QFormat x_fmt, QFormat y_fmt, const HwOptions& hw,
                          Clip clip = {});

/// dla::max_pool2d — max pool on the integers (padding skipped); returns y and the
/// argmax indices within each plane (used by the backward).
std::tuple<at::Tensor, at::Tensor> max_pool2d(const at::Tensor& x, QFormat fmt,
                                              const Pool2dArgs& args);

/// dla::concat — concatenation along `dim` of tensors that share one type and one frac.
at::Tensor concat(const std::vector<at::Tensor>& xs, std::int64_t dim, DType dtype,
                  const std::vector<std::int64_t>& fracs);

}  // namespace dla::qat
