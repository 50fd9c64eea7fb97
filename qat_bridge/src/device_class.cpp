// device_class.cpp — the simulated chip as a TorchScript custom class, torch.classes.dla.Device:
// a program (.dlab) loaded on an engine (emu or cycle), run on batches of integer tensors
// from Python or C++ with no subprocess. `dlasim.Device` wraps it.
//
// A program is compiled for a batch of B images (its tensors' leading dimension, usually 1);
// a batch of N runs the program ceil(N / B) times and stacks the outputs.
#include <ATen/ATen.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dla/batch.hpp"
#include "dla/cycle.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#include "dla/program.hpp"
#include "dla/qat/host_segments.hpp"
#include "dla/qat/hw_options.hpp"
#include "host_tensors.hpp"
#ifdef DLA_HAVE_RTL
#include "dla/rtl.hpp"
#endif

namespace dla::qat {
namespace {

std::unique_ptr<sim::Device> make_engine(const std::string& engine, const HwConfig& hw) {
  if (engine == "emu") return sim::make_emulator(hw);
  if (engine == "cycle") return sim::make_cycle_model(hw);
#ifdef DLA_HAVE_RTL
  if (engine == "rtl") return sim::make_rtl_engine(hw);
  TORCH_CHECK(false, "dla.Device: unknown engine '", engine, "' (available: emu, cycle, rtl)");
#else
  TORCH_CHECK(false, "dla.Device: unknown engine '", engine, "' (available: emu, cycle)");
#endif
}

/// Runs `fn`, turning dlasim's user errors into Python RuntimeErrors with the same text.
template <typename Fn>
auto checked(const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const dla::Error& e) {
    TORCH_CHECK(false, "dla.Device.", what, ": ", e.what());
  }
}

/// Appends what a device's last run (with dump_layers) left: every layer's dump (int64,
/// the program's shape) and [MACs, accumulator overflows, saturations, cycles (0 on emu),
/// MAC utilization in 1e-6].
using LayerDumps = c10::Dict<std::string, at::Tensor>;
using LayerStats = c10::Dict<std::string, std::vector<std::int64_t>>;
void collect_layers(const sim::Device& device, LayerDumps& dumps, LayerStats& stats) {
  for (const auto& d : device.layer_dumps()) dumps.insert(d.name, long_tensor(d.tensor));
  const auto* cyc = dynamic_cast<const sim::CycleDevice*>(&device);
  const sim::RunStats s = device.stats();
  for (std::size_t i = 0; i < s.layers.size(); ++i) {
    const auto& l = s.layers[i];
    std::int64_t util = 0;
    if (cyc != nullptr && i < cyc->report().layers.size()) {
      util = static_cast<std::int64_t>(cyc->report().layers[i].mac_utilization * 1e6);
    }
    stats.insert(l.name, std::vector<std::int64_t>{static_cast<std::int64_t>(l.macs),
                                                   static_cast<std::int64_t>(l.acc_overflows),
                                                   static_cast<std::int64_t>(l.saturations),
                                                   static_cast<std::int64_t>(l.cycles), util});
  }
}

class SimDevice : public torch::CustomClassHolder {
 public:
  SimDevice(const std::string& path, const std::string& engine) : engine_(engine) {
    checked("load", [&] {
      program_ = read_program_file(path);
      TORCH_CHECK(program_.hw_config.has_value(), "dla.Device: ", path,
                  " has no embedded hardware config (compile it without --no-embed-config)");
      device_ = make_engine(engine, *program_.hw_config);
      device_->load(program_);
      return 0;
    });
  }

  std::string engine() const { return engine_; }
  std::vector<std::string> names(TensorRole role) const {
    std::vector<std::string> out;
    for (const auto& t : program_.tensors) {
      if (t.role == role) out.push_back(t.name);
    }
    return out;
  }
  std::vector<std::string> input_names() const { return names(TensorRole::kInput); }
  std::vector<std::string> output_names() const { return names(TensorRole::kOutput); }

  /// (dtype name, frac, shape) of a tensor of the program.
  std::tuple<std::string, std::int64_t, std::vector<std::int64_t>> tensor_info(const std::string& name) const {
    const TensorDesc& t = desc(name);
    return {std::string(dtype_info(t.dtype).name), t.frac, std::vector<std::int64_t>(t.shape.begin(), t.shape.end())};
  }

  /// The `hw` list of the dla ops for the program's hardware config (rounding of inputs).
  std::vector<std::int64_t> hw_list() const { return HwOptions::from_config(*program_.hw_config).to_list(); }

  /// Runs every image of the batch; inputs by name, integer tensors [N, ...] whose
  /// trailing dimensions are the program's. Returns every output as int64 [N, ...].
  c10::Dict<std::string, at::Tensor> run(const c10::Dict<std::string, at::Tensor>& inputs) {
    const auto in_names = input_names();
    TORCH_CHECK(inputs.size() == in_names.size(), "dla.Device.run: the program takes ", in_names.size(),
                " input(s) (", c10::Join(", ", in_names), "), got ", inputs.size());
    std::int64_t batch = -1;
    std::vector<at::Tensor> flat;
    for (const auto& name : in_names) {
      TORCH_CHECK(inputs.contains(name), "dla.Device.run: missing input '", name, "' (inputs: ",
                  c10::Join(", ", in_names), ")");
      const at::Tensor x = inputs.at(name);
      const TensorDesc& d = desc(name);
      TORCH_CHECK(!x.is_floating_point() && !x.is_complex(), "dla.Device.run: input '", name,
                  "' must hold integers (quantize floats first: dlasim.Device.run does)");
      TORCH_CHECK(x.dim() == static_cast<std::int64_t>(d.shape.size()) && x.dim() >= 1, "dla.Device.run: input '",
                  name, "' has shape ", x.sizes(), "; the program takes [N, ...] with ... = ", per_image(d));
      for (std::int64_t i = 1; i < x.dim(); ++i) {
        TORCH_CHECK(x.size(i) == static_cast<std::int64_t>(d.shape[static_cast<std::size_t>(i)]), "dla.Device.run: input '",
                    name, "' has shape ", x.sizes(), "; the program takes [N, ...] with ... = ", per_image(d));
      }
      TORCH_CHECK(batch < 0 || x.size(0) == batch, "dla.Device.run: inputs disagree on the batch size");
      batch = x.size(0);
      flat.push_back(x.to(at::kInt).contiguous());
    }
    // The program's own batch B (its tensors' leading dimension): the batch runs in chunks
    // of B images, the last one padded with zeros (its padding dropped), spread over the
    // host's cores by the engines' BatchRunner (the emulator; the SystemC cycle model runs
    // one chunk at a time).
    const auto program_batch = static_cast<std::int64_t>(desc(in_names[0]).shape[0]);
    std::vector<sim::TensorMap> chunks;
    std::vector<std::int64_t> counts;
    for (std::int64_t first = 0; first < batch; first += program_batch) {
      counts.push_back(std::min(program_batch, batch - first));
      sim::TensorMap feed;
      for (std::size_t i = 0; i < in_names.size(); ++i) {
        HostTensor t = host_tensor(in_names[i], flat[i].narrow(0, first, counts.back()));
        t.values.resize(static_cast<std::size_t>(t.num_elements()), 0);
        feed[in_names[i]] = std::move(t);
      }
      chunks.push_back(std::move(feed));
    }
    const std::vector<sim::TensorMap> results = checked("run", [&] { return batch_runner().run(chunks); });
    last_ = &batch_runner().device(0);
    const auto out_names = output_names();
    std::vector<std::vector<at::Tensor>> outs(out_names.size());
    for (std::size_t c = 0; c < results.size(); ++c) {
      for (std::size_t o = 0; o < out_names.size(); ++o) {
        outs[o].push_back(long_tensor(results[c].at(out_names[o])).narrow(0, 0, counts[c]));
      }
    }
    c10::Dict<std::string, at::Tensor> result;
    for (std::size_t o = 0; o < out_names.size(); ++o) {
      result.insert(out_names[o], batch == 0 ? at::empty({0}, at::kLong) : at::cat(outs[o], 0));
    }
    return result;
  }

  /// One run of the program on exactly its own batch, every layer dumped: (layer name ->
  /// int64 tensor in the program's shape of that layer, layer name -> [MACs, accumulator
  /// overflows, saturations, cycles (0 on emu), mac utilization in 1e-6]).
  std::tuple<c10::Dict<std::string, at::Tensor>, c10::Dict<std::string, std::vector<std::int64_t>>> run_layers(
      const c10::Dict<std::string, at::Tensor>& inputs) {
    for (const auto& name : input_names()) {
      TORCH_CHECK(inputs.contains(name), "dla.Device.run_layers: missing input '", name, "'");
      TORCH_CHECK(inputs.at(name).size(0) == static_cast<std::int64_t>(desc(name).shape[0]),
                  "dla.Device.run_layers: input '", name, "' must have the program's batch ", desc(name).shape[0]);
    }
    sim::RunOptions options;
    options.dump_layers = true;
    c10::Dict<std::string, at::Tensor> dumps;
    c10::Dict<std::string, std::vector<std::int64_t>> stats;
    last_ = nullptr;
    checked("run_layers", [&] {
      for (const auto& name : input_names()) device_->set_input(name, host_tensor(name, inputs.at(name)));
      device_->run(options);
      collect_layers(*device_, dumps, stats);
      return 0;
    });
    return {dumps, stats};
  }

  /// (Chrome trace, unit timeline JSON) of the last run_layers; empty on emu.
  std::tuple<std::string, std::string> trace() const {
    const auto* cyc = dynamic_cast<const sim::CycleDevice*>(device_.get());
    if (cyc == nullptr) return {};
    return {sim::chrome_trace(cyc->report(), program_), sim::unit_timeline({&cyc->report()}).dump()};
  }

  /// Cycles of the last chunk a device ran (cycle engine only; 0 on emu) and its MACs.
  std::vector<std::int64_t> last_stats() const {
    const sim::Device* d = last_ != nullptr ? last_ : device_.get();
    const sim::RunStats s = d->stats();
    std::int64_t cycles = 0;
    if (auto* cyc = dynamic_cast<const sim::CycleDevice*>(d)) cycles = static_cast<std::int64_t>(cyc->report().cycles);
    return {cycles, static_cast<std::int64_t>(s.macs)};
  }

 private:
  const TensorDesc& desc(const std::string& name) const {
    const TensorDesc* d = program_.find_tensor(name);
    TORCH_CHECK(d != nullptr, "dla.Device: the program has no tensor '", name, "'");
    return *d;
  }
  HostTensor host_tensor(const std::string& name, const at::Tensor& x) const {
    const TensorDesc& d = desc(name);
    TORCH_CHECK(!x.is_floating_point(), "dla.Device: input '", name, "' must hold integers");
    return qat::host_tensor(x, d.dtype, d.frac, d.shape);
  }
  static std::string per_image(const TensorDesc& d) {
    std::string s = "[";
    for (std::size_t i = 1; i < d.shape.size(); ++i) s += (i > 1 ? ", " : "") + std::to_string(d.shape[i]);
    return s + "]";
  }

  sim::BatchRunner& batch_runner() {
    if (!runner_) {
      const std::string engine = engine_;
      runner_ = std::make_unique<sim::BatchRunner>(
          program_, *program_.hw_config, [engine](const HwConfig& hw) { return make_engine(engine, hw); },
          engine == "emu" ? 0u : 1u);
    }
    return *runner_;
  }

  std::string engine_;
  Program program_;
  std::unique_ptr<sim::Device> device_;  ///< single runs: run_layers, last_stats
  std::unique_ptr<sim::BatchRunner> runner_;
  const sim::Device* last_ = nullptr;  ///< the device of the last run() (run_layers: device_)
};


/// A segmented program (a model with float parts, dla/qat/host_segments.hpp) on an engine:
/// its device segments on one device each, its host steps here. Runs batches in chunks of
/// the program's own batch like SimDevice; float inputs are quantized by the host plan as
/// the model does; float outputs come back as float32.
class SegmentedSimDevice : public torch::CustomClassHolder {
 public:
  SegmentedSimDevice(const std::string& path, const std::string& engine) : engine_(engine) {
    checked("load", [&] {
      program_ = read_segmented_program(path);
      TORCH_CHECK(!program_.segments.empty() && program_.segments[0].hw_config.has_value(), "dla.SegmentedDevice: ",
                  path, " has no device segment with an embedded hardware config");
      plan_ = std::make_unique<HostPlan>(program_);
      for (const auto& segment : program_.segments) {
        devices_.push_back(make_engine(engine, *program_.segments[0].hw_config));
        devices_.back()->load(segment);
      }
      return 0;
    });
  }

  std::string engine() const { return engine_; }
  std::vector<std::string> input_names() const { return names(plan_->inputs()); }
  std::vector<std::string> output_names() const { return names(plan_->outputs()); }
  /// (dtype name or "float32", frac, shape) of an input or output.
  std::tuple<std::string, std::int64_t, std::vector<std::int64_t>> tensor_info(const std::string& name) const {
    for (const auto* list : {&plan_->inputs(), &plan_->outputs()}) {
      for (const auto& v : *list) {
        if (v.name != name) continue;
        return {v.is_float ? std::string("float32") : std::string(dtype_info(v.dtype).name), v.frac,
                std::vector<std::int64_t>(v.shape.begin(), v.shape.end())};
      }
    }
    TORCH_CHECK(false, "dla.SegmentedDevice: the model has no input or output '", name, "'");
  }

  c10::Dict<std::string, at::Tensor> run(const c10::Dict<std::string, at::Tensor>& inputs) {
    const auto in_names = input_names();
    TORCH_CHECK(inputs.size() == in_names.size(), "dla.SegmentedDevice.run: the model takes ", in_names.size(),
                " input(s) (", c10::Join(", ", in_names), "), got ", inputs.size());
    std::int64_t batch = -1;
    for (const auto& v : plan_->inputs()) {
      TORCH_CHECK(inputs.contains(v.name), "dla.SegmentedDevice.run: missing input '", v.name, "'");
      const at::Tensor x = inputs.at(v.name);
      TORCH_CHECK(x.dim() == static_cast<std::int64_t>(v.shape.size()) && x.dim() >= 1,
                  "dla.SegmentedDevice.run: input '", v.name, "' has shape ", x.sizes(), "; the model takes [N, ...] of ",
                  shape_string(v.shape));
      for (std::int64_t i = 1; i < x.dim(); ++i) {
        TORCH_CHECK(x.size(i) == static_cast<std::int64_t>(v.shape[static_cast<std::size_t>(i)]),
                    "dla.SegmentedDevice.run: input '", v.name, "' has shape ", x.sizes(), "; the model takes [N, ...] of ",
                    shape_string(v.shape));
      }
      TORCH_CHECK(batch < 0 || x.size(0) == batch, "dla.SegmentedDevice.run: inputs disagree on the batch size");
      batch = x.size(0);
    }
    const auto own = static_cast<std::int64_t>(plan_->inputs().at(0).shape.at(0));
    std::map<std::string, std::vector<at::Tensor>> outs;
    for (std::int64_t first = 0; first < batch; first += own) {
      const std::int64_t n = std::min(own, batch - first);
      std::map<std::string, Value> feed;
      for (const auto& v : plan_->inputs()) {
        at::Tensor x = inputs.at(v.name).narrow(0, first, n);
        if (n < own) {  // the last chunk, padded with zeros (its padding dropped below)
          std::vector<std::int64_t> pad(v.shape.begin(), v.shape.end());
          pad[0] = own - n;
          x = at::cat({x, at::zeros(pad, x.options())}, 0);
        }
        feed[v.name] = value_of(x, v);
      }
      const auto values = run_chunk("run", feed, false);
      for (const auto& v : plan_->outputs()) outs[v.name].push_back(tensor_of(values.at(v.name)).narrow(0, 0, n));
    }
    c10::Dict<std::string, at::Tensor> result;
    for (const auto& v : plan_->outputs()) {
      result.insert(v.name, batch == 0 ? at::empty({0}) : at::cat(outs[v.name], 0));
    }
    return result;
  }

  /// One run on exactly the program's batch with every layer dumped, in the plan's order:
  /// each device segment's layers (int64, stats as SimDevice.run_layers) and each host
  /// step's value (int64 integers, or float32 reals); host values have no stats.
  std::tuple<LayerDumps, LayerStats> run_layers(const c10::Dict<std::string, at::Tensor>& inputs) {
    std::map<std::string, Value> feed;
    for (const auto& v : plan_->inputs()) {
      TORCH_CHECK(inputs.contains(v.name), "dla.SegmentedDevice.run_layers: missing input '", v.name, "'");
      const at::Tensor x = inputs.at(v.name);
      TORCH_CHECK(x.dim() >= 1 && x.size(0) == static_cast<std::int64_t>(v.shape.at(0)),
                  "dla.SegmentedDevice.run_layers: input '", v.name, "' must have the program's batch ", v.shape.at(0));
      feed[v.name] = value_of(x, v);
    }
    const auto values = run_chunk("run_layers", feed, true);
    LayerDumps dumps;
    LayerStats stats;
    for (const PlanStep& step : plan_->steps()) {
      if (step.kind == PlanStep::Kind::kDevice) {
        collect_layers(*devices_.at(step.segment), dumps, stats);
      } else {
        dumps.insert(step.name, tensor_of(values.at(step.name)));
      }
    }
    return {dumps, stats};
  }

  /// (Chrome trace, unit timeline JSON) of the last run_layers, the device segments back
  /// to back; empty on emu.
  std::tuple<std::string, std::string> trace() const {
    std::vector<sim::TracedRun> runs;
    std::vector<const sim::CycleReport*> reports;
    for (std::size_t k = 0; k < devices_.size(); ++k) {
      const auto* cyc = dynamic_cast<const sim::CycleDevice*>(devices_[k].get());
      if (cyc == nullptr) return {};
      runs.push_back({cyc->report(), program_.segments[k], "device segment " + std::to_string(k)});
      reports.push_back(&cyc->report());
    }
    return {sim::chrome_trace(runs), sim::unit_timeline(reports).dump()};
  }

 private:
  /// Runs the plan once on exactly the program's batch: every value by name.
  std::map<std::string, Value> run_chunk(const char* what, const std::map<std::string, Value>& feed, bool dump_layers) {
    return checked(what, [&] {
      return plan_->run(feed, [&](std::size_t k, const std::map<std::string, HostTensor>& ins) {
        sim::Device& d = *devices_.at(k);
        for (const auto& [name, t] : ins) d.set_input(name, t);
        sim::RunOptions options;
        options.dump_layers = dump_layers;
        d.run(options);
        std::map<std::string, HostTensor> o;
        for (const auto& t : program_.segments[k].tensors) {
          if (t.role == TensorRole::kOutput) o[t.name] = d.output(t.name);
        }
        return o;
      });
    });
  }

  static std::vector<std::string> names(const std::vector<PlanValue>& values) {
    std::vector<std::string> out;
    for (const auto& v : values) out.push_back(v.name);
    return out;
  }
  static Value value_of(const at::Tensor& x, const PlanValue& v) {
    Value out;
    if (x.is_floating_point()) {
      out.is_float = true;
      out.reals = float_values(x);
      return out;
    }
    TORCH_CHECK(!v.is_float, "dla.SegmentedDevice.run: input '", v.name, "' is a float input; give floats");
    out.ints = qat::host_tensor(x, v.dtype, v.frac, dla_shape(x));
    return out;
  }
  static at::Tensor tensor_of(const Value& v) { return v.is_float ? float_tensor(v.reals) : long_tensor(v.ints); }

  std::string engine_;
  SegmentedProgram program_;
  std::unique_ptr<HostPlan> plan_;
  std::vector<std::unique_ptr<sim::Device>> devices_;
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(dla, m) {
  m.class_<SimDevice>("Device")
      .def(torch::init<std::string, std::string>())
      .def("engine", &SimDevice::engine)
      .def("input_names", &SimDevice::input_names)
      .def("output_names", &SimDevice::output_names)
      .def("tensor_info", &SimDevice::tensor_info)
      .def("hw_list", &SimDevice::hw_list)
      .def("run", &SimDevice::run)
      .def("last_stats", &SimDevice::last_stats)
      .def("run_layers", &SimDevice::run_layers)
      .def("trace", &SimDevice::trace);
  m.class_<SegmentedSimDevice>("SegmentedDevice")
      .def(torch::init<std::string, std::string>())
      .def("engine", &SegmentedSimDevice::engine)
      .def("input_names", &SegmentedSimDevice::input_names)
      .def("output_names", &SegmentedSimDevice::output_names)
      .def("tensor_info", &SegmentedSimDevice::tensor_info)
      .def("run", &SegmentedSimDevice::run)
      .def("run_layers", &SegmentedSimDevice::run_layers)
      .def("trace", &SegmentedSimDevice::trace);
}

}  // namespace dla::qat
