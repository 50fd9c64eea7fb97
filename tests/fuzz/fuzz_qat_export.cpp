// libFuzzer target for the QAT export importer (`dla compile net.dla.pt`; build with the
// `fuzz-torch` preset, run with scripts/fuzz). The first byte picks what the rest is:
//   even: the bytes of a .dla.pt file (libtorch's zip container, the digest, the graph);
//   odd:  the export's graph_json text, put into the base export ($DLA_FUZZ_BASE_EXPORT)
//         with a digest that matches it, so that mutations of the graph get past the
//         CRC-32 check to the graph's translation, the host split and the graph reader.
// Any input must import (and give a hardware config) or throw dla::Error; nothing else
// (a crash, another exception, a sanitizer report) is allowed. libtorch itself is not
// instrumented: coverage is dlasim's code.
#include <torch/script.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "dla/compiler/qat_export.hpp"
#include "dla/error.hpp"
#include "dla/program.hpp"
#include "fuzz_input_file.hpp"

namespace {

/// The base export of the text mode, loaded once, and its digest.
struct Base {
  torch::jit::Module module;
  nlohmann::json digest;
};

Base* base() {
  static const std::unique_ptr<Base> b = []() -> std::unique_ptr<Base> {
    const std::string path = dla::testing::fuzz_base_path("DLA_FUZZ_BASE_EXPORT");
    if (path.empty()) return nullptr;
    auto b = std::make_unique<Base>();
    b->module = torch::jit::load(path);
    b->digest = nlohmann::json::parse(b->module.attr("digest_json").toStringRef());
    return b;
  }();
  return b.get();
}

void import(const std::string& path) {
  try {
    const dla::compiler::QatExport model = dla::compiler::import_qat_export(path);
    dla::compiler::config_for_export(model, path, nullptr, "");
  } catch (const dla::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    const std::string path = dla::testing::fuzz_input_file(rest, ".dla.pt");
    dla::compiler::looks_like_torchscript(path);
    import(path);
    return 0;
  }
  Base* b = base();
  if (b == nullptr) return 0;
  nlohmann::json digest = b->digest;
  digest["graph"] = dla::crc32(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
  b->module.setattr("graph_json", rest);
  b->module.setattr("digest_json", digest.dump());
  std::ostringstream bytes;
  b->module.save(bytes);
  import(dla::testing::fuzz_input_file(bytes.str(), ".dla.pt"));
  return 0;
}
