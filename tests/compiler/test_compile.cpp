// Compiler tests that need no engine: what the hardware cannot run is refused naming
// the op and the reason, graph files round-trip and malformed ones are refused, and the
// emitted programs obey the ISA's ranges and the tiler's SRAM budget.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dla/compiler/graph_io.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/error.hpp"
#include "dla/testing/random_graphs.hpp"

using namespace dla;
using namespace dla::compiler;

namespace {

Graph one_conv(DType act, DType wt, int k = 3, std::int64_t c = 4, std::int64_t oc = 4, int dil_h = 1, int dil_w = 1) {
  Graph g;
  const int x = g.input("x", act, 0, {1, c, 8, 8});
  ConvAttrs a;
  a.kernel_h = a.kernel_w = k;
  a.dilation_h = dil_h;
  a.dilation_w = dil_w;
  QuantSpec q;
  q.dtype = DType::I8;
  const int y = g.conv2d("conv", x, oc, a, wt, std::vector<std::int32_t>(static_cast<std::size_t>(oc * c * k * k), 1),
                         std::vector<int>(static_cast<std::size_t>(oc), 0), {}, q);
  g.mark_output(y);
  return g;
}

void expect_refused(const Graph& g, const HwConfig& hw, const std::vector<std::string>& needles) {
  try {
    compile(g, hw);
    FAIL() << "compiled a graph the hardware cannot run";
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(CompileRefuses, PrecisionsTheConfigLacks) {
  HwConfig hw = HwConfig::preset("default");
  hw.supports_a4w4 = false;
  expect_refused(one_conv(DType::I4, DType::I4), hw, {"conv2d 'conv'", "does not support i4 x i4"});
  hw = HwConfig::preset("default");
  hw.supports_a8w4 = false;
  expect_refused(one_conv(DType::U8, DType::I4), hw, {"'conv'", "i8 x i4"});
  hw = HwConfig::preset("default");
  hw.supports_a16w8 = false;
  expect_refused(one_conv(DType::I16, DType::I8), hw, {"i16 x i8"});
  expect_refused(one_conv(DType::I4, DType::I8), HwConfig::preset("default"), {"activation i4 x weight i8", "not a precision"});
  expect_refused(one_conv(DType::I16, DType::I4), HwConfig::preset("default"), {"activation i16 x weight i4"});
}

TEST(CompileRefuses, ATableActivationOnAConfigWithoutTheLookupTableUnit) {
  Graph g;
  const int x = g.input("x", DType::I8, 4, {1, 4, 6, 6});
  QuantSpec q;
  q.dtype = DType::I8;
  q.frac = 5;
  g.mark_output(g.lut("act", x, {lut::Function::kSiLU, 0.0}, {}, q));
  HwConfig hw = HwConfig::preset("default");
  hw.lut_lanes = 0;
  expect_refused(g, hw, {"lut 'act'", "no lookup-table unit (lut_lanes = 0)", "float_layers"});
  hw.lut_lanes = 1;  // one lookup a cycle is enough to have one
  EXPECT_NO_THROW(compile(g, hw));
}

TEST(CompileRefuses, KernelsAndGeometryBeyondTheHardware) {
  HwConfig hw = HwConfig::preset("default");
  hw.max_kernel = 3;
  expect_refused(one_conv(DType::I8, DType::I8, 5), hw, {"'conv'", "kernel 5x5 exceeds max_kernel 3"});
  expect_refused(one_conv(DType::I8, DType::I8, 3, 4, 4, 1, 2), HwConfig::preset("default"), {"one dilation"});
}

TEST(CompileRefuses, OddChannelCountsOf4BitTensors) {
  expect_refused(one_conv(DType::I4, DType::I4, 3, 3, 4), HwConfig::preset("default"), {"'x'", "even channel count"});
}

TEST(CompileRefuses, TilesThatCannotFitTheSrams) {
  // A 15x15 kernel dilated by 7 sees a 99x99 input window for one output pixel: twice
  // that is more than the small preset's 8 KiB activation SRAM, and nothing can split it.
  const HwConfig hw = HwConfig::preset("small");
  Graph g;
  const int x = g.input("x", DType::I8, 0, {1, 1, 99, 99});
  ConvAttrs a;
  a.kernel_h = a.kernel_w = 15;
  a.dilation_h = a.dilation_w = 7;
  QuantSpec q;
  const int y = g.conv2d("big", x, 1, a, DType::I8, std::vector<std::int32_t>(225, 1), {0}, {}, q);
  g.mark_output(y);
  expect_refused(g, hw, {"'big'", "activation SRAM"});
}

TEST(CompiledPrograms, RespectIsaRangesAndSerialize) {
  // serialize_program encodes every instruction, which range-checks every field.
  for (const char* preset : {"small", "default", "large"}) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      dla::testing::RandomGraphBuilder gen(seed);
      std::map<std::string, HostTensor> inputs;
      const Graph g = gen.graph(inputs);
      const Program p = compile(g, HwConfig::preset(preset));
      const auto bytes = serialize_program(p);
      const Program back = parse_program(bytes.data(), bytes.size());
      EXPECT_EQ(back.instructions.size(), p.instructions.size());
      EXPECT_EQ(back.debug.size(), g.nodes().size() - g.inputs().size());
      ASSERT_TRUE(back.hw_config.has_value());
      EXPECT_EQ(*back.hw_config, HwConfig::preset(preset));
    }
  }
}

TEST(CompiledPrograms, ResNet18CompilesForEveryPreset) {
  const Graph g = resnet18(64);
  int convs = 0, adds = 0;
  for (const auto& n : g.nodes()) {
    convs += n.kind == OpKind::kConv2d;
    adds += n.kind == OpKind::kAdd;
  }
  EXPECT_EQ(convs, 20);
  EXPECT_EQ(adds, 8);
  for (const char* preset : {"small", "default", "large"}) {
    const Program p = compile(g, HwConfig::preset(preset));
    EXPECT_GT(p.instructions.size(), 50u) << preset;
  }
  // Smaller SRAMs need more, smaller tiles.
  EXPECT_GT(compile(g, HwConfig::preset("small")).instructions.size(),
            compile(g, HwConfig::preset("large")).instructions.size());
}

TEST(GraphFiles, SaveAndLoadRoundTripToTheSameProgram) {
  const std::string dir = ::testing::TempDir() + "/graph_rt";
  std::filesystem::create_directories(dir);
  for (std::uint64_t seed = 100; seed < 110; ++seed) {
    dla::testing::RandomGraphBuilder gen(seed);
    std::map<std::string, HostTensor> inputs;
    const Graph g = gen.graph(inputs);
    save_graph(g, dir + "/g.json");
    const Graph back = load_graph(dir + "/g.json");
    const HwConfig hw = HwConfig::preset("small");
    EXPECT_EQ(serialize_program(compile(back, hw)), serialize_program(compile(g, hw))) << "seed " << seed;
  }
}

TEST(GraphFiles, MalformedFilesNameTheFileNodeAndField) {
  const std::string dir = ::testing::TempDir() + "/graph_bad";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir + "/g.json") << text;
    return dir + "/g.json";
  };
  auto expect_error = [&](const std::string& text, const std::vector<std::string>& needles) {
    try {
      load_graph(write(text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  };
  const std::string head = R"({"format": "dlasim-graph", "version": 1, "nodes": [)";
  const std::string x = R"({"name": "x", "op": "input", "dtype": "i8", "frac": 0, "shape": [1, 2, 4, 4]})";
  expect_error("{", {"g.json", "invalid JSON"});
  expect_error(R"({"version": 1})", {"not a dlasim graph"});
  expect_error(head + x + R"(, {"name": "y", "op": "softmax", "inputs": ["x"]}], "outputs": ["y"]})",
               {"node 'y'", "unsupported op \"softmax\""});
  expect_error(head + x + R"(, {"name": "y", "op": "max_pool", "inputs": ["z"], "kernel": [2, 2]}], "outputs": ["y"]})",
               {"node 'y'", "input \"z\" is not an earlier node"});
  expect_error(head + x + R"(, {"name": "y", "op": "conv2d", "inputs": ["x"], "out_channels": 2, "kernel": [1, 1],
      "weight_dtype": "i8", "weights": [1, 2, 3], "weight_frac": [0, 0], "out": {"dtype": "i8", "frac": 0}}], "outputs": ["y"]})",
               {"node 'y'", "expected 4 weights"});
  expect_error(head + x + R"(, {"name": "y", "op": "conv2d", "inputs": ["x"], "out_channels": 2, "kernel": [1, 1],
      "weight_dtype": "i8", "weights": {"offset": 0, "count": 4}, "weight_frac": [0, 0], "out": {"dtype": "i8", "frac": 0}}], "outputs": ["y"]})",
               {"node 'y'", "outside the 0-byte weights file"});
  expect_error(head + x + R"(, {"name": "y", "op": "max_pool", "inputs": ["x"], "kernel": [2]}], "outputs": ["y"]})",
               {"node 'y'", "\"kernel\" must have 2 entries"});
  expect_error(head + x + R"(], "outputs": ["nope"]})", {"unknown output \"nope\""});
  expect_error(head + R"({"name": "x", "op": "input", "dtype": "f32", "frac": 0, "shape": [1, 2]}], "outputs": ["x"]})",
               {"node 'x'", "unknown dtype \"f32\""});
  // Activation tables: a user table of the wrong length or range, an unknown function,
  // a missing slope and a table no output frac can hold are refused naming the node.
  const std::string lut_head = head + x + R"(, {"name": "act", "op": "lut", "inputs": ["x"], )";
  expect_error(lut_head + R"("function": "table", "table": [1, 2, 3], "out": {"dtype": "i8", "frac": 0}}], "outputs": ["act"]})",
               {"node 'act'", "a table for i8 inputs has 256 entries, this one has 3"});
  std::string big = "[";
  for (int i = 0; i < 256; ++i) big += std::string(i ? ", " : "") + (i == 9 ? "300" : "0");
  expect_error(lut_head + R"("function": "table", "table": )" + big + R"(], "out": {"dtype": "i8", "frac": 0}}], "outputs": ["act"]})",
               {"node 'act'", "table entry 9 = 300 is outside i8 [-128, 127]"});
  expect_error(lut_head + R"("function": "swish", "out": {"dtype": "i8", "frac": 0}}], "outputs": ["act"]})",
               {"node 'act'", "unknown function \"swish\""});
  expect_error(lut_head + R"("function": "leaky_relu", "out": {"dtype": "i8", "frac": 0}}], "outputs": ["act"]})",
               {"node 'act'", "leaky_relu needs \"alpha\""});
  expect_error(lut_head + R"("function": "sigmoid", "out": {"dtype": "i8", "frac": -8}}], "outputs": ["act"]})",
               {"node 'act'", "cannot represent it: every entry is 0"});
  // An i16 input whose range is beyond what the 257 knots can follow.
  const std::string x16 = R"({"name": "x", "op": "input", "dtype": "i16", "frac": 0, "shape": [1, 2, 2, 2]})";
  expect_error(head + x16 + R"(, {"name": "act", "op": "lut", "inputs": ["x"], "function": "sigmoid", "out": {"dtype": "i16", "frac": 12}}], "outputs": ["act"]})",
               {"node 'act'", "an i16 input at frac 0 spans [-2^15, 2^15), beyond the range the table's 257 knots",
                "give the input a frac of at least 7"});
}

TEST(GraphFiles, ActivationTablesRoundTripAndCompileToVlut) {
  const std::string dir = ::testing::TempDir() + "/graph_lut";
  std::filesystem::create_directories(dir);
  Graph g;
  const int x = g.input("x", DType::I8, 4, {1, 4, 6, 6});
  QuantSpec q;
  q.dtype = DType::I8;
  q.frac = 5;
  const int a = g.lut("silu", x, {lut::Function::kSiLU, 0.0}, {}, q);
  const int b = g.lut("leaky", a, {lut::Function::kLeakyRelu, 0.1}, {}, q);
  std::vector<std::int64_t> table(256);
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<std::int64_t>(i) / 2 - 64;
  const int c = g.lut("user", b, {lut::Function::kTable, 0.0}, table, q);
  g.mark_output(c);
  save_graph(g, dir + "/g.json");
  const Graph back = load_graph(dir + "/g.json");
  const HwConfig hw = HwConfig::preset("default");
  const Program p = compile(g, hw);
  EXPECT_EQ(serialize_program(compile(back, hw)), serialize_program(p));
  int vluts = 0;
  for (const auto& insn : p.instructions) vluts += std::holds_alternative<isa::VLut>(insn);
  EXPECT_EQ(vluts, 3);
}

TEST(CompiledPrograms, IdenticalConstantsAreStoredOnce) {
  // Two convs with the same weights, bias and formats (a module called twice): their
  // weight blocks and parameter records share DRAM, so the constants are those of one.
  // Changing one weight of the second gives it blocks of its own.
  auto graph = [](int convs, std::int32_t second_first_weight) {
    Graph g;
    const int x = g.input("x", DType::I8, 0, {1, 8, 8, 8});
    ConvAttrs a;
    a.kernel_h = a.kernel_w = 3;
    a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 1;
    QuantSpec q;
    q.dtype = DType::I8;
    std::vector<std::int32_t> w(16 * 8 * 9);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int32_t>(i % 15) - 7;
    for (int k = 0; k < convs; ++k) {
      if (k == 1) w[0] = second_first_weight;
      g.mark_output(g.conv2d("conv" + std::to_string(k), x, 16, a, DType::I8, w, std::vector<int>(16, 3),
                             std::vector<std::int64_t>(16, 5), q));
    }
    return g;
  };
  const HwConfig hw = HwConfig::preset("default");
  const auto one = compile(graph(1, -7), hw).constants.size();
  EXPECT_EQ(compile(graph(2, -7), hw).constants.size(), one);
  EXPECT_GT(compile(graph(2, 6), hw).constants.size(), one);
}
