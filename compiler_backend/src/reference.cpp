// Reference evaluator: the plainest loops that state each op, in int64.
#include "dla/compiler/reference.hpp"

#include <algorithm>

#include "dla/error.hpp"

namespace dla::compiler {
namespace {

using Tensor = HostTensor;

std::vector<std::uint64_t> ushape(const std::vector<std::int64_t>& s) { return {s.begin(), s.end()}; }

Tensor make(const Node& n) {
  Tensor t;
  t.dtype = n.dtype;
  t.frac = n.frac;
  t.shape = ushape(n.shape);
  t.values.assign(t.num_elements(), 0);
  return t;
}

/// Conv as the definition: out[n][oc][oh][ow] = sum x * w + b, then acc policy, requantize.
Tensor conv(const Node& node, const Tensor& x, const HwConfig& hw) {
  Tensor y = make(node);
  const auto& a = node.conv;
  const std::int64_t N = node.shape[0], OC = node.shape[1], OH = node.shape[2], OW = node.shape[3];
  const std::int64_t C = static_cast<std::int64_t>(x.shape[1]), H = static_cast<std::int64_t>(x.shape[2]),
                     W = static_cast<std::int64_t>(x.shape[3]);
  const std::int64_t cg = C / a.groups, og = OC / a.groups;
  const OutputSpec out = node.output_spec(hw.rounding_mode);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t oc = 0; oc < OC; ++oc) {
      const std::int64_t g = oc / og;
      const int shift = requant_shift(x.frac, node.weight_frac[static_cast<std::size_t>(oc)], node.frac);
      for (std::int64_t oh = 0; oh < OH; ++oh)
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          std::int64_t sum = node.bias[static_cast<std::size_t>(oc)];
          for (std::int64_t ci = 0; ci < cg; ++ci)
            for (std::int64_t kh = 0; kh < a.kernel_h; ++kh)
              for (std::int64_t kw = 0; kw < a.kernel_w; ++kw) {
                const std::int64_t ih = oh * a.stride_h - a.pad_top + kh * a.dilation_h;
                const std::int64_t iw = ow * a.stride_w - a.pad_left + kw * a.dilation_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const std::int64_t xv = x.values[static_cast<std::size_t>(((n * C + g * cg + ci) * H + ih) * W + iw)];
                const std::int64_t wv =
                    node.weights[static_cast<std::size_t>(((oc * cg + ci) * a.kernel_h + kh) * a.kernel_w + kw)];
                sum += xv * wv;
              }
          const std::int64_t acc = finalize_acc(sum, hw.acc_spec());
          y.values[static_cast<std::size_t>(((n * OC + oc) * OH + oh) * OW + ow)] =
              static_cast<std::int32_t>(requantize(acc, shift, out));
        }
    }
  return y;
}

Tensor pool(const Node& node, const Tensor& x, const HwConfig& hw) {
  Tensor y = make(node);
  const auto& a = node.conv;
  const bool is_max = node.kind == OpKind::kMaxPool;
  const std::int64_t N = node.shape[0], C = node.shape[1], OH = node.shape[2], OW = node.shape[3];
  const std::int64_t H = static_cast<std::int64_t>(x.shape[2]), W = static_cast<std::int64_t>(x.shape[3]);
  const std::int64_t window = std::int64_t{a.kernel_h} * a.kernel_w;
  const auto multiplier = avgpool_multiplier(window, static_cast<int>(hw.avgpool_shift));
  if (!is_max && !multiplier) {
    throw Error("node '" + node.name + "': the average-pool multiplier round(2^" + std::to_string(hw.avgpool_shift) +
                " / " + std::to_string(window) + ") does not fit 16 bits");
  }
  const int shift = avgpool_requant_shift(static_cast<int>(hw.avgpool_shift), x.frac, node.frac);
  const OutputSpec out = node.output_spec(hw.rounding_mode);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t oh = 0; oh < OH; ++oh)
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          std::int64_t best = dtype_info(x.dtype).min;
          std::int64_t sum = 0;
          for (std::int64_t kh = 0; kh < a.kernel_h; ++kh)
            for (std::int64_t kw = 0; kw < a.kernel_w; ++kw) {
              const std::int64_t ih = oh * a.stride_h - a.pad_top + kh, iw = ow * a.stride_w - a.pad_left + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // padding: skipped by max, zero in the sum
              const std::int64_t v = x.values[static_cast<std::size_t>(((n * C + c) * H + ih) * W + iw)];
              best = std::max(best, v);
              sum += v;
            }
          y.values[static_cast<std::size_t>(((n * C + c) * OH + oh) * OW + ow)] =
              static_cast<std::int32_t>(is_max ? best : avgpool(sum, *multiplier, shift, out));
        }
  return y;
}

Tensor add(const Node& node, const Tensor& a, const Tensor& b, const HwConfig& hw) {
  Tensor y = make(node);
  const AddShifts sh = add_shifts(a.frac, b.frac, node.frac);
  const OutputSpec out = node.output_spec(hw.rounding_mode);
  for (std::size_t i = 0; i < y.values.size(); ++i) {
    y.values[i] = static_cast<std::int32_t>(eltwise_add(a.values[i], b.values[i], sh, out));
  }
  return y;
}

Tensor concat(const Node& node, const std::vector<const Tensor*>& xs) {
  Tensor y = make(node);
  const std::int64_t N = node.shape[0], C = node.shape[1], HW = node.shape[2] * node.shape[3];
  std::int64_t c0 = 0;
  for (const Tensor* x : xs) {
    const auto cx = static_cast<std::int64_t>(x->shape[1]);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < cx; ++c)
        for (std::int64_t i = 0; i < HW; ++i) {
          y.values[static_cast<std::size_t>((n * C + c0 + c) * HW + i)] = x->values[static_cast<std::size_t>((n * cx + c) * HW + i)];
        }
    c0 += cx;
  }
  return y;
}

Tensor upsample(const Node& node, const Tensor& x) {
  Tensor y = make(node);
  const std::int64_t N = node.shape[0], C = node.shape[1], OH = node.shape[2], OW = node.shape[3];
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t h = 0; h < OH; ++h)
        for (std::int64_t w = 0; w < OW; ++w) {
          y.values[static_cast<std::size_t>(((n * C + c) * OH + h) * OW + w)] =
              x.values[static_cast<std::size_t>(((n * C + c) * (OH / 2) + h / 2) * (OW / 2) + w / 2)];
        }
  return y;
}

Tensor lut(const Node& node, const Node& x_node, const Tensor& x, const HwConfig& hw) {
  Tensor y = make(node);
  const std::vector<std::int16_t> table = lut_table_of(node, x_node, hw.rounding_mode);
  for (std::size_t i = 0; i < y.values.size(); ++i) {
    y.values[i] = static_cast<std::int32_t>(lut_lookup(table, x.values[i], x_node.dtype, node.dtype, hw.rounding_mode));
  }
  return y;
}

}  // namespace

std::vector<HostTensor> evaluate(const Graph& graph, const HwConfig& hw, const std::map<std::string, HostTensor>& inputs) {
  std::vector<HostTensor> values(graph.nodes().size());
  for (std::size_t id = 0; id < graph.nodes().size(); ++id) {
    const Node& node = graph.nodes()[id];
    auto in = [&](std::size_t k) -> const HostTensor& { return values[static_cast<std::size_t>(node.inputs[k])]; };
    switch (node.kind) {
      case OpKind::kInput: {
        const auto it = inputs.find(node.name);
        if (it == inputs.end()) throw Error("input '" + node.name + "' is not given");
        const HostTensor& t = it->second;
        if (t.dtype != node.dtype || t.shape != ushape(node.shape) || !t.is_consistent()) {
          throw Error("input '" + node.name + "' must be " + std::string(dtype_info(node.dtype).name) + " " +
                      shape_string(ushape(node.shape)) + " with values in range");
        }
        values[id] = t;
        values[id].frac = node.frac;
        break;
      }
      case OpKind::kConv2d: values[id] = conv(node, in(0), hw); break;
      case OpKind::kLinear: {
        HostTensor x = in(0);
        x.shape = {x.shape[0], x.shape[1], 1, 1};
        Node as_conv = node;
        as_conv.shape = {node.shape[0], node.shape[1], 1, 1};
        values[id] = conv(as_conv, x, hw);
        values[id].shape = ushape(node.shape);
        break;
      }
      case OpKind::kAdd: values[id] = add(node, in(0), in(1), hw); break;
      case OpKind::kConcat: {
        std::vector<const HostTensor*> xs;
        for (std::size_t k = 0; k < node.inputs.size(); ++k) xs.push_back(&in(k));
        values[id] = concat(node, xs);
        break;
      }
      case OpKind::kMaxPool:
      case OpKind::kAvgPool:
      case OpKind::kGlobalAvgPool: values[id] = pool(node, in(0), hw); break;
      case OpKind::kUpsample2x: values[id] = upsample(node, in(0)); break;
      case OpKind::kLut: values[id] = lut(node, graph.node(node.inputs[0]), in(0), hw); break;
      case OpKind::kFlatten:
        values[id] = in(0);
        values[id].shape = ushape(node.shape);
        break;
    }
  }
  return values;
}

}  // namespace dla::compiler
