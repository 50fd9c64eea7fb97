// libtorch's quantized conv2d, timed (the only TU of the tool that includes ATen).
#include "bench_torch.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <chrono>

namespace dla::cli {
namespace {

std::vector<c10::IValue> call_op(const char* name, const char* overload, std::vector<c10::IValue> stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  op.callBoxed(&stack);
  return stack;
}

}  // namespace

TorchBenchResult bench_torch_convs(const std::vector<ConvShape>& layers, int repeats, unsigned threads) {
  TorchBenchResult result;
  at::set_num_threads(static_cast<int>(threads));
  const auto& engines = at::globalContext().supportedQEngines();
  for (auto e : {c10::QEngine::FBGEMM, c10::QEngine::ONEDNN, c10::QEngine::QNNPACK}) {
    if (std::find(engines.begin(), engines.end(), e) == engines.end()) continue;
    at::globalContext().setQEngine(e);
    result.engine = e == c10::QEngine::FBGEMM ? "fbgemm" : e == c10::QEngine::ONEDNN ? "onednn" : "qnnpack";
    break;
  }
  if (result.engine.empty()) return result;
  result.available = true;
  struct Prepared {
    at::Tensor x;
    c10::IValue packed;
  };
  std::vector<Prepared> prepared;
  at::manual_seed(0);
  for (const auto& l : layers) {
    const at::Tensor xf = at::rand({l.n, l.c, l.h, l.w});
    const at::Tensor wf = at::rand({l.oc, l.c / l.groups, l.kernel, l.kernel}) - 0.5;
    const at::Tensor x = at::quantize_per_tensor(xf, 1.0 / 128, 0, at::kQUInt8).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::quantize_per_tensor(wf, 1.0 / 256, 0, at::kQInt8);
    const c10::List<int64_t> stride({l.stride, l.stride}), pad({l.pad, l.pad}), dil({1, 1});
    auto packed = call_op("quantized::conv2d_prepack", "",
                          {w, c10::optional<at::Tensor>(), stride, pad, dil, l.groups});
    prepared.push_back({x, packed[0]});
  }
  BestTimes best;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    for (const auto& p : prepared) call_op("quantized::conv2d", "new", {p.x, p.packed, 1.0 / 16, int64_t{0}});
    best.add(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), thread_cpu_seconds() - c0);
  }
  result.seconds = best.wall;
  result.cpu_seconds = best.cpu;
  return result;
}

}  // namespace dla::cli
