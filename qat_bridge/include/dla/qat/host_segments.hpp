// dla/qat/host_segments.hpp — models with float parts: device segments and host steps in
// one run (`dla run`, `dla signoff`, dlasim.Device on a segmented program).
//
// `dla compile net.dla.pt` splits an export whose plan leaves layers in float into device
// segments (each an ordinary program, .dlab) and a host plan. The segmented program file
// is libtorch's zip container (the format of torch.jit.save) holding:
//   plan.json          the host plan, below
//   segment<K>.dlab    device segment K, a complete program for the model's hardware config
//   model.dla.pt       the export the host modules come from (dlasim.export, unchanged)
//   digest.json        {"<record>": CRC-32} of every record above, checked when reading
//
// plan.json:
//   {"format": "dlasim-host-plan", "version": 1,
//    "hw_list": [...],                       # the export's: the rounding of quantize steps
//    "inputs":  [{"name", "value": "int", "dtype", "frac", "shape", "clip": [lo, hi]} |
//                {"name", "value": "float", "shape"}],          # in call order
//    "outputs": [{"name", "value": "int", "dtype", "frac", "shape"} | {"name", "value": "float", "shape"}],
//    "steps": [{"kind": "device", "segment": K, "inputs": [names], "outputs": [names]} |
//              {"kind": "host", "name", "module", "inputs": [names], "source"} |
//              {"kind": "quantize", "name", "input", "dtype", "frac", "shape", "clip": [lo, hi]}]}
//
// A run keeps every value by name. A device step binds its segment's inputs by name and
// stores its outputs; a host step calls the export's traced module with the reals of its
// integer inputs (q * 2^-frac as float32, exact) and its float inputs; a quantize step
// turns a float value into integers with the bridge's dla::quantize (the op the prepared
// model runs), a NaN or infinity being an error naming the value. The result equals the
// export's integer replay (dlasim.integer_forward) and so the prepared model's eval forward.
// The header is free of libtorch; the implementation is in the op library.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dla/program.hpp"
#include "dla/tensor.hpp"

namespace dla::qat {

/// A float tensor of the host side (C order over shape).
struct FloatTensor {
  std::vector<std::uint64_t> shape;
  std::vector<float> values;
};

/// A value of a segmented run: integers (a device tensor) or reals (a host tensor).
struct Value {
  bool is_float = false;
  HostTensor ints;
  FloatTensor reals;
};

/// An input or output of the plan.
struct PlanValue {
  std::string name;
  bool is_float = false;
  DType dtype = DType::I8;  ///< integer values only
  int frac = 0;
  std::vector<std::uint64_t> shape;
  std::optional<std::int64_t> clip_lo, clip_hi;  ///< integer inputs: the quantizer's clip
};

struct PlanStep {
  enum class Kind { kDevice, kHost, kQuantize };
  Kind kind = Kind::kDevice;
  std::string name;                  ///< host and quantize: the value made; device: "segment K"
  std::size_t segment = 0;           ///< device
  std::string module;                ///< host: the export's attribute holding the traced module
  std::vector<std::string> inputs;   ///< values read
  std::vector<std::string> outputs;  ///< device: the values written
  PlanValue value;                   ///< quantize: the integers made
};

struct SegmentedProgram {
  std::string plan_json;
  std::vector<Program> segments;
  std::vector<std::uint8_t> model;  ///< the export's bytes (model.dla.pt)
  std::string path;  ///< the file it was read from (empty when built in memory): errors name it
};

/// Whether `path` is a segmented program (a zip archive with plan.json). Opens only
/// regular files.
bool is_segmented_program(const std::string& path);
/// Reads a segmented program; every segment is checked like any program file (and
/// against `options`). Throws dla::Error naming the file and the part that is wrong.
SegmentedProgram read_segmented_program(const std::string& path, const ReadOptions& options = {});
/// Writes it atomically (temporary file, then rename).
void write_segmented_program(const std::string& path, const SegmentedProgram& program);

class HostPlan {
 public:
  /// Parses and checks the plan against the segments (every device step's inputs and
  /// outputs are its program's, with the same dtype, frac and shape) and loads the
  /// host modules. Throws dla::Error naming what is wrong.
  explicit HostPlan(const SegmentedProgram& program);
  ~HostPlan();
  HostPlan(HostPlan&&) noexcept;
  HostPlan& operator=(HostPlan&&) noexcept;

  const std::vector<PlanValue>& inputs() const;
  const std::vector<PlanValue>& outputs() const;
  const std::vector<PlanStep>& steps() const;

  /// Runs device segment `segment` on `inputs` (by tensor name); returns its outputs.
  using RunSegment =
      std::function<std::map<std::string, HostTensor>(std::size_t segment, const std::map<std::string, HostTensor>& inputs)>;
  /// Runs the plan. Integer inputs are integers of their dtype, or floats that the host
  /// quantizes as the model does; float inputs are floats. Returns every value of the run
  /// by name (outputs() names the model's outputs); `step_seconds` (optional) receives
  /// the wall time of each step.
  std::map<std::string, Value> run(const std::map<std::string, Value>& inputs, const RunSegment& device,
                                   std::vector<double>* step_seconds = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The values of the float model an export holds when written with
/// dlasim.export(..., float_reference=True) (the prepared model run with floats: what SQNR
/// is measured against), on `inputs` (by the export's input names, floats), by node name.
/// Empty when the export holds none. Throws dla::Error naming what is wrong.
std::map<std::string, FloatTensor> float_reference_values(const std::string& export_path,
                                                          const std::map<std::string, FloatTensor>& inputs);

}  // namespace dla::qat
