// dla/compiler/models.hpp — reference network shapes for benchmarks and demos.
#pragma once

#include <cstdint>

#include "dla/compiler/graph.hpp"

namespace dla::compiler {

/// A ResNet-18-shaped int8 graph: u8 input [batch, 3, size, size], the 20 convolutions
/// (7x7 stem, 16 3x3 in 8 basic blocks, 3 1x1 downsamples) with ReLU clips, the 8
/// residual adds, the 3x3 max pool, global average pool and a 1000-way linear layer.
/// Weights are random (seeded) with per-layer fracs that keep activations in range.
Graph resnet18(std::int64_t size = 224, std::int64_t batch = 1, std::uint64_t seed = 18);

}  // namespace dla::compiler
