// train_qat.cpp — quantization-aware training with the dlasim C++ modules.
//
// A small residual CNN learns a synthetic task (which colour channel of an image is
// brightest) while every forward computes the accelerator's integers: u8/i8 activations
// at power-of-two fracs, i8 per-channel weights (one layer with learnable log2 scales), an
// int32 accumulator, HALF_UP requantization, ReLU as the requantizer's clip, the
// hardware's 1/N in the global average pool. Gradients are straight-through.
//
// Usage: dla_qat_example [--steps N] [--preset small|default|large]
// Prints the loss, the accuracy and the overflow/saturation counts, and exits non-zero if
// the loss did not go down.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/sgd.h>

#include "dla/qat/modules.hpp"

namespace {

using dla::DType;
using dla::qat::QFormat;

constexpr int kAct = 4;  // frac of the hidden activations: u8 covers [0, 16)

struct NetImpl : torch::nn::Module {
  explicit NetImpl(const dla::qat::HwOptions& hw) {
    dla::qat::QuantizeActOptions qa;
    qa.out = {DType::I8, 5};
    qa.hw = hw;
    quant = register_module("quant", dla::qat::QuantizeAct(qa));

    dla::qat::QConv2dOptions c1(3, 8, 3);
    c1.conv.padding = {1, 1};
    c1.in = {DType::I8, 5};
    c1.out = {DType::U8, kAct};
    c1.clip.lo = 0;  // ReLU
    c1.weight.learn_scale = true;
    c1.hw = hw;
    conv1 = register_module("conv1", dla::qat::QConv2d(c1));

    dla::qat::QMaxPoolOptions mp;
    mp.pool.kernel_size = {2, 2};
    mp.fmt = {DType::U8, kAct};
    pool1 = register_module("pool1", dla::qat::QMaxPool(mp));

    dla::qat::QConv2dOptions c2(8, 8, 3);
    c2.conv.padding = {1, 1};
    c2.in = {DType::U8, kAct};
    c2.out = {DType::I8, kAct};
    c2.hw = hw;
    conv2 = register_module("conv2", dla::qat::QConv2d(c2));

    dla::qat::QAddOptions ad;
    ad.a = {DType::I8, kAct};
    ad.b = {DType::U8, kAct};
    ad.out = {DType::U8, kAct};
    ad.clip.lo = 0;
    ad.hw = hw;
    add = register_module("add", dla::qat::QAdd(ad));

    dla::qat::QAvgPoolOptions gp;  // global
    gp.in = {DType::U8, kAct};
    gp.out = {DType::U8, 6};
    gp.hw = hw;
    gap = register_module("gap", dla::qat::QAvgPool(gp));

    dla::qat::QLinearOptions fc_opt(8, 3);
    fc_opt.in = {DType::U8, 6};
    fc_opt.out = {DType::I16, 8};
    fc_opt.hw = hw;
    fc = register_module("fc", dla::qat::QLinear(fc_opt));
  }

  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor h = pool1(conv1(quant(x)));
    const at::Tensor r = add(conv2(h), h);
    return fc(gap(r).flatten(1));
  }

  std::int64_t overflows() {
    return conv1->overflows() + conv2->overflows() + fc->overflows();
  }
  std::int64_t saturations() {
    return quant->saturations() + conv1->saturations() + conv2->saturations() + add->saturations() +
           gap->saturations() + fc->saturations();
  }

  dla::qat::QuantizeAct quant{nullptr};
  dla::qat::QConv2d conv1{nullptr}, conv2{nullptr};
  dla::qat::QMaxPool pool1{nullptr};
  dla::qat::QAdd add{nullptr};
  dla::qat::QAvgPool gap{nullptr};
  dla::qat::QLinear fc{nullptr};
};
TORCH_MODULE(Net);

/// Images whose label is the channel with the largest mean.
std::pair<at::Tensor, at::Tensor> batch(std::int64_t n) {
  at::Tensor x = at::rand({n, 3, 16, 16}) * 2.0 - 1.0;
  const at::Tensor label = at::randint(0, 3, {n}, at::kLong);
  x = x + at::one_hot(label, 3).to(at::kFloat).reshape({n, 3, 1, 1}) * 0.5;
  return {x, label};
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 60;
  std::string preset = "default";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else if (a == "--preset" && i + 1 < argc) {
      preset = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--steps N] [--preset small|default|large]\n", argv[0]);
      return 2;
    }
  }
  at::manual_seed(0);
  Net net(dla::qat::HwOptions::preset(preset));
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));

  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    auto [x, label] = batch(32);
    opt.zero_grad();
    const at::Tensor logits = net->forward(x);
    const at::Tensor loss = at::cross_entropy_loss(logits, label);
    loss.backward();
    opt.step();
    const double l = loss.item<double>();
    if (step == 0) first = l;
    last = l;
    if (step % 10 == 0 || step == steps - 1) {
      const double acc = logits.argmax(1).eq(label).to(at::kFloat).mean().item<double>();
      std::printf("step %3d  loss %.4f  accuracy %.2f\n", step, l, acc);
    }
  }
  std::printf("overflows %lld, saturations %lld\n", static_cast<long long>(net->overflows()),
              static_cast<long long>(net->saturations()));
  if (!std::isfinite(last) || (steps >= 20 && !(last < first))) {
    std::fprintf(stderr, "loss did not decrease: %.4f -> %.4f\n", first, last);
    return 1;
  }
  return 0;
}
