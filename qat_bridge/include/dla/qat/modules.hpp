// dla/qat/modules.hpp — LibTorch C++ modules over the bit-exact ops (ops.hpp), for
// quantization-aware training with the C++ frontend. The Python package `dlasim.nn` has
// the same modules with the same semantics.
//
// Every module registers two int64 buffers, `overflow_count` and `saturation_count`,
// that its forward adds the op's counts to (reset_counts() zeroes them). Fracs are plain
// integers in the options: a module's input frac must be the frac its producer outputs.
//
// Weights (QConv2d, QLinear) are quantized per output channel, symmetric, to i4 or i8:
//   * weight_fracs given: those fracs;
//   * weight_fracs empty, learn_weight_scale false: every forward picks, per channel, the
//     largest frac f with max|w| * 2^f <= type max (an observer);
//   * learn_weight_scale true: a parameter `weight_log2_scale` (one per output channel,
//     initialized from the observer on the first forward) trained with the TQT gradient.
//
// Example: qat_bridge/examples/train_qat.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "dla/qat/hw_options.hpp"
#include "dla/qat/ops.hpp"

namespace dla::qat {

/// Largest frac f in [kFracMin, kFracMax] with max_abs * 2^f <= max of `t` (kFracMax for 0).
int frac_for_max(double max_abs, DType t);

/// frac_for_max of each output channel (dimension 0) of a weight tensor.
std::vector<std::int64_t> weight_fracs_for(const at::Tensor& weight, DType t);

/// Base of the modules: the counters.
class QModuleImpl : public torch::nn::Module {
 public:
  QModuleImpl();
  void reset_counts();
  std::int64_t overflows() const;
  std::int64_t saturations() const;

 protected:
  void count(const at::Tensor& counts);
  at::Tensor overflow_count_, saturation_count_;
};

struct QuantizeActOptions {
  QFormat out{DType::I8, 0};
  bool calibrate = false;  ///< set the frac from max|x| of the first batch (out.frac: initial)
  bool learnable = false;  ///< learn the scale (parameter `log2_scale`)
  Clip clip;
  HwOptions hw;
};

/// Quantizes reals to an activation type: the network input, or any float tensor.
class QuantizeActImpl : public QModuleImpl {
 public:
  explicit QuantizeActImpl(QuantizeActOptions options);
  at::Tensor forward(const at::Tensor& x);
  int frac() const;  ///< the frac of the output (from log2_scale when learnable)
  QuantizeActOptions options;
  at::Tensor log2_scale;  ///< defined when learnable

 private:
  at::Tensor frac_;        ///< int64 buffer "frac": the frac (calibration sets it)
  at::Tensor calibrated_;  ///< bool buffer "calibrated": a loaded module keeps its frac
};
TORCH_MODULE(QuantizeAct);

struct QWeightOptions {
  DType dtype = DType::I8;
  std::vector<std::int64_t> fracs;  ///< empty: observer (see above)
  bool learn_scale = false;
};

struct QConv2dOptions {
  QConv2dOptions(std::int64_t in_c, std::int64_t out_c, std::int64_t k)
      : in_channels(in_c), out_channels(out_c), kernel_size{k, k} {}
  std::int64_t in_channels, out_channels;
  std::array<std::int64_t, 2> kernel_size;
  Conv2dArgs conv;
  bool bias = true;
  QFormat in{DType::U8, 0};
  QFormat out{DType::U8, 0};
  QWeightOptions weight;
  Clip clip;  ///< ReLU: clip.lo = 0
  HwOptions hw;
};

/// Shared weight handling of QConv2d and QLinear.
class QMacImpl : public QModuleImpl {
 public:
  at::Tensor weight, bias;
  at::Tensor weight_log2_scale;  ///< defined when learn_scale
  /// The quantized weight reals and their fracs, as the forward uses them.
  std::pair<at::Tensor, std::vector<std::int64_t>> quantized_weight();

 protected:
  void init_weight(const QWeightOptions& w, const HwOptions& hw, std::vector<std::int64_t> shape,
                   std::int64_t fan_in, bool with_bias);
  QWeightOptions wopt_;
  HwOptions whw_;
  at::Tensor scale_initialized_;  ///< bool buffer (learn_scale): a loaded module keeps its scales
};

class QConv2dImpl : public QMacImpl {
 public:
  explicit QConv2dImpl(QConv2dOptions options);
  at::Tensor forward(const at::Tensor& x);
  QConv2dOptions options;
};
TORCH_MODULE(QConv2d);

struct QLinearOptions {
  QLinearOptions(std::int64_t in_f, std::int64_t out_f) : in_features(in_f), out_features(out_f) {}
  std::int64_t in_features, out_features;
  bool bias = true;
  QFormat in{DType::I8, 0};
  QFormat out{DType::I8, 0};
  QWeightOptions weight;
  Clip clip;
  HwOptions hw;
};

class QLinearImpl : public QMacImpl {
 public:
  explicit QLinearImpl(QLinearOptions options);
  at::Tensor forward(const at::Tensor& x);
  QLinearOptions options;
};
TORCH_MODULE(QLinear);

struct QAddOptions {
  QFormat a{DType::I8, 0}, b{DType::I8, 0}, out{DType::I8, 0};
  Clip clip;
  HwOptions hw;
};

class QAddImpl : public QModuleImpl {
 public:
  explicit QAddImpl(QAddOptions options);
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b);
  QAddOptions options;
};
TORCH_MODULE(QAdd);

struct QAvgPoolOptions {
  std::optional<Pool2dArgs> pool;  ///< nullopt: global average pool
  QFormat in{DType::U8, 0}, out{DType::U8, 0};
  Clip clip;
  HwOptions hw;
};

class QAvgPoolImpl : public QModuleImpl {
 public:
  explicit QAvgPoolImpl(QAvgPoolOptions options);
  at::Tensor forward(const at::Tensor& x);
  QAvgPoolOptions options;
};
TORCH_MODULE(QAvgPool);

struct QMaxPoolOptions {
  Pool2dArgs pool;
  QFormat fmt{DType::U8, 0};
};

class QMaxPoolImpl : public torch::nn::Module {
 public:
  explicit QMaxPoolImpl(QMaxPoolOptions options);
  at::Tensor forward(const at::Tensor& x);
  QMaxPoolOptions options;
};
TORCH_MODULE(QMaxPool);

struct QConcatOptions {
  std::int64_t dim = 1;
  QFormat fmt{DType::U8, 0};
};

class QConcatImpl : public torch::nn::Module {
 public:
  explicit QConcatImpl(QConcatOptions options);
  at::Tensor forward(const std::vector<at::Tensor>& xs);
  QConcatOptions options;
};
TORCH_MODULE(QConcat);

}  // namespace dla::qat
