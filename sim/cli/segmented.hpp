// Models with float parts in the tool: `dla compile` writes a segmented program, `dla run`
// and `dla signoff` run its device segments on an engine and its host steps with libtorch
// (dla/qat/host_segments.hpp). In a build without libtorch these refuse with one line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dla/hw_config.hpp"
#include "dla/program.hpp"
#include "signoff_checks.hpp"
#include "tool_common.hpp"

namespace dla::cli {

/// Whether `path` is a segmented program (rather than a .dlab).
bool is_segmented(const std::string& path);

/// Writes the segmented program of `model` (device segments compiled to `programs`).
void write_segmented(const std::string& path, const Model& model, const std::vector<Program>& programs);

/// `dla disasm` of a segmented program: its inputs, steps and outputs, then every segment.
std::string describe_segmented(const std::string& path, const ReadOptions& options);

struct SegmentedRun {
  std::string path;
  std::string engine;
  std::optional<HwConfig> hw;  ///< --config/--preset; else the one the segments embed
  std::vector<std::string> inputs;  ///< NAME=FILE.npy
  std::string output_dir;
  bool dump_layers = false;
  std::string report_format;  ///< "table", "json" or "none"
  bool json = false;          ///< stdout is one JSON document
};
/// `dla run` on a segmented program; returns the exit code.
int run_segmented(const SegmentedRun& run);

/// The sign-off checks of a segmented model on `engines`: every device layer of every
/// segment against the compiler's reference evaluator, every host value bit for bit,
/// both runs chaining their segments through the same host plan. `program` is a
/// segmented program to check instead of compiling the model. `trace_json` and
/// `timeline` (optional) receive the cycle run's Chrome trace and unit timeline, the
/// device segments back to back.
std::vector<LayerCheck> signoff_segmented(const Model& model, const std::optional<std::string>& program,
                                          const std::vector<std::string>& engines,
                                          const std::vector<std::string>& inputs, std::string* trace_json = nullptr,
                                          nlohmann::json* timeline = nullptr);

/// The values of the float model the export holds (dlasim.export(..., float_reference=True))
/// on `inputs` (by input name), by node name: what `dla signoff` measures SQNR against.
/// Empty when the model is not such an export or the build has no libtorch.
FloatValues float_reference(const Model& model, const std::map<std::string, RealTensor>& inputs);

}  // namespace dla::cli
