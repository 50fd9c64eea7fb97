// The QAT export importer in a build without libtorch (DLA_WITH_TORCH=OFF).
#include "dla/compiler/qat_export.hpp"
#include "dla/error.hpp"

namespace dla::compiler {

QatExport import_qat_export(const std::string& path) {
  throw Error(path + ": reading a QAT export (.dla.pt) needs libtorch, and this build has none "
              "(configure with DLA_WITH_TORCH=ON)");
}

}  // namespace dla::compiler
