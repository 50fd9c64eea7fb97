// libFuzzer target for the graph file reader (build with the `fuzz` preset, run with
// scripts/fuzz). Input: one byte n, n bytes of weights file, then the JSON text. Any
// input must either parse or throw dla::Error; nothing else (a crash, another exception,
// a sanitizer report) is allowed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dla/compiler/graph_io.hpp"
#include "dla/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t n = std::min<std::size_t>(data[0], size - 1);
  const std::vector<char> weights(data + 1, data + 1 + n);
  const std::string_view text(reinterpret_cast<const char*>(data + 1 + n), size - 1 - n);
  try {
    dla::compiler::parse_graph(text, "fuzz.json", [&](const std::string& name) { return std::make_pair(name, weights); });
  } catch (const dla::Error&) {
  }
  return 0;
}
