// `dla run --engine cycle` and `dla bench cycle` through the binary: the same files as the
// emulator, the report as a table and as JSON, VCD traces, and one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "../emu/conv_program.hpp"
#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "dla/npy.hpp"
#include "dla/program.hpp"

using dla::HostTensor;
using dla::HwConfig;
using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::slurp;

namespace {

#ifdef DLA_HAVE_RTL
const std::string kRtlRow = ", rtl";
#else
const std::string kRtlRow;
#endif

class DlaRunCycle : public dla::testing::ScratchDirTest {
 protected:
  DlaRunCycle() : ScratchDirTest("cycle_cli") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    std::mt19937_64 g(301);
    const HwConfig cfg = HwConfig::preset("default");
    conv_ = emu_test::make_conv_program(cfg, emu_test::ConvSpec{}, g);
    prog_ = path("conv.dlab");
    dla::write_program_file(prog_, conv_.program);
    input_ = path("image.npy");
    dla::npy::write_tensor(input_, emu_test::random_image(conv_, g));
  }
  std::string run_args(const std::string& engine, const std::string& out) const {
    return "run " + prog_ + " --engine " + engine + " --input image=" + input_ + " --output-dir " + path(out);
  }

  emu_test::ConvCase conv_;
  std::string prog_, input_;
};

}  // namespace

TEST_F(DlaRunCycle, WritesTheEmulatorsFilesAndAReportTable) {
  const auto emu = run_dla(run_args("emu", "emu") + " --dump-layers");
  ASSERT_EQ(emu.code, 0) << emu.out;
  const auto cyc = run_dla(run_args("cycle", "cyc") + " --dump-layers");
  ASSERT_EQ(cyc.code, 0) << cyc.out;
  EXPECT_EQ(slurp(path("emu/out.npy")), slurp(path("cyc/out.npy")));
  EXPECT_EQ(slurp(path("emu/layers/conv1.npy")), slurp(path("cyc/layers/conv1.npy")));
  for (const char* s : {"ran ", " on cycle", "cycles:", "MAC array:", "DRAM:", "stalled on", "conv1"}) {
    EXPECT_NE(cyc.out.find(s), std::string::npos) << s << "\n" << cyc.out;
  }
  EXPECT_EQ(emu.out.find("cycles:"), std::string::npos) << emu.out;
  const auto none = run_dla(run_args("cycle", "none") + " --report none");
  ASSERT_EQ(none.code, 0) << none.out;
  EXPECT_EQ(none.out.find("cycles:"), std::string::npos) << none.out;
}

TEST_F(DlaRunCycle, ReportJsonIsOneDocumentWithTheStatistics) {
  const auto r = run_dla(run_args("cycle", "o") + " --report json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["engine"], "cycle");
  EXPECT_GT(j["cycles"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["report"]["cycles"], j["cycles"]);
  EXPECT_EQ(j["report"]["units"].size(), 4u);
  EXPECT_EQ(j["report"]["layers"][0]["name"], "conv1");
  EXPECT_EQ(j["layers"][0]["cycles"], j["report"]["layers"][0]["cycles"]);
  const auto s = run_dla(run_args("cycle", "o2") + " --stats json --report none");
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_FALSE(nlohmann::json::parse(s.out).contains("report"));
  const auto e = run_dla(run_args("emu", "o3") + " --stats json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(e.out)["cycles"], 0);
}

TEST_F(DlaRunCycle, TracesAWindowOrALayer) {
  const auto w = run_dla(run_args("cycle", "o") + " --report none --trace " + path("w.vcd") + " --trace-window 100:300");
  ASSERT_EQ(w.code, 0) << w.out;
  EXPECT_NE(w.out.find("trace -> " + path("w.vcd")), std::string::npos) << w.out;
  const std::string vcd = slurp(path("w.vcd"));
  EXPECT_NE(vcd.find("$enddefinitions $end"), std::string::npos);
  EXPECT_NE(vcd.find("\n#100000\n"), std::string::npos) << vcd.substr(0, 2000);
  EXPECT_NE(vcd.find("\n#300000\n"), std::string::npos);
  const auto l = run_dla(run_args("cycle", "o") + " --report json --trace " + path("l.vcd") + " --trace-layer conv1");
  ASSERT_EQ(l.code, 0) << l.out;
  const auto j = nlohmann::json::parse(l.out);
  EXPECT_EQ(j["trace"], path("l.vcd"));
  const std::uint64_t start = j["report"]["layers"][0]["start"];
  EXPECT_NE(slurp(path("l.vcd")).find("\n#" + std::to_string(start * 1000) + "\n$dumpvars"), std::string::npos);
}

TEST_F(DlaRunCycle, BadTimingOptionsAreOneLineErrors) {
  expect_user_error(run_dla(run_args("emu", "o") + " --report json"), "--report needs a timing engine");
  expect_user_error(run_dla(run_args("emu", "o") + " --trace " + path("t.vcd")), "--trace needs a timing engine");
  expect_user_error(run_dla(run_args("cycle", "o") + " --report xml"), "--report takes 'table', 'json' or 'none'");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace-window 1:2"), "need --trace FILE");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace " + path("t.vcd") + " --trace-window 5"),
                    "--trace-window takes START:END");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace " + path("t.vcd") + " --trace-window 9:3"), "is empty");
  expect_user_error(run_dla(run_args("cycle", "o") + " --trace " + path("t.vcd") + " --trace-layer nope"),
                    "--trace layer 'nope' is not a layer of the program (layers: conv1)");
  expect_user_error(run_dla(run_args("cycle", "o") + " --report json --stats text"), "cannot share stdout");
  expect_user_error(run_dla(run_args("warp", "o")), "unknown engine 'warp' (available: emu, cycle" + kRtlRow + ")");
}

TEST(DlaBenchCycle, PrintsCyclesPerSecondSlowdownAndUtilization) {
  const auto r = run_dla("bench cycle --size 32 --repeat 1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"simulated cycles per second", "slowdown against the emulator", "identical to the emulator's",
                        "MAC util", "layer4.1.conv2", "fc"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  expect_user_error(run_dla("bench warp"), "bench: unknown engine 'warp' (emu, cycle" + kRtlRow + ")");
}

#ifdef DLA_HAVE_RTL
TEST_F(DlaRunCycle, RtlWritesTheEmulatorsFilesAndReportsWhatRanOnTheRtl) {
  const auto emu = run_dla(run_args("emu", "emu") + " --dump-layers");
  ASSERT_EQ(emu.code, 0) << emu.out;
  const auto rtl = run_dla(run_args("rtl", "rtl") + " --dump-layers");
  ASSERT_EQ(rtl.code, 0) << rtl.out;
  EXPECT_EQ(slurp(path("emu/out.npy")), slurp(path("rtl/out.npy")));
  EXPECT_EQ(slurp(path("emu/layers/conv1.npy")), slurp(path("rtl/layers/conv1.npy")));
  for (const char* s : {" on rtl", "RTL core default (MAC 16x16", "checked in lockstep against the shared semantics",
                        "not on the RTL (shared semantics, formula timing): none", "RTL cycles", "conv1"}) {
    EXPECT_NE(rtl.out.find(s), std::string::npos) << s << "\n" << rtl.out;
  }
  const auto json = run_dla(run_args("rtl", "json") + " --report json");
  ASSERT_EQ(json.code, 0) << json.out;
  const auto doc = nlohmann::json::parse(json.out);
  EXPECT_GT(doc.at("report").at("rtl").at("instructions").get<int>(), 0) << json.out;
  EXPECT_TRUE(doc.at("report").at("layers").at(0).contains("rtl_cycles")) << json.out;
}

TEST_F(DlaRunCycle, RtlRefusesAConfigNoCoreWasBuiltFor) {
  HwConfig cfg = HwConfig::preset("default");
  cfg.mac_cols = 8;
  std::mt19937_64 g(5);
  const emu_test::ConvCase c = emu_test::make_conv_program(cfg, emu_test::ConvSpec{}, g);
  const std::string prog = path("narrow.dlab");
  dla::write_program_file(prog, c.program);
  expect_user_error(run_dla("run " + prog + " --engine rtl --input image=" + input_ + " --output-dir " + path("n")),
                    "no RTL core for this hardware config (MAC 16x8");
  EXPECT_EQ(run_dla("run " + prog + " --engine cycle --input image=" + input_ + " --output-dir " + path("c")).code, 0);
}

TEST_F(DlaRunCycle, RtlTracesTheRtlSignalsWithTheUnitActivityBesideThem) {
  const auto r = run_dla(run_args("rtl", "o") + " --report none --trace " + path("r.vcd") + " --trace-layer conv1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("  trace -> " + path("r.vcd") + " (RTL signals)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  trace -> " + path("r.units.vcd") + " (unit activity)\n"), std::string::npos) << r.out;
  EXPECT_NE(slurp(path("r.vcd")).find("$scope module mac_array $end"), std::string::npos);
  EXPECT_NE(slurp(path("r.units.vcd")).find("compute_state"), std::string::npos);
  const auto j = run_dla(run_args("rtl", "o") + " --report json --trace " + path("j") + " --trace-window 0:500");
  ASSERT_EQ(j.code, 0) << j.out;
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["trace"], path("j"));
  EXPECT_EQ(doc["trace_files"][0]["file"], path("j"));
  EXPECT_EQ(doc["trace_files"][0]["holds"], "RTL signals");
  EXPECT_EQ(doc["trace_files"][1]["file"], path("j.units.vcd"));
  // The cycle engine's trace is one file, as before.
  const auto c = run_dla(run_args("cycle", "o") + " --report none --trace " + path("c.vcd"));
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_NE(c.out.find("  trace -> " + path("c.vcd") + " (unit activity)\n"), std::string::npos) << c.out;
  EXPECT_FALSE(std::filesystem::exists(path("c.units.vcd")));

  expect_user_error(run_dla(run_args("rtl", "o") + " --trace-window 1:2"), "need --trace FILE");
  expect_user_error(run_dla(run_args("rtl", "o") + " --trace-layer conv1"), "need --trace FILE");
  expect_user_error(run_dla(run_args("rtl", "o") + " --trace " + path("t.json") + " --trace-layer conv1"),
                    "--trace-window and --trace-layer apply to VCD traces");
  expect_user_error(run_dla(run_args("rtl", "o") + " --trace " + path("t.vcd") + " --trace-layer nope"),
                    "--trace layer 'nope' is not a layer of the program (layers: conv1)");
  expect_user_error(run_dla(run_args("rtl", "o") + " --trace " + path("no/such/dir/t.vcd")),
                    "cannot write the RTL trace file " + path("no/such/dir/t.vcd"));
}

TEST(DlaBenchRtl, PrintsCyclesPerSecondSpeedupAndPerLayerDifferences) {
  const auto r = run_dla("bench rtl --size 32 --repeat 1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"k simulated cycles per second", "the cycle model", "identical to the cycle model's",
                        "RTL compute", "worst per-layer difference", "layer4.1.conv2"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}
#endif
