// host_segments.cpp — segmented programs: the file (libtorch's zip container) and the host
// plan that runs device segments, the export's float modules and the quantizers between
// them (dla/qat/host_segments.hpp).
#include "dla/qat/host_segments.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/qat/hw_options.hpp"
#include "dla/qat/ops.hpp"
#include "host_tensors.hpp"

namespace dla::qat {
namespace {

using nlohmann::json;
constexpr const char* kPlanRecord = "plan.json";
constexpr const char* kModelRecord = "model.dla.pt";
constexpr const char* kPlanFormat = "dlasim-host-plan";
constexpr const char* kDigestRecord = "digest.json";

std::string segment_record(std::size_t k) { return "segment" + std::to_string(k) + ".dlab"; }

std::string first_line(const char* what) {
  const std::string s(what);
  return s.substr(0, s.find('\n'));
}

/// The reader of libtorch's container over bytes in memory.
class MemoryReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryReader(const std::vector<std::uint8_t>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t k = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, k);
    return k;
  }

 private:
  const std::vector<std::uint8_t>& bytes_;
};

std::vector<std::uint8_t> record(caffe2::serialize::PyTorchStreamReader& zip, const std::string& name,
                                 const std::string& path) {
  if (!zip.hasRecord(name)) throw Error(path + ": segmented program without " + name);
  auto [data, size] = zip.getRecord(name);
  const auto* p = static_cast<const std::uint8_t*>(data.get());
  return std::vector<std::uint8_t>(p, p + size);
}

// ---- the plan ------------------------------------------------------------------------

/// Field access with errors naming the plan entry and the field.
const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw Error(where + ": missing \"" + key + "\"");
  return j[key];
}

std::string text(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_string()) throw Error(where + ": \"" + key + "\" must be a string");
  return v.get<std::string>();
}

std::vector<std::string> names(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_array()) throw Error(where + ": \"" + key + "\" must be an array of names");
  std::vector<std::string> out;
  for (const json& e : v) {
    if (!e.is_string()) throw Error(where + ": \"" + key + "\" must be an array of names");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<std::uint64_t> shape_of(const json& j, const std::string& where) {
  const json& v = field(j, "shape", where);
  if (!v.is_array() || v.size() > static_cast<std::size_t>(kMaxTensorRank)) {
    throw Error(where + ": \"shape\" must be an array of at most " + std::to_string(kMaxTensorRank) + " sizes");
  }
  std::vector<std::uint64_t> out;
  for (const json& e : v) {
    if (!e.is_number_unsigned() || e.get<std::uint64_t>() > (std::uint64_t{1} << 32)) {
      throw Error(where + ": \"shape\" must hold sizes up to 2^32");
    }
    out.push_back(e.get<std::uint64_t>());
  }
  return out;
}

std::optional<std::int64_t> clip_end(const json& clip, std::size_t k, const std::string& where) {
  if (clip[k].is_null()) return std::nullopt;
  if (!clip[k].is_number_integer()) throw Error(where + ": \"clip\" must be [lo, hi], integers or null");
  return clip[k].get<std::int64_t>();
}

PlanValue plan_value(const json& j, const std::string& where, bool with_clip) {
  PlanValue v;
  v.name = text(j, "name", where);
  const json kind = j.value("value", json("int"));  // a json default: any type compares, none throws
  if (kind != "int" && kind != "float") throw Error(where + ": \"value\" must be \"int\" or \"float\"");
  v.is_float = kind == "float";
  v.shape = shape_of(j, where);
  if (v.is_float) return v;
  const std::string dtype = text(j, "dtype", where);
  const auto t = parse_dtype(dtype);
  if (!t) throw Error(where + ": unknown dtype '" + dtype + "'");
  v.dtype = *t;
  const json& frac = field(j, "frac", where);
  if (!frac.is_number_integer() || frac.get<std::int64_t>() < kFracMin || frac.get<std::int64_t>() > kFracMax) {
    throw Error(where + ": \"frac\" must be an integer in [" + std::to_string(kFracMin) + ", " +
                std::to_string(kFracMax) + "]");
  }
  v.frac = frac.get<int>();
  if (with_clip && j.contains("clip")) {
    const json& clip = j["clip"];
    if (!clip.is_array() || clip.size() != 2) throw Error(where + ": \"clip\" must be [lo, hi]");
    v.clip_lo = clip_end(clip, 0, where);
    v.clip_hi = clip_end(clip, 1, where);
  }
  return v;
}

// ---- values --------------------------------------------------------------------------

at::Tensor reals_of(const HostTensor& t) {
  // q * 2^-frac as float32 (exact: |q| < 2^24), as the export's replay hands them to the host
  return long_tensor(t).to(at::kFloat) * std::ldexp(1.0, -t.frac);
}

/// The bridge's quantizer on a float value, as the prepared model's QuantizeLayer: NaN
/// and infinities are refused, naming the value.
HostTensor quantize_value(const at::Tensor& x, const PlanValue& v, const HwOptions& hw, const std::string& what) {
  if (!x.is_floating_point()) throw Error(what + " is not a float tensor");
  if (x.sizes().vec() != torch_sizes(v.shape)) {
    throw Error(what + " has shape " + shape_string(std::vector<std::uint64_t>(x.sizes().begin(), x.sizes().end())) +
                ", the plan expects " + shape_string(v.shape));
  }
  const std::int64_t bad = at::isfinite(x).logical_not().sum().item<std::int64_t>();
  if (bad != 0) {
    throw Error(what + ": " + std::to_string(bad) + " non-finite value(s) (NaN or inf) of " +
                std::to_string(x.numel()) + ", which have no integer");
  }
  const QResult r = quantize(x, QFormat{v.dtype, v.frac}, hw, Clip{v.clip_lo, v.clip_hi});
  // y * 2^frac is the integer exactly (a power-of-two scaling of q * 2^-frac).
  return host_tensor((r.y.to(at::kDouble) * std::ldexp(1.0, v.frac)).to(at::kLong), v.dtype, v.frac, v.shape);
}

}  // namespace

// ---- the file --------------------------------------------------------------------------

bool is_segmented_program(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_regular_file(path, kMaxFileBytes, "file");
  } catch (const Error&) {
    return false;
  }
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K' || bytes[2] != 3 || bytes[3] != 4) return false;
  try {
    caffe2::serialize::PyTorchStreamReader zip(std::make_shared<MemoryReader>(bytes));
    return zip.hasRecord(kPlanRecord);
  } catch (const std::exception&) {
    return false;
  }
}

SegmentedProgram read_segmented_program(const std::string& path, const ReadOptions& options) {
  const std::vector<std::uint8_t> bytes = read_regular_file(path, kMaxFileBytes, "segmented program");
  SegmentedProgram p;
  p.path = path;
  try {
    caffe2::serialize::PyTorchStreamReader zip(std::make_shared<MemoryReader>(bytes));
    // Every record's CRC-32 (the container's own are not checked when reading).
    const auto digest_bytes = record(zip, kDigestRecord, path);
    json digest;
    try {
      digest = json::parse(digest_bytes.begin(), digest_bytes.end());
    } catch (const json::exception&) {
      throw Error(path + ": damaged segmented program: " + kDigestRecord + " is not valid JSON");
    }
    auto checked_record = [&](const std::string& name) {
      auto data = record(zip, name, path);
      if (!digest.is_object() || !digest.contains(name) || !digest[name].is_number_unsigned() ||
          digest[name].get<std::uint32_t>() != crc32(data.data(), data.size())) {
        throw Error(path + ": damaged segmented program: " + name + " does not match its CRC-32");
      }
      return data;
    };
    if (!digest.is_object()) throw Error(path + ": damaged segmented program: " + kDigestRecord + " is not an object");
    for (const auto& [name, crc] : digest.items()) {
      if (!zip.hasRecord(name)) throw Error(path + ": damaged segmented program: " + name + " is missing");
    }
    const auto plan = checked_record(kPlanRecord);
    p.plan_json.assign(plan.begin(), plan.end());
    p.model = checked_record(kModelRecord);
    for (std::size_t k = 0; zip.hasRecord(segment_record(k)); ++k) {
      const auto seg = checked_record(segment_record(k));
      try {
        p.segments.push_back(parse_program(seg.data(), seg.size(), options));
      } catch (const Error& e) {
        throw Error(path + ": " + segment_record(k) + ": " + e.what());
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // c10::Error and the others libtorch's reader throws
    throw Error(path + ": not a readable segmented program: " + first_line(e.what()));
  }
  return p;
}

void write_segmented_program(const std::string& path, const SegmentedProgram& p) {
  std::string bytes;
  {
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
    json digest = json::object();
    auto write = [&](const std::string& name, const void* data, std::size_t n) {
      zip.writeRecord(name, data, n);
      digest[name] = crc32(static_cast<const std::uint8_t*>(data), n);
    };
    write(kPlanRecord, p.plan_json.data(), p.plan_json.size());
    for (std::size_t k = 0; k < p.segments.size(); ++k) {
      const auto seg = serialize_program(p.segments[k]);
      write(segment_record(k), seg.data(), seg.size());
    }
    write(kModelRecord, p.model.data(), p.model.size());
    const std::string digest_text = digest.dump(1);
    zip.writeRecord(kDigestRecord, digest_text.data(), digest_text.size());
    zip.writeEndOfFile();
  }
  write_file_atomically(path, bytes, "segmented program");
}

// ---- the plan ----------------------------------------------------------------------------

struct HostPlan::Impl {
  std::vector<PlanValue> inputs, outputs;
  std::vector<PlanStep> steps;
  HwOptions hw;
  torch::jit::Module model;
  mutable std::map<std::string, torch::jit::Module> modules;  // forward() is not const
};

HostPlan::~HostPlan() = default;
HostPlan::HostPlan(HostPlan&&) noexcept = default;
HostPlan& HostPlan::operator=(HostPlan&&) noexcept = default;
const std::vector<PlanValue>& HostPlan::inputs() const { return impl_->inputs; }
const std::vector<PlanValue>& HostPlan::outputs() const { return impl_->outputs; }
const std::vector<PlanStep>& HostPlan::steps() const { return impl_->steps; }

// The plan's errors name plan.json and the part that is wrong; the handler at the end adds
// the file the program came from.
HostPlan::HostPlan(const SegmentedProgram& program) try : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  json plan;
  try {
    plan = json::parse(program.plan_json);
  } catch (const json::exception& e) {
    throw Error(std::string("plan.json is not valid JSON: ") + e.what());
  }
  if (!plan.is_object() || plan.value("format", json()) != kPlanFormat) {  // json defaults: a wrong type is no throw
    throw Error(std::string("plan.json: not a host plan (\"format\": \"") + kPlanFormat + "\" missing)");
  }
  if (plan.value("version", json()) != 1) throw Error("plan.json: unsupported version (this build reads version 1)");
  const json& hw = field(plan, "hw_list", "plan.json");
  try {
    m.hw = HwOptions::from_list(hw.get<std::vector<std::int64_t>>());
  } catch (const std::exception& e) {
    throw Error(std::string("plan.json: \"hw_list\": ") + e.what());
  }
  try {
    std::istringstream in(std::string(program.model.begin(), program.model.end()));
    m.model = torch::jit::load(in);
  } catch (const std::exception& e) {  // c10::Error, torch::jit::ErrorReport, ...
    throw Error(std::string("model.dla.pt: cannot read the export the host modules come from: ") + first_line(e.what()));
  }

  std::set<std::string> known;  // values made so far, in run order
  auto define = [&](const std::string& name, const std::string& where) {
    if (!known.insert(name).second) throw Error(where + ": the value '" + name + "' is made twice");
  };
  auto need = [&](const std::vector<std::string>& reads, const std::string& where) {
    for (const auto& r : reads) {
      if (!known.count(r)) throw Error(where + ": reads '" + r + "', which no earlier step or input makes");
    }
  };
  for (const json& j : field(plan, "inputs", "plan.json")) {
    m.inputs.push_back(plan_value(j, "plan.json input", true));
    define(m.inputs.back().name, "plan.json input");
  }
  std::vector<bool> segment_used(program.segments.size(), false);
  for (const json& j : field(plan, "steps", "plan.json")) {
    PlanStep s;
    const std::string kind = text(j, "kind", "plan.json step");
    if (kind == "device") {
      s.kind = PlanStep::Kind::kDevice;
      const json& k = field(j, "segment", "plan.json device step");
      if (!k.is_number_unsigned() || k.get<std::uint64_t>() >= program.segments.size()) {
        throw Error("plan.json: a device step names segment " + k.dump() + ", the file has " +
                    std::to_string(program.segments.size()));
      }
      s.segment = k.get<std::size_t>();
      if (segment_used[s.segment]) throw Error("plan.json: segment " + std::to_string(s.segment) + " runs twice");
      segment_used[s.segment] = true;
      s.name = "segment " + std::to_string(s.segment);
      const std::string where = "plan.json " + s.name;
      s.inputs = names(j, "inputs", where);
      s.outputs = names(j, "outputs", where);
      need(s.inputs, where);
      const Program& p = program.segments[s.segment];
      std::size_t n_in = 0, n_out = 0;
      for (const auto& t : p.tensors) (t.role == TensorRole::kInput ? n_in : n_out) += t.role != TensorRole::kIntermediate;
      if (n_in != s.inputs.size() || n_out != s.outputs.size()) {
        throw Error(where + ": the plan lists " + std::to_string(s.inputs.size()) + " inputs and " +
                    std::to_string(s.outputs.size()) + " outputs, its program has " + std::to_string(n_in) + " and " +
                    std::to_string(n_out));
      }
      for (const auto& o : s.outputs) {
        const TensorDesc* t = p.find_tensor(o);
        if (t == nullptr || t->role != TensorRole::kOutput) throw Error(where + ": '" + o + "' is not an output of its program");
        define(o, where);
      }
      for (const auto& i : s.inputs) {
        const TensorDesc* t = p.find_tensor(i);
        if (t == nullptr || t->role != TensorRole::kInput) throw Error(where + ": '" + i + "' is not an input of its program");
      }
    } else if (kind == "host") {
      s.kind = PlanStep::Kind::kHost;
      s.name = text(j, "name", "plan.json host step");
      const std::string where = "plan.json host step '" + s.name + "'";
      s.module = text(j, "module", where);
      s.inputs = names(j, "inputs", where);
      need(s.inputs, where);
      if (!m.model.hasattr(s.module) || !m.model.attr(s.module).isModule()) {
        throw Error(where + ": the export has no host module '" + s.module + "'");
      }
      m.modules.emplace(s.module, m.model.attr(s.module).toModule());
      define(s.name, where);
    } else if (kind == "quantize") {
      s.kind = PlanStep::Kind::kQuantize;
      s.value = plan_value(j, "plan.json quantize step", true);
      s.name = s.value.name;
      const std::string where = "plan.json quantize step '" + s.name + "'";
      s.inputs = {text(j, "input", where)};
      need(s.inputs, where);
      define(s.name, where);
    } else {
      throw Error("plan.json: unknown step kind '" + kind + "' (device, host, quantize)");
    }
    m.steps.push_back(std::move(s));
  }
  for (std::size_t k = 0; k < segment_used.size(); ++k) {
    if (!segment_used[k]) throw Error("plan.json: segment " + std::to_string(k) + " is never run");
  }
  for (const json& j : field(plan, "outputs", "plan.json")) {
    m.outputs.push_back(plan_value(j, "plan.json output", false));
    need({m.outputs.back().name}, "plan.json output");
  }
} catch (const Error& e) {
  if (program.path.empty()) throw;
  throw Error(program.path + ": " + e.what());
}

std::map<std::string, Value> HostPlan::run(const std::map<std::string, Value>& given, const RunSegment& device,
                                           std::vector<double>* step_seconds) const {
  const Impl& m = *impl_;
  std::map<std::string, Value> env;
  std::map<std::string, at::Tensor> floats;  // host values as the modules made them
  for (const auto& in : m.inputs) {
    const auto it = given.find(in.name);
    if (it == given.end()) throw Error("missing input '" + in.name + "'");
    const Value& v = it->second;
    if (in.is_float) {
      if (!v.is_float) throw Error("input '" + in.name + "' is a float input; give floats");
      if (v.reals.shape != in.shape) {
        throw Error("input '" + in.name + "' has shape " + shape_string(v.reals.shape) + ", the model takes " +
                    shape_string(in.shape));
      }
      floats[in.name] = float_tensor(v.reals);
      env[in.name] = v;
    } else if (v.is_float) {  // floats for an integer input: quantized as the model does
      env[in.name].ints = quantize_value(float_tensor(v.reals), in, m.hw, "input '" + in.name + "'");
    } else {
      if (v.ints.shape != in.shape || v.ints.dtype != in.dtype || !v.ints.is_consistent()) {
        throw Error("input '" + in.name + "' must be " + std::string(dtype_info(in.dtype).name) + " " +
                    shape_string(in.shape) + " integers, got " + std::string(dtype_info(v.ints.dtype).name) + " " +
                    shape_string(v.ints.shape));
      }
      env[in.name] = v;
      env[in.name].ints.frac = in.frac;
    }
  }
  for (const auto& [name, v] : given) {
    if (!env.count(name)) throw Error("unknown input '" + name + "'");
  }
  torch::NoGradGuard no_grad;
  for (const PlanStep& s : m.steps) {
    const auto start = std::chrono::steady_clock::now();
    if (s.kind == PlanStep::Kind::kDevice) {
      std::map<std::string, HostTensor> ins;
      for (const auto& i : s.inputs) ins[i] = env.at(i).ints;
      auto outs = device(s.segment, ins);
      for (const auto& o : s.outputs) {
        auto it = outs.find(o);
        if (it == outs.end()) throw Error(s.name + ": the device returned no output '" + o + "'");
        env[o].ints = std::move(it->second);
      }
    } else if (s.kind == PlanStep::Kind::kHost) {
      std::vector<c10::IValue> args;
      for (const auto& i : s.inputs) {
        const Value& v = env.at(i);
        args.emplace_back(v.is_float ? floats.at(i) : reals_of(v.ints));
      }
      c10::IValue out;
      try {
        out = m.modules.at(s.module).forward(args);
      } catch (const std::exception& e) {  // c10::Error and the script interpreter's errors
        throw Error("host step '" + s.name + "' (" + s.module + "): " + first_line(e.what()));
      }
      if (!out.isTensor()) throw Error("host step '" + s.name + "' returned no tensor");
      floats[s.name] = out.toTensor();
      env[s.name].is_float = true;
      env[s.name].reals = float_values(floats[s.name]);
    } else {
      const std::string& src = s.inputs[0];
      if (!floats.count(src)) throw Error("quantize step '" + s.name + "': '" + src + "' is not a float value");
      env[s.name].ints = quantize_value(floats.at(src), s.value, m.hw, "the output of float node '" + src + "'");
    }
    if (step_seconds != nullptr) {
      step_seconds->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  return env;
}

std::map<std::string, FloatTensor> float_reference_values(const std::string& export_path,
                                                          const std::map<std::string, FloatTensor>& inputs) {
  torch::jit::Module m;
  json graph;
  try {
    m = torch::jit::load(export_path);
    graph = json::parse(m.attr("graph_json").toStringRef());
  } catch (const std::exception& e) {
    throw Error(export_path + ": cannot read the export: " + first_line(e.what()));
  }
  if (!graph.contains("float_reference")) return {};
  const std::string where = export_path + ": float_reference";
  const json& ref = graph["float_reference"];
  const std::string module = text(ref, "module", where);
  const std::vector<std::string> values = names(ref, "values", where);
  if (!m.hasattr(module) || !m.attr(module).isModule()) throw Error(where + ": the export holds no module '" + module + "'");
  std::vector<c10::IValue> args;
  for (const std::string& name : names(graph, "inputs", export_path)) {
    const auto it = inputs.find(name);
    if (it == inputs.end()) throw Error(where + ": no value for input '" + name + "'");
    args.emplace_back(float_tensor(it->second));
  }
  torch::NoGradGuard no_grad;
  c10::IValue out;
  try {
    out = m.attr(module).toModule().forward(args);
  } catch (const std::exception& e) {
    throw Error(where + ": the float model failed: " + first_line(e.what()));
  }
  if (!out.isTuple() || out.toTupleRef().elements().size() != values.size()) {
    throw Error(where + ": the float model returned " + std::string(out.isTuple() ? "another number of" : "no tuple of") +
                " tensors (it names " + std::to_string(values.size()) + ")");
  }
  std::map<std::string, FloatTensor> result;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const c10::IValue& v = out.toTupleRef().elements()[i];
    if (!v.isTensor()) throw Error(where + ": value '" + values[i] + "' is not a tensor");
    result[values[i]] = float_values(v.toTensor());
  }
  return result;
}

}  // namespace dla::qat
