// Pieces the subcommands share: the engine table, input binding from .npy files, and the
// model a command compiles (a QAT export, a graph file or a built-in network, with its
// hardware config).
#pragma once

#include <boost/program_options.hpp>
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

/// Every input of `program` from `--input NAME=FILE.npy` specs: each exactly once, no
/// unknown names, each file checked against the input's descriptor (with `batches`, its
/// leading dimension may be a multiple of the program's: npy::read_tensor).
std::map<std::string, HostTensor> read_inputs(const Program& program, const std::vector<std::string>& specs,
                                              bool batches = false);

/// The model options of compile and signoff: the positional MODEL, --builtin, --size,
/// --preset and --config.
void add_model_options(boost::program_options::options_description& options);

struct Model {
  compiler::Graph graph;
  HwConfig hw;
};
/// The graph and hardware config the model options name. A QAT export carries the
/// hardware it was trained for: it is used when no --preset/--config is given, and a
/// given one must agree with it in every field that changes the integers.
Model load_model(const boost::program_options::variables_map& vm);

}  // namespace dla::cli
