// dla regress: the regression suite on the engines named. Random graphs of the
// differential tests' generator on each preset, the built-in ResNet-18 at a small size,
// models given with --model (QAT exports, each device segment of one with float parts),
// every layer of every engine compared with the compiler's reference evaluator; and bad
// programs (truncated, bit-flipped, for another config) that every engine must refuse
// with the same error. Cases run in parallel, each with its own devices; a table, JUnit
// XML, and exit 1 naming the first failing case.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "dla/compiler/models.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/error.hpp"
#include "dla/file_io.hpp"
#include "dla/testing/random_graphs.hpp"
#include "signoff_checks.hpp"
#include "tool_common.hpp"

namespace po = boost::program_options;

namespace dla::cli {
namespace {

/// A model case: a graph, its hardware config and its inputs.
struct GraphCase {
  compiler::Graph graph;
  HwConfig hw;
  std::map<std::string, HostTensor> inputs;
};

/// A bad-program case: the file's bytes and the hardware config of the devices that must
/// refuse them.
struct BadCase {
  std::vector<std::uint8_t> bytes;
  HwConfig hw;
};

struct Case {
  std::string name;
  std::function<GraphCase()> model;   ///< set for a model case
  std::function<BadCase()> bad;       ///< set for a bad-program case
};

/// One row of the table and one JUnit test case: a case on an engine.
struct Row {
  std::string case_name, engine;
  std::uint64_t layers = 0, elements = 0;
  std::string result;  ///< pass, refused (a bad program: as it must), MISMATCH, ERROR, ACCEPTED, DIFFERENT
  std::string detail;  ///< the first mismatch, the error, or the refusal's message
  double seconds = 0;
  bool ok = false;
};

std::string one_line(const std::string& s) {
  std::string out = s;
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

/// Every input of `g` filled with values drawn from `seed` over its type's range (within
/// ±2000, as the random graphs' inputs).
std::map<std::string, HostTensor> random_inputs(const compiler::Graph& g, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<std::string, HostTensor> inputs;
  for (int id : g.inputs()) {
    const compiler::Node& n = g.node(id);
    HostTensor t;
    t.dtype = n.dtype;
    t.frac = n.frac;
    for (auto d : n.shape) t.shape.push_back(static_cast<std::uint64_t>(d));
    const auto info = dtype_info(n.dtype);
    std::uniform_int_distribution<std::int64_t> dist(std::max<std::int64_t>(info.min, -2000),
                                                      std::min<std::int64_t>(info.max, 2000));
    for (std::uint64_t i = 0; i < t.num_elements(); ++i) t.values.push_back(static_cast<std::int32_t>(dist(rng)));
    inputs[n.name] = std::move(t);
  }
  return inputs;
}

/// Runs a model case on every engine; every layer dump against the reference evaluator.
/// `fault_reference`: the reference's first layer is made wrong by one (the tests' way to
/// check that a mismatch fails the run).
std::vector<Row> run_model(const Case& c, const std::vector<std::string>& engines, bool fault_reference) {
  std::vector<Row> rows;
  GraphCase m;
  std::vector<HostTensor> reference;
  Program program;
  std::string setup_error;
  const auto setup_start = std::chrono::steady_clock::now();
  try {
    m = c.model();
    reference = compiler::evaluate(m.graph, m.hw, m.inputs);
    program = compile_checked(m.graph, m.hw);
  } catch (const std::exception& e) {
    setup_error = std::string("compile or reference: ") + e.what();
  }
  if (fault_reference) {
    for (std::size_t id = 0; id < reference.size(); ++id) {
      if (m.graph.node(static_cast<int>(id)).kind != compiler::OpKind::kInput && !reference[id].values.empty()) {
        reference[id].values[0] += 1;
        break;
      }
    }
  }
  const double setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count() / static_cast<double>(engines.size());
  const std::size_t non_inputs = m.graph.nodes().size() - m.graph.inputs().size();
  for (const auto& name : engines) {
    Row r;
    r.case_name = c.name;
    r.engine = name;
    const auto start = std::chrono::steady_clock::now();
    if (!setup_error.empty()) {
      r.result = "ERROR";
      r.detail = setup_error;
    } else {
      try {
        auto device = find_engine(name).make(m.hw);
        device->load(program);
        for (const auto& [input, tensor] : m.inputs) device->set_input(input, tensor);
        sim::RunOptions run;
        run.dump_layers = true;
        device->run(run);
        const auto dumps = device->layer_dumps();
        if (dumps.size() != non_inputs) {
          r.result = "MISMATCH";
          r.detail = std::to_string(dumps.size()) + " layer dumps for " + std::to_string(non_inputs) + " layers";
        }
        for (const auto& dump : dumps) {
          if (!r.result.empty()) break;
          const int node = m.graph.find(dump.name);
          if (node < 0) {
            r.result = "MISMATCH";
            r.detail = "layer '" + dump.name + "' is not a node of the graph";
            break;
          }
          const LayerCheck check = compare(name, dump.name, reference[static_cast<std::size_t>(node)], dump.tensor);
          ++r.layers;
          r.elements += check.elements;
          if (!check.ok()) {
            r.result = "MISMATCH";
            r.detail = "layer '" + dump.name + "' (" + std::string(compiler::op_kind_name(m.graph.node(node).kind)) + ") " +
                       difference_text(check);
          }
        }
        if (r.result.empty()) {
          r.result = "pass";
          r.ok = true;
        }
      } catch (const Error& e) {
        r.result = "ERROR";
        r.detail = one_line(e.what());
      } catch (const std::exception& e) {
        r.result = "ERROR";
        r.detail = "internal error: " + one_line(e.what());
      }
    }
    r.seconds = setup_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rows.push_back(std::move(r));
  }
  return rows;
}

/// Runs a bad-program case on every engine: each must refuse it (dla::Error: read, load
/// or run), all with the same message.
std::vector<Row> run_bad(const Case& c, const std::vector<std::string>& engines) {
  std::vector<Row> rows;
  BadCase b;
  std::string setup_error;
  try {
    b = c.bad();
  } catch (const std::exception& e) {
    setup_error = std::string("building the case: ") + e.what();
  }
  for (const auto& name : engines) {
    Row r;
    r.case_name = c.name;
    r.engine = name;
    const auto start = std::chrono::steady_clock::now();
    if (!setup_error.empty()) {
      r.result = "ERROR";
      r.detail = setup_error;
    } else {
      try {
        const Program program = parse_program(b.bytes.data(), b.bytes.size());
        auto device = find_engine(name).make(b.hw);
        device->load(program);
        device->run();
        r.result = "ACCEPTED";
        r.detail = "the engine ran a bad program";
      } catch (const Error& e) {
        r.result = "refused";
        r.detail = one_line(e.what());
        r.ok = true;
      } catch (const std::exception& e) {
        r.result = "ERROR";
        r.detail = "internal error (not a user error): " + one_line(e.what());
      }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rows.push_back(std::move(r));
  }
  // The same refusal everywhere: an engine that refuses for another reason is a difference.
  for (auto& r : rows) {
    if (r.ok && r.detail != rows.front().detail) {
      r.ok = false;
      r.result = "DIFFERENT";
      r.detail += " (" + rows.front().engine + ": " + rows.front().detail + ")";
    }
  }
  return rows;
}

/// The bad programs: a small random graph's program for the default preset, damaged.
std::vector<Case> bad_cases() {
  auto program_bytes = [](const std::string& preset) {
    dla::testing::RandomGraphBuilder gen(1);
    std::map<std::string, HostTensor> inputs;
    const compiler::Graph g = gen.graph(inputs);
    return serialize_program(compile_checked(g, HwConfig::preset(preset)));
  };
  const HwConfig hw = HwConfig::preset("default");
  auto damaged = [=](std::function<void(std::vector<std::uint8_t>&)> edit) {
    return [=]() {
      BadCase b{program_bytes("default"), hw};
      edit(b.bytes);
      return b;
    };
  };
  return {
      {"bad/truncated-header", {}, damaged([](auto& v) { v.resize(std::min<std::size_t>(v.size(), 40)); })},
      {"bad/truncated-payload", {}, damaged([](auto& v) { v.pop_back(); })},
      {"bad/bitflip-header", {}, damaged([](auto& v) { v.at(20) ^= 0x04; })},
      {"bad/bitflip-payload", {}, damaged([](auto& v) { v.at(v.size() - 3) ^= 0x10; })},
      {"bad/other-config", {}, [=]() { return BadCase{program_bytes("small"), hw}; }},
  };
}

/// The cases of a model file: its graph, or each device segment of an export with float
/// parts (the engines against the reference evaluator; the host steps are not the engines'),
/// on random inputs. The file is read here, so that a bad one stops the run at once.
std::vector<Case> model_cases(const std::string& path) {
  const auto model = std::make_shared<const Model>(load_model_file(path));
  const std::string stem = std::filesystem::path(path).filename().string();
  auto make = [model](const compiler::Graph* graph, std::uint64_t seed) {
    return [model, graph, seed]() {
      GraphCase m{*graph, model->hw, {}};
      m.inputs = random_inputs(m.graph, seed);
      return m;
    };
  };
  std::vector<Case> cases;
  if (!model->segmented()) {
    cases.push_back({"model/" + stem, make(&model->graph, 5), {}});
  }
  for (std::size_t k = 0; k < model->segments.size(); ++k) {
    cases.push_back({"model/" + stem + "/segment" + std::to_string(k), make(&model->segments[k], 5 + k), {}});
  }
  return cases;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 has no control characters but tab, line feed and carriage return.
        out += (static_cast<unsigned char>(ch) < 0x20 && ch != '\t') ? '?' : ch;
    }
  }
  return out;
}

void write_junit(const std::string& path, const std::vector<Row>& rows, double seconds) {
  const auto failures = std::count_if(rows.begin(), rows.end(), [](const Row& r) { return !r.ok; });
  std::ostringstream x;
  x << std::fixed << std::setprecision(3);
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"" << rows.size() << "\" failures=\""
    << failures << "\" errors=\"0\" time=\"" << seconds << "\">\n  <testsuite name=\"dla regress\" tests=\""
    << rows.size() << "\" failures=\"" << failures << "\" errors=\"0\" skipped=\"0\" time=\"" << seconds << "\">\n";
  for (const auto& r : rows) {
    x << "    <testcase classname=\"regress." << xml_escape(r.engine) << "\" name=\"" << xml_escape(r.case_name)
      << "\" time=\"" << r.seconds << "\"";
    if (r.ok) {
      x << "/>\n";
    } else {
      x << ">\n      <failure message=\"" << xml_escape(r.result + ": " + r.detail) << "\"/>\n    </testcase>\n";
    }
  }
  x << "  </testsuite>\n</testsuites>\n";
  write_file_atomically(path, x.str(), "JUnit XML");
}

}  // namespace

int cmd_regress(const Args& args) {
  po::options_description options("regress options");
  options.add_options()
      ("engines", po::value<std::string>()->default_value(""), "comma-separated engines (default: every engine built)")
      ("seeds", po::value<std::int64_t>()->default_value(20), "random graphs per preset (small, default, large)")
      ("resnet-size", po::value<std::int64_t>()->default_value(32),
       "input height and width of the built-in ResNet-18 case (0: no ResNet-18 case)")
      ("model", po::value<std::vector<std::string>>()->composing(),
       "FILE: a model to add as a case, with random inputs: a QAT export (.dla.pt) on the config it was trained "
       "for, or a graph file on the default preset; an export with float parts adds one case per device segment "
       "(repeatable)")
      ("jobs,j", po::value<std::int64_t>()->default_value(2), "cases run at once (threads)")
      ("junit", po::value<std::string>(), "write JUnit XML to FILE: one test case per case and engine")
      ("fault-reference", po::value<std::string>(),
       "tests of the regression only: make the reference of case NAME wrong, so that it must fail");
  const auto vm = parse_command(
      args, "dla regress [--engines emu,cycle,rtl] [--seeds N] [--resnet-size S] [--model FILE ...] [--junit FILE]",
      "Runs the regression suite on each engine: --seeds random graphs per preset (small, default, large; "
      "random rounding mode, overflow policy and accumulator width), the built-in ResNet-18 at --resnet-size, "
      "the models given with --model (for example the QAT workflow's exports: scripts/regress), "
      "every layer of every engine compared element for element with the compiler's reference evaluator; and "
      "bad programs (truncated, bit-flipped, compiled for another config) that every engine must refuse with "
      "the same error. Prints a table, writes JUnit XML with --junit, and exits 1 naming the first failing "
      "case.",
      options);
  if (!vm) return 0;
  const std::string engine_text = (*vm)["engines"].as<std::string>();
  const std::vector<std::string> engines = engine_text.empty() ? all_engines() : parse_engines(engine_text);
  const std::int64_t seeds = (*vm)["seeds"].as<std::int64_t>();
  if (seeds < 0 || seeds > 100000) throw Error("--seeds " + std::to_string(seeds) + " is out of range [0, 100000]");
  const std::int64_t resnet_size = (*vm)["resnet-size"].as<std::int64_t>();
  if (resnet_size != 0 && (resnet_size < 32 || resnet_size > 1024)) {
    throw Error("--resnet-size " + std::to_string(resnet_size) + " is out of range [32, 1024] (or 0: none)");
  }
  const std::int64_t jobs = (*vm)["jobs"].as<std::int64_t>();
  if (jobs < 1 || jobs > 256) throw Error("--jobs " + std::to_string(jobs) + " is out of range [1, 256]");
  const std::string fault = vm->count("fault-reference") ? (*vm)["fault-reference"].as<std::string>() : "";

  // The longest case first, so that it does not finish alone at the end.
  std::vector<Case> cases;
  if (resnet_size != 0) {
    cases.push_back({"resnet18/" + std::to_string(resnet_size), [resnet_size]() {
                       GraphCase m{compiler::resnet18(resnet_size), HwConfig::preset("default"), {}};
                       m.inputs = random_inputs(m.graph, 18);
                       return m;
                     }, {}});
  }
  for (const char* preset : {"small", "default", "large"}) {
    for (std::int64_t s = 0; s < seeds; ++s) {
      const std::uint64_t seed = dla::testing::graph_seed(preset, s);
      cases.push_back({"random/" + std::string(preset) + "/" + std::to_string(seed), [preset, seed]() {
                         // The differential test's graph and config of this seed (test_differential).
                         dla::testing::RandomGraphBuilder gen(seed);
                         GraphCase m;
                         m.graph = gen.graph(m.inputs);
                         std::mt19937_64 rng(seed * 31 + 7);
                         m.hw = dla::testing::random_config(preset, rng);
                         return m;
                       }, {}});
    }
  }
  if (vm->count("model")) {
    for (const auto& path : (*vm)["model"].as<std::vector<std::string>>()) {
      for (auto& c : model_cases(path)) cases.push_back(std::move(c));
    }
  }
  for (auto& c : bad_cases()) cases.push_back(std::move(c));
  if (!fault.empty() && std::none_of(cases.begin(), cases.end(), [&](const Case& c) { return c.name == fault; })) {
    throw Error("--fault-reference: no case '" + fault + "' in this run");
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<Row>> results(cases.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&]() {
    for (std::size_t i; (i = next.fetch_add(1)) < cases.size();) {
      results[i] = cases[i].model ? run_model(cases[i], engines, cases[i].name == fault) : run_bad(cases[i], engines);
    }
  };
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < std::min<std::int64_t>(jobs, static_cast<std::int64_t>(cases.size())); ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<Row> rows;
  for (auto& r : results) rows.insert(rows.end(), r.begin(), r.end());
  std::size_t width = 4;
  for (const auto& r : rows) width = std::max(width, r.case_name.size());
  const int w = static_cast<int>(width);
  std::cout << std::left << std::setw(w + 2) << "case" << std::setw(7) << "engine" << std::right << std::setw(7)
            << "layers" << std::setw(10) << "elements" << "  " << std::left << std::setw(9) << "result"
            << "first mismatch / error\n";
  const Row* first = nullptr;
  std::uint64_t elements = 0;
  for (const auto& r : rows) {
    if (!r.ok && first == nullptr) first = &r;
    elements += r.elements;
    const bool bad = r.case_name.rfind("bad/", 0) == 0;
    std::cout << std::left << std::setw(w + 2) << r.case_name << std::setw(7) << r.engine << std::right << std::setw(7)
              << (bad ? "-" : std::to_string(r.layers)) << std::setw(10) << (bad ? "-" : std::to_string(r.elements))
              << "  " << std::left << std::setw(9) << r.result << r.detail << "\n";
  }
  if (vm->count("junit")) write_junit((*vm)["junit"].as<std::string>(), rows, seconds);
  const auto failures = std::count_if(rows.begin(), rows.end(), [](const Row& r) { return !r.ok; });
  std::cout << std::fixed << std::setprecision(1);
  if (first != nullptr) {
    std::cout << "regress: FAIL: " << failures << " of " << rows.size() << " case runs failed in " << seconds
              << " s; first: case '" << first->case_name << "' on " << first->engine << ": " << first->result << " "
              << first->detail << "\n";
    return 1;
  }
  std::cout << "regress: PASS: " << cases.size() << " cases on " << engines.size() << " engine(s), " << elements
            << " elements equal to the reference evaluator, in " << seconds << " s\n";
  return 0;
}

}  // namespace dla::cli
