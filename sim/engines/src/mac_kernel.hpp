// Private: the MAC array's arithmetic, the emulator's hot loop, and the helper threads
// that share big instructions between cores. The integers come from dla/gemm.hpp (the
// exact integer convolution kernels shared with the QAT bridge): every output is the
// exact integer sum of the loop of isa.hpp (MAC), whatever the ISA path, reduction order,
// blocking or thread split.
#pragma once

#include <cstdint>
#include <type_traits>

#include "dla/numerics.hpp"

namespace dla::sim::detail {

class WeightCache;

struct MacGeometry {
  std::int64_t in_h = 1, in_w = 1, in_c = 1;
  std::int64_t out_h = 1, out_w = 1, out_c = 1;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1, dilation = 1;
  bool depthwise = false;
  bool accumulate = false;
};

/// act: SRAM bytes of [in_h][in_w][in_c] elements of act_type (u8, i8, u4, i4 or i16);
/// wgt: SRAM bytes of [out_c][kernel_h][kernel_w][in_c] ([out_c][kernel_h][kernel_w] when
/// depthwise) elements of wgt_type (i8 or i4); acc: [out_h][out_w][out_c] exact sums,
/// overwritten or (when accumulate) added to with saturation to int64. Shares the work
/// between `threads` threads (1 = this thread only; see run_parts). With a cache, a dense
/// convolution's packed weights are kept there (wgt lies at wgt_addr in WGT) and reused.
void run_mac(const MacGeometry& g, DType act_type, const std::uint8_t* act, DType wgt_type, const std::uint8_t* wgt,
             std::int64_t* acc, unsigned threads, WeightCache* cache = nullptr, std::uint64_t wgt_addr = 0);

/// Calls fn(ctx, part) once for every part in [0, parts), on this thread and up to
/// threads - 1 helper threads that stay alive (and poll briefly between jobs) so that
/// sharing an instruction of a few microseconds pays off. Parts are claimed one at a
/// time: more parts than threads let this thread take over the work of a helper that
/// the OS has not scheduled. With threads <= 1, or while the helpers run another
/// caller's job, every part runs here, in order. fn must not throw. The helpers are an
/// execution resource only: results never depend on how the parts were spread.
void run_parts(unsigned threads, unsigned parts, void (*fn)(void* ctx, unsigned part), void* ctx);

/// run_parts for a callable f(unsigned part).
template <typename F>
void for_parts(unsigned threads, unsigned parts, F&& f) {
  run_parts(threads, parts, [](void* ctx, unsigned part) { (*static_cast<std::remove_reference_t<F>*>(ctx))(part); }, &f);
}

/// Parts for work that `threads` threads share: a few per thread.
inline unsigned parts_for(unsigned threads) { return threads <= 1 ? 1u : 4 * threads; }

}  // namespace dla::sim::detail
