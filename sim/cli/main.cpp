// dla — the dlasim command-line tool: one binary, one subcommand per job.
#include <boost/program_options.hpp>
#include <cstring>
#include <iostream>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "dla/error.hpp"

namespace po = boost::program_options;

namespace {

void print_help(const po::options_description& global) {
  std::cout << "dla — bit-accurate simulator of the dlasim deep-learning accelerator\n\n"
               "usage: dla [global options] COMMAND [command options]\n\ncommands:\n";
  for (const auto& c : dla::cli::kCommands) {
    std::cout << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  std::cout << "\n" << global << "\n'dla COMMAND --help' describes a command.\n";
}

int run(int argc, char** argv) {
  po::options_description global("global options");
  global.add_options()
      ("help,h", "print this help")
      ("version", "print the version")
      ("log-level", po::value<std::string>()->default_value("warn"),
       "logging threshold: trace, debug, info, warn, error, critical or off");
  po::options_description hidden;
  hidden.add_options()
      ("command", po::value<std::string>(), "subcommand")
      ("args", po::value<std::vector<std::string>>(), "subcommand arguments");
  po::options_description all;
  all.add(global).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);

  po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(all).positional(positional).allow_unregistered().run();
  po::variables_map vm;
  po::store(parsed, vm);
  po::notify(vm);

  const std::string level_name = vm["log-level"].as<std::string>();
  const auto level = spdlog::level::from_str(level_name);
  if (level == spdlog::level::off && level_name != "off") {
    throw dla::Error("unknown log level '" + level_name + "' (use trace, debug, info, warn, error, critical or off)");
  }
  auto logger = spdlog::stderr_color_mt("dla");
  logger->set_pattern("[%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);

  if (vm.count("version")) {
    std::cout << "dla (dlasim) 0.1.0\n";
    return 0;
  }
  if (!vm.count("command")) {
    print_help(global);
    return vm.count("help") ? 0 : 1;
  }
  const std::string command = vm["command"].as<std::string>();
  // Everything after the command name belongs to the command, options included.
  std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
  rest.erase(rest.begin());
  if (vm.count("help")) rest.insert(rest.begin(), "--help");
  for (const auto& c : dla::cli::kCommands) {
    if (command == c.name) {
      spdlog::debug("running '{}'", command);
      return c.run(rest);
    }
  }
  throw dla::Error("unknown command '" + command + "' (see 'dla --help')");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const dla::Error& e) {
    std::cerr << "dla: error: " << e.what() << "\n";
  } catch (const po::error& e) {
    std::cerr << "dla: error: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "dla: internal error: " << e.what() << "\n";
    return 2;
  }
  return 1;
}
