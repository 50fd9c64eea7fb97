// A small quantized network for tests of the `dla` tool: conv 3x3 + ReLU, max pool, conv
// 1x1, for any batch, with weights from a seed (two seeds: two models of one shape).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/tensor.hpp"

namespace dla::testing {

inline compiler::Graph small_net(std::int64_t batch, std::uint32_t seed) {
  compiler::Graph g;
  std::mt19937 rng(seed);
  auto weights = [&](std::size_t n) {
    std::vector<std::int32_t> w(n);
    for (auto& v : w) v = static_cast<std::int32_t>(rng() % 255) - 127;
    return w;
  };
  const int x = g.input("x", DType::U8, 6, {batch, 8, 12, 12});
  compiler::ConvAttrs c3;
  c3.kernel_h = c3.kernel_w = 3;
  c3.pad_top = c3.pad_left = c3.pad_bottom = c3.pad_right = 1;
  compiler::QuantSpec relu;
  relu.frac = 3;
  relu.clip_lo = 0;
  int y = g.conv2d("conv1", x, 16, c3, DType::I8, weights(16 * 8 * 9), std::vector<int>(16, 7),
                   std::vector<std::int64_t>(16, 5), relu);
  y = g.max_pool("pool", y, compiler::PoolAttrs{});
  compiler::QuantSpec q;
  q.frac = 2;
  y = g.conv2d("conv2", y, 8, compiler::ConvAttrs{}, DType::I8, weights(8 * 16), std::vector<int>(8, 6),
               std::vector<std::int64_t>(8, 0), q);
  g.mark_output(y);
  return g;
}

/// A u8 input of small_net with `batch` images, values from `seed`.
inline HostTensor small_net_input(std::int64_t batch, std::uint32_t seed) {
  HostTensor t;
  t.dtype = DType::U8;
  t.frac = 6;
  t.shape = {static_cast<std::uint64_t>(batch), 8, 12, 12};
  std::mt19937 rng(seed);
  for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(static_cast<std::int32_t>(rng() % 256));
  return t;
}

}  // namespace dla::testing
