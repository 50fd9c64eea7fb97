// `dla run` end to end through the binary: outputs and layer dumps as .npy files equal to
// the naive reference, statistics, and a one-line error with exit code 1 for every
// bad invocation.
#include <gtest/gtest.h>

#include <vector>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "conv_program.hpp"
#include "dla/npy.hpp"
#include "dla/program.hpp"
#include "emu_test_util.hpp"

using dla::HostTensor;
using dla::HwConfig;
namespace fs = std::filesystem;
using namespace emu_test;

namespace {

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using Result = dla::testing::ToolResult;

/// A scratch directory per test with the conv program, its input and the reference.
class DlaRun : public dla::testing::ScratchDirTest {
 protected:
  DlaRun() : ScratchDirTest("emu_cli") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    std::mt19937_64 g(300);
    cfg_ = HwConfig::preset("default");
    conv_ = make_conv_program(cfg_, ConvSpec{}, g);
    conv_.program.debug[0].layer = conv_.program.debug[0].output.name = "block1/conv.0";
    prog_ = path("conv.dlab");
    dla::write_program_file(prog_, conv_.program);
    image_ = random_image(conv_, g);
    input_ = path("image.npy");
    dla::npy::write_tensor(input_, image_);
    expected_ = reference_conv(conv_, image_, cfg_);
  }

  HwConfig cfg_;
  ConvCase conv_;
  std::string prog_, input_;
  HostTensor image_, expected_;
};

}  // namespace

TEST_F(DlaRun, WritesOutputsLayerDumpsAndJsonStats) {
  const std::string out = path("out");
  const Result r = run_dla("run " + prog_ + " --input image=" + input_ + " --output-dir " + out +
                           " --dump-layers --stats json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["engine"], "emu");
  EXPECT_EQ(j["instructions"].get<std::uint64_t>(), conv_.program.instructions.size());
  const ConvSpec& s = conv_.spec;
  EXPECT_EQ(j["macs"].get<std::uint64_t>(), static_cast<std::uint64_t>(s.out_h() * s.out_w() * s.out_c * 9 * s.in_c));
  EXPECT_EQ(j["acc_overflows"], 0);
  EXPECT_EQ(j["layers"].size(), 1u);
  EXPECT_EQ(j["layers"][0]["name"], "block1/conv.0");
  EXPECT_EQ(j["outputs"][0]["name"], "out");
  const HostTensor y = dla::npy::read_tensor(out + "/out.npy", conv_.out);
  EXPECT_EQ(y, expected_);
  // Layer names become file names: '/' is replaced.
  const HostTensor layer = dla::npy::read_tensor(out + "/layers/block1_conv.0.npy", conv_.program.debug[0].output);
  EXPECT_EQ(layer.values, expected_.values);
}

TEST_F(DlaRun, PrintsASummaryAndTextStats) {
  const std::string out = path("out");
  Result r = run_dla("run " + prog_ + " -i image=" + input_ + " -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const ConvSpec& s = conv_.spec;
  const std::string macs = std::to_string(s.out_h() * s.out_w() * s.out_c * 9 * s.in_c);
  EXPECT_NE(r.out.find("on emu: " + std::to_string(conv_.program.instructions.size()) + " instructions, " + macs +
                       " MACs, 0 accumulator overflows, "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("output out i8 [1,12,8,7] frac 4 -> " + out + "/out.npy"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/layers"));
  r = run_dla("run " + prog_ + " -i image=" + input_ + " -o " + out + " --stats text");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("block1/conv.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DRAM: "), std::string::npos) << r.out;
}

TEST_F(DlaRun, ReadsAnInputWrittenByNumpy) {
  std::ostringstream vals;
  for (auto v : image_.values) vals << v << ",";
  // The image is NCHW [1, 8, 10, 9] as PyTorch sees it.
  const std::string script = path("make.py");
  std::ofstream(script) << "import numpy as np\nnp.save('" << path("np_image.npy") << "', np.array([" << vals.str()
                        << "], dtype=np.uint8).reshape(1, 8, 10, 9))\n";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + script).c_str()), 0);
  const Result r = run_dla("run " + prog_ + " --input image=" + path("np_image.npy") + " --output-dir " + path("o"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(dla::npy::read_tensor(path("o/out.npy"), conv_.out), expected_);
}

TEST_F(DlaRun, ConfigMustMatchTheProgram) {
  Result r = run_dla("run " + prog_ + " -i image=" + input_ + " -o " + path("a") + " --preset default");
  EXPECT_EQ(r.code, 0) << r.out;
  const std::string cfg_file = path("hw.json");
  std::ofstream(cfg_file) << cfg_.to_json_text();
  r = run_dla("run " + prog_ + " -i image=" + input_ + " -o " + path("b") + " --config " + cfg_file);
  EXPECT_EQ(r.code, 0) << r.out;
  expect_user_error(run_dla("run " + prog_ + " -i image=" + input_ + " -o " + path("c") + " --preset small"),
                    "program was compiled for hardware config " + dla::hash_hex(cfg_.identity_hash()) +
                        ", but this engine runs hardware config " +
                        dla::hash_hex(HwConfig::preset("small").identity_hash()));
  expect_user_error(run_dla("run " + prog_ + " -i image=" + input_ + " -o " + path("c") + " --preset small --config " +
                            cfg_file),
                    "give --config or --preset, not both");
  // Without an embedded config the tool needs one.
  std::mt19937_64 g(301);
  const ConvCase bare = make_conv_program(cfg_, ConvSpec{}, g, /*embed_config=*/false);
  const std::string bare_path = path("bare.dlab");
  dla::write_program_file(bare_path, bare.program);
  expect_user_error(run_dla("run " + bare_path + " -i image=" + input_ + " -o " + path("d")),
                    bare_path + ": the program has no embedded hardware config; give --config FILE or --preset NAME");
  r = run_dla("run " + bare_path + " -i image=" + input_ + " -o " + path("d") + " --preset default");
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(DlaRun, BadInputsAreOneLineErrors) {
  const std::string o = " -o " + path("out");
  expect_user_error(run_dla("run " + prog_ + o), "missing input 'image' (u8 [1,8,10,9]): give --input image=FILE.npy");
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + input_ + " -i picture=" + input_),
                    "unknown input 'picture' (the program's inputs: image)");
  expect_user_error(run_dla("run " + prog_ + o + " -i out=" + input_), "unknown input 'out'");
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + input_ + " -i image=" + input_),
                    "input 'image' is given twice");
  expect_user_error(run_dla("run " + prog_ + o + " -i image"), "--input takes NAME=FILE.npy, got 'image'");
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + path("nope.npy")), "nope.npy: cannot read .npy file: no such file");
  std::ofstream(path("junk.npy")) << "not numpy at all";
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + path("junk.npy")), "bad magic");
  HostTensor wrong = image_;
  wrong.shape = {1, 8, 9, 10};
  dla::npy::write_tensor(path("wrong_shape.npy"), wrong);
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + path("wrong_shape.npy")),
                    "input 'image' (" + path("wrong_shape.npy") + "): expected shape [1,8,10,9] (or a multiple of the program's batch 1 "
                        "in the leading dimension), got [1,8,9,10]");
  wrong = image_;
  wrong.dtype = dla::DType::I16;
  dla::npy::write_tensor(path("wrong_type.npy"), wrong);
  expect_user_error(run_dla("run " + prog_ + o + " -i image=" + path("wrong_type.npy")),
                    "expected dtype '|u1' (uint8) for a u8 tensor, got '<i2' (int16)");
}

TEST_F(DlaRun, BadOptionsAndBrokenProgramsAreOneLineErrors) {
  const std::string ok = "run " + prog_ + " -i image=" + input_ + " -o " + path("out");
  expect_user_error(run_dla(ok + " --engine warp"), "unknown engine 'warp' (available: emu, cycle");
  expect_user_error(run_dla(ok + " --stats xml"), "--stats takes 'json' or 'text', not 'xml'");
  expect_user_error(run_dla("run -i image=" + input_ + " -o " + path("out")), "program");
  expect_user_error(run_dla("run " + prog_ + " -i image=" + input_), "output-dir");
  expect_user_error(run_dla("run " + path("missing.dlab") + " -i image=" + input_ + " -o x"), "missing.dlab: cannot read program file: no such file");
  std::ofstream(path("a_file")) << "x";
  expect_user_error(run_dla("run " + prog_ + " -i image=" + input_ + " -o " + path("a_file")),
                    "cannot create output directory '" + path("a_file") + "'");
  // A program that races: the tool reports the machine rule it broke.
  ConvCase racy = conv_;
  dla::isa::tokens_of(racy.program.instructions[racy.first_bias_load]).push_next = false;
  dla::isa::tokens_of(racy.program.instructions[racy.first_mac]).pop_prev = false;
  dla::write_program_file(path("racy.dlab"), racy.program);
  expect_user_error(run_dla("run " + path("racy.dlab") + " -i image=" + input_ + " -o " + path("out")),
                    "instruction " + std::to_string(racy.first_mac) + ": mac reads ACT [0, ");
}

TEST(DlaTool, HelpListsRun) {
  const Result r = run_dla("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("run "), std::string::npos) << r.out;
  const Result h = run_dla("run --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("usage: dla run"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("--dump-layers"), std::string::npos) << h.out;
}

// Like with like: both sides of the emulator/libtorch ratio run on the thread count asked
// for, printed, and on one thread as well.
TEST(DlaBenchEmu, ComparesAtEqualExplicitThreadCounts) {
  const auto r = run_dla("bench emu --size 32 --repeat 1 --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<const char*> want = {"threads:   2 (emulator and libtorch alike)", "threads:   1 (emulator and libtorch alike)"};
#if DLA_TEST_WITH_TORCH  // the libtorch side exists only in builds with libtorch
  want.insert(want.end(), {"at 2 threads", "at 1 thread ", "of the thread's CPU: ratio"});
#else
  want.push_back("libtorch:  not available in this build");
#endif
  for (const char* s : want) EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  const auto one = run_dla("bench emu --size 32 --repeat 1 --threads 1");
  ASSERT_EQ(one.code, 0) << one.out;
  EXPECT_EQ(one.out.find("threads:   2"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("threads:   1 (emulator and libtorch alike)"), std::string::npos) << one.out;
  expect_user_error(run_dla("bench emu --threads 1000"), "--threads must be in [0, 256]");
  const auto batch = run_dla("bench emu --size 32 --repeat 1 --threads 2 --batch 4");
  ASSERT_EQ(batch.code, 0) << batch.out;
  std::vector<const char*> want_batch = {"batch:     4 images, 2 threads", "(2 emulators, one image each at a time)"};
#if DLA_TEST_WITH_TORCH
  want_batch.push_back("in images per second");
#endif
  for (const char* s : want_batch) EXPECT_NE(batch.out.find(s), std::string::npos) << s << "\n" << batch.out;
  expect_user_error(run_dla("bench emu --batch 0"), "--batch must be in [1, 4096]");
}
