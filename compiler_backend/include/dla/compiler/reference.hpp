// dla/compiler/reference.hpp — the golden model: runs a graph op by op on whole tensors
// with dla/numerics.hpp, with no tiling and no ISA. The compiler's output must equal it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/hw_config.hpp"
#include "dla/tensor.hpp"

namespace dla::compiler {

/// Every node's output, indexed by node id. Throws Error for a missing input or one of
/// the wrong dtype/shape, and for an avg pool whose multiplier does not fit 16 bits.
std::vector<HostTensor> evaluate(const Graph& graph, const HwConfig& hw,
                                 const std::map<std::string, HostTensor>& inputs);

}  // namespace dla::compiler
