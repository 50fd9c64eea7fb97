// dla compile: a graph file (or a built-in network) to a .dlab program.
#include <algorithm>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/qat_export.hpp"
#include "dla/device.hpp"
#include "dla/semantics.hpp"
#include "dla/error.hpp"

namespace po = boost::program_options;

namespace dla::cli {

/// The hardware config named by --preset or --config (default: the "default" preset).
HwConfig config_from_options(const po::variables_map& vm) {
  if (vm.count("preset") && vm.count("config")) throw Error("give --preset or --config, not both");
  if (vm.count("config")) return HwConfig::load_file(vm["config"].as<std::string>());
  return HwConfig::preset(vm.count("preset") ? vm["preset"].as<std::string>() : "default");
}

int cmd_compile(const Args& args) {
  po::options_description options("compile options");
  options.add_options()
      ("graph", po::value<std::string>(),
       "the model: a QAT export (.dla.pt, from dlasim.export) or a graph file (.json, weights file beside it)")
      ("builtin", po::value<std::string>(), "compile a built-in network instead: resnet18")
      ("size", po::value<std::int64_t>()->default_value(224), "input height and width of a built-in network")
      ("output,o", po::value<std::string>()->required(), "the .dlab file to write")
      ("preset", po::value<std::string>(), "hardware config preset: small, default (the default) or large")
      ("config", po::value<std::string>(), "hardware config file (JSON)")
      ("no-embed-config", "do not embed the hardware config in the program");
  po::positional_options_description positional;
  positional.add("graph", 1);
  const auto vm = parse_command(args, "dla compile MODEL.dla.pt|GRAPH.json -o PROGRAM.dlab [--preset NAME | --config FILE]",
                                "Lowers a quantized model to a DLA program tiled for the hardware config, with debug "
                                "records for every layer. A QAT export carries the hardware it was trained for: it is "
                                "used when no --preset/--config is given, and a given one must agree with it in every "
                                "field that changes the integers.",
                                options, positional);
  if (!vm) return 0;
  if (vm->count("graph") == vm->count("builtin")) throw Error("compile: give a model file or --builtin, not both or neither");
  HwConfig hw = config_from_options(*vm);
  compiler::Graph graph;
  if (vm->count("graph") && compiler::looks_like_torchscript((*vm)["graph"].as<std::string>())) {
    const std::string path = (*vm)["graph"].as<std::string>();
    compiler::QatExport model = compiler::import_qat_export(path);
    const bool requested = vm->count("preset") || vm->count("config");
    const std::string requested_name = vm->count("config") ? "--config " + (*vm)["config"].as<std::string>()
                                                             : "--preset " + (vm->count("preset") ? (*vm)["preset"].as<std::string>() : "");
    hw = compiler::config_for_export(model, path, requested ? &hw : nullptr, requested_name);
    graph = std::move(model.graph);
  } else if (vm->count("builtin")) {
    const std::string name = (*vm)["builtin"].as<std::string>();
    if (name != "resnet18") throw Error("unknown built-in network '" + name + "' (resnet18)");
    const std::int64_t size = (*vm)["size"].as<std::int64_t>();
    if (size < 32 || size > 1024) throw Error("--size " + std::to_string(size) + " is out of range [32, 1024]");
    graph = compiler::resnet18(size);
  } else {
    graph = compiler::load_graph((*vm)["graph"].as<std::string>());
  }
  compiler::CompileOptions copts;
  copts.embed_config = !vm->count("no-embed-config");
  const Program program = compiler::compile(graph, hw, copts);
  if (std::none_of(program.tensors.begin(), program.tensors.end(),
                   [](const TensorDesc& t) { return t.role == TensorRole::kOutput; })) {
    throw Error("compile: the graph computes no output (every output is a graph input)");
  }
  // The engines' load checks (DRAM, instruction count, field ranges), and every
  // instruction's accesses against the SRAM and DRAM capacities: a program that compiles
  // is a program that loads and runs on this hardware config.
  try {
    sim::make_emulator(hw)->load(program);
    const sim::MachineState machine(hw, program.dram_size);  // DRAM is not touched: no cost
    for (std::size_t i = 0; i < program.instructions.size(); ++i) {
      sim::describe(program.instructions[i], machine, static_cast<std::uint32_t>(i));
    }
  } catch (const Error& e) {
    throw Error(std::string("compile: the program does not fit the hardware config: ") + e.what());
  }
  const std::string out = (*vm)["output"].as<std::string>();
  write_program_file(out, program);
  std::cout << out << ": " << program.instructions.size() << " instructions, " << program.debug.size() << " layers, "
            << program.constants.size() << " bytes of constants, " << program.dram_size << " bytes of DRAM, hw config "
            << hash_hex(program.hw_config_hash) << "\n";
  return 0;
}

}  // namespace dla::cli
