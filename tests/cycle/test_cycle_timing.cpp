// Timing tests of the cycle model that can fail: lower bounds every layer must respect,
// monotonicity in DRAM bandwidth, overlap through tokens, the int4 speedup, an analytic
// per-layer estimate written here independently, and the bookkeeping of the report.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "dla/testing/random_graphs.hpp"
#include "../emu/conv_program.hpp"
#include "../support/device_programs.hpp"
#include "cycle_test_util.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"

using namespace cycle_test;
using dla::DType;
using dla::ProgramBuilder;
using dla::sim::CycleReport;
using dla::sim::LayerReport;

namespace {

struct Case {
  std::string name;
  HwConfig hw;
  Program program;
  std::map<std::string, HostTensor> inputs;
};

Case resnet(const HwConfig& hw, std::int64_t size = 64) {
  Case c{"resnet18_" + std::to_string(size), hw, dla::compiler::compile(dla::compiler::resnet18(size), hw), {}};
  std::mt19937_64 g(7);
  const auto side = static_cast<std::uint64_t>(size);
  c.inputs["image"] = emu_test::random_u8({1, 3, side, side}, g, 4);
  return c;
}

Case random_graph(const char* preset, std::uint64_t seed, const HwConfig* override_hw = nullptr) {
  dla::testing::RandomGraphBuilder gen(seed);
  Case c;
  c.name = std::string(preset) + " graph " + std::to_string(seed);
  const dla::compiler::Graph g = gen.graph(c.inputs);
  c.hw = override_hw != nullptr ? *override_hw : HwConfig::preset(preset);
  c.program = dla::compiler::compile(g, c.hw);
  return c;
}

Case conv_case(const HwConfig& hw, const emu_test::ConvSpec& spec, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  emu_test::ConvCase cc = emu_test::make_conv_program(hw, spec, g);
  Case c{"conv", hw, cc.program, {}};
  c.inputs["image"] = emu_test::random_image(cc, g);
  return c;
}

/// A few random graphs per preset, and ResNet-18: the programs of the timing checks.
std::vector<Case> programs() {
  std::vector<Case> v;
  v.push_back(resnet(HwConfig::preset("default")));
  for (std::uint64_t s = 0; s < 12; ++s) v.push_back(random_graph("small", 500 + s));
  for (std::uint64_t s = 0; s < 8; ++s) v.push_back(random_graph("default", 600 + s));
  v.push_back(conv_case(HwConfig::preset("default"), emu_test::ConvSpec{}, 3));
  return v;
}

const dla::DebugRecord& record(const Program& p, const std::string& layer) {
  for (const auto& r : p.debug) {
    if (r.layer == layer) return r;
  }
  throw std::runtime_error("no layer " + layer);
}

bool verbose() { return std::getenv("DLA_CYCLE_TEST_VERBOSE") != nullptr; }

}  // namespace

TEST(CycleTiming, EveryLayerTakesAtLeastItsMacAndDramBounds) {
  int layers = 0;
  for (const Case& c : programs()) {
    SCOPED_TRACE(c.name);
    auto dev = run_cycle(c.hw, c.program, c.inputs);
    const CycleReport& r = dev->report();
    ASSERT_EQ(r.layers.size(), c.program.debug.size());
    for (const LayerReport& l : r.layers) {
      const auto& d = record(c.program, l.name);
      const UnitCycles e = unit_cycles(c.program, c.hw, d.insn_begin, d.insn_end);
      // MAC bound: every MAC at the array's peak rate of its mode.
      const auto mac_bound = static_cast<std::uint64_t>(std::ceil(e.mac_bound - 1e-9));
      // DRAM bound: the bytes the layer moves at the peak bandwidth.
      const std::uint64_t dram_bound = cdiv(l.dram_read_bytes + l.dram_write_bytes, u(c.hw.dram_bytes_per_cycle));
      EXPECT_GE(l.cycles, mac_bound) << l.name;
      EXPECT_GE(l.cycles, dram_bound) << l.name;
      EXPECT_LE(l.mac_utilization, 1.0) << l.name;
      ++layers;
    }
  }
  std::printf("checked %d layers\n", layers);
}

TEST(CycleTiming, DoublingDramBandwidthNeverMakesAProgramSlower) {
  int faster = 0, programs_checked = 0;
  auto doubled = [](HwConfig hw) {
    hw.dram_bytes_per_cycle *= 2;
    return hw;
  };
  std::vector<std::pair<Case, Case>> pairs;
  const HwConfig def = HwConfig::preset("default");
  pairs.emplace_back(resnet(def), resnet(doubled(def)));
  for (const char* preset : {"small", "default"}) {
    for (std::uint64_t s = 0; s < 10; ++s) {
      const HwConfig hw2 = doubled(HwConfig::preset(preset));
      pairs.emplace_back(random_graph(preset, 700 + s), random_graph(preset, 700 + s, &hw2));
    }
  }
  for (int tile_rows : {1, 2, 3}) {
    emu_test::ConvSpec spec;
    spec.tile_rows = tile_rows;
    spec.in_c = 32;
    spec.out_c = 16;
    pairs.emplace_back(conv_case(def, spec, 9), conv_case(doubled(def), spec, 9));
  }
  for (const auto& [slow, fast] : pairs) {
    SCOPED_TRACE(slow.name);
    const std::uint64_t c1 = run_cycle(slow.hw, slow.program, slow.inputs)->report().cycles;
    const std::uint64_t c2 = run_cycle(fast.hw, fast.program, fast.inputs)->report().cycles;
    EXPECT_LE(c2, c1) << "bandwidth " << slow.hw.dram_bytes_per_cycle << " -> " << fast.hw.dram_bytes_per_cycle;
    faster += c2 < c1;
    ++programs_checked;
  }
  // Not vacuous: most of these programs move enough data to gain.
  EXPECT_GE(faster, programs_checked / 2);
}

TEST(CycleTiming, TokensLetUnitsOverlapAndBarriersDoNot) {
  const HwConfig hw = HwConfig::preset("default");
  emu_test::ConvSpec spec;
  spec.in_c = 16;
  spec.out_c = 32;
  spec.in_h = 20;
  spec.in_w = 16;
  const Case overlapped = conv_case(hw, spec, 5);
  // The same instructions with a SYNC after each: nothing overlaps (tokens dropped).
  Case serial = overlapped;
  {
    ProgramBuilder b(hw);
    Program p = overlapped.program;
    std::vector<isa::Instruction> insns;
    for (const auto& insn : p.instructions) {
      if (std::holds_alternative<isa::End>(insn)) break;
      isa::Instruction plain = insn;
      isa::tokens_of(plain) = {};
      insns.push_back(plain);
      insns.push_back(isa::Sync{});
    }
    insns.push_back(isa::End{});
    p.instructions = insns;
    p.debug.clear();
    serial.program = p;
  }
  auto busy_sum = [](const CycleReport& r) { return r.units[1].busy + r.units[2].busy + r.units[3].busy; };
  const auto over = run_cycle(hw, overlapped.program, overlapped.inputs);
  const auto ser = run_cycle(hw, serial.program, serial.inputs);
  EXPECT_LT(over->report().cycles, busy_sum(over->report()));
  EXPECT_GE(ser->report().cycles, busy_sum(ser->report()));
  EXPECT_EQ(over->output("out"), ser->output("out"));
  // ResNet-18 as compiled (double-buffered steps) overlaps too.
  const Case r = resnet(hw);
  const auto rr = run_cycle(hw, r.program, r.inputs);
  EXPECT_LT(rr->report().cycles, busy_sum(rr->report()));
  if (verbose()) {
    std::printf("conv: overlapped %llu cycles (busy sum %llu), serial %llu (busy sum %llu)\n",
                static_cast<unsigned long long>(over->report().cycles),
                static_cast<unsigned long long>(busy_sum(over->report())),
                static_cast<unsigned long long>(ser->report().cycles),
                static_cast<unsigned long long>(busy_sum(ser->report())));
  }
}

namespace {

/// One MAC instruction (zero data) in `mode`: the MAC array's busy cycles and the run's.
std::pair<std::uint64_t, std::uint64_t> single_mac(const HwConfig& hw, isa::MacMode mode, int in_c, int out_c,
                                                   int out_hw, int k) {
  ProgramBuilder b(hw);
  b.add(dla::testing::conv_mac(mode, in_c, out_c, out_hw, k));
  b.add(isa::End{});
  const auto dev = run_cycle(hw, b.build());
  return {dev->report().mac_busy, dev->report().cycles};
}

}  // namespace

TEST(CycleTiming, NarrowModesBeatInt8ByTheConfiguredFactorLessPipelineOverhead) {
  for (const char* preset : {"small", "default", "large"}) {
    SCOPED_TRACE(preset);
    HwConfig hw = HwConfig::preset(preset);
    const int in_c = static_cast<int>(hw.mac_rows * hw.a4w4_speedup * hw.a8w4_speedup * 2);
    const int out_c = static_cast<int>(hw.mac_cols * 2);
    // Every mode's fixed cost: the pipeline fill and the first weight set's reads (one
    // clock per column; the later sets' reads hide behind 36 pixels a set).
    const auto depth = u(hw.mac_pipeline_depth) + u(hw.mac_cols);
    const auto [mac8, total8] = single_mac(hw, isa::MacMode::A8W8, in_c, out_c, 6, 3);
    const auto [mac4, total4] = single_mac(hw, isa::MacMode::A4W4, in_c, out_c, 6, 3);
    const auto [mac84, total84] = single_mac(hw, isa::MacMode::A8W4, in_c, out_c, 6, 3);
    const auto [mac16, total16] = single_mac(hw, isa::MacMode::A16W8, in_c, out_c, 6, 3);
    EXPECT_EQ(mac8 - depth, u(hw.a4w4_speedup) * (mac4 - depth));
    EXPECT_EQ(mac8 - depth, u(hw.a8w4_speedup) * (mac84 - depth));
    EXPECT_EQ(mac16 - depth, u(hw.a16w8_passes) * (mac8 - depth));
    // The whole run: the same speedup once the fixed cost (decode, pipeline) is taken out.
    const std::uint64_t fixed = total8 - mac8;
    EXPECT_EQ(total4 - mac4, fixed);
    EXPECT_EQ(total8 - fixed - depth, u(hw.a4w4_speedup) * (total4 - fixed - depth));
    // A different speedup in the config changes the ratio.
    hw.a4w4_speedup = 2;
    const auto [mac4b, total4b] = single_mac(hw, isa::MacMode::A4W4, in_c, out_c, 6, 3);
    (void)total4b;
    EXPECT_EQ(mac8 - depth, 2 * (mac4b - depth));
  }
  // A compiled layer: the same convolution with int4 and with int8 operands.
  const HwConfig hw = HwConfig::preset("default");
  std::map<DType, std::uint64_t> busy;
  std::map<DType, std::uint64_t> fixed_costs;  // per MAC: the pipeline fill and the first weight set's reads
  for (DType t : {DType::I4, DType::I8}) {
    dla::compiler::Graph g;
    const int x = g.input("x", t, 2, {1, 64, 10, 10});
    dla::compiler::ConvAttrs a;
    a.kernel_h = a.kernel_w = 3;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
    std::vector<std::int32_t> w(64 * 64 * 9, 1);
    dla::compiler::QuantSpec q;
    q.dtype = t;
    q.frac = 2;
    const int y = g.conv2d("conv", x, 64, a, t, w, std::vector<int>(64, 3), {}, q);
    g.mark_output(y);
    const Program p = dla::compiler::compile(g, hw);
    HostTensor in;
    in.dtype = t;
    in.frac = 2;
    in.shape = {1, 64, 10, 10};
    in.values.assign(6400, 1);
    const auto dev = run_cycle(hw, p, {{"x", in}});
    busy[t] = dev->report().layers.at(0).mac_busy;
    for (const auto& insn : p.instructions) {
      if (const auto* m = std::get_if<isa::Mac>(&insn)) {
        fixed_costs[t] += u(hw.mac_pipeline_depth) + u(std::min(m->out_c, hw.mac_cols));
      }
    }
  }
  const double ratio = static_cast<double>(busy[DType::I8] - fixed_costs[DType::I8]) /
                       static_cast<double>(busy[DType::I4] - fixed_costs[DType::I4]);
  EXPECT_NEAR(ratio, static_cast<double>(hw.a4w4_speedup), 1e-9);
  EXPECT_GT(static_cast<double>(busy[DType::I8]) / static_cast<double>(busy[DType::I4]),
            0.9 * static_cast<double>(hw.a4w4_speedup));
}

// The analytic estimate of a layer, written here from dla/cycle.hpp's formulas, of a
// pipeline of loads, computes and stores:
//   work  = each unit's serial work over the layer's instructions, and the DRAM bus's;
//           no layer can beat the largest (all its work lies in its span): asserted exactly;
//   fill  = the loads before the layer's first compute instruction (nothing to compute yet),
//   drain = the stores after its last compute instruction, and
//   tail  = the computes after its last load (nothing left to load),
//   estimate = max(fill + compute + drain, load + tail + drain, store, bus).
// The model agrees within kTolerance on every layer of at least kMinCycles estimated
// cycles (smaller ones are dominated by decode and token hand-offs the estimate ignores).
// The estimate ignores that loads and stores share the DRAM bus: load-bound layers whose
// stores take a good part of the bus come out slower than estimated (up to 10% on these
// programs); most layers agree exactly.
TEST(CycleTiming, AnalyticEstimatePerLayerAgreesWithTheModel) {
  constexpr double kTolerance = 0.15;
  constexpr std::uint64_t kMinCycles = 1000;
  int compared = 0;
  double worst = 0;
  for (const Case& c : programs()) {
    SCOPED_TRACE(c.name);
    const auto dev = run_cycle(c.hw, c.program, c.inputs);
    for (const LayerReport& l : dev->report().layers) {
      const auto& d = record(c.program, l.name);
      if (d.insn_begin == d.insn_end) continue;
      const UnitCycles e = unit_cycles(c.program, c.hw, d.insn_begin, d.insn_end);
      const std::uint64_t bus = cdiv(e.bus_bytes, u(c.hw.dram_bytes_per_cycle));
      const std::uint64_t work = std::max({e.compute, e.load, e.store, bus});
      EXPECT_GE(l.cycles, work) << l.name;
      EXPECT_EQ(l.mac_busy, e.mac) << l.name;
      std::uint32_t first_compute = d.insn_end, last_compute = d.insn_begin, last_load = d.insn_begin;
      bool any_compute = false;
      for (std::uint32_t i = d.insn_begin; i < d.insn_end; ++i) {
        const auto q = isa::queue_of(c.program.instructions[i]);
        if (q == isa::Queue::kCompute) {
          first_compute = std::min(first_compute, i);
          last_compute = i;
          any_compute = true;
        }
        if (q == isa::Queue::kLoad) last_load = i;
      }
      const std::uint64_t fill = unit_cycles(c.program, c.hw, d.insn_begin, first_compute).load;
      const std::uint64_t drain = any_compute ? unit_cycles(c.program, c.hw, last_compute + 1, d.insn_end).store : 0;
      const std::uint64_t tail = unit_cycles(c.program, c.hw, last_load + 1, d.insn_end).compute;
      const std::uint64_t estimate =
          std::max({fill + e.compute + drain, e.load + tail + drain, e.store, bus});
      const double error = std::fabs(static_cast<double>(l.cycles) - static_cast<double>(estimate)) /
                           static_cast<double>(estimate);
      if (estimate >= kMinCycles) {
        EXPECT_LE(error, kTolerance) << l.name << ": " << l.cycles << " cycles, estimate " << estimate
                                     << " (compute " << e.compute << ", load " << e.load << ", store " << e.store
                                     << ", bus " << bus << ", fill " << fill << ", drain " << drain << ", tail "
                                     << tail << ")";
        worst = std::max(worst, error);
        ++compared;
      }
      if (verbose()) {
        std::printf("%-20s %-20s cycles %8llu estimate %8llu error %5.1f%% (c %llu l %llu s %llu b %llu f %llu d %llu "
                    "t %llu)\n",
                    c.name.c_str(), l.name.c_str(), static_cast<unsigned long long>(l.cycles),
                    static_cast<unsigned long long>(estimate), 100 * error, static_cast<unsigned long long>(e.compute),
                    static_cast<unsigned long long>(e.load), static_cast<unsigned long long>(e.store),
                    static_cast<unsigned long long>(bus), static_cast<unsigned long long>(fill),
                    static_cast<unsigned long long>(drain), static_cast<unsigned long long>(tail));
      }
    }
  }
  std::printf("%d layers of >= %llu cycles within %.0f%% of the analytic estimate (worst %.1f%%)\n", compared,
              static_cast<unsigned long long>(kMinCycles), 100 * kTolerance, 100 * worst);
  EXPECT_GE(compared, 30);
}

TEST(CycleTiming, UnitsAccountForEveryCycleAndBusyCyclesFollowTheFormulas) {
  for (const Case& c : programs()) {
    SCOPED_TRACE(c.name);
    const auto dev = run_cycle(c.hw, c.program, c.inputs);
    const CycleReport& r = dev->report();
    ASSERT_EQ(r.units.size(), 4u);
    for (const auto& unit : r.units) {
      EXPECT_EQ(unit.busy + unit.stalled() + unit.idle, r.cycles) << unit.name;
    }
    const UnitCycles e = unit_cycles(c.program, c.hw, 0, static_cast<std::uint32_t>(c.program.instructions.size()));
    EXPECT_EQ(r.units[0].busy, e.fetch);  // one decode cycle per instruction
    EXPECT_EQ(r.units[0].instructions, c.program.instructions.size());
    EXPECT_EQ(r.units[2].busy, e.compute);
    EXPECT_EQ(r.mac_busy + r.requant_busy + r.vector_busy, e.compute);
    // DMA busy is the uncontended time; contention is reported as a stall.
    const auto contention = [](const dla::sim::UnitReport& x) {
      return x.stalls[static_cast<std::size_t>(dla::sim::Stall::kDramContention)];
    };
    EXPECT_EQ(r.units[1].busy, e.load);
    EXPECT_EQ(r.units[3].busy, e.store);
    EXPECT_EQ(contention(r.units[0]) + contention(r.units[2]), 0u);  // only DMA units contend
    EXPECT_EQ(r.dram_bus_read_bytes + r.dram_bus_write_bytes, e.bus_bytes);
    EXPECT_GE(r.dram_busy_cycles, cdiv(e.bus_bytes, u(c.hw.dram_bytes_per_cycle)));
    EXPECT_EQ(r.cycles, dev->stats().cycles);
    // Layers: their counters are the statistics', their spans lie inside the run.
    const auto stats = dev->stats();
    ASSERT_EQ(stats.layers.size(), r.layers.size());
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
      EXPECT_EQ(stats.layers[i].cycles, r.layers[i].cycles);
      EXPECT_EQ(stats.layers[i].macs, r.layers[i].macs);
      EXPECT_EQ(stats.layers[i].saturations, r.layers[i].saturations);
      EXPECT_EQ(stats.layers[i].acc_overflows, r.layers[i].acc_overflows);
      EXPECT_LE(r.layers[i].end, r.cycles);
      EXPECT_EQ(r.layers[i].end - r.layers[i].start, r.layers[i].cycles);
    }
  }
}
