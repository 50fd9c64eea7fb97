// dla/compiler/graph_io.hpp — the graph file `dla compile` reads: JSON for structure,
// a binary side file for weights.
//
//   {"format": "dlasim-graph", "version": 1, "weights_file": "net.bin",
//    "nodes": [
//      {"name": "x", "op": "input", "dtype": "u8", "frac": 0, "shape": [1, 3, 32, 32]},
//      {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 8,
//       "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1, 1, 1] (top, left, bottom, right),
//       "dilation": [1, 1], "groups": 1,
//       "weight_dtype": "i8", "weights": {"offset": 0, "count": 216} | [ints...],
//       "weight_frac": [5, ...], "bias": [ints...],
//       "out": {"dtype": "i8", "frac": 4, "clip": [0, null]}},
//      {"name": "fc", "op": "linear", "inputs": ["flat"], "out_features": 10, ...},
//      {"name": "s", "op": "add", "inputs": ["a", "b"], "out": {...}},
//      {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
//      {"name": "mp", "op": "max_pool", "inputs": ["s"], "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]},
//      {"name": "ap", "op": "avg_pool", ... , "out": {...}},
//      {"name": "gap", "op": "global_avg_pool", "inputs": [...], "out": {...}},
//      {"name": "up", "op": "upsample2x", "inputs": [...]},
//      {"name": "flat", "op": "flatten", "inputs": [...]},
//      {"name": "act", "op": "lut", "inputs": ["c1"], "function": "silu", "out": {"dtype": "i8", "frac": 5}}],
//    "outputs": ["fc"]}
// Weights in the side file are one signed byte per value (i8 and i4 alike), at
// "offset" bytes; every byte of the file belongs to some node. Nodes are listed in
// topological order; names are 1..255 printable ASCII characters.
//
// The schema is strict: a field an object may not have is an error (with a "did you
// mean" for a misspelling), never ignored. Optional fields and their defaults:
//   top level         "weights_file": none (every node's weights are inline arrays)
//   conv2d            "stride" [1, 1], "padding" [0, 0, 0, 0], "dilation" [1, 1],
//                     "groups" 1, "bias" all zero
//   linear            "bias" all zero
//   max_pool/avg_pool "stride" = "kernel", "padding" [0, 0, 0, 0]
//   out               "clip" [null, null] (the output type's range)
// Every other field listed above is required where it appears, and only there: "out"
// belongs to the requantizing ops (conv2d, linear, add, avg_pool, global_avg_pool),
// "inputs" to every op but input. Every output must be a computed node, not an input.
// A lut node's "function" is one of silu, sigmoid, tanh, hardswish, hardsigmoid, gelu_tanh,
// leaky_relu and elu (both with "alpha": the negative slope, ELU's alpha) or table (with
// "table": the output integers for every input, 2^bits of them, 257 knots for i16 inputs);
// its "out" has no clip.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dla/compiler/graph.hpp"

namespace dla::compiler {

/// Reads a graph file; the weights file is resolved relative to the JSON file. Throws
/// dla::Error naming the file, the node and the field for any malformed input.
Graph load_graph(const std::string& json_path);

/// Given the "weights_file" field: the path that names the weights in errors, and the bytes.
using WeightsReader = std::function<std::pair<std::string, std::vector<char>>(const std::string& weights_file)>;
/// load_graph on the text of a graph file (`json_path` names it in errors), with the
/// weights file read by `read_weights` (the fuzz target's entry point).
Graph parse_graph(std::string_view text, const std::string& json_path, const WeightsReader& read_weights);

/// Writes `graph` as `json_path` plus a weights file next to it (same stem, ".bin").
void save_graph(const Graph& graph, const std::string& json_path);

}  // namespace dla::compiler
