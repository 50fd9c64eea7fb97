// Hostile and careless input to the `dla` tool, end to end through the binary: special
// files, misspelled and extra graph fields, outputs that cannot be written, programs
// whose records point where they should not, headers that claim huge DRAM. Every case
// states the one-line error it expects; the tool must exit with code 1 and never hang,
// crash or report success.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "dla/npy.hpp"
#include "dla/program.hpp"

namespace fs = std::filesystem;
using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::ToolResult;

namespace {

/// A graph of one 1x1 convolution (4 weights in g.bin) and a 2x2 max pool.
constexpr const char* kGraph = R"({"format": "dlasim-graph", "version": 1, "weights_file": "g.bin",
 "nodes": [
  {"name": "x", "op": "input", "dtype": "i8", "frac": 0, "shape": [1, 2, 4, 4]},
  {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 2, "kernel": [1, 1], "stride": [1, 1],
   "weight_dtype": "i8", "weights": {"offset": 0, "count": 4}, "weight_frac": [0, 0], "bias": [0, 0],
   "out": {"dtype": "i8", "frac": 0}},
  {"name": "mp", "op": "max_pool", "inputs": ["c1"], "kernel": [2, 2]}],
 "outputs": ["mp"]})";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

/// A shell command line with stdout and stderr captured, under a timeout so that a
/// regression that blocks fails the test instead of hanging it (exit code 124).
ToolResult run_shell(const std::string& command) {
  const std::string cmd = "timeout 60 sh -c '" + command + "' 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

class Hostile : public dla::testing::ScratchDirTest {
 protected:
  Hostile() : ScratchDirTest("hostile") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    write("g.json", kGraph);
    write("g.bin", std::string("\x01\x00\x00\x01", 4));
    prog_ = path("g.dlab");
    const ToolResult r = run_dla("compile " + path("g.json") + " -o " + prog_);
    ASSERT_EQ(r.code, 0) << r.out;
    dla::HostTensor x;
    x.shape = {1, 2, 4, 4};
    x.values.assign(32, 1);
    input_ = path("x.npy");
    dla::npy::write_tensor(input_, x);
  }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  /// Compiles the graph `text` (with g.bin beside it) and returns the result.
  ToolResult compile_graph(const std::string& text) {
    write("h.json", replace(text, "\"g.bin\"", "\"h.bin\""));
    if (!fs::exists(path("h.bin"))) fs::copy_file(path("g.bin"), path("h.bin"));
    return run_dla("compile " + path("h.json") + " -o " + path("h.dlab"));
  }
  /// `dla run` of `program` with the input bound, outputs to `out`.
  std::string run_args(const std::string& program, const std::string& out) {
    return "run " + program + " -i x=" + input_ + " -o " + out;
  }
  /// The compiled program, changed by `edit`, written as a new file.
  template <class Edit>
  std::string crafted(const std::string& name, Edit edit) {
    dla::Program p = dla::read_program_file(prog_);
    edit(p);
    dla::write_program_file(path(name), p);
    return path(name);
  }

  std::string prog_, input_;
};

}  // namespace

// --- 1. special files ------------------------------------------------------------------

TEST_F(Hostile, FifosAreRefusedWithoutBlocking) {
  const std::string fifo = path("f");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string tool = DLA_TOOL_PATH;
  expect_user_error(run_shell(tool + " disasm " + fifo), fifo + ": cannot read program file: is a FIFO, not a regular file");
  expect_user_error(run_shell(tool + " run " + fifo + " -o " + path("o")),
                    fifo + ": cannot read program file: is a FIFO, not a regular file");
  expect_user_error(run_shell(tool + " config --check " + fifo),
                    fifo + ": cannot read hardware config: is a FIFO, not a regular file");
  expect_user_error(run_shell(tool + " run " + prog_ + " -i x=" + fifo + " -o " + path("o")),
                    fifo + ": cannot read .npy file: is a FIFO, not a regular file");
  expect_user_error(run_shell(tool + " compile " + fifo + " -o " + path("p.dlab")),
                    fifo + ": cannot read graph file: is a FIFO, not a regular file");
}

TEST_F(Hostile, DirectoriesAreNamedAsSuch) {
  fs::create_directories(path("d"));
  expect_user_error(run_dla("disasm " + path("d")), path("d") + ": cannot read program file: is a directory");
  expect_user_error(run_dla("config --check " + path("d")), path("d") + ": cannot read hardware config: is a directory");
}

TEST_F(Hostile, ConfigWithAnOverflowingNumberIsAUserError) {
  // Found by fuzz_hw_config_reader: a number past double's range was an internal error (exit code 2).
  write("c.json", "6E666666");
  expect_user_error(run_dla("config --check " + path("c.json")),
                    path("c.json") + ": invalid JSON: number overflow parsing '6E666666'");
}

// --- 2. silent acceptance in the graph file --------------------------------------------

TEST_F(Hostile, UnknownGraphFieldsAreErrors) {
  expect_user_error(compile_graph(replace(kGraph, "\"stride\"", "\"strides\"")),
                    "node 'c1': unknown field \"strides\" (did you mean \"stride\"?)");
  expect_user_error(compile_graph(replace(kGraph, "\"version\": 1,", "\"version\": 1, \"output\": [],")),
                    "top level: unknown field \"output\" (did you mean \"outputs\"?)");
  expect_user_error(compile_graph(replace(kGraph, "\"frac\": 0, \"shape\"", "\"frac\": 0, \"zzzz\": 1, \"shape\"")),
                    "node 'x': unknown field \"zzzz\" (known fields: name, op, dtype, frac, shape)");
  expect_user_error(compile_graph(replace(kGraph, "\"kernel\": [2, 2]}", "\"kernel\": [2, 2], \"out\": {}}")),
                    "node 'mp': max_pool takes no field \"out\" (its fields: name, op, inputs, kernel, stride, padding)");
  expect_user_error(compile_graph(replace(kGraph, "\"frac\": 0}}", "\"frac\": 0, \"clips\": [0, 1]}}")),
                    "node 'c1'.out: unknown field \"clips\" (did you mean \"clip\"?)");
  expect_user_error(compile_graph(replace(kGraph, "\"count\": 4}", "\"count\": 4, \"cnt\": 4}")),
                    "node 'c1'.weights: unknown field \"cnt\" (did you mean \"count\"?)");
}

TEST_F(Hostile, GraphFieldsOfTheWrongTypeAreErrors) {
  // Found by fuzz_graph_reader: a non-integer version was an internal error (exit code 2).
  expect_user_error(compile_graph(replace(kGraph, "\"version\": 1", "\"version\": [\"1\"]")),
                    "top level: unsupported graph version (this build reads version 1)");
  expect_user_error(compile_graph(replace(kGraph, "\"format\": \"dlasim-graph\"", "\"format\": 7")),
                    "top level: not a dlasim graph");
}

TEST_F(Hostile, GraphWhoseOutputIsItsInputIsRefused) {
  expect_user_error(compile_graph(replace(kGraph, "\"outputs\": [\"mp\"]", "\"outputs\": [\"x\"]")),
                    "outputs: output \"x\" is a graph input: no node computes it");
}

TEST_F(Hostile, WeightsFileWithExtraBytesIsRefused) {
  write("h.bin", std::string("\x01\x00\x00\x01\x07", 5));
  expect_user_error(compile_graph(kGraph), "h.bin: the weights file has 5 bytes, but the graph's nodes use only the first 4");
}

// --- 3. capacities at compile time -------------------------------------------------------

TEST_F(Hostile, CompileChecksDramCapacity) {
  write("c.json", R"({"dram_size_mib": 1})");
  expect_user_error(run_dla("compile --builtin resnet18 --size 64 --config " + path("c.json") + " -o " + path("r.dlab")),
                    "compile: the program does not fit the hardware config: program needs 12002256 bytes of DRAM, "
                    "more than the 1048576 bytes of the hardware config (dram_size_mib = 1)");
  EXPECT_FALSE(fs::exists(path("r.dlab")));
}

// --- 4. write errors ----------------------------------------------------------------------

TEST_F(Hostile, FailedWritesAreErrorsNamingTheFileAndErrno) {
  const std::string tool = DLA_TOOL_PATH;
  fs::create_directories(path("out"));
  fs::create_symlink("/dev/full", path("out/mp.npy"));
  expect_user_error(run_dla(run_args(prog_, path("out"))), path("out/mp.npy") + ": cannot write .npy file: No space left on device");
  expect_user_error(run_dla(run_args(prog_, path("o2")) + " --engine cycle --trace /dev/full"),
                    "/dev/full: cannot write trace file: No space left on device");
  expect_user_error(run_shell(tool + " " + run_args(prog_, path("o3")) + " --stats json >/dev/full"),
                    "cannot write to standard output: No space left on device");
  expect_user_error(run_shell(tool + " config --preset default >/dev/full"), "cannot write to standard output: No space left on device");
  expect_user_error(run_shell(tool + " disasm " + prog_ + " >/dev/full"), "cannot write to standard output: No space left on device");
  expect_user_error(run_dla("compile " + path("g.json") + " -o /dev/full"), "/dev/full: cannot write program file: No space left on device");
}

TEST_F(Hostile, OutputDirectoryErrorsNameTheErrno) {
  write("a_file", "x");
  expect_user_error(run_dla(run_args(prog_, path("a_file/sub"))),
                    "cannot create output directory '" + path("a_file/sub") + "': Not a directory");
}

// --- 6. records that point where they should not ------------------------------------------

TEST_F(Hostile, OutputRecordInTheConstantsIsRefusedByEveryEngine) {
  const std::string p = crafted("c.dlab", [](dla::Program& prog) {
    for (auto& t : prog.tensors) {
      if (t.role == dla::TensorRole::kOutput) t.dram_offset = 0;
    }
  });
  for (const char* engine : {"emu", "cycle"}) {
    expect_user_error(run_dla(run_args(p, path("o")) + " --engine " + engine),
                      "output 'mp' at DRAM [0, 8) overlaps the program's constants [0, 22): it would report "
                      "constants as a result");
  }
  EXPECT_FALSE(fs::exists(path("o")));
}

TEST_F(Hostile, LayerRecordOutsideWrittenDramIsRefused) {
  const std::string p = crafted("l.dlab", [](dla::Program& prog) {
    prog.debug[0].output.dram_offset = prog.dram_size;  // past everything the program writes
    prog.dram_size += 64;
  });
  expect_user_error(run_dla(run_args(p, path("o"))),
                    "layer 'c1' at DRAM [200, 232) is not DRAM that the program's instructions write");
}

TEST_F(Hostile, InputRecordOverTheConstantsIsRefused) {
  const std::string p = crafted("i.dlab", [](dla::Program& prog) {
    for (auto& t : prog.tensors) {
      if (t.role == dla::TensorRole::kInput) t.dram_offset = 16;
    }
  });
  expect_user_error(run_dla(run_args(p, path("o"))), "input 'x' at DRAM [16, 48) overlaps the program's constants [0, 22)");
}

TEST_F(Hostile, ProgramWithoutOutputsIsRefused) {
  const std::string p = crafted("n.dlab", [](dla::Program& prog) {
    auto& t = prog.tensors;
    t.erase(std::remove_if(t.begin(), t.end(), [](const dla::TensorDesc& d) { return d.role == dla::TensorRole::kOutput; }),
            t.end());
  });
  expect_user_error(run_dla(run_args(p, path("o"))), p + ": the program has no outputs; a run would write nothing");
  EXPECT_FALSE(fs::exists(path("o")));
}

// --- 7. memory from a header ---------------------------------------------------------------

TEST_F(Hostile, HugeDramHeaderTakesNoMemoryItDoesNotTouch) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan the tool's peak RSS is the sanitizer's shadow memory, not the DRAM";
#endif
  // 1 GiB of DRAM (the default config's whole DRAM) for a program that touches 200 bytes.
  const std::string p = crafted("big.dlab", [](dla::Program& prog) { prog.dram_size = std::uint64_t{1} << 30; });
  const ToolResult r = run_dla(run_args(p, path("o")));
  ASSERT_EQ(r.code, 0) << r.out;
  rusage usage{};
  ASSERT_EQ(getrusage(RUSAGE_CHILDREN, &usage), 0);
  EXPECT_LT(usage.ru_maxrss, 512 * 1024) << "peak RSS of dla in KiB";  // it took 1.2 GB when DRAM was zero-filled
}

// --- 10. errors that name the wrong thing ----------------------------------------------------

TEST_F(Hostile, ErrorsQuoteWhatIsWrong) {
  expect_user_error(compile_graph(replace(kGraph, "\"offset\": 0", "\"offset\": 18446744073709551615")),
                    "node 'c1': \"offset\" = 18446744073709551615 is out of range");
  expect_user_error(compile_graph(replace(kGraph, "\"name\": \"x\"", "\"name\": \"a\\nb\"")),
                    "node 0: name \"a\\nb\" must be 1..255 printable ASCII characters");
}

TEST_F(Hostile, UnknownTraceLayerCreatesNoOutputDirectory) {
  expect_user_error(run_dla(run_args(prog_, path("o")) + " --engine cycle --trace " + path("t.vcd") + " --trace-layer nope"),
                    "--trace layer 'nope' is not a layer of the program (layers: c1, mp)");
  EXPECT_FALSE(fs::exists(path("o")));
  EXPECT_FALSE(fs::exists(path("t.vcd")));
}

// --- 5. outputs as one set ------------------------------------------------------------------

namespace {

/// The manifest's files, each checked against its size and CRC-32; returns their names.
std::vector<std::string> verified_manifest(const fs::path& dir) {
  const auto j = nlohmann::json::parse(dla::testing::slurp(dir / "manifest.json"));
  EXPECT_EQ(j.at("format"), "dla-run-manifest");
  std::vector<std::string> names;
  for (const auto& f : j.at("files")) {
    const std::string bytes = dla::testing::slurp(dir / f.at("file").get<std::string>());
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", dla::crc32(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    EXPECT_EQ(f.at("bytes").get<std::size_t>(), bytes.size()) << f;
    EXPECT_EQ(f.at("crc32").get<std::string>(), crc) << f;
    names.push_back(f.at("file").get<std::string>());
  }
  return names;
}

bool has_staging_dir(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".dla-run-", 0) == 0) return true;
  }
  return false;
}

}  // namespace

TEST_F(Hostile, ARunReplacesThePreviousSetAndItsManifest) {
  const fs::path out = path("o");
  ASSERT_EQ(run_dla(run_args(prog_, out.string()) + " --dump-layers").code, 0);
  EXPECT_EQ(verified_manifest(out), (std::vector<std::string>{"mp.npy", "layers/c1.npy", "layers/mp.npy"}));
  ASSERT_EQ(run_dla(run_args(prog_, out.string())).code, 0);
  EXPECT_EQ(verified_manifest(out), std::vector<std::string>{"mp.npy"});
  EXPECT_FALSE(fs::exists(out / "layers/c1.npy")) << "a stale file of the previous run is left";
  EXPECT_FALSE(has_staging_dir(out));
}

TEST_F(Hostile, AFailedRunLeavesThePreviousSetIntact) {
  const fs::path out = path("o");
  ASSERT_EQ(run_dla(run_args(prog_, out.string())).code, 0);
  const std::string manifest = dla::testing::slurp(out / "manifest.json");
  fs::create_directories(out / "layers");
  fs::create_symlink("/dev/full", out / "layers/c1.npy");
  expect_user_error(run_dla(run_args(prog_, out.string()) + " --dump-layers"),
                    (out / "layers/c1.npy").string() + ": cannot write .npy file: No space left on device");
  EXPECT_EQ(dla::testing::slurp(out / "manifest.json"), manifest);
  EXPECT_EQ(verified_manifest(out), std::vector<std::string>{"mp.npy"});
  EXPECT_FALSE(fs::exists(out / "layers/mp.npy"));
  EXPECT_FALSE(has_staging_dir(out));
}
