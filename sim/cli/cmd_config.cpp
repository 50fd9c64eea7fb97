// dla config: print a preset, check a file, document the fields.
#include <iostream>

#include "commands.hpp"
#include "dla/error.hpp"
#include "dla/hw_config.hpp"

namespace po = boost::program_options;

namespace dla::cli {

int cmd_config(const Args& args) {
  po::options_description options("config options");
  options.add_options()
      ("preset", po::value<std::string>(), "print the full config of a preset (small, default, large) as JSON")
      ("check", po::value<std::string>(), "validate a config file; prints its identity hash")
      ("show", po::value<std::string>(), "print the full config a file resolves to (defaults filled in)")
      ("doc", "print the table of fields: default, range, unit and meaning")
      ("hash", "with --preset or --show: print only the identity hash");
  const auto vm = parse_command(
      args, "dla config (--preset NAME | --check FILE | --show FILE | --doc) [--hash]",
      "Hardware configs are JSON objects; fields left out take the values of \"preset\" (default \"default\").",
      options);
  if (!vm) return 0;
  const int modes = static_cast<int>(vm->count("preset") + vm->count("check") + vm->count("show") + vm->count("doc"));
  if (modes != 1) throw Error("config: give exactly one of --preset, --check, --show or --doc (see 'dla config --help')");

  if (vm->count("doc")) {
    std::cout << hw_config_doc_table();
    return 0;
  }
  if (vm->count("check")) {
    const std::string path = (*vm)["check"].as<std::string>();
    const HwConfig hw = HwConfig::load_file(path);
    std::cout << path << ": ok, identity hash " << hash_hex(hw.identity_hash()) << "\n";
    return 0;
  }
  const HwConfig hw = vm->count("preset") ? HwConfig::preset((*vm)["preset"].as<std::string>())
                                          : HwConfig::load_file((*vm)["show"].as<std::string>());
  if (vm->count("hash")) {
    std::cout << hash_hex(hw.identity_hash()) << "\n";
  } else {
    std::cout << hw.to_json_text();
  }
  return 0;
}

}  // namespace dla::cli
