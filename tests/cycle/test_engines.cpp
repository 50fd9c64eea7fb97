// One suite over every engine (emulator, cycle model; RTL co-simulation joins as a row of
// engines.hpp): the same programs, compared element by element with one reference (the
// compiler's reference evaluator, or a naive convolution for hand-built programs); the
// counters every engine reports compared with the emulator's; the same errors for the
// same broken programs.
#include <gtest/gtest.h>

#include <random>

#include "../compiler/random_graphs.hpp"
#include "../emu/conv_program.hpp"
#include "../emu/emu_test_util.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/reference.hpp"
#include "engines.hpp"

using dla::DType;
using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
using dla::ProgramBuilder;
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

HwConfig with_depths(HwConfig c, int queue_depth, int token_depth) {
  c.queue_depth = queue_depth;
  c.token_depth = token_depth;
  return c;
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
  struct Variant {
    const char* name;
    HwConfig cfg;
    emu_test::ConvSpec spec;
  };
  HwConfig acc16 = HwConfig::preset("default");
  acc16.acc_bits = 16;
  HwConfig acc16sat = acc16;
  acc16sat.overflow_policy = dla::OverflowPolicy::SATURATE_FINAL;
  acc16sat.rounding_mode = dla::RoundMode::HALF_EVEN;
  HwConfig slow_dram = HwConfig::preset("large");
  slow_dram.rounding_mode = dla::RoundMode::FLOOR;
  slow_dram.dram_latency_cycles = 1000;
  slow_dram.dram_bytes_per_cycle = 1;
  slow_dram.dram_burst_bytes = 256;
  emu_test::ConvSpec strided;
  strided.stride = 2;
  strided.in_h = 13;
  strided.in_w = 11;
  strided.tile_rows = 1;
  emu_test::ConvSpec wide;
  wide.in_c = 37;
  wide.out_c = 29;
  wide.in_h = 12;
  wide.in_w = 12;
  wide.tile_rows = 3;
  wide.clip_lo = -100;
  wide.clip_hi = 90;
  const Variant variants[] = {
      {"default", HwConfig::preset("default"), emu_test::ConvSpec{}},
      {"small", HwConfig::preset("small"), emu_test::ConvSpec{}},
      {"depth 1/1", with_depths(HwConfig::preset("default"), 1, 1), emu_test::ConvSpec{}},
      {"depth 2/1 strided", with_depths(HwConfig::preset("default"), 2, 1), strided},
      {"acc16 wrap", acc16, wide},
      {"acc16 saturate half-even", acc16sat, wide},
      {"large floor, slow DRAM", slow_dram, wide},
  };
  for (const auto& v : variants) {
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
  HostTensor image;
  image.dtype = DType::U8;
  image.frac = 4;
  image.shape = {1, 3, 64, 64};
  std::mt19937_64 rng(18);
  for (std::uint64_t i = 0; i < image.num_elements(); ++i) image.values.push_back(static_cast<std::int32_t>(rng() % 256));
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
  {  // SRAM overrun
    ProgramBuilder b(small);
    b.add(isa::Sync{});
    isa::Mac mac;
    mac.act_addr = 8000;
    mac.in_c = 200;
    b.add(mac);
    b.add(isa::End{});
    v.emplace_back(small, b.build());
  }
  {  // DRAM overrun
    ProgramBuilder b(small);
    const std::uint64_t t = b.allocate(100);
    isa::Load ld;
    ld.dram_addr = static_cast<std::int64_t>(t) + 50;
    ld.row_bytes = 51;
    b.add(ld);
    b.add(isa::End{});
    v.emplace_back(small, b.build());
  }
  {  // pop with no pusher
    ProgramBuilder b(def);
    isa::Load ld;
    ld.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
    b.add_constant(std::vector<std::uint8_t>(16, 0));
    b.add(ld);
    isa::Mac mac;
    mac.tokens.pop_prev = true;
    b.add(mac);
    b.add(isa::End{});
    v.emplace_back(def, b.build());
  }
  {  // circular wait
    ProgramBuilder b(def);
    isa::VCopy c;
    c.tokens.pop_next = true;
    c.tokens.push_next = true;
    c.dst_addr = 64;
    c.bytes = 8;
    b.add(c);
    isa::Store s;
    s.tokens.pop_prev = true;
    s.tokens.push_prev = true;
    s.row_bytes = 8;
    s.dram_addr = static_cast<std::int64_t>(b.allocate(8));
    b.add(s);
    b.add(isa::End{});
    v.emplace_back(def, b.build());
  }
  {  // a full queue stalls dispatch of the pusher
    const HwConfig shallow = with_depths(def, 1, 8);
    ProgramBuilder b(shallow);
    b.add_constant(std::vector<std::uint8_t>(64, 0));
    isa::Load l0;
    l0.tokens.pop_next = true;
    l0.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
    l0.row_bytes = 16;
    b.add(l0);
    isa::Load l1 = l0;
    l1.tokens.pop_next = false;
    l1.sram_addr = 32;
    b.add(l1);
    isa::Mac mac;
    mac.tokens.push_prev = true;
    b.add(mac);
    b.add(isa::End{});
    v.emplace_back(shallow, b.build());
  }
  {  // a full token FIFO before a SYNC
    const HwConfig one = with_depths(def, 16, 1);
    ProgramBuilder b(one);
    b.add_constant(std::vector<std::uint8_t>(64, 0));
    isa::Load l;
    l.tokens.push_next = true;
    l.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
    l.row_bytes = 16;
    b.add(l);
    l.sram_addr = 16;
    b.add(l);
    b.add(isa::Sync{});
    isa::VCopy c;
    c.tokens.pop_prev = true;
    c.dst_addr = 64;
    b.add(c);
    b.add(c);
    b.add(isa::End{});
    v.emplace_back(one, b.build());
  }
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
