// dla verify: checks an output directory of `dla run` against its manifest.json.
#include <iostream>

#include "commands.hpp"
#include "output_set.hpp"

namespace po = boost::program_options;

namespace dla::cli {

int cmd_verify(const Args& args) {
  po::options_description options("verify options");
  options.add_options()("dir", po::value<std::string>()->required(), "an output directory of dla run");
  po::positional_options_description positional;
  positional.add("dir", 1);
  const auto vm = parse_command(
      args, "dla verify DIR",
      "Checks the files of an output directory of `dla run` against DIR/manifest.json: every file it lists must "
      "be there with its size and CRC-32, and no other file may be (the lock file and the staging directories "
      "of runs in progress aside). Waits while a run publishes into DIR. Prints each problem and exits 1 when "
      "there is one; exit 0 when the set is intact.",
      options, positional);
  if (!vm) return 0;
  const std::string dir = (*vm)["dir"].as<std::string>();
  std::size_t listed = 0;
  const auto problems = verify_output_set(dir, &listed);
  for (const auto& p : problems) std::cout << "  " << p << "\n";
  if (!problems.empty()) {
    std::cout << "verify: FAIL: " << problems.size() << " problem" << (problems.size() == 1 ? "" : "s") << " in '"
              << dir << "' against its manifest.json\n";
    return 1;
  }
  std::cout << "verify: OK: the " << listed << " file" << (listed == 1 ? "" : "s") << " of '" << dir
            << "/manifest.json' " << (listed == 1 ? "is" : "are") << " intact, and nothing else is there\n";
  return 0;
}

}  // namespace dla::cli
