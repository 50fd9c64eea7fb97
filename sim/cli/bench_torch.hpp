// The libtorch side of `dla bench`: libtorch's own quantized convolutions, timed on the
// same layer shapes, as the reference the emulator's throughput is compared with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dla::cli {

struct ConvShape {
  std::int64_t n, c, h, w, oc, kernel, stride, pad, groups;
  std::uint64_t macs() const;
};

/// The calling thread's CPU time, in seconds: at one thread both sides of the comparison
/// run on the calling thread, and its CPU time barely moves when other processes load the
/// machine, while wall-clock time does.
double thread_cpu_seconds();

/// Best wall-clock and best calling-thread CPU seconds over repeated runs.
struct BestTimes {
  double wall = 0, cpu = 0;
  int runs = 0;
  void add(double wall_s, double cpu_s);
};

struct TorchBenchResult {
  bool available = false;  ///< false when this build has no libtorch
  std::string engine;      ///< the quantized engine used (onednn, qnnpack, ...)
  double seconds = 0;      ///< best total time over the layers
  double cpu_seconds = 0;  ///< best CPU time of the calling thread over the layers
};

/// Times quantized::conv2d (u8 activations, s8 weights, prepacked) over `layers`,
/// `repeats` times, on `threads` intra-op threads (at::set_num_threads), and returns the
/// best total.
TorchBenchResult bench_torch_convs(const std::vector<ConvShape>& layers, int repeats, unsigned threads);

}  // namespace dla::cli
