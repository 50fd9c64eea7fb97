// tests/compiler/onnx_oracle.cpp — the ONNX backend node tests ConvInteger and
// MatMulInteger (Debian's libonnx-testdata) as an external oracle for graph -> compile ->
// emulator (and for the reference evaluator).
//
// Each case's model.onnx is read with tests/compiler/onnx_reader.hpp: the node's op type,
// input names and attributes (pads, strides, dilations, kernel_shape, group, auto_pad) come
// from the file, and so do the inputs and the expected output (test_data_set_0).
//
// ONNX semantics (checked against the data: test_convinteger_with_padding's corner output
// is 1 = (2 - 1) * 1, so padded taps contribute nothing):
//   ConvInteger:   y = conv(x - x_zp, w - w_zp), padding the *shifted* input with zeros,
//                  i.e. the raw input x with x_zp.
//   MatMulInteger: Y = (A - a_zp) (B - b_zp).
// Both outputs are int32. The DLA's weights are symmetric i8, its bias an int32 at
// f_x + f_w, its output requantized into an activation type; with every frac 0 and output
// type i16 the requantize shift is 0, so the output is the exact accumulator whenever it
// fits i16 (checked: every expected value of these cases does; a case whose values do
// not is reported as a failure, never approximated).
//
// Each case runs in two exact formulations:
//   kFold   x stays in its ONNX type (u8 / i8); w' = w - w_zp (must fit i8);
//           bias[oc] = -x_zp * sum_k w'[oc, k]. The fold subtracts x_zp at every tap, so
//           padded taps must hold x_zp too: the host pads x with x_zp and the graph
//           convolves with padding 0. (Folding with the graph's zero padding would be wrong
//           at the borders; NaiveFoldWithZeroPaddingIsWrong shows the data catches that.)
//   kShift  x' = x - x_zp as an i16 tensor (u8 - zp spans [-255, 255]), the graph's own
//           zero padding = ONNX pads, no bias: exercises padding and the i16 x i8 mode.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/tensor.hpp"
#include "onnx_reader.hpp"

#ifndef DLA_ONNX_NODE_DIR
#define DLA_ONNX_NODE_DIR "/usr/share/libonnx-testdata/data/node"
#endif

namespace {

namespace fs = std::filesystem;
using dla::DType;
using dla::HostTensor;
using dla::compiler::Graph;
using i64 = std::int64_t;

const fs::path kNodeDir = DLA_ONNX_NODE_DIR;

// ---------------------------------------------------------------------------------------
// Loading a backend node test
// ---------------------------------------------------------------------------------------

struct OnnxCase {
  std::string name;
  onnx_reader::Model model;
  std::map<std::string, onnx_reader::Tensor> values;  ///< graph inputs and initializers by name
  onnx_reader::Tensor expected;                        ///< output_0.pb
};

void check_against_value_info(const onnx_reader::Tensor& t, const onnx_reader::ValueInfo& vi, const std::string& what) {
  if (t.data_type != vi.elem_type) {
    throw std::runtime_error(what + ": data type " + onnx_reader::data_type_name(t.data_type) + ", the model declares " +
                             onnx_reader::data_type_name(vi.elem_type));
  }
  if (t.dims.size() != vi.dims.size()) throw std::runtime_error(what + ": rank differs from the model's declaration");
  for (std::size_t i = 0; i < t.dims.size(); ++i) {
    if (vi.dims[i] >= 0 && vi.dims[i] != t.dims[i]) throw std::runtime_error(what + ": shape differs from the model's");
  }
}

OnnxCase load_case(const std::string& name) {
  OnnxCase c;
  c.name = name;
  const fs::path dir = kNodeDir / name;
  c.model = onnx_reader::load_model((dir / "model.onnx").string());
  for (const auto& init : c.model.initializers) c.values[init.name] = init;
  // input_N.pb binds the N-th graph input that is not an initializer.
  std::vector<const onnx_reader::ValueInfo*> feeds;
  for (const auto& vi : c.model.inputs) {
    if (c.values.count(vi.name) == 0) feeds.push_back(&vi);
  }
  const fs::path data = dir / "test_data_set_0";
  for (std::size_t i = 0;; ++i) {
    const fs::path file = data / ("input_" + std::to_string(i) + ".pb");
    if (!fs::exists(file)) {
      if (i != feeds.size()) {
        throw std::runtime_error(name + ": " + std::to_string(i) + " input files for " + std::to_string(feeds.size()) +
                                 " graph inputs");
      }
      break;
    }
    if (i >= feeds.size()) throw std::runtime_error(name + ": more input files than graph inputs");
    onnx_reader::Tensor t = onnx_reader::load_tensor(file.string());
    if (!t.name.empty() && t.name != feeds[i]->name) {
      throw std::runtime_error(file.string() + " is named '" + t.name + "', the graph input is '" + feeds[i]->name + "'");
    }
    t.name = feeds[i]->name;
    check_against_value_info(t, *feeds[i], file.string());
    c.values[t.name] = t;
  }
  if (c.model.outputs.size() != 1) throw std::runtime_error(name + ": expected one graph output");
  c.expected = onnx_reader::load_tensor((data / "output_0.pb").string());
  check_against_value_info(c.expected, c.model.outputs[0], name + " output_0.pb");
  if (c.model.nodes.size() != 1) throw std::runtime_error(name + ": expected a single-node graph");
  if (c.model.nodes[0].outputs.size() != 1 || c.model.nodes[0].outputs[0] != c.model.outputs[0].name) {
    throw std::runtime_error(name + ": the node does not produce the graph output");
  }
  return c;
}

/// The node's optional input `index`, or nullptr when absent (missing or named "").
const onnx_reader::Tensor* optional_input(const OnnxCase& c, std::size_t index) {
  const auto& node = c.model.nodes[0];
  if (index >= node.inputs.size() || node.inputs[index].empty()) return nullptr;
  auto it = c.values.find(node.inputs[index]);
  if (it == c.values.end()) throw std::runtime_error(c.name + ": no value for input '" + node.inputs[index] + "'");
  return &it->second;
}

const onnx_reader::Tensor& required_input(const OnnxCase& c, std::size_t index) {
  const onnx_reader::Tensor* t = optional_input(c, index);
  if (t == nullptr) throw std::runtime_error(c.name + ": required input " + std::to_string(index) + " is missing");
  return *t;
}

DType dla_activation_type(int onnx_type, const std::string& what) {
  if (onnx_type == onnx_reader::kUint8) return DType::U8;
  if (onnx_type == onnx_reader::kInt8) return DType::I8;
  throw std::runtime_error(what + ": " + onnx_reader::data_type_name(onnx_type) + " is not an 8-bit integer type");
}

/// A zero point: per-tensor (a scalar or one element) or one value per `count` slots.
std::vector<i64> zero_points(const onnx_reader::Tensor* zp, i64 count, const std::string& what) {
  if (zp == nullptr) return std::vector<i64>(static_cast<std::size_t>(count), 0);
  if (zp->values.size() == 1) return std::vector<i64>(static_cast<std::size_t>(count), zp->values[0]);
  if (static_cast<i64>(zp->values.size()) == count && zp->dims.size() == 1) return zp->values;
  throw std::runtime_error(what + ": " + std::to_string(zp->values.size()) + " zero points for " + std::to_string(count));
}

// ---------------------------------------------------------------------------------------
// Building the DLA graph
// ---------------------------------------------------------------------------------------

enum class Formulation { kFold, kShift };

const char* formulation_name(Formulation f) { return f == Formulation::kFold ? "fold" : "shift"; }
void PrintTo(Formulation f, std::ostream* os) { *os << formulation_name(f); }  // for gtest

struct DlaProblem {
  Graph graph;
  std::string input_name, output_name;
  HostTensor input;
  std::vector<std::uint64_t> expected_shape;
  std::vector<i64> expected;
};

std::vector<std::uint64_t> ushape(const std::vector<i64>& dims) { return {dims.begin(), dims.end()}; }

i64 checked_i8_weight(i64 w, i64 zp, const std::string& what) {
  const i64 v = w - zp;
  if (v < -128 || v > 127) {
    throw std::runtime_error(what + ": weight " + std::to_string(w) + " - zero point " + std::to_string(zp) + " = " +
                             std::to_string(v) + " does not fit the DLA's symmetric i8 weights");
  }
  return v;
}

/// Every expected value must fit the i16 output (requantize shift 0); anything else cannot
/// be expressed exactly and is refused.
void check_fits_i16(const std::vector<i64>& expected, const std::string& what) {
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] < -32768 || expected[i] > 32767) {
      throw std::runtime_error(what + ": expected value " + std::to_string(expected[i]) + " at " + std::to_string(i) +
                               " does not fit the i16 output; the DLA cannot produce this int32 exactly");
    }
  }
}

dla::compiler::QuantSpec exact_i16_output() {
  dla::compiler::QuantSpec q;
  q.dtype = DType::I16;
  q.frac = 0;
  return q;
}

/// ConvInteger -> input + conv2d. `naive_fold` builds the deliberately wrong fold (bias
/// fold with the graph's zero padding) for the negative test.
DlaProblem build_conv_integer(const OnnxCase& c, Formulation form, bool naive_fold = false) {
  const auto& node = c.model.nodes[0];
  if (node.op_type != "ConvInteger" || !(node.domain.empty() || node.domain == "ai.onnx")) {
    throw std::runtime_error(c.name + ": expected an ai.onnx ConvInteger node, got " + node.op_type);
  }
  const onnx_reader::Tensor& x = required_input(c, 0);
  const onnx_reader::Tensor& w = required_input(c, 1);
  if (x.dims.size() != 4 || w.dims.size() != 4) throw std::runtime_error(c.name + ": only 2-D convolutions are mapped");
  const i64 N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const i64 OC = w.dims[0], CG = w.dims[1], KH = w.dims[2], KW = w.dims[3];
  const std::vector<i64> x_zp = zero_points(optional_input(c, 2), 1, c.name + " x_zero_point");
  const std::vector<i64> w_zp = zero_points(optional_input(c, 3), OC, c.name + " w_zero_point");
  const DType x_type = dla_activation_type(x.data_type, c.name + " x");
  if (w.data_type != onnx_reader::kUint8 && w.data_type != onnx_reader::kInt8) throw std::runtime_error(c.name + ": w type");

  const std::string auto_pad = node.string_attr("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET") throw std::runtime_error(c.name + ": auto_pad " + auto_pad + " is not mapped");
  const i64 group = node.int_attr("group", 1);
  const auto kernel = node.ints("kernel_shape", {KH, KW});
  const auto pads = node.ints("pads", {0, 0, 0, 0});  // [top, left, bottom, right]
  const auto strides = node.ints("strides", {1, 1});
  const auto dilations = node.ints("dilations", {1, 1});
  if (kernel != std::vector<i64>{KH, KW}) throw std::runtime_error(c.name + ": kernel_shape differs from w's shape");
  if (pads.size() != 4 || strides.size() != 2 || dilations.size() != 2) throw std::runtime_error(c.name + ": attribute ranks");
  if (group < 1 || C != CG * group) throw std::runtime_error(c.name + ": group does not match the channels");

  // Weights w' = w - w_zp[oc], [OC][C/group][KH][KW] as ONNX stores them.
  const i64 per_oc = CG * KH * KW;
  std::vector<std::int32_t> weights(static_cast<std::size_t>(OC * per_oc));
  std::vector<i64> bias(static_cast<std::size_t>(OC), 0);
  for (i64 oc = 0; oc < OC; ++oc) {
    i64 sum = 0;
    for (i64 k = 0; k < per_oc; ++k) {
      const std::size_t idx = static_cast<std::size_t>(oc * per_oc + k);
      const i64 v = checked_i8_weight(w.values[idx], w_zp[static_cast<std::size_t>(oc)], c.name + " w");
      weights[idx] = static_cast<std::int32_t>(v);
      sum += v;
    }
    if (form == Formulation::kFold) bias[static_cast<std::size_t>(oc)] = -x_zp[0] * sum;
  }

  dla::compiler::ConvAttrs a;
  a.kernel_h = static_cast<int>(KH);
  a.kernel_w = static_cast<int>(KW);
  a.stride_h = static_cast<int>(strides[0]);
  a.stride_w = static_cast<int>(strides[1]);
  a.dilation_h = static_cast<int>(dilations[0]);
  a.dilation_w = static_cast<int>(dilations[1]);
  a.groups = static_cast<int>(group);

  DlaProblem p;
  p.input_name = node.inputs[0];
  p.output_name = node.outputs[0];
  p.expected_shape = ushape(c.expected.dims);
  p.expected = c.expected.values;
  check_fits_i16(p.expected, c.name);

  HostTensor& in = p.input;
  in.frac = 0;
  if (form == Formulation::kFold && !naive_fold) {
    // Pad on the host with x_zp; the graph convolves the padded tensor with padding 0.
    const i64 PH = H + pads[0] + pads[2], PW = W + pads[1] + pads[3];
    in.dtype = x_type;
    in.shape = {static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(C), static_cast<std::uint64_t>(PH),
                static_cast<std::uint64_t>(PW)};
    in.values.assign(static_cast<std::size_t>(N * C * PH * PW), static_cast<std::int32_t>(x_zp[0]));
    for (i64 nc = 0; nc < N * C; ++nc)
      for (i64 h = 0; h < H; ++h)
        for (i64 ww = 0; ww < W; ++ww) {
          in.values[static_cast<std::size_t>((nc * PH + h + pads[0]) * PW + ww + pads[1])] =
              static_cast<std::int32_t>(x.values[static_cast<std::size_t>((nc * H + h) * W + ww)]);
        }
  } else {
    a.pad_top = static_cast<int>(pads[0]);
    a.pad_left = static_cast<int>(pads[1]);
    a.pad_bottom = static_cast<int>(pads[2]);
    a.pad_right = static_cast<int>(pads[3]);
    in.shape = ushape(x.dims);
    in.values.resize(x.values.size());
    if (form == Formulation::kFold) {  // naive: raw x, zero padding in the graph
      in.dtype = x_type;
      for (std::size_t i = 0; i < x.values.size(); ++i) in.values[i] = static_cast<std::int32_t>(x.values[i]);
    } else {
      in.dtype = DType::I16;
      for (std::size_t i = 0; i < x.values.size(); ++i) in.values[i] = static_cast<std::int32_t>(x.values[i] - x_zp[0]);
    }
  }
  std::vector<i64> in_shape(in.shape.begin(), in.shape.end());
  const int xi = p.graph.input(p.input_name, in.dtype, 0, in_shape);
  const int yi = p.graph.conv2d(p.output_name, xi, OC, a, DType::I8, std::move(weights),
                                std::vector<int>(static_cast<std::size_t>(OC), 0), std::move(bias), exact_i16_output());
  p.graph.mark_output(yi);
  if (ushape(p.graph.node(yi).shape) != p.expected_shape) throw std::runtime_error(c.name + ": output shape differs");
  return p;
}

/// MatMulInteger (2-D) -> input [M, K] + linear with weights [N][K] = (B - b_zp)^T.
DlaProblem build_matmul_integer(const OnnxCase& c, Formulation form) {
  const auto& node = c.model.nodes[0];
  if (node.op_type != "MatMulInteger" || !(node.domain.empty() || node.domain == "ai.onnx")) {
    throw std::runtime_error(c.name + ": expected an ai.onnx MatMulInteger node, got " + node.op_type);
  }
  const onnx_reader::Tensor& A = required_input(c, 0);
  const onnx_reader::Tensor& B = required_input(c, 1);
  if (A.dims.size() != 2 || B.dims.size() != 2 || A.dims[1] != B.dims[0]) {
    throw std::runtime_error(c.name + ": only [M, K] x [K, N] products are mapped");
  }
  const i64 M = A.dims[0], K = A.dims[1], N = B.dims[1];
  const onnx_reader::Tensor* a_zp_t = optional_input(c, 2);
  const bool a_zp_per_row = a_zp_t != nullptr && a_zp_t->values.size() != 1;
  const std::vector<i64> a_zp = zero_points(a_zp_t, M, c.name + " a_zero_point");
  const std::vector<i64> b_zp = zero_points(optional_input(c, 3), N, c.name + " b_zero_point");
  const DType a_type = dla_activation_type(A.data_type, c.name + " A");
  if (form == Formulation::kFold && a_zp_per_row) {
    throw std::runtime_error(c.name + ": a per-row a_zero_point cannot fold into a per-output-channel bias");
  }

  std::vector<std::int32_t> weights(static_cast<std::size_t>(N * K));
  std::vector<i64> bias(static_cast<std::size_t>(N), 0);
  for (i64 n = 0; n < N; ++n) {
    i64 sum = 0;
    for (i64 k = 0; k < K; ++k) {
      const i64 v = checked_i8_weight(B.values[static_cast<std::size_t>(k * N + n)], b_zp[static_cast<std::size_t>(n)],
                                      c.name + " B");
      weights[static_cast<std::size_t>(n * K + k)] = static_cast<std::int32_t>(v);
      sum += v;
    }
    if (form == Formulation::kFold) bias[static_cast<std::size_t>(n)] = -a_zp[0] * sum;
  }

  DlaProblem p;
  p.input_name = node.inputs[0];
  p.output_name = node.outputs[0];
  p.expected_shape = ushape(c.expected.dims);
  p.expected = c.expected.values;
  check_fits_i16(p.expected, c.name);
  p.input.frac = 0;
  p.input.shape = ushape(A.dims);
  p.input.values.resize(A.values.size());
  if (form == Formulation::kFold) {
    p.input.dtype = a_type;
    for (std::size_t i = 0; i < A.values.size(); ++i) p.input.values[i] = static_cast<std::int32_t>(A.values[i]);
  } else {
    p.input.dtype = DType::I16;
    for (i64 m = 0; m < M; ++m)
      for (i64 k = 0; k < K; ++k) {
        const std::size_t i = static_cast<std::size_t>(m * K + k);
        p.input.values[i] = static_cast<std::int32_t>(A.values[i] - a_zp[static_cast<std::size_t>(m)]);
      }
  }
  const int xi = p.graph.input(p.input_name, p.input.dtype, 0, {M, K});
  const int yi = p.graph.linear(p.output_name, xi, N, DType::I8, std::move(weights),
                                std::vector<int>(static_cast<std::size_t>(N), 0), std::move(bias), exact_i16_output());
  p.graph.mark_output(yi);
  return p;
}

DlaProblem build(const OnnxCase& c, Formulation form) {
  const std::string& op = c.model.nodes.at(0).op_type;
  if (op == "ConvInteger") return build_conv_integer(c, form);
  if (op == "MatMulInteger") return build_matmul_integer(c, form);
  throw std::runtime_error(c.name + ": no mapping for op " + op);
}

// ---------------------------------------------------------------------------------------
// Running and comparing
// ---------------------------------------------------------------------------------------

HostTensor run_reference(const DlaProblem& p, const dla::HwConfig& hw) {
  const auto values = dla::compiler::evaluate(p.graph, hw, {{p.input_name, p.input}});
  return values.at(static_cast<std::size_t>(p.graph.find(p.output_name)));
}

HostTensor run_emulator(const DlaProblem& p, const dla::HwConfig& hw) {
  const dla::Program program = dla::compiler::compile(p.graph, hw);
  std::unique_ptr<dla::sim::Device> dev = dla::sim::make_emulator(hw);
  dev->load(program);
  dev->set_input(p.input_name, p.input);
  dev->run();
  return dev->output(p.output_name);
}

/// Every element of `got` equals `expected` (and the shape matches).
::testing::AssertionResult equals_expected(const DlaProblem& p, const HostTensor& got) {
  if (got.shape != p.expected_shape) {
    return ::testing::AssertionFailure() << "shape " << dla::shape_string(got.shape) << ", expected "
                                         << dla::shape_string(p.expected_shape);
  }
  if (got.values.size() != p.expected.size()) return ::testing::AssertionFailure() << "element count differs";
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < p.expected.size(); ++i) {
    if (got.values[i] != p.expected[i]) {
      if (bad < 8) first << "\n  element " << i << ": got " << got.values[i] << ", ONNX expects " << p.expected[i];
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << p.expected.size() << " elements differ" << first.str();
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

const std::vector<std::string> kCases = {
    "test_basic_convinteger",
    "test_convinteger_without_padding",
    "test_convinteger_with_padding",
    "test_matmulinteger",
};

using OracleParam = std::tuple<std::string, Formulation, std::string>;

class OnnxBackendNode : public ::testing::TestWithParam<OracleParam> {};

std::string param_name(const ::testing::TestParamInfo<OracleParam>& p) {
  return std::get<0>(p.param).substr(5) + "_" + formulation_name(std::get<1>(p.param)) + "_" + std::get<2>(p.param);
}

TEST_P(OnnxBackendNode, EmulatorAndReferenceEqualExpectedOutput) {
  const auto& [case_name, form, preset] = GetParam();
  const OnnxCase c = load_case(case_name);
  const DlaProblem p = build(c, form);
  const dla::HwConfig hw = dla::HwConfig::preset(preset);
  SCOPED_TRACE(case_name + " (" + formulation_name(form) + ", preset " + preset + ")");
  EXPECT_TRUE(equals_expected(p, run_reference(p, hw))) << "reference evaluator";
  EXPECT_TRUE(equals_expected(p, run_emulator(p, hw))) << "emulator";
}

INSTANTIATE_TEST_SUITE_P(Onnx, OnnxBackendNode,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(Formulation::kFold, Formulation::kShift),
                                            ::testing::Values("small", "default", "large")),
                         param_name);

// The files are what the mapping above assumes: read the attributes and data back.
TEST(OnnxReader, ReadsTheConvIntegerModelAndData) {
  const OnnxCase c = load_case("test_convinteger_with_padding");
  ASSERT_EQ(c.model.nodes.size(), 1u);
  const auto& node = c.model.nodes[0];
  EXPECT_EQ(node.op_type, "ConvInteger");
  EXPECT_EQ(node.inputs, (std::vector<std::string>{"x", "w", "x_zero_point"}));
  EXPECT_EQ(node.ints("pads", {}), (std::vector<i64>{1, 1, 1, 1}));
  ASSERT_FALSE(c.model.opsets.empty());
  EXPECT_EQ(c.model.opsets[0].version, 10);
  const auto& x = c.values.at("x");
  EXPECT_EQ(x.data_type, onnx_reader::kUint8);
  EXPECT_EQ(x.dims, (std::vector<i64>{1, 1, 3, 3}));
  EXPECT_EQ(x.values, (std::vector<i64>{2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(c.values.at("x_zero_point").values, (std::vector<i64>{1}));
  EXPECT_EQ(c.expected.data_type, onnx_reader::kInt32);
  EXPECT_EQ(c.expected.dims, (std::vector<i64>{1, 1, 4, 4}));
  EXPECT_EQ(c.expected.values, (std::vector<i64>{1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9}));

  const OnnxCase mm = load_case("test_matmulinteger");
  EXPECT_EQ(mm.model.nodes[0].op_type, "MatMulInteger");
  EXPECT_EQ(mm.values.at("a_zero_point").values, (std::vector<i64>{12}));
  EXPECT_EQ(mm.values.at("b_zero_point").values, (std::vector<i64>{0}));
  EXPECT_EQ(mm.expected.values, (std::vector<i64>{-38, -83, -44, -98, -50, -113, -56, -128}));
}

// Wire-format corner cases the node files do not exercise.
TEST(OnnxReader, DecodesWireFormatCornerCases) {
  // dims packed [2, 3]; data_type INT32; int32_data packed {-1, 300, -2^31, 0, 0, 0}
  // (negative int32 values are 10-byte varints); name "t".
  const std::vector<std::uint8_t> good = {
      0x0a, 0x02, 0x02, 0x03,  // dims (packed)
      0x10, 0x06,              // data_type = INT32
      0x2a, 25,                // int32_data, 25 bytes packed
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,  // -1
      0xac, 0x02,                                                  // 300
      0x80, 0x80, 0x80, 0x80, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x01,  // -2^31
      0x00, 0x00, 0x00,                                            // 0, 0, 0
      0x42, 0x01, 't',                                             // name
  };
  const onnx_reader::Tensor t = onnx_reader::parse_tensor(good.data(), good.size());
  EXPECT_EQ(t.name, "t");
  EXPECT_EQ(t.dims, (std::vector<i64>{2, 3}));
  EXPECT_EQ(t.values, (std::vector<i64>{-1, 300, -2147483648LL, 0, 0, 0}));

  // Unpacked dims and int64_data; a raw int8 tensor.
  const std::vector<std::uint8_t> unpacked = {0x08, 0x02, 0x10, 0x07, 0x38, 0x05, 0x38, 0xfb, 0xff, 0xff, 0xff,
                                              0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  const onnx_reader::Tensor u = onnx_reader::parse_tensor(unpacked.data(), unpacked.size());
  EXPECT_EQ(u.values, (std::vector<i64>{5, -5}));
  const std::vector<std::uint8_t> raw = {0x08, 0x03, 0x10, 0x03, 0x4a, 0x03, 0x80, 0x7f, 0xff};
  EXPECT_EQ(onnx_reader::parse_tensor(raw.data(), raw.size()).values, (std::vector<i64>{-128, 127, -1}));

  // Malformed: truncated varint, length past the end, element count mismatch, out-of-range.
  const std::vector<std::uint8_t> truncated = {0x08, 0x80};
  EXPECT_THROW(onnx_reader::parse_tensor(truncated.data(), truncated.size()), std::runtime_error);
  const std::vector<std::uint8_t> overrun = {0x10, 0x02, 0x4a, 0x05, 0x01};
  EXPECT_THROW(onnx_reader::parse_tensor(overrun.data(), overrun.size()), std::runtime_error);
  const std::vector<std::uint8_t> count = {0x08, 0x04, 0x10, 0x02, 0x4a, 0x03, 0x01, 0x02, 0x03};
  EXPECT_THROW(onnx_reader::parse_tensor(count.data(), count.size()), std::runtime_error);
  const std::vector<std::uint8_t> range = {0x08, 0x01, 0x10, 0x02, 0x28, 0x80, 0x02};  // uint8 int32_data 256
  EXPECT_THROW(onnx_reader::parse_tensor(range.data(), range.size()), std::runtime_error);
}

// The padded case discriminates between the two padding semantics: folding x_zp into the
// bias while the graph pads with zeros subtracts x_zp * w at padded taps, and the ONNX
// data says that is wrong (border elements differ). This proves the host-side padding in
// kFold is needed and that the comparison can fail.
TEST(OnnxConvInteger, NaiveFoldWithZeroPaddingIsWrong) {
  const OnnxCase c = load_case("test_convinteger_with_padding");
  const DlaProblem p = build_conv_integer(c, Formulation::kFold, /*naive_fold=*/true);
  const HostTensor got = run_reference(p, dla::HwConfig::preset("default"));
  ASSERT_EQ(got.values.size(), p.expected.size());
  int border_diffs = 0, inner_diffs = 0;
  for (std::size_t i = 0; i < p.expected.size(); ++i) {
    const std::size_t h = i / 4, w = i % 4;
    const bool border = h == 0 || h == 3 || w == 0 || w == 3;
    if (got.values[i] != p.expected[i]) ++(border ? border_diffs : inner_diffs);
  }
  EXPECT_EQ(border_diffs, 12);  // every border element touches padding
  EXPECT_EQ(inner_diffs, 0);
}

}  // namespace
