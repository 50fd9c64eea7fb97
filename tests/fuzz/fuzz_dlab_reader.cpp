// libFuzzer target for the .dlab reader (build with the `fuzz` preset, run with
// scripts/fuzz). Checksums are off so that mutations reach the structural checks.
#include <cstddef>
#include <cstdint>

#include "dlab_property.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dla::testing::check_dlab_input(data, size, /*verify_checksums=*/false);
  return 0;
}
