// libFuzzer target for the hardware config reader (build with the `fuzz` preset, run
// with scripts/fuzz). Any text must parse or throw dla::ConfigError; a config that
// parses must print as JSON that parses back to the same config and identity hash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dla/error.hpp"
#include "dla/hw_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  dla::HwConfig config;
  try {
    config = dla::HwConfig::from_json_text(text, "fuzz.json");
  } catch (const dla::ConfigError&) {
    return 0;
  }
  const dla::HwConfig back = dla::HwConfig::from_json_text(config.to_json_text(), "round trip");
  if (!(back == config) || back.identity_hash() != config.identity_hash()) std::abort();
  return 0;
}
