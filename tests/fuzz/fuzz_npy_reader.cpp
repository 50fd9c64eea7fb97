// libFuzzer target for the .npy reader (build with the `fuzz` preset, run with
// scripts/fuzz). Any bytes must parse or throw dla::Error; an array that parses must
// serialize to bytes that parse back to the same array.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dla/error.hpp"
#include "dla/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dla::npy::Array a;
  try {
    a = dla::npy::parse(data, size, "fuzz.npy");
  } catch (const dla::Error&) {
    return 0;
  }
  const auto bytes = dla::npy::serialize(a.descr, a.shape, a.values);
  const dla::npy::Array back = dla::npy::parse(bytes.data(), bytes.size(), "round trip");
  if (back.descr != a.descr || back.shape != a.shape || back.values != a.values) std::abort();
  return 0;
}
