// dla/compiler/qat_export.hpp — the QAT bridge's export (`dlasim.export`, a `.dla.pt`
// TorchScript file) as a compiler input, and the hardware config that travels with it.
//
// The export holds the graph as JSON (`graph_json`, documented in
// qat_bridge/python/dlasim/export.py) and its integer tensors as buffers. The importer
// translates it into the graph file's document (graph_io.hpp) and parses that, so both
// inputs go through one reader. Reading the TorchScript container needs libtorch: the
// importer is the library dla::importer, built with DLA_WITH_TORCH.
#pragma once

#include <string>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/hw_config.hpp"

namespace dla::compiler {

struct QatExport {
  /// The device graph of a model quantized end to end (empty when segmented()).
  Graph graph;
  /// A model with float parts: its device segments, in run order, and the host plan that
  /// runs them with its float parts between (JSON, dla/qat/host_segments.hpp).
  std::vector<Graph> segments;
  std::string host_plan;
  bool segmented() const { return !host_plan.empty(); }
  /// The hardware fields the model was trained for (the export's "hw" object, JSON text):
  /// the ones that change the integers.
  std::string hw_json;
  /// The export's "hw_identity": the identity hash (hex) of the config it derives, or empty
  /// for an export written before it was recorded.
  std::string hw_identity;
  /// The precision plan, for people.
  std::string plan;
};

/// Whether `path` starts like a TorchScript file (a zip archive) rather than JSON.
bool looks_like_torchscript(const std::string& path);

/// Reads a `.dla.pt` export. Throws dla::Error naming the file (and the node) for a file
/// that is not a dlasim export or a malformed graph. A model with float parts (host
/// nodes) is split into device segments and a host plan.
QatExport import_qat_export(const std::string& path);

/// The hardware config to compile `model` for. With no `requested` config it is the
/// default preset with the model's trained-for fields applied; with one, every
/// trained-for field must agree with it, else dla::Error names the first field that
/// differs (`requested_name` says where the requested config came from).
HwConfig config_for_export(const QatExport& model, const std::string& path, const HwConfig* requested,
                           const std::string& requested_name);

}  // namespace dla::compiler
