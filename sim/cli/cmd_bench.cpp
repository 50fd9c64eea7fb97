// dla bench: engine throughput on a ResNet-18-shaped network, with a reference measured
// in the same run: libtorch for the emulator, the emulator for the cycle model.
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <random>

#include "bench_torch.hpp"
#include "commands.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/models.hpp"
#include "dla/batch.hpp"
#include "dla/cycle.hpp"
#include "dla/device.hpp"
#include "dla/error.hpp"
#ifdef DLA_HAVE_RTL
#include "dla/rtl.hpp"
#endif

namespace po = boost::program_options;

namespace dla::cli {

std::uint64_t ConvShape::macs() const {
  const std::int64_t oh = (h + 2 * pad - kernel) / stride + 1, ow = (w + 2 * pad - kernel) / stride + 1;
  return static_cast<std::uint64_t>(n * oc * oh * ow * (c / groups) * kernel * kernel);
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

void BestTimes::add(double wall_s, double cpu_s) {
  wall = runs == 0 ? wall_s : std::min(wall, wall_s);
  cpu = runs == 0 ? cpu_s : std::min(cpu, cpu_s);
  ++runs;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Best wall-clock and calling-thread CPU seconds of `repeat` calls of `fn`.
template <typename Fn>
BestTimes best_times(int repeat, Fn&& fn) {
  BestTimes best;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    fn();
    best.add(seconds_since(t0), thread_cpu_seconds() - c0);
  }
  return best;
}

/// Best wall-clock seconds of `repeat` calls of `fn`.
template <typename Fn>
double best_of(int repeat, Fn&& fn) {
  return best_times(repeat, fn).wall;
}

/// Best times of `repeat` runs of `device` (loaded, inputs bound) on `threads` host threads
/// (with `recheck`, each scheduled and checked as a first run).
BestTimes best_run_times(sim::Device& device, int repeat, unsigned threads, bool recheck = false) {
  sim::RunOptions options;
  options.threads = threads;
  options.recheck = recheck;
  return best_times(repeat, [&] { device.run(options); });
}

/// Best wall-clock seconds of `repeat` runs of `device`.
double best_run(sim::Device& device, int repeat, unsigned threads) {
  return best_run_times(device, repeat, threads).wall;
}

/// `dla bench cycle`: simulated cycles per second and the slowdown against the emulator on
/// the same program in the same process, and the per-layer MAC utilization.
int bench_cycle(const Program& program, const HostTensor& image, const HwConfig& hw, int repeat, unsigned threads) {
  auto emu = sim::make_emulator(hw);
  emu->load(program);
  emu->set_input("image", image);
  const double emu_s = best_run(*emu, repeat, threads);
  auto model = sim::make_cycle_model(hw);
  model->load(program);
  model->set_input("image", image);
  const double cyc_s = best_run(*model, repeat, threads);
  const sim::CycleReport& r = model->report();
  const bool same = model->output("fc").values == emu->output("fc").values;
  std::printf("  threads:     %u host threads for both engines\n", threads);
  std::printf("  emulator:    %.3f s per inference\n", emu_s);
  std::printf("  cycle model: %.3f s per inference, %llu simulated cycles (%.3f ms at %lld MHz), %zu instructions\n",
              cyc_s, static_cast<unsigned long long>(r.cycles), r.microseconds / 1000.0,
              static_cast<long long>(r.clock_mhz), program.instructions.size());
  std::printf("  speed:       %.2f M simulated cycles per second; slowdown against the emulator %.2fx\n",
              static_cast<double>(r.cycles) / cyc_s / 1e6, cyc_s / emu_s);
  std::printf("  outputs:     %s\n", same ? "identical to the emulator's" : "DIFFER from the emulator's");
  std::printf("  MAC array:   utilization %.1f%% overall, %.1f%% while busy; DRAM bus utilization %.1f%%\n",
              100.0 * r.mac_utilization, 100.0 * r.mac_busy_utilization, 100.0 * r.dram_utilization);
  std::size_t width = 5;
  for (const auto& l : r.layers) width = std::max(width, l.name.size());
  const int w = static_cast<int>(width);
  std::cout << "  " << std::left << std::setw(w) << "layer" << std::right << std::setw(11) << "cycles" << std::setw(12)
            << "MACs" << std::setw(10) << "MAC util" << std::setw(11) << "MAC busy" << std::setw(11) << "load busy"
            << "  bound\n";
  for (const auto& l : r.layers) {
    char util[16];
    std::snprintf(util, sizeof util, "%.1f%%", 100.0 * l.mac_utilization);
    std::cout << "  " << std::left << std::setw(w) << l.name << std::right << std::setw(11) << l.cycles
              << std::setw(12) << l.macs << std::setw(10) << util << std::setw(11) << l.mac_busy << std::setw(11)
              << l.load_busy << "  " << l.bound << "\n";
  }
  return same ? 0 : 1;
}

#ifdef DLA_HAVE_RTL
/// (a - b) / b in percent (0 when b is 0).
double diff_percent(std::uint64_t a, std::uint64_t b) {
  return b == 0 ? 0.0 : 100.0 * (static_cast<double>(a) - static_cast<double>(b)) / static_cast<double>(b);
}

/// `dla bench rtl`: the rtl engine's simulated cycles per second, the cycle model's speedup
/// over it on the same program in the same process, and per layer the compute cycles the
/// RTL took against the cycle model's formulas and the layer's cycles on both engines.
int bench_rtl(const Program& program, const HostTensor& image, const HwConfig& hw, int repeat, unsigned threads) {
  auto model = sim::make_cycle_model(hw);
  model->load(program);
  model->set_input("image", image);
  const double cyc_s = best_run(*model, repeat, threads);
  auto rtl = sim::make_rtl_engine(hw);
  rtl->load(program);
  rtl->set_input("image", image);
  const double rtl_s = best_run(*rtl, repeat, threads);
  const sim::CycleReport& c = model->report();
  const sim::CycleReport& r = rtl->report();
  const bool same = rtl->output("fc").values == model->output("fc").values;
  std::printf("  rtl engine:  %.3f s per inference, %llu simulated cycles, core %s\n", rtl_s,
              static_cast<unsigned long long>(r.cycles), r.rtl.core.c_str());
  std::printf("  speed:       %.1f k simulated cycles per second (goal: 100 k); the cycle model (%.3f s, %llu cycles) "
              "is %.1fx faster\n",
              static_cast<double>(r.cycles) / rtl_s / 1e3, cyc_s, static_cast<unsigned long long>(c.cycles),
              rtl_s / cyc_s);
  std::printf("  outputs:     %s\n", same ? "identical to the cycle model's" : "DIFFER from the cycle model's");
  std::printf("  on the RTL:  %llu compute instructions, %llu RTL cycles vs %llu by the formulas (%+.2f%%)\n",
              static_cast<unsigned long long>(r.rtl.instructions), static_cast<unsigned long long>(r.rtl.rtl_cycles),
              static_cast<unsigned long long>(r.rtl.rtl_model_cycles), diff_percent(r.rtl.rtl_cycles, r.rtl.rtl_model_cycles));
  std::size_t width = 5;
  for (const auto& l : r.layers) width = std::max(width, l.name.size());
  const int w = static_cast<int>(width);
  std::cout << "  " << std::left << std::setw(w) << "layer" << std::right << std::setw(12) << "RTL compute"
            << std::setw(12) << "formulas" << std::setw(9) << "diff" << std::setw(12) << "rtl layer" << std::setw(12)
            << "cycle layer" << std::setw(9) << "diff" << "\n";
  double worst_compute = 0, worst_layer = 0;
  std::string worst_compute_name = "-", worst_layer_name = "-";
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    const auto& m = c.layers[i];
    const double dc = diff_percent(l.rtl_cycles, l.rtl_model_cycles), dl = diff_percent(l.cycles, m.cycles);
    if (std::abs(dc) > std::abs(worst_compute)) {
      worst_compute = dc;
      worst_compute_name = l.name;
    }
    if (std::abs(dl) > std::abs(worst_layer)) {
      worst_layer = dl;
      worst_layer_name = l.name;
    }
    char a[16], b[16];
    std::snprintf(a, sizeof a, "%+.2f%%", dc);
    std::snprintf(b, sizeof b, "%+.2f%%", dl);
    std::cout << "  " << std::left << std::setw(w) << l.name << std::right << std::setw(12) << l.rtl_cycles
              << std::setw(12) << l.rtl_model_cycles << std::setw(9) << a << std::setw(12) << l.cycles << std::setw(12)
              << m.cycles << std::setw(9) << b << "\n";
  }
  std::cout.flush();
  std::printf("  worst per-layer difference (goal: 2%%): compute %+.2f%% (%s), whole layer %+.2f%% (%s)\n",
              worst_compute, worst_compute_name.c_str(), worst_layer, worst_layer_name.c_str());
  return same ? 0 : 1;
}
#endif

/// Images per second on a batch spread over `threads` emulators (dla/batch.hpp), against
/// libtorch's convolutions on the same batch at the same thread count.
void bench_batch(const Program& program, const HostTensor& image, const HwConfig& hw, std::vector<ConvShape> convs,
                 int batch, int repeat, unsigned threads) {
  sim::BatchRunner runner(program, hw, [](const HwConfig& c) { return sim::make_emulator(c); }, threads);
  const std::vector<sim::TensorMap> inputs(static_cast<std::size_t>(batch), sim::TensorMap{{"image", image}});
  const double best = best_of(repeat, [&] { runner.run(inputs); });
  std::printf("  batch:     %d images, %u threads (emulator and libtorch alike)\n", batch, threads);
  std::printf("    emulator:  %.3f s, %.1f images/s (%u emulators, one image each at a time)\n", best, batch / best,
              runner.threads());
  for (auto& c : convs) c.n = batch;
  const TorchBenchResult torch = bench_torch_convs(convs, repeat, threads);
  if (!torch.available) return;
  std::printf("    libtorch:  %.3f s for the %zu convolutions on the batch, %.1f images/s\n", torch.seconds, convs.size(),
              batch / torch.seconds);
  std::printf("    ratio:     emulator / libtorch = %.2fx in images per second\n", torch.seconds / best);
}

}  // namespace

int cmd_bench(const Args& args) {
  po::options_description options("bench options");
  options.add_options()
      ("engine", po::value<std::string>()->default_value("emu"), "engine to measure: emu, cycle or rtl")
      ("size", po::value<std::int64_t>()->default_value(224), "input height and width of the ResNet-18 graph")
      ("preset", po::value<std::string>()->default_value("default"), "hardware config preset")
      ("repeat", po::value<int>()->default_value(3), "runs per engine; the best is reported")
      ("batch", po::value<int>()->default_value(1),
       "emu: also measure images per second on a batch of N images (spread over the threads) against libtorch's "
       "convolutions on a batch of N")
      ("threads", po::value<unsigned>()->default_value(0),
       "host threads for every side of the comparison (0: one per core); emu also reports 1 thread");
  po::positional_options_description positional;
  positional.add("engine", 1);
  const auto vm = parse_command(args, "dla bench [emu|cycle|rtl] [--size N] [--preset NAME] [--repeat R] [--threads T] [--batch N]",
                                "Compiles the ResNet-18-shaped int8 graph (20 convolutions and 8 adds), runs it on "
                                "the engine and prints, measured in the same run: for emu its GMAC/s and the ratio "
                                "to libtorch's own quantized convolutions on the same layers; for cycle its simulated "
                                "cycles per second, its slowdown against the emulator and the MAC utilization of "
                                "every layer; for rtl its simulated cycles per second, the cycle model's speedup over "
                                "it and per layer the RTL's compute cycles against the cycle model's formulas.",
                                options, positional);
  if (!vm) return 0;
  const std::string engine = (*vm)["engine"].as<std::string>();
#ifdef DLA_HAVE_RTL
  if (engine != "emu" && engine != "cycle" && engine != "rtl") {
    throw Error("bench: unknown engine '" + engine + "' (emu, cycle, rtl)");
  }
#else
  if (engine != "emu" && engine != "cycle") throw Error("bench: unknown engine '" + engine + "' (emu, cycle)");
#endif
  const std::int64_t size = (*vm)["size"].as<std::int64_t>();
  const int repeat = (*vm)["repeat"].as<int>();
  if (size < 32 || size > 1024) throw Error("--size must be in [32, 1024]");
  if (repeat < 1 || repeat > 100) throw Error("--repeat must be in [1, 100]");
  const unsigned requested_threads = (*vm)["threads"].as<unsigned>();
  if (requested_threads > 256) throw Error("--threads must be in [0, 256] (0: one per core)");
  const unsigned threads = sim::resolve_threads(requested_threads);
  const int batch = (*vm)["batch"].as<int>();
  if (batch < 1 || batch > 4096) throw Error("--batch must be in [1, 4096]");
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
  if (engine == "cycle") return bench_cycle(program, image, hw, repeat, threads);
#ifdef DLA_HAVE_RTL
  if (engine == "rtl") return bench_rtl(program, image, hw, repeat, threads);
#endif
  auto device = sim::make_emulator(hw);
  device->load(program);
  device->set_input("image", image);

  std::vector<ConvShape> convs;
  std::uint64_t conv_macs = 0;
  for (const auto& n : graph.nodes()) {
    if (n.kind != compiler::OpKind::kConv2d) continue;
    const auto& x = graph.node(n.inputs[0]);
    convs.push_back({x.shape[0], x.shape[1], x.shape[2], x.shape[3], n.shape[1], n.conv.kernel_h, n.conv.stride_h,
                     n.conv.pad_top, n.conv.groups});
    conv_macs += convs.back().macs();
  }
  // Like with like: the emulator and libtorch get the same number of threads, set
  // explicitly on both sides (libtorch's own default here is one thread); one thread is
  // measured too.
  std::vector<unsigned> thread_counts{threads};
  if (threads > 1) thread_counts.push_back(1);
  // The first run schedules and checks the program and packs every layer's weights; later
  // runs perform the checked order and reuse the packings (as libtorch's prepacked
  // weights), which the best of `repeat` reports.
  const double first_run = best_run(*device, 1, threads);
  std::printf("  first run: %.4f s (schedules and checks the program, packs the weights; the runs below perform the "
              "checked order and reuse the packings, as libtorch's prepacked weights)\n",
              first_run);
  for (const unsigned t : thread_counts) {
    const BestTimes emu_times = best_run_times(*device, repeat, t);
    const double emu_best = emu_times.wall;
    const sim::RunStats stats = device->stats();
    const double emu_gmacs = static_cast<double>(stats.macs) / emu_best / 1e9;
    std::printf("  threads:   %u (emulator and libtorch alike)\n", t);
    std::printf("    emulator:  %.4f s per inference, %.3f GMAC, %.2f GMAC/s\n", emu_best,
                static_cast<double>(stats.macs) / 1e9, emu_gmacs);
    const double rechecked = best_run_times(*device, repeat, t, true).wall;
    std::printf("    checking:  %.4f s per inference when every run schedules and checks again (RunOptions::recheck), "
                "%.2f GMAC/s\n",
                rechecked, static_cast<double>(stats.macs) / rechecked / 1e9);
    const TorchBenchResult torch = bench_torch_convs(convs, repeat, t);
    if (!torch.available) {
      std::printf("    libtorch:  not available in this build; no ratio\n");
      continue;
    }
    const double torch_gmacs = static_cast<double>(conv_macs) / torch.seconds / 1e9;
    std::printf("    libtorch:  %.4f s for the %zu convolutions (quantized::conv2d, %s), %.2f GMAC/s\n", torch.seconds,
                convs.size(), torch.engine.c_str(), torch_gmacs);
    std::printf("    ratio:     emulator / libtorch = %.2fx at %u thread%s (the emulator's time also covers DMA, "
                "requantize, pooling, adds and the fc layer)\n",
                emu_gmacs / torch_gmacs, t, t == 1 ? "" : "s");
    if (t == 1 && torch.cpu_seconds > 0) {
      const double emu_cpu_gmacs = static_cast<double>(stats.macs) / emu_times.cpu / 1e9;
      const double torch_cpu_gmacs = static_cast<double>(conv_macs) / torch.cpu_seconds / 1e9;
      std::printf("    cpu time:  emulator %.4f s (%.2f GMAC/s), libtorch %.4f s (%.2f GMAC/s) of the thread's CPU: "
                  "ratio %.2fx (the same comparison, barely moved by other load on the machine)\n",
                  emu_times.cpu, emu_cpu_gmacs, torch.cpu_seconds, torch_cpu_gmacs, emu_cpu_gmacs / torch_cpu_gmacs);
    }
  }
  if (batch > 1) bench_batch(program, image, hw, convs, batch, repeat, threads);
  return 0;
}

}  // namespace dla::cli
