// Segmented programs in a build without libtorch (DLA_WITH_TORCH=OFF): their host steps
// need it, so every entry point refuses with one line.
#include "segmented.hpp"

#include "dla/compiler/qat_export.hpp"
#include "dla/error.hpp"

namespace dla::cli {
namespace {

[[noreturn]] void needs_torch(const std::string& what) {
  throw Error(what + ": a segmented program (a model with float parts) runs its host steps with libtorch, and this "
              "build has none (configure with DLA_WITH_TORCH=ON)");
}

}  // namespace

// A zip archive is either a QAT export or a segmented program: neither is readable here.
bool is_segmented(const std::string& path) { return compiler::looks_like_torchscript(path); }

void write_segmented(const std::string& path, const Model&, const std::vector<Program>&) { needs_torch(path); }

std::string describe_segmented(const std::string& path, const ReadOptions&) { needs_torch(path); }

int run_segmented(const SegmentedRun& run) { needs_torch(run.path); }

std::vector<LayerCheck> signoff_segmented(const Model& model, const std::optional<std::string>&,
                                          const std::vector<std::string>&, const std::vector<std::string>&,
                                          std::string*, nlohmann::json*) {
  needs_torch(model.path);
}

FloatValues float_reference(const Model&, const std::map<std::string, RealTensor>&) { return {}; }

}  // namespace dla::cli
