// lut_op.cpp — dla::lut: a nonlinear activation as the chip computes it (VLUT), for QAT.
//
// Forward: y = lut_lookup(table, q_x) * 2^-f_y with the table of dla::lut::build_table,
// the function the compiler calls for the same layer, so training sees the chip's table
// bit for bit. Backward: dL/dx = dL/dy * g'(x) (the function's own derivative, not the
// straight-through identity), zero where the output clamp cut g(x) off (the mask); for a
// user table, the table's central difference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "dla/compiler/lut_tables.hpp"
#include "dla/error.hpp"
#include "dla/qat/hw_options.hpp"
#include "dla/qat/kernels.hpp"

namespace dla::qat {
namespace {

using at::Tensor;
using IntList = at::IntArrayRef;
using Triple = std::tuple<Tensor, Tensor, Tensor>;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr const char* kOp = "dla::lut";

/// The layer's table and format, with every argument checked (messages name the op and
/// the argument).
struct LutSpec {
  lut::Activation activation;
  lut::TableFormat format;
  std::vector<std::int16_t> table;
  // For 4- and 8-bit inputs, per input integer (index x - T.min): whether the output clamp
  // left g(x) alone, and g'(x) (or the user table's central difference). i16 inputs (64K
  // values) compute both per element instead.
  std::vector<char> inside;
  std::vector<double> slope;

  bool user() const { return activation.function == lut::Function::kTable; }
  /// The clamp mask at input integer q.
  bool inside_at(std::int64_t q) const {
    if (!inside.empty()) return inside[static_cast<std::size_t>(q - dtype_info(format.in_type).min)] != 0;
    if (user()) return true;
    const long double g = std::ldexp(lut::evaluate(activation, std::ldexp(static_cast<long double>(q), -format.in_frac)),
                                     format.out_frac);
    const DTypeInfo out = dtype_info(format.out_type);
    return g >= out.min - 0.5L && g <= out.max + 0.5L;
  }
  /// dy/dx at input integer q, in reals.
  double slope_at(std::int64_t q) const {
    if (!slope.empty()) return slope[static_cast<std::size_t>(q - dtype_info(format.in_type).min)];
    if (!user()) {
      return static_cast<double>(lut::derivative(activation, std::ldexp(static_cast<long double>(q), -format.in_frac)));
    }
    // A user table has no formula: its central difference.
    const DTypeInfo in = dtype_info(format.in_type);
    const std::int64_t lo = std::max(in.min, q - 1), hi = std::min(in.max, q + 1);
    const double dy = static_cast<double>(lut::lookup(table, hi, format) - lut::lookup(table, lo, format));
    return std::ldexp(dy / static_cast<double>(hi - lo), format.in_frac - format.out_frac);
  }
};

LutSpec lut_spec(std::int64_t x_dtype, std::int64_t x_frac, std::int64_t y_dtype, std::int64_t y_frac,
                 const std::string& function, double alpha, IntList user_table, IntList hw_list) {
  HwOptions hw;
  try {
    hw = HwOptions::from_list(hw_list.data(), hw_list.size());
  } catch (const dla::Error& e) {
    TORCH_CHECK(false, kOp, ": ", e.what());
  }
  for (const auto& [raw, name] : {std::pair{x_dtype, "x_dtype"}, std::pair{y_dtype, "y_dtype"}}) {
    const std::string msg = check_activation_dtype(raw, name);
    TORCH_CHECK(msg.empty(), kOp, ": ", msg);
  }
  for (const auto& [raw, name] : {std::pair{x_frac, "x_frac"}, std::pair{y_frac, "y_frac"}}) {
    const std::string msg = check_frac(raw, name);
    TORCH_CHECK(msg.empty(), kOp, ": ", msg);
  }
  const auto fn = lut::parse_function(function);
  TORCH_CHECK(fn.has_value(), kOp, ": unknown function \"", function,
              "\" (silu, sigmoid, tanh, hardswish, hardsigmoid, gelu_tanh, leaky_relu, elu, table)");
  LutSpec s;
  s.activation = {*fn, alpha};
  s.format = {static_cast<DType>(x_dtype), static_cast<int>(x_frac), static_cast<DType>(y_dtype),
              static_cast<int>(y_frac), hw.rounding};
  TORCH_CHECK(*fn == lut::Function::kTable || user_table.empty(), kOp, ": a table is given for ", function,
              ", which computes its own (only function \"table\" takes one)");
  try {
    s.table = *fn == lut::Function::kTable
                  ? lut::user_table(std::vector<std::int64_t>(user_table.begin(), user_table.end()), s.format.in_type,
                                    s.format.out_type)
                  : lut::build_table(s.activation, s.format);
  } catch (const lut::LutError& e) {
    TORCH_CHECK(false, kOp, ": ", e.what());
  }
  if (!lut_interpolates(s.format.in_type)) {
    const DTypeInfo in = dtype_info(s.format.in_type);
    std::vector<char> inside;
    std::vector<double> slope;
    for (std::int64_t q = in.min; q <= in.max; ++q) {
      inside.push_back(s.inside_at(q) ? 1 : 0);
      slope.push_back(s.slope_at(q));
    }
    s.inside = std::move(inside);
    s.slope = std::move(slope);
  }
  return s;
}

template <typename T>
std::vector<std::int16_t> recover_input(const Tensor& x, const lut::TableFormat& f) {
  const Tensor c = x.contiguous();
  std::vector<std::int16_t> q(static_cast<std::size_t>(c.numel()));
  const DTypeInfo info = dtype_info(f.in_type);
  const std::int64_t bad = recover_ints<T>(c.data_ptr<T>(), c.numel(), f.in_frac, info.min, info.max, q.data());
  TORCH_CHECK(bad < 0, kOp, ": x is not a quantized tensor of type ", info.name, " at frac ", f.in_frac,
              ": element ", bad, " is ", static_cast<double>(c.data_ptr<T>()[bad < 0 ? 0 : bad]),
              " (pass the output of a dla op of that type and frac)");
  return q;
}

void check_x(const Tensor& x) {
  TORCH_CHECK(x.defined(), kOp, ": x is an undefined tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, kOp,
              ": x must be a float32 or float64 tensor, got ", x.scalar_type());
  TORCH_CHECK(x.device().is_cpu(), kOp, ": x is on ", x.device(), "; the dla ops have CPU kernels only");
}

Triple lut_cpu(const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac, std::int64_t y_dtype, std::int64_t y_frac,
               c10::string_view function, double alpha, IntList table, IntList hw) {
  check_x(x);
  const LutSpec s = lut_spec(x_dtype, x_frac, y_dtype, y_frac, std::string(function), alpha, table, hw);
  Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor mask = at::empty(x.sizes(), x.options().dtype(at::kBool));
  std::int64_t saturations = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_lut", [&] {
    const std::vector<std::int16_t> q = recover_input<scalar_t>(x, s.format);
    scalar_t* py = y.data_ptr<scalar_t>();
    bool* pm = mask.data_ptr<bool>();
    for (std::size_t i = 0; i < q.size(); ++i) {
      bool sat = false;
      const std::int64_t v = lut_lookup(s.table, q[i], s.format.in_type, s.format.out_type, s.format.mode, &sat);
      py[i] = static_cast<scalar_t>(std::ldexp(static_cast<double>(v), -s.format.out_frac));
      // No gradient where the output clamp cut g(x) off (by more than the rounding).
      const bool inside = !sat && s.inside_at(q[i]);
      pm[i] = inside;
      saturations += inside ? 0 : 1;
    }
  });
  return {y, mask, at::tensor(std::vector<std::int64_t>{0, saturations}, at::kLong)};
}

/// dL/dx = dL/dy * g'(x) where the mask is set.
Tensor lut_backward(const Tensor& grad, const Tensor& x, const Tensor& mask, const LutSpec& s) {
  Tensor d = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dla_lut_backward", [&] {
    const std::vector<std::int16_t> q = recover_input<scalar_t>(x, s.format);
    scalar_t* pd = d.data_ptr<scalar_t>();
    for (std::size_t i = 0; i < q.size(); ++i) pd[i] = static_cast<scalar_t>(s.slope_at(q[i]));
  });
  return grad * d * mask.to(grad.scalar_type());
}

struct LutFn : torch::autograd::Function<LutFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac,
                               std::int64_t y_dtype, std::int64_t y_frac, c10::string_view function, double alpha,
                               IntList table, IntList hw) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("dla::lut", "")
                               .typed<Triple(const Tensor&, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                                             c10::string_view, double, IntList, IntList)>();
    const auto [y, mask, counts] = op.call(x, x_dtype, x_frac, y_dtype, y_frac, function, alpha, table, hw);
    ctx->save_for_backward({x, mask});
    ctx->saved_data["x_dtype"] = x_dtype;
    ctx->saved_data["x_frac"] = x_frac;
    ctx->saved_data["y_dtype"] = y_dtype;
    ctx->saved_data["y_frac"] = y_frac;
    ctx->saved_data["function"] = std::string(function);
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["table"] = table.vec();
    ctx->saved_data["hw"] = hw.vec();
    ctx->mark_non_differentiable({mask, counts});
    return {y, mask, counts};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(9);
    if (!grads[0].defined()) return result;
    const auto saved = ctx->get_saved_variables();
    const auto& d = ctx->saved_data;
    const std::vector<std::int64_t> table = d.at("table").toIntVector();
    const std::vector<std::int64_t> hw = d.at("hw").toIntVector();
    const LutSpec s = lut_spec(d.at("x_dtype").toInt(), d.at("x_frac").toInt(), d.at("y_dtype").toInt(),
                               d.at("y_frac").toInt(), d.at("function").toStringRef(), d.at("alpha").toDouble(), table,
                               hw);
    result[0] = lut_backward(grads[0], saved[0], saved[1], s);
    return result;
  }
};

Triple lut_autograd(const Tensor& x, std::int64_t x_dtype, std::int64_t x_frac, std::int64_t y_dtype,
                    std::int64_t y_frac, c10::string_view function, double alpha, IntList table, IntList hw) {
  const variable_list out = LutFn::apply(x, x_dtype, x_frac, y_dtype, y_frac, function, alpha, table, hw);
  return {out[0], out[1], out[2]};
}

/// The input integers a table's entries are taken at (every input for 4/8 bits, the 257
/// knots for i16): where a user function is evaluated to build its table.
std::vector<std::int64_t> lut_inputs(std::int64_t x_dtype) {
  const std::string msg = check_activation_dtype(x_dtype, "x_dtype");
  TORCH_CHECK(msg.empty(), "dla::lut_inputs: ", msg);
  const auto in = static_cast<DType>(x_dtype);
  const std::int64_t n = lut_entries(in);
  TORCH_CHECK(n > 0, "dla::lut_inputs: a table cannot take ", dtype_info(in).name, " inputs");
  std::vector<std::int64_t> out;
  for (std::int64_t j = 0; j < n; ++j) out.push_back(lut_position_input(in, j));
  return out;
}

}  // namespace
}  // namespace dla::qat

TORCH_LIBRARY_FRAGMENT(dla, m) {
  m.def("lut_inputs(int x_dtype) -> int[]", &dla::qat::lut_inputs);
  m.def(
      "lut(Tensor x, int x_dtype, int x_frac, int y_dtype, int y_frac, str function, float alpha,"
      " int[] table, int[] hw) -> (Tensor y, Tensor mask, Tensor counts)");
}

TORCH_LIBRARY_IMPL(dla, CPU, m) { m.impl("lut", &dla::qat::lut_cpu); }

TORCH_LIBRARY_IMPL(dla, Autograd, m) { m.impl("lut", &dla::qat::lut_autograd); }
