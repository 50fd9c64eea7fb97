// tests/qat/test_qat_modules.cpp — the C++ side of the QAT bridge with libtorch: the ops
// called through the dispatcher (dla/qat/ops.hpp), their autograd, their error messages
// and the C++ modules (dla/qat/modules.hpp). The numerics of every op are checked against
// independent references in test_qat_kernels.cpp and tests/qat/test_ops.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "dla/qat/modules.hpp"
#include "dla/qat/ops.hpp"

namespace {

using dla::DType;
using namespace dla::qat;

/// Reals of `dtype` at `frac`, random.
at::Tensor random_q(std::vector<std::int64_t> shape, std::int64_t lo, std::int64_t hi, int frac,
                    at::ScalarType st = at::kFloat) {
  return at::randint(lo, hi + 1, shape, at::kLong).to(st) * std::ldexp(1.0, -frac);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(QatOps, Conv2dEqualsAnExactDoubleConvolutionRequantized) {
  at::manual_seed(1);
  const HwOptions hw = HwOptions::preset("default");
  const at::Tensor x = random_q({2, 4, 6, 5}, 0, 255, 4);
  const at::Tensor w = random_q({3, 4, 3, 3}, -128, 127, 6);
  const QResult r = conv2d(x, {DType::U8, 4}, w, DType::I8, {6}, std::nullopt, {DType::I8, 2},
                           Conv2dArgs{{1, 1}, {1, 1}, {1, 1}, 1}, hw);
  // Double convolution of the integers is exact (|sums| < 2^53); HALF_UP shift by 8.
  const at::Tensor acc = at::conv2d(x.to(at::kDouble) * 16, w.to(at::kDouble) * 64, {}, 1, 1);
  const at::Tensor q = at::clamp(at::floor((acc + 128) / 256), -128, 127);
  EXPECT_TRUE(at::equal(r.y.to(at::kDouble), q / 4));
  EXPECT_TRUE(at::equal(r.mask, (at::floor((acc + 128) / 256) >= -128) & (at::floor((acc + 128) / 256) <= 127)));
  EXPECT_EQ(r.counts[0].item<std::int64_t>(), 0);
  EXPECT_EQ(r.counts[1].item<std::int64_t>(), (~r.mask).sum().item<std::int64_t>());
}

TEST(QatOps, BackwardIsTheMaskedFloatGradient) {
  at::manual_seed(2);
  const HwOptions hw;
  const at::Tensor x = random_q({2, 3, 5, 5}, -128, 127, 5, at::kDouble).requires_grad_();
  const at::Tensor w = random_q({4, 3, 3, 3}, -128, 127, 7, at::kDouble).requires_grad_();
  const at::Tensor b = (at::rand({4}, at::kDouble) - 0.5).requires_grad_();
  const QResult r = conv2d(x, {DType::I8, 5}, w, DType::I8, {7}, b, {DType::I8, 6},
                           Conv2dArgs{{1, 1}, {0, 0}, {1, 1}, 1}, hw);
  ASSERT_TRUE(r.y.requires_grad());
  ASSERT_GT((~r.mask).sum().item<std::int64_t>(), 0);  // some outputs saturate
  const at::Tensor g = at::randn(r.y.sizes(), at::kDouble);
  r.y.backward(g);
  const at::Tensor x2 = x.detach().clone().requires_grad_();
  const at::Tensor w2 = w.detach().clone().requires_grad_();
  const at::Tensor b2 = b.detach().clone().requires_grad_();
  at::conv2d(x2, w2, b2).backward(at::where(r.mask, g, at::zeros_like(g)));
  EXPECT_TRUE(at::allclose(x.grad(), x2.grad()));
  EXPECT_TRUE(at::allclose(w.grad(), w2.grad()));
  EXPECT_TRUE(at::allclose(b.grad(), b2.grad()));
}

TEST(QatOps, QuantizeGradientIsZeroExactlyOutsideTheClip) {
  const at::Tensor x = at::linspace(-3, 3, 97, at::kFloat).requires_grad_();
  const QResult r = quantize(x, {DType::I8, 4}, HwOptions(), Clip{-16, 20});  // [-1, 1.25]
  r.y.sum().backward();
  const at::Tensor outside = ((x.detach() * 16).round() < -16) | ((x.detach() * 16).round() > 20);
  EXPECT_TRUE(at::equal(x.grad() == 0, outside));
  EXPECT_EQ(r.counts[1].item<std::int64_t>(), outside.sum().item<std::int64_t>());
}

TEST(QatOps, ErrorsNameTheArgument) {
  const at::Tensor x = random_q({1, 2, 4, 4}, -8, 7, 2);
  const at::Tensor w = random_q({2, 2, 3, 3}, -8, 7, 2);
  HwOptions no4;
  no4.supports_a4w4 = false;
  const std::string unsupported = error_of([&] {
    conv2d(x, {DType::I4, 2}, w, DType::I4, {2}, std::nullopt, {DType::I8, 0}, {}, no4);
  });
  EXPECT_NE(unsupported.find("supports_a4w4"), std::string::npos) << unsupported;
  const std::string frac = error_of([&] {
    conv2d(x, {DType::I8, 40}, w, DType::I8, {2}, std::nullopt, {DType::I8, 0}, {}, HwOptions());
  });
  EXPECT_NE(frac.find("x_frac: frac 40 is out of range [-32, 32]"), std::string::npos) << frac;
  const std::string shapes = error_of([&] {
    add(x, {DType::I8, 2}, x.reshape({1, 2, 2, 8}), {DType::I8, 2}, {DType::I8, 2}, HwOptions());
  });
  EXPECT_NE(shapes.find("dla::add: a has shape [1, 2, 4, 4] but b has shape [1, 2, 2, 8]"), std::string::npos) << shapes;
  const std::string unquantized = error_of([&] { add(x + 0.01, {DType::I8, 2}, x, {DType::I8, 2}, {DType::I8, 2}, HwOptions()); });
  EXPECT_NE(unquantized.find("a is not a quantized tensor of type i8 at frac 2"), std::string::npos) << unquantized;
  const std::string fracs = error_of([&] { concat({x, x}, 1, DType::I8, {2, 3}); });
  EXPECT_NE(fracs.find("inputs must share one frac"), std::string::npos) << fracs;
}

TEST(QatModules, ConvModuleEqualsTheOpAndCounts) {
  at::manual_seed(3);
  QConv2dOptions o(3, 4, 3);
  o.conv.padding = {1, 1};
  o.in = {DType::U8, 4};
  o.out = {DType::U8, 3};
  o.clip.lo = 0;
  QConv2d conv(o);
  const at::Tensor x = random_q({2, 3, 6, 6}, 0, 255, 4);
  const at::Tensor y = conv(x);
  const std::vector<std::int64_t> fracs = weight_fracs_for(conv->weight, DType::I8);
  const QResult wq = quantize_per_channel(conv->weight, fracs, 0, DType::I8, o.hw);
  const QResult r = conv2d(x, o.in, wq.y, DType::I8, fracs, conv->bias, o.out, o.conv, o.hw, o.clip);
  EXPECT_TRUE(at::equal(y, r.y));
  EXPECT_EQ(conv->saturations(), r.counts[1].item<std::int64_t>() + wq.counts[1].item<std::int64_t>());
  conv->reset_counts();
  EXPECT_EQ(conv->saturations(), 0);
  // The observer's fracs are the largest that keep max|w| in range.
  for (std::size_t oc = 0; oc < fracs.size(); ++oc) {
    const double m = conv->weight[static_cast<std::int64_t>(oc)].abs().max().item<double>();
    EXPECT_LE(std::ldexp(m, static_cast<int>(fracs[oc])), 127.0);
    EXPECT_GT(std::ldexp(m, static_cast<int>(fracs[oc]) + 1), 127.0);
  }
}

TEST(QatModules, LearnableScalesGetGradients) {
  at::manual_seed(4);
  QLinearOptions o(16, 5);
  o.in = {DType::I8, 4};
  o.out = {DType::I16, 6};
  o.weight.learn_scale = true;
  QLinear fc(o);
  QuantizeActOptions qa;
  qa.out = {DType::I8, 0};
  qa.calibrate = true;
  qa.learnable = true;
  QuantizeAct quant(qa);
  const at::Tensor x = at::randn({7, 16});
  const at::Tensor h = quant(x);
  EXPECT_GE(quant->frac(), 3);  // calibrated: max|x| of a normal sample is a few units
  fc->options.in.frac = quant->frac();  // a consumer's input frac is its producer's output frac
  const at::Tensor y = fc(h);
  y.square().sum().backward();
  ASSERT_TRUE(fc->weight_log2_scale.grad().defined());
  ASSERT_TRUE(quant->log2_scale.grad().defined());
  EXPECT_TRUE(at::isfinite(fc->weight_log2_scale.grad()).all().item<bool>());
  EXPECT_TRUE(fc->weight.grad().abs().sum().item<double>() > 0);
}

TEST(QatModules, ResidualBlockRunsForwardAndBackward) {
  const HwOptions hw = HwOptions::preset("small");
  QConv2dOptions c(4, 4, 3);
  c.conv.padding = {1, 1};
  c.in = {DType::U8, 4};
  c.out = {DType::I8, 4};
  c.hw = hw;
  QConv2d conv(c);
  QAddOptions ao;
  ao.a = {DType::I8, 4};
  ao.b = {DType::U8, 4};
  ao.out = {DType::U8, 4};
  ao.clip.lo = 0;
  ao.hw = hw;
  QAdd addm(ao);
  QMaxPoolOptions mo;
  mo.fmt = {DType::U8, 4};
  QMaxPool pool(mo);
  QAvgPoolOptions gp;
  gp.in = {DType::U8, 4};
  gp.out = {DType::U8, 5};
  gp.hw = hw;
  QAvgPool gap(gp);
  QConcat cat(QConcatOptions{1, {DType::U8, 5}});
  const at::Tensor x = random_q({2, 4, 8, 8}, 0, 255, 4).requires_grad_();
  const at::Tensor h = pool(addm(conv(x), x));
  const at::Tensor g = gap(h);
  const at::Tensor out = cat(std::vector<at::Tensor>{g, g});
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{2, 8, 1, 1}));
  out.sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(conv->weight.grad().defined());
}

}  // namespace
