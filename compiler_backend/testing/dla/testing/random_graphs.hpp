// Random quantized graphs for differential testing: random shapes, strides, pads,
// dilations, groups, precisions, fracs, clips, and chains with adds, concats, pools,
// upsampling and a flatten + linear head.
#pragma once

#include <algorithm>
#include <map>
#include <random>
#include <string>

#include "dla/compiler/graph.hpp"
#include "dla/hw_config.hpp"
#include "dla/tensor.hpp"

namespace dla::testing {

using compiler::ConvAttrs;
using compiler::Graph;
using compiler::PoolAttrs;
using compiler::QuantSpec;

/// `preset` with a random rounding mode, overflow policy and accumulator width: the
/// configs the random graphs are checked on.
inline HwConfig random_config(const std::string& preset, std::mt19937_64& rng) {
  HwConfig hw = HwConfig::preset(preset);
  hw.rounding_mode = static_cast<RoundMode>(rng() % kNumRoundModes);
  hw.overflow_policy = (rng() % 2) ? OverflowPolicy::WRAP : OverflowPolicy::SATURATE_FINAL;
  const std::int64_t acc[] = {16, 24, 32, 32};
  hw.acc_bits = acc[rng() % 4];
  hw.validate();
  return hw;
}

/// The seed of the differential tests' `i`-th random graph on `preset` (a different
/// sequence per preset).
inline std::uint64_t graph_seed(const std::string& preset, std::int64_t i) {
  return 1000 + static_cast<std::uint64_t>(i) * 7919 + preset.size();
}

class RandomGraphBuilder {
 public:
  explicit RandomGraphBuilder(std::uint64_t seed) : rng_(seed) {}

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(int percent) { return uniform(0, 99) < percent; }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[static_cast<std::size_t>(uniform(0, static_cast<int>(v.size()) - 1))]; }

  /// A random activation type; 4-bit types only where the channel count is even.
  DType act_type(std::int64_t channels) {
    std::vector<DType> types = {DType::I8, DType::U8, DType::I8, DType::I16};
    if (channels % 2 == 0) {
      types.push_back(DType::I4);
      types.push_back(DType::U4);
    }
    return pick(types);
  }

  QuantSpec quant(std::int64_t channels, int frac) {
    QuantSpec q;
    q.dtype = act_type(channels);
    q.frac = frac;
    const int c = uniform(0, 9);
    if (c < 3) q.clip_lo = 0;  // ReLU
    if (c == 3) {              // ReLU6-like
      q.clip_lo = 0;
      q.clip_hi = uniform(1, 100);
    }
    if (c == 4) {
      q.clip_lo = -uniform(0, 50);
      q.clip_hi = uniform(0, 50);
    }
    return q;
  }

  /// Weight frac for a layer summing `terms` products: the bit length of a typical sum
  /// less 6, so that with an output frac near the input's the requantized values use
  /// the type's range and fracs do not drift along a chain.
  int weight_frac(std::int64_t terms, DType in_type, DType w_type) {
    const int in_bits = dtype_info(in_type).bits, w_bits = dtype_info(w_type).bits;
    int log_terms = 0;
    while ((std::int64_t{1} << log_terms) < terms) ++log_terms;
    return in_bits + w_bits - 2 + log_terms / 2 - 6 + uniform(-1, 1);
  }
  int out_frac(int f_in) { return f_in + uniform(-2, 2); }

  int conv(Graph& g, const std::string& name, int x, bool allow_groups = true) {
    const auto& xn = g.node(x);
    const std::int64_t C = xn.shape[1], H = xn.shape[2], W = xn.shape[3];
    ConvAttrs a;
    a.kernel_h = uniform(1, std::min<int>(5, static_cast<int>(H)));
    a.kernel_w = chance(70) ? a.kernel_h : uniform(1, std::min<int>(5, static_cast<int>(W)));
    a.stride_h = uniform(1, 3);
    a.stride_w = chance(70) ? a.stride_h : uniform(1, 3);
    a.dilation_h = a.dilation_w = (chance(20) && H >= 5 && W >= 5) ? 2 : 1;
    a.pad_top = uniform(0, 2);
    a.pad_bottom = chance(70) ? a.pad_top : uniform(0, 2);
    a.pad_left = chance(70) ? a.pad_top : uniform(0, 2);
    a.pad_right = chance(70) ? a.pad_left : uniform(0, 2);
    // Keep the output at least 1x1.
    while ((H + a.pad_top + a.pad_bottom - a.dilation_h * (a.kernel_h - 1) - 1) < 0) ++a.pad_bottom;
    while ((W + a.pad_left + a.pad_right - a.dilation_w * (a.kernel_w - 1) - 1) < 0) ++a.pad_right;
    std::int64_t OC = uniform(1, 12);
    const bool four_bit_in = dtype_info(xn.dtype).bits == 4;
    if (allow_groups && chance(25)) {
      a.groups = static_cast<int>(C);  // depthwise
      OC = C;
    } else if (allow_groups && chance(15) && C % 2 == 0 && !four_bit_in) {
      a.groups = 2;
      OC = 2 * uniform(1, 4);
    }
    const QuantSpec q0 = quant(OC, 0);
    // Weight type: i4 with 4-bit activations, i8 with i16, either with 8-bit ones.
    DType wt = DType::I8;
    if (four_bit_in) wt = DType::I4;
    else if (xn.dtype != DType::I16 && chance(35)) wt = DType::I4;
    QuantSpec q = q0;
    // 4-bit outputs need even channel counts (also per group).
    if (dtype_info(q.dtype).bits == 4 && (OC % 2 != 0 || (a.groups > 1 && !(a.groups == C && OC == C) && (OC / a.groups) % 2 != 0))) {
      q.dtype = DType::I8;
    }
    const std::int64_t per_oc = C / a.groups * a.kernel_h * a.kernel_w;
    std::vector<std::int32_t> w(static_cast<std::size_t>(OC * per_oc));
    const auto wi = dtype_info(wt);
    for (auto& v : w) v = static_cast<std::int32_t>(uniform(static_cast<int>(wi.min), static_cast<int>(wi.max)));
    std::vector<int> wf(static_cast<std::size_t>(OC));
    for (auto& f : wf) f = weight_frac(per_oc, xn.dtype, wt);
    std::vector<std::int64_t> bias(static_cast<std::size_t>(OC));
    for (auto& b : bias) b = chance(80) ? uniform(-3000, 3000) : 0;
    q.frac = out_frac(xn.frac);
    return g.conv2d(name, x, OC, a, wt, w, wf, bias, q);
  }

  /// A random graph with one input and one or two outputs.
  Graph graph(std::map<std::string, HostTensor>& inputs) {
    Graph g;
    const std::int64_t N = uniform(1, 2), C = uniform(1, 8), H = uniform(3, 18), W = uniform(3, 18);
    const DType in_type = act_type(C);
    const int x = g.input("x", in_type, uniform(0, 6), {N, C, H, W});
    HostTensor t;
    t.dtype = in_type;
    t.frac = g.node(x).frac;
    t.shape = {static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(C), static_cast<std::uint64_t>(H),
               static_cast<std::uint64_t>(W)};
    const auto info = dtype_info(in_type);
    const int lo = static_cast<int>(std::max<std::int64_t>(info.min, -2000)), hi = static_cast<int>(std::min<std::int64_t>(info.max, 2000));
    for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(uniform(lo, hi));
    inputs["x"] = t;

    int cur = conv(g, "conv0", x);
    const int ops = uniform(1, 5);
    for (int i = 1; i <= ops; ++i) {
      const std::string name = "op" + std::to_string(i);
      const compiler::Node c = g.node(cur);  // a copy: adding nodes moves the node vector
      const std::int64_t ch = c.shape[1], h = c.shape[2], w = c.shape[3];
      switch (uniform(0, 6)) {
        case 0: cur = conv(g, name, cur); break;
        case 1: {  // residual: two convs of the same input with 'same' geometry, added
          ConvAttrs same;
          same.kernel_h = same.kernel_w = 3;
          same.pad_top = same.pad_bottom = same.pad_left = same.pad_right = 1;
          auto branch = [&](const std::string& n) {
            const auto& xn = g.node(cur);
            DType wt = dtype_info(xn.dtype).bits == 4 ? DType::I4 : DType::I8;
            std::vector<std::int32_t> wv(static_cast<std::size_t>(ch * ch * 9));
            for (auto& v : wv) v = uniform(wt == DType::I4 ? -8 : -128, wt == DType::I4 ? 7 : 127);
            QuantSpec q = quant(ch, out_frac(xn.frac));
            return g.conv2d(n, cur, ch, same, wt, wv,
                            std::vector<int>(static_cast<std::size_t>(ch), weight_frac(ch * 9, xn.dtype, wt)), {}, q);
          };
          const int a = branch(name + "_a");
          const int b = branch(name + "_b");
          const int fa = g.node(a).frac, fb = g.node(b).frac;
          cur = g.add(name, a, b, quant(ch, std::min(fa, fb) - uniform(0, 2)));
          break;
        }
        case 2: {  // concat of two branches of the same input
          const int a = conv(g, name + "_a", cur, false);
          const compiler::Node an = g.node(a);
          // The second branch: same geometry, same output type and frac as the first.
          const compiler::Node src = g.node(cur);
          ConvAttrs geo = an.conv;
          geo.groups = 1;
          const std::int64_t oc = 2 * uniform(1, 3);
          DType wt = dtype_info(src.dtype).bits == 4 ? DType::I4 : an.weight_dtype;
          if (src.dtype == DType::I16) wt = DType::I8;
          std::vector<std::int32_t> wv(static_cast<std::size_t>(oc * src.shape[1] * geo.kernel_h * geo.kernel_w));
          for (auto& v : wv) v = uniform(wt == DType::I4 ? -8 : -128, wt == DType::I4 ? 7 : 127);
          QuantSpec q;
          q.dtype = an.dtype;
          q.frac = an.frac;
          const int b = g.conv2d(name + "_b", cur, oc, geo, wt, wv,
                                 std::vector<int>(static_cast<std::size_t>(oc),
                                                  weight_frac(src.shape[1] * geo.kernel_h * geo.kernel_w, src.dtype, wt)),
                                 {}, q);
          if (dtype_info(an.dtype).bits == 4 && an.shape[1] % 2 != 0) {
            cur = b;
          } else {
            cur = g.concat(name, {a, b});
          }
          break;
        }
        case 3: {
          PoolAttrs p;
          p.kernel_h = uniform(1, std::min<int>(5, static_cast<int>(h)));
          p.kernel_w = uniform(1, std::min<int>(5, static_cast<int>(w)));
          p.stride_h = uniform(1, 3);
          p.stride_w = uniform(1, 3);
          p.pad_top = uniform(0, p.kernel_h - 1);
          p.pad_bottom = uniform(0, p.kernel_h - 1);
          p.pad_left = uniform(0, p.kernel_w - 1);
          p.pad_right = uniform(0, p.kernel_w - 1);
          if (chance(50)) {
            cur = g.max_pool(name, cur, p);
          } else {
            cur = g.avg_pool(name, cur, p, quant(ch, c.frac + uniform(-1, 2)));
          }
          break;
        }
        case 4:
          if (h * w <= 200) {
            cur = g.upsample2x(name, cur);
          } else {
            cur = conv(g, name, cur);
          }
          break;
        case 5: cur = g.global_avg_pool(name, cur, quant(ch, c.frac + uniform(0, 2))); break;
        default: cur = conv(g, name, cur); break;
      }
    }
    if (chance(40)) g.mark_output(cur);
    // A flatten + linear head.
    const compiler::Node last = g.node(cur);
    const int flat = g.flatten("flatten", cur);
    const std::int64_t K = last.shape[1] * last.shape[2] * last.shape[3];
    if (K <= 4096) {
      const std::int64_t out = uniform(1, 10);
      DType wt = dtype_info(last.dtype).bits == 4 ? DType::I4 : (last.dtype == DType::I16 ? DType::I8 : pick(std::vector<DType>{DType::I8, DType::I4}));
      std::vector<std::int32_t> wv(static_cast<std::size_t>(out * K));
      for (auto& v : wv) v = uniform(wt == DType::I4 ? -8 : -128, wt == DType::I4 ? 7 : 127);
      QuantSpec q = quant(out, out_frac(last.frac));
      if (dtype_info(q.dtype).bits == 4 && out % 2) q.dtype = DType::I8;
      std::vector<std::int64_t> bias(static_cast<std::size_t>(out));
      for (auto& b : bias) b = uniform(-5000, 5000);
      const int fc = g.linear("fc", flat, out, wt, wv,
                              std::vector<int>(static_cast<std::size_t>(out), weight_frac(K, last.dtype, wt)), bias, q);
      g.mark_output(fc);
    } else {
      g.mark_output(flat);
    }
    return g;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace dla::testing
