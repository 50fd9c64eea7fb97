// Subcommands of the `dla` tool. Each parses its own arguments (Boost.Program_options),
// prints its own --help, throws dla::Error (or a program_options error) for bad input
// and returns the process exit code.
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace dla::cli {

using Args = std::vector<std::string>;

int cmd_config(const Args& args);
int cmd_disasm(const Args& args);
int cmd_run(const Args& args);
int cmd_compile(const Args& args);
int cmd_bench(const Args& args);
int cmd_signoff(const Args& args);
int cmd_verify(const Args& args);
int cmd_regress(const Args& args);

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const Args& args);
};

/// Every subcommand, in the order `dla --help` lists them.
inline constexpr Command kCommands[] = {
    {"config", "print, check or document hardware configs", cmd_config},
    {"disasm", "print a program file: header, sections, tensors and instructions", cmd_disasm},
    {"compile", "compile a QAT export, a graph file or a built-in network to a .dlab program", cmd_compile},
    {"run", "run a program on an engine: .npy inputs, outputs, layer dumps, statistics", cmd_run},
    {"signoff", "compile a model and compare every layer on every engine with the reference evaluator", cmd_signoff},
    {"verify", "check an output directory of dla run against its manifest (sizes and CRC-32s)", cmd_verify},
    {"regress", "run the regression suite (random graphs, ResNet-18, bad programs) on every engine", cmd_regress},
    {"bench", "measure an engine's throughput on ResNet-18 against libtorch", cmd_bench},
};

/// Parses a subcommand's arguments against `options` (--help is added). Returns nullopt
/// after printing the usage when --help was given; throws on unknown or bad options.
inline std::optional<boost::program_options::variables_map> parse_command(
    const Args& args, const std::string& synopsis, const std::string& description,
    boost::program_options::options_description options,
    const boost::program_options::positional_options_description& positional = {}) {
  namespace po = boost::program_options;
  options.add_options()("help,h", "print this help");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: " << synopsis << "\n\n" << description << "\n\n" << options << "\n";
    return std::nullopt;
  }
  po::notify(vm);
  return vm;
}

}  // namespace dla::cli
