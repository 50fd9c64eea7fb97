// The hardware config that travels with a QAT export (dla/compiler/qat_export.hpp); no
// libtorch here, so the rule is testable and usable without the importer.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dla/compiler/qat_export.hpp"
#include "dla/error.hpp"

namespace dla::compiler {

bool looks_like_torchscript(const std::string& path) {
  // Only a regular file is opened (a FIFO would block); anything else goes on to the graph
  // reader, which names what it is.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

HwConfig config_for_export(const QatExport& model, const std::string& path, const HwConfig* requested,
                           const std::string& requested_name) {
  nlohmann::json trained;
  try {
    trained = nlohmann::json::parse(model.hw_json);
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": the export's \"hw\" is not JSON");
  }
  if (!trained.is_object()) throw Error(path + ": the export's \"hw\" must be an object of hardware-config fields");
  if (requested == nullptr) {
    nlohmann::json j = trained;
    j["preset"] = "default";
    HwConfig cfg = HwConfig::from_json(j, path + " (the hardware the model was trained for)");
    // The export names the config it was trained for by its identity hash too: a compiler
    // that derives another config from the same fields would compile other integers.
    if (!model.hw_identity.empty() && hash_hex(cfg.identity_hash()) != model.hw_identity) {
      throw Error(path + ": the model was trained for hardware config " + model.hw_identity + ", but this dla derives " +
                  hash_hex(cfg.identity_hash()) + " from its fields; give the config it was trained for with --config");
    }
    return cfg;
  }
  const nlohmann::json have = requested->to_json();
  for (const auto& [field, value] : trained.items()) {
    if (!have.contains(field)) throw Error(path + ": the export names an unknown hardware field \"" + field + "\"");
    if (have.at(field) != value) {
      throw Error(path + ": the model was trained for " + field + " = " + value.dump() + ", but " + requested_name +
                  " has " + field + " = " + have.at(field).dump() +
                  "; its integers would differ (compile without --config/--preset to use the model's hardware)");
    }
  }
  return *requested;
}

}  // namespace dla::compiler
