// dla bench: engine throughput on a ResNet-18-shaped network, with a reference measured
// in the same run.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "bench_torch.hpp"
#include "commands.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"

namespace po = boost::program_options;

namespace dla::cli {

std::uint64_t ConvShape::macs() const {
  const std::int64_t oh = (h + 2 * pad - kernel) / stride + 1, ow = (w + 2 * pad - kernel) / stride + 1;
  return static_cast<std::uint64_t>(n * oc * oh * ow * (c / groups) * kernel * kernel);
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int cmd_bench(const Args& args) {
  po::options_description options("bench options");
  options.add_options()
      ("engine", po::value<std::string>()->default_value("emu"), "engine to measure: emu")
      ("size", po::value<std::int64_t>()->default_value(224), "input height and width of the ResNet-18 graph")
      ("preset", po::value<std::string>()->default_value("default"), "hardware config preset")
      ("repeat", po::value<int>()->default_value(3), "runs per engine; the best is reported");
  po::positional_options_description positional;
  positional.add("engine", 1);
  const auto vm = parse_command(args, "dla bench [emu] [--size N] [--preset NAME] [--repeat R]",
                                "Compiles the ResNet-18-shaped int8 graph (20 convolutions and 8 adds), runs it on "
                                "the engine and prints its GMAC/s and, measured in the same run, the ratio to "
                                "libtorch's own quantized convolutions on the same layers.",
                                options, positional);
  if (!vm) return 0;
  const std::string engine = (*vm)["engine"].as<std::string>();
  if (engine != "emu") throw Error("bench: unknown engine '" + engine + "' (emu)");
  const std::int64_t size = (*vm)["size"].as<std::int64_t>();
  const int repeat = (*vm)["repeat"].as<int>();
  if (size < 32 || size > 1024) throw Error("--size must be in [32, 1024]");
  if (repeat < 1 || repeat > 100) throw Error("--repeat must be in [1, 100]");
  const HwConfig hw = HwConfig::preset((*vm)["preset"].as<std::string>());

  std::cout << "bench: ResNet-18-shaped int8 graph, " << size << "x" << size << ", preset " << (*vm)["preset"].as<std::string>()
            << std::endl;
  const compiler::Graph graph = compiler::resnet18(size);
  auto t0 = std::chrono::steady_clock::now();
  const Program program = compiler::compile(graph, hw);
  std::printf("  compile:   %.3f s, %zu instructions\n", seconds_since(t0), program.instructions.size());

  HostTensor image;
  image.dtype = DType::U8;
  image.frac = 4;
  image.shape = {1, 3, static_cast<std::uint64_t>(size), static_cast<std::uint64_t>(size)};
  std::mt19937 rng(1);
  for (std::uint64_t i = 0; i < image.num_elements(); ++i) image.values.push_back(static_cast<std::int32_t>(rng() % 256));
  auto device = sim::make_emulator(hw);
  device->load(program);
  device->set_input("image", image);
  double emu_best = 0;
  for (int r = 0; r < repeat; ++r) {
    t0 = std::chrono::steady_clock::now();
    device->run();
    const double s = seconds_since(t0);
    emu_best = r == 0 ? s : std::min(emu_best, s);
  }
  const sim::RunStats stats = device->stats();
  const double emu_gmacs = static_cast<double>(stats.macs) / emu_best / 1e9;
  std::printf("  emulator:  %.3f s per inference, %.3f GMAC, %.2f GMAC/s\n", emu_best, static_cast<double>(stats.macs) / 1e9,
              emu_gmacs);

  std::vector<ConvShape> convs;
  std::uint64_t conv_macs = 0;
  for (const auto& n : graph.nodes()) {
    if (n.kind != compiler::OpKind::kConv2d) continue;
    const auto& x = graph.node(n.inputs[0]);
    convs.push_back({x.shape[0], x.shape[1], x.shape[2], x.shape[3], n.shape[1], n.conv.kernel_h, n.conv.stride_h,
                     n.conv.pad_top, n.conv.groups});
    conv_macs += convs.back().macs();
  }
  const TorchBenchResult torch = bench_torch_convs(convs, repeat);
  if (!torch.available) {
    std::printf("  libtorch:  not available in this build; no ratio\n");
    return 0;
  }
  const double torch_gmacs = static_cast<double>(conv_macs) / torch.seconds / 1e9;
  std::printf("  libtorch:  %.3f s for the %zu convolutions (quantized::conv2d, %s), %.2f GMAC/s\n", torch.seconds,
              convs.size(), torch.engine.c_str(), torch_gmacs);
  std::printf("  ratio:     emulator / libtorch = %.2fx (the emulator's time also covers DMA, requantize, "
              "pooling, adds and the fc layer)\n",
              emu_gmacs / torch_gmacs);
  return 0;
}

}  // namespace dla::cli
