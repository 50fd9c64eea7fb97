// Splitting a QAT export at its float parts (segments.hpp).
#include "segments.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "dla/error.hpp"

namespace dla::compiler {
namespace {

using nlohmann::json;

int at_least_even(int s) { return (s % 2 == 0) ? s : s + 1; }
int at_least_odd(int s) { return (s % 2 != 0) ? s : s + 1; }

std::vector<std::string> input_names(const json& n, const std::string& where) {
  std::vector<std::string> out;
  if (!n.contains("inputs")) return out;
  if (!n["inputs"].is_array()) throw Error(where + ": \"inputs\" must be an array of node names");
  for (const json& i : n["inputs"]) {
    if (!i.is_string()) throw Error(where + ": \"inputs\" must be an array of node names");
    out.push_back(i.get<std::string>());
  }
  return out;
}

/// The fields of an integer value a program input (or a plan entry) repeats.
json int_format(const json& n, const std::string& where) {
  for (const char* k : {"dtype", "frac", "shape"}) {
    if (!n.contains(k)) throw Error(where + ": an integer value needs \"" + k + "\"");
  }
  return {{"dtype", n["dtype"]}, {"frac", n["frac"]}, {"shape", n["shape"]}};
}

}  // namespace

Segmentation split_at_host_nodes(const json& g, const std::string& path) {
  const json& nodes = g["nodes"];
  std::map<std::string, std::size_t> index;
  std::vector<int> stage(nodes.size(), 0);
  std::vector<std::vector<std::string>> reads(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const json& n = nodes[i];
    const std::string name = n["name"].get<std::string>();
    const std::string op = n["op"].get<std::string>();
    const std::string where = path + ": node '" + name + "'";
    if (!index.emplace(name, i).second) throw Error(where + ": the name is used twice");
    reads[i] = input_names(n, where);
    int s = op == "float_input" ? -1 : 0;
    for (const auto& r : reads[i]) {
      const auto it = index.find(r);
      if (it == index.end()) throw Error(where + ": reads '" + r + "', which is not an earlier node");
      s = std::max(s, stage[it->second]);
    }
    if (op == "host") {
      if (!n.contains("module") || !n["module"].is_string()) throw Error(where + ": a host node needs \"module\"");
      stage[i] = at_least_odd(s);
    } else if (op == "float_input") {
      stage[i] = -1;
    } else {
      if (op == "quantize" && reads[i].size() != 1) throw Error(where + ": a quantize node reads one float value");
      if (op != "quantize" && op != "input" && n.value("value", "int") != "int") {
        throw Error(where + ": a device op must make an integer value");
      }
      for (const auto& r : reads[i]) {
        const bool float_in = nodes[index.at(r)].value("value", "int") == "float";
        if (float_in != (op == "quantize")) {
          throw Error(where + (op == "quantize" ? ": quantizes '" + r + "', which is not a float value"
                                                : ": a device op reads the float value '" + r +
                                                      "' (only a quantize node may)"));
        }
      }
      stage[i] = at_least_even(s);
    }
  }
  const auto is_device = [&](std::size_t i) {
    const std::string op = nodes[i]["op"].get<std::string>();
    return op != "host" && op != "float_input" && op != "quantize" && op != "input";
  };
  std::set<std::string> graph_outputs;
  for (const json& o : g["outputs"]) graph_outputs.insert(o.get<std::string>());
  // Who reads each value, by stage and kind: a device value read by anything outside its
  // segment is an output of that segment.
  std::vector<bool> read_outside(nodes.size(), false);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& r : reads[i]) {
      const std::size_t p = index.at(r);
      if (!is_device(i) || stage[i] != stage[p]) read_outside[p] = true;
    }
  }

  Segmentation out;
  json steps = json::array();
  const int last = *std::max_element(stage.begin(), stage.end());
  for (int s = -1; s <= last; ++s) {
    if (s % 2 != 0) {
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        const json& n = nodes[i];
        if (stage[i] != s || n["op"] != "host") continue;
        steps.push_back({{"kind", "host"}, {"name", n["name"]}, {"module", n["module"]}, {"inputs", reads[i]},
                         {"source", n.value("source", "")}});
      }
      continue;
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const json& n = nodes[i];
      if (stage[i] != s || n["op"] != "quantize") continue;
      const std::string where = path + ": node '" + n["name"].get<std::string>() + "'";
      if (!n.contains("out") || !n["out"].is_object()) throw Error(where + ": a quantize node needs \"out\"");
      json q = int_format(json{{"dtype", n["out"].value("dtype", json())}, {"frac", n["out"].value("frac", json())},
                               {"shape", n.value("shape", json())}},
                          where);
      q.update({{"kind", "quantize"}, {"name", n["name"]}, {"input", reads[i][0]},
                {"clip", n["out"].value("clip", json::array({nullptr, nullptr}))}});
      steps.push_back(q);
    }
    SegmentSplit seg;
    std::set<std::string> bound;
    json ins = json::array();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (stage[i] != s || !is_device(i)) continue;
      seg.nodes.push_back(i);
      for (const auto& r : reads[i]) {
        const std::size_t p = index.at(r);
        if ((is_device(p) && stage[p] == s) || !bound.insert(r).second) continue;
        json in = int_format(nodes[p], path + ": node '" + r + "'");
        in.update({{"name", r}, {"op", "input"}});
        seg.inputs.push_back(in);
        ins.push_back(r);
      }
    }
    if (seg.nodes.empty()) continue;
    seg.outputs = json::array();
    for (std::size_t i : seg.nodes) {
      const std::string name = nodes[i]["name"].get<std::string>();
      if (read_outside[i] || graph_outputs.count(name)) seg.outputs.push_back(name);
    }
    steps.push_back({{"kind", "device"}, {"segment", out.segments.size()}, {"inputs", ins}, {"outputs", seg.outputs}});
    out.segments.push_back(std::move(seg));
  }

  json inputs = json::array();
  for (const json& name : g.value("inputs", json::array())) {
    const auto it = index.find(name.get<std::string>());
    if (it == index.end()) throw Error(path + ": the graph input '" + name.get<std::string>() + "' is not a node");
    const json& n = nodes[it->second];
    const std::string where = path + ": input '" + name.get<std::string>() + "'";
    if (n["op"] == "input") {
      json in = int_format(n, where);
      in.update({{"name", name}, {"value", "int"}, {"clip", n.value("clip", json::array({nullptr, nullptr}))}});
      inputs.push_back(in);
    } else if (n["op"] == "float_input") {
      inputs.push_back({{"name", name}, {"value", "float"}, {"shape", n.value("shape", json::array())}});
    } else {
      throw Error(where + ": a graph input must be an input or float_input node");
    }
  }
  json outputs = json::array();
  for (const json& name : g["outputs"]) {
    const auto it = index.find(name.get<std::string>());
    if (it == index.end()) throw Error(path + ": the graph output '" + name.get<std::string>() + "' is not a node");
    const json& n = nodes[it->second];
    if (n.value("value", "int") == "float") {
      outputs.push_back({{"name", name}, {"value", "float"}, {"shape", n.value("shape", json::array())}});
    } else {
      json o = int_format(n, path + ": output '" + name.get<std::string>() + "'");
      o.update({{"name", name}, {"value", "int"}});
      outputs.push_back(o);
    }
  }
  out.plan = {{"format", "dlasim-host-plan"}, {"version", 1}, {"hw_list", g.value("hw_list", json::array())},
              {"inputs", inputs}, {"outputs", outputs}, {"steps", steps}};
  return out;
}

}  // namespace dla::compiler
