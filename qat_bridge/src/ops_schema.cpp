// ops_schema.cpp — the schemas of the dla:: ops (TORCH_LIBRARY) and the C++ API that
// calls them through the dispatcher. Kernels are registered apart, per dispatch key, in
// ops_kernels.cpp.
//
// Integer arguments: dtype 0 i4, 1 u4, 2 i8, 3 u8, 4 i16; fracs in [-32, 32]; clip_lo /
// clip_hi in output integers (None: the type's range); hw is the list of
// dla/qat/hw_options.hpp. These are the constants the compiler's importer reads from an
// exported TorchScript model.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/library.h>

#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/qat/ops.hpp"
#include "op_signatures.hpp"

namespace dla::qat {
namespace {

std::vector<std::int64_t> hw_preset_op(const std::string& name) {
  try {
    return HwOptions::preset(name).to_list();
  } catch (const dla::Error& e) {
    TORCH_CHECK(false, "dla::hw_preset: ", e.what());
  }
}

std::vector<std::int64_t> hw_from_json_op(const std::string& text) {
  try {
    return HwOptions::from_config(HwConfig::from_json_text(text, "hw_from_json")).to_list();
  } catch (const dla::Error& e) {
    TORCH_CHECK(false, "dla::hw_from_json: ", e.what());
  }
}

std::string hw_tables_op() { return hw_tables_json(); }
/// The identity hash of the hardware config a model trained with `hw` is compiled for: the
/// default preset with the list's fields (what `dla compile net.dla.pt` uses).
std::string hw_config_hash_op(std::vector<std::int64_t> hw) {
  const HwOptions o = HwOptions::from_list(hw);
  HwConfig cfg = HwConfig::preset("default");
#define DLA_QAT_TO_CONFIG(member, field) cfg.field = static_cast<decltype(cfg.field)>(o.member);
  DLA_QAT_HW_LIST(DLA_QAT_TO_CONFIG)
#undef DLA_QAT_TO_CONFIG
  return hash_hex(cfg.identity_hash());
}

std::vector<std::int64_t> requant_shifts_op(std::int64_t x_frac, const std::vector<std::int64_t>& w_fracs,
                                            std::int64_t y_frac) {
  std::vector<std::int64_t> shifts;
  for (const std::int64_t w : w_fracs) {
    shifts.push_back(requant_shift(static_cast<int>(x_frac), static_cast<int>(w), static_cast<int>(y_frac)));
  }
  return shifts;
}

std::int64_t frac_for_bound_op(double magnitude, double bound) { return frac_for_bound(magnitude, bound); }

std::string gemm_kernel_op(const c10::optional<std::string>& select) {
  if (select.has_value()) {
    TORCH_CHECK(set_gemm_kernel(*select), "dla::gemm_kernel: kernel \"", *select,
                "\" is not available on this CPU (available: ",
                c10::Join(", ", available_gemm_kernels()), ")");
  }
  return gemm_kernel();
}

std::vector<std::string> gemm_kernels_op() { return available_gemm_kernels(); }

c10::optional<std::int64_t> opt(const std::optional<std::int64_t>& v) {
  return v.has_value() ? c10::optional<std::int64_t>(*v) : c10::nullopt;
}

QResult result(const sig::Triple& t) { return {std::get<0>(t), std::get<1>(t), std::get<2>(t)}; }

std::int64_t raw(DType t) { return static_cast<std::int64_t>(t); }

}  // namespace

}  // namespace dla::qat

TORCH_LIBRARY(dla, m) {
  m.def(
      "quantize(Tensor x, int dtype, int frac, int? clip_lo, int? clip_hi, int[] hw)"
      " -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "quantize_per_channel(Tensor x, int[] fracs, int axis, int dtype, int? clip_lo,"
      " int? clip_hi, int[] hw) -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "quantize_learnable(Tensor x, Tensor log2_scale, int axis, int dtype, int? clip_lo,"
      " int? clip_hi, int[] hw, bool smooth=False) -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "conv2d(Tensor x, Tensor weight, Tensor? bias, int x_dtype, int x_frac, int w_dtype,"
      " int[] w_fracs, int y_dtype, int y_frac, int[2] stride, int[2] padding, int[2] dilation,"
      " int groups, int? clip_lo, int? clip_hi, int[] hw) -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "linear(Tensor x, Tensor weight, Tensor? bias, int x_dtype, int x_frac, int w_dtype,"
      " int[] w_fracs, int y_dtype, int y_frac, int? clip_lo, int? clip_hi, int[] hw)"
      " -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "add(Tensor a, Tensor b, int a_dtype, int a_frac, int b_dtype, int b_frac, int y_dtype,"
      " int y_frac, int? clip_lo, int? clip_hi, int[] hw) -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "avg_pool2d(Tensor x, int x_dtype, int x_frac, int y_dtype, int y_frac, int[2] kernel_size,"
      " int[2] stride, int[2] padding, int? clip_lo, int? clip_hi, int[] hw)"
      " -> (Tensor y, Tensor mask, Tensor counts)");
  m.def(
      "max_pool2d(Tensor x, int dtype, int frac, int[2] kernel_size, int[2] stride,"
      " int[2] padding) -> (Tensor y, Tensor indices)");
  m.def("concat(Tensor[] xs, int dim, int dtype, int[] fracs) -> Tensor");
  // The integer biases the MAC ops add (acc_bits wide, at x_frac + w_fracs[oc]): what the
  // exporter writes for the compiler. Returns (int64 q, counts [0, saturations]).
  m.def("bias_integers(Tensor bias, int x_frac, int[] w_fracs, int[] hw) -> (Tensor q, Tensor counts)");
  // Training glue, not DLA numerics: per-channel batch mean, biased variance, min and max of a
  // float tensor in one pass (double sums): a folded BatchNorm's statistics and the range
  // its output observer needs.
  m.def("channel_moments(Tensor y, int channel_dim) -> (Tensor mean, Tensor var, Tensor min, Tensor max)");
  // The STE gradient of a requantizing op: grad where its mask is true (the clamp kept the
  // value), else 0 (what the ops' own backward does; for gradients assembled in Python).
  m.def("ste_grad(Tensor grad, Tensor mask) -> Tensor");
  // quantize_per_channel(x * scale[c] (+ shift[c])) without the temporaries (bit-identical
  // to the separate multiply and add): a BatchNorm folded into weights, a BatchNorm's output.
  // No autograd (training glue).
  // With want_mask false the mask is computed only when an element saturated, and is
  // otherwise an all-true view without storage (weights, which rarely saturate); with
  // as_ints y is an int16 tensor of the integers (conv2d and conv2d_sums take it as weight).
  m.def("quantize_per_channel_scaled(Tensor x, Tensor scale, Tensor? shift, int[] fracs, int axis, int dtype,"
        " int? clip_lo, int? clip_hi, int[] hw, bool want_mask=True, bool as_ints=False)"
        " -> (Tensor y, Tensor mask, Tensor counts)");
  // Per channel c of dimension 0: the "max" weight observer's frac, frac_for_bound(max
  // |x[c] * scale[c]|, the type's max), and x[c] * scale[c] quantized at it (each product
  // rounded as torch's multiply), the channel read once from memory for both; the mask as
  // want_mask false above; max_abs (float64) NaN where a channel holds NaN. No autograd.
  m.def("quantize_per_channel_max(Tensor x, Tensor? scale, int dtype, int[] hw, bool as_ints=False)"
        " -> (Tensor y, Tensor mask, Tensor counts, Tensor fracs, Tensor max_abs)");
  // The frac rule of every observer, per element: the largest f in [-32, 32] with
  // mags * 2^f <= bounds (float64; bounds one per magnitude or one for all), 32 for 0,
  // 0 for NaN and inf. Returns int64.
  m.def("fracs_for_bound(Tensor mags, Tensor bounds) -> Tensor");
  // The exact sums of conv2d (no bias, accumulator or output stage) as reals at
  // x_frac + w_fracs[oc]: a folded BatchNorm's statistics from the integer convolution.
  // No autograd (training glue).
  m.def("conv2d_sums(Tensor x, Tensor weight, int x_dtype, int x_frac, int w_dtype, int[] w_fracs, int[2] stride,"
        " int[2] padding, int[2] dilation, int groups, int[] hw) -> Tensor");
  // Per-channel min and max in one read (NaN-propagating, as torch.aminmax): a weight's range.
  m.def("channel_range(Tensor x, int channel_dim) -> (Tensor min, Tensor max)");
  // g1 = ste_grad(grad, mask) and per channel sum(g1), sum(g1 * y), in one read: the
  // element-wise part of a folded BatchNorm's backward.
  m.def("ste_channel_sums(Tensor grad, Tensor? mask, Tensor y, int channel_dim) -> (Tensor g1, Tensor sum, Tensor dot)");
  // g = g * g_scale[c] + y * y_scale[c] + shift[c] in place, in one pass (each product and
  // sum rounded, as torch's separate multiplies and adds): a folded BatchNorm's statistics
  // terms added to its input gradient.
  m.def("channel_affine_(Tensor(a!) g, Tensor? g_scale, Tensor y, Tensor y_scale, Tensor shift, int channel_dim)"
        " -> Tensor(a!)");
  // Utilities without tensors (their one kernel serves every dispatch key).
  m.def("hw_preset(str name) -> int[]", &dla::qat::hw_preset_op);
  m.def("hw_from_json(str text) -> int[]", &dla::qat::hw_from_json_op);
  // The type codes, hw-list order and MAC modes the Python package reads (JSON).
  m.def("hw_tables() -> str", &dla::qat::hw_tables_op);
  m.def("hw_config_hash(int[] hw) -> str", &dla::qat::hw_config_hash_op);
  // dla::requant_shift of each output channel: x_frac + w_fracs[oc] - y_frac.
  m.def("requant_shifts(int x_frac, int[] w_fracs, int y_frac) -> int[]", &dla::qat::requant_shifts_op);
  // fracs_for_bound of one magnitude, without tensors (an activation observer's range).
  m.def("frac_for_bound(float magnitude, float bound) -> int", &dla::qat::frac_for_bound_op);
  m.def("gemm_kernel(str? select=None) -> str", &dla::qat::gemm_kernel_op);
  m.def("gemm_kernels() -> str[]", &dla::qat::gemm_kernels_op);
}

namespace dla::qat {

int frac_from_log2_scale(double log2_scale) {
  const double f = -std::floor(log2_scale + 0.5);
  if (!(f >= -1e9 && f <= 1e9)) return f > 0 ? 1000000000 : -1000000000;  // NaN, huge: out of range
  return static_cast<int>(f);
}

QResult quantize(const at::Tensor& x, QFormat fmt, const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::Quantize>("dla::quantize");
  return result(op.call(x, raw(fmt.dtype), fmt.frac, opt(clip.lo), opt(clip.hi), hw.to_list()));
}

QResult quantize_per_channel(const at::Tensor& x, const std::vector<std::int64_t>& fracs,
                             std::int64_t axis, DType dtype, const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::QuantizePerChannel>("dla::quantize_per_channel");
  return result(op.call(x, fracs, axis, raw(dtype), opt(clip.lo), opt(clip.hi), hw.to_list()));
}

QResult quantize_learnable(const at::Tensor& x, const at::Tensor& log2_scale, std::int64_t axis,
                           DType dtype, const HwOptions& hw, Clip clip, bool smooth) {
  static const auto op = sig::handle<sig::QuantizeLearnable>("dla::quantize_learnable");
  return result(op.call(x, log2_scale, axis, raw(dtype), opt(clip.lo), opt(clip.hi), hw.to_list(),
                        smooth));
}

QResult conv2d(const at::Tensor& x, QFormat x_fmt, const at::Tensor& weight, DType w_dtype,
               const std::vector<std::int64_t>& w_fracs, const std::optional<at::Tensor>& bias,
               QFormat y_fmt, const Conv2dArgs& args, const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::Conv2d>("dla::conv2d");
  const c10::optional<at::Tensor> b = bias.has_value() ? c10::optional<at::Tensor>(*bias) : c10::nullopt;
  return result(op.call(x, weight, b, raw(x_fmt.dtype), x_fmt.frac, raw(w_dtype), w_fracs,
                        raw(y_fmt.dtype), y_fmt.frac, args.stride, args.padding, args.dilation,
                        args.groups, opt(clip.lo), opt(clip.hi), hw.to_list()));
}

QResult linear(const at::Tensor& x, QFormat x_fmt, const at::Tensor& weight, DType w_dtype,
               const std::vector<std::int64_t>& w_fracs, const std::optional<at::Tensor>& bias,
               QFormat y_fmt, const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::Linear>("dla::linear");
  const c10::optional<at::Tensor> b = bias.has_value() ? c10::optional<at::Tensor>(*bias) : c10::nullopt;
  return result(op.call(x, weight, b, raw(x_fmt.dtype), x_fmt.frac, raw(w_dtype), w_fracs,
                        raw(y_fmt.dtype), y_fmt.frac, opt(clip.lo), opt(clip.hi), hw.to_list()));
}

QResult add(const at::Tensor& a, QFormat a_fmt, const at::Tensor& b, QFormat b_fmt, QFormat y_fmt,
            const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::Add>("dla::add");
  return result(op.call(a, b, raw(a_fmt.dtype), a_fmt.frac, raw(b_fmt.dtype), b_fmt.frac,
                        raw(y_fmt.dtype), y_fmt.frac, opt(clip.lo), opt(clip.hi), hw.to_list()));
}

namespace {
std::array<std::int64_t, 2> stride_or_kernel(const Pool2dArgs& args) {
  return (args.stride[0] == 0 && args.stride[1] == 0) ? args.kernel_size : args.stride;
}
}  // namespace

QResult avg_pool2d(const at::Tensor& x, QFormat x_fmt, QFormat y_fmt, const Pool2dArgs& args,
                   const HwOptions& hw, Clip clip) {
  static const auto op = sig::handle<sig::AvgPool2d>("dla::avg_pool2d");
  return result(op.call(x, raw(x_fmt.dtype), x_fmt.frac, raw(y_fmt.dtype), y_fmt.frac,
                        args.kernel_size, stride_or_kernel(args), args.padding, opt(clip.lo),
                        opt(clip.hi), hw.to_list()));
}

QResult global_avg_pool2d(const at::Tensor& x, QFormat x_fmt, QFormat y_fmt, const HwOptions& hw,
                          Clip clip) {
  TORCH_CHECK(x.dim() == 4, "dla::global_avg_pool2d: x must be [n, c, h, w], got ", x.sizes());
  Pool2dArgs args;
  args.kernel_size = {x.size(2), x.size(3)};
  args.stride = args.kernel_size;
  return avg_pool2d(x, x_fmt, y_fmt, args, hw, clip);
}

std::tuple<at::Tensor, at::Tensor> max_pool2d(const at::Tensor& x, QFormat fmt,
                                              const Pool2dArgs& args) {
  static const auto op = sig::handle<sig::MaxPool2d>("dla::max_pool2d");
  return op.call(x, raw(fmt.dtype), fmt.frac, args.kernel_size, stride_or_kernel(args),
                 args.padding);
}

at::Tensor concat(const std::vector<at::Tensor>& xs, std::int64_t dim, DType dtype,
                  const std::vector<std::int64_t>& fracs) {
  static const auto op = sig::handle<sig::Concat>("dla::concat");
  return op.call(xs, dim, raw(dtype), fracs);
}

}  // namespace dla::qat
