// Pieces the subcommands share (tool_common.hpp).
#include "tool_common.hpp"

#include <algorithm>
#include <sstream>

#include <spdlog/spdlog.h>

#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/semantics.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/qat_export.hpp"
#include "dla/cycle.hpp"
#include "dla/error.hpp"
#include "dla/npy.hpp"
#ifdef DLA_HAVE_RTL
#include "dla/rtl.hpp"
#endif

namespace po = boost::program_options;

namespace dla::cli {
namespace {

std::unique_ptr<sim::Device> make_cycle(const HwConfig& config) { return sim::make_cycle_model(config); }
#ifdef DLA_HAVE_RTL
std::unique_ptr<sim::Device> make_rtl(const HwConfig& config) { return sim::make_rtl_engine(config); }
#endif
constexpr Engine kEngines[] = {
    {"emu", sim::make_emulator, false},
    {"cycle", make_cycle, true},
#ifdef DLA_HAVE_RTL
    {"rtl", make_rtl, true},
#endif
};

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string inputs_of(const Program& p) {
  std::string s;
  for (const auto& t : p.tensors) {
    if (t.role == TensorRole::kInput) s += (s.empty() ? "" : ", ") + t.name;
  }
  return s.empty() ? "none" : s;
}

}  // namespace

const Engine& find_engine(const std::string& name) {
  for (const auto& e : kEngines) {
    if (name == e.name) return e;
  }
  throw Error("unknown engine '" + name + "' (available: " + engine_names() + ")");
}

std::string engine_names() {
  std::string s;
  for (const auto& e : kEngines) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

std::vector<std::string> parse_engines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string e; std::getline(in, e, ',');) {
    find_engine(e);  // unknown names are refused here, before any work
    out.push_back(e);
  }
  if (out.empty()) throw Error("--engines names no engine (available: " + engine_names() + ")");
  return out;
}

std::vector<std::string> all_engines() {
  std::vector<std::string> out;
  for (const auto& e : kEngines) out.emplace_back(e.name);
  return out;
}

std::map<std::string, HostTensor> read_inputs(const Program& program, const std::vector<std::string>& specs,
                                              bool batches) {
  std::map<std::string, std::string> files;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw Error("--input takes NAME=FILE.npy, got '" + spec + "'");
    }
    const std::string name = spec.substr(0, eq);
    const TensorDesc* desc = program.find_tensor(name);
    if (desc == nullptr || desc->role != TensorRole::kInput) {
      throw Error("unknown input '" + name + "' (the program's inputs: " + inputs_of(program) + ")");
    }
    if (!files.emplace(name, spec.substr(eq + 1)).second) throw Error("input '" + name + "' is given twice");
  }
  for (const auto& t : program.tensors) {
    if (t.role == TensorRole::kInput && files.count(t.name) == 0) {
      throw Error("missing input '" + t.name + "' (" + std::string(dtype_info(t.dtype).name) + " " +
                  shape_text(t.shape) + "): give --input " + t.name + "=FILE.npy");
    }
  }
  std::map<std::string, HostTensor> inputs;
  for (const auto& [name, file] : files) inputs[name] = npy::read_tensor(file, *program.find_tensor(name), batches);
  return inputs;
}

void add_model_options(po::options_description& options) {
  options.add_options()
      ("graph", po::value<std::string>(),
       "the model: a QAT export (.dla.pt, from dlasim.export) or a graph file (.json, weights file beside it)")
      ("builtin", po::value<std::string>(), "a built-in network instead: resnet18")
      ("size", po::value<std::int64_t>()->default_value(224), "input height and width of a built-in network")
      ("preset", po::value<std::string>(), "hardware config preset: small, default (the default) or large")
      ("config", po::value<std::string>(), "hardware config file (JSON)");
}

Model load_model(const po::variables_map& vm) {
  if (vm.count("graph") == vm.count("builtin")) throw Error("give a model file or --builtin, not both or neither");
  if (vm.count("preset") && vm.count("config")) throw Error("give --preset or --config, not both");
  const bool requested = vm.count("preset") || vm.count("config");
  Model m;
  m.hw = vm.count("config") ? HwConfig::load_file(vm["config"].as<std::string>())
                            : HwConfig::preset(vm.count("preset") ? vm["preset"].as<std::string>() : "default");
  if (vm.count("builtin")) {
    const std::string name = vm["builtin"].as<std::string>();
    if (name != "resnet18") throw Error("unknown built-in network '" + name + "' (resnet18)");
    const std::int64_t size = vm["size"].as<std::int64_t>();
    if (size < 32 || size > 1024) throw Error("--size " + std::to_string(size) + " is out of range [32, 1024]");
    m.graph = compiler::resnet18(size);
    return m;
  }
  const std::string requested_name = vm.count("config") ? "--config " + vm["config"].as<std::string>()
                                                        : "--preset " + (requested ? vm["preset"].as<std::string>() : "");
  return load_model_file(vm["graph"].as<std::string>(), requested ? &m.hw : nullptr, requested_name);
}

Model load_model_file(const std::string& path, const HwConfig* requested, const std::string& requested_name) {
  Model m;
  m.hw = requested != nullptr ? *requested : HwConfig::preset("default");
  if (!compiler::looks_like_torchscript(path)) {
    m.graph = compiler::load_graph(path);
    return m;
  }
  const Phase phase("read the QAT export " + path);
  compiler::QatExport model = compiler::import_qat_export(path);
  m.hw = compiler::config_for_export(model, path, requested, requested_name);
  m.graph = std::move(model.graph);
  m.segments = std::move(model.segments);
  m.host_plan = std::move(model.host_plan);
  m.path = path;
  return m;
}

Program compile_checked(const compiler::Graph& graph, const HwConfig& hw, bool embed_config) {
  compiler::CompileOptions copts;
  copts.embed_config = embed_config;
  Program program;
  {
    const Phase phase("compile: lower " + std::to_string(graph.nodes().size()) + " nodes");
    program = compiler::compile(graph, hw, copts);
  }
  const Phase phase("compile: check " + std::to_string(program.instructions.size()) +
                    " instructions against the hardware config");
  if (std::none_of(program.tensors.begin(), program.tensors.end(),
                   [](const TensorDesc& t) { return t.role == TensorRole::kOutput; })) {
    throw Error("compile: the graph computes no output (every output is a graph input)");
  }
  // The engines' load checks (DRAM, instruction count, field ranges), and every
  // instruction's accesses against the SRAM and DRAM capacities.
  try {
    sim::make_emulator(hw)->load(program);
    const sim::MachineState machine(hw, program.dram_size);  // DRAM is not touched: no cost
    for (std::size_t i = 0; i < program.instructions.size(); ++i) {
      sim::describe(program.instructions[i], machine, static_cast<std::uint32_t>(i));
    }
  } catch (const Error& e) {
    throw Error(std::string("compile: the program does not fit the hardware config: ") + e.what());
  }
  return program;
}

Phase::Phase(std::string what) : what_(std::move(what)), start_(std::chrono::steady_clock::now()) {
  spdlog::debug("{} ...", what_);
}

Phase::~Phase() {
  spdlog::info("{}: {:.1f} ms", what_,
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count());
}

}  // namespace dla::cli
