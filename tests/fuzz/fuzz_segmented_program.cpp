// libFuzzer target for the segmented-program reader (`dla run|disasm net.dlab` of a model
// with float parts; build with the `fuzz-torch` preset, run with scripts/fuzz). The first
// byte picks what the rest is:
//   even: the bytes of the file (libtorch's zip container, digest.json, every segment),
//         read and then loaded as a host plan (the plan, the export's host modules);
//   odd:  the plan.json text, put into the base program ($DLA_FUZZ_BASE_SEGMENTED), so
//         that mutations of the plan get past the records' CRC-32s to the plan's checks.
// Any input must load or throw dla::Error; nothing else (a crash, another exception, a
// sanitizer report) is allowed. libtorch itself is not instrumented.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dla/error.hpp"
#include "dla/qat/host_segments.hpp"
#include "fuzz_input_file.hpp"

namespace {

dla::qat::SegmentedProgram* base() {
  static const std::unique_ptr<dla::qat::SegmentedProgram> b = []() -> std::unique_ptr<dla::qat::SegmentedProgram> {
    const std::string path = dla::testing::fuzz_base_path("DLA_FUZZ_BASE_SEGMENTED");
    if (path.empty()) return nullptr;
    return std::make_unique<dla::qat::SegmentedProgram>(dla::qat::read_segmented_program(path));
  }();
  return b.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if ((data[0] & 1) == 0) {
      const std::string path = dla::testing::fuzz_input_file(rest, ".dlab");
      dla::qat::is_segmented_program(path);
      const dla::qat::HostPlan plan(dla::qat::read_segmented_program(path));
      return 0;
    }
    dla::qat::SegmentedProgram* b = base();
    if (b == nullptr) return 0;
    b->plan_json = rest;
    const dla::qat::HostPlan plan(*b);
  } catch (const dla::Error&) {
  }
  return 0;
}
