// `dla run --engine cycle --trace FILE.json`: the Chrome/Perfetto trace of a run, checked
// against the program itself (what each instruction is, which layer holds it) and the
// run's report: one track per unit, one slice per instruction executed, no overlap on a
// track, every slice inside the run; and the trace observes only (outputs unchanged).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "dla/isa.hpp"
#include "dla/npy.hpp"
#include "dla/program.hpp"

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::slurp;
using nlohmann::json;

namespace {

/// The track an instruction belongs on, from its type (independent of the cycle model).
std::string unit_of(const dla::isa::Instruction& insn) {
  if (std::holds_alternative<dla::isa::Load>(insn)) return "load";
  if (std::holds_alternative<dla::isa::Store>(insn)) return "store";
  if (std::holds_alternative<dla::isa::Mac>(insn)) return "mac";
  if (std::holds_alternative<dla::isa::Requant>(insn)) return "requant";
  if (std::holds_alternative<dla::isa::Sync>(insn) || std::holds_alternative<dla::isa::End>(insn)) return "barrier";
  return "vector";
}

class ChromeTrace : public dla::testing::ScratchDirTest {
 protected:
  ChromeTrace() : ScratchDirTest("chrome_trace") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    prog_ = path("r18.dlab");
    const auto c = run_dla("compile --builtin resnet18 --size 32 -o " + prog_);
    ASSERT_EQ(c.code, 0) << c.out;
    dla::HostTensor image;
    image.dtype = dla::DType::U8;
    image.frac = 4;
    image.shape = {1, 3, 32, 32};
    std::mt19937 g(5);
    for (std::uint64_t i = 0; i < image.num_elements(); ++i) image.values.push_back(static_cast<std::int32_t>(g() % 256));
    input_ = path("image.npy");
    dla::npy::write_tensor(input_, image);
  }
  std::string run_args(const std::string& engine, const std::string& out) const {
    return "run " + prog_ + " --engine " + engine + " --input image=" + input_ + " --output-dir " + path(out);
  }
  std::string prog_, input_;
};

TEST_F(ChromeTrace, OneTrackPerUnitOneSlicePerInstructionNoOverlap) {
  const auto r = run_dla(run_args("cycle", "cyc") + " --report json --trace " + path("t.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  const json report = json::parse(r.out)["report"];
  const std::uint64_t cycles = report["cycles"];
  const json trace = json::parse(slurp(path("t.json")));  // throws (fails) on invalid JSON
  const dla::Program program = dla::read_program_file(prog_);

  // Tracks: thread_name metadata, one per unit, names unique.
  std::map<int, std::string> tracks;
  std::set<std::string> names;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "M" && e.at("name") == "thread_name") {
      tracks[e.at("tid").get<int>()] = e.at("args").at("name").get<std::string>();
      EXPECT_TRUE(names.insert(e.at("args").at("name").get<std::string>()).second) << e;
    }
  }
  // Slices per track, and per unit (cat) with each unit on exactly one track.
  std::map<int, std::vector<std::pair<std::uint64_t, std::uint64_t>>> spans;
  std::map<std::string, std::set<int>> tids_of_unit;
  std::map<std::string, std::uint64_t> slices_of_unit;
  std::set<std::uint32_t> seen;
  std::uint64_t layer_slices = 0;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    const int tid = e.at("tid");
    ASSERT_TRUE(tracks.count(tid)) << "a slice on an unnamed track: " << e;
    const std::uint64_t ts = e.at("ts"), dur = e.at("dur");
    EXPECT_LE(ts + dur, cycles) << e;
    spans[tid].emplace_back(ts, ts + dur);
    const std::string cat = e.at("cat");
    if (cat == "layer") {
      ++layer_slices;
      continue;
    }
    tids_of_unit[cat].insert(tid);
    ++slices_of_unit[cat];
    const std::uint32_t i = e.at("args").at("insn");
    ASSERT_LT(i, program.instructions.size());
    EXPECT_TRUE(seen.insert(i).second) << "instruction " << i << " has two slices";
    EXPECT_EQ(e.at("name"), dla::isa::disassemble(program.instructions[i]));
    EXPECT_EQ(cat, unit_of(program.instructions[i])) << e;
    EXPECT_EQ(e.at("args").at("cycles").get<std::uint64_t>(), dur);
    for (const auto& d : program.debug) {
      if (i >= d.insn_begin && i < d.insn_end) {
        EXPECT_EQ(e.at("args").at("layer"), d.layer) << e;
        break;
      }
    }
  }
  // Every instruction of the program ran once (no branches): slices per unit are the
  // program's instructions of that unit, and the report's per-queue counts.
  std::map<std::string, std::uint64_t> want;
  for (const auto& insn : program.instructions) ++want[unit_of(insn)];
  EXPECT_EQ(slices_of_unit, want);
  EXPECT_EQ(seen.size(), program.instructions.size());
  for (const auto& [unit, tids] : tids_of_unit) EXPECT_EQ(tids.size(), 1u) << unit << " is on several tracks";
  std::set<int> unit_tids;
  for (const auto& [unit, tids] : tids_of_unit) unit_tids.insert(*tids.begin());
  EXPECT_EQ(unit_tids.size(), tids_of_unit.size()) << "two units share a track";
  for (const auto& u : report["units"]) {
    const std::string name = u["name"];
    const std::uint64_t n = u["instructions"];
    std::uint64_t slices = slices_of_unit["barrier"];  // fetch decodes every instruction; counts its barriers
    if (name == "load") slices = slices_of_unit["load"];
    if (name == "store") slices = slices_of_unit["store"];
    if (name == "compute") slices = slices_of_unit["mac"] + slices_of_unit["requant"] + slices_of_unit["vector"];
    if (name != "fetch") {
      EXPECT_EQ(slices, n) << name;
    }
  }
  // Layers: one slice per layer that took cycles, on tracks of their own.
  std::uint64_t timed_layers = 0;
  for (const auto& l : report["layers"]) timed_layers += l["cycles"].get<std::uint64_t>() > 0;
  EXPECT_EQ(layer_slices, timed_layers);
  EXPECT_GT(layer_slices, 20u);
  // No two slices of one track overlap (a unit does one instruction at a time).
  for (auto& [tid, s] : spans) {
    std::sort(s.begin(), s.end());
    for (std::size_t k = 1; k < s.size(); ++k) {
      EXPECT_LE(s[k - 1].second, s[k].first) << tracks[tid] << ": slices overlap at " << s[k].first;
    }
  }
  EXPECT_EQ(trace.at("otherData").at("cycles").get<std::uint64_t>(), cycles);

  // The trace only observes: the outputs equal the emulator's and an untraced run's.
  ASSERT_EQ(run_dla(run_args("emu", "emu")).code, 0);
  ASSERT_EQ(run_dla(run_args("cycle", "plain") + " --report none").code, 0);
  EXPECT_EQ(slurp(path("cyc/fc.npy")), slurp(path("emu/fc.npy")));
  EXPECT_EQ(slurp(path("cyc/fc.npy")), slurp(path("plain/fc.npy")));
  EXPECT_FALSE(slurp(path("cyc/fc.npy")).empty());
}

TEST_F(ChromeTrace, FormatByExtensionOrFlag) {
  const auto v = run_dla(run_args("cycle", "o") + " --report none --trace " + path("t.json") + " --trace-format vcd");
  ASSERT_EQ(v.code, 0) << v.out;
  EXPECT_EQ(slurp(path("t.json")).rfind("$version", 0), 0u) << "--trace-format vcd wrote no VCD";
  const auto c = run_dla(run_args("cycle", "o") + " --report none --trace " + path("t.trace") + " --trace-format chrome");
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_TRUE(json::parse(slurp(path("t.trace"))).contains("traceEvents"));
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace " + path("t.json") + " --trace-format svg"),
                    "--trace-format takes 'vcd' or 'chrome', not 'svg'");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace " + path("t.json") + " --trace-layer conv1"),
                    "apply to VCD traces");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace-format chrome"), "need --trace FILE");
}

}  // namespace
