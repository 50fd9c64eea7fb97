// BatchRunner (dla/batch.hpp): a batch spread over threads gives, image for image, what the
// reference evaluator computes, whatever the thread count; a failing image is named.
#include <gtest/gtest.h>

#include <random>

#include "dla/batch.hpp"
#include "dla/compiler/graph.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/error.hpp"

namespace dla {
namespace {

struct Net {
  compiler::Graph graph;
  int out = -1;
};

Net small_net() {
  Net n;
  const int x = n.graph.input("x", DType::U8, 6, {1, 16, 12, 12});
  compiler::ConvAttrs a;
  a.kernel_h = a.kernel_w = 3;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 1;
  std::vector<std::int32_t> w(32 * 16 * 9);
  std::mt19937 rng(7);
  for (auto& v : w) v = static_cast<std::int32_t>(rng() % 255) - 127;
  compiler::QuantSpec q;
  q.frac = 3;
  n.out = n.graph.conv2d("conv", x, 32, a, DType::I8, w, std::vector<int>(32, 7), std::vector<std::int64_t>(32, 0), q);
  n.graph.mark_output(n.out);
  return n;
}

HostTensor image(std::uint32_t seed) {
  HostTensor t;
  t.dtype = DType::U8;
  t.frac = 6;
  t.shape = {1, 16, 12, 12};
  std::mt19937 rng(seed);
  for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(static_cast<std::int32_t>(rng() % 256));
  return t;
}

TEST(BatchRunner, EveryImageEqualsTheReferenceOnAnyThreadCount) {
  const Net net = small_net();
  const HwConfig hw = HwConfig::preset("small");
  const Program program = compiler::compile(net.graph, hw);
  std::vector<sim::TensorMap> batch;
  for (std::uint32_t i = 0; i < 9; ++i) batch.push_back({{"x", image(100 + i)}});
  for (const unsigned threads : {1u, 2u, 3u}) {
    sim::BatchRunner runner(program, hw, [](const HwConfig& c) { return sim::make_emulator(c); }, threads);
    ASSERT_EQ(runner.threads(), threads);
    const auto results = runner.run(batch);
    ASSERT_EQ(results.size(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto want = compiler::evaluate(net.graph, hw, {{"x", batch[i].at("x")}})[static_cast<std::size_t>(net.out)];
      EXPECT_EQ(results[i].at("conv").values, want.values) << "image " << i << " on " << threads << " threads";
    }
  }
}

TEST(BatchRunner, TheFirstFailingImageIsNamed) {
  const Net net = small_net();
  const HwConfig hw = HwConfig::preset("small");
  const Program program = compiler::compile(net.graph, hw);
  std::vector<sim::TensorMap> batch;
  for (std::uint32_t i = 0; i < 6; ++i) batch.push_back({{"x", image(i)}});
  batch[3]["x"].shape = {1, 16, 12, 11};
  batch[5]["x"].shape = {1, 16, 12, 11};
  sim::BatchRunner runner(program, hw, [](const HwConfig& c) { return sim::make_emulator(c); }, 2);
  try {
    runner.run(batch);
    FAIL() << "a wrong shape was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("image 3: ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace dla
