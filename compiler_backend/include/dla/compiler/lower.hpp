// dla/compiler/lower.hpp — lowering a graph to a DLA program.
//
// Layout: every 4-D activation lies in DRAM as NHWC (channels innermost, 4-bit types
// packed), 2-D ones row-major; each node's output has its own DRAM range (never
// reused, so any engine can dump any layer after the run). Flatten is free: its
// output keeps the NHWC bytes of its input (its descriptor says so) and a following
// linear layer's weight columns are permuted to match.
//
// Tiling: each op is cut into tiles that fit the SRAMs of the hardware config twice
// (double buffering): convolutions over output rows, columns and channels, with input
// channels split into chunks whose partial sums accumulate in the ACC buffer, and
// input halos loaded per spatial tile (zero-filled where they fall on padding).
//
// Scheduling: every op runs as one pipeline of steps. Step k's loads go to SRAM slot
// k % 2 and push a token to the compute queue; the compute queue pops it, computes,
// and (when a later load will need the slot) pushes a token back. A finished tile is
// written to output slot t % 2 and handed to the store queue the same way. So the load
// of step k+1 overlaps the compute of step k, and the store of tile t overlaps the
// compute of tile t+1. Ops are separated by SYNC.
#pragma once

#include "dla/compiler/graph.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"

namespace dla::compiler {

struct CompileOptions {
  /// Embed the hardware config in the program (CONFIG section).
  bool embed_config = true;
};

/// Compiles `graph` for `hw`. Throws dla::Error naming the node and the reason when the
/// hardware cannot run it (a precision it lacks, a kernel larger than its limits, a
/// tile that cannot fit its SRAMs, ...).
Program compile(const Graph& graph, const HwConfig& hw, const CompileOptions& options = {});

}  // namespace dla::compiler
