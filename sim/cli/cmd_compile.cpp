// dla compile: a graph file (or a built-in network) to a .dlab program.
#include <algorithm>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "segmented.hpp"
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
  const bool embed = !vm->count("no-embed-config");
  const std::string out = (*vm)["output"].as<std::string>();
  if (model.segmented()) {
    std::vector<Program> programs;
    for (const auto& segment : model.segments) programs.push_back(compile_checked(segment, hw, embed));
    write_segmented(out, model, programs);
    return 0;
  }
  const Program program = compile_checked(model.graph, hw, embed);
  write_program_file(out, program);
  std::cout << out << ": " << program.instructions.size() << " instructions, " << program.debug.size() << " layers, "
            << program.constants.size() << " bytes of constants, " << program.dram_size << " bytes of DRAM, hw config "
            << hash_hex(program.hw_config_hash) << "\n";
  return 0;
}

}  // namespace dla::cli
