// Private: the MAC array's arithmetic on unpacked operands, the emulator's hot loop.
// The kernel computes exactly the loop of isa.hpp (MAC): every output is the exact
// integer sum, whatever the reduction order, chunking or thread split.
#pragma once

#include <cstdint>

namespace dla::sim::detail {

struct MacGeometry {
  std::int64_t in_h = 1, in_w = 1, in_c = 1;
  std::int64_t out_h = 1, out_w = 1, out_c = 1;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1, dilation = 1;
  bool depthwise = false;
  bool accumulate = false;
  /// Upper bound of |a * w| over the operand types; decides where int32 partial sums
  /// are exact.
  std::int64_t max_abs_product = 1;
};

/// act: [in_h][in_w][in_c]; wgt: [out_c][kernel_h][kernel_w][in_c] ([out_c][kernel_h]
/// [kernel_w] when depthwise); acc: [out_h][out_w][out_c] exact sums, overwritten or (when
/// accumulate) added to. Splits the output rows over `threads` threads (1 = this thread).
void run_mac(const MacGeometry& g, const std::int16_t* act, const std::int16_t* wgt, std::int64_t* acc,
             unsigned threads);

}  // namespace dla::sim::detail
