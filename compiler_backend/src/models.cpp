// Benchmark networks.
#include "dla/compiler/models.hpp"

#include <cmath>
#include <random>
#include <string>

namespace dla::compiler {
namespace {

class ResNetBuilder {
 public:
  ResNetBuilder(Graph& g, std::uint64_t seed) : g_(g), rng_(seed) {}

  /// conv + folded-BN-like bias + ReLU (unless `relu` is false), i8 out.
  int conv(const std::string& name, int x, std::int64_t oc, int k, int stride, bool relu = true) {
    const auto& xn = g_.node(x);
    const std::int64_t c = xn.shape[1];
    ConvAttrs a;
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = k / 2;
    const std::int64_t fan_in = c * k * k;
    std::uniform_int_distribution<int> w(-127, 127);
    std::vector<std::int32_t> weights(static_cast<std::size_t>(oc * fan_in));
    for (auto& v : weights) v = w(rng_);
    // Typical |acc| ~ sqrt(fan_in) * E|x| * E|w|: shift it back into 8 bits.
    const double typical = std::sqrt(static_cast<double>(fan_in)) * 40.0 * 64.0;
    const int shift = static_cast<int>(std::ceil(std::log2(typical / 32.0)));
    // Weight frac = shift keeps the activation frac constant through the network, as
    // He-scaled real weights would.
    const int f_w = shift;
    QuantSpec q;
    q.dtype = DType::I8;
    q.frac = xn.frac + f_w - shift;
    if (relu) q.clip_lo = 0;
    std::vector<std::int64_t> bias(static_cast<std::size_t>(oc));
    std::uniform_int_distribution<int> b(-(1 << (shift + 2)), 1 << (shift + 2));
    for (auto& v : bias) v = b(rng_);
    return g_.conv2d(name, x, oc, a, DType::I8, std::move(weights), std::vector<int>(static_cast<std::size_t>(oc), f_w),
                     std::move(bias), q);
  }

  int block(const std::string& name, int x, std::int64_t oc, int stride) {
    const int a = conv(name + ".conv1", x, oc, 3, stride);
    const int b = conv(name + ".conv2", a, oc, 3, 1, false);
    int skip = x;
    if (stride != 1 || g_.node(x).shape[1] != oc) skip = conv(name + ".downsample", x, oc, 1, stride, false);
    QuantSpec q;
    q.dtype = DType::I8;
    q.frac = std::min(g_.node(b).frac, g_.node(skip).frac);
    q.clip_lo = 0;
    return g_.add(name + ".add", b, skip, q);
  }

 private:
  Graph& g_;
  std::mt19937_64 rng_;
};

}  // namespace

Graph resnet18(std::int64_t size, std::int64_t batch, std::uint64_t seed) {
  Graph g;
  ResNetBuilder r(g, seed);
  int x = g.input("image", DType::U8, 4, {batch, 3, size, size});
  x = r.conv("conv1", x, 64, 7, 2);
  PoolAttrs pool;
  pool.kernel_h = pool.kernel_w = 3;
  pool.stride_h = pool.stride_w = 2;
  pool.pad_top = pool.pad_left = pool.pad_bottom = pool.pad_right = 1;
  x = g.max_pool("maxpool", x, pool);
  const std::int64_t widths[] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    for (int i = 0; i < 2; ++i) {
      const int stride = (stage > 0 && i == 0) ? 2 : 1;
      x = r.block("layer" + std::to_string(stage + 1) + "." + std::to_string(i), x, widths[stage], stride);
    }
  }
  QuantSpec q;
  q.dtype = DType::I8;
  q.frac = g.node(x).frac;
  x = g.global_avg_pool("avgpool", x, q);
  x = g.flatten("flatten", x);
  std::mt19937_64 rng(seed + 1);
  std::uniform_int_distribution<int> w(-127, 127);
  std::vector<std::int32_t> fc(static_cast<std::size_t>(1000 * 512));
  for (auto& v : fc) v = w(rng);
  QuantSpec out;
  out.dtype = DType::I16;
  out.frac = g.node(x).frac;
  x = g.linear("fc", x, 1000, DType::I8, std::move(fc), std::vector<int>(1000, 12), {}, out);
  g.mark_output(x);
  return g;
}

}  // namespace dla::compiler
