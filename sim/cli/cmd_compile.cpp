// dla compile: a graph file (or a built-in network) to a .dlab program.
#include <algorithm>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "tool_common.hpp"
#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/qat_export.hpp"
#include "dla/device.hpp"
#include "dla/semantics.hpp"
#include "dla/error.hpp"

namespace po = boost::program_options;

namespace dla::cli {

int cmd_compile(const Args& args) {
  po::options_description options("compile options");
  add_model_options(options);
  options.add_options()
      ("output,o", po::value<std::string>()->required(), "the .dlab file to write")
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
  const Model model = load_model(*vm);
  const HwConfig& hw = model.hw;
  const compiler::Graph& graph = model.graph;
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
