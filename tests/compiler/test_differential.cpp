// Differential test: random graphs compiled for the small, default and large presets
// (and random rounding modes, overflow policies and accumulator widths) run on the
// emulator; every element of every layer equals the reference evaluator's.
#include <gtest/gtest.h>

#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/device.hpp"
#include "random_graphs.hpp"

using namespace dla;

namespace {

struct Variant {
  const char* preset;
  int graphs;
};

HwConfig random_config(const char* preset, std::mt19937_64& rng) {
  HwConfig hw = HwConfig::preset(preset);
  hw.rounding_mode = static_cast<RoundMode>(rng() % kNumRoundModes);
  hw.overflow_policy = (rng() % 2) ? OverflowPolicy::WRAP : OverflowPolicy::SATURATE_FINAL;
  const std::int64_t acc[] = {16, 24, 32, 32};
  hw.acc_bits = acc[rng() % 4];
  hw.validate();
  return hw;
}

/// Compiles and runs one random graph; returns the number of elements compared.
std::uint64_t check_graph(std::uint64_t seed, const char* preset, std::string& failure) {
  dla::testing::RandomGraphBuilder gen(seed);
  std::map<std::string, HostTensor> inputs;
  const compiler::Graph g = gen.graph(inputs);
  std::mt19937_64 rng(seed * 31 + 7);
  const HwConfig hw = random_config(preset, rng);
  const auto expected = compiler::evaluate(g, hw, inputs);
  const Program program = compiler::compile(g, hw);
  auto device = sim::make_emulator(hw);
  device->load(program);
  for (const auto& [name, t] : inputs) device->set_input(name, t);
  sim::RunOptions opts;
  opts.dump_layers = true;
  device->run(opts);
  std::uint64_t compared = 0;
  const auto dumps = device->layer_dumps();
  if (dumps.size() + g.inputs().size() != g.nodes().size()) {
    failure = "expected a dump per non-input node";
    return compared;
  }
  for (const auto& dump : dumps) {
    const int id = g.find(dump.name);
    const HostTensor& want = expected[static_cast<std::size_t>(id)];
    if (dump.tensor.values.size() != want.values.size()) {
      failure = "layer " + dump.name + ": element count differs";
      return compared;
    }
    for (std::size_t i = 0; i < want.values.size(); ++i) {
      if (dump.tensor.values[i] != want.values[i]) {
        failure = "seed " + std::to_string(seed) + " preset " + preset + " layer '" + dump.name + "' (" +
                  std::string(compiler::op_kind_name(g.node(id).kind)) + ") element " + std::to_string(i) +
                  ": emulator " + std::to_string(dump.tensor.values[i]) + ", reference " + std::to_string(want.values[i]);
        return compared;
      }
    }
    compared += want.values.size();
  }
  for (int o : g.outputs()) {
    const HostTensor out = device->output(g.node(o).name);
    if (out.values != expected[static_cast<std::size_t>(o)].values) {
      failure = "output '" + g.node(o).name + "' differs";
      return compared;
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
    const std::uint64_t seed = 1000 + static_cast<std::uint64_t>(i) * 7919 + std::string(v.preset).size();
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

INSTANTIATE_TEST_SUITE_P(Presets, Differential,
                         ::testing::Values(Variant{"small", 600}, Variant{"default", 300}, Variant{"large", 150}),
                         [](const auto& param_info) { return std::string(param_info.param.preset); });

}  // namespace
