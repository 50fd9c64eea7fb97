// dla signoff: a model compiled and run on every engine named, every layer compared with
// the compiler's reference evaluator (the golden model, written apart from the engines),
// element for element. Exit 0 when every layer of every engine is equal; else exit 1,
// naming the first differing layer in graph order.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/cycle.hpp"
#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "segmented.hpp"
#include "signoff_checks.hpp"
#include "signoff_out.hpp"
#include "tool_common.hpp"

namespace po = boost::program_options;

namespace dla::cli {
namespace {

/// The sign-off checks of a model quantized end to end: every layer of every engine
/// against the compiler's reference evaluator.
/// `trace_json` and `timeline` (optional) receive the cycle run's Chrome trace and the
/// page's unit timeline.
std::vector<LayerCheck> signoff_checks(const Model& model, const std::optional<std::string>& program_path,
                                       const std::vector<std::string>& engines, const std::vector<std::string>& specs,
                                       std::string* trace_json, nlohmann::json* timeline) {
  Program program;
  if (program_path) {
    ReadOptions read;
    read.expected_config_hash = model.hw.identity_hash();
    program = read_program_file(*program_path, read);
  } else {
    program = compiler::compile(model.graph, model.hw);
  }
  const auto inputs = read_inputs(program, specs);
  const std::vector<HostTensor> reference = compiler::evaluate(model.graph, model.hw, inputs);
  std::map<std::string, RealTensor> reals;
  for (const auto& [name, t] : inputs) reals[name] = {t.shape, reals_of(t)};
  const FloatValues floats = float_reference(model, reals);

  std::vector<LayerCheck> checks;
  for (const auto& name : engines) {
    auto device = find_engine(name).make(model.hw);
    device->load(program);
    for (const auto& [input, tensor] : inputs) device->set_input(input, tensor);
    sim::RunOptions run;
    run.dump_layers = true;
    device->run(run);
    const sim::RunStats stats = device->stats();
    const auto* cycle = dynamic_cast<const sim::CycleDevice*>(device.get());
    const auto dumps = device->layer_dumps();
    if (cycle != nullptr && trace_json != nullptr) *trace_json = sim::chrome_trace(cycle->report(), program);
    if (cycle != nullptr && timeline != nullptr) *timeline = sim::unit_timeline({&cycle->report()});
    for (std::size_t i = 0; i < dumps.size(); ++i) {
      const int node = model.graph.find(dumps[i].name);
      if (node < 0) throw Error("signoff: the program's layer '" + dumps[i].name + "' is not a node of the model");
      LayerCheck c = compare(name, dumps[i].name, reference[static_cast<std::size_t>(node)], dumps[i].tensor);
      if (i < stats.layers.size()) c.stats = stats.layers[i];
      if (cycle != nullptr && i < cycle->report().layers.size()) c.mac_utilization = cycle->report().layers[i].mac_utilization;
      set_sqnr(c, floats, reals_of(dumps[i].tensor));
      checks.push_back(c);
    }
  }

  return checks;
}

std::string sqnr_text(const std::optional<double>& db) {
  if (!db) return "-";
  if (std::isinf(*db)) return *db > 0 ? "inf" : "-inf";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << *db;
  return s.str();
}

}  // namespace

int cmd_signoff(const Args& args) {
  po::options_description options("signoff options");
  add_model_options(options);
  options.add_options()
      ("input,i", po::value<std::vector<std::string>>()->composing(), "NAME=FILE.npy: bind an input (once per input)")
      ("engines", po::value<std::string>()->default_value("emu,cycle"), "comma-separated engines to sign off")
      ("program", po::value<std::string>(),
       "sign off this compiled program (.dlab, for the model's hardware config) instead of compiling the model")
      ("out", po::value<std::string>(),
       "write the report to DIR: signoff.json (per-layer results), index.html (the page) and trace.json (the "
       "cycle run's Chrome/Perfetto trace)");
  po::positional_options_description positional;
  positional.add("graph", 1);
  const auto vm = parse_command(
      args, "dla signoff MODEL.dla.pt|GRAPH.json --input NAME=FILE.npy ... [--engines emu,cycle] [--program P.dlab] [--out DIR]",
      "Compiles the model for its hardware config, runs the program on each engine with every layer dumped, and "
      "compares every layer, element for element, with the compiler's reference evaluator. Prints a table per "
      "layer (elements equal, the first difference, saturations, overflows, cycles and MAC utilization on the "
      "cycle engine, and the SQNR against the float model when the export holds one: dlasim.export(..., "
      "float_reference=True)) and exits 1 naming the first differing layer in graph order.",
      options, positional);
  if (!vm) return 0;
  const std::vector<std::string> engines = parse_engines((*vm)["engines"].as<std::string>());
  const Model model = load_model(*vm);
  const std::vector<std::string> input_specs =
      vm->count("input") ? (*vm)["input"].as<std::vector<std::string>>() : std::vector<std::string>{};
  std::vector<LayerCheck> checks;
  std::string trace_json;  // the cycle run's Chrome trace and unit timeline, for --out
  nlohmann::json timeline;
  const auto program_path = vm->count("program") ? std::optional((*vm)["program"].as<std::string>()) : std::nullopt;
  if (model.segmented()) {
    checks = signoff_segmented(model, program_path, engines, input_specs, vm->count("out") ? &trace_json : nullptr,
                               vm->count("out") ? &timeline : nullptr);
  } else {
    checks = signoff_checks(model, program_path, engines, input_specs, vm->count("out") ? &trace_json : nullptr,
                            vm->count("out") ? &timeline : nullptr);
  }

  std::size_t width = 5;
  for (const auto& c : checks) width = std::max(width, c.layer.size());
  const bool with_sqnr = std::any_of(checks.begin(), checks.end(), [](const LayerCheck& c) { return c.sqnr_db.has_value(); });
  const int w = static_cast<int>(width);
  std::cout << std::left << std::setw(7) << "engine" << std::setw(w + 1) << "layer" << std::right << std::setw(10)
            << "elements" << std::setw(10) << "equal" << std::setw(12) << "saturations" << std::setw(10) << "overflows"
            << std::setw(11) << "cycles" << std::setw(9) << "MAC util" << (with_sqnr ? "  SQNR dB" : "")
            << "  first difference\n";
  const LayerCheck* first = nullptr;
  for (const auto& c : checks) {
    if (!c.ok() && first == nullptr) first = &c;
    std::ostringstream util;
    if (c.stats.cycles != 0 && c.stats.macs != 0) util << std::fixed << std::setprecision(1) << 100 * c.mac_utilization << "%";
    std::cout << std::left << std::setw(7) << c.engine << std::setw(w + 1) << c.layer << std::right << std::setw(10)
              << c.elements << std::setw(10) << c.equal << std::setw(12) << c.stats.saturations << std::setw(10)
              << c.stats.acc_overflows << std::setw(11) << (c.stats.cycles ? std::to_string(c.stats.cycles) : "-")
              << std::setw(9) << (util.str().empty() ? "-" : util.str());
    if (with_sqnr) std::cout << std::setw(9) << sqnr_text(c.sqnr_db);
    if (!c.ok()) std::cout << "  " << difference_text(c);
    std::cout << "\n";
  }
  if (vm->count("out")) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& c : checks) {
      const nlohmann::json diff =
          c.ok() ? nlohmann::json()
          : c.reals
              ? nlohmann::json{{"index", c.first_diff}, {"expected", c.expected_real}, {"actual", c.actual_real}}
              : nlohmann::json{{"index", c.first_diff}, {"expected", c.expected}, {"actual", c.actual}};
      layers.push_back({{"engine", c.engine}, {"layer", c.layer}, {"elements", c.elements}, {"equal", c.equal},
                        {"ok", c.ok()}, {"first_diff", diff}, {"saturations", c.stats.saturations}, {"overflows", c.stats.acc_overflows},
                        {"cycles", c.stats.cycles}, {"macs", c.stats.macs}, {"mac_utilization", c.mac_utilization}});
      if (c.sqnr_db) {  // JSON has no infinity: null is "equal to the float model", -1000 a zero float layer
        layers.back()["sqnr_db"] = std::isinf(*c.sqnr_db) ? (*c.sqnr_db > 0 ? nlohmann::json() : nlohmann::json(-1000.0))
                                                          : nlohmann::json(*c.sqnr_db);
      }
    }
    const std::string model_name =
        vm->count("builtin") ? "--builtin " + (*vm)["builtin"].as<std::string>() : (*vm)["graph"].as<std::string>();
    nlohmann::json doc = {
        {"ok", first == nullptr}, {"engines", engines}, {"layers", layers}, {"model", model_name},
        {"program", vm->count("program") ? (*vm)["program"].as<std::string>() : "(compiled from the model)"},
        {"reference", "the compiler's reference evaluator"}};
    if (!timeline.is_null()) doc["timeline"] = timeline;
    write_signoff_dir((*vm)["out"].as<std::string>(), doc, trace_json);
  }
  if (first != nullptr) {
    std::cout << "sign-off: FAIL: first difference in layer '" << first->layer << "' on " << first->engine << " at "
              << difference_text(*first) << "\n";
    return 1;
  }
  std::cout << "sign-off: PASS: " << checks.size() / engines.size() << " layers equal on ";
  for (std::size_t i = 0; i < engines.size(); ++i) std::cout << (i ? ", " : "") << engines[i];
  std::cout << "\n";
  return 0;
}

}  // namespace dla::cli
