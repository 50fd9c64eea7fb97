// Segmented programs in the tool (segmented.hpp).
#include "segmented.hpp"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "dla/compiler/reference.hpp"
#include "dla/cycle.hpp"
#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/npy.hpp"
#include "dla/qat/host_segments.hpp"
#include "output_set.hpp"

namespace dla::cli {
namespace {

using qat::HostPlan;
using qat::PlanStep;
using qat::Value;

/// The plan's inputs from NAME=FILE.npy specs: integers for an integer input (checked
/// against its dtype, frac and shape) or float32 for any input (the host quantizes an
/// integer input's floats as the model does).
std::map<std::string, Value> read_plan_inputs(const HostPlan& plan, const std::vector<std::string>& specs) {
  std::map<std::string, std::string> files;
  std::string known;
  for (const auto& in : plan.inputs()) known += (known.empty() ? "" : ", ") + in.name;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw Error("--input takes NAME=FILE.npy, got '" + spec + "'");
    }
    if (!files.emplace(spec.substr(0, eq), spec.substr(eq + 1)).second) {
      throw Error("input '" + spec.substr(0, eq) + "' is given twice");
    }
  }
  std::map<std::string, Value> values;
  for (const auto& in : plan.inputs()) {
    const auto it = files.find(in.name);
    if (it == files.end()) {
      throw Error("missing input '" + in.name + "' (" +
                  (in.is_float ? std::string("float32") : std::string(dtype_info(in.dtype).name)) + " " +
                  shape_string(in.shape) + "): give --input " + in.name + "=FILE.npy");
    }
    const npy::Array a = npy::read(it->second, true);
    Value v;
    if (a.is_float32()) {
      if (a.shape != in.shape) {
        throw Error(it->second + ": input '" + in.name + "' has shape " + shape_string(in.shape) + ", the file " +
                    shape_string(a.shape));
      }
      v.is_float = true;
      v.reals = {a.shape, a.reals};
    } else if (in.is_float) {
      throw Error(it->second + ": input '" + in.name + "' is a float input of the host; give a float32 .npy");
    } else {
      TensorDesc desc;
      desc.name = in.name;
      desc.dtype = in.dtype;
      desc.frac = in.frac;
      desc.shape = in.shape;
      v.ints = npy::read_tensor(it->second, desc);
    }
    values[in.name] = std::move(v);
    files.erase(it);
  }
  if (!files.empty()) {
    throw Error("unknown input '" + files.begin()->first + "' (the model's inputs: " + known + ")");
  }
  return values;
}

/// The segmented program of a model (compiling its segments) or read from a file.
qat::SegmentedProgram segmented_program(const Model& model, const std::optional<std::string>& path) {
  qat::SegmentedProgram p;
  if (path) {
    ReadOptions read;
    read.expected_config_hash = model.hw.identity_hash();
    p = qat::read_segmented_program(*path, read);
    return p;
  }
  p.plan_json = model.host_plan;
  for (const auto& segment : model.segments) p.segments.push_back(compile_checked(segment, model.hw));
  p.model = read_regular_file(model.path, kMaxFileBytes, "QAT export");
  return p;
}

/// One device per segment of a segmented program on one engine, and what its last run
/// left: layer dumps, statistics and (cycle engine) reports, per segment.
class SegmentDevices {
 public:
  SegmentDevices(const qat::SegmentedProgram& p, const Engine& engine, const HwConfig& hw, bool dump_layers)
      : program_(p), dump_layers_(dump_layers) {
    for (const auto& segment : p.segments) {
      devices_.push_back(engine.make(hw));
      devices_.back()->load(segment);
    }
  }

  HostPlan::RunSegment runner() {
    return [this](std::size_t k, const std::map<std::string, HostTensor>& inputs) {
      const Phase phase("device segment " + std::to_string(k) + " on " + devices_.at(k)->name());
      sim::Device& d = *devices_.at(k);
      for (const auto& [name, t] : inputs) d.set_input(name, t);
      sim::RunOptions options;
      options.dump_layers = dump_layers_;
      try {
        d.run(options);
      } catch (const Error& e) {
        throw Error("segment " + std::to_string(k) + ": " + e.what());
      }
      std::map<std::string, HostTensor> outs;
      for (const auto& t : program_.segments[k].tensors) {
        if (t.role == TensorRole::kOutput) outs[t.name] = d.output(t.name);
      }
      return outs;
    };
  }

  sim::Device& device(std::size_t k) { return *devices_.at(k); }
  const sim::CycleDevice* cycle(std::size_t k) const { return dynamic_cast<const sim::CycleDevice*>(devices_.at(k).get()); }

  /// The last run's Chrome trace and unit timeline, the segments back to back (cycle
  /// engines only; nothing on emu).
  void trace(std::string* trace_json, nlohmann::json* timeline) const {
    std::vector<sim::TracedRun> runs;
    std::vector<const sim::CycleReport*> reports;
    for (std::size_t k = 0; k < devices_.size(); ++k) {
      if (cycle(k) == nullptr) return;
      runs.push_back({cycle(k)->report(), program_.segments[k], "device segment " + std::to_string(k)});
      reports.push_back(&cycle(k)->report());
    }
    if (trace_json != nullptr) *trace_json = sim::chrome_trace(runs);
    if (timeline != nullptr) *timeline = sim::unit_timeline(reports);
  }

 private:
  const qat::SegmentedProgram& program_;
  bool dump_layers_;
  std::vector<std::unique_ptr<sim::Device>> devices_;
};

std::vector<std::uint8_t> value_npy(const Value& v) {
  return v.is_float ? npy::serialize_float32(v.reals.shape, v.reals.values)
                    : npy::serialize(npy::descr_for(v.ints.dtype), v.ints.shape, v.ints.values);
}

/// A name as a file name: letters, digits, '.', '-' and '_' kept, others '_' (names of a
/// segmented model are node names: unique).
std::string file_name(const std::string& name) {
  std::string s;
  for (char c : name) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
    s.push_back(keep ? c : '_');
  }
  return s + ".npy";
}

}  // namespace

bool is_segmented(const std::string& path) { return qat::is_segmented_program(path); }

void write_segmented(const std::string& path, const Model& model, const std::vector<Program>& programs) {
  qat::SegmentedProgram p;
  p.plan_json = model.host_plan;
  p.segments = programs;
  p.model = read_regular_file(model.path, kMaxFileBytes, "QAT export");
  const HostPlan plan(p);  // the file written is one that loads
  qat::write_segmented_program(path, p);
  std::size_t host = 0, instructions = 0;
  for (const auto& s : plan.steps()) host += s.kind != PlanStep::Kind::kDevice;
  for (const auto& s : programs) instructions += s.instructions.size();
  std::cout << path << ": segmented program: " << programs.size() << " device segment(s) (" << instructions
            << " instructions), " << host << " host step(s), hw config " << hash_hex(model.hw.identity_hash()) << "\n";
}

std::string describe_segmented(const std::string& path, const ReadOptions& options) {
  const qat::SegmentedProgram program = qat::read_segmented_program(path, options);
  const HostPlan plan(program);
  auto value_text = [](const qat::PlanValue& v) {
    return v.is_float ? "float32 " + shape_string(v.shape)
                      : std::string(dtype_info(v.dtype).name) + " " + shape_string(v.shape) + " frac " +
                            std::to_string(v.frac);
  };
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  std::ostringstream s;
  s << "segmented program " << path << ": " << program.segments.size() << " device segment(s), "
    << plan.steps().size() - program.segments.size() << " host step(s), export of " << program.model.size()
    << " bytes\n";
  for (const auto& v : plan.inputs()) s << "  input  " << v.name << ": " << value_text(v) << "\n";
  for (std::size_t i = 0; i < plan.steps().size(); ++i) {
    const PlanStep& st = plan.steps()[i];
    s << "  step " << i << ": ";
    if (st.kind == PlanStep::Kind::kDevice) {
      s << "device segment " << st.segment << " (" << program.segments[st.segment].instructions.size()
        << " instructions): " << list(st.inputs) << " -> " << list(st.outputs) << "\n";
    } else if (st.kind == PlanStep::Kind::kHost) {
      s << "host " << st.name << " = " << st.module << "(" << list(st.inputs) << ")\n";
    } else {
      s << "quantize " << st.name << " = quantize(" << st.inputs[0] << ") as " << value_text(st.value) << "\n";
    }
  }
  for (const auto& v : plan.outputs()) s << "  output " << v.name << ": " << value_text(v) << "\n";
  for (std::size_t k = 0; k < program.segments.size(); ++k) {
    s << "\n== device segment " << k << " ==\n" << describe_program(program.segments[k]);
  }
  return s.str();
}

int run_segmented(const SegmentedRun& r) {
  ReadOptions read;
  if (r.hw) read.expected_config_hash = r.hw->identity_hash();
  const qat::SegmentedProgram program = qat::read_segmented_program(r.path, read);
  if (program.segments.empty()) throw Error(r.path + ": a segmented program with no device segment");
  HwConfig hw = r.hw ? *r.hw : HwConfig{};
  if (!r.hw) {
    if (!program.segments[0].hw_config) {
      throw Error(r.path + ": the program has no embedded hardware config; give --config FILE or --preset NAME");
    }
    hw = *program.segments[0].hw_config;
  }
  const HostPlan plan(program);
  const Engine& engine = find_engine(r.engine);
  SegmentDevices devices(program, engine, hw, r.dump_layers);
  const auto inputs = read_plan_inputs(plan, r.inputs);
  OutputSet out_set(r.output_dir);
  std::vector<double> seconds;
  const auto values = plan.run(inputs, devices.runner(), &seconds);
  for (std::size_t i = 0; i < seconds.size(); ++i) {
    const PlanStep& s = plan.steps()[i];
    if (s.kind != PlanStep::Kind::kDevice) spdlog::info("host step '{}': {:.1f} ms", s.name, 1e3 * seconds[i]);
  }

  nlohmann::json outputs = nlohmann::json::array();
  std::ostringstream text;
  for (const auto& o : plan.outputs()) {
    const Value& v = values.at(o.name);
    const std::string file = out_set.add(file_name(o.name), value_npy(v), ".npy file");
    outputs.push_back({{"name", o.name}, {"file", file}, {"value", v.is_float ? "float" : "int"}});
    text << "  output " << o.name << " "
         << (v.is_float ? "float32 " + shape_string(v.reals.shape)
                        : std::string(dtype_info(v.ints.dtype).name) + " " + shape_string(v.ints.shape) + " frac " +
                              std::to_string(v.ints.frac))
         << " -> " << file << "\n";
  }
  std::size_t dumped = 0;
  if (r.dump_layers) {  // device layers of every segment, and every host value
    for (std::size_t k = 0; k < program.segments.size(); ++k) {
      for (const auto& d : devices.device(k).layer_dumps()) {
        Value v;
        v.ints = d.tensor;
        out_set.add("layers/" + file_name(d.name), value_npy(v), ".npy file");
        ++dumped;
      }
    }
    for (const auto& s : plan.steps()) {
      if (s.kind == PlanStep::Kind::kDevice) continue;
      out_set.add("layers/" + file_name(s.name), value_npy(values.at(s.name)), ".npy file");
      ++dumped;
    }
  }
  out_set.commit({{"format", "dla-run-manifest"}, {"version", 1}, {"program", r.path}, {"engine", r.engine},
                  {"config_hash", hash_hex(hw.identity_hash())}});

  // Steps: device segments with their statistics (and cycles), host steps with their time.
  nlohmann::json steps = nlohmann::json::array();
  std::ostringstream table, reports;
  table << "  " << std::left << std::setw(10) << "step" << std::setw(28) << "name" << std::right << std::setw(14)
        << "instructions" << std::setw(14) << "cycles" << std::setw(12) << "host ms" << "\n";
  for (std::size_t i = 0; i < plan.steps().size(); ++i) {
    const PlanStep& s = plan.steps()[i];
    nlohmann::json j = {{"name", s.name}, {"host_seconds", seconds[i]}};
    std::uint64_t instructions = 0, cycles = 0;
    if (s.kind == PlanStep::Kind::kDevice) {
      const sim::RunStats st = devices.device(s.segment).stats();
      instructions = st.instructions;
      cycles = st.cycles;
      j.update({{"kind", "device"}, {"segment", s.segment}, {"instructions", st.instructions}, {"macs", st.macs},
                {"acc_overflows", st.acc_overflows}, {"saturations", st.saturations}, {"cycles", st.cycles}});
      const auto* cycle = devices.cycle(s.segment);
      if (cycle != nullptr && r.report_format != "none") {
        j["report"] = cycle->report();
        reports << "\n== " << s.name << " ==\n" << sim::report_table(cycle->report());
      }
    } else {
      j["kind"] = s.kind == PlanStep::Kind::kHost ? "host" : "quantize";
      if (s.kind == PlanStep::Kind::kHost) j["module"] = s.module;
    }
    steps.push_back(j);
    table << "  " << std::left << std::setw(10) << j["kind"].get<std::string>() << std::setw(28) << s.name << std::right
          << std::setw(14) << (s.kind == PlanStep::Kind::kDevice ? std::to_string(instructions) : "-") << std::setw(14)
          << (cycles ? std::to_string(cycles) : "-") << std::setw(12) << std::fixed << std::setprecision(3)
          << 1e3 * seconds[i] << "\n";
  }
  if (r.json) {
    std::cout << nlohmann::json({{"program", r.path}, {"engine", r.engine}, {"segmented", true},
                                 {"config_hash", hash_hex(hw.identity_hash())}, {"outputs", outputs},
                                 {"layer_dumps", dumped}, {"steps", steps}})
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "ran " << r.path << " on " << r.engine << ": " << program.segments.size() << " device segment(s) and "
            << plan.steps().size() - program.segments.size() << " host step(s)\n"
            << table.str() << text.str();
  if (r.dump_layers) std::cout << "  " << dumped << " layer dumps -> " << (std::filesystem::path(r.output_dir) / "layers").string() << "\n";
  if (r.report_format == "table") std::cout << reports.str();
  return 0;
}

FloatValues float_reference(const Model& model, const std::map<std::string, RealTensor>& inputs) {
  if (model.path.empty()) return {};
  std::map<std::string, qat::FloatTensor> given;
  for (const auto& [name, t] : inputs) given[name] = {t.shape, t.values};
  FloatValues out;
  for (auto& [name, t] : qat::float_reference_values(model.path, given)) out[name] = std::move(t.values);
  return out;
}

std::vector<LayerCheck> signoff_segmented(const Model& model, const std::optional<std::string>& program_path,
                                          const std::vector<std::string>& engines,
                                          const std::vector<std::string>& input_specs, std::string* trace_json,
                                          nlohmann::json* timeline) {
  const qat::SegmentedProgram program = segmented_program(model, program_path);
  if (program.segments.size() != model.segments.size()) {
    throw Error("signoff: the program has " + std::to_string(program.segments.size()) + " device segments, the model " +
                std::to_string(model.segments.size()));
  }
  const HostPlan plan(program);
  const auto inputs = read_plan_inputs(plan, input_specs);
  std::map<std::string, RealTensor> reals;
  for (const auto& [name, v] : inputs) {
    reals[name] = v.is_float ? RealTensor{v.reals.shape, v.reals.values} : RealTensor{v.ints.shape, reals_of(v.ints)};
  }
  const FloatValues floats = float_reference(model, reals);
  // The reference: each segment's graph on the compiler's evaluator, chained by the plan.
  std::map<std::string, HostTensor> reference_layers;
  const auto reference = plan.run(inputs, [&](std::size_t k, const std::map<std::string, HostTensor>& ins) {
    const compiler::Graph& g = model.segments.at(k);
    const std::vector<HostTensor> all = compiler::evaluate(g, model.hw, ins);
    std::map<std::string, HostTensor> outs;
    for (std::size_t n = 0; n < all.size(); ++n) reference_layers[g.nodes()[n].name] = all[n];
    for (const auto& t : program.segments[k].tensors) {
      if (t.role == TensorRole::kOutput) outs[t.name] = reference_layers.at(t.name);
    }
    return outs;
  });

  std::vector<LayerCheck> checks;
  for (const auto& name : engines) {
    SegmentDevices devices(program, find_engine(name), model.hw, true);
    const auto values = plan.run(inputs, devices.runner());
    devices.trace(trace_json, timeline);  // as for one program: the last cycle-timed engine's
    for (const PlanStep& s : plan.steps()) {
      if (s.kind != PlanStep::Kind::kDevice) {
        const Value& want = reference.at(s.name);
        const Value& got = values.at(s.name);
        LayerCheck c = want.is_float ? compare_reals(name, s.name, want.reals.values, got.reals.values)
                                     : compare(name, s.name, want.ints, got.ints);
        set_sqnr(c, floats, got.is_float ? got.reals.values : reals_of(got.ints));
        checks.push_back(c);
        continue;
      }
      sim::Device& d = devices.device(s.segment);
      const sim::RunStats stats = d.stats();
      const auto* cycle = devices.cycle(s.segment);
      const auto dumps = d.layer_dumps();
      for (std::size_t i = 0; i < dumps.size(); ++i) {
        const auto want = reference_layers.find(dumps[i].name);
        if (want == reference_layers.end()) {
          throw Error("signoff: the program's layer '" + dumps[i].name + "' is not a node of the model");
        }
        LayerCheck c = compare(name, dumps[i].name, want->second, dumps[i].tensor);
        if (i < stats.layers.size()) c.stats = stats.layers[i];
        if (cycle != nullptr && i < cycle->report().layers.size()) c.mac_utilization = cycle->report().layers[i].mac_utilization;
        set_sqnr(c, floats, reals_of(dumps[i].tensor));
        checks.push_back(c);
      }
    }
  }
  return checks;
}

}  // namespace dla::cli
