// Graph builder: argument checks and shape inference.
#include "dla/compiler/graph.hpp"

#include <set>

#include "dla/error.hpp"

namespace dla::compiler {
namespace {

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

[[noreturn]] void fail(const std::string& node, const std::string& what) {
  throw Error("node '" + node + "': " + what);
}

void check_frac(const std::string& node, int frac, const char* what) {
  if (frac < -32 || frac > 48) fail(node, std::string(what) + " frac " + std::to_string(frac) + " is out of range [-32, 48]");
}

void check_quant(const std::string& node, const QuantSpec& q) {
  check_frac(node, q.frac, "output");
  if (q.dtype == DType::I32) fail(node, "i32 activations are not supported (accumulators only)");
  if (q.clip_lo > q.clip_hi) fail(node, "clip_lo > clip_hi");
  const OutputSpec spec{q.dtype, RoundMode::HALF_UP, q.clip_lo, q.clip_hi};
  if (spec.lo() > spec.hi()) fail(node, "the clip range does not intersect the range of the output type");
}

std::int64_t pooled(std::int64_t in, int k, int s, int pa, int pb, int d = 1) {
  return (in + pa + pb - d * (k - 1) - 1) / s + 1;
}

}  // namespace

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kInput: return "input";
    case OpKind::kConv2d: return "conv2d";
    case OpKind::kLinear: return "linear";
    case OpKind::kAdd: return "add";
    case OpKind::kConcat: return "concat";
    case OpKind::kMaxPool: return "max_pool";
    case OpKind::kAvgPool: return "avg_pool";
    case OpKind::kGlobalAvgPool: return "global_avg_pool";
    case OpKind::kUpsample2x: return "upsample2x";
    case OpKind::kFlatten: return "flatten";
    case OpKind::kLut: return "lut";
  }
  return "?";
}

int Graph::push(Node n) {
  if (n.name.empty() || n.name.size() > 255) throw Error("node names must be 1..255 characters");
  for (char c : n.name) {
    if (c < 0x20 || c > 0x7e) fail(n.name, "name must be printable ASCII");
  }
  if (find(n.name) >= 0) fail(n.name, "a node with this name already exists");
  for (auto d : n.shape) {
    if (d <= 0 || d > (std::int64_t{1} << 24)) fail(n.name, "output shape " + shape_text(n.shape) + " is invalid");
  }
  nodes_.push_back(std::move(n));
  return static_cast<int>(nodes_.size() - 1);
}

const Node& Graph::checked(const std::string& who, int id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= nodes_.size()) fail(who, "input id " + std::to_string(id) + " does not exist");
  return nodes_[static_cast<std::size_t>(id)];
}

int Graph::find(const std::string& name) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<int> Graph::inputs() const {
  std::vector<int> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].kind == OpKind::kInput) out.push_back(static_cast<int>(i));
  }
  return out;
}

int Graph::input(const std::string& name, DType dtype, int frac, std::vector<std::int64_t> shape) {
  if (shape.size() != 4 && shape.size() != 2) fail(name, "inputs are [N, C, H, W] or [N, K], got " + shape_text(shape));
  if (dtype == DType::I32) fail(name, "i32 inputs are not supported");
  check_frac(name, frac, "input");
  Node n;
  n.kind = OpKind::kInput;
  n.name = name;
  n.dtype = dtype;
  n.frac = frac;
  n.shape = std::move(shape);
  return push(std::move(n));
}

int Graph::conv2d(const std::string& name, int input_id, std::int64_t out_channels, const ConvAttrs& a,
                  DType weight_dtype, std::vector<std::int32_t> weights, std::vector<int> weight_frac,
                  std::vector<std::int64_t> bias, const QuantSpec& out) {
  const Node& x = checked(name, input_id);
  if (x.shape.size() != 4) fail(name, "conv2d needs an [N, C, H, W] input, got " + shape_text(x.shape));
  const std::int64_t c = x.shape[1];
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1) {
    fail(name, "kernel, stride and dilation must be >= 1");
  }
  if (a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) fail(name, "padding must be >= 0");
  if (a.groups < 1 || c % a.groups != 0 || out_channels % a.groups != 0 || out_channels < 1) {
    fail(name, "groups " + std::to_string(a.groups) + " must divide input channels " + std::to_string(c) +
                   " and output channels " + std::to_string(out_channels));
  }
  if (weight_dtype != DType::I8 && weight_dtype != DType::I4) fail(name, "weights must be i8 or i4");
  const std::int64_t per_oc = c / a.groups * a.kernel_h * a.kernel_w;
  if (static_cast<std::int64_t>(weights.size()) != out_channels * per_oc) {
    fail(name, "expected " + std::to_string(out_channels * per_oc) + " weights ([OC][C/groups][KH][KW]), got " +
                   std::to_string(weights.size()));
  }
  const auto winfo = dtype_info(weight_dtype);
  for (auto w : weights) {
    if (w < winfo.min || w > winfo.max) fail(name, "weight " + std::to_string(w) + " is outside " + std::string(winfo.name));
  }
  if (static_cast<std::int64_t>(weight_frac.size()) != out_channels) fail(name, "need one weight frac per output channel");
  for (int f : weight_frac) check_frac(name, f, "weight");
  if (bias.empty()) bias.assign(static_cast<std::size_t>(out_channels), 0);
  if (static_cast<std::int64_t>(bias.size()) != out_channels) fail(name, "need one bias per output channel");
  for (auto b : bias) {
    if (!fits_signed(b, 32)) fail(name, "bias " + std::to_string(b) + " does not fit in 32 bits");
  }
  check_quant(name, out);
  Node n;
  n.kind = OpKind::kConv2d;
  n.name = name;
  n.inputs = {input_id};
  n.conv = a;
  n.weight_dtype = weight_dtype;
  n.weights = std::move(weights);
  n.weight_frac = std::move(weight_frac);
  n.bias = std::move(bias);
  n.dtype = out.dtype;
  n.frac = out.frac;
  n.clip_lo = out.clip_lo;
  n.clip_hi = out.clip_hi;
  const std::int64_t oh = pooled(x.shape[2], a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom, a.dilation_h);
  const std::int64_t ow = pooled(x.shape[3], a.kernel_w, a.stride_w, a.pad_left, a.pad_right, a.dilation_w);
  if (oh < 1 || ow < 1) fail(name, "the kernel is larger than the padded input " + shape_text(x.shape));
  n.shape = {x.shape[0], out_channels, oh, ow};
  return push(std::move(n));
}

int Graph::linear(const std::string& name, int input_id, std::int64_t out_features, DType weight_dtype,
                  std::vector<std::int32_t> weights, std::vector<int> weight_frac, std::vector<std::int64_t> bias,
                  const QuantSpec& out) {
  const Node& x = checked(name, input_id);
  if (x.shape.size() != 2) fail(name, "linear needs an [N, K] input (flatten first), got " + shape_text(x.shape));
  // A linear layer is a 1x1 convolution over an [N, K, 1, 1] tensor; reuse its checks.
  Graph scratch;
  const int in = scratch.input("x", x.dtype, x.frac, {x.shape[0], x.shape[1], 1, 1});
  const int id = scratch.conv2d(name, in, out_features, ConvAttrs{}, weight_dtype, std::move(weights),
                                std::move(weight_frac), std::move(bias), out);
  Node n = scratch.nodes_[static_cast<std::size_t>(id)];
  n.kind = OpKind::kLinear;
  n.inputs = {input_id};
  n.shape = {x.shape[0], out_features};
  return push(std::move(n));
}

int Graph::add(const std::string& name, int a_id, int b_id, const QuantSpec& out) {
  const Node& a = checked(name, a_id);
  const Node& b = checked(name, b_id);
  if (a.shape != b.shape) fail(name, "add operands have shapes " + shape_text(a.shape) + " and " + shape_text(b.shape));
  check_quant(name, out);
  if (a.frac - b.frac > 31 || b.frac - a.frac > 31) fail(name, "operand fracs differ by more than 31");
  Node n;
  n.kind = OpKind::kAdd;
  n.name = name;
  n.inputs = {a_id, b_id};
  n.dtype = out.dtype;
  n.frac = out.frac;
  n.clip_lo = out.clip_lo;
  n.clip_hi = out.clip_hi;
  n.shape = a.shape;
  return push(std::move(n));
}

int Graph::concat(const std::string& name, const std::vector<int>& ids) {
  if (ids.empty()) fail(name, "concat needs at least one input");
  const Node& first = checked(name, ids[0]);
  if (first.shape.size() != 4) fail(name, "concat joins [N, C, H, W] tensors along C");
  std::int64_t channels = 0;
  for (int id : ids) {
    const Node& x = checked(name, id);
    if (x.shape.size() != 4 || x.shape[0] != first.shape[0] || x.shape[2] != first.shape[2] ||
        x.shape[3] != first.shape[3]) {
      fail(name, "input '" + x.name + "' has shape " + shape_text(x.shape) + ", incompatible with " +
                     shape_text(first.shape));
    }
    if (x.dtype != first.dtype || x.frac != first.frac) {
      fail(name, "inputs must share dtype and frac (input '" + x.name + "' is " + std::string(dtype_info(x.dtype).name) +
                     " frac " + std::to_string(x.frac) + ", '" + first.name + "' is " +
                     std::string(dtype_info(first.dtype).name) + " frac " + std::to_string(first.frac) + ")");
    }
    channels += x.shape[1];
  }
  Node n;
  n.kind = OpKind::kConcat;
  n.name = name;
  n.inputs = ids;
  n.dtype = first.dtype;
  n.frac = first.frac;
  n.shape = {first.shape[0], channels, first.shape[2], first.shape[3]};
  return push(std::move(n));
}

namespace {
Node pool_node(const Node& x, const std::string& name, const PoolAttrs& a, OpKind kind) {
  if (x.shape.size() != 4) fail(name, "pooling needs an [N, C, H, W] input, got " + shape_text(x.shape));
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1) fail(name, "kernel and stride must be >= 1");
  if (a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) fail(name, "padding must be >= 0");
  if (a.pad_top >= a.kernel_h || a.pad_bottom >= a.kernel_h || a.pad_left >= a.kernel_w || a.pad_right >= a.kernel_w) {
    fail(name, "padding must be smaller than the kernel");
  }
  Node n;
  n.kind = kind;
  n.name = name;
  n.conv.kernel_h = a.kernel_h;
  n.conv.kernel_w = a.kernel_w;
  n.conv.stride_h = a.stride_h;
  n.conv.stride_w = a.stride_w;
  n.conv.pad_top = a.pad_top;
  n.conv.pad_left = a.pad_left;
  n.conv.pad_bottom = a.pad_bottom;
  n.conv.pad_right = a.pad_right;
  const std::int64_t oh = pooled(x.shape[2], a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom);
  const std::int64_t ow = pooled(x.shape[3], a.kernel_w, a.stride_w, a.pad_left, a.pad_right);
  if (oh < 1 || ow < 1) fail(name, "the window is larger than the padded input " + shape_text(x.shape));
  n.shape = {x.shape[0], x.shape[1], oh, ow};
  n.dtype = x.dtype;
  n.frac = x.frac;
  return n;
}
}  // namespace

int Graph::max_pool(const std::string& name, int input_id, const PoolAttrs& attrs) {
  Node n = pool_node(checked(name, input_id), name, attrs, OpKind::kMaxPool);
  n.inputs = {input_id};
  return push(std::move(n));
}

int Graph::avg_pool(const std::string& name, int input_id, const PoolAttrs& attrs, const QuantSpec& out) {
  check_quant(name, out);
  Node n = pool_node(checked(name, input_id), name, attrs, OpKind::kAvgPool);
  n.inputs = {input_id};
  n.dtype = out.dtype;
  n.frac = out.frac;
  n.clip_lo = out.clip_lo;
  n.clip_hi = out.clip_hi;
  return push(std::move(n));
}

int Graph::global_avg_pool(const std::string& name, int input_id, const QuantSpec& out) {
  const Node& x = checked(name, input_id);
  if (x.shape.size() != 4) fail(name, "global_avg_pool needs an [N, C, H, W] input");
  PoolAttrs a;
  a.kernel_h = static_cast<int>(x.shape[2]);
  a.kernel_w = static_cast<int>(x.shape[3]);
  a.stride_h = a.stride_w = 1;
  const int id = avg_pool(name, input_id, a, out);
  nodes_[static_cast<std::size_t>(id)].kind = OpKind::kGlobalAvgPool;
  return id;
}

int Graph::upsample2x(const std::string& name, int input_id) {
  const Node& x = checked(name, input_id);
  if (x.shape.size() != 4) fail(name, "upsample2x needs an [N, C, H, W] input");
  Node n;
  n.kind = OpKind::kUpsample2x;
  n.name = name;
  n.inputs = {input_id};
  n.dtype = x.dtype;
  n.frac = x.frac;
  n.shape = {x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3]};
  return push(std::move(n));
}

int Graph::flatten(const std::string& name, int input_id) {
  const Node& x = checked(name, input_id);
  if (x.shape.size() != 4) fail(name, "flatten needs an [N, C, H, W] input");
  Node n;
  n.kind = OpKind::kFlatten;
  n.name = name;
  n.inputs = {input_id};
  n.dtype = x.dtype;
  n.frac = x.frac;
  n.shape = {x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]};
  return push(std::move(n));
}

int Graph::lut(const std::string& name, int input_id, const lut::Activation& activation,
               std::vector<std::int64_t> user_table, const QuantSpec& out) {
  check_quant(name, out);
  const Node& x = checked(name, input_id);
  if (activation.function != lut::Function::kTable && !user_table.empty()) {
    fail(name, "a table is given for " + std::string(lut::function_name(activation.function)) +
                   ", which computes its own (only function \"table\" takes one)");
  }
  Node n;
  n.kind = OpKind::kLut;
  n.name = name;
  n.inputs = {input_id};
  n.dtype = out.dtype;
  n.frac = out.frac;
  n.shape = x.shape;
  n.lut_activation = activation;
  n.lut_table = std::move(user_table);
  lut_table_of(n, x, RoundMode::HALF_UP);  // refuses an unrepresentable table here, naming the node
  return push(std::move(n));
}

std::vector<std::int16_t> lut_table_of(const Node& n, const Node& x, RoundMode mode) {
  try {
    if (n.lut_activation.function == lut::Function::kTable) return lut::user_table(n.lut_table, x.dtype, n.dtype);
    return lut::build_table(n.lut_activation, {x.dtype, x.frac, n.dtype, n.frac, mode});
  } catch (const lut::LutError& e) {
    fail(n.name, e.what());
  }
}

void Graph::mark_output(int value) {
  checked("output", value);
  for (int o : outputs_) {
    if (o == value) return;
  }
  outputs_.push_back(value);
}

}  // namespace dla::compiler
