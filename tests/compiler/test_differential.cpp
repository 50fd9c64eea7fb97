// Differential test: random graphs compiled for the small, default and large presets
// (and random rounding modes, overflow policies and accumulator widths) run on the
// emulator, once scheduled and checked and twice replayed (on two threads and on one);
// every element of every layer equals the reference evaluator's each time.
#include <gtest/gtest.h>

#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/device.hpp"
#include "dla/testing/random_graphs.hpp"

using namespace dla;

namespace {

struct Variant {
  const char* preset;
  int graphs;
};

std::uint64_t compare_graph(const compiler::Graph& g, const std::map<std::string, HostTensor>& inputs,
                            const HwConfig& hw, std::uint64_t seed, const char* preset, std::string& failure);

/// Compiles and runs one random graph; returns the number of elements compared.
std::uint64_t check_graph(std::uint64_t seed, const char* preset, std::string& failure) {
  dla::testing::RandomGraphBuilder gen(seed);
  std::map<std::string, HostTensor> inputs;
  const compiler::Graph g = gen.graph(inputs);
  std::mt19937_64 rng(seed * 31 + 7);
  return compare_graph(g, inputs, dla::testing::random_config(preset, rng), seed, preset, failure);
}

/// Runs `g` on the emulator and compares every layer with the reference evaluator: the
/// first run (scheduled and checked), then runs that replay its order on two threads and
/// on one.
std::uint64_t compare_graph(const compiler::Graph& g, const std::map<std::string, HostTensor>& inputs,
                            const HwConfig& hw, std::uint64_t seed, const char* preset, std::string& failure) {
  const auto expected = compiler::evaluate(g, hw, inputs);
  const Program program = compiler::compile(g, hw);
  auto device = sim::make_emulator(hw);
  device->load(program);
  for (const auto& [name, t] : inputs) device->set_input(name, t);
  std::uint64_t compared = 0;
  for (const unsigned threads : {0u, 2u, 1u}) {
    const std::string run = threads == 0 ? "first run" : "replay on " + std::to_string(threads) + " thread(s)";
    sim::RunOptions opts;
    opts.dump_layers = true;
    opts.threads = threads;
    device->run(opts);
    const auto dumps = device->layer_dumps();
    if (dumps.size() + g.inputs().size() != g.nodes().size()) {
      failure = "expected a dump per non-input node";
      return compared;
    }
    for (const auto& dump : dumps) {
      const int id = g.find(dump.name);
      const HostTensor& want = expected[static_cast<std::size_t>(id)];
      if (dump.tensor.values.size() != want.values.size()) {
        failure = run + ": layer " + dump.name + ": element count differs";
        return compared;
      }
      for (std::size_t i = 0; i < want.values.size(); ++i) {
        if (dump.tensor.values[i] != want.values[i]) {
          failure = run + ": seed " + std::to_string(seed) + " preset " + preset + " layer '" + dump.name + "' (" +
                    std::string(compiler::op_kind_name(g.node(id).kind)) + ") element " + std::to_string(i) +
                    ": emulator " + std::to_string(dump.tensor.values[i]) + ", reference " +
                    std::to_string(want.values[i]);
          return compared;
        }
      }
      compared += want.values.size();
    }
    for (int o : g.outputs()) {
      const HostTensor out = device->output(g.node(o).name);
      if (out.values != expected[static_cast<std::size_t>(o)].values) {
        failure = run + ": output '" + g.node(o).name + "' differs";
        return compared;
      }
    }
  }
  return compared;
}

class Differential : public ::testing::TestWithParam<Variant> {};

TEST_P(Differential, RandomGraphsEqualTheReferenceOnEveryLayer) {
  const Variant v = GetParam();
  std::uint64_t elements = 0;
  int graphs = 0;
  for (int i = 0; i < v.graphs; ++i) {
    const std::uint64_t seed = dla::testing::graph_seed(v.preset, i);
    std::string failure;
    try {
      elements += check_graph(seed, v.preset, failure);
    } catch (const std::exception& e) {
      failure = "seed " + std::to_string(seed) + ": " + e.what();
    }
    ASSERT_TRUE(failure.empty()) << failure;
    ++graphs;
  }
  std::printf("%s: %d random graphs, %llu layer elements compared\n", v.preset, graphs,
              static_cast<unsigned long long>(elements));
}

/// Activation tables (VLUT) after a convolution and after an add, for every function,
/// 4-, 8- and 16-bit inputs and every rounding mode, on every preset.
TEST(DifferentialLut, EveryFunctionAfterConvAndAdd) {
  using compiler::QuantSpec;
  using lut::Function;
  const lut::Activation functions[] = {{Function::kSiLU, 0},      {Function::kSigmoid, 0},   {Function::kTanh, 0},
                                       {Function::kHardswish, 0}, {Function::kHardsigmoid, 0}, {Function::kGeluTanh, 0},
                                       {Function::kLeakyRelu, 0.1}, {Function::kElu, 1.0}};
  const DType types[] = {DType::I8, DType::U8, DType::I16, DType::I4};
  std::mt19937_64 rng(77);
  std::uint64_t elements = 0;
  int graphs = 0;
  for (const char* preset : {"small", "default", "large"})
    for (const lut::Activation& a : functions)
      for (const DType t : types) {
        const DType out = t == DType::U8 ? DType::I8 : t;  // u8 in, i8 out: the types may differ
        HwConfig hw = HwConfig::preset(preset);
        hw.rounding_mode = static_cast<RoundMode>(rng() % kNumRoundModes);
        compiler::Graph g;
        const std::int64_t C = 6, H = 5, W = 7;
        const int fx = dtype_info(t).bits == 16 ? 11 : dtype_info(t).bits == 4 ? 1 : 4;
        const int x = g.input("x", DType::I8, 5, {1, C, H, W});
        compiler::ConvAttrs ca;
        ca.kernel_h = ca.kernel_w = 3;
        ca.pad_top = ca.pad_left = ca.pad_bottom = ca.pad_right = 1;
        std::vector<std::int32_t> w(static_cast<std::size_t>(C * C * 9));
        for (auto& v : w) v = static_cast<std::int32_t>(rng() % 15) - 7;
        QuantSpec q{t, fx};
        const int conv = g.conv2d("conv", x, C, ca, DType::I8, w, std::vector<int>(static_cast<std::size_t>(C), 4), {}, q);
        QuantSpec qo{out, dtype_info(out).bits == 4 ? 1 : fx + 1};
        const int act = g.lut("act", conv, a, {}, qo);
        const int sum = g.add("add", act, conv, QuantSpec{out, qo.frac});
        const int act2 = g.lut("act2", sum, a, {}, qo);
        g.mark_output(act2);
        g.mark_output(act);
        HostTensor in;
        in.dtype = DType::I8;
        in.frac = 5;
        in.shape = {1, static_cast<std::uint64_t>(C), static_cast<std::uint64_t>(H), static_cast<std::uint64_t>(W)};
        in.values.resize(static_cast<std::size_t>(C * H * W));
        for (auto& v : in.values) v = static_cast<std::int32_t>(rng() % 256) - 128;
        std::string failure;
        const std::string what = std::string(lut::function_name(a.function)) + " " + std::string(dtype_info(t).name);
        try {
          elements += compare_graph(g, {{"x", in}}, hw, 0, preset, failure);
        } catch (const std::exception& e) {
          failure = e.what();
        }
        ASSERT_TRUE(failure.empty()) << what << ": " << failure;
        ++graphs;
      }
  std::printf("%d lut graphs, %llu layer elements compared\n", graphs, static_cast<unsigned long long>(elements));
}

INSTANTIATE_TEST_SUITE_P(Presets, Differential,
                         ::testing::Values(Variant{"small", 600}, Variant{"default", 300}, Variant{"large", 150}),
                         [](const auto& param_info) { return std::string(param_info.param.preset); });

}  // namespace
