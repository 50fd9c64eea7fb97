// The rtl engine's own checks (dla/rtl.hpp): its lockstep comparison and hang detection
// through the test-only fault hook, the refusal of a config no core was built for, every
// MAC mode and every vector instruction on the RTL, and ResNet-18 bit-identical to the
// emulator. The suite over every
// engine (test_engines.cpp) runs its rows on rtl as well.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

#include "dla/testing/random_graphs.hpp"
#include "../emu/conv_program.hpp"
#include "dla/compiler/graph.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/mac_modes.hpp"
#include "dla/param_records.hpp"
#include "dla/rtl.hpp"
#include "cycle_test_util.hpp"

using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
namespace isa = dla::isa;
namespace sim = dla::sim;

namespace {

using Inputs = std::map<std::string, HostTensor>;

/// Runs `p` on the rtl engine; the ExecutionError's instruction and text, or "" on success.
std::string rtl_error(const HwConfig& hw, const Program& p, const Inputs& inputs, const sim::RtlOptions& options,
                      std::uint32_t* at = nullptr) {
  auto dev = sim::make_rtl_engine(hw, options);
  dev->load(p);
  for (const auto& [name, t] : inputs) dev->set_input(name, t);
  try {
    dev->run();
  } catch (const sim::ExecutionError& e) {
    if (at != nullptr) *at = e.instruction();
    return e.what();
  }
  return "";
}

/// Per layer, the RTL's compute cycles equal the cycle model's formulas for the same
/// instructions, less mac_pipeline_depth per MAC (the blocks have one register stage where
/// the formula adds the array's pipeline fill).
void expect_rtl_cycles_equal_the_formulas(const Program& p, const sim::CycleReport& rep, const HwConfig& hw) {
  ASSERT_EQ(rep.layers.size(), p.debug.size());
  std::uint64_t layer_rtl = 0;
  for (std::size_t i = 0; i < rep.layers.size(); ++i) {
    const auto& l = rep.layers[i];
    std::uint64_t macs = 0;
    for (std::uint32_t k = p.debug[i].insn_begin; k < p.debug[i].insn_end; ++k) {
      macs += std::holds_alternative<isa::Mac>(p.instructions[k]);
    }
    EXPECT_EQ(l.rtl_cycles + macs * static_cast<std::uint64_t>(hw.mac_pipeline_depth), l.rtl_model_cycles) << l.name;
    layer_rtl += l.rtl_cycles;
  }
  EXPECT_EQ(layer_rtl, rep.rtl.rtl_cycles);
}

std::uint32_t first_of(const Program& p, int opclass, int funct = isa::kNoFunct) {
  for (std::uint32_t i = 0; i < p.instructions.size(); ++i) {
    const isa::InsnInfo& info = isa::info_of(p.instructions[i]);
    if (info.opclass == opclass && info.funct == funct) return i;
  }
  ADD_FAILURE() << "no instruction of opclass " << opclass;
  return 0;
}

struct ResNet {
  HwConfig hw = HwConfig::preset("default");
  Program program;
  Inputs inputs;
  ResNet() {
    program = dla::compiler::compile(dla::compiler::resnet18(32), hw);
    std::mt19937_64 rng(18);
    inputs["image"] = emu_test::random_u8({1, 3, 32, 32}, rng, 4);
  }
};

const ResNet& resnet() {
  static const ResNet r;
  return r;
}

/// Every vector instruction: tables on i8 and i16 inputs (VLUT), a padded max pool, an
/// average pool with padding, a concat (VCOPY) and a 2x upsample, on 24 channels (not a
/// multiple of any preset's vector lanes, so lane groups straddle pixels).
struct VectorNet {
  dla::compiler::Graph graph;
  Inputs inputs;
  VectorNet() {
    namespace c = dla::compiler;
    const int x = graph.input("x", dla::DType::I8, 4, {1, 24, 9, 9});
    const int a = graph.lut("silu", x, {dla::lut::Function::kSiLU, 0.0}, {}, c::QuantSpec{dla::DType::I8, 5});
    const int b = graph.max_pool("maxpool", a, c::PoolAttrs{3, 3, 2, 2, 1, 1, 1, 1});
    const int d = graph.avg_pool("avgpool", b, c::PoolAttrs{3, 3, 1, 1, 1, 1, 1, 1}, c::QuantSpec{dla::DType::I16, 10});
    const int e = graph.lut("tanh", d, {dla::lut::Function::kTanh, 0.0}, {}, c::QuantSpec{dla::DType::I16, 10});
    const int f = graph.concat("cat", {e, d});
    graph.mark_output(graph.upsample2x("up", f));
    std::mt19937_64 rng(11);
    HostTensor t;
    t.dtype = dla::DType::I8;
    t.frac = 4;
    t.shape = {1, 24, 9, 9};
    for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(static_cast<std::int8_t>(rng() & 0xFF));
    inputs["x"] = t;
  }
};

const VectorNet& vector_net() {
  static const VectorNet v;
  return v;
}

}  // namespace

TEST(RtlEngine, ResNet18IsBitIdenticalToTheEmulatorAndReportsWhatRanOnTheRtl) {
  const ResNet& r = resnet();
  sim::RunOptions opts;
  opts.dump_layers = true;
  auto emu = sim::make_emulator(r.hw);
  auto rtl = sim::make_rtl_engine(r.hw);
  for (sim::Device* d : {static_cast<sim::Device*>(emu.get()), static_cast<sim::Device*>(rtl.get())}) {
    d->load(r.program);
    d->set_input("image", r.inputs.at("image"));
    d->run(opts);
  }
  EXPECT_EQ(rtl->name(), "rtl");
  const auto a = emu->layer_dumps(), b = rtl->layer_dumps();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].tensor, b[i].tensor) << "layer " << a[i].name;
  EXPECT_EQ(emu->stats().saturations, rtl->stats().saturations);

  const sim::CycleReport& rep = rtl->report();
  EXPECT_EQ(rep.rtl.core.rfind("default (MAC 16x16", 0), 0u) << rep.rtl.core;
  std::uint64_t compute = 0, fallbacks = 0;
  for (const auto& insn : r.program.instructions) compute += isa::queue_of(insn) == isa::Queue::kCompute;
  for (const auto& [mnemonic, n] : rep.rtl.fallbacks) {
    ADD_FAILURE() << mnemonic << " did not run on the RTL";
    fallbacks += n;
  }
  EXPECT_GT(rep.rtl.instructions, 0u);
  EXPECT_EQ(rep.rtl.instructions + fallbacks, compute);
  EXPECT_EQ(rep.rtl.lockstep_checks, rep.rtl.instructions);
  EXPECT_GT(rep.rtl.rtl_cycles, 0u);
  // Timing: the RTL takes the clocks the cycle model's formulas count, less the pipeline
  // fill per MAC, which is within 2% on every layer of ResNet-18 at 32x32.
  expect_rtl_cycles_equal_the_formulas(r.program, rep, r.hw);
  for (const auto& l : rep.layers) {
    EXPECT_LE(static_cast<double>(l.rtl_model_cycles - l.rtl_cycles), 0.02 * static_cast<double>(l.rtl_model_cycles))
        << l.name;
  }
  const std::string table = sim::report_table(rep);
  EXPECT_NE(table.find("not on the RTL (shared semantics, formula timing): none"), std::string::npos) << table;
}

TEST(RtlEngine, EveryVectorInstructionRunsOnTheRtlBitIdenticalToTheEmulator) {
  const VectorNet& net = vector_net();
  for (const char* preset : {"small", "default", "large"}) {
    SCOPED_TRACE(preset);
    const HwConfig hw = HwConfig::preset(preset);
    const Program p = dla::compiler::compile(net.graph, hw);
    std::set<std::string> kinds;
    for (const auto& insn : p.instructions) kinds.insert(std::string(isa::info_of(insn).mnemonic));
    for (const char* m : {"vlut", "vmaxpool", "vavgpool", "vupsample", "vcopy"}) EXPECT_TRUE(kinds.count(m)) << m;
    sim::RunOptions opts;
    opts.dump_layers = true;
    auto emu = sim::make_emulator(hw);
    auto rtl = sim::make_rtl_engine(hw);
    for (sim::Device* d : {static_cast<sim::Device*>(emu.get()), static_cast<sim::Device*>(rtl.get())}) {
      d->load(p);
      d->set_input("x", net.inputs.at("x"));
      d->run(opts);
    }
    const auto a = emu->layer_dumps(), b = rtl->layer_dumps();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].tensor, b[i].tensor) << "layer " << a[i].name;
    EXPECT_EQ(emu->stats().saturations, rtl->stats().saturations);
    const sim::CycleReport& rep = rtl->report();
    EXPECT_TRUE(rep.rtl.fallbacks.empty());
    std::uint64_t compute = 0;
    for (const auto& insn : p.instructions) compute += isa::queue_of(insn) == isa::Queue::kCompute;
    EXPECT_EQ(rep.rtl.instructions, compute);
    EXPECT_EQ(rep.rtl.lockstep_checks, compute);
    // Every layer takes on the RTL exactly the cycles of the formulas: the tables' loads,
    // and the windows' lane groups that straddle pixels (two or three input runs a beat).
    expect_rtl_cycles_equal_the_formulas(p, rep, hw);
  }
}

TEST(RtlEngine, EveryMacModeRunsOnTheRtl) {
  // Random graphs (every precision, depthwise, grouped, strided, dilated) on each preset's
  // core: the lockstep check compares every MAC with perform(), every layer's RTL cycles
  // the formulas'; the modes that ran are collected from the programs.
  std::set<std::tuple<int, bool, bool>> seen;
  for (const char* preset : {"small", "default", "large"}) {
    for (int i = 0; i < 100; ++i) {
      const std::uint64_t seed = 7000 + static_cast<std::uint64_t>(i) * 131;
      dla::testing::RandomGraphBuilder gen(seed);
      Inputs inputs;
      const dla::compiler::Graph g = gen.graph(inputs);
      const HwConfig hw = HwConfig::preset(preset);
      const Program p = dla::compiler::compile(g, hw);
      SCOPED_TRACE(std::string(preset) + " seed " + std::to_string(seed));
      auto dev = sim::make_rtl_engine(hw);
      dev->load(p);
      for (const auto& [name, t] : inputs) dev->set_input(name, t);
      ASSERT_NO_THROW(dev->run());
      expect_rtl_cycles_equal_the_formulas(p, dev->report(), hw);
      for (const auto& insn : p.instructions) {
        if (const auto* m = std::get_if<isa::Mac>(&insn)) seen.emplace(static_cast<int>(m->mode), m->act_unsigned != 0, m->depthwise != 0);
      }
    }
  }
  for (const isa::MacModeInfo& row : isa::kMacModes) {
    for (const bool act_unsigned : {false, true}) {
      if (act_unsigned && !row.has_unsigned) continue;
      EXPECT_TRUE(seen.count({static_cast<int>(row.mode), act_unsigned, false}))
          << row.name << (act_unsigned ? " unsigned" : " signed") << " did not run";
    }
    EXPECT_TRUE(seen.count({static_cast<int>(row.mode), false, true}) || seen.count({static_cast<int>(row.mode), true, true}))
        << row.name << " depthwise did not run";
  }
}

TEST(RtlEngine, AMacThatDoesNotAccumulateStartsEveryPartialSumFromZero) {
  // The compiler always accumulates (onto a bias); the ISA also lets a MAC overwrite its
  // tile. Here ACC holds random words first, so a core that read them (or restarted a
  // sum at a later chunk, kernel position or a16w8 pass) differs from perform() in the
  // lockstep check. The tile starts at an odd word: partial-sum rows at every offset of
  // the ACC SRAM's bank words.
  std::mt19937_64 g(41);
  auto bytes = [&g](std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(g() & 0xFF);
    return v;
  };
  for (const char* preset : {"default", "large"}) {
    const HwConfig hw = HwConfig::preset(preset);
    for (const isa::MacModeInfo& row : isa::kMacModes) {
      for (const bool depthwise : {false, true}) {
        SCOPED_TRACE(std::string(preset) + " " + std::string(row.name) + (depthwise ? " depthwise" : ""));
        dla::ProgramBuilder b(hw);
        const std::uint64_t act_at = b.add_constant(bytes(8192));
        const std::uint64_t wgt_at = b.add_constant(bytes(32768));
        const std::uint64_t acc_at = b.add_constant(bytes(4 * 512));
        isa::Load la;
        la.buffer = static_cast<std::int64_t>(isa::Buffer::ACT);
        la.dram_addr = static_cast<std::int64_t>(act_at);
        la.row_bytes = la.dram_stride = la.sram_stride = 4096;  // rows of at most 16383 bytes
        la.rows = 2;
        b.add(la);
        isa::Load lw = la;
        lw.buffer = static_cast<std::int64_t>(isa::Buffer::WGT);
        lw.dram_addr = static_cast<std::int64_t>(wgt_at);
        lw.row_bytes = lw.dram_stride = lw.sram_stride = 8192;
        lw.rows = 4;
        b.add(lw);
        isa::Load lacc = la;
        lacc.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
        lacc.dram_addr = static_cast<std::int64_t>(acc_at);
        lacc.row_bytes = lacc.dram_stride = 4 * 512;
        lacc.sram_stride = 512;
        lacc.rows = 1;
        lacc.tokens.push_next = true;
        b.add(lacc);
        // Several input-channel chunks in every mode (up to 64 channels a chunk on
        // default's a4w4), two output-channel blocks with a ragged one, 2 x 2 kernel.
        const int in_c = depthwise ? 37 : 150, out_c = depthwise ? 37 : 20;
        isa::Mac mac = dla::testing::conv_mac(row.mode, in_c, out_c, 3, 2, depthwise);
        mac.tokens.pop_prev = true;
        mac.accumulate = 0;
        mac.acc_addr = 3;
        b.add(mac);
        b.add(isa::End{});
        EXPECT_EQ(rtl_error(hw, b.build(), {}, {}), "");
      }
    }
  }
}

/// LOAD ACT (random bytes), ACC (random words) and the record; REQUANT of pixels x channels
/// to `type` at ACT byte `act_addr`; STORE of its bytes to the output "rq" (an i8 tensor
/// of those bytes), the REQUANT alone as layer "rq".
Program requant_program(const HwConfig& hw, dla::DType type, std::int64_t act_addr, int pixels, int channels) {
  std::mt19937_64 g(5);
  dla::ProgramBuilder b(hw);
  const int n = pixels * channels;
  const auto bytes = static_cast<std::int64_t>(dla::storage_bytes(type, static_cast<std::uint64_t>(n)));
  std::vector<std::uint8_t> act, acc;
  for (std::int64_t i = 0; i < act_addr + bytes; ++i) act.push_back(static_cast<std::uint8_t>(g()));
  for (int i = 0; i < n; ++i) emu_test::append_i32(acc, static_cast<std::int32_t>(g() % 2000001) - 1000000);
  dla::isa::RequantRecord rec;
  rec.clip_lo = INT32_MIN;
  rec.clip_hi = INT32_MAX;
  for (int c = 0; c < channels; ++c) rec.shift.push_back(static_cast<std::int8_t>(c % 5 + 10));
  const std::vector<std::uint8_t> rec_bytes = rec.encode();
  const std::uint64_t act_at = b.add_constant(act), acc_at = b.add_constant(acc), rec_at = b.add_constant(rec_bytes);
  isa::Load la;
  la.buffer = static_cast<std::int64_t>(isa::Buffer::ACT);
  la.dram_addr = static_cast<std::int64_t>(act_at);
  la.row_bytes = static_cast<std::int64_t>(act.size());
  b.add(la);
  isa::Load lacc = la;
  lacc.buffer = static_cast<std::int64_t>(isa::Buffer::ACC);
  lacc.dram_addr = static_cast<std::int64_t>(acc_at);
  lacc.row_bytes = static_cast<std::int64_t>(acc.size());
  b.add(lacc);
  isa::Load lp = la;
  lp.buffer = static_cast<std::int64_t>(isa::Buffer::PARAM);
  lp.dram_addr = static_cast<std::int64_t>(rec_at);
  lp.row_bytes = static_cast<std::int64_t>(rec_bytes.size());
  lp.tokens.push_next = true;
  b.add(lp);
  isa::Requant rq;
  rq.tokens.pop_prev = true;
  rq.tokens.push_next = true;
  rq.out_type = static_cast<std::int64_t>(type);
  rq.act_addr = act_addr;
  rq.pixels = pixels;
  rq.channels = channels;
  const std::uint32_t at = b.add(rq);
  const dla::TensorDesc out = b.add_tensor({"rq", dla::TensorRole::kOutput, dla::DType::I8, 0, dla::Layout::kNHWC,
                                            {1, static_cast<std::uint64_t>(bytes), 1, 1}, 0});
  isa::Store st;
  st.tokens.pop_prev = true;
  st.sram_addr = act_addr;
  st.dram_addr = static_cast<std::int64_t>(out.dram_offset);
  st.row_bytes = bytes;
  b.add(st);
  b.add(isa::End{});
  dla::DebugRecord d;
  d.layer = "rq";
  d.insn_begin = at;
  d.insn_end = at + 1;
  d.output = out;
  d.output.role = dla::TensorRole::kIntermediate;
  b.add_debug(d);
  return b.build();
}

/// Runs `p` on the rtl engine and the emulator, expecting equal outputs "rq"; the rtl one.
std::unique_ptr<sim::CycleDevice> run_against_emulator(const HwConfig& hw, const Program& p) {
  auto rtl = sim::make_rtl_engine(hw);
  auto emu = sim::make_emulator(hw);
  for (sim::Device* dev : {static_cast<sim::Device*>(rtl.get()), static_cast<sim::Device*>(emu.get())}) {
    dev->load(p);
    dev->run();
  }
  EXPECT_EQ(rtl->output("rq"), emu->output("rq"));
  return rtl;
}

TEST(RtlEngine, AnOutputRunThatTakesTwoClocksStallsItsBeatAsTheCycleModelCounts) {
  // A REQUANT to i32 writes 16 lanes x 4 bytes a beat; from ACT byte 8 on default (4 banks
  // of 16 bytes) a full group touches 5 bank words, two clocks of the ACT SRAM's port.
  const HwConfig hw = HwConfig::preset("default");
  const int n = 100;
  std::unique_ptr<sim::CycleDevice> rtl;
  ASSERT_NO_THROW(rtl = run_against_emulator(hw, requant_program(hw, dla::DType::I32, 8, 10, 10)));
  const std::uint64_t stalls = cycle_test::write_stalls(8, 32, n, 16, hw);
  EXPECT_EQ(stalls, 6u);  // six full groups of two clocks; the last 4 words (bytes 392..407) take one
  ASSERT_EQ(rtl->report().layers.size(), 1u);
  const auto& l = rtl->report().layers[0];
  EXPECT_EQ(l.rtl_cycles, (n + 15) / 16 + stalls);
  EXPECT_EQ(l.rtl_model_cycles, l.rtl_cycles);
}

TEST(RtlEngine, AFourBitOutputKeepsTheNibbleItSharesWithTheBytesNeighbour) {
  // 15 i4 outputs from byte 3: the last byte's high nibble is not the REQUANT's, and keeps
  // the random byte ACT held there (as pack4 does in perform(); the lockstep check
  // compares that byte too).
  for (const char* preset : {"small", "default"}) {
    const HwConfig hw = HwConfig::preset(preset);
    EXPECT_NO_THROW(run_against_emulator(hw, requant_program(hw, dla::DType::I4, 3, 3, 5))) << preset;
  }
}

TEST(RtlEngine, ALockstepMismatchStopsTheRunWithOneMessage) {
  std::mt19937_64 g(3);
  const HwConfig hw = HwConfig::preset("default");
  const emu_test::ConvCase c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  const Inputs inputs{{"image", emu_test::random_image(c, g)}};
  EXPECT_EQ(rtl_error(hw, c.program, inputs, {}), "") << "no fault: the run passes";

  sim::RtlOptions mac;
  mac.fault = {sim::RtlFault::Kind::kCorruptResult, c.first_mac};
  std::uint32_t at = 0;
  const std::string e = rtl_error(hw, c.program, inputs, mac, &at);
  EXPECT_EQ(at, c.first_mac);
  for (const std::string& part : {"instruction " + std::to_string(c.first_mac) + ": rtl lockstep mismatch in the MAC array",
                                 std::string(" on mac "), std::string("(layer 'conv1') at cycle "),
                                 std::string(": ACC word "), std::string("(element 0 of the tile): RTL "),
                                 std::string(", expected ")}) {
    EXPECT_NE(e.find(part), std::string::npos) << "'" << part << "' missing from: " << e;
  }

  sim::RtlOptions rq;
  rq.fault = {sim::RtlFault::Kind::kCorruptResult, c.first_requant};
  const std::string r = rtl_error(hw, c.program, inputs, rq, &at);
  EXPECT_EQ(at, c.first_requant);
  EXPECT_NE(r.find("rtl lockstep mismatch in the requantizer (dla_requant) on requant "), std::string::npos) << r;
  EXPECT_NE(r.find("(element 0 of the i8 output): RTL "), std::string::npos) << r;

  const ResNet& net = resnet();
  const std::uint32_t vadd = first_of(net.program, 5, 0);
  sim::RtlOptions va;
  va.fault = {sim::RtlFault::Kind::kCorruptResult, vadd};
  const std::string v = rtl_error(net.hw, net.program, net.inputs, va, &at);
  EXPECT_EQ(at, vadd);
  EXPECT_NE(v.find("in the vector unit (dla_vadd) on vadd "), std::string::npos) << v;
  EXPECT_NE(v.find("(layer 'layer1.0.add')"), std::string::npos) << v;

  // The table and the window datapath, on the instruction's first output element.
  const VectorNet& vn = vector_net();
  const Program p = dla::compiler::compile(vn.graph, hw);
  struct Case {
    int funct;
    const char* unit;
    const char* layer;
    const char* element;
  };
  for (const Case& k : {Case{5, "vector unit (dla_vlut) on vlut ", "silu", "(element 0 of the i8 output): RTL "},
                        Case{5, "vector unit (dla_vlut) on vlut ", "tanh", "(element 0 of the i16 output): RTL "},
                        Case{1, "vector unit (dla_vpool) on vmaxpool ", "maxpool", "(element 0 of the i8 output): RTL "},
                        Case{2, "vector unit (dla_vpool) on vavgpool ", "avgpool", "(element 0 of the i16 output): RTL "},
                        Case{4, "vector unit (dla_vpool) on vcopy ", "cat", "(element 0 of the u8 output): RTL "},
                        Case{3, "vector unit (dla_vpool) on vupsample ", "up", "(element 0 of the i16 output): RTL "}}) {
    // The first instruction of that funct in the layer.
    std::uint32_t index = 0;
    for (const auto& d : p.debug) {
      if (d.layer != k.layer) continue;
      for (std::uint32_t i = d.insn_begin; i < d.insn_end && index == 0; ++i) {
        const isa::InsnInfo& info = isa::info_of(p.instructions[i]);
        if (info.opclass == 5 && info.funct == k.funct) index = i;
      }
    }
    ASSERT_NE(index, 0u) << k.layer;
    sim::RtlOptions o;
    o.fault = {sim::RtlFault::Kind::kCorruptResult, index};
    const std::string m = rtl_error(hw, p, vn.inputs, o, &at);
    EXPECT_EQ(at, index) << m;
    EXPECT_NE(m.find(std::string("rtl lockstep mismatch in the ") + k.unit), std::string::npos) << m;
    EXPECT_NE(m.find(std::string("(layer '") + k.layer + "')"), std::string::npos) << m;
    EXPECT_NE(m.find(k.element), std::string::npos) << m;
  }
}

TEST(RtlEngine, AHungCoreIsAnErrorNamingTheInstruction) {
  std::mt19937_64 g(4);
  const HwConfig hw = HwConfig::preset("small");
  const emu_test::ConvCase c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
  const Inputs inputs{{"image", emu_test::random_image(c, g)}};
  // And the vector unit's table and window datapath.
  const Program vp = dla::compiler::compile(vector_net().graph, hw);
  const std::uint32_t vlut = first_of(vp, 5, 5), vmax = first_of(vp, 5, 1);
  for (const std::uint32_t i : {vlut, vmax}) {
    sim::RtlOptions o;
    o.fault = {sim::RtlFault::Kind::kDropBeat, i};
    std::uint32_t at = 0;
    const std::string e = rtl_error(hw, vp, vector_net().inputs, o, &at);
    EXPECT_EQ(at, i) << e;
    EXPECT_NE(e.find(" hung on " + isa::disassemble(vp.instructions[i])), std::string::npos) << e;
    EXPECT_NE(e.find("got no valid result within 8 cycles"), std::string::npos) << e;
  }
  for (const std::uint32_t i : {c.first_mac, c.first_requant}) {
    sim::RtlOptions o;
    o.fault = {sim::RtlFault::Kind::kDropBeat, i};
    std::uint32_t at = 0;
    const std::string e = rtl_error(hw, c.program, inputs, o, &at);
    EXPECT_EQ(at, i);
    EXPECT_NE(e.find("instruction " + std::to_string(i) + ": rtl: the "), std::string::npos) << e;
    EXPECT_NE(e.find(" hung on " + isa::disassemble(c.program.instructions[i]) + " (layer 'conv1'): beat 1 of "),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("got no valid result within 8 cycles"), std::string::npos) << e;
  }
}

TEST(RtlEngine, AConfigNoCoreWasBuiltForIsRefusedNamingTheBuiltCores) {
  HwConfig hw = HwConfig::preset("default");
  hw.mac_rows = 8;
  try {
    sim::make_rtl_engine(hw);
    FAIL() << "an 8x16 array has no core";
  } catch (const dla::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no RTL core for this hardware config (MAC 8x16"), std::string::npos) << m;
    for (const std::string& p : sim::rtl_core_presets()) EXPECT_NE(m.find(p + " (MAC "), std::string::npos) << m;
    EXPECT_NE(m.find("DLA_RTL_ENGINE_PRESETS"), std::string::npos) << m;
  }
  // Fields that are inputs of the core (or the cycle model's) do not need another core.
  HwConfig other = HwConfig::preset("default");
  other.acc_bits = 20;
  other.rounding_mode = dla::RoundMode::HALF_EVEN;
  other.dram_latency_cycles = 7;
  EXPECT_NO_THROW(sim::make_rtl_engine(other));
}
