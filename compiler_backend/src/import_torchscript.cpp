// The QAT export importer (dla/compiler/qat_export.hpp): the only compiler TU that
// includes libtorch. It reads the TorchScript container and translates the export's graph
// into the graph file's document, which graph_io parses (one reader for both inputs).
#include <torch/script.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/qat_export.hpp"
#include "segments.hpp"
#include "dla/error.hpp"
#include "dla/program.hpp"

namespace dla::compiler {
namespace {

using nlohmann::json;

/// The first line of a libtorch message (its later lines are a C++ backtrace).
std::string first_line(const char* what) {
  const std::string s(what);
  return s.substr(0, s.find('\n'));
}

/// The item CRC-32 of dlasim.integrity: "<dtype><shape>" then the elements' bytes.
std::uint32_t tensor_crc(const at::Tensor& tensor) {
  static const std::map<at::ScalarType, std::string> names{
      {at::kChar, "i8"}, {at::kByte, "u8"}, {at::kShort, "i16"}, {at::kInt, "i32"}, {at::kLong, "i64"},
      {at::kHalf, "f16"}, {at::kFloat, "f32"}, {at::kDouble, "f64"}, {at::kBool, "b1"}};
  const at::Tensor t = tensor.contiguous();
  const auto name = names.find(t.scalar_type());
  std::string head = (name == names.end() ? std::string(c10::toString(t.scalar_type())) : name->second) + "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) head += (i ? ", " : "") + std::to_string(t.size(i));
  head += "]";
  std::vector<std::uint8_t> bytes(head.begin(), head.end());
  const auto* data = static_cast<const std::uint8_t*>(t.data_ptr());
  bytes.insert(bytes.end(), data, data + t.numel() * static_cast<std::int64_t>(t.element_size()));
  return crc32(bytes.data(), bytes.size());
}

/// The export's digest (dlasim.integrity): the graph's CRC-32 and every tensor's.
struct Digest {
  std::uint32_t graph = 0;
  std::map<std::string, std::uint32_t> tensors;
};

Digest read_digest(const torch::jit::Module& m, const std::string& path) {
  if (!m.hasattr("digest_json") || !m.attr("digest_json").isString()) {
    throw Error(path + ": damaged or altered export: it has no digest_json (export it again with this dlasim)");
  }
  Digest d;
  try {
    const json j = json::parse(m.attr("digest_json").toStringRef());
    if (j.at("algorithm") != "crc32") throw Error("");
    d.graph = j.at("graph").get<std::uint32_t>();
    for (const auto& [key, crc] : j.at("tensors").items()) d.tensors[key] = crc.get<std::uint32_t>();
  } catch (const std::exception&) {
    throw Error(path + ": damaged or altered export: its digest_json is not a crc32 digest");
  }
  return d;
}

at::Tensor buffer(const torch::jit::Module& m, const json& ref, const std::string& where, const std::string& path,
                  const Digest& digest) {
  if (!ref.is_object() || !ref.contains("tensor") || !ref["tensor"].is_string()) {
    throw Error(path + ": " + where + ": expected {\"tensor\": key}");
  }
  const std::string key = ref["tensor"].get<std::string>();
  if (!m.hasattr(key)) throw Error(path + ": " + where + ": tensor '" + key + "' is not in the export");
  const c10::IValue v = m.attr(key);
  if (!v.isTensor()) throw Error(path + ": " + where + ": '" + key + "' is not a tensor");
  const auto want = digest.tensors.find(key);
  if (want == digest.tensors.end() || tensor_crc(v.toTensor()) != want->second) {
    throw Error(path + ": damaged or altered export: tensor '" + key + "' does not match its CRC-32");
  }
  return v.toTensor();
}

/// A device node of the export as a graph-file node, with its weights bytes (the graph
/// file's weights file holds them; offsets are assigned when a document is assembled).
struct DeviceNode {
  json node;
  std::vector<char> weights;
};

bool is_host_op(const std::string& op) { return op == "host" || op == "quantize" || op == "float_input"; }

DeviceNode translate_node(const json& n, const torch::jit::Module& m, const std::string& path, const Digest& digest) {
  const std::string name = n["name"].get<std::string>();
  const std::string op = n["op"].get<std::string>();
  const std::string where = "node '" + name + "'";
  DeviceNode d{{{"name", name}, {"op", op}}, {}};
  json& out = d.node;
  if (op == "input") {
    for (const char* k : {"dtype", "frac", "shape"}) {
      if (n.contains(k)) out[k] = n[k];
    }
    return d;
  }
  if (n.contains("inputs")) out["inputs"] = n["inputs"];
  for (const char* k : {"out_channels", "out_features", "kernel", "stride", "padding", "dilation", "groups",
                        "weight_dtype", "weight_frac", "out", "function", "alpha", "table"}) {
    if (n.contains(k)) out[k] = n[k];
  }
  if (op == "conv2d" || op == "linear") {
    if (!n.contains("weights")) throw Error(path + ": " + where + ": missing \"weights\"");
    const at::Tensor w = buffer(m, n["weights"], where + " weights", path, digest).to(at::kChar).contiguous().reshape(-1);
    const auto* bytes = reinterpret_cast<const char*>(w.data_ptr<std::int8_t>());
    d.weights.assign(bytes, bytes + w.numel());
    out["weights"] = {{"offset", 0}, {"count", w.numel()}};
    if (n.contains("bias")) {
      const at::Tensor b = buffer(m, n["bias"], where + " bias", path, digest).to(at::kLong).contiguous();
      out["bias"] = std::vector<std::int64_t>(b.data_ptr<std::int64_t>(), b.data_ptr<std::int64_t>() + b.numel());
    }
  }
  return d;
}

/// A graph-file document of `nodes` (in order) and its weights bytes, parsed by the one
/// graph reader. `path` names the export in errors.
Graph parse_document(const std::vector<const DeviceNode*>& nodes, const json& outputs, const std::string& path) {
  std::vector<char> weights;
  json list = json::array();
  for (const DeviceNode* d : nodes) {
    json n = d->node;
    if (n.contains("weights")) {
      n["weights"]["offset"] = weights.size();
      weights.insert(weights.end(), d->weights.begin(), d->weights.end());
    }
    list.push_back(std::move(n));
  }
  // The weights travel as the graph file's weights file, read from memory.
  const json doc = {{"format", "dlasim-graph"}, {"version", 1}, {"weights_file", "weights"}, {"nodes", list},
                    {"outputs", outputs}};
  return parse_graph(doc.dump(), path, [&](const std::string&) { return std::make_pair(path, std::move(weights)); });
}

}  // namespace

QatExport import_qat_export(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": not a regular file");
  torch::jit::Module m;
  try {
    m = torch::jit::load(path);
  } catch (const std::exception& e) {  // c10::Error, torch::jit::ErrorReport (damaged code), ...
    throw Error(path + ": cannot read it as a TorchScript file: " + first_line(e.what()));
  }
  try {
    if (!m.hasattr("graph_json") || !m.attr("graph_json").isString()) {
      throw Error(path + ": a TorchScript file, but not a dlasim QAT export (it has no graph_json)");
    }
    const Digest digest = read_digest(m, path);
    const std::string& graph_text = m.attr("graph_json").toStringRef();
    if (crc32(reinterpret_cast<const std::uint8_t*>(graph_text.data()), graph_text.size()) != digest.graph) {
      throw Error(path + ": damaged or altered export: the graph's CRC-32 does not match its digest");
    }
    json g;
    try {
      g = json::parse(graph_text);
    } catch (const json::exception& e) {
      throw Error(path + ": the export's graph_json is not valid JSON: " + e.what());
    }
    if (!g.is_object() || g.value("format", json()) != "dlasim-qat-export") {  // json defaults: a wrong type is no throw
      throw Error(path + ": not a dlasim QAT export (\"format\": \"dlasim-qat-export\" missing)");
    }
    if (g.value("version", json()) != 1) throw Error(path + ": unsupported export version (this build reads version 1)");
    if (!g.contains("nodes") || !g["nodes"].is_array() || !g.contains("outputs")) {
      throw Error(path + ": the export's graph has no \"nodes\" array or no \"outputs\"");
    }
    std::vector<DeviceNode> translated;
    translated.reserve(g["nodes"].size());
    bool host_parts = false;
    for (const json& n : g["nodes"]) {
      if (!n.is_object() || !n.contains("name") || !n["name"].is_string() || !n.contains("op") ||
          !n["op"].is_string()) {
        throw Error(path + ": an export node needs a string \"name\" and \"op\"");
      }
      if (is_host_op(n["op"].get<std::string>())) {
        host_parts = true;
        translated.push_back({n, {}});  // kept as the export has it: the host plan reads it
        continue;
      }
      translated.push_back(translate_node(n, m, path, digest));
    }
    QatExport result;
    if (host_parts) {
      const Segmentation split = split_at_host_nodes(g, path);
      for (const auto& seg : split.segments) {
        std::vector<const DeviceNode*> nodes;
        for (std::size_t i : seg.nodes) nodes.push_back(&translated[i]);
        std::vector<DeviceNode> inputs;
        inputs.reserve(seg.inputs.size());
        for (const json& in : seg.inputs) inputs.push_back({in, {}});
        std::vector<const DeviceNode*> all;
        for (const auto& in : inputs) all.push_back(&in);
        all.insert(all.end(), nodes.begin(), nodes.end());
        result.segments.push_back(parse_document(all, seg.outputs, path));
      }
      result.host_plan = split.plan.dump(1);
    } else {
      std::vector<const DeviceNode*> all;
      for (const auto& d : translated) all.push_back(&d);
      result.graph = parse_document(all, g["outputs"], path);
    }
    result.hw_json = g.contains("hw") ? g["hw"].dump() : "{}";
    result.hw_identity = g.contains("hw_identity") && g["hw_identity"].is_string() ? g["hw_identity"].get<std::string>() : "";
    result.plan = g.contains("plan") && g["plan"].is_string() ? g["plan"].get<std::string>() : "";
    return result;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // whatever libtorch throws on a damaged container
    throw Error(path + ": malformed export: " + first_line(e.what()));
  }
}

}  // namespace dla::compiler
