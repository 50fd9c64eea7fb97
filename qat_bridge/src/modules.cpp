// modules.cpp — the C++ modules of dla/qat/modules.hpp.
#include "dla/qat/modules.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace dla::qat {

int frac_for_max(double max_abs, DType t) {
  return frac_for_bound(max_abs, static_cast<double>(dtype_info(t).max));
}

std::vector<std::int64_t> weight_fracs_for(const at::Tensor& weight, DType t) {
  const at::Tensor m =
      weight.detach().abs().reshape({weight.size(0), -1}).amax(1).to(at::kDouble).contiguous();
  std::vector<std::int64_t> fracs(static_cast<std::size_t>(m.numel()));
  const double* p = m.data_ptr<double>();
  for (std::size_t i = 0; i < fracs.size(); ++i) fracs[i] = frac_for_max(p[i], t);
  return fracs;
}

// ---------------------------------------------------------------------------

QModuleImpl::QModuleImpl() {
  overflow_count_ = register_buffer("overflow_count", at::zeros({}, at::kLong));
  saturation_count_ = register_buffer("saturation_count", at::zeros({}, at::kLong));
}

void QModuleImpl::reset_counts() {
  at::NoGradGuard guard;
  overflow_count_.zero_();
  saturation_count_.zero_();
}

std::int64_t QModuleImpl::overflows() const { return overflow_count_.item<std::int64_t>(); }
std::int64_t QModuleImpl::saturations() const { return saturation_count_.item<std::int64_t>(); }

void QModuleImpl::count(const at::Tensor& counts) {
  at::NoGradGuard guard;
  overflow_count_.add_(counts[0]);
  saturation_count_.add_(counts[1]);
}

// ---------------------------------------------------------------------------

QuantizeActImpl::QuantizeActImpl(QuantizeActOptions o) : options(std::move(o)) {
  const std::string msg = check_frac(options.out.frac, "QuantizeAct frac");
  TORCH_CHECK(msg.empty(), msg);
  frac_ = register_buffer("frac", at::full({}, options.out.frac, at::kLong));
  calibrated_ = register_buffer("calibrated", at::full({}, !options.calibrate, at::kBool));
  if (options.learnable) {
    log2_scale = register_parameter("log2_scale", at::full({}, -static_cast<double>(options.out.frac), at::kFloat));
  }
}

int QuantizeActImpl::frac() const {
  return options.learnable ? frac_from_log2_scale(log2_scale.item<double>())
                           : static_cast<int>(frac_.item<std::int64_t>());
}

at::Tensor QuantizeActImpl::forward(const at::Tensor& x) {
  if (!calibrated_.item<bool>()) {
    at::NoGradGuard guard;
    frac_.fill_(frac_for_max(x.detach().abs().max().item<double>(), options.out.dtype));
    if (options.learnable) log2_scale.fill_(-frac_.item<double>());
    calibrated_.fill_(true);
  }
  const QFormat fmt{options.out.dtype, static_cast<int>(frac_.item<std::int64_t>())};
  const QResult r = options.learnable
                        ? quantize_learnable(x, log2_scale.to(x.scalar_type()), 0, options.out.dtype,
                                             options.hw, options.clip)
                        : quantize(x, fmt, options.hw, options.clip);
  count(r.counts);
  return r.y;
}

// ---------------------------------------------------------------------------

void QMacImpl::init_weight(const QWeightOptions& w, const HwOptions& hw,
                           std::vector<std::int64_t> shape, std::int64_t fan_in, bool with_bias) {
  wopt_ = w;
  whw_ = hw;
  // torch.nn's default initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<std::int64_t>(1, fan_in)));
  const std::int64_t out_channels = shape[0];
  weight = register_parameter("weight", at::rand(shape) * (2 * bound) - bound);
  if (with_bias) bias = register_parameter("bias", at::rand({out_channels}) * (2 * bound) - bound);
  if (w.learn_scale) {
    weight_log2_scale = register_parameter("weight_log2_scale", at::zeros({out_channels}));
    scale_initialized_ = register_buffer("scale_initialized", at::zeros({}, at::kBool));
  }
}

std::pair<at::Tensor, std::vector<std::int64_t>> QMacImpl::quantized_weight() {
  if (wopt_.learn_scale) {
    if (!scale_initialized_.item<bool>()) {
      const std::vector<std::int64_t> f =
          wopt_.fracs.empty() ? weight_fracs_for(weight, wopt_.dtype) : wopt_.fracs;
      at::NoGradGuard guard;
      weight_log2_scale.copy_(-at::tensor(f, at::kLong).to(weight_log2_scale.scalar_type()));
      scale_initialized_.fill_(true);
    }
    const at::Tensor l = weight_log2_scale.detach().to(at::kDouble).contiguous();
    std::vector<std::int64_t> fracs(static_cast<std::size_t>(l.numel()));
    for (std::size_t i = 0; i < fracs.size(); ++i) fracs[i] = frac_from_log2_scale(l.data_ptr<double>()[i]);
    const QResult r = quantize_learnable(weight, weight_log2_scale.to(weight.scalar_type()), 0,
                                         wopt_.dtype, whw_);
    count(r.counts);
    return {r.y, fracs};
  }
  std::vector<std::int64_t> fracs = wopt_.fracs.empty() ? weight_fracs_for(weight, wopt_.dtype) : wopt_.fracs;
  const QResult r = quantize_per_channel(weight, fracs, 0, wopt_.dtype, whw_);
  count(r.counts);
  return {r.y, std::move(fracs)};
}

QConv2dImpl::QConv2dImpl(QConv2dOptions o) : options(std::move(o)) {
  const std::int64_t cg = options.in_channels / std::max<std::int64_t>(1, options.conv.groups);
  init_weight(options.weight, options.hw,
              {options.out_channels, cg, options.kernel_size[0], options.kernel_size[1]},
              cg * options.kernel_size[0] * options.kernel_size[1], options.bias);
}

at::Tensor QConv2dImpl::forward(const at::Tensor& x) {
  auto [wq, fracs] = quantized_weight();
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  const QResult r = conv2d(x, options.in, wq, options.weight.dtype, fracs, b, options.out,
                           options.conv, options.hw, options.clip);
  count(r.counts);
  return r.y;
}

QLinearImpl::QLinearImpl(QLinearOptions o) : options(std::move(o)) {
  init_weight(options.weight, options.hw, {options.out_features, options.in_features},
              options.in_features, options.bias);
}

at::Tensor QLinearImpl::forward(const at::Tensor& x) {
  auto [wq, fracs] = quantized_weight();
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  const QResult r =
      linear(x, options.in, wq, options.weight.dtype, fracs, b, options.out, options.hw, options.clip);
  count(r.counts);
  return r.y;
}

// ---------------------------------------------------------------------------

QAddImpl::QAddImpl(QAddOptions o) : options(std::move(o)) {}

at::Tensor QAddImpl::forward(const at::Tensor& a, const at::Tensor& b) {
  const QResult r = add(a, options.a, b, options.b, options.out, options.hw, options.clip);
  count(r.counts);
  return r.y;
}

QAvgPoolImpl::QAvgPoolImpl(QAvgPoolOptions o) : options(std::move(o)) {}

at::Tensor QAvgPoolImpl::forward(const at::Tensor& x) {
  const QResult r = options.pool.has_value()
                        ? avg_pool2d(x, options.in, options.out, *options.pool, options.hw, options.clip)
                        : global_avg_pool2d(x, options.in, options.out, options.hw, options.clip);
  count(r.counts);
  return r.y;
}

QMaxPoolImpl::QMaxPoolImpl(QMaxPoolOptions o) : options(std::move(o)) {}

at::Tensor QMaxPoolImpl::forward(const at::Tensor& x) {
  return std::get<0>(max_pool2d(x, options.fmt, options.pool));
}

QConcatImpl::QConcatImpl(QConcatOptions o) : options(std::move(o)) {}

at::Tensor QConcatImpl::forward(const std::vector<at::Tensor>& xs) {
  return concat(xs, options.dim, options.fmt.dtype,
                std::vector<std::int64_t>(xs.size(), options.fmt.frac));
}

}  // namespace dla::qat
