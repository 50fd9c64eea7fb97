// `dla run` with inputs holding several of the program's batches: the outputs stacked along
// the batch equal the compiler's reference evaluator on the whole batch and the runs of
// the images one by one, on the emulator and the cycle model; bad batch sizes are one
// clear error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "../support/run_tool.hpp"
#include "../support/small_net.hpp"
#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/hw_config.hpp"
#include "dla/npy.hpp"

using dla::testing::expect_user_error;
using dla::testing::run_dla;
using dla::testing::small_net;
using dla::testing::small_net_input;

namespace {

class RunBatches : public dla::testing::ScratchDirTest {
 protected:
  RunBatches() : ScratchDirTest("run_batches") {}
  /// Compiles small_net for `batch` images per run into NAME.dlab.
  std::string compile(std::int64_t batch, const std::string& name) {
    dla::compiler::save_graph(small_net(batch, 21), path(name + ".json"));
    const auto r = run_dla("compile " + path(name + ".json") + " -o " + path(name + ".dlab"));
    EXPECT_EQ(r.code, 0) << r.out;
    return path(name + ".dlab");
  }
  std::string run(const std::string& prog, const std::string& engine, const std::string& input, const std::string& out,
                  const std::string& extra = "") {
    return "run " + prog + " --engine " + engine + " -i x=" + input + " -o " + path(out) + " " + extra;
  }
};

/// The reference evaluator on the whole batch at once (a graph built for 6 images).
dla::HostTensor reference(const dla::HostTensor& x) {
  const dla::compiler::Graph g = small_net(static_cast<std::int64_t>(x.shape[0]), 21);
  const auto all = dla::compiler::evaluate(g, dla::HwConfig::preset("default"), {{"x", x}});
  return all.at(static_cast<std::size_t>(g.find("conv2")));
}

TEST_F(RunBatches, StackedOutputsEqualTheReferenceAndTheImagesOneByOne) {
  const std::string one = compile(1, "b1"), two = compile(2, "b2");
  const dla::HostTensor x = small_net_input(6, 77);
  dla::npy::write_tensor(path("x6.npy"), x);
  const dla::HostTensor want = reference(x);
  for (const std::string engine : {"emu", "cycle"}) {
    for (const auto& [prog, batches] : {std::pair{one, 6}, std::pair{two, 3}}) {
      const std::string out = engine + std::to_string(batches);
      const auto r = run_dla(run(prog, engine, path("x6.npy"), out, "--stats json --report none"));
      ASSERT_EQ(r.code, 0) << r.out;
      const auto j = nlohmann::json::parse(r.out);
      EXPECT_EQ(j["batches"], batches);
      EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json({6, 8, 6, 6}));
      const auto got = dla::npy::read(path(out + "/conv2.npy"));
      EXPECT_EQ(got.shape, (std::vector<std::uint64_t>{6, 8, 6, 6})) << engine;
      EXPECT_EQ(got.values, want.values) << engine << " with " << batches << " batches";
      EXPECT_EQ(j["saturations"].get<std::uint64_t>(), j["layers"][0]["saturations"].get<std::uint64_t>() +
                                                            j["layers"][1]["saturations"].get<std::uint64_t>() +
                                                            j["layers"][2]["saturations"].get<std::uint64_t>());
    }
  }
  // One image at a time through the batch-1 program, each against its slice of the stack.
  const auto stacked = dla::npy::read(path("emu6/conv2.npy"));
  const std::size_t per_image = stacked.values.size() / 6;
  std::uint64_t saturations = 0;
  for (std::uint64_t i = 0; i < 6; ++i) {
    dla::HostTensor xi = x;
    xi.shape[0] = 1;
    const std::size_t n = x.values.size() / 6;
    xi.values.assign(x.values.begin() + static_cast<std::ptrdiff_t>(i * n),
                     x.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * n));
    dla::npy::write_tensor(path("x1.npy"), xi);
    const auto r = run_dla(run(one, "emu", path("x1.npy"), "single", "--stats json"));
    ASSERT_EQ(r.code, 0) << r.out;
    saturations += nlohmann::json::parse(r.out)["saturations"].get<std::uint64_t>();
    const auto got = dla::npy::read(path("single/conv2.npy"));
    EXPECT_EQ(got.values, std::vector<std::int32_t>(stacked.values.begin() + static_cast<std::ptrdiff_t>(i * per_image),
                                                    stacked.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * per_image)))
        << "image " << i;
  }
  const auto all = run_dla(run(one, "emu", path("x6.npy"), "again", "--stats json"));
  EXPECT_EQ(nlohmann::json::parse(all.out)["saturations"].get<std::uint64_t>(), saturations) << "statistics are summed";
  // The cycle model: every batch takes the same cycles; the total is the sum.
  const auto c = run_dla(run(two, "cycle", path("x6.npy"), "cyc", "--report json"));
  ASSERT_EQ(c.code, 0) << c.out;
  const auto cj = nlohmann::json::parse(c.out);
  EXPECT_EQ(cj["cycles"].get<std::uint64_t>(), 3 * cj["report"]["cycles"].get<std::uint64_t>());
}

TEST_F(RunBatches, BatchSizesThatDoNotDivideAreOneClearError) {
  const std::string two = compile(2, "b2");
  dla::npy::write_tensor(path("x5.npy"), small_net_input(5, 1));
  expect_user_error(run_dla(run(two, "emu", path("x5.npy"), "o")),
                    "expected shape [2,8,12,12] (or a multiple of the program's batch 2 in the leading dimension), "
                    "got [5,8,12,12]");
  dla::npy::write_tensor(path("x4.npy"), small_net_input(4, 1));
  expect_user_error(run_dla(run(two, "emu", path("x4.npy"), "o", "--dump-layers")),
                    "--dump-layers takes one batch of the program (2 in the leading dimension); the inputs hold 2");
  expect_user_error(run_dla(run(two, "cycle", path("x4.npy"), "o", "--trace " + path("t.json"))),
                    "--trace takes one batch");
  EXPECT_FALSE(std::filesystem::exists(path("o"))) << "a refused run created its output directory";
}

}  // namespace
