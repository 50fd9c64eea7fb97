// Pieces the subcommands share: the engine table, input binding from .npy files, and the
// model a command compiles (a QAT export, a graph file or a built-in network, with its
// hardware config).
#pragma once

#include <boost/program_options.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/device.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"

namespace dla::cli {

/// The engines `--engine` chooses from; a new engine is one row.
struct Engine {
  const char* name;
  std::unique_ptr<sim::Device> (*make)(const HwConfig& config);
  bool timing;  ///< a sim::CycleDevice: --report and --trace apply
};
const Engine& find_engine(const std::string& name);
std::string engine_names();
/// The engines of a comma-separated `--engines` list, each checked (unknown names are
/// refused before any work); `all_engines()`: every engine this build has.
std::vector<std::string> parse_engines(const std::string& text);
std::vector<std::string> all_engines();

/// Every input of `program` from `--input NAME=FILE.npy` specs: each exactly once, no
/// unknown names, each file checked against the input's descriptor (with `batches`, its
/// leading dimension may be a multiple of the program's: npy::read_tensor).
std::map<std::string, HostTensor> read_inputs(const Program& program, const std::vector<std::string>& specs,
                                              bool batches = false);

/// The model options of compile and signoff: the positional MODEL, --builtin, --size,
/// --preset and --config.
void add_model_options(boost::program_options::options_description& options);

struct Model {
  compiler::Graph graph;  ///< a model quantized end to end
  HwConfig hw;
  /// A QAT export with float parts: its device segments and host plan
  /// (dla/qat/host_segments.hpp), and the export's path (its host modules).
  std::vector<compiler::Graph> segments;
  std::string host_plan;
  std::string path;
  bool segmented() const { return !host_plan.empty(); }
};
/// The graph and hardware config the model options name. A QAT export carries the
/// hardware it was trained for: it is used when no --preset/--config is given, and a
/// given one must agree with it in every field that changes the integers.
Model load_model(const boost::program_options::variables_map& vm);
/// The model in `path` (a QAT export or a graph file) for `requested` (null: the export's
/// own config, or the default preset for a graph file; `requested_name` names it in errors).
Model load_model_file(const std::string& path, const HwConfig* requested = nullptr,
                      const std::string& requested_name = "");

/// Compiles `graph` for `hw` and checks that the program loads and that every
/// instruction's accesses fit the hardware config (a program that compiles is a program
/// that runs).
Program compile_checked(const compiler::Graph& graph, const HwConfig& hw, bool embed_config = true);

/// One phase of a command, logged at info level when it ends with its wall time
/// (`--log-level info`: "compile: segment 1: 12.3 ms"), and at debug level when it starts.
class Phase {
 public:
  explicit Phase(std::string what);
  ~Phase();
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  std::string what_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace dla::cli
