// The rtl engine's --trace (dla/rtl.hpp): the VCD of the RTL blocks' own signals, read back
// by a small VCD reader of this test's own. Every block's signals are declared; the clocks
// dumped are exactly the cycles the cycle model's report gives the compute instructions
// (inside a cycle window, or a layer's instructions inside its span); a lockstep mismatch
// or a hung block leaves a file holding that instruction's clocks alone, and the error
// names it. The unit-activity VCD goes beside the RTL's.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../emu/conv_program.hpp"
#include "../support/files.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/rtl.hpp"

using dla::HostTensor;
using dla::HwConfig;
using dla::Program;
namespace sim = dla::sim;

namespace {

using Inputs = std::map<std::string, HostTensor>;

/// What the tests need of a VCD: the declared signals by hierarchical name ("a.b.sig") with
/// their codes, the times in file order, the number of value changes at each time, and every
/// change of a code as (time, value).
struct Vcd {
  std::string timescale;
  std::set<std::string> vars;
  std::map<std::string, std::string> code_of;
  std::vector<std::uint64_t> times;
  std::map<std::uint64_t, std::size_t> changes;
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> values;

  /// The changes of signal `name`.
  std::vector<std::pair<std::uint64_t, std::string>> of(const std::string& name) const {
    const auto c = code_of.find(name);
    if (c == code_of.end()) return {};
    const auto it = values.find(c->second);
    return it == values.end() ? std::vector<std::pair<std::uint64_t, std::string>>{} : it->second;
  }
};

Vcd read_vcd(const std::string& path) {
  std::ifstream in(path);
  Vcd v;
  if (!in) {
    ADD_FAILURE() << "no VCD " << path;
    return v;
  }
  auto skip_to_end = [&](std::string* text) {
    std::string t;
    while (in >> t && t != "$end") {
      if (text != nullptr) *text += t;
    }
  };
  std::vector<std::string> scope;
  std::string tok;
  while (in >> tok) {
    if (tok == "$scope") {
      std::string kind, name;
      in >> kind >> name;
      scope.push_back(name);
      skip_to_end(nullptr);
    } else if (tok == "$upscope") {
      if (!scope.empty()) scope.pop_back();
      skip_to_end(nullptr);
    } else if (tok == "$var") {
      std::string type, width, code, name;
      in >> type >> width >> code >> name;
      std::string full;
      for (const std::string& s : scope) full += s + ".";
      v.vars.insert(full + name);
      v.code_of[full + name] = code;
      skip_to_end(nullptr);
    } else if (tok == "$timescale") {
      skip_to_end(&v.timescale);
    } else if (tok == "$enddefinitions") {
      skip_to_end(nullptr);
      break;
    } else if (tok[0] == '$') {
      skip_to_end(nullptr);
    }
  }
  std::uint64_t now = 0;
  while (in >> tok) {
    if (tok[0] == '#') {
      now = std::stoull(tok.substr(1));
      v.times.push_back(now);
      v.changes[now];
    } else if (tok[0] == '$') {
      continue;  // $dumpvars, $end
    } else if (tok[0] == 'b' || tok[0] == 'r') {
      std::string code;
      in >> code;
      v.values[code].emplace_back(now, tok.substr(1));
      ++v.changes[now];
    } else {
      v.values[tok.substr(1)].emplace_back(now, tok.substr(0, 1));  // a scalar: value, then code
      ++v.changes[now];
    }
  }
  return v;
}

/// One cycle in picoseconds at the config's clock (the VCDs' timescale is 1 ps).
std::uint64_t period_ps(const HwConfig& hw) {
  const auto mhz = static_cast<std::uint64_t>(hw.clock_mhz);
  return std::max<std::uint64_t>(1, (1000000 + mhz / 2) / mhz);
}

/// The times of `v` outside [lo, hi) ps: none, or how many and the first.
std::string outside(const Vcd& v, std::uint64_t lo, std::uint64_t hi) {
  std::size_t n = 0;
  std::uint64_t first = 0;
  for (const std::uint64_t t : v.times) {
    if (t >= lo && t < hi) continue;
    if (n++ == 0) first = t;
  }
  return n == 0 ? "none" : std::to_string(n) + " times, the first #" + std::to_string(first);
}

/// The cycles whose rising clock edge a trace holds (times that are whole cycles).
std::set<std::uint64_t> clocked_cycles(const Vcd& v, std::uint64_t period) {
  std::set<std::uint64_t> c;
  for (const std::uint64_t t : v.times) {
    if (t % period == 0) c.insert(t / period);
  }
  return c;
}

/// The cycles of the compute instructions in [lo, hi) by the report, within [begin, end).
std::set<std::uint64_t> compute_cycles(const sim::CycleReport& rep, std::uint32_t lo, std::uint32_t hi,
                                       std::uint64_t begin = 0, std::uint64_t end = UINT64_MAX) {
  std::set<std::uint64_t> c;
  for (const sim::InsnTiming& t : rep.timeline) {
    const bool compute =
        t.unit == sim::ExecUnit::kMac || t.unit == sim::ExecUnit::kRequant || t.unit == sim::ExecUnit::kVector;
    if (!compute || t.index < lo || t.index >= hi) continue;
    for (std::uint64_t k = std::max(t.start, begin); k < std::min(t.end, end); ++k) c.insert(k);
  }
  return c;
}

const sim::InsnTiming& timing_of(const sim::CycleReport& rep, std::uint32_t index) {
  for (const sim::InsnTiming& t : rep.timeline) {
    if (t.index == index) return t;
  }
  throw std::runtime_error("instruction " + std::to_string(index) + " is not in the timeline");
}

struct Conv {
  HwConfig hw = HwConfig::preset("default");
  emu_test::ConvCase c;
  Inputs inputs;
  Conv() {
    std::mt19937_64 g(7);
    c = emu_test::make_conv_program(hw, emu_test::ConvSpec{}, g);
    inputs["image"] = emu_test::random_image(c, g);
  }
};

const Conv& conv() {
  static const Conv c;
  return c;
}

/// Runs `p` on the rtl engine with `trace` (no trace: empty path); "" or the run's error.
std::string run_rtl(const HwConfig& hw, const Program& p, const Inputs& inputs, const sim::TraceOptions& trace,
                    const sim::RtlOptions& options = {}, std::unique_ptr<sim::CycleDevice>* keep = nullptr) {
  auto dev = sim::make_rtl_engine(hw, options);
  if (!trace.path.empty()) dev->set_trace(trace);
  dev->load(p);
  for (const auto& [name, t] : inputs) dev->set_input(name, t);
  std::string error;
  try {
    dev->run();
  } catch (const dla::Error& e) {
    error = e.what();
  }
  if (keep != nullptr) *keep = std::move(dev);
  return error;
}

class RtlTrace : public dla::testing::ScratchDirTest {
 protected:
  RtlTrace() : ScratchDirTest("rtl_trace") {}
};

}  // namespace

TEST_F(RtlTrace, DeclaresEveryBlocksSignalsAndDumpsTheClocksOfTheCycleWindow) {
  const Conv& k = conv();
  std::unique_ptr<sim::CycleDevice> clean;
  ASSERT_EQ(run_rtl(k.hw, k.c.program, k.inputs, {}, {}, &clean), "");
  const sim::CycleReport& rep = clean->report();
  // A window from before the first MAC (no compute: no clocks) into the first REQUANT.
  const std::uint64_t mac = timing_of(rep, k.c.first_mac).start;
  ASSERT_GT(mac, 3u);
  const std::uint64_t begin = mac - 3, end = timing_of(rep, k.c.first_requant).start + 7;
  sim::TraceOptions t;
  t.path = path("w.vcd");
  t.window_begin = begin;
  t.window_end = end;
  std::unique_ptr<sim::CycleDevice> traced;
  ASSERT_EQ(run_rtl(k.hw, k.c.program, k.inputs, t, {}, &traced), "");
  EXPECT_EQ(traced->report().cycles, rep.cycles) << "tracing changes no timing";
  ASSERT_EQ(traced->trace_files().size(), 2u);
  EXPECT_EQ(traced->trace_files()[0].path, t.path);
  EXPECT_EQ(traced->trace_files()[0].holds, "RTL signals");
  EXPECT_EQ(traced->trace_files()[1].path, path("w.units.vcd"));
  EXPECT_EQ(traced->trace_files()[1].holds, "unit activity");

  const Vcd v = read_vcd(t.path);
  EXPECT_EQ(v.timescale, "1ps");
  for (const std::string block : {"mac_array", "requant", "vadd", "vlut", "vpool"}) {
    for (const std::string port : {"clk_i", "rst_ni", "valid_i", "valid_o"}) {
      EXPECT_TRUE(v.vars.count(block + "." + port)) << block << "." << port;
    }
    // The block's insides too, not only its ports.
    std::size_t inner = 0;
    for (const std::string& s : v.vars) inner += s.rfind(block + ".dla_", 0) == 0 ? 1 : 0;
    EXPECT_GT(inner, 10u) << block;
  }
  // The SRAMs beside them, each with its ports.
  for (const std::string sram : {"acc_sram", "act_sram", "act_sram_b", "wgt_sram", "param_sram", "param_sram_b"}) {
    for (const std::string port : {"rd_addr_i", "rd_data_o", "wr_addr_i", "wr_data_i"}) {
      EXPECT_TRUE(v.vars.count(sram + "." + port)) << sram << "." << port;
    }
  }
  for (const std::string s : {"mac_array.psum_i", "mac_array.psum_o", "mac_array.act_i", "mac_array.wlanes_i",
                              "requant.acc_i", "requant.y_o", "vadd.y_o", "vlut.y_o", "vpool.y_o"}) {
    EXPECT_TRUE(v.vars.count(s)) << s;
  }

  const std::uint64_t p = period_ps(k.hw);
  ASSERT_FALSE(v.times.empty());
  EXPECT_EQ(outside(v, begin * p, end * p), "none") << "window [" << begin << ", " << end << ") cycles";
  // Exactly the compute clocks of the window, each a rising and a falling edge.
  const std::set<std::uint64_t> want = compute_cycles(rep, 0, UINT32_MAX, begin, end);
  EXPECT_EQ(clocked_cycles(v, p), want);
  EXPECT_EQ(*want.begin(), mac);
  EXPECT_EQ(v.times.size(), 2 * want.size());
  std::size_t changes = 0;
  for (const auto& [time, n] : v.changes) changes += n;
  EXPECT_GT(changes, want.size()) << "the clock alone changes once per edge";
  // The unit activity, beside it, over the same window.
  const std::string units = dla::testing::slurp(path("w.units.vcd"));
  EXPECT_NE(units.find("compute_state"), std::string::npos);
  EXPECT_NE(units.find("\n#" + std::to_string(begin * p) + "\n"), std::string::npos);
}

TEST_F(RtlTrace, ALayerTraceHoldsTheClocksOfTheLayersInstructionsInsideItsSpan) {
  const HwConfig hw = HwConfig::preset("small");
  const Program p = dla::compiler::compile(dla::compiler::resnet18(32), hw);
  std::mt19937_64 rng(18);
  const Inputs inputs{{"image", emu_test::random_u8({1, 3, 32, 32}, rng, 4)}};
  const std::string layer = "layer1.0.conv1";
  sim::TraceOptions t;
  t.path = path("l.vcd");
  t.layer = layer;
  std::unique_ptr<sim::CycleDevice> dev;
  ASSERT_EQ(run_rtl(hw, p, inputs, t, {}, &dev), "");
  const sim::CycleReport& rep = dev->report();
  const sim::LayerReport* span = nullptr;
  for (const auto& l : rep.layers) {
    if (l.name == layer) span = &l;
  }
  ASSERT_NE(span, nullptr);
  const dla::DebugRecord* rec = nullptr;
  for (const auto& d : p.debug) {
    if (d.layer == layer) rec = &d;
  }
  ASSERT_NE(rec, nullptr);

  const Vcd v = read_vcd(t.path);
  const std::uint64_t per = period_ps(hw);
  ASSERT_FALSE(v.times.empty());
  EXPECT_EQ(outside(v, span->start * per, span->end * per), "none")
      << "the layer's span [" << span->start << ", " << span->end << ") cycles";
  EXPECT_EQ(clocked_cycles(v, per), compute_cycles(rep, rec->insn_begin, rec->insn_end));
  std::size_t changes = 0;
  for (const auto& [time, n] : v.changes) changes += n;
  EXPECT_GT(changes, v.times.size());
}

TEST_F(RtlTrace, AMismatchOrAHangLeavesTheInstructionAloneAndTheErrorNamesTheFile) {
  const Conv& k = conv();
  std::unique_ptr<sim::CycleDevice> clean;
  ASSERT_EQ(run_rtl(k.hw, k.c.program, k.inputs, {}, {}, &clean), "");
  const sim::CycleReport& rep = clean->report();
  const std::uint64_t per = period_ps(k.hw);
  for (const std::uint32_t i : {k.c.first_mac, k.c.first_requant}) {
    sim::RtlOptions o;
    o.fault = {sim::RtlFault::Kind::kCorruptResult, i};
    sim::TraceOptions t;
    t.path = path("m" + std::to_string(i) + ".vcd");
    const std::string e = run_rtl(k.hw, k.c.program, k.inputs, t, o);
    EXPECT_NE(e.find("instruction " + std::to_string(i) + ": rtl lockstep mismatch"), std::string::npos) << e;
    EXPECT_NE(e.find("; the RTL trace of this instruction alone (cycles "), std::string::npos) << e;
    EXPECT_EQ(e.substr(e.size() - t.path.size()), t.path) << e;
    // Its clocks are the instruction's span in the run without the fault, nothing else.
    const sim::InsnTiming& span = timing_of(rep, i);
    const Vcd v = read_vcd(t.path);
    ASSERT_FALSE(v.times.empty()) << e;
    EXPECT_EQ(v.times.front(), span.start * per) << e;
    EXPECT_EQ(v.times.back(), (span.end - 1) * per + per / 2) << e;
    EXPECT_EQ(clocked_cycles(v, per), compute_cycles(rep, i, i + 1)) << e;
    EXPECT_NE(e.find("(cycles " + std::to_string(span.start) + " to " + std::to_string(span.end - 1) + ")"),
              std::string::npos)
        << e;
    // The replay is the instruction as it ran: the same block values as a run without the
    // fault traced over the instruction's cycles (the fault corrupts the engine's copy of
    // the result, not the core). The first MAC accumulates onto the ACC tile it then writes,
    // so a replay from the state after the instruction would differ.
    sim::TraceOptions same;
    same.path = path("same" + std::to_string(i) + ".vcd");
    same.window_begin = span.start;
    same.window_end = span.end;
    ASSERT_EQ(run_rtl(k.hw, k.c.program, k.inputs, same), "");
    const Vcd ref = read_vcd(same.path);
    // (The other blocks idle at their reset values on the fresh core.)
    const std::vector<std::string> ran = i == k.c.first_mac
                                             ? std::vector<std::string>{"mac_array.psum_i", "mac_array.psum_o",
                                                                        "mac_array.act_i", "mac_array.wlanes_i"}
                                             : std::vector<std::string>{"requant.acc_i", "requant.y_o"};
    for (const std::string& s : ran) {
      EXPECT_EQ(v.of(s), ref.of(s)) << s << " of instruction " << i;
      EXPECT_GT(v.of(s).size(), 1u) << s;
    }
  }
  // A hung block: from the instruction's start to the cycle the error names.
  sim::RtlOptions o;
  o.fault = {sim::RtlFault::Kind::kDropBeat, k.c.first_requant};
  sim::TraceOptions t;
  t.path = path("hang.vcd");
  const std::string e = run_rtl(k.hw, k.c.program, k.inputs, t, o);
  const auto at = e.find(" cycles (the block has one register stage), at cycle ");
  ASSERT_NE(at, std::string::npos) << e;
  const std::uint64_t hung = std::stoull(e.substr(at + std::string(" cycles (the block has one register stage), at cycle ").size()));
  EXPECT_NE(e.find("RTL trace of this instruction alone"), std::string::npos) << e;
  EXPECT_NE(e.find(t.path), std::string::npos) << e;
  const std::uint64_t start = timing_of(rep, k.c.first_requant).start;
  std::set<std::uint64_t> want;
  for (std::uint64_t c = start; c < hung; ++c) want.insert(c);
  EXPECT_EQ(clocked_cycles(read_vcd(t.path), per), want) << e;
  EXPECT_EQ(want.size(), 9u) << "the dropped beat, then the 8 cycles of the hang margin";

  // With a window, the file keeps the window up to the mismatch.
  sim::RtlOptions m;
  m.fault = {sim::RtlFault::Kind::kCorruptResult, k.c.first_requant};
  sim::TraceOptions w;
  w.path = path("window.vcd");
  w.window_begin = 0;
  w.window_end = rep.cycles;
  const std::string we = run_rtl(k.hw, k.c.program, k.inputs, w, m);
  EXPECT_NE(we.find("; the RTL trace of the window up to here: " + w.path), std::string::npos) << we;
  EXPECT_EQ(clocked_cycles(read_vcd(w.path), per), compute_cycles(rep, 0, k.c.first_requant + 1)) << we;
}

TEST_F(RtlTrace, AFileThatCannotBeWrittenIsOneError) {
  const Conv& k = conv();
  sim::TraceOptions t;
  t.path = path("missing/dir/t.vcd");
  EXPECT_EQ(run_rtl(k.hw, k.c.program, k.inputs, t), "cannot write the RTL trace file " + t.path);
}
