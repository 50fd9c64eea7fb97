// segments.hpp — a QAT export with float parts split into device segments and host steps
// (private to the importer; the plan's format is documented in
// qat_bridge/include/dla/qat/host_segments.hpp, which runs it).
//
// Every node gets a stage: device values even, host values odd, each the smallest such
// number not below its inputs' stages (a graph input is at 0, a float input at -1). The
// device nodes of one even stage are one device segment; host nodes run at their odd
// stage, quantize nodes (float -> int) just before the device segment of their stage.
// A segment reads every integer value made outside it as a program input of the same
// name, dtype, frac and shape, and writes as outputs the values read outside it.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dla::compiler {

struct SegmentSplit {
  std::vector<nlohmann::json> inputs;  ///< graph-file input nodes of the values it reads from outside
  std::vector<std::size_t> nodes;      ///< indices into the export's "nodes", in order
  nlohmann::json outputs;              ///< names of the values read outside it
};

struct Segmentation {
  std::vector<SegmentSplit> segments;  ///< in run order
  nlohmann::json plan;                 ///< the host plan (dla/qat/host_segments.hpp)
};

/// Splits an export's graph (graph_json, already checked to be a dlasim export). Throws
/// dla::Error naming the node for a host node that is malformed or reads an unknown value.
Segmentation split_at_host_nodes(const nlohmann::json& graph, const std::string& path);

}  // namespace dla::compiler
