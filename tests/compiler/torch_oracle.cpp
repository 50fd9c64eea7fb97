// tests/compiler/torch_oracle.cpp — libtorch's quantized conv2d and linear as an external
// oracle for graph -> compile -> emulator (and for the reference evaluator).
//
// Every random layer is run twice:
//   torch  quantized::conv2d_prepack + quantized::conv2d(.new) / conv2d_relu, or
//          quantized::linear_prepack + quantized::linear / linear_relu, on each quantized
//          engine libtorch was built with (this Debian build: ONEDNN and QNNPACK);
//   dla    the same layer as a dla::compiler::Graph, compiled for the `small` and `default`
//          presets with rounding_mode HALF_EVEN, run by the emulator; also the reference
//          evaluator.
// and every output element must be equal.
//
// Why this is exact: all scales are powers of two (x: 2^-f_x, weights: 2^-f_w[oc] per
// tensor or per channel, output: 2^-f_y) and the float bias is b * 2^-(f_x + f_w[oc]) with
// b an integer, so torch's int32 bias (quantized with scale s_x * s_w[oc]) is b exactly.
// Torch requantizes acc * (s_x * s_w / s_y) in fp32 and rounds half to even; the multiplier
// is a power of two and every |acc| stays below 2^24 (the layer generator bounds the worst
// case), so the fp32 product is exact and equals round_shift(acc, f_x + f_w - f_y,
// HALF_EVEN). The tests also run the reference evaluator in HALF_UP and require it to
// disagree with torch somewhere (the ties are really exercised: HALF_UP would fail).
//
// DLA activation types map to torch's quantized types through the zero point:
//   u8 <-> quint8 zp 0        i8 <-> quint8 zp 128 (int_repr = value + 128)
//   i8 <-> qint8  zp 0        u8 <-> qint8  zp -128 (output only)
// Padding agrees: torch pads with the zero point, i.e. the real value 0, as the DLA does.
// ReLU (conv2d_relu / linear_relu) is clip_lo = 0. ONEDNN takes quint8 inputs only; qint8
// inputs run where the engine accepts them (probed at run time). On a CPU without VNNI
// oneDNN is not exact for full-range u8 x s8 (see Caps); the test detects that, says so
// and keeps to weights in [-64, 64] for that engine, leaving the comparison exact.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/isa.hpp"
#include "dla/program.hpp"
#include "dla/tensor.hpp"

namespace {

using dla::DType;
using dla::HostTensor;
using i64 = std::int64_t;

constexpr i64 kAccLimit = i64{1} << 24;  // |acc| < 2^24: exact in fp32
constexpr int kConvLayersPerRun = 50;
constexpr int kLinearLayersPerRun = 16;

// ---------------------------------------------------------------------------------------
// Torch side
// ---------------------------------------------------------------------------------------

std::vector<c10::IValue> call_op(const char* name, const char* overload, std::vector<c10::IValue> stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  op.callBoxed(&stack);
  return stack;
}

const char* engine_name(c10::QEngine e) {
  switch (e) {
    case c10::QEngine::FBGEMM: return "FBGEMM";
    case c10::QEngine::QNNPACK: return "QNNPACK";
    case c10::QEngine::ONEDNN: return "ONEDNN";
    default: return "NoQEngine";
  }
}

bool engine_supported(c10::QEngine e) {
  const auto& engines = at::globalContext().supportedQEngines();
  return std::find(engines.begin(), engines.end(), e) != engines.end();
}

/// How a DLA activation type is represented as a torch quantized tensor.
struct Repr {
  DType dla;
  at::ScalarType qtype;
  i64 zero_point;  ///< int_repr = dla value + zero_point
};

std::string repr_name(const Repr& r) {
  return std::string(dla::dtype_info(r.dla).name) + "<->" + (r.qtype == at::kQUInt8 ? "quint8" : "qint8") + " zp " +
         std::to_string(r.zero_point);
}

at::Tensor make_quantized_activation(const HostTensor& x, const Repr& r, int frac) {
  std::vector<i64> shape(x.shape.begin(), x.shape.end());
  at::Tensor raw = at::empty(shape, r.qtype == at::kQUInt8 ? at::kByte : at::kChar);
  if (r.qtype == at::kQUInt8) {
    auto* p = raw.data_ptr<std::uint8_t>();
    for (std::size_t i = 0; i < x.values.size(); ++i) p[i] = static_cast<std::uint8_t>(x.values[i] + r.zero_point);
  } else {
    auto* p = raw.data_ptr<std::int8_t>();
    for (std::size_t i = 0; i < x.values.size(); ++i) p[i] = static_cast<std::int8_t>(x.values[i] + r.zero_point);
  }
  return at::_make_per_tensor_quantized_tensor(raw, std::ldexp(1.0, -frac), r.zero_point);
}

/// Weights [OC, ...] int8 with scales 2^-f_w: per tensor when every f_w is equal and
/// `per_channel` is false, else per channel (axis 0).
at::Tensor make_quantized_weights(const std::vector<std::int32_t>& w, std::vector<i64> shape, const std::vector<int>& f_w,
                                  bool per_channel) {
  at::Tensor raw = at::empty(shape, at::kChar);
  auto* p = raw.data_ptr<std::int8_t>();
  for (std::size_t i = 0; i < w.size(); ++i) p[i] = static_cast<std::int8_t>(w[i]);
  if (!per_channel) return at::_make_per_tensor_quantized_tensor(raw, std::ldexp(1.0, -f_w[0]), 0);
  at::Tensor scales = at::empty({shape[0]}, at::kDouble);
  for (i64 oc = 0; oc < shape[0]; ++oc) scales.data_ptr<double>()[oc] = std::ldexp(1.0, -f_w[static_cast<std::size_t>(oc)]);
  return at::_make_per_channel_quantized_tensor(raw, scales, at::zeros({shape[0]}, at::kLong), 0);
}

/// The float bias torch wants: b * 2^-(f_x + f_w[oc]) (exact: |b| < 2^24).
c10::optional<at::Tensor> make_bias(const std::vector<i64>& bias, bool has_bias, int f_x, const std::vector<int>& f_w) {
  if (!has_bias) return c10::nullopt;
  at::Tensor b = at::empty({static_cast<i64>(bias.size())}, at::kFloat);
  for (std::size_t oc = 0; oc < bias.size(); ++oc) {
    b.data_ptr<float>()[oc] = static_cast<float>(std::ldexp(static_cast<double>(bias[oc]), -(f_x + f_w[oc])));
  }
  return b;
}

/// int_repr of a torch output mapped back to DLA values (int_repr - zero point).
std::vector<std::int32_t> dla_values(const at::Tensor& q, const Repr& r) {
  const at::Tensor ir = q.int_repr().contiguous().to(at::kInt);
  const auto* p = ir.data_ptr<std::int32_t>();
  std::vector<std::int32_t> out(p, p + ir.numel());
  for (auto& v : out) v = static_cast<std::int32_t>(v - r.zero_point);
  return out;
}

// ---------------------------------------------------------------------------------------
// Random layers
// ---------------------------------------------------------------------------------------

i64 uniform(std::mt19937_64& rng, i64 lo, i64 hi) { return std::uniform_int_distribution<i64>(lo, hi)(rng); }
bool coin(std::mt19937_64& rng, double p = 0.5) { return std::bernoulli_distribution(p)(rng); }

struct Layer {
  bool linear = false;
  i64 N = 1, C = 1, H = 1, W = 1, OC = 1;  // linear: [N, C] -> [N, OC]
  dla::compiler::ConvAttrs conv;
  Repr in{DType::U8, at::kQUInt8, 0}, out{DType::U8, at::kQUInt8, 0};
  int f_x = 0, f_y = 0;
  std::vector<int> f_w;
  bool per_channel = false, has_bias = false, relu = false;
  std::vector<std::int32_t> weights;
  std::vector<i64> bias;
  HostTensor x;

  std::string describe() const {
    std::ostringstream s;
    if (linear) {
      s << "linear [" << N << "," << C << "] -> " << OC;
    } else {
      s << "conv2d [" << N << "," << C << "," << H << "," << W << "] -> " << OC << " k" << conv.kernel_h << "x"
        << conv.kernel_w << " s" << conv.stride_h << " p" << conv.pad_top << " d" << conv.dilation_h << " g"
        << conv.groups;
    }
    s << ", in " << repr_name(in) << " f_x " << f_x << ", out " << repr_name(out) << " f_y " << f_y << ", f_w "
      << (per_channel ? "per-channel [" : "per-tensor [");
    for (std::size_t i = 0; i < f_w.size() && i < 8; ++i) s << (i ? "," : "") << f_w[i];
    s << (f_w.size() > 8 ? ",...]" : "]") << (has_bias ? ", bias" : ", no bias") << (relu ? ", relu" : "");
    return s.str();
  }
};

/// Per output channel, the 90th percentile of |acc| (acc = sum x * w + b, exact in double).
std::vector<double> channel_magnitudes(const Layer& L) {
  std::vector<i64> xshape(L.x.shape.begin(), L.x.shape.end());
  at::Tensor x = at::empty(xshape, at::kDouble);
  for (std::size_t i = 0; i < L.x.values.size(); ++i) x.data_ptr<double>()[i] = L.x.values[i];
  const i64 per_oc = static_cast<i64>(L.weights.size()) / L.OC;
  at::Tensor w = at::empty({L.OC, per_oc}, at::kDouble);
  for (std::size_t i = 0; i < L.weights.size(); ++i) w.data_ptr<double>()[i] = L.weights[i];
  at::Tensor b = at::empty({L.OC}, at::kDouble);
  for (std::size_t i = 0; i < L.bias.size(); ++i) b.data_ptr<double>()[i] = static_cast<double>(L.bias[i]);
  at::Tensor acc;
  if (L.linear) {
    acc = at::linear(x, w, b).t();  // [OC, N]
  } else {
    const auto& a = L.conv;
    acc = at::conv2d(x, w.view({L.OC, L.C / a.groups, a.kernel_h, a.kernel_w}), b, {a.stride_h, a.stride_w},
                     {a.pad_top, a.pad_left}, {a.dilation_h, a.dilation_w}, a.groups)
              .transpose(0, 1);  // [OC, N, OH, OW]
  }
  acc = acc.reshape({L.OC, -1}).abs().contiguous();
  std::vector<double> out(static_cast<std::size_t>(L.OC));
  for (i64 oc = 0; oc < L.OC; ++oc) {
    const double* p = acc[oc].data_ptr<double>();
    std::vector<double> v(p, p + acc.size(1));
    const auto k = static_cast<std::ptrdiff_t>(v.size() * 9 / 10);
    std::nth_element(v.begin(), v.begin() + k, v.end());
    out[static_cast<std::size_t>(oc)] = v[static_cast<std::size_t>(k)];
  }
  return out;
}

/// What the current engine runs exactly, probed at run time, not assumed:
///  - which qint8-activation layers it accepts (ONEDNN: none; QNNPACK routes qint8 to
///    XNNPACK, whose linear takes per-tensor weights only);
///  - whether it saturates pairs of u8 x s8 products in 16 bits. oneDNN does on CPUs
///    without VNNI (its AVX2 / AVX-512 int8 kernels use vpmaddubsw; reproduced here with
///    ONEDNN_MAX_CPU_ISA=AVX2 or AVX512_CORE: 255 * 127 + 255 * 127 = 64770 comes out as
///    32767). PyTorch's own x86 default (reduce_range) avoids it with 7-bit activations;
///    this test instead limits the weights to [-64, 64] on such an engine (|pair| <=
///    255 * 64 * 2 = 32640), where torch is exact again, and says so.
struct Caps {
  bool conv_qint8 = false;
  bool linear_qint8_per_tensor = false;
  bool linear_qint8_per_channel = false;
  bool pair_saturation = false;
};

constexpr i64 kPairSafeWeightMax = 64;

/// Fills weights, bias, fracs and input of `L` (shape, groups and representations set).
void fill_layer(std::mt19937_64& rng, Layer& L, const Caps& caps) {
  const i64 per_oc = L.C / L.conv.groups * L.conv.kernel_h * L.conv.kernel_w;
  const i64 OC = L.OC;
  const i64 bias_max = L.has_bias ? (i64{1} << uniform(rng, 4, 16)) : 0;
  // Worst case |acc| <= K * 255 * w_max + |b| (255 bounds a raw u8 value too, in case an
  // engine accumulates before subtracting the zero point) must stay below 2^24.
  const i64 w_max = std::min<i64>(caps.pair_saturation ? kPairSafeWeightMax : 128,
                                   (kAccLimit - 1 - bias_max) / (per_oc * 255));
  EXPECT_GE(w_max, 1) << "layer too large for the fp32-exact oracle: " << L.describe();
  // Value ranges: full, narrow weights, narrow inputs, or both narrow (small sums, hence
  // small shifts, where rounding ties are frequent).
  const int range_mode = static_cast<int>(uniform(rng, 0, 19));  // 0..8 full, 9..12 w, 13..15 x, 16..19 both
  const bool narrow_w = (range_mode >= 9 && range_mode <= 12) || range_mode >= 16;
  const bool narrow_x = range_mode >= 13;
  const i64 w_hi = narrow_w ? std::min<i64>(w_max, 7) : w_max;
  L.weights.resize(static_cast<std::size_t>(OC * per_oc));
  for (auto& w : L.weights) w = static_cast<std::int32_t>(uniform(rng, w_hi == 128 ? -128 : -w_hi, std::min<i64>(w_hi, 127)));

  L.bias.assign(static_cast<std::size_t>(OC), 0);
  if (L.has_bias) {
    for (auto& b : L.bias) b = uniform(rng, -bias_max, bias_max);
  }

  // Input values over the representation's range.
  const auto info = dla::dtype_info(L.in.dla);
  L.x.dtype = L.in.dla;
  L.x.shape = L.linear ? std::vector<std::uint64_t>{std::uint64_t(L.N), std::uint64_t(L.C)}
                       : std::vector<std::uint64_t>{std::uint64_t(L.N), std::uint64_t(L.C), std::uint64_t(L.H),
                                                    std::uint64_t(L.W)};
  L.x.values.resize(L.x.num_elements());
  for (auto& v : L.x.values) {
    v = static_cast<std::int32_t>(narrow_x ? uniform(rng, std::max<i64>(info.min, -4), 4) : uniform(rng, info.min, info.max));
  }

  // Fracs: aim each channel's accumulators at the output range. The exact accumulators
  // (double precision; only used to choose fracs) give per-channel magnitudes m[oc] (90th
  // percentile of |acc|); the shift s[oc] = f_x + f_w[oc] - f_y maps m[oc] to about a
  // quarter of the output range, jittered by a bit, and some layers run "hot" (3 bits
  // less shift: heavy saturation). Small accumulators give s <= 0 (left shifts).
  const std::vector<double> m = channel_magnitudes(L);
  const double target = static_cast<double>(dla::dtype_info(L.out.dla).max - dla::dtype_info(L.out.dla).min) / 4.0;
  const int hot = coin(rng, 0.15) ? -3 : 0;
  std::vector<int> s(static_cast<std::size_t>(OC));
  for (std::size_t oc = 0; oc < s.size(); ++oc) {
    s[oc] = static_cast<int>(std::lround(std::log2(std::max(m[oc], 1.0) / target))) + hot;
  }
  L.f_x = static_cast<int>(uniform(rng, 0, 6));
  L.x.frac = L.f_x;
  if (L.per_channel) {
    for (auto& v : s) v += static_cast<int>(uniform(rng, -1, 1));
    const int s_min = *std::min_element(s.begin(), s.end());
    L.f_y = L.f_x - s_min + static_cast<int>(uniform(rng, 0, 2));
    L.f_w.resize(s.size());
    for (std::size_t oc = 0; oc < s.size(); ++oc) L.f_w[oc] = s[oc] - L.f_x + L.f_y;  // >= 0
  } else {
    std::vector<int> sorted = s;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
    const int s_common = sorted[sorted.size() / 2] + static_cast<int>(uniform(rng, -1, 1));
    L.f_w.assign(s.size(), static_cast<int>(uniform(rng, 0, 8)));
    L.f_y = L.f_x + L.f_w[0] - s_common;
  }
}

/// Input and output representations; qint8 ones only where the engine takes them.
void choose_reprs(std::mt19937_64& rng, Layer& L, bool qint8_ok) {
  const bool use_qint8 = coin(rng) && qint8_ok;
  if (use_qint8) {
    L.in = {DType::I8, at::kQInt8, 0};
    L.out = coin(rng) ? Repr{DType::I8, at::kQInt8, 0} : Repr{DType::U8, at::kQInt8, -128};
  } else {
    L.in = coin(rng) ? Repr{DType::U8, at::kQUInt8, 0} : Repr{DType::I8, at::kQUInt8, 128};
    L.out = coin(rng) ? Repr{DType::U8, at::kQUInt8, 0} : Repr{DType::I8, at::kQUInt8, 128};
  }
}

Layer random_conv(std::mt19937_64& rng, const Caps& caps) {
  Layer L;
  L.N = uniform(rng, 1, 2);
  const int kind = static_cast<int>(uniform(rng, 0, 3));  // 0,1 dense, 2 grouped, 3 depthwise
  const int k = std::array<int, 3>{1, 3, 5}[static_cast<std::size_t>(uniform(rng, 0, 2))];
  L.conv.kernel_h = L.conv.kernel_w = k;
  L.conv.stride_h = L.conv.stride_w = static_cast<int>(uniform(rng, 1, 2));
  L.conv.dilation_h = L.conv.dilation_w = k > 1 && coin(rng, 0.3) ? 2 : 1;
  const int reach = (k - 1) * L.conv.dilation_h;
  const int pad = static_cast<int>(uniform(rng, 0, reach / 2 + (coin(rng, 0.2) ? 1 : 0)));
  L.conv.pad_top = L.conv.pad_bottom = L.conv.pad_left = L.conv.pad_right = pad;
  if (kind == 3) {
    L.C = uniform(rng, 1, 32);
    L.conv.groups = static_cast<int>(L.C);
    L.OC = L.C * uniform(rng, 1, 2);
  } else if (kind == 2) {
    L.conv.groups = static_cast<int>(uniform(rng, 2, 4));
    L.C = L.conv.groups * uniform(rng, 1, 8);
    L.OC = L.conv.groups * uniform(rng, 1, 8);
  } else if (coin(rng, 0.2)) {  // wide: input channels split on the small preset
    L.C = uniform(rng, 32, 64);
    L.OC = uniform(rng, 16, 48);
  } else {
    L.C = uniform(rng, 1, 24);
    L.OC = uniform(rng, 1, 24);
  }
  const i64 min_side = std::max<i64>(1, reach + 1 - 2 * pad);
  const i64 extent = L.C > 24 ? 10 : 22;
  L.H = uniform(rng, min_side, min_side + extent);
  L.W = uniform(rng, min_side, min_side + extent);
  L.per_channel = coin(rng);
  L.has_bias = coin(rng, 0.75);
  L.relu = coin(rng, 0.2);
  choose_reprs(rng, L, caps.conv_qint8);
  fill_layer(rng, L, caps);
  return L;
}

Layer random_linear(std::mt19937_64& rng, const Caps& caps) {
  Layer L;
  L.linear = true;
  L.N = uniform(rng, 1, 8);
  L.C = coin(rng, 0.7) ? uniform(rng, 1, 64) : uniform(rng, 65, 320);
  L.OC = uniform(rng, 1, 48);
  L.per_channel = coin(rng);
  L.has_bias = coin(rng, 0.75);
  L.relu = coin(rng, 0.2);
  choose_reprs(rng, L, L.per_channel ? caps.linear_qint8_per_channel : caps.linear_qint8_per_tensor);
  fill_layer(rng, L, caps);
  return L;
}

/// Torch's output for `L` as DLA values, on the current quantized engine.
std::vector<std::int32_t> run_torch(const Layer& L) {
  const at::Tensor qx = make_quantized_activation(L.x, L.in, L.f_x);
  const auto bias = make_bias(L.bias, L.has_bias, L.f_x, L.f_w);
  const double y_scale = std::ldexp(1.0, -L.f_y);
  at::Tensor y;
  if (L.linear) {
    const at::Tensor qw = make_quantized_weights(L.weights, {L.OC, L.C}, L.f_w, L.per_channel);
    auto packed = call_op("quantized::linear_prepack", "", {qw, bias});
    y = call_op(L.relu ? "quantized::linear_relu" : "quantized::linear", "", {qx, packed[0], y_scale, L.out.zero_point})[0]
            .toTensor();
  } else {
    const auto& a = L.conv;
    const at::Tensor qw =
        make_quantized_weights(L.weights, {L.OC, L.C / a.groups, a.kernel_h, a.kernel_w}, L.f_w, L.per_channel);
    const std::vector<i64> stride{a.stride_h, a.stride_w}, padding{a.pad_top, a.pad_left},
        dilation{a.dilation_h, a.dilation_w};
    auto packed = call_op("quantized::conv2d_prepack", "", {qw, bias, stride, padding, dilation, i64{a.groups}});
    y = call_op(L.relu ? "quantized::conv2d_relu" : "quantized::conv2d", "new",
                {qx, packed[0], y_scale, L.out.zero_point})[0]
            .toTensor();
  }
  EXPECT_EQ(y.scalar_type(), L.out.qtype);
  EXPECT_EQ(y.q_zero_point(), L.out.zero_point);
  return dla_values(y.contiguous(), L.out);
}

// ---------------------------------------------------------------------------------------
// DLA side
// ---------------------------------------------------------------------------------------

dla::compiler::Graph build_graph(const Layer& L) {
  dla::compiler::Graph g;
  std::vector<i64> shape(L.x.shape.begin(), L.x.shape.end());
  const int x = g.input("x", L.in.dla, L.f_x, shape);
  dla::compiler::QuantSpec q;
  q.dtype = L.out.dla;
  q.frac = L.f_y;
  if (L.relu) q.clip_lo = 0;
  const int y = L.linear ? g.linear("y", x, L.OC, DType::I8, L.weights, L.f_w, L.bias, q)
                         : g.conv2d("y", x, L.OC, L.conv, DType::I8, L.weights, L.f_w, L.bias, q);
  g.mark_output(y);
  return g;
}

dla::HwConfig config(const std::string& preset, dla::RoundMode mode) {
  dla::HwConfig hw = dla::HwConfig::preset(preset);
  hw.rounding_mode = mode;
  hw.validate();
  return hw;
}

HostTensor run_reference(const dla::compiler::Graph& g, const dla::HwConfig& hw, const HostTensor& x) {
  return dla::compiler::evaluate(g, hw, {{"x", x}}).at(static_cast<std::size_t>(g.find("y")));
}

/// How the compiler cut a layer: requantize instructions (one per output tile) and MAC
/// instructions (more than one per tile when input channels are split).
struct Tiling {
  std::size_t requants = 0, macs = 0;
};

HostTensor run_emulator(const dla::compiler::Graph& g, const dla::HwConfig& hw, const HostTensor& x, Tiling* tiling) {
  const dla::Program program = dla::compiler::compile(g, hw);
  for (const auto& insn : program.instructions) {
    tiling->requants += std::holds_alternative<dla::isa::Requant>(insn) ? 1 : 0;
    tiling->macs += std::holds_alternative<dla::isa::Mac>(insn) ? 1 : 0;
  }
  auto dev = dla::sim::make_emulator(hw);
  dev->load(program);
  dev->set_input("x", x);
  dev->run();
  return dev->output("y");
}

/// Number of elements that differ (0 also requires equal sizes); the first few go to `why`.
std::size_t count_diffs(const std::vector<std::int32_t>& torch_y, const HostTensor& got, std::string* why) {
  if (got.values.size() != torch_y.size()) {
    if (why) *why = "size " + std::to_string(got.values.size()) + " vs torch " + std::to_string(torch_y.size());
    return std::max<std::size_t>(1, torch_y.size());
  }
  std::size_t bad = 0;
  std::ostringstream s;
  for (std::size_t i = 0; i < torch_y.size(); ++i) {
    if (got.values[i] != torch_y[i]) {
      if (bad < 6) s << "\n    element " << i << ": dla " << got.values[i] << ", torch " << torch_y[i];
      ++bad;
    }
  }
  if (why) *why = s.str();
  return bad;
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

bool torch_accepts(bool linear, bool per_channel) {
  Layer L;
  L.linear = linear;
  L.C = L.OC = 1;
  L.in = {DType::I8, at::kQInt8, 0};
  L.out = L.in;
  L.per_channel = per_channel;
  L.f_w = {0};
  L.weights = {1};
  L.bias = {0};
  L.x.dtype = DType::I8;
  L.x.shape = linear ? std::vector<std::uint64_t>{1, 1} : std::vector<std::uint64_t>{1, 1, 1, 1};
  L.x.values = {3};
  try {
    const auto y = run_torch(L);
    return y.size() == 1 && y[0] == 3;
  } catch (const c10::Error&) {
    return false;
  }
}

/// True when torch computes 255 * 127 + 255 * 127 (a 1x1 conv or a linear layer over two
/// channels, x = 255 as quint8 zp 0, w = 127) as anything but 64770: with output scale
/// 2^9 the exact result is round(64770 / 512 = 126.504) = 127; a 16-bit pair sum (32767)
/// gives 64.
bool torch_saturates_pairs(bool linear) {
  Layer L;
  L.linear = linear;
  L.C = 2;
  L.OC = 1;
  L.in = {DType::U8, at::kQUInt8, 0};
  L.out = L.in;
  L.f_w = {0};
  L.f_y = -9;
  L.weights = {127, 127};
  L.bias = {0};
  L.x.dtype = DType::U8;
  L.x.shape = linear ? std::vector<std::uint64_t>{1, 2} : std::vector<std::uint64_t>{1, 2, 1, 1};
  L.x.values = {255, 255};
  const auto y = run_torch(L);
  return !(y.size() == 1 && y[0] == 127);
}

Caps probe_caps() {
  Caps c;
  c.pair_saturation = torch_saturates_pairs(false) || torch_saturates_pairs(true);
  c.conv_qint8 = torch_accepts(false, false) && torch_accepts(false, true);
  c.linear_qint8_per_tensor = torch_accepts(true, false);
  c.linear_qint8_per_channel = torch_accepts(true, true);
  return c;
}

const std::array<c10::QEngine, 3> kEngines = {c10::QEngine::ONEDNN, c10::QEngine::QNNPACK, c10::QEngine::FBGEMM};

/// The engines of kEngines this libtorch was built with, by name (evaluated when the
/// tests are generated, so an engine that is not built in makes no test at all).
std::vector<std::string> available_engines() {
  std::vector<std::string> out;
  for (auto e : kEngines) {
    if (engine_supported(e)) out.push_back(engine_name(e));
  }
  return out;
}

c10::QEngine engine_by_name(const std::string& name) {
  for (auto e : kEngines) {
    if (name == engine_name(e)) return e;
  }
  throw std::runtime_error("unknown quantized engine " + name);
}

using EngineParam = std::tuple<std::string, std::string>;  // engine, preset

class TorchQuantizedOracle : public ::testing::TestWithParam<EngineParam> {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    at::globalContext().setQEngine(engine_by_name(std::get<0>(GetParam())));
  }
};

TEST_P(TorchQuantizedOracle, RandomConvAndLinearLayersMatchEveryElement) {
  const auto& [name, preset] = GetParam();
  const c10::QEngine engine = engine_by_name(name);
  const Caps caps = probe_caps();
  std::cout << "[ engine   ] " << engine_name(engine) << " takes qint8 activations in: conv2d "
            << (caps.conv_qint8 ? "yes" : "no") << ", linear per-tensor " << (caps.linear_qint8_per_tensor ? "yes" : "no")
            << ", linear per-channel " << (caps.linear_qint8_per_channel ? "yes" : "no") << "\n";
  if (caps.pair_saturation) {
    std::cout << "[ engine   ] " << engine_name(engine)
              << " saturates u8 x s8 product pairs in 16 bits on this CPU (no VNNI): 255*127*2 is not exact. "
                 "Weights are limited to [-" << kPairSafeWeightMax << ", " << kPairSafeWeightMax
              << "] for this engine, where it is exact.\n";
  }
  const dla::HwConfig hw = config(preset, dla::RoundMode::HALF_EVEN);
  const dla::HwConfig hw_half_up = config(preset, dla::RoundMode::HALF_UP);
  std::mt19937_64 rng(0x7041 + static_cast<std::uint64_t>(engine) * 131 + (preset == "small" ? 7 : 0));

  int layers = 0, failed = 0, tiled = 0, split_k = 0, left_shift = 0, small_shift = 0;
  std::size_t elements = 0, half_up_diffs = 0, clamped = 0;
  for (int i = 0; i < kConvLayersPerRun + kLinearLayersPerRun; ++i) {
    const Layer L = i < kConvLayersPerRun ? random_conv(rng, caps) : random_linear(rng, caps);
    SCOPED_TRACE("layer " + std::to_string(i) + ": " + L.describe());
    std::vector<std::int32_t> want;
    try {
      want = run_torch(L);
    } catch (const c10::Error& e) {
      const std::string msg = e.what();
      ADD_FAILURE() << "torch refused the layer: " << msg.substr(0, msg.find('\n'));
      ++failed;
      continue;
    }
    const auto g = build_graph(L);
    std::string why;
    const std::size_t ref_bad = count_diffs(want, run_reference(g, hw, L.x), &why);
    EXPECT_EQ(ref_bad, 0u) << "reference evaluator (HALF_EVEN) differs from torch:" << why;
    Tiling tiling;
    const std::size_t emu_bad = count_diffs(want, run_emulator(g, hw, L.x, &tiling), &why);
    EXPECT_EQ(emu_bad, 0u) << "emulator (HALF_EVEN, preset " << preset << ") differs from torch:" << why;
    if (ref_bad != 0 || emu_bad != 0) ++failed;
    half_up_diffs += count_diffs(want, run_reference(g, hw_half_up, L.x), nullptr);
    const auto info = dla::dtype_info(L.out.dla);
    for (auto v : want) clamped += (v == info.min || v == info.max) ? 1 : 0;
    elements += want.size();
    tiled += tiling.requants > 1 ? 1 : 0;
    split_k += tiling.macs > tiling.requants ? 1 : 0;
    int s_min = 99;
    for (int fw : L.f_w) s_min = std::min(s_min, L.f_x + fw - L.f_y);
    left_shift += s_min <= 0 ? 1 : 0;
    small_shift += s_min >= 1 && s_min <= 3 ? 1 : 0;
    ++layers;
  }
  std::cout << "[ oracle   ] " << engine_name(engine) << " / " << preset << ": " << layers << " layers ("
            << kConvLayersPerRun << " conv2d, " << kLinearLayersPerRun << " linear), " << elements
            << " elements compared, " << failed << " layers differ; " << clamped
            << " at the ends of the output type (u8: every negative accumulator); " << tiled << " layers in several output tiles, " << split_k
            << " with split input channels; " << left_shift << " layers with a shift <= 0, " << small_shift
            << " with a smallest shift in 1..3; HALF_UP would differ from torch at " << half_up_diffs << " elements\n";
  EXPECT_EQ(failed, 0);
  // The comparison discriminates the rounding mode: HALF_UP disagrees with torch on ties.
  EXPECT_GT(half_up_diffs, 0u) << "no rounding ties were exercised";
  if (preset == "small") {
    EXPECT_GT(tiled, 0) << "the small preset should force tiling";
  }
}

std::string param_name(const ::testing::TestParamInfo<EngineParam>& p) {
  return std::get<0>(p.param) + "_" + std::get<1>(p.param);
}

INSTANTIATE_TEST_SUITE_P(Torch, TorchQuantizedOracle,
                         ::testing::Combine(::testing::ValuesIn(available_engines()),
                                            ::testing::Values(std::string("small"), std::string("default"))),
                         param_name);

// At least one of the engines the issue names is available, so the oracle really runs.
TEST(TorchQuantizedOracleSetup, OnednnOrQnnpackIsAvailable) {
  EXPECT_TRUE(engine_supported(c10::QEngine::ONEDNN) || engine_supported(c10::QEngine::QNNPACK));
}

}  // namespace
