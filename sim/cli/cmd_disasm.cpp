// dla disasm: print a program file.
#include <iostream>

#include "commands.hpp"
#include "dla/hw_config.hpp"
#include "dla/program.hpp"
#include "segmented.hpp"

namespace po = boost::program_options;

namespace dla::cli {

int cmd_disasm(const Args& args) {
  po::options_description options("disasm options");
  options.add_options()
      ("program", po::value<std::string>()->required(), "the .dlab file")
      ("preset", po::value<std::string>(), "refuse the file unless it was compiled for this preset")
      ("config", po::value<std::string>(), "refuse the file unless it was compiled for this config file");
  po::positional_options_description positional;
  positional.add("program", 1);
  const auto vm = parse_command(args, "dla disasm [--preset NAME | --config FILE] PROGRAM.dlab",
                                "Prints the header, the sections, the IO tensors, the debug records and one "
                                "decoded instruction per line; for a segmented program, its steps, then each "
                                "device segment.",
                                options, positional);
  if (!vm) return 0;
  ReadOptions read;
  if (vm->count("preset")) read.expected_config_hash = HwConfig::preset((*vm)["preset"].as<std::string>()).identity_hash();
  if (vm->count("config")) read.expected_config_hash = HwConfig::load_file((*vm)["config"].as<std::string>()).identity_hash();
  const std::string path = (*vm)["program"].as<std::string>();
  if (is_segmented(path)) {
    std::cout << describe_segmented(path, read);
    return 0;
  }
  const Program program = read_program_file(path, read);
  std::cout << describe_program(program);
  return 0;
}

}  // namespace dla::cli
