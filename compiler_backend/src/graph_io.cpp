// Graph files: JSON structure plus a binary weights file.
#include "dla/compiler/graph_io.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <tuple>
#include <utility>
#include <nlohmann/json.hpp>

#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/suggest.hpp"

namespace dla::compiler {
namespace {

using nlohmann::json;
constexpr std::uint64_t kMaxGraphFileBytes = std::uint64_t{1} << 30;

// The schema, in one place: every field each object may have. A field not listed is an
// error; which fields are optional, and their defaults, is documented in graph_io.hpp.
const std::vector<std::string_view> kTopFields = {"format", "version", "weights_file", "nodes", "outputs"};
const std::vector<std::string_view> kOutFields = {"dtype", "frac", "clip"};
const std::vector<std::string_view> kWeightsFields = {"offset", "count"};

/// The fields a node of `op` may have; empty for an unknown op.
std::vector<std::string_view> node_fields(const std::string& op) {
  std::vector<std::string_view> f = {"name", "op"};
  auto add = [&](std::initializer_list<std::string_view> more) { f.insert(f.end(), more); };
  if (op == "input") {
    add({"dtype", "frac", "shape"});
  } else if (op == "conv2d") {
    add({"inputs", "out_channels", "kernel", "stride", "padding", "dilation", "groups", "weight_dtype", "weights",
         "weight_frac", "bias", "out"});
  } else if (op == "linear") {
    add({"inputs", "out_features", "weight_dtype", "weights", "weight_frac", "bias", "out"});
  } else if (op == "add" || op == "global_avg_pool") {
    add({"inputs", "out"});
  } else if (op == "max_pool") {
    add({"inputs", "kernel", "stride", "padding"});
  } else if (op == "avg_pool") {
    add({"inputs", "kernel", "stride", "padding", "out"});
  } else if (op == "concat" || op == "upsample2x" || op == "flatten") {
    add({"inputs"});
  } else if (op == "lut") {
    add({"inputs", "function", "alpha", "table", "out"});
  } else {
    return {};
  }
  return f;
}

/// Whether some op has the field `key` (then a node of another op that has it is told
/// which fields its op takes, not offered a spelling).
bool some_op_has(const std::string& key) {
  for (const char* op : {"input", "conv2d", "linear", "add", "global_avg_pool", "max_pool", "avg_pool", "lut"}) {
    const auto f = node_fields(op);
    if (std::find(f.begin(), f.end(), key) != f.end()) return true;
  }
  return false;
}

std::vector<char> read_file(const std::string& path, const std::string& what) {
  const std::vector<std::uint8_t> bytes = read_regular_file(path, kMaxGraphFileBytes, what);
  return std::vector<char>(bytes.begin(), bytes.end());
}

class Reader {
 public:
  Reader(std::string path, std::vector<char> weights) : path_(std::move(path)), weights_(std::move(weights)) {}

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error(path_ + ": " + where + ": " + what);
  }

  /// Refuses a field of `obj` that `known` does not list (a typo would otherwise be
  /// ignored and its default used).
  void only_known(const json& obj, const std::string& where, const std::vector<std::string_view>& known) const {
    for (const auto& item : obj.items()) {
      if (std::find(known.begin(), known.end(), item.key()) == known.end()) {
        fail(where, "unknown field " + quote_for_message(item.key()) + unknown_name_hint(item.key(), known));
      }
    }
  }

  const json& field(const json& obj, const std::string& where, const char* key) const {
    if (!obj.is_object() || !obj.contains(key)) fail(where, std::string("missing field \"") + key + "\"");
    return obj.at(key);
  }
  std::int64_t integer(const json& v, const std::string& where, const char* what) const {
    if (!v.is_number_integer()) fail(where, std::string("\"") + what + "\" must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
      fail(where, std::string("\"") + what + "\" = " + std::to_string(v.get<std::uint64_t>()) + " is out of range");
    }
    return v.get<std::int64_t>();
  }
  int small_int(const json& v, const std::string& where, const char* what) const {
    const std::int64_t i = integer(v, where, what);
    if (i < -(1 << 24) || i > (1 << 24)) fail(where, std::string("\"") + what + "\" = " + std::to_string(i) + " is out of range");
    return static_cast<int>(i);
  }
  std::vector<std::int64_t> ints(const json& v, const std::string& where, const char* what, std::size_t want = 0) const {
    if (!v.is_array()) fail(where, std::string("\"") + what + "\" must be an array of integers");
    if (want && v.size() != want) fail(where, std::string("\"") + what + "\" must have " + std::to_string(want) + " entries");
    std::vector<std::int64_t> out;
    for (const auto& e : v) out.push_back(integer(e, where, what));
    return out;
  }
  DType dtype(const json& v, const std::string& where) const {
    if (!v.is_string()) fail(where, "dtype must be a string");
    const auto t = parse_dtype(v.get<std::string>());
    if (!t) fail(where, "unknown dtype " + quote_for_message(v.get<std::string>()) + " (i4, u4, i8, u8, i16)");
    return *t;
  }
  QuantSpec quant(const json& node, const std::string& where) const {
    const json& o = field(node, where, "out");
    if (!o.is_object()) fail(where, "\"out\" must be an object {\"dtype\", \"frac\", \"clip\"}");
    only_known(o, where + ".out", kOutFields);
    QuantSpec q;
    q.dtype = dtype(field(o, where + ".out", "dtype"), where + ".out");
    q.frac = small_int(field(o, where + ".out", "frac"), where + ".out", "frac");
    if (o.contains("clip")) {
      const json& c = o.at("clip");
      if (!c.is_array() || c.size() != 2) fail(where, "\"clip\" must be [lo, hi] (null for none)");
      if (!c[0].is_null()) q.clip_lo = integer(c[0], where, "clip");
      if (!c[1].is_null()) q.clip_hi = integer(c[1], where, "clip");
    }
    return q;
  }
  std::vector<std::int32_t> weights(const json& node, const std::string& where) {
    const json& w = field(node, where, "weights");
    std::vector<std::int32_t> out;
    if (w.is_array()) {
      for (const auto& v : w) out.push_back(small_int(v, where, "weights"));
      return out;
    }
    if (!w.is_object()) fail(where, "\"weights\" must be {\"offset\", \"count\"} or an array of integers");
    only_known(w, where + ".weights", kWeightsFields);
    const std::int64_t offset = integer(field(w, where, "offset"), where, "offset");
    const std::int64_t count = integer(field(w, where, "count"), where, "count");
    if (offset < 0 || count < 0 || static_cast<std::uint64_t>(offset) + static_cast<std::uint64_t>(count) > weights_.size()) {
      fail(where, "weights [" + std::to_string(offset) + ", +" + std::to_string(count) + ") lie outside the " +
                      std::to_string(weights_.size()) + "-byte weights file");
    }
    weights_used_ = std::max(weights_used_, static_cast<std::uint64_t>(offset + count));
    for (std::int64_t i = 0; i < count; ++i) out.push_back(static_cast<std::int8_t>(weights_[static_cast<std::size_t>(offset + i)]));
    return out;
  }
  ConvAttrs attrs(const json& node, const std::string& where, bool pool) const {
    ConvAttrs a;
    const auto k = ints(field(node, where, "kernel"), where, "kernel", 2);
    a.kernel_h = static_cast<int>(k[0]);
    a.kernel_w = static_cast<int>(k[1]);
    if (node.contains("stride")) {
      const auto s = ints(node["stride"], where, "stride", 2);
      a.stride_h = static_cast<int>(s[0]);
      a.stride_w = static_cast<int>(s[1]);
    } else if (pool) {
      a.stride_h = a.kernel_h;
      a.stride_w = a.kernel_w;
    }
    if (node.contains("padding")) {
      const auto p = ints(node["padding"], where, "padding", 4);
      a.pad_top = static_cast<int>(p[0]);
      a.pad_left = static_cast<int>(p[1]);
      a.pad_bottom = static_cast<int>(p[2]);
      a.pad_right = static_cast<int>(p[3]);
    }
    if (node.contains("dilation")) {
      const auto d = ints(node["dilation"], where, "dilation", 2);
      a.dilation_h = static_cast<int>(d[0]);
      a.dilation_w = static_cast<int>(d[1]);
    }
    if (node.contains("groups")) a.groups = small_int(node["groups"], where, "groups");
    for (std::int64_t v : {a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.dilation_h, a.dilation_w}) {
      if (v < 1 || v > 4096) fail(where, "kernel, stride and dilation must be in [1, 4096]");
    }
    return a;
  }

  /// Every byte of the weights file belongs to some node: extra bytes mean the file is
  /// not the one the graph was written with.
  void check_weights_used(const std::string& weights_path) const {
    if (weights_used_ != weights_.size()) {
      throw Error(weights_path + ": the weights file has " + std::to_string(weights_.size()) +
                  " bytes, but the graph's nodes use only the first " + std::to_string(weights_used_));
    }
  }

 private:
  std::string path_;
  std::vector<char> weights_;
  std::uint64_t weights_used_ = 0;
};

/// A node name becomes a tensor name in the program: 1..255 printable ASCII characters.
bool valid_node_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

}  // namespace

Graph load_graph(const std::string& json_path) {
  const auto text = read_file(json_path, "graph file");
  const auto dir = std::filesystem::path(json_path).parent_path();
  return parse_graph(std::string_view(text.data(), text.size()), json_path, [&](const std::string& weights_file) {
    const std::string weights_path = (dir / weights_file).string();
    return std::make_pair(weights_path, read_file(weights_path, "weights file"));
  });
}

Graph parse_graph(std::string_view text, const std::string& json_path, const WeightsReader& read_weights) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(json_path + ": invalid JSON: " + e.what());
  }
  Reader bad(json_path, {});
  // Types are checked before values are read: json::value() throws for a wrong type.
  if (!j.is_object() || !j.contains("format") || j["format"] != "dlasim-graph") {
    bad.fail("top level", "not a dlasim graph (\"format\": \"dlasim-graph\" missing)");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != 1) {
    bad.fail("top level", "unsupported graph version (this build reads version 1)");
  }
  bad.only_known(j, "top level", kTopFields);
  std::vector<char> weights;
  std::string weights_path;
  if (j.contains("weights_file")) {
    if (!j["weights_file"].is_string()) bad.fail("top level", "\"weights_file\" must be a string");
    std::tie(weights_path, weights) = read_weights(j["weights_file"].get<std::string>());
  }
  Reader r(json_path, std::move(weights));
  Graph g;
  const json& nodes = r.field(j, "top level", "nodes");
  if (!nodes.is_array()) r.fail("top level", "\"nodes\" must be an array");
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const json& n = nodes[i];
    std::string where = "node " + std::to_string(i);
    if (!n.is_object() || !n.contains("name") || !n["name"].is_string()) r.fail(where, "needs a string \"name\"");
    const std::string name = n["name"].get<std::string>();
    if (!valid_node_name(name)) {
      r.fail(where, "name " + quote_for_message(name) + " must be 1..255 printable ASCII characters");
    }
    where = "node '" + name + "'";
    const json& opj = r.field(n, where, "op");
    if (!opj.is_string()) r.fail(where, "\"op\" must be a string");
    const std::string op = opj.get<std::string>();
    const std::vector<std::string_view> fields = node_fields(op);
    if (fields.empty()) {
      r.fail(where, "unsupported op " + quote_for_message(op) + " (input, conv2d, linear, add, concat, max_pool, "
                    "avg_pool, global_avg_pool, upsample2x, flatten, lut)");
    }
    for (const auto& item : n.items()) {
      if (std::find(fields.begin(), fields.end(), item.key()) == fields.end() && some_op_has(item.key())) {
        std::string list;
        for (std::string_view f : fields) list += (list.empty() ? "" : ", ") + std::string(f);
        r.fail(where, op + " takes no field " + quote_for_message(item.key()) + " (its fields: " + list + ")");
      }
    }
    r.only_known(n, where, fields);
    std::vector<int> ins;
    if (n.contains("inputs")) {
      if (!n["inputs"].is_array()) r.fail(where, "\"inputs\" must be an array of node names");
      for (const auto& in : n["inputs"]) {
        if (!in.is_string()) r.fail(where, "\"inputs\" must be an array of node names");
        const int id = g.find(in.get<std::string>());
        if (id < 0) r.fail(where, "input " + quote_for_message(in.get<std::string>()) + " is not an earlier node");
        ins.push_back(id);
      }
    }
    auto need_inputs = [&](std::size_t count) {
      if (ins.size() != count) r.fail(where, op + " takes " + std::to_string(count) + " input(s), got " + std::to_string(ins.size()));
    };
    try {
      if (op == "input") {
        const auto shape = r.ints(r.field(n, where, "shape"), where, "shape");
        g.input(name, r.dtype(r.field(n, where, "dtype"), where), r.small_int(r.field(n, where, "frac"), where, "frac"), shape);
      } else if (op == "conv2d" || op == "linear") {
        need_inputs(1);
        const DType wt = r.dtype(r.field(n, where, "weight_dtype"), where);
        auto w = r.weights(n, where);
        std::vector<int> wf;
        const json& wfj = r.field(n, where, "weight_frac");
        if (!wfj.is_array()) r.fail(where, "\"weight_frac\" must be an array of integers");
        for (const auto& f : wfj) wf.push_back(r.small_int(f, where, "weight_frac"));
        std::vector<std::int64_t> bias = n.contains("bias") ? r.ints(n["bias"], where, "bias") : std::vector<std::int64_t>{};
        if (op == "conv2d") {
          g.conv2d(name, ins[0], r.integer(r.field(n, where, "out_channels"), where, "out_channels"), r.attrs(n, where, false), wt,
                   std::move(w), std::move(wf), std::move(bias), r.quant(n, where));
        } else {
          g.linear(name, ins[0], r.integer(r.field(n, where, "out_features"), where, "out_features"), wt, std::move(w),
                   std::move(wf), std::move(bias), r.quant(n, where));
        }
      } else if (op == "add") {
        need_inputs(2);
        g.add(name, ins[0], ins[1], r.quant(n, where));
      } else if (op == "concat") {
        g.concat(name, ins);
      } else if (op == "max_pool" || op == "avg_pool") {
        need_inputs(1);
        const ConvAttrs a = r.attrs(n, where, true);
        PoolAttrs p{a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.pad_top, a.pad_left, a.pad_bottom, a.pad_right};
        if (op == "max_pool") g.max_pool(name, ins[0], p);
        else g.avg_pool(name, ins[0], p, r.quant(n, where));
      } else if (op == "global_avg_pool") {
        need_inputs(1);
        g.global_avg_pool(name, ins[0], r.quant(n, where));
      } else if (op == "upsample2x") {
        need_inputs(1);
        g.upsample2x(name, ins[0]);
      } else if (op == "flatten") {
        need_inputs(1);
        g.flatten(name, ins[0]);
      } else {  // lut: node_fields() knows no other op
        need_inputs(1);
        const json& fj = r.field(n, where, "function");
        if (!fj.is_string()) r.fail(where, "\"function\" must be a string");
        const auto fn = lut::parse_function(fj.get<std::string>());
        if (!fn) {
          r.fail(where, "unknown function \"" + fj.get<std::string>() +
                            "\" (silu, sigmoid, tanh, hardswish, hardsigmoid, gelu_tanh, leaky_relu, elu, table)");
        }
        lut::Activation a{*fn, 0.0};
        if (n.contains("alpha")) {
          if (!n["alpha"].is_number()) r.fail(where, "\"alpha\" must be a number");
          a.alpha = n["alpha"].get<double>();
        } else if (*fn == lut::Function::kLeakyRelu || *fn == lut::Function::kElu) {
          r.fail(where, std::string(lut::function_name(*fn)) + " needs \"alpha\"");
        }
        std::vector<std::int64_t> table;
        if (*fn == lut::Function::kTable) table = r.ints(r.field(n, where, "table"), where, "table");
        g.lut(name, ins[0], a, std::move(table), r.quant(n, where));
      }
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.rfind(json_path, 0) == 0) throw;
      throw Error(json_path + ": " + msg);
    }
  }
  const json& outs = r.field(j, "top level", "outputs");
  if (!outs.is_array() || outs.empty()) r.fail("top level", "\"outputs\" must be a non-empty array of node names");
  for (const auto& o : outs) {
    if (!o.is_string() || g.find(o.get<std::string>()) < 0) r.fail("outputs", "unknown output " + o.dump(-1, ' ', false, json::error_handler_t::replace));
    const int id = g.find(o.get<std::string>());
    if (g.node(id).kind == OpKind::kInput) {
      r.fail("outputs", "output " + quote_for_message(o.get<std::string>()) + " is a graph input: no node computes it");
    }
    g.mark_output(id);
  }
  if (!weights_path.empty()) r.check_weights_used(weights_path);
  return g;
}

void save_graph(const Graph& graph, const std::string& json_path) {
  const std::filesystem::path jp(json_path);
  const std::filesystem::path bin = jp.parent_path() / (jp.stem().string() + ".bin");
  std::vector<char> weights;
  json nodes = json::array();
  for (const Node& n : graph.nodes()) {
    json j;
    j["name"] = n.name;
    j["op"] = std::string(op_kind_name(n.kind));
    json ins = json::array();
    for (int i : n.inputs) ins.push_back(graph.node(i).name);
    if (n.kind != OpKind::kInput) j["inputs"] = ins;
    const bool requantizes = n.kind == OpKind::kConv2d || n.kind == OpKind::kLinear || n.kind == OpKind::kAdd ||
                             n.kind == OpKind::kAvgPool || n.kind == OpKind::kGlobalAvgPool || n.kind == OpKind::kLut;
    if (requantizes) {
      json clip = json::array({nullptr, nullptr});
      if (n.clip_lo != std::numeric_limits<std::int64_t>::min()) clip[0] = n.clip_lo;
      if (n.clip_hi != std::numeric_limits<std::int64_t>::max()) clip[1] = n.clip_hi;
      j["out"] = {{"dtype", std::string(dtype_info(n.dtype).name)}, {"frac", n.frac}, {"clip", clip}};
    }
    const auto& a = n.conv;
    switch (n.kind) {
      case OpKind::kInput:
        j["dtype"] = std::string(dtype_info(n.dtype).name);
        j["frac"] = n.frac;
        j["shape"] = n.shape;
        break;
      case OpKind::kConv2d:
      case OpKind::kLinear:
        if (n.kind == OpKind::kConv2d) {
          j["out_channels"] = n.out_channels();
          j["kernel"] = {a.kernel_h, a.kernel_w};
          j["stride"] = {a.stride_h, a.stride_w};
          j["padding"] = {a.pad_top, a.pad_left, a.pad_bottom, a.pad_right};
          j["dilation"] = {a.dilation_h, a.dilation_w};
          j["groups"] = a.groups;
        } else {
          j["out_features"] = n.out_channels();
        }
        j["weight_dtype"] = std::string(dtype_info(n.weight_dtype).name);
        j["weights"] = {{"offset", weights.size()}, {"count", n.weights.size()}};
        for (auto w : n.weights) weights.push_back(static_cast<char>(static_cast<std::int8_t>(w)));
        j["weight_frac"] = n.weight_frac;
        j["bias"] = n.bias;
        break;
      case OpKind::kMaxPool:
      case OpKind::kAvgPool:
        j["kernel"] = {a.kernel_h, a.kernel_w};
        j["stride"] = {a.stride_h, a.stride_w};
        j["padding"] = {a.pad_top, a.pad_left, a.pad_bottom, a.pad_right};
        break;
      case OpKind::kLut:
        j["function"] = std::string(lut::function_name(n.lut_activation.function));
        if (n.lut_activation.function == lut::Function::kLeakyRelu || n.lut_activation.function == lut::Function::kElu) {
          j["alpha"] = n.lut_activation.alpha;
        }
        if (n.lut_activation.function == lut::Function::kTable) j["table"] = n.lut_table;
        break;
      default: break;
    }
    nodes.push_back(j);
  }
  json outs = json::array();
  for (int o : graph.outputs()) outs.push_back(graph.node(o).name);
  const json doc = {{"format", "dlasim-graph"}, {"version", 1}, {"weights_file", bin.filename().string()},
                    {"nodes", nodes}, {"outputs", outs}};
  // The weights first: a graph file on disk always finds the weights it names.
  write_file_atomically(bin.string(), std::string_view(weights.data(), weights.size()), "weights file");
  write_file_atomically(json_path, doc.dump(1) + "\n", "graph file");
}

}  // namespace dla::compiler
