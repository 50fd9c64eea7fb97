// An output directory of `dla run`: runs publish one at a time (a run that finds another
// publishing waits, says so, and publishes after it), concurrent runs leave one complete
// set, and `dla verify DIR` reports every file missing, extra or changed.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "../support/small_net.hpp"
#include "dla/compiler/graph_io.hpp"
#include "dla/npy.hpp"

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::slurp;
namespace fs = std::filesystem;

namespace {

class OutputDir : public dla::testing::ScratchDirTest {
 protected:
  OutputDir() : ScratchDirTest("output_dir") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    dla::compiler::save_graph(dla::testing::small_net(1, 31), path("n.json"));
    ASSERT_EQ(run_dla("compile " + path("n.json") + " -o " + path("n.dlab")).code, 0);
    for (int i = 0; i < 4; ++i) {
      dla::npy::write_tensor(path("x" + std::to_string(i) + ".npy"), dla::testing::small_net_input(1, 40 + i));
    }
  }
  std::string run_args(int input, const std::string& extra = "") const {
    return "run " + path("n.dlab") + " -i x=" + path("x" + std::to_string(input) + ".npy") + " -o " + path("out") +
           " --dump-layers " + extra;
  }
};

TEST_F(OutputDir, VerifyReportsMissingExtraAndChangedFiles) {
  ASSERT_EQ(run_dla(run_args(0)).code, 0);
  auto ok = run_dla("verify " + path("out"));
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("verify: OK: the 4 files of"), std::string::npos) << ok.out;  // conv2 + 3 layer dumps

  fs::remove(path("out/layers/pool.npy"));
  std::ofstream(path("out/stray.npy")) << "x";
  {
    std::string bytes = slurp(path("out/conv2.npy"));
    bytes.back() ^= 1;  // same size, another CRC-32
    std::ofstream(path("out/conv2.npy"), std::ios::binary) << bytes;
  }
  {
    std::ofstream f(path("out/layers/conv1.npy"), std::ios::binary | std::ios::app);
    f << "more";
  }
  const auto bad = run_dla("verify " + path("out"));
  EXPECT_EQ(bad.code, 1) << bad.out;
  for (const char* s : {"missing: layers/pool.npy", "not in the manifest: stray.npy", "CRC-32 differs: conv2.npy",
                        "size differs: layers/conv1.npy", "verify: FAIL: 4 problems"}) {
    EXPECT_NE(bad.out.find(s), std::string::npos) << s << "\n" << bad.out;
  }
  // A new run replaces the set; the stray file is not the run's to remove.
  ASSERT_EQ(run_dla(run_args(1)).code, 0);
  fs::remove(path("out/stray.npy"));
  EXPECT_EQ(run_dla("verify " + path("out")).code, 0);

  expect_user_error(run_dla("verify " + path("nowhere")), "is not a directory");
  fs::create_directories(path("empty"));
  expect_user_error(run_dla("verify " + path("empty")), "manifest");
  std::ofstream(path("empty/manifest.json")) << "{\"format\": \"dla-run-manifest\", \"files\": [{\"file\": \"../x\", "
                                                "\"bytes\": 1, \"crc32\": \"0\"}]}";
  expect_user_error(run_dla("verify " + path("empty")), "is not a path inside the directory");
}

TEST_F(OutputDir, ARunWaitsWhileAnotherPublishes) {
  ASSERT_EQ(run_dla(run_args(0)).code, 0);
  const std::string before = slurp(path("out/manifest.json"));
  // Hold the publishing lock as another run would.
  const int fd = ::open(path("out/.dla-run.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);  // not inherited by the run
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  FILE* p = ::popen((std::string(DLA_TOOL_PATH) + " " + run_args(1) + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[4096];
  ASSERT_NE(std::fgets(line, sizeof line, p), nullptr);  // the first line: it waits
  EXPECT_NE(std::string(line).find("waiting for another dla run to finish publishing its outputs into '" +
                                   path("out") + "'"),
            std::string::npos)
      << line;
  EXPECT_EQ(slurp(path("out/manifest.json")), before) << "published while the lock was held";
  ::close(fd);  // release: the waiting run publishes
  std::string rest;
  while (std::fgets(line, sizeof line, p) != nullptr) rest += line;
  EXPECT_EQ(::pclose(p), 0) << rest;
  EXPECT_NE(slurp(path("out/manifest.json")), before);
  EXPECT_EQ(run_dla("verify " + path("out")).code, 0);
}

TEST_F(OutputDir, ConcurrentRunsLeaveOneCompleteSet) {
  // Each input's own outputs, one run each into its own directory.
  std::vector<std::string> alone;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(run_dla("run " + path("n.dlab") + " -i x=" + path("x" + std::to_string(i) + ".npy") + " -o " +
                      path("alone" + std::to_string(i)) + " --dump-layers")
                  .code,
              0);
    alone.push_back(slurp(path("alone" + std::to_string(i) + "/conv2.npy")) +
                    slurp(path("alone" + std::to_string(i) + "/layers/conv1.npy")));
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> runs;
    std::vector<int> codes(4, -1);
    for (int i = 0; i < 4; ++i) runs.emplace_back([&, i] { codes[static_cast<std::size_t>(i)] = run_dla(run_args(i)).code; });
    for (auto& t : runs) t.join();
    for (int c : codes) EXPECT_EQ(c, 0);
    const auto v = run_dla("verify " + path("out"));
    EXPECT_EQ(v.code, 0) << v.out;
    const std::string got = slurp(path("out/conv2.npy")) + slurp(path("out/layers/conv1.npy"));
    EXPECT_NE(std::find(alone.begin(), alone.end(), got), alone.end()) << "the directory mixes two runs' files";
  }
}

}  // namespace
