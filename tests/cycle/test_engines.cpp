// One suite over every engine (emulator, cycle model; RTL co-simulation joins as a row of
// engines.hpp): the same programs, compared element by element with one reference (the
// compiler's reference evaluator, or a naive convolution for hand-built programs); the
// counters every engine reports compared with the emulator's; the same errors for the
// same broken programs.
#include <gtest/gtest.h>

#include <random>

#include "dla/testing/random_graphs.hpp"
#include "../emu/conv_program.hpp"
#include "../emu/emu_test_util.hpp"
#include "../support/device_programs.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/reference.hpp"
#include "engines.hpp"

using dla::DType;
using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
using dla::testing::with_depths;
using engines_test::Engine;
namespace isa = dla::isa;
namespace sim = dla::sim;

namespace {

using Inputs = std::map<std::string, HostTensor>;

struct Outcome {
  std::map<std::string, HostTensor> outputs;
  std::vector<sim::LayerDump> dumps;
  sim::RunStats stats;
};

Outcome run_on(const Engine& e, const HwConfig& hw, const Program& p, const Inputs& inputs) {
  auto dev = e.make(hw);
  dev->load(p);
  for (const auto& [name, t] : inputs) dev->set_input(name, t);
  sim::RunOptions opts;
  opts.dump_layers = true;
  dev->run(opts);
  Outcome o;
  for (const auto& t : p.tensors) {
    if (t.role == dla::TensorRole::kOutput) o.outputs[t.name] = dev->output(t.name);
  }
  o.dumps = dev->layer_dumps();
  o.stats = dev->stats();
  return o;
}

/// The counters every engine reports identically (cycles aside: engines without timing
/// report 0).
std::string counters_differ(const sim::RunStats& a, const sim::RunStats& b) {
  auto same = [](const auto& x, const auto& y) {
    return x.macs == y.macs && x.acc_overflows == y.acc_overflows && x.saturations == y.saturations &&
           x.dram_read_bytes == y.dram_read_bytes && x.dram_write_bytes == y.dram_write_bytes;
  };
  if (!same(a, b) || a.instructions != b.instructions) return "run counters differ";
  if (a.layers.size() != b.layers.size()) return "layer count differs";
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    if (!same(a.layers[i], b.layers[i]) || a.layers[i].name != b.layers[i].name) {
      return "counters of layer '" + a.layers[i].name + "' differ";
    }
  }
  return "";
}

/// The exception text (and instruction, for ExecutionError) a run throws; "" if none.
std::string error_of(const Engine& e, const HwConfig& hw, const Program& p, const Inputs& inputs = {}) {
  try {
    run_on(e, hw, p, inputs);
  } catch (const sim::ExecutionError& x) {
    return "[" + std::to_string(x.instruction()) + "] " + x.what();
  } catch (const std::exception& x) {
    return x.what();
  }
  return "";
}

HwConfig random_config(const char* preset, std::mt19937_64& rng) {
  HwConfig hw = HwConfig::preset(preset);
  hw.rounding_mode = static_cast<dla::RoundMode>(rng() % dla::kNumRoundModes);
  hw.overflow_policy = (rng() % 2) ? dla::OverflowPolicy::WRAP : dla::OverflowPolicy::SATURATE_FINAL;
  const std::int64_t acc[] = {16, 24, 32, 32};
  hw.acc_bits = acc[rng() % 4];
  // Timing parameters only change when things happen, never the integers.
  hw.dram_latency_cycles = static_cast<std::int64_t>(rng() % 300);
  hw.dram_bytes_per_cycle = std::int64_t{1} << (rng() % 7);
  hw.queue_depth = 1 + static_cast<std::int64_t>(rng() % 16);
  hw.token_depth = 1 + static_cast<std::int64_t>(rng() % 8);
  hw.validate();
  return hw;
}

class EveryEngine : public ::testing::TestWithParam<Engine> {
 protected:
  const Engine& engine() const { return GetParam(); }
  static const Engine& emulator() { return engines_test::kEngines[0]; }

  /// Compiles `g` for `hw`, runs it, compares every layer and output with the reference
  /// evaluator and the counters with the emulator's. Returns the elements compared.
  std::uint64_t check_graph(const dla::compiler::Graph& g, const HwConfig& hw, const Inputs& inputs,
                            const std::string& what) {
    const auto expected = dla::compiler::evaluate(g, hw, inputs);
    const Program p = dla::compiler::compile(g, hw);
    const Outcome o = run_on(engine(), hw, p, inputs);
    std::uint64_t compared = 0;
    EXPECT_EQ(o.dumps.size() + g.inputs().size(), g.nodes().size()) << what;
    for (const auto& dump : o.dumps) {
      const int id = g.find(dump.name);
      const HostTensor& want = expected[static_cast<std::size_t>(id)];
      EXPECT_EQ(dump.tensor.values.size(), want.values.size()) << what << " layer " << dump.name;
      if (dump.tensor.values.size() != want.values.size()) return compared;
      for (std::size_t i = 0; i < want.values.size(); ++i) {
        if (dump.tensor.values[i] != want.values[i]) {
          ADD_FAILURE() << what << " layer '" << dump.name << "' element " << i << ": " << engine().name << " "
                        << dump.tensor.values[i] << ", reference " << want.values[i];
          return compared;
        }
      }
      compared += want.values.size();
    }
    for (int out : g.outputs()) {
      EXPECT_EQ(o.outputs.at(g.node(out).name).values, expected[static_cast<std::size_t>(out)].values)
          << what << " output " << g.node(out).name;
    }
    if (std::string(engine().name) != emulator().name) {
      const Outcome ref = run_on(emulator(), hw, p, inputs);
      EXPECT_EQ(counters_differ(o.stats, ref.stats), "") << what;
    }
    return compared;
  }
};

}  // namespace

TEST_P(EveryEngine, TiledConvEqualsTheNaiveReferenceOnEveryConfig) {
  std::mt19937_64 g(41);
  HwConfig slow_dram = HwConfig::preset("large");
  slow_dram.dram_latency_cycles = 1000;
  slow_dram.dram_bytes_per_cycle = 1;
  slow_dram.dram_burst_bytes = 256;
  for (const auto& v : emu_test::conv_variants(slow_dram, "large floor, slow DRAM")) {
    SCOPED_TRACE(v.name);
    const emu_test::ConvCase c = emu_test::make_conv_program(v.cfg, v.spec, g);
    const HostTensor image = emu_test::random_image(c, g);
    std::uint64_t overflows = 0, saturations = 0;
    const HostTensor want = emu_test::reference_conv(c, image, v.cfg, &overflows, &saturations);
    const Outcome o = run_on(engine(), v.cfg, c.program, {{"image", image}});
    EXPECT_EQ(o.outputs.at("out"), want);
    ASSERT_EQ(o.dumps.size(), 1u);
    EXPECT_EQ(o.dumps[0].name, "conv1");
    EXPECT_EQ(o.dumps[0].tensor.values, want.values);
    EXPECT_EQ(o.stats.acc_overflows, overflows);
    EXPECT_EQ(o.stats.saturations, saturations);
    EXPECT_EQ(counters_differ(o.stats, run_on(emulator(), v.cfg, c.program, {{"image", image}}).stats), "");
  }
}

TEST_P(EveryEngine, RandomGraphsEqualTheReferenceOnEveryLayer) {
  struct Variant {
    const char* preset;
    int graphs;
  };
  std::uint64_t elements = 0;
  int graphs = 0;
  for (const Variant v : {Variant{"small", 300}, Variant{"default", 150}, Variant{"large", 75}}) {
    for (int i = 0; i < v.graphs; ++i) {
      const std::uint64_t seed = 50000 + static_cast<std::uint64_t>(i) * 7919 + std::string(v.preset).size();
      dla::testing::RandomGraphBuilder gen(seed);
      Inputs inputs;
      const dla::compiler::Graph g = gen.graph(inputs);
      std::mt19937_64 rng(seed * 31 + 7);
      const HwConfig hw = random_config(v.preset, rng);
      const std::string what = std::string(v.preset) + " seed " + std::to_string(seed);
      try {
        elements += check_graph(g, hw, inputs, what);
      } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": " << e.what();
      }
      ++graphs;
      if (HasFailure()) return;
    }
  }
  std::printf("%s: %d random graphs, %llu layer elements compared\n", engine().name, graphs,
              static_cast<unsigned long long>(elements));
}

TEST_P(EveryEngine, ResNet18EqualsTheReference) {
  const HwConfig hw = HwConfig::preset("default");
  const dla::compiler::Graph g = dla::compiler::resnet18(64);
  std::mt19937_64 rng(18);
  const HostTensor image = emu_test::random_u8({1, 3, 64, 64}, rng, 4);
  const std::uint64_t n = check_graph(g, hw, {{"image", image}}, "resnet18(64)");
  EXPECT_GT(n, 100000u);
}

TEST_P(EveryEngine, RunsAgainWithNewInputsReloadsAndManyDevices) {
  std::mt19937_64 g(77);
  const HwConfig hw = HwConfig::preset("small");
  const emu_test::ConvCase a = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  emu_test::ConvSpec other;
  other.in_c = 5;
  other.out_c = 9;
  other.stride = 2;
  const emu_test::ConvCase b = emu_test::make_conv_program(hw, other, g);
  std::vector<std::unique_ptr<sim::Device>> devices;
  for (int d = 0; d < 3; ++d) devices.push_back(engine().make(hw));
  std::uint64_t cycles = 0;
  for (int round = 0; round < 8; ++round) {
    const emu_test::ConvCase& c = round % 3 == 0 ? b : a;
    sim::Device& dev = *devices[static_cast<std::size_t>(round) % devices.size()];
    dev.load(c.program);
    for (int twice = 0; twice < 2; ++twice) {
      const HostTensor image = emu_test::random_image(c, g);
      dev.set_input("image", image);
      dev.run();
      EXPECT_EQ(dev.output("out"), emu_test::reference_conv(c, image, hw)) << "round " << round;
      if (&c == &a && dev.stats().cycles != 0) {
        // Timing depends on the program, not on the data or on what ran before.
        if (cycles == 0) cycles = dev.stats().cycles;
        EXPECT_EQ(dev.stats().cycles, cycles);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Broken programs: the same errors on every engine
// ---------------------------------------------------------------------------

namespace {

/// Programs every engine must refuse with the emulator's message (rule breaches and
/// deadlocks are properties of the program, not of timing).
std::vector<std::pair<HwConfig, Program>> refused_programs() {
  std::vector<std::pair<HwConfig, Program>> v;
  const HwConfig def = HwConfig::preset("default");
  const HwConfig small = HwConfig::preset("small");
  v.emplace_back(small, dla::testing::sram_overrun_program(small));
  v.emplace_back(small, dla::testing::dram_overrun_program(small));
  v.emplace_back(def, dla::testing::pop_with_no_pusher_program(def));
  v.emplace_back(def, dla::testing::circular_wait_program(def));
  const HwConfig shallow = with_depths(def, 1, 8);  // a full queue stalls dispatch of the pusher
  v.emplace_back(shallow, dla::testing::full_queue_program(shallow));
  const HwConfig one = with_depths(def, 16, 1);  // a full token FIFO before a SYNC
  v.emplace_back(one, dla::testing::full_token_fifo_program(one));
  {  // a deadlock after real work: the double-buffered conv with one token dropped
    std::mt19937_64 g(5);
    emu_test::ConvCase c = emu_test::make_conv_program(def, emu_test::ConvSpec{}, g);
    isa::tokens_of(c.program.instructions[c.first_store]).push_prev = false;
    v.emplace_back(def, c.program);
  }
  return v;
}

}  // namespace

TEST_P(EveryEngine, RuleBreachesAndDeadlocksGiveTheEmulatorsErrors) {
  int n = 0;
  for (const auto& [hw, p] : refused_programs()) {
    Inputs inputs;
    if (p.find_tensor("image") != nullptr) {
      HostTensor image;
      image.dtype = DType::U8;
      image.shape = p.find_tensor("image")->shape;
      image.values.assign(image.num_elements(), 3);
      inputs["image"] = image;
    }
    const std::string want = error_of(emulator(), hw, p, inputs);
    ASSERT_FALSE(want.empty()) << "program " << n << " runs on the emulator";
    EXPECT_EQ(error_of(engine(), hw, p, inputs), want) << "program " << n;
    ++n;
  }
}

TEST_P(EveryEngine, RacyProgramsAreRefused) {
  // A missing token in either direction: the integers would depend on timing.
  std::mt19937_64 g(110);
  const HwConfig cfg = HwConfig::preset("default");
  for (int which = 0; which < 3; ++which) {
    emu_test::ConvCase c = emu_test::make_conv_program(cfg, emu_test::ConvSpec{}, g);
    if (which == 0) {
      isa::tokens_of(c.program.instructions[c.first_bias_load]).push_next = false;
      isa::tokens_of(c.program.instructions[c.first_mac]).pop_prev = false;
    } else if (which == 1) {
      isa::tokens_of(c.program.instructions[c.first_requant]).push_next = false;
      isa::tokens_of(c.program.instructions[c.first_store]).pop_prev = false;
    } else {
      isa::tokens_of(c.program.instructions[c.first_requant]).push_prev = false;
      isa::tokens_of(c.program.instructions[c.first_act_load + 10]).pop_next = false;
    }
    const std::string e = error_of(engine(), cfg, c.program, {{"image", emu_test::random_image(c, g)}});
    EXPECT_NE(e.find("with no dependency token between them"), std::string::npos) << which << ": " << e;
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, EveryEngine, ::testing::ValuesIn(engines_test::kEngines),
                         [](const auto& param_info) { return std::string(param_info.param.name); });
