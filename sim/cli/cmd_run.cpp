// dla run: execute a program on an engine, reading inputs from and writing outputs to
// .npy files; the cycle engine adds its timing report and an optional VCD trace.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "batch_run.hpp"
#include "commands.hpp"
#include "dla/cycle.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#include "dla/hw_config.hpp"
#include "dla/npy.hpp"
#include "dla/program.hpp"
#include "output_set.hpp"
#include "segmented.hpp"
#include "trace_file.hpp"
#include "tool_common.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace dla::cli {
namespace {

/// --trace-window A:B (cycles, B exclusive; either side may be empty).
void parse_window(const std::string& text, sim::TraceOptions& t) {
  const auto colon = text.find(':');
  auto number = [&](const std::string& part, std::uint64_t fallback) {
    if (part.empty()) return fallback;
    std::size_t used = 0;
    unsigned long long v = 0;
    try {
      v = std::stoull(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part[0] == '-') throw Error("--trace-window takes START:END in cycles, not '" + text + "'");
    return static_cast<std::uint64_t>(v);
  };
  if (colon == std::string::npos) throw Error("--trace-window takes START:END in cycles, not '" + text + "'");
  t.window_begin = number(text.substr(0, colon), 0);
  t.window_end = number(text.substr(colon + 1), UINT64_MAX);
  if (t.window_begin >= t.window_end) throw Error("--trace-window '" + text + "' is empty");
}

/// A tensor or layer name as a file name: letters, digits, '.', '-' and '_' are kept,
/// everything else becomes '_'; names that would clash get a numeric suffix.
class FileNamer {
 public:
  std::string operator()(const std::string& name) {
    std::string s;
    for (char c : name) {
      const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '-' || c == '_';
      s.push_back(keep ? c : '_');
    }
    if (s.empty() || s.find_first_not_of('.') == std::string::npos) s = "_" + s;
    std::string unique = s;
    for (int k = 2; !used_.insert(unique).second; ++k) unique = s + "_" + std::to_string(k);
    return unique + ".npy";
  }

 private:
  std::set<std::string> used_;
};

std::string dtype_name(DType t) { return std::string(dtype_info(t).name); }

std::vector<std::uint8_t> npy_bytes(const HostTensor& t) { return npy::serialize(npy::descr_for(t.dtype), t.shape, t.values); }

}  // namespace

int cmd_run(const Args& args) {
  po::options_description options("run options");
  options.add_options()
      ("program", po::value<std::string>()->required(), "the .dlab file")
      ("engine", po::value<std::string>()->default_value("emu"), ("engine: " + engine_names()).c_str())
      ("input,i", po::value<std::vector<std::string>>()->composing(),
       "NAME=FILE.npy: bind an input tensor (once per input)")
      ("output-dir,o", po::value<std::string>()->required(),
       "directory for <output>.npy files (created if missing)")
      ("dump-layers", po::bool_switch(), "also write every layer's output to DIR/layers/<layer>.npy")
      ("config", po::value<std::string>(), "run on this hardware config file (must match the program's hash)")
      ("preset", po::value<std::string>(), "run on this preset config (must match the program's hash)")
      ("stats", po::value<std::string>(), "print statistics: 'text' (per layer) or 'json' (stdout is one JSON document)")
      ("report", po::value<std::string>(),
       "timing report of the cycle engine: 'table' (its default), 'json' (stdout is one JSON document, the "
       "statistics with a \"report\" member) or 'none'")
      ("trace", po::value<std::string>(),
       "cycle engine: write unit activity to this file: a VCD, or with a .json name a Chrome/Perfetto trace "
       "(units as tracks, instructions and layers as slices; ts in cycles). rtl engine: a VCD holds the RTL "
       "blocks' own signals (times in the engine's cycles, 1 ps timescale, as the unit activity, which goes "
       "beside it to <name without .vcd>.units.vcd); without a window, a lockstep mismatch or a hung block "
       "leaves the RTL VCD holding that instruction alone")
      ("trace-format", po::value<std::string>(), "'vcd' or 'chrome' (default: from the --trace file name)")
      ("trace-window", po::value<std::string>(),
       "START:END: trace only cycles [START, END) (VCD; rtl: only the blocks' clocks in those cycles)")
      ("trace-layer", po::value<std::string>(),
       "trace only the span of this layer (a debug record's name; VCD; rtl: the clocks of its instructions)");
  po::positional_options_description positional;
  positional.add("program", 1);
  const auto vm = parse_command(
      args,
      "dla run [--engine NAME] PROGRAM.dlab --input NAME=FILE.npy ... --output-dir DIR [--dump-layers] "
      "[--config FILE | --preset NAME] [--stats json|text] [--report table|json|none] [--trace FILE.vcd "
      "[--trace-window START:END | --trace-layer NAME] | --trace FILE.json]",
      "Runs a program (a .dlab, or the segmented program of a model with float parts: its device segments on "
      "the engine, its host steps with libtorch; float inputs and outputs are float32 .npy files, and an "
      "integer input may be given as float32, quantized as the model does). The hardware config is the one "
      "embedded in the program unless --config or --preset "
      "names one (it must be the config the program was compiled for). Writes DIR/<output>.npy for every "
      "output and, with --dump-layers, DIR/layers/<layer>.npy for every debug record, as one set: the files "
      "replace the previous run's only once all are written, then DIR/manifest.json lists them with their "
      "sizes and CRC-32s, and files of the previous set that this run did not write are removed (runs into one "
      "directory publish one at a time: a run waits while another publishes; `dla verify DIR` checks a set). "
      "Inputs whose leading dimension is k times the program's batch run as k batches (on every core on the "
      "emulator) and each output holds the k results stacked along its leading dimension.",
      options, positional);
  if (!vm) return 0;

  const std::string engine_name = (*vm)["engine"].as<std::string>();
  const Engine* engine = &find_engine(engine_name);
  std::string stats_format;
  if (vm->count("stats")) {
    stats_format = (*vm)["stats"].as<std::string>();
    if (stats_format != "json" && stats_format != "text") {
      throw Error("--stats takes 'json' or 'text', not '" + stats_format + "'");
    }
  }
  if (vm->count("config") && vm->count("preset")) throw Error("give --config or --preset, not both");
  const bool timed = engine->timing;
  std::string report_format = timed ? "table" : "none";
  if (vm->count("report")) {
    report_format = (*vm)["report"].as<std::string>();
    if (report_format != "table" && report_format != "json" && report_format != "none") {
      throw Error("--report takes 'table', 'json' or 'none', not '" + report_format + "'");
    }
    if (!timed && report_format != "none") {
      throw Error("--report needs a timing engine (--engine cycle); '" + engine_name + "' has no timing");
    }
  }
  if (report_format == "json" && stats_format == "text") {
    throw Error("--report json and --stats text cannot share stdout; give --stats json or leave it out");
  }
  const bool json = stats_format == "json" || report_format == "json";
  sim::TraceOptions trace;
  std::string chrome_trace_path;  // --trace FILE.json: written from the report after the run
  if (vm->count("trace")) {
    if (!timed) throw Error("--trace needs a timing engine (--engine cycle); '" + engine_name + "' has no timing");
    trace.path = (*vm)["trace"].as<std::string>();
    if (trace_format(trace.path, vm->count("trace-format") ? (*vm)["trace-format"].as<std::string>() : "") ==
        TraceFormat::kChrome) {
      if (vm->count("trace-window") || vm->count("trace-layer")) {
        throw Error("--trace-window and --trace-layer apply to VCD traces; a Chrome trace holds the whole run");
      }
      chrome_trace_path = trace.path;
      trace.path.clear();
    }
    if (vm->count("trace-window") && vm->count("trace-layer")) {
      throw Error("give --trace-window or --trace-layer, not both");
    }
    if (vm->count("trace-window")) parse_window((*vm)["trace-window"].as<std::string>(), trace);
    if (vm->count("trace-layer")) trace.layer = (*vm)["trace-layer"].as<std::string>();
  } else if (vm->count("trace-window") || vm->count("trace-layer") || vm->count("trace-format")) {
    throw Error("--trace-window, --trace-layer and --trace-format need --trace FILE");
  }

  const std::string path = (*vm)["program"].as<std::string>();
  std::optional<HwConfig> hw;
  if (vm->count("preset")) hw = HwConfig::preset((*vm)["preset"].as<std::string>());
  if (vm->count("config")) hw = HwConfig::load_file((*vm)["config"].as<std::string>());
  if (is_segmented(path)) {  // a model with float parts: device segments and host steps
    if (vm->count("trace")) throw Error("--trace records one program; " + path + " is a segmented program");
    SegmentedRun run{path,
                     engine_name,
                     hw,
                     vm->count("input") ? (*vm)["input"].as<std::vector<std::string>>() : std::vector<std::string>{},
                     (*vm)["output-dir"].as<std::string>(),
                     (*vm)["dump-layers"].as<bool>(),
                     report_format,
                     json};
    return run_segmented(run);
  }
  ReadOptions read;
  if (hw) read.expected_config_hash = hw->identity_hash();
  const Program program = read_program_file(path, read);
  if (!hw) {
    if (!program.hw_config) {
      throw Error(path + ": the program has no embedded hardware config; give --config FILE or --preset NAME");
    }
    hw = *program.hw_config;
  }

  if (std::none_of(program.tensors.begin(), program.tensors.end(),
                   [](const TensorDesc& t) { return t.role == TensorRole::kOutput; })) {
    throw Error(path + ": the program has no outputs; a run would write nothing");
  }

  std::unique_ptr<sim::Device> device = engine->make(*hw);
  auto* cycle_device = dynamic_cast<sim::CycleDevice*>(device.get());
  if (cycle_device != nullptr && !trace.path.empty()) cycle_device->set_trace(trace);
  device->load(program);

  // Inputs: every input exactly once, no unknown names; several of the program's batches
  // stacked run as a batch (batch_run.hpp).
  const auto inputs = read_inputs(program, vm->count("input") ? (*vm)["input"].as<std::vector<std::string>>()
                                                             : std::vector<std::string>{}, true);
  const std::size_t batches = batches_in(program, inputs);
  sim::RunOptions run_options;
  run_options.dump_layers = (*vm)["dump-layers"].as<bool>();
  if (batches > 1 && (run_options.dump_layers || vm->count("trace"))) {
    throw Error(std::string(run_options.dump_layers ? "--dump-layers" : "--trace") + " takes one batch of the program (" +
                std::to_string(program.find_tensor(inputs.begin()->first)->shape[0]) + " in the leading dimension); " +
                "the inputs hold " + std::to_string(batches));
  }
  if (batches == 1) {
    for (const auto& [name, tensor] : inputs) device->set_input(name, tensor);
  }
  // The output folders exist before the (possibly long) run.
  const fs::path dir = (*vm)["output-dir"].as<std::string>();
  const fs::path layers_dir = dir / "layers";
  OutputSet out_set(dir);

  std::optional<BatchedRun> batched;
  {
    const Phase phase("run " + path + " on " + device->name() + " (" + std::to_string(batches) + " batch(es) of " +
                      std::to_string(program.instructions.size()) + " instructions)");
    if (batches > 1) {
      batched = run_batches(program, *hw, *engine, inputs, batches);
    } else {
      device->run(run_options);
    }
  }
  const sim::Device& ran = batched ? batched->last() : *device;  // its report: the last batch's
  if (!chrome_trace_path.empty()) write_chrome_trace(chrome_trace_path, *cycle_device, program);

  FileNamer out_names;
  nlohmann::json outputs = nlohmann::json::array();
  std::ostringstream text;
  for (const auto& t : program.tensors) {
    if (t.role != TensorRole::kOutput) continue;
    const HostTensor y = batched ? batched->outputs.at(t.name) : device->output(t.name);
    const std::string file = out_set.add(out_names(t.name), npy_bytes(y), ".npy file");
    outputs.push_back({{"name", t.name}, {"file", file}, {"dtype", dtype_name(t.dtype)},
                       {"shape", y.shape}, {"frac", t.frac}});
    text << "  output " << t.name << " " << dtype_name(t.dtype) << " " << shape_string(y.shape) << " frac " << t.frac
         << " -> " << file << "\n";
  }
  std::size_t dumped = 0;
  if (run_options.dump_layers) {
    FileNamer layer_names;
    for (const auto& d : device->layer_dumps()) {
      out_set.add("layers/" + layer_names(d.name), npy_bytes(d.tensor), ".npy file");
      ++dumped;
    }
  }
  out_set.commit({{"format", "dla-run-manifest"}, {"version", 1}, {"program", path}, {"engine", device->name()},
                  {"config_hash", hash_hex(hw->identity_hash())}});

  const sim::RunStats s = batched ? batched->stats : device->stats();
  const auto* timed_device = dynamic_cast<const sim::CycleDevice*>(&ran);
  const bool with_report = timed_device != nullptr && report_format != "none";
  if (json) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : s.layers) {
      layers.push_back({{"name", l.name}, {"macs", l.macs}, {"acc_overflows", l.acc_overflows},
                        {"saturations", l.saturations}, {"dram_read_bytes", l.dram_read_bytes},
                        {"dram_write_bytes", l.dram_write_bytes}, {"cycles", l.cycles}});
    }
    nlohmann::json j = {{"program", path},
                        {"engine", device->name()},
                        {"config_hash", hash_hex(hw->identity_hash())},
                        {"instructions", s.instructions},
                        {"macs", s.macs},
                        {"acc_overflows", s.acc_overflows},
                        {"saturations", s.saturations},
                        {"dram_read_bytes", s.dram_read_bytes},
                        {"dram_write_bytes", s.dram_write_bytes},
                        {"cycles", s.cycles},
                        {"batches", batches},
                        {"outputs", outputs},
                        {"layer_dumps", dumped},
                        {"layers", layers}};
    if (with_report) j["report"] = timed_device->report();
    if (vm->count("trace")) j["trace"] = (*vm)["trace"].as<std::string>();
    if (cycle_device != nullptr && !trace.path.empty()) {
      j["trace_files"] = nlohmann::json::array();
      for (const sim::TraceFile& f : cycle_device->trace_files()) j["trace_files"].push_back({{"file", f.path}, {"holds", f.holds}});
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "ran " << path << " on " << device->name() << ": " << s.instructions << " instructions, " << s.macs
            << " MACs, " << s.acc_overflows << " accumulator overflows, " << s.saturations << " saturations\n";
  if (batches > 1) {
    std::cout << "  " << batches << " batches of the program's, run one by one and stacked (statistics summed";
    if (with_report) std::cout << "; the timing report is the last batch's";
    std::cout << ")\n";
  }
  std::cout << text.str();
  if (run_options.dump_layers) std::cout << "  " << dumped << " layer dumps -> " << layers_dir.string() << "\n";
  if (!chrome_trace_path.empty()) std::cout << "  trace -> " << chrome_trace_path << "\n";
  if (cycle_device != nullptr && !trace.path.empty()) {
    for (const sim::TraceFile& f : cycle_device->trace_files()) std::cout << "  trace -> " << f.path << " (" << f.holds << ")\n";
  }
  if (stats_format == "text") {
    std::cout << "DRAM: " << s.dram_read_bytes << " bytes read, " << s.dram_write_bytes << " bytes written\n";
    std::size_t width = 5;
    for (const auto& l : s.layers) width = std::max(width, l.name.size());
    std::cout << std::left << std::setw(static_cast<int>(width)) << "layer" << std::right << std::setw(14) << "MACs"
              << std::setw(11) << "overflows" << std::setw(13) << "saturations" << std::setw(14) << "DRAM read"
              << std::setw(14) << "DRAM written" << "\n";
    for (const auto& l : s.layers) {
      std::cout << std::left << std::setw(static_cast<int>(width)) << l.name << std::right << std::setw(14) << l.macs
                << std::setw(11) << l.acc_overflows << std::setw(13) << l.saturations << std::setw(14)
                << l.dram_read_bytes << std::setw(14) << l.dram_write_bytes << "\n";
    }
  }
  if (with_report) std::cout << "\n" << sim::report_table(timed_device->report());
  return 0;
}

}  // namespace dla::cli
