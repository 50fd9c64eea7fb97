// Writes the sample programs as a seed corpus for the libFuzzer target.
#include <cstdio>
#include <fstream>
#include <string>

#include "../support/sample_programs.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_dlab_seeds DIR\n");
    return 1;
  }
  const dla::Program programs[] = {dla::testing::sample_program(), dla::testing::minimal_program(),
                                   dla::testing::sample_program(dla::HwConfig::preset("small"))};
  int i = 0;
  for (const auto& p : programs) {
    const auto bytes = dla::serialize_program(p);
    std::ofstream(std::string(argv[1]) + "/seed" + std::to_string(i++) + ".dlab", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  return 0;
}
