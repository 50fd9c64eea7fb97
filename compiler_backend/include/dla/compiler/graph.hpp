// dla/compiler/graph.hpp — the compiler's graph IR: a quantized network.
//
// Each node produces one tensor (its value id is its index). Activation tensors are
// NCHW (or [N, K] for linear layers) with one dtype and one frac; weights are integers
// with one frac per output channel; biases are integers at f_x + f_w[oc].
// Requantizing ops (conv, linear, add, avg pools) carry an output dtype, frac and clip;
// max pool, concat, upsample and flatten keep their input's dtype and frac; a lut
// (nonlinear activation as a VLUT table) has an output dtype and frac but no clip.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dla/compiler/lut_tables.hpp"
#include "dla/numerics.hpp"

namespace dla::compiler {

enum class OpKind : std::uint8_t {
  kInput,
  kConv2d,
  kLinear,
  kAdd,
  kConcat,
  kMaxPool,
  kAvgPool,
  kGlobalAvgPool,
  kUpsample2x,
  kFlatten,
  kLut,
};
std::string_view op_kind_name(OpKind k);

/// Output quantization of a requantizing op: y = clamp(round_shift(.), max(T.min, clip_lo),
/// min(T.max, clip_hi)). ReLU: clip_lo = 0.
struct QuantSpec {
  DType dtype = DType::I8;
  int frac = 0;
  std::int64_t clip_lo = std::numeric_limits<std::int64_t>::min();
  std::int64_t clip_hi = std::numeric_limits<std::int64_t>::max();
};

struct ConvAttrs {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

struct PoolAttrs {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

struct Node {
  OpKind kind = OpKind::kInput;
  std::string name;
  std::vector<int> inputs;

  // The output tensor (inferred by the builder).
  DType dtype = DType::I8;
  int frac = 0;
  std::vector<std::int64_t> shape;
  std::int64_t clip_lo = std::numeric_limits<std::int64_t>::min();
  std::int64_t clip_hi = std::numeric_limits<std::int64_t>::max();

  // Conv / linear / pool attributes.
  ConvAttrs conv;  ///< conv2d; pools use kernel, stride and pads; linear uses none
  DType weight_dtype = DType::I8;
  std::vector<int> weight_frac;        ///< one per output channel
  std::vector<std::int32_t> weights;   ///< conv: [OC][C/groups][KH][KW]; linear: [OC][K]
  std::vector<std::int64_t> bias;      ///< one per output channel (may be empty: zeros)

  // Lut: the function, or the user's table (lut_activation.function == kTable).
  lut::Activation lut_activation;
  std::vector<std::int64_t> lut_table;

  std::int64_t out_channels() const { return shape.size() >= 2 ? shape[1] : 0; }
  /// Output quantization of a requantizing op.
  OutputSpec output_spec(RoundMode mode) const { return {dtype, mode, clip_lo, clip_hi}; }
};

/// A graph under construction and, once built, the unit the compiler and the reference
/// evaluator work on. Every builder call checks its arguments and throws dla::Error
/// naming the node and the problem.
class Graph {
 public:
  int input(const std::string& name, DType dtype, int frac, std::vector<std::int64_t> shape);
  int conv2d(const std::string& name, int input, std::int64_t out_channels, const ConvAttrs& attrs, DType weight_dtype,
             std::vector<std::int32_t> weights, std::vector<int> weight_frac, std::vector<std::int64_t> bias,
             const QuantSpec& out);
  int linear(const std::string& name, int input, std::int64_t out_features, DType weight_dtype,
             std::vector<std::int32_t> weights, std::vector<int> weight_frac, std::vector<std::int64_t> bias,
             const QuantSpec& out);
  int add(const std::string& name, int a, int b, const QuantSpec& out);
  int concat(const std::string& name, const std::vector<int>& inputs);
  int max_pool(const std::string& name, int input, const PoolAttrs& attrs);
  /// Average pool with zero padding counted in the window (PyTorch's count_include_pad).
  int avg_pool(const std::string& name, int input, const PoolAttrs& attrs, const QuantSpec& out);
  int global_avg_pool(const std::string& name, int input, const QuantSpec& out);
  int upsample2x(const std::string& name, int input);
  /// A nonlinear activation y = g(x) as a VLUT table (dla/compiler/lut_tables.hpp);
  /// `user_table` only for Function::kTable. The output's clip is not used.
  int lut(const std::string& name, int input, const lut::Activation& activation, std::vector<std::int64_t> user_table,
          const QuantSpec& out);
  /// [N, C, H, W] -> [N, C*H*W] in PyTorch's (c, h, w) order.
  int flatten(const std::string& name, int input);
  void mark_output(int value);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  const std::vector<int>& outputs() const { return outputs_; }
  std::vector<int> inputs() const;
  int find(const std::string& name) const;  ///< -1 when absent

 private:
  int push(Node n);
  const Node& checked(const std::string& who, int id) const;
  std::vector<Node> nodes_;
  std::vector<int> outputs_;
};

/// The VLUT table of lut node `n` whose input is `x`, for the hardware rounding mode:
/// built by dla::lut::build_table, or the node's user table. Throws dla::Error naming
/// the node when the table cannot represent the function.
std::vector<std::int16_t> lut_table_of(const Node& n, const Node& x, RoundMode mode);

}  // namespace dla::compiler
