// Uses the installed dlasim: graph -> program -> emulator and cycle model -> the
// reference evaluator's integers. Exit 0 and "consumer: ok" when all three agree.
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "dla/compiler/graph.hpp"
#include "dla/compiler/lower.hpp"
#include "dla/compiler/reference.hpp"
#include "dla/cycle.hpp"
#include "dla/device.hpp"

int main() {
  using namespace dla;
  compiler::Graph g;
  const int x = g.input("x", DType::I8, 4, {1, 8, 6, 6});
  compiler::ConvAttrs a;
  a.kernel_h = a.kernel_w = 3;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 1;
  std::vector<std::int32_t> w(16 * 8 * 9);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int32_t>(i * 7 % 15) - 7;
  compiler::QuantSpec out;
  out.frac = 3;
  out.clip_lo = 0;
  const int y = g.conv2d("conv", x, 16, a, DType::I8, w, std::vector<int>(16, 5), std::vector<std::int64_t>(16, 100), out);
  g.mark_output(y);

  const HwConfig hw = HwConfig::preset("small");
  const Program program = compiler::compile(g, hw);
  HostTensor in;
  in.dtype = DType::I8;
  in.frac = 4;
  in.shape = {1, 8, 6, 6};
  for (std::uint64_t i = 0; i < in.num_elements(); ++i) in.values.push_back(static_cast<std::int32_t>(i * 37 % 256) - 128);
  const auto expected = compiler::evaluate(g, hw, {{"x", in}})[static_cast<std::size_t>(y)];

  int failures = 0;
  std::vector<std::unique_ptr<sim::Device>> devices;
  devices.push_back(sim::make_emulator(hw));
  devices.push_back(sim::make_cycle_model(hw));
  for (auto& device : devices) {
    device->load(program);
    device->set_input("x", in);
    device->run();
    if (device->output("conv").values != expected.values) {
      std::printf("consumer: %s differs from the reference evaluator\n", device->name().c_str());
      ++failures;
    }
  }
  if (failures == 0) std::printf("consumer: ok (%zu elements on emu and cycle)\n", expected.values.size());
  return failures == 0 ? 0 : 1;
}
